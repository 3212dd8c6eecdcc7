//! Running one test: its steps against the console and the host, bounded by three deadlines.
//!
//! Each step waits on an event (a console line, the end of a command, a deadline, the cancel
//! token) with `select!`; nothing polls. A step's own timeout fails the test, the test's timeout
//! times it out, and the scenario's deadline times out the whole run.

use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::record::{MAX_PENDING, Record};
use super::{Console, ConsoleEvent, Host, HostOutcome, Observer, Pattern, Step};
use crate::model::{LineKind, format_duration};

/// How long a failed console write waits to learn whether the board exited.
const WRITE_GRACE: Duration = Duration::from_secs(2);
/// How long past its timeout a host command may take before the runner stops waiting for it.
const HOST_GRACE: Duration = Duration::from_secs(10);

/// Why a test stopped before its last step passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stop {
    Failed(String),
    TimedOut(String),
    ScenarioTimedOut(String),
    BoardExited(String),
    Error(String),
    Aborted(String),
}

/// Which deadline bounds a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Step,
    Test,
    Scenario,
}

/// The test's and the scenario's deadlines, with the timeouts they came from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub scenario: Instant,
    pub scenario_timeout: Duration,
    pub test: Instant,
    pub test_timeout: Duration,
}

impl Deadlines {
    /// The earliest of the step's, the test's and the scenario's deadlines.
    fn earliest(&self, step: Option<Instant>) -> (Instant, Limit) {
        let mut best = (self.scenario, Limit::Scenario);
        if self.test < best.0 {
            best = (self.test, Limit::Test);
        }
        if let Some(step) = step
            && step < best.0
        {
            best = (step, Limit::Step);
        }
        best
    }

    /// The stop for a test- or scenario-level deadline; `doing` says what was going on.
    fn expired(&self, limit: Limit, doing: &str) -> Stop {
        match limit {
            Limit::Scenario => Stop::ScenarioTimedOut(format!(
                "scenario timeout {} expired while {doing}",
                format_duration(self.scenario_timeout)
            )),
            Limit::Test | Limit::Step => Stop::TimedOut(format!(
                "test timeout {} expired while {doing}",
                format_duration(self.test_timeout)
            )),
        }
    }
}

/// The runner's state across tests.
pub(super) struct Engine<'a, C, H, O> {
    pub console: &'a mut C,
    pub host: &'a mut H,
    pub cancel: &'a CancellationToken,
    pub rec: Record<'a, O>,
    pub deadlines: Deadlines,
}

impl<C: Console, H: Host, O: Observer> Engine<'_, C, H, O> {
    /// Takes every console event that is ready now, without waiting.
    pub fn drain_ready(&mut self) {
        for _ in 0..MAX_PENDING {
            if self.rec.exit.is_some() {
                return;
            }
            match self.console.next_event().now_or_never() {
                Some(ConsoleEvent::Line(line)) => self.rec.console_line(line),
                Some(ConsoleEvent::Exited(what)) => self.rec.exited(what),
                None => return,
            }
        }
    }

    /// Runs a test's steps from now; `Ok` when all passed.
    pub async fn run_steps(&mut self, steps: &[Step], timeout: Duration) -> Result<(), Stop> {
        let now = Instant::now();
        self.deadlines.test = now + timeout;
        self.deadlines.test_timeout = timeout;
        for step in steps {
            match step {
                Step::Send { line } => self.send(line).await?,
                Step::Expect { pattern, timeout } => self.expect(pattern, *timeout).await?,
                Step::Run { command, timeout } => self.run(command, *timeout).await?,
            }
        }
        Ok(())
    }

    async fn send(&mut self, line: &str) -> Result<(), Stop> {
        self.rec.observer.log(&format!("> {line}"));
        self.rec.note(LineKind::Send, line);
        let (deadline, limit) = self.deadlines.earliest(None);
        let written = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(aborted()),
            _ = sleep_until(deadline) => {
                return Err(self.deadlines.expired(limit, &format!("sending {line:?}")));
            }
            r = self.console.send_line(line) => r,
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) => Err(self.write_failed(e, deadline).await),
        }
    }

    /// A write failed: a board that just exited is a test failure, anything else an error.
    async fn write_failed(&mut self, e: std::io::Error, deadline: Instant) -> Stop {
        let until = deadline.min(Instant::now() + WRITE_GRACE);
        loop {
            if let Some(what) = &self.rec.exit {
                return Stop::BoardExited(what.clone());
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return aborted(),
                _ = sleep_until(until) => {
                    return Stop::Error(format!("cannot write to the console: {e}"));
                }
                event = self.console.next_event() => match event {
                    ConsoleEvent::Line(line) => self.rec.console_line(line),
                    ConsoleEvent::Exited(what) => self.rec.exited(what),
                },
            }
        }
    }

    async fn expect(&mut self, pattern: &Pattern, timeout: Duration) -> Result<(), Stop> {
        let (deadline, limit) = self.deadlines.earliest(Some(Instant::now() + timeout));
        self.rec.note(
            LineKind::Info,
            format!("expect {pattern} within {}", format_duration(timeout)),
        );
        if self.rec.take_match(pattern) {
            return Ok(());
        }
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(aborted()),
                _ = sleep_until(deadline) => {
                    let recent = self.rec.describe_recent();
                    return Err(match limit {
                        Limit::Step => Stop::Failed(format!(
                            "expected {pattern} within {}; {recent}",
                            format_duration(timeout)
                        )),
                        _ => with_suffix(
                            self.deadlines.expired(limit, &format!("waiting for {pattern}")),
                            &recent,
                        ),
                    });
                }
                event = self.console.next_event() => match event {
                    ConsoleEvent::Line(line) if pattern.matches(&line) => {
                        self.rec.matched_line(line);
                        return Ok(());
                    }
                    ConsoleEvent::Line(line) => self.rec.console_line(line),
                    ConsoleEvent::Exited(what) => {
                        self.rec.exited(what.clone());
                        return Err(Stop::BoardExited(what));
                    }
                },
            }
        }
    }

    async fn run(&mut self, command: &str, timeout: Duration) -> Result<(), Stop> {
        for line in command.lines() {
            self.rec.observer.log(&format!("$ {line}"));
        }
        self.rec.note(LineKind::Command, command);
        let shown = short(command);
        let (deadline, limit) = self.deadlines.earliest(None);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (host_timeout, host_limit) = if timeout < remaining {
            (timeout, Limit::Step)
        } else {
            (remaining, limit)
        };
        let guard = Instant::now() + host_timeout + HOST_GRACE;
        let deadlines = self.deadlines;

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut on_line = move |line: String| {
            // The receiver outlives the command, so this send cannot fail while it runs.
            let _ = tx.send(line);
        };
        let outcome = {
            let fut = self.host.run(command, host_timeout, &mut on_line);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => break Err(aborted()),
                    outcome = &mut fut => break Ok(outcome),
                    Some(line) = rx.recv() => self.rec.log(LineKind::Output, &line),
                    event = self.console.next_event(), if self.rec.exit.is_none() => match event {
                        ConsoleEvent::Line(line) => self.rec.console_line(line),
                        ConsoleEvent::Exited(what) => {
                            self.rec.exited(what.clone());
                            break Err(Stop::BoardExited(what));
                        }
                    },
                    _ = sleep_until(guard) => {
                        break Err(deadlines.expired(host_limit, &format!("running {shown}")));
                    }
                }
            }
        };
        while let Ok(line) = rx.try_recv() {
            self.rec.log(LineKind::Output, &line);
        }
        let outcome = outcome?;
        match outcome {
            HostOutcome::Exited(0) => {
                self.rec
                    .note(LineKind::Info, "command exited with status 0");
                Ok(())
            }
            HostOutcome::Exited(code) => Err(Stop::Failed(format!(
                "command {shown} exited with status {code}"
            ))),
            HostOutcome::Signalled(sig) => Err(Stop::Failed(format!(
                "command {shown} was killed by signal {sig}"
            ))),
            HostOutcome::TimedOut if host_limit == Limit::Step => Err(Stop::Failed(format!(
                "command {shown} did not finish within {}",
                format_duration(timeout)
            ))),
            HostOutcome::TimedOut => {
                Err(deadlines.expired(host_limit, &format!("running {shown}")))
            }
            HostOutcome::Cancelled => Err(aborted()),
            HostOutcome::Error(e) => Err(Stop::Error(format!("cannot run command {shown}: {e}"))),
        }
    }
}

fn aborted() -> Stop {
    Stop::Aborted("aborted".into())
}

/// Appends `; suffix` to a timeout's message.
fn with_suffix(stop: Stop, suffix: &str) -> Stop {
    match stop {
        Stop::TimedOut(m) => Stop::TimedOut(format!("{m}; {suffix}")),
        Stop::ScenarioTimedOut(m) => Stop::ScenarioTimedOut(format!("{m}; {suffix}")),
        other => other,
    }
}

/// A command as quoted in messages: its first line, at most 80 characters.
fn short(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default();
    let mut s: String = first.chars().take(80).collect();
    if s.len() < command.len() {
        s.push('…');
    }
    format!("{s:?}")
}
