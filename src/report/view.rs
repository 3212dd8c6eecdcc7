//! Template contexts built from the model: every string cleaned ([`text::clean`]), every time
//! rendered as RFC 3339, every link relative so that a report works from disk and under the
//! file route alike.

use std::path::Path;

use minijinja::context;
use minijinja::value::Value;
use serde::{Deserialize, Serialize};

use super::text::{self, cleaned};
use crate::model::{Queue, Task, TestResult, TestStatus, TranscriptLine, rfc3339};

/// How many tests ended in each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub error: u64,
    pub skipped: u64,
    pub total: u64,
}

impl Counts {
    pub fn of(tests: &[TestResult]) -> Counts {
        let mut c = Counts::default();
        for t in tests {
            c.add(t.status);
        }
        c
    }

    pub fn add(&mut self, status: TestStatus) {
        match status {
            TestStatus::Passed => self.passed += 1,
            TestStatus::Failed => self.failed += 1,
            TestStatus::TimedOut => self.timed_out += 1,
            TestStatus::Error => self.error += 1,
            TestStatus::Skipped => self.skipped += 1,
        }
        self.total += 1;
    }

    pub fn merge(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        self.error += other.error;
        self.skipped += other.skipped;
        self.total += other.total;
    }

    fn value(self) -> Value {
        context! {
            passed => self.passed,
            failed => self.failed,
            timed_out => self.timed_out,
            error => self.error,
            skipped => self.skipped,
            total => self.total,
        }
    }
}

/// A task's duration: from start to finish when both are known, else the sum of its tests.
pub fn task_duration_ms(task: &Task) -> u64 {
    text::span(task.started_at, task.finished_at)
        .unwrap_or_else(|| task.tests.iter().map(|t| t.duration_ms).sum())
}

/// Where a test's HTML log lives, relative to its task directory.
pub fn test_log_path(suite: &str, test: &str) -> String {
    format!("tests/{}/{}.html", path_part(suite), path_part(test))
}

/// Where a test's plain-text transcript lives, relative to its task directory: beside its log.
pub fn test_text_path(suite: &str, test: &str) -> String {
    format!("tests/{}/{}.txt", path_part(suite), path_part(test))
}

/// One path component from a name: letters, digits, `.`, `_` and `-` are kept, anything else
/// becomes `_`; a leading `.` becomes `_` (no hidden files, never `..`); empty becomes `_`;
/// at most 100 characters.
fn path_part(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.replace_range(0..out.len().min(1), "_");
    }
    out
}

fn opt(s: Option<&str>) -> Option<String> {
    s.map(cleaned)
}

pub fn queue(q: &Queue) -> Value {
    let r = &q.request;
    context! {
        id => q.id.as_str(),
        status => q.status.as_str(),
        repo => cleaned(&r.repo),
        branch => opt(r.branch.as_deref()),
        commit => opt(r.commit.as_deref()),
        environment => cleaned(&r.environment),
        scenarios => r.scenarios.iter().map(|s| cleaned(s)).collect::<Vec<_>>(),
        priority => r.priority,
        attempt => q.attempt,
        created_at => rfc3339(q.created_at),
        started_at => q.started_at.map(rfc3339),
        finished_at => q.finished_at.map(rfc3339),
        duration_ms => text::span(q.started_at, q.finished_at),
        error => opt(q.error.as_deref()),
    }
}

/// A test row; `log` and `text` are its HTML log's and its plain-text transcript's paths
/// relative to the task directory, when they exist.
pub fn test(t: &TestResult, task_dir: &Path) -> Value {
    let log = test_log_path(&t.suite, &t.name);
    let exists = task_dir.join(&log).is_file();
    let text = test_text_path(&t.suite, &t.name);
    let text_exists = task_dir.join(&text).is_file();
    context! {
        suite => cleaned(&t.suite),
        name => cleaned(&t.name),
        status => t.status.as_str(),
        duration_ms => t.duration_ms,
        message => opt(t.message.as_deref()),
        log => exists.then_some(log),
        text => text_exists.then_some(text),
    }
}

/// A task with its tests; `files` lists which of its report files exist.
pub fn task(task: &Task, task_dir: &Path) -> Value {
    let exists = |name: &str| task_dir.join(name).is_file();
    context! {
        id => task.id.as_str(),
        scenario => cleaned(&task.scenario),
        status => task.status.as_str(),
        started_at => task.started_at.map(rfc3339),
        finished_at => task.finished_at.map(rfc3339),
        duration_ms => task_duration_ms(task),
        error => opt(task.error.as_deref()),
        counts => Counts::of(&task.tests).value(),
        tests => task.tests.iter().map(|t| test(t, task_dir)).collect::<Vec<_>>(),
        files => context! {
            report => exists("report.html"),
            junit => exists("junit.xml"),
            summary => exists("summary.json"),
            log => exists("task.log"),
        },
    }
}

pub fn line(l: &TranscriptLine) -> Value {
    let kind = super::transcript::kind(l.kind);
    // Raw: the template's `ansi` filter renders colours, drops other escapes and escapes the rest.
    context! { at_ms => l.at_ms, kind => kind, text => l.text.as_str() }
}

/// Totals over several tasks.
pub fn total_counts(tasks: &[Task]) -> Value {
    let mut c = Counts::default();
    for t in tasks {
        c.merge(Counts::of(&t.tests));
    }
    c.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_are_single_safe_components() {
        let cases = [
            ("shell", "ping", "tests/shell/ping.html"),
            ("my suite", "a test.v2", "tests/my_suite/a_test.v2.html"),
            ("..", "..", "tests/_./_..html"),
            ("a/b", "../../x", "tests/a_b/_._.._x.html"),
            ("", ".hidden", "tests/_/_hidden.html"),
            ("<script>", "\"&'", "tests/_script_/___.html"),
        ];
        for (suite, name, expected) in cases {
            assert_eq!(test_log_path(suite, name), expected, "{suite:?} {name:?}");
        }
        let long = "x".repeat(500);
        assert!(test_log_path(&long, &long).len() < 220);
    }

    #[test]
    fn counts_add_up() {
        let mk = |status| TestResult {
            suite: "s".into(),
            name: "t".into(),
            status,
            duration_ms: 1,
            message: None,
        };
        let c = Counts::of(&[
            mk(TestStatus::Passed),
            mk(TestStatus::Passed),
            mk(TestStatus::Failed),
            mk(TestStatus::TimedOut),
            mk(TestStatus::Error),
            mk(TestStatus::Skipped),
        ]);
        let expected = Counts {
            passed: 2,
            failed: 1,
            timed_out: 1,
            error: 1,
            skipped: 1,
            total: 6,
        };
        assert_eq!(c, expected);
    }
}
