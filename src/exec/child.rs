//! A supervised child: spawned in its own process group, its output pumped into a line
//! channel, waited for and stopped as a group so that nothing it started outlives it.

use std::time::Duration;

use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::ExecError;
use super::exit::Exit;
use super::lines::{Line, Stream, pump};
use super::spec::Spec;
use super::{DEFAULT_GRACE, group};

/// Lines buffered between the pipe readers and the consumer before the readers wait.
const CHANNEL: usize = 1024;

/// How long to wait for a group to empty after `SIGKILL` before giving up with a warning
/// (only a process stuck in the kernel takes that long).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A running child process and its process group.
///
/// Dropping a `Child` whose group may still run kills the group with `SIGKILL`.
#[derive(Debug)]
pub struct Child {
    inner: tokio::process::Child,
    pid: u32,
    pgid: i32,
    stdin: Option<ChildStdin>,
    /// Grace between `SIGTERM` and `SIGKILL` for leftovers of a leader that exited by itself.
    grace: Duration,
    /// How the leader ended, once it is reaped.
    leader: Option<Exit>,
    /// We signalled the leader while it ran.
    stopped: bool,
    /// `SIGTERM` was sent to the group; `SIGKILL` follows at this instant.
    kill_at: Option<Instant>,
    /// No live process of the group remains (the group id may be reused from now on).
    group_empty: bool,
    /// Tells the pipe readers to give up on end of file after a short while.
    drain: CancellationToken,
    /// The work's own stop where it runs elsewhere, awaited once before the local signals.
    stop_first: Option<super::spec::StopFirst>,
}

impl Child {
    /// Starts `spec` in a new process group. Lines from stdout and stderr arrive on the returned
    /// channel in their order of arrival, cut at `max_line` bytes; the channel closes when both
    /// pipes are closed (or shortly after the group is gone). Must be called inside a tokio
    /// runtime.
    ///
    /// Read the channel while waiting, or drop it: the channel is bounded, so a full channel
    /// pauses the readers and, once the pipe is full too, the child.
    pub fn spawn(spec: &Spec, max_line: usize) -> Result<(Child, mpsc::Receiver<Line>), ExecError> {
        let mut inner = spec
            .command()?
            .spawn()
            .map_err(|source| spawn_error(spec, source))?;
        let Some(pid) = inner.id() else {
            return Err(ExecError::Spawn {
                program: spec.program().to_owned(),
                source: std::io::Error::other("the child has no process id"),
            });
        };
        let pgid = libc::pid_t::try_from(pid).map_err(|_| ExecError::Spawn {
            program: spec.program().to_owned(),
            source: std::io::Error::other("process id out of range"),
        })?;
        let (tx, rx) = mpsc::channel(CHANNEL);
        let drain = CancellationToken::new();
        if let Some(stdout) = inner.stdout.take() {
            let tx = tx.clone();
            tokio::spawn(pump(stdout, Stream::Stdout, max_line, tx, drain.clone()));
        }
        if let Some(stderr) = inner.stderr.take() {
            tokio::spawn(pump(stderr, Stream::Stderr, max_line, tx, drain.clone()));
        }
        let stdin = inner.stdin.take();
        let child = Child {
            inner,
            pid,
            pgid,
            stdin,
            grace: DEFAULT_GRACE,
            leader: None,
            stopped: false,
            kill_at: None,
            group_empty: false,
            drain,
            stop_first: spec.stop_first.clone(),
        };
        Ok((child, rx))
    }

    /// Process id of the leader, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The stdin pipe, once, when the spec asked for one.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Sets the grace period used for leftovers of a leader that exits by itself
    /// (default [`DEFAULT_GRACE`]).
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Waits until the leader exits, then stops whatever is left of its group (`SIGTERM`, grace,
    /// `SIGKILL`). Returns once no live process of the group remains; it does not wait for the
    /// output channel, which closes by itself shortly after.
    ///
    /// Cancel-safe: dropped and called again, it resumes where it was.
    pub async fn wait(&mut self) -> Exit {
        let leader = match self.leader {
            Some(exit) => exit,
            None => {
                let exit = self.wait_leader().await;
                self.leader = Some(exit);
                exit
            }
        };
        if !self.group_empty {
            self.clean_group().await;
            self.group_empty = true;
        }
        self.drain.cancel();
        Exit {
            stopped: self.stopped,
            ..leader
        }
    }

    /// Stops the child: closes its stdin, sends `SIGTERM` to the group, waits up to `grace`,
    /// then sends `SIGKILL` to the group. Returns once the leader is reaped and no live process
    /// of the group remains. The exit is marked `stopped` when the leader was still running.
    ///
    /// Cancel-safe like [`Child::wait`]; a second call does not restart the grace period.
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        self.stdin = None;
        self.grace = grace;
        // Work that runs elsewhere stops there first, with its grace; then the relay here.
        if self.leader.is_none()
            && let Some(stop) = self.stop_first.take()
        {
            (stop.0)(grace).await;
        }
        if let Some(kill_at) = &mut self.kill_at {
            // Already stopping (a cancelled call, or leftovers): keep the earlier deadline.
            *kill_at = (*kill_at).min(Instant::now() + grace);
        } else if self.leader.is_none() {
            match self.inner.try_wait() {
                Ok(Some(status)) => self.leader = Some(Exit::from_status(status, false)),
                Ok(None) | Err(_) => {
                    self.stopped = true;
                    self.terminate();
                }
            }
        }
        self.wait().await
    }

    /// Sends `SIGTERM` to the group once; returns when `SIGKILL` is due.
    fn terminate(&mut self) -> Instant {
        let (pgid, grace) = (self.pgid, self.grace);
        *self.kill_at.get_or_insert_with(|| {
            group::signal(pgid, libc::SIGTERM);
            Instant::now() + grace
        })
    }

    /// Reaps the leader, killing the group when the `SIGKILL` deadline passes first.
    async fn wait_leader(&mut self) -> Exit {
        let status = match self.kill_at {
            None => self.inner.wait().await,
            Some(at) => {
                let exited = tokio::select! {
                    status = self.inner.wait() => Some(status),
                    () = tokio::time::sleep_until(at) => None,
                };
                match exited {
                    Some(status) => status,
                    None => {
                        group::signal(self.pgid, libc::SIGKILL);
                        self.inner.wait().await
                    }
                }
            }
        };
        match status {
            Ok(status) => Exit::from_status(status, false),
            Err(error) => {
                tracing::warn!(pid = self.pid, %error, "waiting for child failed");
                Exit {
                    code: None,
                    signal: None,
                    stopped: false,
                }
            }
        }
    }

    /// After the leader is reaped: stops what is left of the group and waits until it is empty.
    async fn clean_group(&mut self) {
        if !group::alive(self.pgid, self.pid) {
            return;
        }
        let kill_at = self.terminate();
        if group::wait_empty(self.pgid, self.pid, kill_at).await {
            return;
        }
        group::signal(self.pgid, libc::SIGKILL);
        if !group::wait_empty(self.pgid, self.pid, Instant::now() + KILL_WAIT).await {
            tracing::warn!(pgid = self.pgid, "process group still alive after SIGKILL");
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.drain.cancel();
        // An unreaped leader keeps the group id ours; after that, look before signalling.
        if !self.group_empty && (self.leader.is_none() || group::alive(self.pgid, self.pid)) {
            group::signal(self.pgid, libc::SIGKILL);
        }
    }
}

/// Names what failed: a missing working directory reports as "not found" too, so look.
fn spawn_error(spec: &Spec, source: std::io::Error) -> ExecError {
    if source.kind() == std::io::ErrorKind::NotFound && !spec.cwd.is_dir() {
        return ExecError::Cwd {
            path: spec.cwd.clone(),
            source,
        };
    }
    ExecError::Spawn {
        program: spec.program().to_owned(),
        source,
    }
}
