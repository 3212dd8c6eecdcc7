//! The log hub: every line a queue prints is appended to `<root>/queues/<id>/queue.log` and fanned
//! out to followers (SSE clients), who start at any line boundary and never miss or repeat a line.
//!
//! How it fits together:
//! - One [`LogWriter`] per queue (cheap to clone, shared by its steps). [`LogWriter::line`] appends
//!   to a small pending buffer behind a `std::sync::Mutex`; the buffer is written to the file and
//!   broadcast as one chunk when it reaches 32 KiB, or by the writer's flush task 5 ms after the
//!   first pending line. A mutex rather than a writer task with a channel: `line` stays a plain,
//!   synchronous call that never waits for anyone, ordering across callers is the lock order, and
//!   no unbounded queue can build up; the critical section is a memcpy, or one `write` of at most
//!   one chunk into the page cache.
//! - A chunk is written to the file *before* it is broadcast, so whatever a follower missed on the
//!   channel (it subscribed late, or lagged behind the bounded channel) is already in the file.
//! - A [`LogFollower`] subscribes to the channel first, then replays the file from its offset, then
//!   takes chunks from the channel, skipping what it already has; a gap or a lag sends it back to
//!   the file. A follower holds no buffer while idle, and a slow one only ever costs itself.
//! - Offsets are byte offsets in `queue.log`; every batch ends on a line boundary.
//!
//! - A task has a log of its own, `tasks/<task>/task.log`, with the same contract ([`LogOf`]);
//!   its writer also copies every line into the queue's log ([`LogWriter::copying_to`]), with
//!   the task's name in front when boards run in parallel. The queue log stays one file.
//!
//! Invariant: only this module writes `queue.log` and `task.log`.

mod file;
mod follower;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Semaphore, broadcast, watch};

use crate::model::{QueueId, TaskId};

pub use file::Tail;
pub use follower::{Batch, FollowError, FollowItem, LogFollower};
pub use writer::LogWriter;

/// Chunks a queue's channel keeps for followers that have not taken them yet; a follower further
/// behind reads the file instead.
const CHANNEL_CHUNKS: usize = 256;
/// File reads of followers at once, in the whole hub. A thousand clients that start replaying a
/// log together wait their turn without a buffer each, instead of each holding one in the
/// blocking pool's queue (and making a blocking thread each).
const CONCURRENT_READS: usize = 8;

/// Which log: a queue's, or one of its tasks'. A `&QueueId` converts into the queue's.
#[derive(Debug, Clone, Copy)]
pub enum LogOf<'a> {
    Queue(&'a QueueId),
    Task(&'a QueueId, &'a TaskId),
}

impl<'a> From<&'a QueueId> for LogOf<'a> {
    fn from(id: &'a QueueId) -> LogOf<'a> {
        LogOf::Queue(id)
    }
}

impl LogOf<'_> {
    /// How the log is named in messages and echoed lines.
    fn label(&self) -> String {
        match self {
            LogOf::Queue(id) => id.to_string(),
            LogOf::Task(id, task) => format!("{id}/{task}"),
        }
    }
}

/// The server's log hub: a cheap handle, one per server.
#[derive(Clone)]
pub struct LogHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    root: PathBuf,
    /// `serve --echo-logs`: every line also goes to stdout, prefixed with its queue id.
    echo: bool,
    /// Channels of logs (by path) that have a writer or a follower; entries die with their
    /// last user. A `std` mutex: held for a map lookup, never across `.await`.
    logs: Mutex<HashMap<PathBuf, Weak<QueueLog>>>,
    /// Turns for followers' file reads ([`CONCURRENT_READS`]).
    reads: Arc<Semaphore>,
}

/// What a queue's writer and followers share.
pub(crate) struct QueueLog {
    pub(crate) path: PathBuf,
    pub(crate) tx: broadcast::Sender<Arc<Chunk>>,
    /// `true` while a writer is open.
    pub(crate) live: watch::Sender<bool>,
    /// The hub's turns for file reads.
    pub(crate) reads: Arc<Semaphore>,
}

/// Whole lines `start..end` of the file, as broadcast after they were written.
pub(crate) struct Chunk {
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// `None` for big chunks: followers read those from the file, so a lagging follower cannot
    /// make the channel hold megabytes.
    pub(crate) data: Option<Vec<u8>>,
}

impl LogHub {
    /// A hub whose logs live at `<root>/queues/<id>/queue.log`.
    pub fn new(root: &Path) -> LogHub {
        LogHub::with_echo(root, false)
    }

    /// Like `new`; with `echo`, writers also print every line to stdout as `<queue id> | <line>`.
    pub fn with_echo(root: &Path, echo: bool) -> LogHub {
        LogHub {
            inner: Arc::new(HubInner {
                echo,
                root: root.to_path_buf(),
                logs: Mutex::new(HashMap::new()),
                reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
            }),
        }
    }

    /// Where a log is (it may not exist yet).
    pub fn path<'a>(&self, of: impl Into<LogOf<'a>>) -> PathBuf {
        let queue = crate::layout::Layout::new(&self.inner.root);
        match of.into() {
            LogOf::Queue(id) => queue.queue(id).log(),
            LogOf::Task(id, task) => queue.queue(id).task_log(task.as_str()),
        }
    }

    /// Opens a log for appending, creating its directory. A re-run appends to the same file.
    /// Fails with `AlreadyExists` while another writer of this log is open. A task's writer
    /// never echoes: the queue's, which it copies into, does.
    pub fn writer<'a>(&self, of: impl Into<LogOf<'a>>) -> std::io::Result<LogWriter> {
        let of = of.into();
        let echo = self.inner.echo && matches!(of, LogOf::Queue(_));
        LogWriter::open(&of.label(), self.entry(of), echo)
    }

    /// Follows a log from byte offset `from`, which must be `0` or just after a `\n`.
    pub fn subscribe<'a>(
        &self,
        of: impl Into<LogOf<'a>>,
        from: u64,
    ) -> Result<LogFollower, FollowError> {
        LogFollower::new(self.entry(of.into()), from)
    }

    /// Where the last `lines` complete lines of a log are (a partial last line is left out):
    /// an open handle and a byte range to stream, found by reading the file backwards one
    /// block at a time; empty when there is no log. Blocking: call it from `spawn_blocking`.
    pub fn tail<'a>(&self, of: impl Into<LogOf<'a>>, lines: usize) -> std::io::Result<Tail> {
        file::tail(&self.path(of), lines)
    }

    /// Whether a writer of this log is open.
    pub fn is_live<'a>(&self, of: impl Into<LogOf<'a>>) -> bool {
        let path = self.path(of);
        let logs = self.lock();
        logs.get(&path)
            .and_then(Weak::upgrade)
            .is_some_and(|log| *log.live.borrow())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Weak<QueueLog>>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep going.
        self.inner
            .logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The log's shared channel, created on first use.
    fn entry(&self, of: LogOf<'_>) -> Arc<QueueLog> {
        let path = self.path(of);
        let mut logs = self.lock();
        if let Some(log) = logs.get(&path).and_then(Weak::upgrade) {
            return log;
        }
        logs.retain(|_, log| log.strong_count() > 0);
        let (tx, _) = broadcast::channel(CHANNEL_CHUNKS);
        let (live, _) = watch::channel(false);
        let reads = self.inner.reads.clone();
        let log = Arc::new(QueueLog {
            path: path.clone(),
            tx,
            live,
            reads,
        });
        logs.insert(path, Arc::downgrade(&log));
        log
    }
}

/// An engine marker line, e.g. `=== step checkout started`; whitespace in `name` becomes `_` so
/// that a viewer can split the line on spaces.
pub fn marker(kind: &str, name: &str, event: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("=== {kind} {name} {event}")
}

#[cfg(test)]
mod tests;
