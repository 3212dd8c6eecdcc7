//! Test doubles for the runner: a board that is a real `sh` process, a host that runs `sh -c`,
//! a console that replays a script (for paused-time tests), and an observer that records.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Console, ConsoleEvent, Host, HostOutcome, Observer};
use crate::model::{TestResult, TranscriptLine};

/// A board's shell: `ping` → `pong`, `add A B` → the sum, `hang` → nothing, `die` → exit 7,
/// anything else echoed as `echo: LINE`.
pub const BOARD: &str = r#"
echo "boot: ready"
while IFS= read -r line; do
  case "$line" in
    ping) echo pong ;;
    hang) ;;
    die) echo "dying"; exit 7 ;;
    "add "*) set -- $line; echo $(($2 + $3)) ;;
    *) echo "echo: $line" ;;
  esac
done
"#;

/// A console over a child process's stdin and stdout.
pub struct ProcessConsole {
    stdin: ChildStdin,
    events: mpsc::Receiver<ConsoleEvent>,
    exited: Option<String>,
}

impl ProcessConsole {
    pub fn spawn(script: &str) -> Self {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the board");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(ConsoleEvent::Line(line)).await.is_err() {
                    return;
                }
            }
            let what = match child.wait().await {
                Ok(s) => match s.code() {
                    Some(code) => format!("board exited with status {code}"),
                    None => format!("board was killed ({s})"),
                },
                Err(e) => format!("board lost: {e}"),
            };
            let _ = tx.send(ConsoleEvent::Exited(what)).await;
        });
        ProcessConsole {
            stdin,
            events,
            exited: None,
        }
    }
}

impl Console for ProcessConsole {
    async fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await
    }

    async fn next_event(&mut self) -> ConsoleEvent {
        if let Some(what) = &self.exited {
            return ConsoleEvent::Exited(what.clone());
        }
        let event = self
            .events
            .recv()
            .await
            .unwrap_or_else(|| ConsoleEvent::Exited("console closed".into()));
        if let ConsoleEvent::Exited(what) = &event {
            self.exited = Some(what.clone());
        }
        event
    }
}

/// What a scripted console answers to a sent line: events to produce, and the write's result.
pub type Responder =
    Box<dyn FnMut(&str) -> (Vec<ConsoleEvent>, std::io::Result<()>) + Send + 'static>;

/// A console that answers from a script and otherwise stays silent forever.
pub struct ScriptedConsole {
    pub sent: Vec<String>,
    queue: VecDeque<ConsoleEvent>,
    responder: Responder,
    exited: Option<String>,
}

impl ScriptedConsole {
    pub fn new(
        initial: Vec<ConsoleEvent>,
        responder: impl FnMut(&str) -> (Vec<ConsoleEvent>, std::io::Result<()>) + Send + 'static,
    ) -> Self {
        ScriptedConsole {
            sent: Vec::new(),
            queue: initial.into(),
            responder: Box::new(responder),
            exited: None,
        }
    }
}

impl Console for ScriptedConsole {
    async fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        self.sent.push(line.to_owned());
        let (events, result) = (self.responder)(line);
        self.queue.extend(events);
        result
    }

    async fn next_event(&mut self) -> ConsoleEvent {
        if let Some(what) = &self.exited {
            return ConsoleEvent::Exited(what.clone());
        }
        match self.queue.pop_front() {
            Some(event) => {
                if let ConsoleEvent::Exited(what) = &event {
                    self.exited = Some(what.clone());
                }
                event
            }
            None => std::future::pending::<ConsoleEvent>().await,
        }
    }
}

/// Runs `sh -c COMMAND` in `dir`, in its own process group, killed as a group on timeout or drop.
pub struct ShHost {
    pub dir: PathBuf,
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) has no memory-safety preconditions; the group is our child's.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Host for ShHost {
    async fn run(
        &mut self,
        command: &str,
        timeout: Duration,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> HostOutcome {
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return HostOutcome::Error(e.to_string()),
        };
        let mut guard = GroupGuard(child.id());
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (mut out_done, mut err_done) = (false, false);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                line = out.next_line(), if !out_done => match line {
                    Ok(Some(line)) => on_line(line),
                    _ => out_done = true,
                },
                line = err.next_line(), if !err_done => match line {
                    Ok(Some(line)) => on_line(line),
                    _ => err_done = true,
                },
                status = child.wait(), if out_done && err_done => {
                    guard.0 = None;
                    return match status {
                        Ok(s) => match (s.code(), s.signal()) {
                            (Some(code), _) => HostOutcome::Exited(code),
                            (None, Some(sig)) => HostOutcome::Signalled(sig),
                            (None, None) => HostOutcome::Error(format!("{s}")),
                        },
                        Err(e) => HostOutcome::Error(e.to_string()),
                    };
                }
                _ = &mut deadline => return HostOutcome::TimedOut,
            }
        }
    }
}

/// Records everything; optionally cancels a token when a log line equals `cancel_on`.
#[derive(Default)]
pub struct Recorder {
    pub log: Vec<String>,
    pub finished: Vec<(TestResult, Vec<TranscriptLine>)>,
    pub cancel_on: Option<(String, CancellationToken)>,
}

impl Recorder {
    /// The ids (`SUITE/NAME`) of the tests whose start marker was logged, in order.
    pub fn started(&self) -> Vec<&str> {
        self.log
            .iter()
            .filter_map(|l| l.strip_prefix("=== test ")?.strip_suffix(" started"))
            .collect()
    }
}

impl Observer for Recorder {
    fn log(&mut self, line: &str) {
        self.log.push(line.to_owned());
        if let Some((trigger, token)) = &self.cancel_on
            && trigger == line
        {
            token.cancel();
        }
    }

    fn test_finished(&mut self, result: &TestResult, transcript: &[TranscriptLine]) {
        self.finished.push((result.clone(), transcript.to_vec()));
    }
}
