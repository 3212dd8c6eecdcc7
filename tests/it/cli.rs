//! The real binary: start-up errors, durability across `kill -9`, recovery of a run interrupted
//! by a crash, and a graceful SIGTERM in the middle of a run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::sets_allowed_repos;
use crate::worker::{SCENARIO_PASS, UNCONFINED, config, make_repo, processes_with};

const LIMIT: Duration = Duration::from_secs(30);

pub(crate) struct Binary {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `testarena serve` and waits until it says it is serving.
fn start(root: &Path, config_file: Option<&Path>) -> Binary {
    start_with(root, config_file, &[], Stdio::null())
}

pub(crate) fn start_with(
    root: &Path,
    config_file: Option<&Path>,
    extra: &[&str],
    stdout: Stdio,
) -> Binary {
    start_with_env(root, config_file, extra, stdout, &[])
}

/// Starts `testarena serve` with `env` added to its environment.
pub(crate) fn start_with_env(
    root: &Path,
    config_file: Option<&Path>,
    extra: &[&str],
    stdout: Stdio,
    env: &[(&str, &str)],
) -> Binary {
    start_in(None, root, config_file, extra, stdout, env)
}

/// Like `start_with_env`, in directory `cwd` when given (`root` may then be relative to it).
pub(crate) fn start_in(
    cwd: Option<&Path>,
    root: &Path,
    config_file: Option<&Path>,
    extra: &[&str],
    stdout: Stdio,
    env: &[(&str, &str)],
) -> Binary {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testarena"));
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.arg("serve")
        .args(extra)
        .arg("--root")
        .arg(root)
        .args(["--listen", &addr]);
    if let Some(c) = config_file {
        cmd.arg("--config").arg(c);
    }
    // Test repositories live in temporary directories (see `helpers::allow_temp_repos`).
    let file = config_file.map(|c| std::fs::read_to_string(c).unwrap_or_default());
    if !file.is_some_and(|text| sets_allowed_repos(&text)) {
        let allowed = format!("https://,ssh://,git@,{}", std::env::temp_dir().display());
        cmd.env("TESTARENA_WORKER_ALLOWED_REPOS", allowed);
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("serving") => break,
            Some(Ok(_)) => {}
            _ => panic!("the server exited before serving: {:?}", child.wait()),
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Binary { child, addr }
}

fn sigterm(b: &mut Binary) -> std::process::ExitStatus {
    unsafe { libc::kill(b.child.id() as i32, libc::SIGTERM) };
    b.child.wait().unwrap()
}

async fn get(client: &reqwest::Client, b: &Binary, path: &str) -> (u16, Value) {
    let r = client
        .get(format!("http://{}{path}", b.addr))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Waits for `status` by following the server's change stream (no polling loop with sleeps).
pub(crate) async fn wait_status(
    client: &reqwest::Client,
    b: &Binary,
    id: &str,
    status: &str,
) -> Value {
    let mut events = client
        .get(format!("http://{}/api/events", b.addr))
        .send()
        .await
        .unwrap();
    let fut = async {
        loop {
            let (_, q) = get(client, b, &format!("/api/queues/{id}")).await;
            if q["status"] == status {
                return q;
            }
            // Any event (or keep-alive) is a reason to look again.
            events.chunk().await.unwrap().expect("event stream open");
        }
    };
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{id} never became {status}"))
}

/// Reads the queue's live log stream until a line contains `needle`.
async fn wait_line(client: &reqwest::Client, b: &Binary, id: &str, needle: &str) {
    let mut stream = client
        .get(format!("http://{}/api/queues/{id}/log/stream", b.addr))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let fut = async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(needle) {
                return;
            }
        }
        panic!("stream ended without {needle:?}");
    };
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("line in time");
}

#[test]
fn help_and_an_unusable_root() {
    let out = Command::new(env!("CARGO_BIN_EXE_testarena"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("check"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_testarena"))
        .args([
            "serve",
            "--root",
            "/proc/testarena-cannot-be-here",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--root") && err.contains("TESTARENA_ROOT"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[worker]\nslotz = 2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_testarena"))
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("slotz"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_enqueue_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let cfg = dir.path().join("paused.toml");
    std::fs::write(&cfg, "[worker]\nslots = 0\n").unwrap();
    let mut server = start(&root, Some(&cfg));
    let client = testarena::http_client().build().expect("http client");
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, addr) = (client.clone(), server.addr.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"id": format!("q{i}"), "repo": "https://git.example/fw.git", "environment": "esp32"});
            let r = client
                .post(format!("http://{addr}/api/queues"))
                .json(&body)
                .send()
                .await;
            matches!(r, Ok(r) if r.status() == 201).then(|| format!("q{i}"))
        }));
    }
    let acked: Vec<String> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(acked.len(), 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = start(&root, Some(&cfg));
    let (_, page) = get(&client, &server, "/api/queues?limit=500").await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert!(ids.contains(&id.as_str()), "{id} lost");
    }
}

pub(crate) fn write_config(dir: &Path, build: &str) -> PathBuf {
    let path = dir.join("config.toml");
    // The builds keep a marker outside the checkout across attempts: no sandbox.
    let toml = config(build, "", "max_attempts = 2") + UNCONFINED;
    std::fs::write(&path, toml).unwrap();
    path
}

/// A server whose queue `id` is in the middle of its first build attempt (which hangs in a
/// child whose command line carries `token`); a second attempt builds at once.
struct MidRun {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cfg: PathBuf,
    server: Binary,
    client: reqwest::Client,
    token: String,
}

async fn mid_run(id: &str) -> MidRun {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let token = format!("{id}-first-attempt-{}", std::process::id());
    let marker = dir.path().join("attempted");
    let build = format!(
        "if [ -e {m} ]; then echo built > built.txt; else touch {m}; echo build-running; sh -c 'sleep 600' {token}; fi",
        m = marker.display()
    );
    let cfg = write_config(dir.path(), &build);
    let root = dir.path().join("root");
    let server = start(&root, Some(&cfg));
    let client = testarena::http_client().build().expect("http client");
    let body = json!({"id": id, "repo": repo.display().to_string(), "environment": "sim"});
    client
        .post(format!("http://{}/api/queues", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    wait_line(&client, &server, id, "build-running").await;
    MidRun {
        _dir: dir,
        root,
        cfg,
        server,
        client,
        token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_kill_9_is_requeued_and_completes() {
    let MidRun {
        _dir,
        root,
        cfg,
        mut server,
        client,
        token,
    } = mid_run("crashy").await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The crashed server could not stop its children: end their whole process group.
    for pid in processes_with(&token) {
        unsafe {
            let group = libc::getpgid(pid as i32);
            if group > 0 {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }

    let server = start(&root, Some(&cfg));
    let q = wait_status(&client, &server, "crashy", "passed").await;
    assert_eq!(q["attempt"], 2, "{q:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_stops_children_and_requeues_for_the_next_start() {
    let MidRun {
        _dir,
        root,
        cfg,
        mut server,
        client,
        token,
    } = mid_run("termed").await;
    let status = sigterm(&mut server);
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(
        processes_with(&token).is_empty(),
        "a child outlived the server"
    );

    let server = start(&root, Some(&cfg));
    let q = wait_status(&client, &server, "termed", "passed").await;
    assert_eq!(q["attempt"], 1, "a shutdown is not a failed attempt: {q:#}");
}

pub(crate) fn client(server: &Binary, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_testarena"))
        .args(args)
        .args(["--server", &format!("http://{}", server.addr)])
        .output()
        .unwrap()
}

#[test]
fn client_commands_enqueue_follow_status_logs_abort_delete() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let cfg = write_config(dir.path(), "echo compiling; echo built > built.txt");
    let server = start(&dir.path().join("root"), Some(&cfg));
    let repo_arg = repo.display().to_string();

    let out = client(
        &server,
        &[
            "enqueue", "--repo", &repo_arg, "--env", "sim", "--id", "c1", "--follow",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("compiling") && text.contains("pong"),
        "{text}"
    );

    let out = client(&server, &["status", "c1", "--json"]);
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q["status"], "passed");
    let out = client(&server, &["logs", "c1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("=== queue c1 passed"));

    let out = client(&server, &["enqueue", "--repo", &repo_arg, "--env", "mars"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown environment"));
    let out = client(&server, &["abort", "c1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already finished"));
    assert!(client(&server, &["delete", "c1"]).status.success());
    let out = client(&server, &["status", "c1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn check_validates_scenario_files() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios");
    let good = fixtures.join("good/full.xml");
    let bad = fixtures.join("bad/bad-duration.xml");
    let out = Command::new(env!("CARGO_BIN_EXE_testarena"))
        .arg("check")
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("full.xml: ok"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_testarena"))
        .arg("check")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("bad-duration.xml:2:20: timeout: invalid duration"),
        "{text}"
    );
}

#[test]
fn echo_logs_prints_queue_lines_with_the_queue_id() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let cfg = write_config(dir.path(), "echo compiling; echo built > built.txt");
    let mut server = start_with(
        &dir.path().join("root"),
        Some(&cfg),
        &["--echo-logs"],
        Stdio::piped(),
    );
    let repo_arg = repo.display().to_string();
    let out = client(
        &server,
        &[
            "enqueue", "--repo", &repo_arg, "--env", "sim", "--id", "e1", "--follow",
        ],
    );
    assert!(out.status.success());
    assert_eq!(sigterm(&mut server).code(), Some(0));
    let mut echoed = String::new();
    std::io::Read::read_to_string(&mut server.child.stdout.take().unwrap(), &mut echoed).unwrap();
    assert!(echoed.contains("e1 | compiling"), "{echoed}");
    assert!(echoed.contains("e1 | pong"), "{echoed}");
    assert!(echoed.contains("e1 | === queue e1 passed"), "{echoed}");
}

/// Under systemd (`Type=notify`) the server says READY=1 once it serves, and STOPPING=1 when
/// SIGTERM arrives; its children never see the notification socket.
#[test]
fn tells_systemd_when_it_is_ready_and_when_it_stops() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_testarena"))
        .args(["serve", "--listen", &addr, "--root"])
        .arg(dir.path().join("root"))
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut b = Binary { child, addr };
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 in time");
    assert_eq!(&buf[..n], b"READY=1\n");
    // Ready means serving.
    let health = std::net::TcpStream::connect(&b.addr);
    assert!(health.is_ok(), "READY=1 came before the server listened");
    unsafe { libc::kill(b.child.id() as i32, libc::SIGTERM) };
    let n = socket.recv(&mut buf).expect("STOPPING=1 in time");
    assert_eq!(&buf[..n], b"STOPPING=1\n");
    assert!(b.child.wait().unwrap().success());
}
