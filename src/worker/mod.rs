//! The worker: an event-driven scheduler and the per-queue pipeline.
//!
//! - `scheduler` reacts to the change feed; `try_run_next` claims and starts one queue
//! - `handle`    what the API may know of running queues (abort, waiting reasons)
//! - `pipeline`  one queue's run: checkout, build, tasks, outcome
//! - `checkout`  git mirror cache and checkout (argv only); `mirror` the cache's paths and locks
//! - `retention` removes finished queues and unused mirrors beyond `[retention]`'s limits;
//!   `trash` removes trees and counts the space freed
//! - `tasks`     scenarios of a queue: validation, one board per scenario, results and reports
//! - `board`     the simulator as the runner's console; `<run>` steps as the runner's host
//! - `step`      what the steps share (log, cancellation, limits, where they run)
//! - `site`      where builds and boards run: this host, or the queue's Slurm allocation;
//!   `allocate` gets that allocation

mod allocate;
mod board;
mod checkout;
mod ending;
pub mod handle;
mod mirror;
mod pipeline;
mod retention;
mod scheduler;
mod site;
mod space;
mod step;
mod tasks;
mod trash;

pub use checkout::{clone_mirror_argv, fetch_argv, resolve_argv};
pub use ending::{abort_waiting, end_queue};
pub use handle::WorkerHandle;
pub use mirror::Mirrors;
pub use retention::{Pass, Retention};
pub use scheduler::Scheduler;
pub use site::at_start as executors_at_start;
pub use tasks::write_queue_report;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, LiveConfig};
use crate::exec::Executor;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::report::Reports;
use crate::store::Store;

/// What the worker uses of the server, and nothing else. Cheap to clone. `config` is one
/// snapshot: a run keeps the configuration it started with when the file is reloaded.
#[derive(Clone)]
pub struct Deps {
    pub config: Arc<Config>,
    pub store: Store,
    pub logs: LogHub,
    pub reports: Reports,
    /// The queues running now.
    pub runs: WorkerHandle,
    /// The git mirrors' locks, shared by every checkout and by retention.
    pub mirrors: Mirrors,
    pub metrics: Metrics,
    /// How repository code is run (sandboxed or not).
    pub sandbox: Arc<dyn Executor>,
    /// Cancelled when the server shuts down: runs stop and their queues wait again.
    pub shutdown: CancellationToken,
}

/// The worker loop, until the server shuts down; the tracker also holds every run. Each claim
/// reads the configuration as it is then.
pub async fn run(deps: Deps, config: LiveConfig, tracker: TaskTracker) {
    Scheduler::new(deps, config, tracker).run().await;
}
