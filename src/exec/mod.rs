//! Subprocess supervision: the only place in the crate that starts processes.
//!
//! A command is an argv ([`Spec`]), never a shell string built from input; [`Spec::shell`] exists
//! for commands that a user wrote as a shell line (scenario `<run>`) and passes that line as one
//! argument to `sh -c`.
//!
//! Every child runs in its own process group. Its stdout and stderr are read line by line (with a
//! maximum line length, invalid UTF-8 kept lossily) into one bounded channel that keeps their
//! arrival order and never drops a line: a slow consumer slows the readers instead.
//!
//! Stopping a child signals the whole group: `SIGTERM`, a grace period, then `SIGKILL`, and it
//! returns only when the leader is reaped and no live process of the group remains. When a leader
//! exits by itself, leftovers of its group are stopped the same way, so no grandchild outlives
//! its parent step. [`run`] adds the whole-run timeout, the no-output watchdog and cancellation.
//!
//! - `spec`   what to run: argv, working directory, environment, stdin
//! - `error`  the spawn error
//! - `exit`   how a child ended
//! - `lines`  the line splitter and the pipe readers
//! - `group`  process-group signals, the `/proc` scan, the subreaper
//! - `child`  a supervised child: spawn, wait, stop
//! - `run`    one run with limits: timeout, silence watchdog, cancellation
//! - `sandbox` the executor seam: repository code confined (bubblewrap) or not
//! - `slurm`  Slurm as an executor: allocations, job steps, cancel by job id

mod child;
mod error;
mod exit;
mod group;
mod lines;
mod run;
mod sandbox;
pub mod slurm;
mod spec;

#[cfg(test)]
mod child_tests;
#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod test_support;

pub use child::Child;
pub use error::ExecError;
pub use exit::Exit;
pub use group::become_subreaper;
pub use lines::{Line, Stream};
pub use run::{Ending, Limits, run};
pub use sandbox::{Bwrap, Confinement, Executor, SandboxError, Unavailable, Unconfined};
pub use spec::{Spec, StopFirst};

use std::time::Duration;

/// Longest line delivered in one piece, in bytes; a longer line arrives in several pieces.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Time between `SIGTERM` and `SIGKILL` when the caller names none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
