//! Tests of [`super::run`] against real `sh` processes.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::test_support::*;
use super::{Ending, ExecError, Limits, Line, Spec, Stream, run};

fn limits() -> Limits {
    Limits {
        grace: GRACE,
        ..Limits::default()
    }
}

/// Runs `spec`, collecting lines and the group id printed as `pgid <n>`, if any.
async fn run_collect(
    spec: &Spec,
    limits: &Limits,
    cancel: &CancellationToken,
) -> (Result<Ending, ExecError>, Vec<Line>, Option<u32>) {
    let mut lines = Vec::new();
    let ending = within(
        PATIENCE,
        "run",
        run(spec, limits, cancel, |line| lines.push(line)),
    )
    .await;
    let pgid = lines.iter().find_map(|l| pgid_line(&l.text));
    (ending, lines, pgid)
}

#[tokio::test]
async fn exited_run_delivers_every_line() {
    let spec = sh("echo one; echo two >&2; printf three; exit 2");
    let (ending, lines, _) = run_collect(&spec, &limits(), &CancellationToken::new()).await;
    let ending = ending.expect("spawned");
    assert!(
        matches!(ending, Ending::Exited(exit) if exit.code == Some(2)),
        "{ending:?}"
    );
    assert!(!ending.success());
    assert_eq!(ending.to_string(), "exit status 2");
    let texts = |stream| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect()
    };
    assert_eq!(texts(Stream::Stdout), ["one", "three"]);
    assert_eq!(texts(Stream::Stderr), ["two"]);
}

#[tokio::test]
async fn timeout_stops_the_whole_group() {
    let limits = Limits {
        timeout: Some(Duration::from_millis(300)),
        ..limits()
    };
    let started = Instant::now();
    let (ending, lines, pgid) =
        run_collect(&sh(STUBBORN), &limits, &CancellationToken::new()).await;
    let ending = ending.expect("spawned");
    assert!(
        matches!(ending, Ending::TimedOut(exit) if exit.stopped),
        "{ending:?}"
    );
    assert_eq!(ending.to_string(), "timed out");
    assert!(started.elapsed() < Duration::from_millis(300) + GRACE + Duration::from_secs(1));
    let pgid = pgid.expect("pgid printed");
    assert_eq!(live_members(pgid), Vec::<u32>::new(), "{lines:?}");
}

#[tokio::test]
async fn silence_watchdog_stops_a_quiet_child() {
    let limits = Limits {
        silence: Some(Duration::from_millis(300)),
        ..limits()
    };
    let (ending, lines, pgid) = run_collect(
        &sh("echo \"pgid $$\"; echo hello; exec sleep 30"),
        &limits,
        &CancellationToken::new(),
    )
    .await;
    let ending = ending.expect("spawned");
    assert!(
        matches!(ending, Ending::Silent(exit) if exit.stopped),
        "{ending:?}"
    );
    assert_eq!(lines.last().map(|l| l.text.as_str()), Some("hello"));
    assert_eq!(live_members(pgid.expect("pgid")), Vec::<u32>::new());
}

#[tokio::test]
async fn output_resets_the_silence_watchdog() {
    // Runs about 0.8 s in total, longer than the silence limit, but never quiet for that long.
    let limits = Limits {
        silence: Some(Duration::from_millis(500)),
        ..limits()
    };
    let script = "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.1; done";
    let (ending, lines, _) = run_collect(&sh(script), &limits, &CancellationToken::new()).await;
    assert!(ending.expect("spawned").success());
    assert_eq!(lines.len(), 8);
}

#[tokio::test]
async fn cancel_stops_the_whole_group() {
    let cancel = CancellationToken::new();
    let mut lines = Vec::new();
    let mut ready = 0;
    let started = Instant::now();
    let ending = within(
        PATIENCE,
        "run",
        run(&sh(STUBBORN), &limits(), &cancel, |line| {
            if line.text == "child ready" {
                ready += 1;
                if ready == 2 {
                    cancel.cancel();
                }
            }
            lines.push(line);
        }),
    )
    .await
    .expect("spawned");
    assert!(
        matches!(ending, Ending::Cancelled(exit) if exit.stopped),
        "{ending:?}"
    );
    assert!(started.elapsed() < GRACE + Duration::from_secs(2));
    let pgid = lines.iter().find_map(|l| pgid_line(&l.text)).expect("pgid");
    assert_eq!(live_members(pgid), Vec::<u32>::new());
}

#[tokio::test]
async fn cancelled_before_start_spawns_nothing() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let spec = Spec::new(vec!["no-such-program-testarena".into()], "/");
    let (ending, lines, _) = run_collect(&spec, &limits(), &cancel).await;
    let ending = ending.expect("nothing to fail");
    assert!(
        matches!(ending, Ending::Cancelled(exit) if exit.stopped),
        "{ending:?}"
    );
    assert!(lines.is_empty());
}

#[tokio::test]
async fn spawn_error_is_returned() {
    let spec = Spec::new(vec!["idf-testarena-missing.py".into(), "build".into()], "/");
    let (ending, _, _) = run_collect(&spec, &limits(), &CancellationToken::new()).await;
    let error = ending.expect_err("must fail");
    assert_eq!(
        error.to_string(),
        "program not found: idf-testarena-missing.py"
    );
}
