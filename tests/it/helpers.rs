//! Shared test fixtures: a server on 127.0.0.1:0 with its own temporary root, waiting helpers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use testarena::config::Config;
use testarena::server::Server;
use testarena::state::{AppState, Shared};

/// A running server with its own root; stopped (gracefully) by `stop` or on drop of the runtime.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub client: reqwest::Client,
    pub root: PathBuf,
    server: Option<Server>,
    toml: String,
    _dir: tempfile::TempDir,
}

/// Extra TOML laid over the defaults; the root and listen address are set by the helper.
pub async fn spawn_app_with(extra_toml: &str) -> TestApp {
    spawn_app_with_config(extra_toml, |_| {}).await
}

/// Like `spawn_app_with`, with `tweak` applied to the configuration (its root already set).
pub async fn spawn_app_with_config(extra_toml: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start_tweaked(listener, root, extra_toml.to_owned(), dir, tweak).await
}

async fn start_on(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    toml: String,
    dir: tempfile::TempDir,
) -> TestApp {
    start_tweaked(listener, root, toml, dir, |_| {}).await
}

async fn start_tweaked(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    toml: String,
    dir: tempfile::TempDir,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::from_toml("test.toml", &toml).expect("test config");
    config.root = root.clone();
    allow_temp_repos(&mut config, &toml);
    tweak(&mut config);
    let server = Server::start(config, listener)
        .await
        .expect("server starts");
    TestApp {
        addr: server.addr,
        state: server.state.clone(),
        client: testarena::http_client().build().expect("http client"),
        root,
        server: Some(server),
        toml,
        _dir: dir,
    }
}

/// A server that was stopped with its root and address kept, to be started again.
pub struct Stopped {
    addr: SocketAddr,
    root: PathBuf,
    toml: String,
    dir: tempfile::TempDir,
}

impl Stopped {
    /// A new server on the same address and root: to a browser or a client, a restart.
    pub async fn start_again(self) -> TestApp {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the stopped server's address is free again");
        start_on(listener, self.root, self.toml, self.dir).await
    }
}

/// A server whose worker is paused (`slots = 0`): queues stay waiting.
pub async fn spawn_app() -> TestApp {
    spawn_app_with("[worker]\nslots = 0\n").await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits (event-driven, on the store's change feed) until queue `id` has `status`.
    pub async fn wait_status(&self, id: &str, status: &str, limit: Duration) -> Value {
        let mut changes = self.state.store.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (_, q) = self.get_json(&format!("/api/queues/{id}")).await;
            if q["status"] == status {
                return q;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, changes.recv()).await {
                Ok(_) => {}
                Err(_) => panic!("queue {id} did not reach {status} within {limit:?}; now: {q:#}"),
            }
        }
    }

    /// Aborts queue `id` through the API; expects 200 and `aborted`; returns how long it took.
    pub async fn abort(&self, id: &str) -> std::time::Duration {
        let t0 = std::time::Instant::now();
        let r = self
            .client
            .post(self.url(&format!("/api/queues/{id}/abort")))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        let q: Value = r.json().await.expect("json");
        assert_eq!(q["status"], "aborted", "{q:#}");
        t0.elapsed()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Stops the server gracefully but keeps its root and address for `start_again`.
    pub async fn go_down(self) -> Stopped {
        let TestApp {
            addr,
            state,
            root,
            server,
            toml,
            _dir,
            ..
        } = self;
        // The store's file stays open while any handle to it lives.
        drop(state);
        if let Some(server) = server {
            server.stop().await;
        }
        Stopped {
            addr,
            root,
            toml,
            dir: _dir,
        }
    }
}

/// Tests make their repositories in temporary directories: those are allowed on top of the
/// defaults, unless the test's TOML sets `[worker] allowed_repos` itself.
pub fn allow_temp_repos(config: &mut Config, toml: &str) {
    if !sets_allowed_repos(toml) {
        let temp = std::env::temp_dir().display().to_string();
        config
            .worker
            .allowed_repos
            .push(&temp)
            .expect("the temp dir is absolute");
    }
}

/// Whether `toml` sets `[worker] allowed_repos`.
pub fn sets_allowed_repos(toml: &str) -> bool {
    let table: toml::Table = toml::from_str(toml).expect("test TOML");
    table
        .get("worker")
        .and_then(|w| w.get("allowed_repos"))
        .is_some()
}

/// An `AppState` with no server and no worker (for router tests with `oneshot`).
pub fn test_state(extra_toml: &str) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::from_toml("test.toml", extra_toml).expect("test config");
    config.root = dir.path().to_owned();
    allow_temp_repos(&mut config, extra_toml);
    std::fs::create_dir_all(dir.path().join("queues")).expect("queues dir");
    let store = testarena::store::Store::open(&dir.path().join("testarena.redb")).expect("store");
    let state = AppState::new(Shared {
        logs: testarena::logs::LogHub::new(&config.root),
        reports: testarena::report::Reports::new().expect("templates"),
        sessions: testarena::auth::Sessions::new(config.auth.session_ttl),
        mirrors: testarena::worker::Mirrors::new(&config.root),
        live: testarena::config::LiveConfig::new(config),
        store,
        worker: testarena::worker::WorkerHandle::default(),
        metrics: testarena::metrics::Metrics::new(),
        sandbox: std::sync::Arc::new(testarena::exec::Unconfined),
        shutdown: tokio_util::sync::CancellationToken::new(),
    });
    (state, dir)
}

/// The program `bin` from `PATH` (or the `sbin` directories, which a user's `PATH` may lack).
/// Fails (never skips) when it is missing, naming the Debian package that provides it;
/// `scripts/test` installs them.
pub fn require_tool(bin: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs {bin} (Debian package {package}); scripts/test installs it, or \
                 run `apt-get install {package}`"
            )
        })
}
