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
//! Invariant: only this module writes `queue.log`.

mod file;
mod follower;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Semaphore, broadcast, watch};

use crate::model::QueueId;

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

/// The server's log hub: a cheap handle, one per server.
#[derive(Clone)]
pub struct LogHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    root: PathBuf,
    /// `serve --echo-logs`: every line also goes to stdout, prefixed with its queue id.
    echo: bool,
    /// Channels of queues that have a writer or a follower; entries die with their last user.
    /// A `std` mutex: held for a map lookup, never across `.await`.
    queues: Mutex<HashMap<QueueId, Weak<QueueLog>>>,
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
                queues: Mutex::new(HashMap::new()),
                reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
            }),
        }
    }

    /// Where a queue's log is (it may not exist yet).
    pub fn path(&self, id: &QueueId) -> PathBuf {
        crate::layout::Layout::new(&self.inner.root).queue(id).log()
    }

    /// Opens the queue's log for appending, creating its directory. A re-run appends to the same
    /// file. Fails with `AlreadyExists` while another writer of this queue is open.
    pub fn writer(&self, id: &QueueId) -> std::io::Result<LogWriter> {
        LogWriter::open(id, self.entry(id), self.inner.echo)
    }

    /// Follows the queue's log from byte offset `from`, which must be `0` or just after a `\n`.
    pub fn subscribe(&self, id: &QueueId, from: u64) -> Result<LogFollower, FollowError> {
        LogFollower::new(self.entry(id), from)
    }

    /// Where the last `lines` complete lines of the queue's log are (a partial last line is left
    /// out): an open handle and a byte range to stream, found by reading the file backwards one
    /// block at a time; empty when there is no log. Blocking: call it from `spawn_blocking`.
    pub fn tail(&self, id: &QueueId, lines: usize) -> std::io::Result<Tail> {
        file::tail(&self.path(id), lines)
    }

    /// Whether a writer of this queue is open.
    pub fn is_live(&self, id: &QueueId) -> bool {
        let queues = self.lock();
        queues
            .get(id)
            .and_then(Weak::upgrade)
            .is_some_and(|log| *log.live.borrow())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<QueueId, Weak<QueueLog>>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep going.
        self.inner
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The queue's shared channel, created on first use.
    fn entry(&self, id: &QueueId) -> Arc<QueueLog> {
        let path = self.path(id);
        let mut queues = self.lock();
        if let Some(log) = queues.get(id).and_then(Weak::upgrade) {
            return log;
        }
        queues.retain(|_, log| log.strong_count() > 0);
        let (tx, _) = broadcast::channel(CHANNEL_CHUNKS);
        let (live, _) = watch::channel(false);
        let reads = self.inner.reads.clone();
        let log = Arc::new(QueueLog {
            path,
            tx,
            live,
            reads,
        });
        queues.insert(id.clone(), Arc::downgrade(&log));
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
