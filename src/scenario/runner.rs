//! Running a whole scenario: tests in order, markers in the queue log, results per test.
//!
//! A test passes when all its steps pass. Once the board has exited, the scenario timed out or
//! the run was cancelled, the remaining tests are skipped with the reason.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::record::Record;
use super::steps::{Deadlines, Engine, Stop};
use super::{Console, Host, Observer, Scenario, Suite, Test};
use crate::model::{LineKind, Status, TestResult, TestStatus, format_duration};

/// The outcome of a scenario run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioRun {
    /// One result per test, in file order.
    pub results: Vec<TestResult>,
    /// `Passed` when every test passed; `TimedOut` when the scenario timeout expired; `Aborted`
    /// when cancelled; `Failed` otherwise.
    pub status: Status,
    /// How the board ended, if it did during the run.
    pub board_exit: Option<String>,
}

/// Why the remaining tests are skipped.
enum End {
    BoardExited(String),
    TimedOut,
    Aborted,
}

/// Runs every test of `scenario` in order against the console and the host.
pub async fn run_scenario<C: Console, H: Host, O: Observer>(
    scenario: &Scenario,
    console: &mut C,
    host: &mut H,
    observer: &mut O,
    cancel: &CancellationToken,
) -> ScenarioRun {
    let now = Instant::now();
    let mut engine = Engine {
        console,
        host,
        cancel,
        rec: Record::new(observer),
        deadlines: Deadlines {
            scenario: now + scenario.timeout,
            scenario_timeout: scenario.timeout,
            test: now,
            test_timeout: scenario.timeout,
        },
    };
    let mut results = Vec::with_capacity(scenario.test_count());
    let mut end: Option<End> = None;
    for suite in &scenario.suites {
        for test in &suite.tests {
            if end.is_none() {
                engine.drain_ready();
                end = if let Some(what) = &engine.rec.exit {
                    Some(End::BoardExited(what.clone()))
                } else if cancel.is_cancelled() {
                    Some(End::Aborted)
                } else if Instant::now() >= engine.deadlines.scenario {
                    Some(End::TimedOut)
                } else {
                    None
                };
            }
            let result = match &end {
                Some(reason) => skip(&mut engine, suite, test, skip_message(reason, scenario)),
                None => {
                    let (result, stop) = run_test(&mut engine, suite, test).await;
                    end = match stop {
                        Some(Stop::BoardExited(what)) => Some(End::BoardExited(what)),
                        Some(Stop::ScenarioTimedOut(_)) => Some(End::TimedOut),
                        Some(Stop::Aborted(_)) => Some(End::Aborted),
                        _ => None,
                    };
                    result
                }
            };
            results.push(result);
        }
    }
    if end.is_none() {
        engine.drain_ready();
    }
    let status = match end {
        Some(End::Aborted) => Status::Aborted,
        Some(End::TimedOut) => Status::TimedOut,
        _ if results.iter().all(|r| r.status == TestStatus::Passed) => Status::Passed,
        _ => Status::Failed,
    };
    ScenarioRun {
        results,
        status,
        board_exit: engine.rec.exit.clone(),
    }
}

async fn run_test<C: Console, H: Host, O: Observer>(
    engine: &mut Engine<'_, C, H, O>,
    suite: &Suite,
    test: &Test,
) -> (TestResult, Option<Stop>) {
    let id = marker_id(&suite.name, &test.name);
    engine.rec.observer.log(&format!("=== test {id} started"));
    start_transcript(engine);
    let outcome = engine.run_steps(&test.steps, test.timeout).await;
    let duration_ms =
        u64::try_from(engine.rec.test_start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, message) = match &outcome {
        Ok(()) => (TestStatus::Passed, None),
        Err(stop) => {
            let (status, message) = match stop.clone() {
                Stop::Failed(m) | Stop::BoardExited(m) => (TestStatus::Failed, m),
                Stop::TimedOut(m) | Stop::ScenarioTimedOut(m) => (TestStatus::TimedOut, m),
                Stop::Error(m) | Stop::Aborted(m) => (TestStatus::Error, m),
            };
            (status, Some(message))
        }
    };
    let result = TestResult {
        suite: suite.name.clone(),
        name: test.name.clone(),
        status,
        duration_ms,
        message,
    };
    finish(engine, &id, &result);
    (result, outcome.err())
}

fn skip<C, H, O: Observer>(
    engine: &mut Engine<'_, C, H, O>,
    suite: &Suite,
    test: &Test,
    message: String,
) -> TestResult {
    start_transcript(engine);
    let result = TestResult {
        suite: suite.name.clone(),
        name: test.name.clone(),
        status: TestStatus::Skipped,
        duration_ms: 0,
        message: Some(message),
    };
    finish(engine, &marker_id(&suite.name, &test.name), &result);
    result
}

/// Starts a new transcript; console lines received between tests open it.
fn start_transcript<C, H, O>(engine: &mut Engine<'_, C, H, O>) {
    engine.rec.test_start = Instant::now();
    for line in &mut engine.rec.transcript {
        line.at_ms = 0;
    }
}

/// Writes the closing marker and hands the result and transcript to the observer.
fn finish<C, H, O: Observer>(engine: &mut Engine<'_, C, H, O>, id: &str, result: &TestResult) {
    let rec = &mut engine.rec;
    let marker = match (&result.status, &result.message) {
        (TestStatus::Passed, _) => format!("=== test {id} passed ({} ms)", result.duration_ms),
        (status, Some(m)) => format!("=== test {id} {status}: {}", one_line(m)),
        (status, None) => format!("=== test {id} {status}"),
    };
    let summary = marker.trim_start_matches("=== test ").to_owned();
    rec.note(LineKind::Info, summary);
    rec.observer.log(&marker);
    let transcript = std::mem::take(&mut rec.transcript);
    rec.observer.test_finished(result, &transcript);
}

fn skip_message(reason: &End, scenario: &Scenario) -> String {
    match reason {
        End::BoardExited(what) => format!("board exited earlier: {what}"),
        End::TimedOut => format!(
            "scenario timeout {} expired earlier",
            format_duration(scenario.timeout)
        ),
        End::Aborted => "scenario aborted".into(),
    }
}

/// `SUITE/NAME` with spaces replaced by `_`, so that a marker splits on whitespace.
pub(super) fn marker_id(suite: &str, test: &str) -> String {
    format!("{suite}/{test}").replace(' ', "_")
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}
