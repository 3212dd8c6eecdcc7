//! Wiring: open the store, recover interrupted queues, start the worker and the HTTP server;
//! on shutdown stop them in order (HTTP and SSE end, children stopped, store closed).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api;
use crate::config::{Config, LiveConfig, SandboxMode};
use crate::exec::{Bwrap, Executor, Unavailable, Unconfined};
use crate::layout::Layout;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::model::Status;
use crate::reload::Source;
use crate::report::Reports;
use crate::state::{AppState, Shared};
use crate::store::Store;
use crate::worker::{self, WorkerHandle};

/// A started server. `stop` shuts it down gracefully.
pub struct Server {
    pub state: AppState,
    pub addr: SocketAddr,
    tracker: TaskTracker,
}

/// Creates the data root or says which setting to change.
fn prepare_root(config: &Config) -> anyhow::Result<()> {
    let root = &config.root;
    std::fs::create_dir_all(Layout::new(root).queues()).with_context(|| {
        format!(
            "cannot create the data root {}: choose a writable directory with --root or TESTARENA_ROOT",
            root.display()
        )
    })
}

impl Server {
    /// Opens everything and starts serving on `listener`.
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
        prepare_root(&config)?;
        let db_path = Layout::new(&config.root).store();
        let store = tokio::task::spawn_blocking(move || Store::open(&db_path))
            .await?
            .context("cannot open the store")?;
        // Every commit the writer makes is timed, recovery's too.
        let metrics = Metrics::new();
        store.time_commits(metrics.store_commit_time());
        // Before recovery: the queues it ends are counted (from the feed) and get their
        // statuses (they come after the commit statuses' position in the event table).
        let finished_changes = store.follow();
        let statuses_from = store
            .init_statuses_cursor()
            .await
            .context("cannot read the commit statuses' position")?;
        let recovered = store.recover(config.worker.max_attempts).await?;
        for q in &recovered {
            tracing::warn!(queue = %q.id, status = %q.status, attempt = q.attempt, "recovered a queue interrupted by a crash");
        }
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let sandbox = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || executor(&config)).await?
        };
        let state = AppState::new(Shared {
            sandbox,
            logs: LogHub::with_echo(&config.root, config.echo_logs),
            reports: Reports::new().context("cannot load the report templates")?,
            sessions: crate::auth::Sessions::new(config.auth.session_ttl),
            mirrors: worker::Mirrors::new(&config.root),
            live: LiveConfig::new(config),
            store,
            worker: WorkerHandle::default(),
            metrics,
            shutdown: shutdown.clone(),
        });
        // Queues that ran out of attempts ended `error` without a run to write their report.
        for q in recovered.iter().filter(|q| q.status.is_terminal()) {
            worker::write_queue_report(&state.worker_deps(), q).await;
        }
        let tracker = TaskTracker::new();
        tracker.spawn(worker::run(
            state.worker_deps(),
            state.live.clone(),
            tracker.clone(),
        ));
        tracker.spawn(worker::executors_at_start(
            state.config(),
            recovered.clone(),
            state.shutdown.clone(),
        ));
        tracker.spawn(count_finished(state.clone(), finished_changes));
        tracker.spawn(state.retention().run(state.shutdown.clone()));
        tracker.spawn(crate::statuses::run(
            state.live.clone(),
            state.store.clone(),
            statuses_from,
            state.shutdown.clone(),
        ));
        let app = api::router(state.clone());
        let nofile = crate::serve::raise_fd_limit();
        let max_connections = crate::serve::max_connections(nofile);
        tracing::debug!(nofile, max_connections, "connection limit");
        tracker.spawn(crate::serve::serve(
            listener,
            app,
            max_connections,
            shutdown.clone(),
        ));
        tracing::info!(%addr, "serving");
        Ok(Server {
            state,
            addr,
            tracker,
        })
    }

    /// Reloads the configuration when its file changes or on `SIGHUP`.
    pub fn watch_config(&self, reloader: crate::reload::Reloader) {
        self.tracker
            .spawn(reloader.run(self.state.live.clone(), self.state.shutdown.clone()));
    }

    /// Stops serving, stops running queues (they go back to waiting), closes the store.
    pub async fn stop(self) {
        self.state.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.state.store.close().await;
        tracing::info!("stopped");
    }
}

/// Counts every queue that reaches its final status, whoever moved it there (a run, an abort
/// while waiting, recovery), from the change feed.
async fn count_finished(state: AppState, mut changes: crate::store::Follower) {
    loop {
        let change = tokio::select! {
            () = state.shutdown.cancelled() => return,
            change = changes.next_queue(Status::is_terminal) => change,
        };
        match change {
            Some(queue) => state.metrics.finished(&queue),
            None => return,
        }
    }
}

/// Serves until `shutdown` completes, then stops gracefully. With a `source`, the configuration
/// is loaded again from it when its file changes or on `SIGHUP`.
pub async fn run(
    config: Config,
    source: Option<Source>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Before the server says it is serving: from then on a SIGHUP or an edit must reload.
    let reloader = source.map(crate::reload::Reloader::install);
    let server = Server::start(config, listener).await?;
    if let Some(reloader) = reloader {
        server.watch_config(reloader);
    }
    // Under systemd (Type=notify): the unit is started once the store is open and we listen.
    // Without NOTIFY_SOCKET this does nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd that the server is ready");
    }
    shutdown.await;
    tracing::info!("shutting down");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    server.stop().await;
    Ok(())
}

/// The executor `[sandbox]` asks for (all repository code runs through it), with its problem,
/// if any, logged once.
fn executor(config: &Config) -> Arc<dyn Executor> {
    match config.sandbox.mode {
        SandboxMode::None => {
            tracing::warn!(
                "[sandbox] mode = \"none\": repository code (build, simulate, <run> steps) runs \
                 unconfined as this server's user; use it only for repositories you trust"
            );
            Arc::new(Unconfined)
        }
        SandboxMode::Bwrap => match Bwrap::detect(&config.sandbox.program, hidden_paths(config)) {
            Ok(bwrap) => Arc::new(bwrap),
            Err(reason) => {
                tracing::error!("{reason}; every queue will end `error` until then");
                Arc::new(Unavailable { reason })
            }
        },
    }
}

/// What a sandboxed command must not see: the data root, the files the configuration and its
/// secrets came from, and the server user's credentials for git and ssh.
fn hidden_paths(config: &Config) -> Vec<PathBuf> {
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .map(|p| p.canonicalize().unwrap_or(p))
            .unwrap_or_else(|_| p.to_owned())
    };
    let mut hidden = vec![absolute(&config.root)];
    hidden.extend(config.private_files.iter().map(|p| absolute(p)));
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        for name in [
            ".ssh",
            ".gnupg",
            ".git-credentials",
            ".netrc",
            ".config/git",
            ".docker",
        ] {
            hidden.push(home.join(name));
        }
    }
    hidden
}
