//! Tests of the report writers: every file for a queue whose tasks cover every status, read back
//! the way a browser (`pages`), a CI server (`junit`) or a script (here) would read it.

mod junit;
mod pages;

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::model::{
    LineKind, QueueId, QueueRequest, Status, TaskId, TestResult, TestStatus, TranscriptLine,
};

/// Markup, quotes, an ampersand, control characters and colour codes: everything a board's
/// console might print that could break a page or a parser.
const HOSTILE: &str = "<script>alert(1)</script> \"&' \u{1}\u{0}\u{1b}[31mred\u{1b}[0m";

fn queue() -> Queue {
    Queue {
        id: QueueId::parse("q-1").unwrap(),
        status: Status::Failed,
        request: QueueRequest {
            repo: format!("https://git.example/fw.git#{HOSTILE}"),
            branch: Some("main".into()),
            commit: Some("0123abcd".into()),
            environment: "xtensa-sim".into(),
            scenarios: vec!["scenarios/smoke.xml".into(), "scenarios/boot.xml".into()],
            priority: 0,
        },
        seq: 1,
        created_at: 1_700_000_000_000,
        started_at: Some(1_700_000_001_000),
        finished_at: Some(1_700_000_061_500),
        attempt: 2,
        error: None,
        origin: crate::model::Origin::Api,
        resolved_commit: None,
        rerun_of: None,
        reruns: Vec::new(),
    }
}

fn result(
    suite: &str,
    name: &str,
    status: TestStatus,
    ms: u64,
    message: Option<&str>,
) -> TestResult {
    TestResult {
        suite: suite.into(),
        name: name.into(),
        status,
        duration_ms: ms,
        message: message.map(Into::into),
    }
}

/// One task with a test of every status (one with hostile names), one whose build failed
/// before any test ran.
fn tasks() -> Vec<Task> {
    let mut smoke = Task::new(
        TaskId::parse("smoke").unwrap(),
        "scenarios/smoke.xml".into(),
    );
    smoke.status = Status::Failed;
    smoke.started_at = Some(1_700_000_002_000);
    smoke.finished_at = Some(1_700_000_012_345);
    smoke.tests = vec![
        result("shell", "ping", TestStatus::Passed, 1234, None),
        result(
            "shell",
            "echo back",
            TestStatus::Failed,
            5000,
            Some(&format!("expected \"pong\"\nlast line: {HOSTILE}")),
        ),
        result(
            "shell",
            "slow",
            TestStatus::TimedOut,
            5001,
            Some("no match for \"ready\" within 5s"),
        ),
        result("net", "dhcp", TestStatus::Error, 12, Some("console closed")),
        result(
            "net",
            "wifi",
            TestStatus::Skipped,
            0,
            Some("previous test timed out"),
        ),
        result(HOSTILE, HOSTILE, TestStatus::Failed, 7, Some(HOSTILE)),
    ];
    let mut boot = Task::new(TaskId::parse("boot").unwrap(), "scenarios/boot.xml".into());
    boot.status = Status::Error;
    boot.started_at = Some(1_700_000_012_400);
    boot.finished_at = Some(1_700_000_013_400);
    boot.error = Some(format!("build failed: exit status 2 {HOSTILE}"));
    vec![smoke, boot]
}

fn transcript() -> Vec<TranscriptLine> {
    let line = |at_ms, kind, text: &str| TranscriptLine {
        at_ms,
        kind,
        text: text.into(),
    };
    vec![
        line(0, LineKind::Info, "test started"),
        line(3, LineKind::Send, "ping"),
        line(40, LineKind::Console, HOSTILE),
        line(1500, LineKind::Match, "pong"),
        line(1502, LineKind::Command, "python3 tools/check.py"),
        line(1600, LineKind::Output, "ok & done"),
    ]
}

struct Written {
    dir: tempfile::TempDir,
    queue: Queue,
    tasks: Vec<Task>,
}

impl Written {
    fn queue_dir(&self) -> PathBuf {
        self.dir.path().join("queues/q-1")
    }
    fn task_dir(&self, task: &str) -> PathBuf {
        self.queue_dir().join("tasks").join(task)
    }
    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.queue_dir().join(rel)).unwrap()
    }
}

/// Writes what the worker writes: a log per test that ran, each task's files, the queue report.
fn write_all() -> Written {
    let reports = Reports::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let queue = queue();
    let tasks = tasks();
    let queue_dir = dir.path().join("queues/q-1");
    fs::create_dir_all(&queue_dir).unwrap();
    fs::write(queue_dir.join("queue.log"), "log\n").unwrap();
    for task in &tasks {
        let task_dir = queue_dir.join("tasks").join(task.id.as_str());
        for t in task
            .tests
            .iter()
            .filter(|t| t.status != TestStatus::Skipped)
        {
            let path = reports
                .write_test_log(&task_dir, &queue, &task.id, t, &transcript())
                .unwrap();
            assert!(path.starts_with(&task_dir), "{path:?}");
        }
        reports.write_task(&task_dir, &queue, task).unwrap();
    }
    reports.write_queue(&queue_dir, &queue, &tasks).unwrap();
    Written { dir, queue, tasks }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn html_files(w: &Written) -> Vec<PathBuf> {
    files_under(&w.queue_dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect()
}
#[test]
fn summary_json_round_trips() {
    let w = write_all();
    let smoke = &w.tasks[0];
    let summary: TaskSummary = serde_json::from_str(&w.read("tasks/smoke/summary.json")).unwrap();
    assert_eq!(summary.queue, w.queue.id.as_str());
    assert_eq!(summary.task, "smoke");
    assert_eq!(summary.scenario, "scenarios/smoke.xml");
    assert_eq!(summary.status, Status::Failed);
    assert_eq!(summary.duration_ms, 10_345);
    assert_eq!(
        summary.started_at.as_deref(),
        Some("2023-11-14T22:13:22.000Z")
    );
    let counts = Counts {
        passed: 1,
        failed: 2,
        timed_out: 1,
        error: 1,
        skipped: 1,
        total: 6,
    };
    assert_eq!(summary.counts, counts);
    assert_eq!(summary.tests.len(), smoke.tests.len());
    for (s, t) in summary.tests.iter().zip(&smoke.tests) {
        assert_eq!(
            (&s.suite, &s.name, s.status, s.duration_ms, &s.message),
            (&t.suite, &t.name, t.status, t.duration_ms, &t.message)
        );
        let has_log = t.status != TestStatus::Skipped;
        assert_eq!(s.log.is_some(), has_log, "{}", t.name);
        if let Some(log) = &s.log {
            assert!(w.task_dir("smoke").join(log).is_file());
        }
    }
    let raw: serde_json::Value = serde_json::from_str(&w.read("tasks/boot/summary.json")).unwrap();
    assert_eq!(raw["status"], "error");
    assert_eq!(raw["counts"]["total"], 0);
    assert_eq!(raw["tests"], serde_json::json!([]));
}

#[test]
fn rewriting_a_report_replaces_it() {
    let w = write_all();
    let reports = Reports::new().unwrap();
    let mut task = w.tasks[1].clone();
    task.status = Status::Passed;
    task.error = None;
    task.tests = vec![result("shell", "ping", TestStatus::Passed, 10, None)];
    reports
        .write_task(&w.task_dir("boot"), &w.queue, &task)
        .unwrap();
    let summary: TaskSummary = serde_json::from_str(&w.read("tasks/boot/summary.json")).unwrap();
    assert_eq!(summary.status, Status::Passed);
    assert!(!w.read("tasks/boot/report.html").contains("build failed"));
    let leftovers: Vec<_> = files_under(&w.task_dir("boot"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_unwritable_directory_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("tasks");
    fs::write(&blocker, b"a file where a directory should be").unwrap();
    let reports = Reports::new().unwrap();
    let task = &tasks()[0];
    let err = reports
        .write_task(&blocker.join("smoke"), &queue(), task)
        .unwrap_err();
    assert!(
        matches!(&err, ReportError::Io { path, .. } if path.ends_with("junit.xml")),
        "{err}"
    );
}
