//! `summary.json`: a task's outcome in a form scripts can read without parsing HTML or XML.
//!
//! Text is kept verbatim (JSON can carry any character); times are RFC 3339 UTC.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::view::{self, Counts};
use crate::model::{Queue, Status, Task, TestStatus, rfc3339};

/// The contents of `summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub queue: String,
    pub task: String,
    pub scenario: String,
    pub status: Status,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub counts: Counts,
    pub duration_ms: u64,
    pub tests: Vec<TestSummary>,
}

/// One test in `summary.json`; `log` is the path of its HTML log relative to the task directory,
/// when that log exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSummary {
    pub suite: String,
    pub name: String,
    pub status: TestStatus,
    pub duration_ms: u64,
    pub message: Option<String>,
    pub log: Option<String>,
}

impl TaskSummary {
    pub fn new(queue: &Queue, task: &Task, task_dir: &Path) -> TaskSummary {
        TaskSummary {
            queue: queue.id.as_str().to_owned(),
            task: task.id.as_str().to_owned(),
            scenario: task.scenario.clone(),
            status: task.status,
            error: task.error.clone(),
            started_at: task.started_at.map(rfc3339),
            finished_at: task.finished_at.map(rfc3339),
            counts: Counts::of(&task.tests),
            duration_ms: view::task_duration_ms(task),
            tests: task
                .tests
                .iter()
                .map(|t| {
                    let log = view::test_log_path(&t.suite, &t.name);
                    TestSummary {
                        suite: t.suite.clone(),
                        name: t.name.clone(),
                        status: t.status,
                        duration_ms: t.duration_ms,
                        message: t.message.clone(),
                        log: task_dir.join(&log).is_file().then_some(log),
                    }
                })
                .collect(),
        }
    }
}
