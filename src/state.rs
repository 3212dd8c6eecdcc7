//! The handles every part of the server shares: configuration, store, logs, reports, the
//! worker's handle, metrics, the sandbox and the shutdown token. Cheap to clone. It sits above
//! the HTTP layer (`api`) and the worker, which both take it; neither imports the other for it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, LiveConfig};
use crate::logs::LogHub;
use crate::report::Reports;
use crate::store::Store;
use crate::worker::handle::WorkerHandle;

/// Cheap handles shared by the HTTP handlers, the worker and the status poster: the
/// [`Shared`] handles behind one `Arc`, so a clone (axum clones the state for every layer and
/// extractor of every request) is one reference count, not one per handle.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// The configuration now (see [`AppState::config`]).
    pub live: LiveConfig,
    pub store: Store,
    pub logs: LogHub,
    pub reports: Reports,
    pub worker: WorkerHandle,
    /// The git mirrors' locks (the checkout and retention take them).
    pub mirrors: crate::worker::Mirrors,
    pub metrics: crate::metrics::Metrics,
    /// Dashboard sign-ins.
    pub sessions: crate::auth::Sessions,
    /// How repository code is run (sandboxed or not).
    pub sandbox: Arc<dyn crate::exec::Executor>,
    /// Cancelled when the server shuts down: SSE streams end on it.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// A snapshot of the configuration now: take it once per request.
    pub fn config(&self) -> Arc<Config> {
        self.live.get()
    }

    /// What the worker needs, with the configuration as it is now.
    pub fn worker_deps(&self) -> crate::worker::Deps {
        crate::worker::Deps {
            config: self.config(),
            store: self.store.clone(),
            logs: self.logs.clone(),
            reports: self.reports.clone(),
            runs: self.worker.clone(),
            mirrors: self.mirrors.clone(),
            metrics: self.metrics.clone(),
            sandbox: self.sandbox.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Retention, reading the configuration anew at each pass.
    pub fn retention(&self) -> crate::worker::Retention {
        crate::worker::Retention::new(
            self.live.clone(),
            self.store.clone(),
            self.mirrors.clone(),
            self.worker.clone(),
            self.metrics.clone(),
        )
    }
}
