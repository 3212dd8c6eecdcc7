//! The data root's layout: every path under it is named here, and only here.
//!
//! ```text
//! <root>/testarena.redb                 the store
//! <root>/cache/git/<mirror>             one git mirror per repository
//! <root>/queues/<id>/queue.log          the queue's live log
//! <root>/queues/<id>/report.html        the queue's report
//! <root>/queues/<id>/junit.xml          the queue's JUnit XML, every task merged
//! <root>/queues/<id>/repo/              the checkout (never served)
//! <root>/queues/<id>/tasks/<task>/      a task's reports and logs
//! <root>/trash/<entry>                  what retention removes, moved here whole first
//! ```
//!
//! Pure path arithmetic: nothing here touches the filesystem.

use std::path::{Path, PathBuf};

use crate::model::QueueId;

/// The names under a queue's directory that `GET /queues/{id}/files/…` serves.
pub const SERVED: &[&str] = &[QUEUE_REPORT, QUEUE_JUNIT, QUEUE_LOG, TASKS];

const STORE: &str = "testarena.redb";
const QUEUES: &str = "queues";
const QUEUE_LOG: &str = "queue.log";
const QUEUE_REPORT: &str = "report.html";
const QUEUE_JUNIT: &str = "junit.xml";
const CHECKOUT: &str = "repo";
const TASKS: &str = "tasks";
const TASK_LOG: &str = "task.log";

/// The data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The redb file.
    pub fn store(&self) -> PathBuf {
        self.root.join(STORE)
    }

    /// Where every queue's directory is.
    pub fn queues(&self) -> PathBuf {
        self.root.join(QUEUES)
    }

    /// Where the git mirrors are.
    pub fn mirrors(&self) -> PathBuf {
        self.root.join("cache").join("git")
    }

    /// Where retention moves a queue's directory or a mirror (one rename, on the same file
    /// system) before it deletes it: what is left at its place is whole or gone.
    pub fn trash(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// The directory of queue `id`.
    pub fn queue(&self, id: &QueueId) -> QueueDir {
        QueueDir(self.queues().join(id.as_str()))
    }
}

/// A queue's directory and what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDir(PathBuf);

impl QueueDir {
    /// A queue directory at `path` (for code handed a directory, such as the report writer).
    pub fn at(path: impl Into<PathBuf>) -> QueueDir {
        QueueDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn log(&self) -> PathBuf {
        self.0.join(QUEUE_LOG)
    }

    pub fn report(&self) -> PathBuf {
        self.0.join(QUEUE_REPORT)
    }

    /// The JUnit XML of every task, merged.
    pub fn junit(&self) -> PathBuf {
        self.0.join(QUEUE_JUNIT)
    }

    /// The checkout.
    pub fn checkout(&self) -> PathBuf {
        self.0.join(CHECKOUT)
    }

    /// The directory of task `task` (its reports and logs).
    pub fn task(&self, task: &str) -> PathBuf {
        self.0.join(TASKS).join(task)
    }

    /// Task `task`'s own log (every line of its board, also in the queue's log).
    pub fn task_log(&self, task: &str) -> PathBuf {
        self.task(task).join(TASK_LOG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_root_as_documented() {
        let l = Layout::new("/data");
        let q = l.queue(&QueueId::parse("q1").unwrap());
        assert_eq!(l.store(), Path::new("/data/testarena.redb"));
        assert_eq!(l.mirrors(), Path::new("/data/cache/git"));
        assert_eq!(l.trash(), Path::new("/data/trash"));
        assert_eq!(q.path(), Path::new("/data/queues/q1"));
        assert_eq!(q.log(), Path::new("/data/queues/q1/queue.log"));
        assert_eq!(q.report(), Path::new("/data/queues/q1/report.html"));
        assert_eq!(q.junit(), Path::new("/data/queues/q1/junit.xml"));
        assert_eq!(q.checkout(), Path::new("/data/queues/q1/repo"));
        assert_eq!(q.task("smoke"), Path::new("/data/queues/q1/tasks/smoke"));
        assert_eq!(
            q.task_log("smoke"),
            Path::new("/data/queues/q1/tasks/smoke/task.log")
        );
        assert!(!SERVED.contains(&CHECKOUT));
    }
}
