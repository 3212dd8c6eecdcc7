//! Runner tests: a real board process and real host commands for the behaviour a user sees, and
//! a scripted console under paused time for exact timeout arithmetic.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::test_support::{BOARD, ProcessConsole, Recorder, ScriptedConsole, ShHost};
use super::*;
use crate::model::{LineKind, Status, TestStatus};

fn scenario(xml: &str) -> Scenario {
    parse("t.xml", xml.as_bytes()).unwrap_or_else(|d| panic!("{d:#?}"))
}

async fn run_with<C: Console>(
    xml: &str,
    console: &mut C,
    rec: &mut Recorder,
    cancel: &CancellationToken,
) -> ScenarioRun {
    let s = scenario(xml);
    let dir = tempfile::tempdir().unwrap();
    let mut host = ShHost {
        dir: dir.path().to_owned(),
    };
    let run = run_scenario(&s, console, &mut host, rec, cancel);
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the scenario run ends")
}

/// Runs `xml` against the `sh` board.
async fn run_board(xml: &str) -> (ScenarioRun, Recorder) {
    let mut rec = Recorder::default();
    let mut console = ProcessConsole::spawn(BOARD);
    let run = run_with(xml, &mut console, &mut rec, &CancellationToken::new()).await;
    (run, rec)
}

fn statuses(run: &ScenarioRun) -> Vec<(&str, TestStatus)> {
    run.results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect()
}

fn message<'a>(run: &'a ScenarioRun, test: &str) -> &'a str {
    let r = run.results.iter().find(|r| r.name == test).unwrap();
    r.message.as_deref().unwrap_or_default()
}

fn transcript<'a>(rec: &'a Recorder, test: &str) -> Vec<(LineKind, &'a str)> {
    let (_, lines) = rec.finished.iter().find(|(r, _)| r.name == test).unwrap();
    lines.iter().map(|l| (l.kind, l.text.as_str())).collect()
}

#[tokio::test]
async fn passing_scenario_logs_markers_sends_and_output() {
    let (run, rec) = run_board(
        r#"<scenario name="s"><suite name="shell">
          <test name="ping"><send>ping</send><expect>pong</expect></test>
          <test name="add numbers"><send>echo 42x</send><send>add 40 2</send>
            <expect regex="true">^42$</expect></test>
        </suite><suite name="host">
          <test name="check"><run>echo host-side; echo oops >&amp;2</run></test>
        </suite></scenario>"#,
    )
    .await;
    assert_eq!(run.status, Status::Passed, "{:#?}", run.results);
    assert_eq!(run.board_exit, None);
    assert_eq!(
        rec.started(),
        ["shell/ping", "shell/add_numbers", "host/check"]
    );
    assert_eq!(rec.finished.len(), 3);

    for line in [
        "=== test shell/ping started",
        "> ping",
        "pong",
        "=== test shell/add_numbers started",
        "$ echo host-side; echo oops >&2",
        "host-side",
        "oops",
    ] {
        assert!(
            rec.log.iter().any(|l| l == line),
            "{line:?} not in {:#?}",
            rec.log
        );
    }
    let marker = regex::Regex::new(r"^=== (step|task|test) (\S+) (.*)$").unwrap();
    let passed = regex::Regex::new(r"^=== test shell/add_numbers passed \(\d+ ms\)$").unwrap();
    assert!(rec.log.iter().any(|l| passed.is_match(l)), "{:#?}", rec.log);
    let markers: Vec<_> = rec.log.iter().filter(|l| l.starts_with("===")).collect();
    assert_eq!(markers.len(), 6);
    assert!(markers.iter().all(|l| marker.is_match(l)));

    let add = transcript(&rec, "add numbers");
    for want in [
        (LineKind::Send, "echo 42x"),
        (LineKind::Send, "add 40 2"),
        (LineKind::Console, "echo: echo 42x"),
        (LineKind::Match, "42"),
    ] {
        assert!(add.contains(&want), "{want:?} not in {add:#?}");
    }
    let check = transcript(&rec, "check");
    assert!(check.contains(&(LineKind::Command, "echo host-side; echo oops >&2")));
    assert!(check.contains(&(LineKind::Output, "host-side")));
}

#[tokio::test]
async fn failed_expect_says_what_and_quotes_the_last_lines_then_the_next_test_runs() {
    let (run, _) = run_board(
        r#"<scenario name="s"><suite name="shell">
          <test name="quiet"><send>hello</send><expect timeout="1s">never</expect></test>
          <test name="after"><send>ping</send><expect>pong</expect></test>
        </suite></scenario>"#,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [("quiet", TestStatus::Failed), ("after", TestStatus::Passed)]
    );
    let m = message(&run, "quiet");
    assert!(
        m.starts_with(r#"expected "never" within 1s; last console lines: "#),
        "{m}"
    );
    assert!(m.contains(r#""echo: hello""#), "{m}");
    assert_eq!(run.status, Status::Failed);
}

#[tokio::test]
async fn run_step_fails_on_a_non_zero_exit() {
    let (run, rec) = run_board(
        r#"<scenario name="s"><suite name="host">
          <test name="bad"><run>echo before; exit 3</run></test>
        </suite></scenario>"#,
    )
    .await;
    assert_eq!(statuses(&run), [("bad", TestStatus::Failed)]);
    assert_eq!(
        message(&run, "bad"),
        r#"command "echo before; exit 3" exited with status 3"#
    );
    assert!(transcript(&rec, "bad").contains(&(LineKind::Output, "before")));
    assert!(
        rec.log.iter().any(|l| l
            == r#"=== test host/bad failed: command "echo before; exit 3" exited with status 3"#)
    );
}

#[tokio::test]
async fn test_timeout_times_out_the_test_kills_its_command_and_the_next_test_runs() {
    let started = std::time::Instant::now();
    let (run, _) = run_board(
        r#"<scenario name="s"><suite name="shell">
          <test name="hang" timeout="1s"><send>hang</send><expect>pong</expect></test>
          <test name="slow" timeout="1s"><run>sleep 30</run></test>
          <test name="ping"><send>ping</send><expect>pong</expect></test>
        </suite></scenario>"#,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [
            ("hang", TestStatus::TimedOut),
            ("slow", TestStatus::TimedOut),
            ("ping", TestStatus::Passed)
        ]
    );
    let m = message(&run, "hang");
    assert!(
        m.starts_with(r#"test timeout 1s expired while waiting for "pong""#),
        "{m}"
    );
    assert_eq!(
        message(&run, "slow"),
        r#"test timeout 1s expired while running "sleep 30""#
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(run.status, Status::Failed);
}

#[tokio::test]
async fn board_exit_fails_the_test_and_skips_the_rest() {
    let (run, rec) = run_board(
        r#"<scenario name="s"><suite name="shell">
          <test name="ping"><send>ping</send><expect>pong</expect></test>
          <test name="die"><send>die</send><expect>never</expect></test>
          <test name="after"><send>ping</send><expect>pong</expect></test>
        </suite><suite name="more">
          <test name="host"><run>true</run></test>
        </suite></scenario>"#,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [
            ("ping", TestStatus::Passed),
            ("die", TestStatus::Failed),
            ("after", TestStatus::Skipped),
            ("host", TestStatus::Skipped)
        ]
    );
    assert_eq!(message(&run, "die"), "board exited with status 7");
    assert_eq!(
        message(&run, "host"),
        "board exited earlier: board exited with status 7"
    );
    assert_eq!(
        run.board_exit.as_deref(),
        Some("board exited with status 7")
    );
    assert_eq!(run.status, Status::Failed);
    assert_eq!(rec.started().len(), 2);
    assert_eq!(rec.finished.len(), 4);
    assert!(
        rec.log.iter().any(|l| l
            == "=== test shell/after skipped: board exited earlier: board exited with status 7")
    );
    assert!(transcript(&rec, "die").contains(&(LineKind::Console, "dying")));
}

#[tokio::test]
async fn scenario_timeout_times_out_the_current_test_and_skips_the_rest() {
    let (run, _) = run_board(
        r#"<scenario name="s" timeout="1s"><suite name="shell">
          <test name="hang"><send>hang</send><expect timeout="60s">pong</expect></test>
          <test name="next"><send>ping</send><expect>pong</expect></test>
        </suite></scenario>"#,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [
            ("hang", TestStatus::TimedOut),
            ("next", TestStatus::Skipped)
        ]
    );
    let m = message(&run, "hang");
    assert!(
        m.starts_with(r#"scenario timeout 1s expired while waiting for "pong""#),
        "{m}"
    );
    assert_eq!(message(&run, "next"), "scenario timeout 1s expired earlier");
    assert_eq!(run.status, Status::TimedOut);
}

#[tokio::test]
async fn cancel_stops_the_current_test_and_skips_the_rest() {
    for (trigger, current) in [("> hang", "hang"), ("$ sleep 30", "slow")] {
        let cancel = CancellationToken::new();
        let mut rec = Recorder {
            cancel_on: Some((trigger.to_owned(), cancel.clone())),
            ..Recorder::default()
        };
        let mut console = ProcessConsole::spawn(BOARD);
        let started = std::time::Instant::now();
        let xml = format!(
            r#"<scenario name="s"><suite name="shell">
              <test name="{current}">{}</test>
              <test name="next"><send>ping</send><expect>pong</expect></test>
            </suite></scenario>"#,
            if current == "hang" {
                "<send>hang</send><expect>pong</expect>"
            } else {
                "<run>sleep 30</run>"
            }
        );
        let run = run_with(&xml, &mut console, &mut rec, &cancel).await;
        assert_eq!(
            statuses(&run),
            [(current, TestStatus::Error), ("next", TestStatus::Skipped)]
        );
        assert_eq!(message(&run, current), "aborted");
        assert_eq!(message(&run, "next"), "scenario aborted");
        assert_eq!(run.status, Status::Aborted);
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}

#[test]
fn the_run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = scenario(
        r#"<scenario name="s"><suite name="a"><test name="t"><send>x</send></test></suite></scenario>"#,
    );
    let mut console = ScriptedConsole::new(vec![], |_| (vec![], Ok(())));
    let mut host = ShHost { dir: ".".into() };
    let mut rec = Recorder::default();
    let cancel = CancellationToken::new();
    let fut = run_scenario(&s, &mut console, &mut host, &mut rec, &cancel);
    assert_send(&fut);
}

/// Runs `xml` against a scripted console with time paused (timers fire as soon as all is idle).
async fn run_scripted(xml: &str, console: &mut ScriptedConsole) -> (ScenarioRun, Recorder) {
    let mut rec = Recorder::default();
    let run = run_with(xml, console, &mut rec, &CancellationToken::new()).await;
    (run, rec)
}

fn silent() -> ScriptedConsole {
    ScriptedConsole::new(vec![ConsoleEvent::Line("boot".into())], |_| {
        (vec![], Ok(()))
    })
}

#[tokio::test(start_paused = true)]
async fn expect_timeout_fails_after_exactly_its_own_time() {
    let (run, _) = run_scripted(
        r#"<scenario name="s"><suite name="a">
          <test name="t" timeout="5s"><expect timeout="1s">x</expect></test>
        </suite></scenario>"#,
        &mut silent(),
    )
    .await;
    let r = &run.results[0];
    assert_eq!((r.status, r.duration_ms), (TestStatus::Failed, 1000));
    assert_eq!(
        r.message.as_deref(),
        Some(r#"expected "x" within 1s; last console lines: "boot""#)
    );
}

#[tokio::test(start_paused = true)]
async fn expect_timeout_is_capped_by_what_remains_of_the_test() {
    let (run, _) = run_scripted(
        r#"<scenario name="s"><suite name="a">
          <test name="t" timeout="3s"><expect timeout="10s">x</expect></test>
        </suite></scenario>"#,
        &mut silent(),
    )
    .await;
    let r = &run.results[0];
    assert_eq!((r.status, r.duration_ms), (TestStatus::TimedOut, 3000));
    let m = r.message.as_deref().unwrap_or_default();
    assert!(
        m.starts_with(r#"test timeout 3s expired while waiting for "x""#),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn expect_searches_only_after_the_previous_match_even_across_tests() {
    let mut console = ScriptedConsole::new(vec![], |line| match line {
        "ping" => (
            vec![
                ConsoleEvent::Line("pong 1".into()),
                ConsoleEvent::Line("pong 2".into()),
            ],
            Ok(()),
        ),
        _ => (vec![], Ok(())),
    });
    let (run, rec) = run_scripted(
        r#"<scenario name="s"><suite name="a">
          <test name="first"><send>ping</send><expect>pong</expect></test>
          <test name="buffered"><expect>pong</expect></test>
          <test name="nothing left"><expect timeout="2s">pong</expect></test>
          <test name="order"><send>ping</send><expect>pong 2</expect><expect timeout="2s">pong 1</expect></test>
        </suite></scenario>"#,
        &mut console,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [
            ("first", TestStatus::Passed),
            ("buffered", TestStatus::Passed),
            ("nothing left", TestStatus::Failed),
            ("order", TestStatus::Failed)
        ]
    );
    assert!(transcript(&rec, "first").contains(&(LineKind::Match, "pong 1")));
    assert!(transcript(&rec, "buffered").contains(&(LineKind::Match, "pong 2")));
    assert_eq!(console.sent, ["ping", "ping"]);
}

#[tokio::test(start_paused = true)]
async fn console_write_failure_is_an_error_while_the_board_lives() {
    let mut console = ScriptedConsole::new(vec![], |line| match line {
        "ping" => (vec![ConsoleEvent::Line("pong".into())], Ok(())),
        _ => (vec![], Err(std::io::Error::other("serial port gone"))),
    });
    let (run, _) = run_scripted(
        r#"<scenario name="s"><suite name="a">
          <test name="write"><send>x</send></test>
          <test name="ping"><send>ping</send><expect>pong</expect></test>
        </suite></scenario>"#,
        &mut console,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [("write", TestStatus::Error), ("ping", TestStatus::Passed)]
    );
    assert_eq!(
        message(&run, "write"),
        "cannot write to the console: serial port gone"
    );
    assert_eq!(run.status, Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn console_write_failure_after_the_board_exited_is_a_failure() {
    let mut console = ScriptedConsole::new(vec![], |_| {
        let gone = ConsoleEvent::Exited("board exited with status 99".into());
        (vec![gone], Err(std::io::ErrorKind::BrokenPipe.into()))
    });
    let (run, _) = run_scripted(
        r#"<scenario name="s"><suite name="a">
          <test name="write"><send>x</send></test>
          <test name="next"><send>y</send></test>
        </suite></scenario>"#,
        &mut console,
    )
    .await;
    assert_eq!(
        statuses(&run),
        [("write", TestStatus::Failed), ("next", TestStatus::Skipped)]
    );
    assert_eq!(message(&run, "write"), "board exited with status 99");
    assert_eq!(
        run.board_exit.as_deref(),
        Some("board exited with status 99")
    );
}

#[tokio::test(start_paused = true)]
async fn scenario_deadline_cuts_the_test_that_runs_into_it() {
    let (run, _) = run_scripted(
        r#"<scenario name="s" timeout="4s"><suite name="a">
          <test name="one" timeout="3s"><expect timeout="1m">x</expect></test>
          <test name="two" timeout="3s"><expect timeout="1m">x</expect></test>
          <test name="three"><send>x</send></test>
        </suite></scenario>"#,
        &mut silent(),
    )
    .await;
    let got: Vec<_> = run
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.status, r.duration_ms))
        .collect();
    assert_eq!(
        got,
        [
            ("one", TestStatus::TimedOut, 3000),
            ("two", TestStatus::TimedOut, 1000),
            ("three", TestStatus::Skipped, 0)
        ]
    );
    assert!(message(&run, "two").starts_with("scenario timeout 4s expired while waiting"));
    assert_eq!(run.status, Status::TimedOut);
}
