//! The JUnit XML contexts (`ui/templates/junit.xml`): a task's `junit.xml` and the queue's merged
//! one, in the shape the Jenkins xUnit plugin's `junit-10.xsd` accepts (pinned by
//! `fixtures/junit/junit-10.xsd`) and GitLab's and Gitea's readers understand: a `<testsuites>`
//! root with totals but no `skipped`; one `<testsuite>` per scenario suite with its counts,
//! `timestamp` (the task's start, UTC, `YYYY-MM-DDTHH:MM:SS` as Ant writes it) and `hostname`;
//! each test's transcript in `<system-out>`, cleaned of escape sequences and of characters XML
//! 1.0 forbids.

use std::borrow::Cow;
use std::path::Path;

use minijinja::context;
use minijinja::value::Value;

use super::text::{self, cleaned};
use super::transcript;
use super::view::{self, Counts};
use crate::layout::QueueDir;
use crate::model::{Millis, Queue, Status, Task, TestResult, TestStatus};

/// A task's `junit.xml`: its suites, named as in the scenario.
pub fn task(queue: &Queue, task: &Task, task_dir: &Path, hostname: &str) -> Value {
    let tests = tests_of(task);
    let suites = suites(queue, task, &tests, task_dir, hostname, false);
    let time = text::span(task.started_at, task.finished_at)
        .unwrap_or_else(|| tests.iter().map(|t| t.duration_ms).sum());
    root(
        format!("{}/{}", queue.id, task.id),
        Counts::of(&tests),
        time,
        suites,
    )
}

/// The queue's merged `junit.xml`: every task's suites, each named `<task>.<suite>` (the
/// classname of its cases), so that suites of the same name in two scenarios stay apart.
pub fn queue(queue: &Queue, tasks: &[Task], dir: &QueueDir, hostname: &str) -> Value {
    let mut counts = Counts::default();
    let mut all = Vec::new();
    let mut sum = 0;
    for task in tasks {
        let tests = tests_of(task);
        counts.merge(Counts::of(&tests));
        sum += tests.iter().map(|t| t.duration_ms).sum::<u64>();
        let task_dir = dir.task(task.id.as_str());
        all.extend(suites(queue, task, &tests, &task_dir, hostname, true));
    }
    let time = text::span(queue.started_at, queue.finished_at).unwrap_or(sum);
    root(queue.id.as_str().to_owned(), counts, time, all)
}

fn root(name: String, c: Counts, time_ms: u64, suites: Vec<Value>) -> Value {
    context! {
        name => name,
        tests => c.total,
        failures => c.failed,
        errors => c.error + c.timed_out,
        time => text::seconds(time_ms),
        suites => suites,
    }
}

/// The task's results; a task that ended in `error`, `timed_out` or `failed` without a single
/// test result (the build or the boot failed) gets one synthetic `error` case named after the
/// task, so that a CI reading the file does not count the run as green; an `aborted` one gets a
/// `skipped` case.
fn tests_of(task: &Task) -> Cow<'_, [TestResult]> {
    if !task.tests.is_empty() {
        return Cow::Borrowed(&task.tests);
    }
    let status = match task.status {
        Status::Error | Status::TimedOut | Status::Failed => TestStatus::Error,
        Status::Aborted => TestStatus::Skipped,
        _ => return Cow::Borrowed(&[]),
    };
    let message = task
        .error
        .clone()
        .unwrap_or_else(|| format!("task {}", task.status));
    Cow::Owned(vec![TestResult {
        suite: task.id.as_str().to_owned(),
        name: "(task)".to_owned(),
        status,
        duration_ms: view::task_duration_ms(task),
        message: Some(message),
    }])
}

/// One `<testsuite>` per suite, in order of first appearance; `prefixed` names each after its
/// task too.
fn suites(
    queue: &Queue,
    task: &Task,
    tests: &[TestResult],
    task_dir: &Path,
    hostname: &str,
    prefixed: bool,
) -> Vec<Value> {
    let started: Millis = task
        .started_at
        .or(queue.started_at)
        .unwrap_or(queue.created_at);
    let timestamp = timestamp(started);
    let mut order: Vec<&str> = Vec::new();
    for t in tests {
        if !order.contains(&t.suite.as_str()) {
            order.push(&t.suite);
        }
    }
    order
        .iter()
        .map(|suite| {
            let cases: Vec<&TestResult> = tests.iter().filter(|t| t.suite == *suite).collect();
            let mut c = Counts::default();
            cases.iter().for_each(|t| c.add(t.status));
            let time: u64 = cases.iter().map(|t| t.duration_ms).sum();
            let classname = format!("{}.{}", task.id, cleaned(suite));
            let name = if prefixed {
                classname.clone()
            } else {
                cleaned(suite)
            };
            context! {
                name => name,
                tests => c.total,
                failures => c.failed,
                errors => c.error + c.timed_out,
                skipped => c.skipped,
                time => text::seconds(time),
                timestamp => timestamp.clone(),
                hostname => hostname,
                cases => cases.iter().map(|t| context! {
                    classname => classname.clone(),
                    name => cleaned(&t.name),
                    time => text::seconds(t.duration_ms),
                    status => t.status.as_str(),
                    message => t.message.as_deref().map(cleaned).unwrap_or_default(),
                    system_out => transcript::system_out(
                        &task_dir.join(view::test_text_path(&t.suite, &t.name)),
                    ),
                }).collect::<Vec<_>>(),
            }
        })
        .collect()
}

/// `2023-11-14T22:13:22`: seconds, UTC, no zone, as Ant and Maven Surefire write it (the form
/// every JUnit reader parses).
pub fn timestamp(ms: Millis) -> String {
    let mut s = crate::model::rfc3339(ms);
    s.truncate("2023-11-14T22:13:22".len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_seconds_without_a_zone() {
        assert_eq!(timestamp(1_700_000_002_345), "2023-11-14T22:13:22");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00");
    }
}
