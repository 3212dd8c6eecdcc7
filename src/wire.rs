//! The API's records, typed once: what the server sends, the dashboard pages render, the
//! client reads and the tests check. Fields are declared in alphabetical order, the order the
//! JSON has always had; `tests/it/api_examples.rs` pins the shape.

use serde::{Deserialize, Serialize};

use crate::model::{Change, Line, Millis, Origin, Queue, Status, Task, TestResult, rfc3339};

/// A queue as `GET /api/queues/{id}`, the listing, the enqueue answer and webhooks show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub attempt: u32,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub created_at: String,
    pub environment: String,
    pub error: Option<String>,
    pub finished_at: Option<String>,
    pub id: String,
    pub priority: i32,
    /// The pull request a webhook queue tests.
    #[serde(default)]
    pub pull_request: Option<u64>,
    pub repo: String,
    /// The queue this one re-runs.
    #[serde(default)]
    pub rerun_of: Option<String>,
    /// Its re-runs, oldest first.
    #[serde(default)]
    pub reruns: Vec<String>,
    /// The commit its checkout resolved (what a re-run runs).
    #[serde(default)]
    pub resolved_commit: Option<String>,
    pub scenarios: Vec<String>,
    /// `api` or `gitea`: who enqueued it.
    #[serde(default)]
    pub source: String,
    pub started_at: Option<String>,
    pub status: Status,
    /// Only where the queue is shown with its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<TaskRecord>>,
    /// Only while it waits (or runs but its executor has not given it a board yet): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
}

/// One task of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub error: Option<String>,
    pub finished_at: Option<String>,
    pub id: String,
    pub scenario: String,
    pub started_at: Option<String>,
    pub status: Status,
    pub tests: Vec<TestResult>,
}

/// A page of `GET /api/queues`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuePage {
    pub items: Vec<QueueRecord>,
    /// Pass it back as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// The `end` event of a log stream: the queue's final status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEnd {
    pub status: Status,
}

/// A `change` event of `GET /api/events`: one committed state change of a queue or, with
/// `task`, of one of its tasks. Fields in the order the stream has always sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The event id; resume after it with `Last-Event-ID` or `?from=`.
    pub seq: u64,
    pub queue: String,
    pub task: Option<String>,
    /// `None` when the queue or task was created.
    pub from: Option<Status>,
    /// `None` when the queue was deleted.
    pub to: Option<Status>,
    /// Milliseconds since the Unix epoch.
    pub at: Millis,
}

/// A `reset` event of `GET /api/events`: the changes before `seq` are no longer kept; reload
/// the state, then follow from there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetRecord {
    pub seq: u64,
    pub message: String,
}

impl ChangeRecord {
    pub fn new(c: &Change) -> ChangeRecord {
        ChangeRecord {
            seq: c.seq,
            queue: c.queue.to_string(),
            task: c.task.as_ref().map(ToString::to_string),
            from: c.from,
            to: c.to,
            at: c.at,
        }
    }
}

impl ResetRecord {
    pub fn new(seq: u64) -> ResetRecord {
        ResetRecord {
            seq,
            message: "changes before this one are no longer kept: reload the state, then follow from here"
                .to_owned(),
        }
    }
}

impl QueueRecord {
    /// `q` as the API shows it; `tasks` when given, `waiting_reason` when it waits (or runs but
    /// waits for its executor's resources).
    pub fn new(q: &Queue, tasks: Option<&[Task]>, waiting_reason: Option<String>) -> QueueRecord {
        let r = &q.request;
        QueueRecord {
            attempt: q.attempt,
            branch: r.branch.clone(),
            commit: r.commit.clone(),
            created_at: rfc3339(q.created_at),
            environment: r.environment.clone(),
            error: q.error.clone(),
            finished_at: q.finished_at.map(rfc3339),
            id: q.id.to_string(),
            priority: r.priority,
            pull_request: match &q.origin {
                Origin::Gitea {
                    line: Some(Line::PullRequest(n)),
                } => Some(*n),
                _ => None,
            },
            repo: r.repo.clone(),
            rerun_of: q.rerun_of.as_ref().map(ToString::to_string),
            reruns: q.reruns.iter().map(ToString::to_string).collect(),
            resolved_commit: q.resolved_commit.clone(),
            scenarios: r.scenarios.clone(),
            source: match q.origin {
                Origin::Api => "api",
                Origin::Gitea { .. } => "gitea",
            }
            .to_owned(),
            started_at: q.started_at.map(rfc3339),
            status: q.status,
            tasks: tasks.map(|ts| ts.iter().map(TaskRecord::new).collect()),
            waiting_reason: waiting_reason
                .filter(|_| matches!(q.status, Status::Waiting | Status::Running)),
        }
    }
}

impl TaskRecord {
    pub fn new(t: &Task) -> TaskRecord {
        TaskRecord {
            error: t.error.clone(),
            finished_at: t.finished_at.map(rfc3339),
            id: t.id.to_string(),
            scenario: t.scenario.clone(),
            started_at: t.started_at.map(rfc3339),
            status: t.status,
            tests: t.tests.clone(),
        }
    }
}
