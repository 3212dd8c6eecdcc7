//! A board: the environment's simulator as a supervised child, booted until its ready marker,
//! and the scenario runner's `Console` over its stdin/stdout. Also the runner's `Host` for
//! `<run>` steps, over supervised `sh -c` children.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::exec::{self, Child, Ending, Limits, Line, Spec};
use crate::logs::LogWriter;
use crate::scenario::{Console, ConsoleEvent, Host, HostOutcome};

/// A running simulator whose console the runner drives.
pub struct Board {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Line>,
    exited: Option<String>,
}

/// Why a board did not come up.
pub enum BootError {
    Spawn(String),
    Exited(String),
    Timeout(Duration),
    Cancelled,
}

impl Board {
    /// Starts the simulator and waits for `ready`; every line until then goes to the log.
    pub async fn boot(
        spec: &Spec,
        ready: &str,
        boot_timeout: Duration,
        max_line: usize,
        grace: Duration,
        log: &LogWriter,
        cancel: &CancellationToken,
    ) -> Result<Board, BootError> {
        let (mut child, lines) =
            Child::spawn(spec, max_line).map_err(|e| BootError::Spawn(e.to_string()))?;
        let stdin = child.take_stdin();
        let mut board = Board {
            child,
            stdin,
            lines,
            exited: None,
        };
        let deadline = tokio::time::sleep(boot_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    board.stop(grace).await;
                    return Err(BootError::Cancelled);
                }
                _ = &mut deadline => {
                    board.stop(grace).await;
                    return Err(BootError::Timeout(boot_timeout));
                }
                event = board.next_event() => match event {
                    ConsoleEvent::Line(line) => {
                        log.line(&line);
                        if line.contains(ready) {
                            return Ok(board);
                        }
                    }
                    ConsoleEvent::Exited(how) => return Err(BootError::Exited(how)),
                },
            }
        }
    }

    /// Closes the console (a board on stdio ends on end of input), then stops the group.
    pub async fn stop(&mut self, grace: Duration) -> exec::Exit {
        self.stdin = None;
        self.child.stop(grace).await
    }
}

impl Console for Board {
    async fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the console is closed"))?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        stdin.write_all(&bytes).await?;
        stdin.flush().await
    }

    async fn next_event(&mut self) -> ConsoleEvent {
        if let Some(how) = &self.exited {
            return ConsoleEvent::Exited(how.clone());
        }
        if let Some(line) = self.lines.recv().await {
            return ConsoleEvent::Line(line.text);
        }
        // Output ended: the board is gone (wait() is cancel-safe).
        let exit = self.child.wait().await;
        let how = format!("board exited ({exit})");
        self.exited = Some(how.clone());
        ConsoleEvent::Exited(how)
    }
}

/// `<run>` steps: `sh -c COMMAND` in the checkout, supervised like every other child.
pub struct ShellHost {
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub grace: Duration,
    pub max_line: usize,
    pub cancel: CancellationToken,
}

impl Host for ShellHost {
    async fn run(
        &mut self,
        command: &str,
        timeout: Duration,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> HostOutcome {
        let mut spec = Spec::shell(command, &self.cwd);
        spec.env = self.env.clone();
        let limits = Limits {
            timeout: Some(timeout),
            silence: None,
            grace: self.grace,
            max_line: self.max_line,
        };
        match exec::run(&spec, &limits, &self.cancel, |line| on_line(line.text)).await {
            Ok(Ending::Exited(exit)) => match (exit.code, exit.signal) {
                (Some(code), _) => HostOutcome::Exited(code),
                (None, Some(sig)) => HostOutcome::Signalled(sig),
                (None, None) => HostOutcome::Error(format!("ended without a status ({exit})")),
            },
            Ok(Ending::TimedOut(_)) => HostOutcome::TimedOut,
            Ok(Ending::Silent(_)) => HostOutcome::TimedOut,
            Ok(Ending::Cancelled(_)) => HostOutcome::Cancelled,
            Err(e) => HostOutcome::Error(e.to_string()),
        }
    }
}
