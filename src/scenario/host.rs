//! Host commands (`<run>`) as the runner sees them.

use std::future::Future;
use std::time::Duration;

/// How a host command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by the timeout).
    Signalled(i32),
    /// Killed because it outlived its timeout.
    TimedOut,
    /// Killed because the run was cancelled.
    Cancelled,
    /// Could not be run at all (spawn failed, I/O error); the text says why.
    Error(String),
}

/// Runs host commands in the checkout.
pub trait Host: Send {
    /// Runs `sh -c command` in the checkout; each output line goes to on_line; kills the command (process group) on timeout.
    ///
    /// The runner may drop the returned future before it completes (the board exited, the run
    /// was cancelled); an implementation must then stop the command as well, e.g. with a guard
    /// that kills the process group on drop.
    fn run(
        &mut self,
        command: &str,
        timeout: Duration,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> impl Future<Output = HostOutcome> + Send;
}
