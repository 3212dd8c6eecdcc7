//! The redb store: typed records, one writer thread, and the change feed.
//!
//! - `tables` every table definition, `codec` the record encoding, `init` opening a file (format
//!   check, migration), `index` the queues' indexes in the file (id → arrival, by status, the
//!   counts per status), `actor` the writer thread that folds concurrent writes into one commit, `writes` the write operations,
//!   `reads` the read-only queries, `follow` the change-feed follower, `outbox` the commit
//!   statuses' durable position in the feed, `fault` storage faults (the error that names the
//!   cause, reopening the file, the health `/healthz` reports).
//! - No redb type leaves this module. redb blocks, so async callers reach it through the writer
//!   thread (writes) or `spawn_blocking` (reads), never on a runtime worker thread.
//! - After every commit each change is published on a broadcast channel (`subscribe`) and the
//!   latest sequence on a watch (`latest_seq`); changes are also kept in the event table (the
//!   newest `KEEP_EVENTS` to `MAX_EVENTS`, and every one the commit statuses have not posted
//!   yet) so an SSE client can resume and no status is lost.
//! - A failed commit fails its batch with the cause (`StoreError::Storage`, `full` for a full
//!   disk); the writer reopens the file before the next batch, so writes come back by
//!   themselves once the cause is gone.
//! - Durability: every commit is immediate (fsync before the caller is answered).
//! - Callers are answered from a task on the multi-thread runtime the store was opened in (on
//!   the writer thread when opened elsewhere); answers that runtime drops are delivered anyway.

mod actor;
mod branches;
mod codec;
mod fault;
mod follow;
#[cfg(test)]
mod golden_tests;
mod index;
mod init;
mod legacy;
mod outbox;
mod reads;
mod tables;
mod writes;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use redb::Database;
use tokio::sync::{broadcast, oneshot, watch};

pub use actor::{KEEP_EVENTS, MAX_EVENTS};
pub use follow::{Feed, Follower};
pub use reads::{EventsAfter, Page};
pub use tables::FORMAT;
pub use writes::{Enqueued, RerunOnly};

use crate::model::{
    Change, Origin, Queue, QueueId, QueueRequest, Status, Task, TaskId, TestResult,
};

/// A queue with its tasks, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    pub queue: Queue,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("queue {0} not found")]
    NotFound(String),
    /// The request contradicts what is stored (another body under the same id, a finished queue).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Illegal(#[from] crate::model::IllegalTransition),
    #[error("the store is closed")]
    Unavailable,
    /// A storage fault: the disk is full (`full`) or an I/O error; the store recovers by
    /// itself once the cause is gone.
    #[error("the store cannot write: {message}")]
    Storage { message: String, full: bool },
    #[error("store: {0}")]
    Other(String),
}

macro_rules! other_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Other(e.to_string()) }
        }
    )*};
}
other_from!(codec::CodecError);

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        fault::from_storage(e)
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(io) => fault::storage(&io),
            redb::Error::PreviousIo => fault::from_storage(redb::StorageError::PreviousIo),
            e => StoreError::Other(e.to_string()),
        }
    }
}

impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        match e {
            redb::TableError::Storage(s) => s.into(),
            e => StoreError::Other(e.to_string()),
        }
    }
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        match e {
            redb::TransactionError::Storage(s) => s.into(),
            e => StoreError::Other(e.to_string()),
        }
    }
}

impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        match e {
            redb::CommitError::Storage(s) => s.into(),
            e => StoreError::Other(e.to_string()),
        }
    }
}

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Other(
                "the database is already open in another process: stop the other server or use another root".into(),
            ),
            redb::DatabaseError::Storage(s) => s.into(),
            e => StoreError::Other(e.to_string()),
        }
    }
}

/// How a waiting queue may be claimed.
#[derive(Debug, Default, Clone)]
pub struct ClaimFilter {
    /// Environments that have no free capacity: their queues are passed over.
    pub blocked_environments: HashSet<String>,
}

/// A cheap, cloneable handle to the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<fault::DbSlot>,
    health: Arc<fault::Health>,
    stats: Arc<actor::Stats>,
    // std::sync::Mutex: held only to clone or take the sender, never across an await.
    tx: Mutex<Option<mpsc::Sender<actor::Msg>>>,
    changes: broadcast::Sender<Change>,
    latest: watch::Receiver<u64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Store {
    /// Opens (or creates) `<path>` and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Arc::new(Database::create(path)?);
        let seq = init::init(&db)?;
        let (tx, rx) = mpsc::channel();
        let (changes, _) = broadcast::channel(4096);
        let (latest_tx, latest) = watch::channel(seq);
        let publisher = actor::Publisher {
            changes: changes.clone(),
            latest: latest_tx,
            // A current-thread runtime answers only while someone drives it: answer here.
            replies: tokio::runtime::Handle::try_current()
                .ok()
                .filter(|rt| rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread),
        };
        let db = Arc::new(fault::DbSlot::new(path, db));
        let health = Arc::new(fault::Health::default());
        let stats = Arc::new(actor::Stats::default());
        let writer = actor::Writer {
            db: db.clone(),
            health: health.clone(),
            stats: stats.clone(),
            publisher,
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || actor::run(writer, rx))
            .map_err(|e| StoreError::Other(format!("cannot start the store thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                health,
                stats,
                tx: Mutex::new(Some(tx)),
                changes,
                latest,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Every committed change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    /// Every change committed from now on, in order and without gaps (see [`Follower`]).
    pub fn follow(&self) -> Follower {
        Follower::new(self.clone(), None)
    }

    /// Every change committed after sequence number `seq` (a client resuming), then live ones;
    /// a [`Feed::Reset`] first when they are no longer all kept.
    pub fn follow_from(&self, seq: u64) -> Follower {
        Follower::new(self.clone(), Some(seq))
    }

    /// The sequence number of the latest committed change.
    pub fn latest_seq(&self) -> u64 {
        *self.inner.latest.borrow()
    }

    /// Finishes pending writes, stops the writer thread; later writes fail with `Unavailable`.
    pub async fn close(&self) {
        let tx = self.inner.tx.lock().expect("store sender lock").take();
        if let Some(tx) = tx {
            let (done, wait) = oneshot::channel();
            if tx.send(actor::Msg::Stop(done)).is_ok() {
                let _ = wait.await;
            }
        }
        let thread = self.inner.thread.lock().expect("store thread lock").take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Runs `f` in the next batch and waits for the commit.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut actor::Batch<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: actor::Job = Box::new(move |batch| {
            let result = f(batch);
            if let Err(e @ (StoreError::Other(_) | StoreError::Storage { .. })) = &result {
                batch.poison(e);
            }
            Box::new(move |commit: Result<(), StoreError>| {
                let _ = reply.send(commit.and(result));
            })
        });
        let tx = self
            .inner
            .tx
            .lock()
            .expect("store sender lock")
            .clone()
            .ok_or(StoreError::Unavailable)?;
        tx.send(actor::Msg::Job(job))
            .map_err(|_| StoreError::Unavailable)?;
        // Dropped unanswered: the batch could not begin (a storage fault), or the store closed.
        answer
            .await
            .map_err(|_| self.fault().unwrap_or(StoreError::Unavailable))?
    }

    /// (commits, writes): how many durable commits the writer made since the store was opened,
    /// and how many writes they held; writes per commit is how much the batching folds.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.inner.stats.get()
    }

    /// Observes the time of every durable commit from now on (its pages written and synced) in
    /// `histogram`: a slow disk shows there first. Only the first call takes effect.
    pub fn time_commits(&self, histogram: prometheus_client::metrics::histogram::Histogram) {
        self.inner.stats.time_commits(histogram);
    }

    /// The storage fault that makes writes fail now, if any (`/healthz`).
    pub fn fault(&self) -> Option<StoreError> {
        self.inner.health.fault()
    }

    /// Changes when writes start failing for a storage fault, and when they succeed again.
    pub fn watch_fault(&self) -> watch::Receiver<Option<StoreError>> {
        self.inner.health.watch()
    }

    /// Runs a read-only query off the runtime's worker threads.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&*inner.db.get()?))
            .await
            .map_err(|e| StoreError::Other(format!("read task failed: {e}")))?
    }

    // ---- writes -------------------------------------------------------------------------------

    /// Stores a new waiting queue with one waiting task per scenario; idempotent per id.
    ///
    /// The tasks are made here, on the caller's task: the writer thread serves every write,
    /// so the work one request brings is done before it reaches that thread.
    pub async fn enqueue(
        &self,
        id: QueueId,
        request: QueueRequest,
    ) -> Result<Enqueued, StoreError> {
        self.enqueue_from(id, request, Origin::Api).await
    }

    /// [`Store::enqueue`] for a queue that came from `origin` (a webhook delivery).
    pub async fn enqueue_from(
        &self,
        id: QueueId,
        request: QueueRequest,
        origin: Origin,
    ) -> Result<Enqueued, StoreError> {
        let tasks = writes::NewTasks::for_scenarios(request.scenarios.clone());
        self.write(move |b| writes::enqueue(b, id, request, origin, tasks))
            .await
    }

    /// A new queue re-running finished queue `id` at the commit it resolved (see
    /// [`RerunOnly`]); `Conflict` while it waits or runs, when it never resolved a commit, or
    /// when every task passed and only failed ones were asked for.
    pub async fn rerun(&self, id: &QueueId, only: RerunOnly) -> Result<QueueView, StoreError> {
        let id = id.clone();
        self.write(move |b| writes::rerun(b, &id, only)).await
    }

    /// Records the commit a queue's checkout resolved.
    pub async fn set_resolved_commit(
        &self,
        id: &QueueId,
        commit: String,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(move |b| writes::set_resolved_commit(b, &id, commit))
            .await
    }

    /// Moves a queue to `to` through the state machine; sets timestamps and `error`.
    pub async fn transition(
        &self,
        id: &QueueId,
        to: Status,
        error: Option<String>,
    ) -> Result<Queue, StoreError> {
        let id = id.clone();
        self.write(move |b| writes::transition(b, &id, to, error))
            .await
    }

    /// Claims the next waiting queue (highest priority, then oldest) and marks it running.
    pub async fn claim_next(&self, filter: ClaimFilter) -> Result<Option<Queue>, StoreError> {
        self.write(move |b| writes::claim_next(b, &filter)).await
    }

    /// Aborts a waiting queue with `reason` as its error. Returns the queue as it is now:
    /// `aborted`, or `running` (the caller must stop it), or an error for a finished queue.
    pub async fn abort_waiting(&self, id: &QueueId, reason: String) -> Result<Queue, StoreError> {
        let id = id.clone();
        self.write(move |b| writes::abort_waiting(b, &id, reason))
            .await
    }

    /// Removes a queue that is not running, with its tasks.
    pub async fn delete(&self, id: &QueueId) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(move |b| writes::delete(b, &id)).await
    }

    /// Removes the finished queues of `ids` still stored, in one commit (retention); the
    /// others are passed over. Returns the ids removed.
    pub async fn delete_finished(&self, ids: Vec<QueueId>) -> Result<Vec<QueueId>, StoreError> {
        self.write(move |b| writes::delete_finished(b, &ids)).await
    }

    /// Replaces the task list of a queue (scenarios discovered after checkout).
    pub async fn set_tasks(
        &self,
        id: &QueueId,
        scenarios: Vec<String>,
    ) -> Result<Vec<Task>, StoreError> {
        let id = id.clone();
        let tasks = writes::NewTasks::for_scenarios(scenarios);
        self.write(move |b| writes::set_tasks(b, &id, tasks)).await
    }

    /// Changes a task's status (through the state machine) and/or its error.
    pub async fn task_status(
        &self,
        id: &QueueId,
        task: &TaskId,
        to: Status,
        error: Option<String>,
    ) -> Result<Task, StoreError> {
        let (id, task) = (id.clone(), task.clone());
        self.write(move |b| writes::task_status(b, &id, &task, to, error))
            .await
    }

    /// Appends or replaces (same suite and name) one test result of a task.
    pub async fn record_test(
        &self,
        id: &QueueId,
        task: &TaskId,
        result: TestResult,
    ) -> Result<(), StoreError> {
        let (id, task) = (id.clone(), task.clone());
        self.write(move |b| writes::record_test(b, &id, &task, result))
            .await
    }

    /// Puts a running queue back to waiting for a later run (server shutdown); tasks reset.
    pub async fn requeue(&self, id: &QueueId, reason: &str) -> Result<Queue, StoreError> {
        let (id, reason) = (id.clone(), reason.to_owned());
        self.write(move |b| writes::requeue(b, &id, false, &reason))
            .await
    }

    /// Start-up recovery: every queue found `running` is re-queued with `attempt + 1`, or ends
    /// `error` ("interrupted") once it has had `max_attempts` runs. Returns what was done.
    pub async fn recover(&self, max_attempts: u32) -> Result<Vec<Queue>, StoreError> {
        self.write(move |b| writes::recover(b, max_attempts)).await
    }

    // ---- reads --------------------------------------------------------------------------------

    pub async fn get(&self, id: &QueueId) -> Result<Option<QueueView>, StoreError> {
        let id = id.clone();
        self.read(move |db| reads::get(db, &id)).await
    }

    /// Newest first; `cursor` is the `next_cursor` of the previous page.
    pub async fn list(
        &self,
        status: Option<Status>,
        limit: usize,
        cursor: Option<u64>,
    ) -> Result<Page, StoreError> {
        self.read(move |db| reads::list(db, status, limit, cursor))
            .await
    }

    /// How many queues are in each status. Kept in the file by every commit that changes
    /// them, so this reads no queue.
    pub async fn counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let counts = self.read(reads::counts).await?;
        Ok(counts
            .into_iter()
            .filter(|(s, _)| *s != Status::Skipped)
            .collect())
    }

    /// The finished queues beyond the retention limits at `now`, oldest first, at most `max`
    /// (see [`Beyond`](crate::model::Beyond)): beyond `max_queues` finished queues, or finished
    /// more than `max_age` ago. Reads from the oldest queue on, and nothing when neither limit
    /// is set or can be crossed.
    pub async fn beyond_limits(
        &self,
        max_queues: Option<u64>,
        max_age: Option<std::time::Duration>,
        now: crate::model::Millis,
        max: usize,
    ) -> Result<Vec<Queue>, StoreError> {
        let beyond = move |finished| crate::model::Beyond::new(max_queues, max_age, finished, now);
        self.read(move |db| reads::beyond_limits(db, beyond, max))
            .await
    }

    /// Waiting queues in claim order (highest priority, then oldest).
    pub async fn waiting(&self) -> Result<Vec<Queue>, StoreError> {
        self.read(reads::waiting).await
    }

    /// The newest queue (by arrival) of `repo` and `branch`, and of `environment` when given,
    /// that finished with an outcome ([`Status::is_outcome`]): one lookup in the branch index,
    /// however long the history.
    pub async fn newest_of_branch(
        &self,
        repo: String,
        branch: String,
        environment: Option<String>,
    ) -> Result<Option<Queue>, StoreError> {
        self.read(move |db| branches::newest(db, &repo, &branch, environment.as_deref()))
            .await
    }

    /// Changes after `seq`, from the event table.
    pub async fn events_after(&self, seq: u64) -> Result<EventsAfter, StoreError> {
        self.read(move |db| reads::events_after(db, seq)).await
    }
}
