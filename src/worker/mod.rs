//! The worker: an event-driven scheduler and the per-queue pipeline.
//!
//! - `scheduler` reacts to the change feed; `try_run_next` claims and starts one queue
//! - `handle`    what the API may know of running queues (abort, waiting reasons)
//! - `pipeline`  one queue's run: checkout, build, tasks, outcome
//! - `checkout`  git mirror cache and checkout (argv only); `mirror` the cache's paths and locks
//! - `tasks`     scenarios of a queue: validation, one board per scenario, results and reports
//! - `board`     the simulator as the runner's console; `<run>` steps as the runner's host
//! - `step`      what the steps share (log, cancellation, limits)

mod board;
mod checkout;
mod ending;
pub mod handle;
mod mirror;
mod pipeline;
mod scheduler;
mod step;
mod tasks;

pub use checkout::{clone_mirror_argv, fetch_argv, resolve_argv};
pub use ending::{abort_waiting, end_queue};
pub use handle::WorkerHandle;
pub use scheduler::Scheduler;
pub use tasks::write_queue_report;

use tokio_util::task::TaskTracker;

use crate::state::AppState;

/// The worker loop, until the server shuts down; the tracker also holds every run.
pub async fn run(state: AppState, tracker: TaskTracker) {
    Scheduler::new(state, tracker).run().await;
}
