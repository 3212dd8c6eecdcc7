//! One supervised run: spawn, forward every line, and end on exit, timeout, silence or
//! cancellation, stopping the whole process group in the last three cases.

use std::fmt;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::child::Child;
use super::error::ExecError;
use super::exit::Exit;
use super::lines::Line;
use super::spec::Spec;
use super::{DEFAULT_GRACE, DEFAULT_MAX_LINE};

/// Limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole run, from spawn to exit.
    pub timeout: Option<Duration>,
    /// The longest time without an output line (the no-output watchdog).
    pub silence: Option<Duration>,
    /// Time between `SIGTERM` and `SIGKILL` when the run is stopped.
    pub grace: Duration,
    /// Longest line delivered in one piece, in bytes.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: None,
            silence: None,
            grace: DEFAULT_GRACE,
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

/// How a run ended. Every variant carries the leader's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The child exited by itself.
    Exited(Exit),
    /// The timeout passed; the child was stopped.
    TimedOut(Exit),
    /// No line arrived for the silence limit; the child was stopped.
    Silent(Exit),
    /// The cancellation token fired; the child was stopped (or never started).
    Cancelled(Exit),
}

impl Ending {
    /// The child exited by itself with code 0.
    pub fn success(&self) -> bool {
        matches!(self, Ending::Exited(exit) if exit.success())
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Exited(exit) => exit.fmt(f),
            Ending::TimedOut(_) => f.write_str("timed out"),
            Ending::Silent(_) => f.write_str("no output for too long"),
            Ending::Cancelled(_) => f.write_str("cancelled"),
        }
    }
}

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy)]
enum Reason {
    TimedOut,
    Silent,
    Cancelled,
}

/// Runs `spec` to its end, calling `on_line` for every output line (stdout and stderr in
/// arrival order). Returns after the process group is gone and every line was delivered.
pub async fn run(
    spec: &Spec,
    limits: &Limits,
    cancel: &CancellationToken,
    mut on_line: impl FnMut(Line),
) -> Result<Ending, ExecError> {
    if cancel.is_cancelled() {
        return Ok(Ending::Cancelled(Exit::NEVER_STARTED));
    }
    let (mut child, mut lines) = Child::spawn(spec, limits.max_line)?;
    child.set_grace(limits.grace);
    let deadline = limits.timeout.map(|timeout| Instant::now() + timeout);
    let mut quiet_until = limits.silence.map(|silence| Instant::now() + silence);
    let mut open = true;

    let reason = {
        let mut waiting = pin!(child.wait());
        loop {
            // Biased: a child that prints without pause must not starve its own timeout.
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Reason::Cancelled,
                () = sleep_until(deadline) => break Reason::TimedOut,
                () = sleep_until(quiet_until) => break Reason::Silent,
                line = lines.recv(), if open => match line {
                    Some(line) => {
                        quiet_until = limits.silence.map(|silence| Instant::now() + silence);
                        on_line(line);
                    }
                    None => open = false,
                },
                exit = &mut waiting => {
                    drain(&mut lines, &mut on_line).await;
                    return Ok(Ending::Exited(exit));
                }
            }
        }
    };

    tracing::debug!(program = spec.program(), ?reason, "stopping child");
    let exit = {
        // Lines keep flowing while the child shuts down, so it never blocks on a full pipe.
        let mut stopping = pin!(child.stop(limits.grace));
        loop {
            tokio::select! {
                exit = &mut stopping => break exit,
                line = lines.recv(), if open => match line {
                    Some(line) => on_line(line),
                    None => open = false,
                },
            }
        }
    };
    drain(&mut lines, &mut on_line).await;
    Ok(match reason {
        Reason::TimedOut => Ending::TimedOut(exit),
        Reason::Silent => Ending::Silent(exit),
        Reason::Cancelled => Ending::Cancelled(exit),
    })
}

/// Delivers the remaining lines; the channel closes shortly after the group is gone.
async fn drain(lines: &mut mpsc::Receiver<Line>, on_line: &mut impl FnMut(Line)) {
    while let Some(line) = lines.recv().await {
        on_line(line);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
