//! Access control through the real binary: start-up refusal, the CLI token, live reload.
//!
//! Every test runs `testarena` as a process with its own temporary root and its own config
//! file, and follows its stderr line by line: a wait is for a line (or an HTTP answer), bounded
//! by [`LIMIT`], never a fixed sleep.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use testarena::auth::{NewToken, Scope};
use tokio::sync::mpsc;

/// How long one wait (a process, a log line, a request) may take.
const LIMIT: Duration = Duration::from_secs(30);

/// The binary, with none of this process's `TESTARENA_*` variables: each test says what it
/// wants.
fn testarena() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_testarena"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESTARENA_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to its end (killed and failed after [`LIMIT`]) and returns its output.
fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(output) => output.expect("the command's output"),
        Err(_) => {
            // SAFETY: a plain signal to the child we started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} did not end within {LIMIT:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `path` as editors save: a new file in the same directory, renamed over it.
fn replace(path: &Path, contents: &str) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.new"));
    std::fs::write(&tmp, contents).expect("write the new file");
    std::fs::rename(&tmp, path).expect("rename it over the old one");
}

/// A `testarena serve` process, with its stderr followed line by line.
struct Served {
    child: Option<Child>,
    /// Where it answers, `127.0.0.1:port`.
    addr: String,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stderr line so far.
    seen: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    http: reqwest::Client,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `cmd` (a `serve` command) and waits until it says it is serving.
async fn serve(mut cmd: Command) -> Served {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::unbounded_channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        // Reads to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        })
    };
    let mut served = Served {
        child: Some(child),
        addr: String::new(),
        lines,
        seen,
        reader: Some(reader),
        http: testarena::http_client()
            .timeout(LIMIT)
            .build()
            .expect("http client"),
    };
    let line = served
        .wait_line("the server to say it is serving", |l| l.contains("serving"))
        .await;
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    served.addr = addr.replace("0.0.0.0", "127.0.0.1");
    served
}

impl Served {
    fn log(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    /// The next stderr line that satisfies `wanted`, within `limit`; `None` after it.
    async fn next_line_within(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let lines = &mut self.lines;
        let found = tokio::time::timeout(limit, async {
            while let Some(line) = lines.recv().await {
                if wanted(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => Some(line),
            Ok(None) => panic!(
                "the server exited ({:?}); it logged:\n{}",
                self.child.as_mut().map(Child::wait),
                self.log()
            ),
            Err(_) => None,
        }
    }

    /// The next stderr line that satisfies `wanted`; fails after [`LIMIT`].
    async fn wait_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        match self.next_line_within(LIMIT, wanted).await {
            Some(line) => line,
            None => panic!(
                "waited {LIMIT:?} for {what}; the server logged:\n{}",
                self.log()
            ),
        }
    }

    /// `GET /api/queues`, with `token` as the bearer token if any: the status and the body.
    async fn list(&self, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("http://{}/api/queues", self.addr));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.expect("the server answers");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The status `GET /api/queues` gets with each token.
    async fn statuses(&self, tokens: &[&str]) -> Vec<u16> {
        let mut out = Vec::new();
        for token in tokens {
            out.push(self.list(Some(token)).await.0);
        }
        out
    }

    /// Waits until `GET /api/queues` with each of `tokens` gets `expected`, looking again after
    /// each `configuration reloaded` line: one save can make the watcher reload more than once,
    /// so a line from an earlier save may come first. Fails after [`LIMIT`].
    async fn until_statuses(&mut self, what: &str, tokens: &[&str], expected: &[u16]) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let now = self.statuses(tokens).await;
            if now == expected {
                return;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let reloaded = self
                .next_line_within(left, |l| l.contains("configuration reloaded"))
                .await;
            assert!(
                reloaded.is_some(),
                "{what}: the tokens got {now:?}, not {expected:?}, within {LIMIT:?}; the server logged:\n{}",
                self.log()
            );
        }
    }

    /// Replaces the config file and waits for the server to reload it. The watcher is in place
    /// before the server says it is serving, so one save is enough.
    async fn save_until_reloaded(&mut self, path: &Path, contents: &str) {
        replace(path, contents);
        self.wait_line("the reload of the saved file", |l| {
            l.contains("configuration reloaded")
        })
        .await;
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: a plain signal to the child we started.
        unsafe { libc::kill(pid as i32, signal) };
    }

    /// Stops the server with SIGTERM; its exit status (killed and failed after [`LIMIT`]), and
    /// everything it logged.
    fn stop(mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(LIMIT) {
            Ok(status) => status.expect("exit status"),
            Err(_) => {
                // SAFETY: a plain signal to the child we started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!(
                    "the server did not stop within {LIMIT:?} of SIGTERM; it logged:\n{}",
                    self.log()
                );
            }
        };
        // Its stderr is closed now: the reader has every line.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.log())
    }
}

/// A token made by `testarena token new NAME --scope SCOPE`: the token and its TOML entry.
fn token_new(name: &str, scope: &str) -> (String, String) {
    let mut cmd = testarena();
    cmd.args(["token", "new", name, "--scope", scope]);
    let out = run(cmd);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let [token, entry] = lines[..] else {
        panic!("`token new` prints the token, then the entry: {stdout:?}");
    };
    assert!(token.starts_with("ta_"), "{token}");
    assert!(
        entry.contains(&format!("name = \"{name}\""))
            && entry.contains(&format!("scope = \"{scope}\""))
            && entry.contains("hash = \"sha256:")
            && !entry.contains(token),
        "{entry}"
    );
    assert!(
        text(&out.stderr).contains("[auth]"),
        "{}",
        text(&out.stderr)
    );
    (token.to_owned(), entry.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_listen_on_every_address_without_a_token_or_an_explicit_anonymous() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let cfg = dir.path().join("config.toml");
    let refused = |cmd: Command, how: &str| {
        let out = run(cmd);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{how}: it started: {err}");
        assert!(
            err.contains("testarena token new") && err.contains("[auth]"),
            "{how}: the message says how to make a token: {err}"
        );
        assert!(!err.contains("serving"), "{how}: {err}");
    };

    // `--listen` on the command line, a file without [auth].
    std::fs::write(&cfg, "[worker]\nslots = 0\n").expect("config");
    let mut cmd = testarena();
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--root"])
        .arg(&root)
        .arg("--config")
        .arg(&cfg);
    refused(cmd, "--listen 0.0.0.0:0");

    // `listen` in the file.
    let open = "listen = \"0.0.0.0:0\"\n[worker]\nslots = 0\n";
    std::fs::write(&cfg, open).expect("config");
    let mut cmd = testarena();
    cmd.args(["serve", "--root"])
        .arg(&root)
        .arg("--config")
        .arg(&cfg);
    refused(cmd, "listen = \"0.0.0.0:0\"");

    // The same with anonymous access chosen explicitly: it starts, anyone may read.
    std::fs::write(&cfg, format!("{open}[auth]\nanonymous = \"read\"\n")).expect("config");
    let mut cmd = testarena();
    cmd.args(["serve", "--root"])
        .arg(&root)
        .arg("--config")
        .arg(&cfg);
    let server = serve(cmd).await;
    let (status, body) = server.list(None).await;
    assert_eq!(status, 200, "{body}");
    let r = server
        .http
        .post(format!("http://{}/api/queues", server.addr))
        .json(&serde_json::json!({"repo": "https://git.example/fw.git", "environment": "esp32"}))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(r.status(), 401, "an anonymous write");
    let (status, log) = server.stop();
    assert!(status.success(), "a graceful stop: {status:?}\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_its_token_from_the_environment_or_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (token, entry) = token_new("ci", "write");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[worker]\nslots = 0\n\n[auth]\nanonymous = \"read\"\ntokens = [\n  {entry}\n]\n"),
    )
    .expect("config");
    let mut cmd = testarena();
    // Port 0: the server says where it listens (a port chosen beforehand could be taken).
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--config")
        .arg(&cfg);
    let server = serve(cmd).await;
    let url = format!("http://{}", server.addr);
    let enqueue = |id: &str| {
        let mut cmd = testarena();
        cmd.args([
            "enqueue",
            "--server",
            &url,
            "--repo",
            "https://git.example/fw.git",
            "--env",
            "esp32",
            "--id",
            id,
            "--json",
        ]);
        cmd
    };

    // No token: refused, and the message says what to do.
    let out = run(enqueue("no-token"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "refused: {}", text(&out.stdout));
    assert!(
        err.contains("token") && err.contains("TESTARENA_TOKEN") && err.contains("401"),
        "{err}"
    );

    // TESTARENA_TOKEN.
    let mut cmd = enqueue("from-env");
    cmd.env("TESTARENA_TOKEN", &token);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q: Value = serde_json::from_slice(&out.stdout).expect("the queue as JSON");
    assert_eq!(q["id"], "from-env", "{q:#}");

    // --token-file, and TESTARENA_TOKEN_FILE (the file may end with a newline).
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).expect("token file");
    let mut cmd = enqueue("from-file");
    cmd.arg("--token-file").arg(&file);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut cmd = testarena();
    cmd.args(["abort", "from-file", "--server", &url, "--json"])
        .env("TESTARENA_TOKEN_FILE", &file);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q: Value = serde_json::from_slice(&out.stdout).expect("the queue as JSON");
    assert_eq!(q["status"], "aborted", "{q:#}");

    // A token the server does not know: refused, and it says so.
    let wrong = NewToken::generate("ci", Scope::Write)
        .expect("a token")
        .token;
    let mut cmd = enqueue("wrong-token");
    cmd.env("TESTARENA_TOKEN", &wrong);
    let out = run(cmd);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(err.contains("not valid"), "{err}");

    // Only the enqueues with the good token made queues.
    let (status, page) = server.list(None).await;
    assert_eq!(status, 200);
    let mut ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|q| q["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["from-env", "from-file"], "{page:#}");

    let (status, log) = server.stop();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        !log.contains(&token) && !log.contains(&wrong),
        "a token was logged:\n{log}"
    );
}

/// The config file for the live-reload test: `listen`, and `tokens` (TOML entries).
fn live_config(listen: &str, tokens: &[&str]) -> String {
    format!(
        "listen = \"{listen}\"\n\n[worker]\nslots = 0\n\n[auth]\nanonymous = \"none\"\ntokens = [\n{}]\n",
        tokens
            .iter()
            .map(|t| format!("  {t}\n"))
            .collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_added_to_the_file_works_without_a_restart_and_a_broken_edit_is_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = NewToken::generate("reader-a", Scope::Read).expect("token a");
    let b = NewToken::generate("reader-b", Scope::Read).expect("token b");
    let cfg = dir.path().join("config.toml");
    // Port 0: the server says where it listens (a port chosen beforehand could be taken).
    let listen = "127.0.0.1:0";
    std::fs::write(&cfg, live_config(listen, &[&a.entry])).expect("config");
    // `listen` comes from the file (no --listen), so that a change of it in the file counts.
    let mut cmd = testarena();
    cmd.arg("serve")
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--config")
        .arg(&cfg);
    let mut server = serve(cmd).await;

    // B is not configured yet: 401 (as is no token at all); A reads.
    let (status, body) = server.list(Some(&b.token)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_token", "{body}");
    let (status, body) = server.list(None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    assert_eq!(server.statuses(&[&a.token]).await, [200]);

    // B added, the file saved as an editor does: B reads, without a restart; A still does.
    server
        .save_until_reloaded(&cfg, &live_config(listen, &[&a.entry, &b.entry]))
        .await;
    server
        .until_statuses("B added", &[&b.token, &a.token], &[200, 200])
        .await;

    // A broken edit: logged with the file and the key; the previous configuration stays.
    replace(&cfg, "[auth]\ntokens = [{ name = \"x\" }]\n");
    let line = server
        .wait_line("the broken file to be refused", |l| {
            l.contains("configuration not reloaded")
        })
        .await;
    assert!(
        line.contains(&cfg.display().to_string()) && line.contains("auth.tokens[0].scope"),
        "{line}"
    );
    assert_eq!(
        server.statuses(&[&b.token, &a.token]).await,
        [200, 200],
        "after a broken edit"
    );
    replace(&cfg, "[auth\n");
    let line = server
        .wait_line("the invalid TOML to be refused", |l| {
            l.contains("configuration not reloaded")
        })
        .await;
    assert!(line.contains(&cfg.display().to_string()), "{line}");
    assert_eq!(
        server.statuses(&[&b.token, &a.token]).await,
        [200, 200],
        "after invalid TOML"
    );

    // `listen` changed in the file: the log says it needs a restart, and the server keeps
    // answering where it started (`server.addr`), with the rest of the file applied: A removed.
    replace(&cfg, &live_config("127.0.0.1:9", &[&b.entry]));
    let line = server
        .wait_line("the warning about listen", |l| {
            l.contains("takes effect only after a restart")
        })
        .await;
    assert!(line.contains("listen"), "{line}");
    server
        .until_statuses("A removed", &[&b.token, &a.token], &[200, 401])
        .await;

    // SIGHUP. The file becomes a link to a file in another directory, which the watcher does
    // not see change (as with configuration managed through links): only SIGHUP reloads it.
    let elsewhere_dir = dir.path().join("managed");
    std::fs::create_dir(&elsewhere_dir).expect("dir");
    let real = elsewhere_dir.join("testarena.toml");
    std::fs::write(&real, live_config(listen, &[&a.entry, &b.entry])).expect("config");
    let link = dir.path().join(".config.toml.link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    std::fs::rename(&link, &cfg).expect("the link replaces the file");
    server
        .until_statuses("the link read", &[&a.token, &b.token], &[200, 200])
        .await;
    replace(&real, &live_config(listen, &[&a.entry]));
    server.signal(libc::SIGHUP);
    let line = server
        .wait_line("the reload on SIGHUP", |l| {
            l.contains("configuration reloaded") && l.contains("SIGHUP")
        })
        .await;
    assert!(!line.contains("not reloaded"), "{line}");
    assert_eq!(
        server.statuses(&[&a.token, &b.token]).await,
        [200, 401],
        "after SIGHUP: B gone"
    );

    let (status, log) = server.stop();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        !log.contains(&a.token) && !log.contains(&b.token),
        "a token was logged:\n{log}"
    );
}

/// A `SIGHUP` at once after the server says it is serving reloads it; it does not end the
/// process (its default action), nor is it lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_right_after_start_reloads_and_does_not_kill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = NewToken::generate("reader-a", Scope::Read).expect("token a");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, live_config("127.0.0.1:0", &[&a.entry])).expect("config");
    let mut cmd = testarena();
    cmd.arg("serve")
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--config")
        .arg(&cfg);
    let mut server = serve(cmd).await;
    server.signal(libc::SIGHUP);
    server
        .wait_line("the reload on SIGHUP", |l| {
            l.contains("configuration reloaded") && l.contains("SIGHUP")
        })
        .await;
    assert_eq!(server.statuses(&[&a.token]).await, [200]);
    let (status, log) = server.stop();
    assert!(status.success(), "{status:?}\n{log}");
}
