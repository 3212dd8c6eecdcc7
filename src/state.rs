//! The handles every part of the server shares: configuration, store, logs, reports, the
//! worker's handle, metrics, the sandbox and the shutdown token. Cheap to clone. It sits above
//! the HTTP layer (`api`) and the worker, which both take it; neither imports the other for it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::logs::LogHub;
use crate::report::Reports;
use crate::store::Store;
use crate::worker::handle::WorkerHandle;

/// Cheap handles shared by the HTTP handlers, the worker and the status poster.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub logs: LogHub,
    pub reports: Reports,
    pub worker: WorkerHandle,
    pub metrics: crate::metrics::Metrics,
    /// How repository code is run (sandboxed or not).
    pub sandbox: Arc<dyn crate::exec::Executor>,
    /// Cancelled when the server shuts down: SSE streams end on it.
    pub shutdown: CancellationToken,
}
