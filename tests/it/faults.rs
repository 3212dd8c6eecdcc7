//! Storage faults on a real, small file system (a tmpfs as the data root): a full disk fails
//! writes with 507 and says so in `/healthz`, and once space is freed writes succeed again
//! without a restart; a queue whose log and reports cannot be written ends `error`, never
//! `passed`; queues wait while the root has less than `[worker] min_free_space` free.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with_config};
use crate::worker::{UNCONFINED, config, make_repo};

const LIMIT: Duration = Duration::from_secs(60);

/// A tmpfs of `mib` MiB mounted on a temporary directory; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with the reason printed) where mounting is not possible outside CI; under CI a
    /// failure to mount fails the test.
    fn mount(mib: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI runs as root and must mount a tmpfs for the storage fault tests: {why}"
                );
                eprintln!("skipped: cannot mount a tmpfs here (run as root): {why}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn app_on(disk: &SmallDisk, toml: &str) -> TestApp {
    let root = disk.path().join("root");
    spawn_app_with_config(toml, move |c| c.root = root).await
}

/// Enqueues with scenario paths long enough to need new pages in the store.
async fn enqueue(app: &TestApp, id: &str, repo: &str) -> (u16, Value) {
    let scenarios: Vec<String> = (0..200)
        .map(|i| format!("scenarios/{i:04}-{}.xml", "x".repeat(900)))
        .collect();
    let body = json!({"id": id, "repo": repo, "environment": "sim", "scenarios": scenarios});
    let r = app.post_json("/api/queues", &body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn healthz(app: &TestApp) -> (u16, String) {
    let r = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_with_507_and_they_come_back_without_a_restart() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let toml = config("true", "", "min_free_space = 0").replace("slots = 1", "slots = 0");
    let app = app_on(&disk, &toml).await;
    let repo = "https://git.example/fw.git";
    assert_eq!(enqueue(&app, "before", repo).await.0, 201);
    let filler = disk.fill();

    // Writes fail once the store needs space it cannot get: 507, saying what to do.
    let mut refused = None;
    for i in 0..400 {
        let (status, body) = enqueue(&app, &format!("full-{i}"), repo).await;
        match status {
            201 => continue,
            507 => {
                refused = Some(body);
                break;
            }
            other => panic!("enqueue on a full disk: {other} {body}"),
        }
    }
    let body = refused.expect("a full disk refuses writes within 400 enqueues");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("free space"), "{message}");
    let (status, text) = healthz(&app).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("cannot write"), "{text}");
    // Reads still work meanwhile.
    assert_eq!(app.get_json("/api/queues/before").await.0, 200);

    // Space freed: the next write succeeds, without a restart, and healthz is well again.
    std::fs::remove_file(&filler).unwrap();
    let (status, body) = enqueue(&app, "after", repo).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(healthz(&app).await.0, 200);
    // Nothing half-written: what was acknowledged is there, what was refused is not.
    assert_eq!(app.get_json("/api/queues/before").await.0, 200);
    assert_eq!(app.get_json("/api/queues/after").await.0, 200);
    let list = app.get_json("/api/queues?limit=100").await.1;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    for id in &ids {
        assert_eq!(app.get_json(&format!("/api/queues/{id}")).await.0, 200);
    }
    app.stop().await;
}

/// The build fills the disk: the run cannot write its log and reports. It ends `error` naming
/// the file, never `passed`, once the store can record that (space freed meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_cannot_write_its_log_and_reports_ends_error_not_passed() {
    let Some(disk) = SmallDisk::mount(32) else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let repo = make_repo(
        src.path(),
        &[("scenarios/pass.xml", crate::worker::SCENARIO_PASS)],
    );
    let fill = disk.path().join("fill");
    // Fills the disk (the checkout is on it), then the scenario runs.
    let build = format!(
        "echo built > built.txt; head -c 100M /dev/zero > {} 2>/dev/null; true",
        fill.display()
    );
    let toml = config(&build, "", "\nmin_free_space = 0\n") + UNCONFINED;
    let app = app_on(&disk, &toml).await;
    let mut fault = app.state.store.watch_fault();
    let body = json!({"id": "q1", "repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    assert_eq!(app.post_json("/api/queues", &body).await.status(), 201);
    // Either the store cannot record the run's tasks (it reports the fault until space is
    // freed), or it still has room in pages its file already holds and the run ends on the log
    // or a report it cannot write.
    tokio::select! {
        fault = fault.wait_for(Option::is_some) => drop(fault.expect("the store is open")),
        _ = app.wait_status("q1", "error", LIMIT) => {}
    }
    std::fs::remove_file(&fill).unwrap();
    let q = app.wait_status("q1", "error", LIMIT).await;
    // Whichever write met the full disk first (the log, a report, the store) is named.
    let error = q["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot write") || error.contains("cannot record"),
        "{q:#}"
    );
    assert!(error.contains("No space left on device"), "{q:#}");
    app.stop().await;
}

/// Below `[worker] min_free_space`, queues wait and say why; they start once there is space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_wait_for_free_space_and_start_when_there_is_some() {
    let Some(disk) = SmallDisk::mount(16) else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let repo = make_repo(
        src.path(),
        &[("scenarios/pass.xml", crate::worker::SCENARIO_PASS)],
    );
    let toml = config(
        "echo built > built.txt",
        "",
        "\nmin_free_space = \"8MiB\"\n",
    ) + UNCONFINED;
    let app = app_on(&disk, &toml).await;
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 12 << 20]).unwrap();
    let body = json!({"id": "q1", "repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    assert_eq!(app.post_json("/api/queues", &body).await.status(), 201);
    let q = app.get_json("/api/queues/q1").await.1;
    assert_eq!(q["status"], "waiting", "{q:#}");
    let reason = q["waiting_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("[worker] min_free_space"), "{reason}");
    std::fs::remove_file(&ballast).unwrap();
    app.wait_status("q1", "passed", LIMIT).await;
    app.stop().await;
}

/// The real binary with at most 256 open files: 400 connections that send half a header and
/// then nothing. Past the connection cap new ones wait; the header timeout closes the
/// half-open ones, so `/healthz` is answered soon after it (and the server never runs out of
/// descriptors for its own files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_headers_does_not_take_the_server_down() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_testarena"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("root"))
        .env("TESTARENA_WORKER_SLOTS", "0")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("the binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    // Without colour codes between a key and its value.
    let colours = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server says it is serving");
        let plain = colours.replace_all(&line, "");
        if let Some(a) = plain
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
        {
            break a.to_owned();
        }
    };
    let mut flood = Vec::new();
    for _ in 0..400 {
        // Connects succeed into the accept queue even past the cap.
        if let Ok(Ok(mut s)) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await;
            flood.push(s);
        }
    }
    assert!(flood.len() > 200, "only {} connections", flood.len());
    let healthz = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        answer
    };
    let limit = testarena::serve::HEADER_TIMEOUT + Duration::from_secs(5);
    let answer = tokio::time::timeout(limit, healthz)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no /healthz answer within {limit:?}; the server logged:\n{}",
                log.lock().unwrap().join("\n")
            )
        });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The half-open connections were closed by the server.
    let mut closed = 0;
    for s in &mut flood {
        let mut buf = [0u8; 512];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, flood.len());
    let log = log.lock().unwrap().join("\n");
    assert!(!log.contains("Too many open files"), "{log}");
    let _ = child.kill();
    let _ = child.wait();
}
