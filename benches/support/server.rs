//! What the memory benches share: the real `testarena` binary started on a free port with its
//! own root (a separate process, so only the server is measured), its resident set from
//! `/proc/PID/status`, and a sampler of its peak. Its stderr goes to a file in the temporary
//! directory, or to `BENCH_SERVER_LOG` when set; it logs at `warn`, or at `BENCH_SERVER_RUST_LOG`
//! when set (`info` is the server's default: one access log line per request). `BENCH_SERVER_BIN`
//! runs another build of the binary (to compare two builds with the same bench).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The real server binary, on a free port with its own root.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub client: reqwest::Client,
    /// From the spawn to the first `/healthz` that answered 200.
    pub startup: Duration,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(config: &str) -> Server {
        Server::start_with(config, |_| {}).await
    }

    /// Starts the server after `prepare` has been given its (not yet existing) root, e.g. to put
    /// a store file there.
    pub async fn start_with(config: &str, prepare: impl FnOnce(&std::path::Path)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        prepare(&root);
        // In a directory of its own: the server watches the config file's directory, and the
        // log written beside it would wake the watcher at every line.
        let config_file = dir.path().join("etc/config.toml");
        std::fs::create_dir_all(dir.path().join("etc")).expect("config directory");
        std::fs::write(&config_file, config).expect("config");
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr")
        };
        let log = std::fs::File::create(
            std::env::var("BENCH_SERVER_LOG")
                .map_or_else(|_| dir.path().join("server.log"), PathBuf::from),
        )
        .expect("server log");
        let spawned = Instant::now();
        let bin = std::env::var_os("BENCH_SERVER_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_testarena")),
            PathBuf::from,
        );
        let child = Command::new(bin)
            .arg("serve")
            .arg("--root")
            .arg(&root)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--config")
            .arg(&config_file)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the testarena binary starts");
        let mut server = Server {
            child,
            addr,
            root,
            client: testarena::http_client().build().expect("http client"),
            startup: Duration::ZERO,
            _dir: dir,
        };
        let deadline = spawned + Duration::from_secs(120);
        loop {
            let up = server.client.get(server.url("/healthz")).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                server.startup = spawned.elapsed();
                return server;
            }
            assert!(
                server.child.try_wait().expect("wait").is_none(),
                "the server exited before it answered"
            );
            assert!(Instant::now() < deadline, "the server did not come up");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn enqueue(&self, body: serde_json::Value) {
        let r = self
            .client
            .post(self.url("/api/queues"))
            .json(&body)
            .send()
            .await
            .expect("enqueue");
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }

    /// Follows the queue's log stream until its `end` event, then returns the queue's JSON.
    pub async fn run_to_end(&self, id: &str) -> serde_json::Value {
        use futures_util::StreamExt;
        let stream = self
            .client
            .get(self.url(&format!("/api/queues/{id}/log/stream")))
            .send()
            .await
            .expect("log stream");
        let mut body = stream.bytes_stream();
        let mut seen = Vec::new();
        while let Some(chunk) = body.next().await {
            seen.extend_from_slice(&chunk.expect("stream"));
            if seen.windows(10).any(|w| w == b"event: end") {
                break;
            }
        }
        let r = self
            .client
            .get(self.url(&format!("/api/queues/{id}")))
            .send();
        r.await.expect("queue").json().await.expect("queue json")
    }

    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await;
        r.expect("metrics").text().await.expect("metrics text")
    }

    pub fn rss(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:") * 1024
    }

    /// The median of a few samples, after a moment for the allocator to give memory back.
    pub async fn settled_rss(&self) -> u64 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut samples = Vec::new();
        for _ in 0..5 {
            samples.push(self.rss() as f64);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        median(samples) as u64
    }

    /// Samples RSS every 2 ms until `stop`; returns the highest.
    pub fn sample_peak(&self) -> Sampler {
        let pid = self.child.id();
        let running = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(0));
        let task = {
            let (running, peak) = (running.clone(), peak.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    peak.fetch_max(status_kib(pid, "VmRSS:") * 1024, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        Sampler {
            running,
            peak,
            task,
        }
    }

    pub async fn stop(mut self) {
        // SAFETY: a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let child = &mut self.child;
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server behind (a panic, or after `stop`, when it is already gone).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Sampler {
    running: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub async fn stop(self) -> u64 {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.expect("sampler");
        self.peak.load(Ordering::Relaxed)
    }
}

/// A `kB` field of `/proc/PID/status`.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The middle value (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Milliseconds since the epoch of an RFC 3339 time field `k` of `v` (the API's times).
pub fn millis(v: &serde_json::Value, k: &str) -> i64 {
    let at = time::OffsetDateTime::parse(
        v[k].as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The demo firmware repository (`fixtures/demo-repo.sh`) under `dir`.
pub fn demo_repo(dir: &std::path::Path) -> PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-repo.sh");
    let out = Command::new(script)
        .arg(dir.join("lab"))
        .output()
        .expect("fixtures/demo-repo.sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
