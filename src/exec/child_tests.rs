//! Tests of [`super::Child`] against real `sh` processes.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::test_support::*;
use super::{Child, DEFAULT_MAX_LINE, ExecError, Line, Spec, Stream, group};

fn spawn(script: &str) -> (Child, tokio::sync::mpsc::Receiver<Line>) {
    let (mut child, rx) = Child::spawn(&sh(script), DEFAULT_MAX_LINE).expect("spawn sh");
    child.set_grace(GRACE);
    child_guard(&child);
    (child, rx)
}

/// Sanity check used by every spawn: the child leads its own process group.
fn child_guard(child: &Child) {
    let pid = i32::try_from(child.pid()).expect("pid");
    // SAFETY: getpgid only reads its argument.
    let pgid = unsafe { libc::getpgid(pid) };
    assert_eq!(pgid, pid, "the child leads its own process group");
}

fn texts(lines: &[Line], stream: Stream) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.text.as_str())
        .collect()
}

#[tokio::test]
async fn reads_long_crlf_invalid_and_unterminated_lines() {
    let script = r"printf 'abcdefghijkl\nwin\r\nbad\377\n'; printf 'err\n' >&2; printf 'tail'";
    let (mut child, mut rx) = Child::spawn(&sh(script), 8).expect("spawn");
    let exit = within(PATIENCE, "wait", child.wait()).await;
    assert!(exit.success(), "{exit}");
    let lines = rest(&mut rx).await;
    assert_eq!(
        texts(&lines, Stream::Stdout),
        ["abcdefgh", "ijkl", "win", "bad\u{fffd}", "tail"]
    );
    assert_eq!(texts(&lines, Stream::Stderr), ["err"]);
}

#[tokio::test]
async fn interleaved_stdout_and_stderr_all_arrive_in_order() {
    let script = "i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    let (mut child, mut rx) = spawn(script);
    // Consume concurrently: 600 lines do not fit the pipes and the channel at once.
    let (exit, lines) = within(PATIENCE, "run", async {
        tokio::join!(child.wait(), rest(&mut rx))
    })
    .await;
    assert!(exit.success(), "{exit}");
    let expected =
        |prefix: &str| -> Vec<String> { (0..300).map(|i| format!("{prefix}{i}")).collect() };
    assert_eq!(texts(&lines, Stream::Stdout), expected("out"));
    assert_eq!(texts(&lines, Stream::Stderr), expected("err"));
}

#[tokio::test]
async fn reports_exit_codes_and_signals() {
    let (mut child, _rx) = spawn("exit 3");
    let exit = within(PATIENCE, "wait", child.wait()).await;
    assert_eq!(
        (exit.code, exit.signal, exit.stopped),
        (Some(3), None, false)
    );
    assert_eq!(exit.to_string(), "exit status 3");

    let (mut child, _rx) = spawn("kill -9 $$");
    let exit = within(PATIENCE, "wait", child.wait()).await;
    assert_eq!((exit.code, exit.signal), (None, Some(9)));
    assert_eq!(exit.to_string(), "killed by signal 9");
}

#[tokio::test]
async fn spawn_errors_name_the_program_or_the_directory() {
    let spec = Spec::new(vec!["no-such-program-testarena".into()], "/");
    let error = Child::spawn(&spec, DEFAULT_MAX_LINE).expect_err("must fail");
    assert_eq!(
        error.to_string(),
        "program not found: no-such-program-testarena"
    );

    let spec = Spec::new(vec!["true".into()], "/no/such/dir/testarena");
    let error = Child::spawn(&spec, DEFAULT_MAX_LINE).expect_err("must fail");
    assert!(matches!(error, ExecError::Cwd { .. }), "{error}");
    assert!(
        error.to_string().contains("/no/such/dir/testarena"),
        "{error}"
    );
}

#[tokio::test]
async fn stop_kills_grandchildren_that_ignore_term() {
    let (mut child, mut rx) = spawn(STUBBORN);
    until_lines(&mut rx, "child ready", 2).await;
    let pgid = child.pid();
    assert!(
        live_members(pgid).len() >= 3,
        "leader and two grandchildren"
    );

    let started = Instant::now();
    let exit = within(GRACE + Duration::from_secs(1), "stop", child.stop(GRACE)).await;
    assert!(
        started.elapsed() >= GRACE,
        "the grandchildren got their grace period"
    );
    assert!(exit.stopped && !exit.success(), "{exit:?}");
    assert_eq!(exit.to_string(), "stopped");
    assert_eq!(live_members(pgid), Vec::<u32>::new());
    rest(&mut rx).await;
    // A second stop returns the same exit at once.
    assert_eq!(within(GRACE, "second stop", child.stop(GRACE)).await, exit);
}

#[tokio::test]
async fn stopped_is_set_even_when_the_child_exits_0_on_term() {
    let (mut child, mut rx) = spawn("trap 'exit 0' TERM; echo ready; sleep 30 & wait");
    until_lines(&mut rx, "ready", 1).await;
    let exit = within(GRACE + Duration::from_secs(1), "stop", child.stop(GRACE)).await;
    assert_eq!(exit.code, Some(0));
    assert!(exit.stopped);
    assert!(!exit.success());
}

#[tokio::test]
async fn wait_returns_when_a_grandchild_keeps_stdout_open() {
    // The grandchild inherits the ignored SIGTERM and the stdout pipe; the leader exits at once.
    let (mut child, mut rx) = spawn("trap '' TERM; echo leaving; sleep 30 & exit 3");
    let pgid = child.pid();
    let exit = within(GRACE + Duration::from_secs(2), "wait", child.wait()).await;
    assert_eq!((exit.code, exit.stopped), (Some(3), false));
    assert_eq!(live_members(pgid), Vec::<u32>::new());
    let lines = rest(&mut rx).await;
    assert_eq!(texts(&lines, Stream::Stdout), ["leaving"]);
}

#[tokio::test]
async fn output_ends_when_an_escaped_process_keeps_the_pipe() {
    // `setsid` leaves the group, so only the drain bound ends the reading.
    let (mut child, mut rx) = spawn("setsid sleep 10 & echo \"escaped $!\"");
    let exit = within(PATIENCE, "wait", child.wait()).await;
    assert!(exit.success(), "{exit}");
    let lines = within(Duration::from_secs(3), "drain", rest(&mut rx)).await;
    let escaped: i32 = lines
        .iter()
        .find_map(|l| l.text.strip_prefix("escaped ")?.parse().ok())
        .expect("escaped pid printed");
    // SAFETY: kill with a pid this test started.
    unsafe { libc::kill(escaped, libc::SIGKILL) };
}

#[tokio::test]
async fn dropping_a_child_kills_its_group() {
    let (child, mut rx) = spawn(STUBBORN);
    until_lines(&mut rx, "child ready", 2).await;
    let pgid = child.pid();
    drop(child);
    let deadline = Instant::now() + Duration::from_secs(2);
    assert!(
        group::wait_empty(pgid as i32, pgid, deadline).await,
        "group survived the drop"
    );
}

#[tokio::test]
async fn stdin_is_piped_on_request_and_null_otherwise() {
    let spec = sh("read line; echo \"got $line\"").with_stdin();
    let (mut child, mut rx) = Child::spawn(&spec, DEFAULT_MAX_LINE).expect("spawn");
    let mut stdin = child.take_stdin().expect("stdin pipe");
    assert!(child.take_stdin().is_none(), "stdin is handed out once");
    stdin.write_all(b"hello\n").await.expect("write stdin");
    until_lines(&mut rx, "got hello", 1).await;
    assert!(within(PATIENCE, "wait", child.wait()).await.success());

    let (mut child, mut rx) = spawn("read line || echo eof");
    assert!(child.take_stdin().is_none());
    until_lines(&mut rx, "eof", 1).await;
    assert!(within(PATIENCE, "wait", child.wait()).await.success());
}

#[tokio::test]
async fn env_is_added_and_notify_socket_is_not_passed() {
    let spec = sh("echo \"$TESTARENA_QUEUE ${NOTIFY_SOCKET-unset}\"").env("TESTARENA_QUEUE", "q7");
    let (mut child, mut rx) = Child::spawn(&spec, DEFAULT_MAX_LINE).expect("spawn");
    assert!(within(PATIENCE, "wait", child.wait()).await.success());
    assert_eq!(texts(&rest(&mut rx).await, Stream::Stdout), ["q7 unset"]);
}

#[tokio::test]
async fn subreaper_reaps_orphaned_grandchildren() {
    super::become_subreaper().expect("prctl");
    // The orphan is reparented to this process, stopped with the group and then reaped:
    // not even a zombie of the group remains.
    let (mut child, mut rx) = spawn("sleep 30 & echo started");
    let pgid = child.pid();
    until_lines(&mut rx, "started", 1).await;
    within(GRACE + Duration::from_secs(2), "wait", child.wait()).await;
    let members = group::members(pgid as i32).expect("/proc");
    assert_eq!(members, Vec::new());
}

#[tokio::test]
async fn wait_and_stop_resume_after_being_cancelled() {
    let (mut child, mut rx) = spawn(STUBBORN);
    until_lines(&mut rx, "child ready", 2).await;
    let pgid = child.pid();
    // A wait dropped early leaves the child running and the Child usable.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), child.wait())
            .await
            .is_err()
    );
    assert!(live_members(pgid).len() >= 3);
    // A stop dropped during its grace period keeps its deadline: the next stop, even with a
    // long grace, kills at the first deadline.
    assert!(
        tokio::time::timeout(GRACE / 3, child.stop(GRACE))
            .await
            .is_err()
    );
    let exit = within(Duration::from_secs(2), "second stop", child.stop(PATIENCE)).await;
    assert!(exit.stopped);
    assert_eq!(live_members(pgid), Vec::<u32>::new());
}
