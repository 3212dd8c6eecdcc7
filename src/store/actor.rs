//! The store thread: the only writer. It folds every write that is waiting into one durable
//! commit, then publishes the batch's changes, then answers the callers.
//!
//! Durability: every commit is `Durability::Immediate` (redb's default, fsynced before `commit`
//! returns), so a caller's answer — and the HTTP response after it — means the write survives a
//! `kill -9`. Folding is what makes that cheap: one fsync serves every write of the batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;
use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use tokio::sync::{broadcast, oneshot, watch};

use super::StoreError;
use super::codec;
use super::index::{self, Counts};
use super::tables::{BRANCHES, EVENTS, IDS, META, META_SEQ, QUEUES, STATUSES, TASKS, WAITING};
use crate::model::{Change, QueueId, Status, TaskId, now_millis};

/// Most jobs folded into one commit.
const MAX_BATCH: usize = 1024;
/// Changes kept in the event table for SSE resume (at least this many, once there were).
pub const KEEP_EVENTS: u64 = 10_000;
/// The event table is trimmed back to [`KEEP_EVENTS`] once it holds more than this: one trim of
/// many rows every so often costs less than one delete in every batch.
pub const MAX_EVENTS: u64 = KEEP_EVENTS + 1_000;

/// A write: runs inside the batch's transaction and returns what to do once the commit is known.
pub(super) type Job = Box<dyn FnOnce(&mut Batch<'_>) -> Finish + Send>;
/// Called after the commit with its outcome.
pub(super) type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub(super) enum Msg {
    Job(Job),
    Stop(oneshot::Sender<()>),
}

/// Every table a write may touch, opened once per batch (opening is a measurable part of a
/// small write).
pub(crate) struct Tables<'t> {
    pub(super) queues: Table<'t, u64, &'static [u8]>,
    pub(super) waiting: Table<'t, (i64, u64), &'static str>,
    pub(super) tasks: Table<'t, (u64, u32), &'static [u8]>,
    pub(super) events: Table<'t, u64, &'static [u8]>,
    pub(super) meta: Table<'t, &'static str, u64>,
    pub(super) ids: Table<'t, &'static str, u64>,
    pub(super) statuses: Table<'t, (u8, u64), ()>,
    pub(super) branches: super::branches::BranchTable<'t>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            queues: txn.open_table(QUEUES)?,
            waiting: txn.open_table(WAITING)?,
            tasks: txn.open_table(TASKS)?,
            events: txn.open_table(EVENTS)?,
            meta: txn.open_table(META)?,
            ids: txn.open_table(IDS)?,
            statuses: txn.open_table(STATUSES)?,
            branches: txn.open_table(BRANCHES)?,
        })
    }
}

/// The state a job sees: the open tables, the sequence counter and the changes so far.
pub(crate) struct Batch<'t> {
    pub(super) t: Tables<'t>,
    /// The batch's changes to the counts per status, saved when it ends.
    counts: Counts,
    seq: u64,
    changes: Vec<Change>,
    /// Why the batch must be rolled back (a write failed on storage in the middle).
    poisoned: Option<StoreError>,
    /// Set by every write; a batch that wrote nothing is not committed (no fsync).
    dirty: bool,
}

impl Batch<'_> {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The arrival seq of queue `id`, as this batch leaves it.
    pub(super) fn seq_of(&self, id: &QueueId) -> Result<Option<u64>, StoreError> {
        Ok(self.t.ids.get(id.as_str())?.map(|v| v.value()))
    }

    /// Keeps the indexes in step with queue `id` (arrival `seq`) moving from status `from` to
    /// `to`: `from` `None` for a new queue, `to` `None` for a removed one.
    pub(super) fn index(
        &mut self,
        id: &QueueId,
        seq: u64,
        from: Option<Status>,
        to: Option<Status>,
    ) -> Result<(), StoreError> {
        self.dirty = true;
        match (from, to) {
            (None, _) => {
                self.t.ids.insert(id.as_str(), seq)?;
            }
            (_, None) => {
                self.t.ids.remove(id.as_str())?;
            }
            _ => {}
        }
        if let Some(from) = from {
            self.t.statuses.remove(index::status_key(from, seq))?;
            self.counts.add(from, -1);
        }
        if let Some(to) = to {
            self.t.statuses.insert(index::status_key(to, seq), ())?;
            self.counts.add(to, 1);
        }
        Ok(())
    }

    /// Notes that the batch has written something and must be committed.
    pub(super) fn touch(&mut self) {
        self.dirty = true;
    }

    /// Records a change in the event table under the next sequence number (contiguous: every
    /// number is an event); it is published after the commit.
    pub(super) fn record(
        &mut self,
        queue: &QueueId,
        task: Option<&TaskId>,
        from: Option<Status>,
        to: Option<Status>,
    ) -> Result<u64, StoreError> {
        let change = Change {
            seq: self.next_seq(),
            queue: queue.clone(),
            task: task.cloned(),
            from,
            to,
            at: now_millis(),
        };
        self.t
            .events
            .insert(change.seq, codec::encode(&change).as_slice())?;
        self.dirty = true;
        let seq = change.seq;
        self.changes.push(change);
        Ok(seq)
    }

    /// Marks the batch for rollback after a storage error in the middle of a write.
    pub(super) fn poison(&mut self, cause: &StoreError) {
        if self.poisoned.is_none() {
            self.poisoned = Some(cause.clone());
        }
    }
}

pub(super) struct Publisher {
    pub changes: broadcast::Sender<Change>,
    pub latest: watch::Sender<u64>,
    /// Where the callers are answered: a multi-thread runtime (waking a caller's task from
    /// this thread costs a measurable part of a small write; on the runtime the next batch does
    /// not wait for it). `None` (opened outside one): answered here.
    pub replies: Option<tokio::runtime::Handle>,
}

/// How many commits the writer made, how many writes they held (the batches' size), and how
/// long each took.
#[derive(Default)]
pub(super) struct Stats {
    commits: AtomicU64,
    writes: AtomicU64,
    /// Where each commit's time goes once someone watches (`Store::time_commits`).
    commit_time: OnceLock<Histogram>,
}

impl Stats {
    /// Observes every commit's time from now on in `histogram`; once (later calls are ignored).
    pub(super) fn time_commits(&self, histogram: Histogram) {
        let _ = self.commit_time.set(histogram);
    }

    /// (commits, writes) so far.
    pub(super) fn get(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// The writer thread's handles.
pub(super) struct Writer {
    pub db: Arc<super::fault::DbSlot>,
    pub health: Arc<super::fault::Health>,
    pub stats: Arc<Stats>,
    pub publisher: Publisher,
}

pub(super) fn run(writer: Writer, rx: Receiver<Msg>) {
    // A storage fault in the last batch: reopen the file before the next one.
    let mut reopen = false;
    loop {
        let mut jobs = Vec::new();
        let mut stop = None;
        match rx.recv() {
            Ok(Msg::Job(job)) => jobs.push(job),
            Ok(Msg::Stop(done)) => stop = Some(done),
            Err(_) => return,
        }
        while stop.is_none() && jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => jobs.push(job),
                Ok(Msg::Stop(done)) => stop = Some(done),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if !jobs.is_empty() {
            if reopen {
                match writer.db.reopen() {
                    Ok(()) => reopen = false,
                    Err(e) => {
                        tracing::error!(error = %e, "store: cannot reopen the database; the next write tries again");
                        writer.health.failed(&e);
                    }
                }
            }
            let outcome = if reopen {
                // The callers are answered with the fault (see `Store::write`).
                drop(jobs);
                Err(())
            } else {
                commit_batch(&writer, jobs)
            };
            reopen = outcome.is_err();
        }
        if let Some(done) = stop {
            let _ = done.send(());
            return;
        }
    }
}

/// Runs and commits one batch; `Err` after a storage fault (recorded in `health`).
fn commit_batch(writer: &Writer, jobs: Vec<Job>) -> Result<(), ()> {
    let publisher = &writer.publisher;
    let txn = match writer
        .db
        .get()
        .and_then(|db| db.begin_write().map_err(StoreError::from))
    {
        Ok(txn) => txn,
        Err(e) => {
            // Dropping the jobs drops their reply channels: callers get the fault.
            tracing::error!(error = %e, "store: cannot begin a write transaction");
            writer.health.failed(&e);
            return Err(());
        }
    };
    let ran = run_jobs(&txn, jobs);
    let (finishes, changes, outcome) = match ran {
        Err(e) => {
            tracing::error!(error = %e, "store: cannot open the tables");
            writer.health.failed(&e);
            return Err(());
        }
        Ok(Ran {
            finishes,
            poisoned: Some(cause),
            ..
        }) => {
            let _ = txn.abort();
            (finishes, Vec::new(), Err(cause))
        }
        Ok(Ran {
            finishes,
            dirty: false,
            ..
        }) => {
            // Nothing was written (e.g. a claim with nothing to claim): no commit, no fsync.
            let _ = txn.abort();
            (finishes, Vec::new(), Ok(()))
        }
        Ok(Ran {
            finishes, changes, ..
        }) => {
            let started = Instant::now();
            let committed = txn.commit().map_err(StoreError::from);
            if let Some(histogram) = writer.stats.commit_time.get() {
                histogram.observe(started.elapsed().as_secs_f64());
            }
            if committed.is_ok() {
                writer.stats.commits.fetch_add(1, Ordering::Relaxed);
                let n = finishes.len() as u64;
                writer.stats.writes.fetch_add(n, Ordering::Relaxed);
            }
            (finishes, changes, committed)
        }
    };
    let fault = match &outcome {
        Ok(()) => {
            writer.health.recovered();
            let last = changes.last().map(|c| c.seq);
            for change in changes {
                let _ = publisher.changes.send(change);
            }
            if let Some(seq) = last {
                publisher.latest.send_replace(seq);
            }
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "store: commit failed; the batch was rolled back");
            // A logic error in one write rolls the batch back but is no storage fault.
            let storage = matches!(e, StoreError::Storage { .. });
            if storage {
                writer.health.failed(e);
            }
            storage
        }
    };
    let answers = Answers { finishes, outcome };
    match &publisher.replies {
        // A runtime that is shutting down drops the task, and with it the answers: they are
        // delivered by `Drop` all the same.
        Some(rt) => drop(rt.spawn(async move { drop(answers) })),
        None => drop(answers),
    }
    if fault { Err(()) } else { Ok(()) }
}

/// A batch's answers: delivered when dropped, wherever that happens.
struct Answers {
    finishes: Vec<Finish>,
    outcome: Result<(), StoreError>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        for finish in self.finishes.drain(..) {
            finish(self.outcome.clone());
        }
    }
}

struct Ran {
    finishes: Vec<Finish>,
    changes: Vec<Change>,
    /// Why the batch must be rolled back (a write failed on storage in the middle).
    poisoned: Option<StoreError>,
    dirty: bool,
}

/// Runs the jobs against tables opened once; saves the counter and the counts per status, and
/// trims the event table.
fn run_jobs(txn: &WriteTransaction, jobs: Vec<Job>) -> Result<Ran, StoreError> {
    let t = Tables::open(txn)?;
    let seq = t.meta.get(META_SEQ)?.map(|v| v.value()).unwrap_or(0);
    let mut batch = Batch {
        t,
        counts: Counts::default(),
        seq,
        changes: Vec::new(),
        poisoned: None,
        dirty: false,
    };
    let finishes: Vec<Finish> = jobs.into_iter().map(|job| job(&mut batch)).collect();
    let Batch {
        mut t,
        counts,
        seq,
        changes,
        mut poisoned,
        dirty,
    } = batch;
    if dirty && poisoned.is_none() {
        let saved = (|| -> Result<(), StoreError> {
            t.meta.insert(META_SEQ, seq)?;
            counts.save(&mut t.meta)?;
            let len = t.events.len()?;
            if len > MAX_EVENTS {
                // Not the changes whose commit statuses are still to post (the outbox).
                let trim = super::outbox::trim(&t.meta, &t.events, len - KEEP_EVENTS)?;
                for _ in 0..trim {
                    t.events.pop_first()?;
                }
            }
            Ok(())
        })();
        if let Err(e) = saved {
            tracing::error!(error = %e, "store: cannot save the sequence counter");
            poisoned = Some(e);
        }
    }
    Ok(Ran {
        finishes,
        changes,
        poisoned,
        dirty,
    })
}
