//! The store thread: the only writer. It folds every write that is waiting into one durable
//! commit, then publishes the batch's changes, then answers the callers.
//!
//! Durability: every commit is `Durability::Immediate` (redb's default, fsynced before `commit`
//! returns), so a caller's answer — and the HTTP response after it — means the write survives a
//! `kill -9`. Folding is what makes that cheap: one fsync serves every write of the batch.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use redb::{Database, ReadableTable, ReadableTableMetadata, WriteTransaction};
use tokio::sync::{broadcast, oneshot, watch};

use super::StoreError;
use super::codec;
use super::tables::{EVENTS, META, META_SEQ};
use crate::model::{Change, QueueId, Status, TaskId, now_millis};

/// Most jobs folded into one commit.
const MAX_BATCH: usize = 1024;
/// Changes kept in the event table for SSE resume.
pub(super) const KEEP_EVENTS: u64 = 10_000;

/// A write: runs inside the batch's transaction and returns what to do once the commit is known.
pub(super) type Job = Box<dyn FnOnce(&mut Batch<'_>) -> Finish + Send>;
/// Called after the commit with its outcome.
pub(super) type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub(super) enum Msg {
    Job(Job),
    Stop(oneshot::Sender<()>),
}

/// The state a job sees: the open transaction, the sequence counter and the changes so far.
pub(crate) struct Batch<'t> {
    pub(super) txn: &'t WriteTransaction,
    seq: u64,
    changes: Vec<Change>,
    /// Set when a job failed half-way through a write: the whole batch is rolled back.
    poisoned: bool,
}

impl Batch<'_> {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
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
        let mut events = self.txn.open_table(EVENTS)?;
        events.insert(change.seq, codec::encode(&change).as_slice())?;
        let seq = change.seq;
        self.changes.push(change);
        Ok(seq)
    }

    /// Marks the batch for rollback after a storage error in the middle of a write.
    pub(super) fn poison(&mut self) {
        self.poisoned = true;
    }
}

pub(super) struct Publisher {
    pub changes: broadcast::Sender<Change>,
    pub latest: watch::Sender<u64>,
}

pub(super) fn run(db: Arc<Database>, rx: Receiver<Msg>, publisher: Publisher) {
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
            commit_batch(&db, jobs, &publisher);
        }
        if let Some(done) = stop {
            let _ = done.send(());
            return;
        }
    }
}

fn commit_batch(db: &Database, jobs: Vec<Job>, publisher: &Publisher) {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            // Dropping the jobs drops their reply channels: callers see `StoreError::Unavailable`.
            tracing::error!(error = %e, "store: cannot begin a write transaction");
            return;
        }
    };
    let start = match read_seq(&txn) {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "store: cannot read the sequence counter");
            return;
        }
    };
    let mut batch = Batch {
        txn: &txn,
        seq: start,
        changes: Vec::new(),
        poisoned: false,
    };
    let finishes: Vec<Finish> = jobs.into_iter().map(|job| job(&mut batch)).collect();
    let Batch {
        seq,
        changes,
        poisoned,
        ..
    } = batch;

    let outcome = if poisoned {
        Err(StoreError::Other(
            "a write failed; the batch was rolled back".into(),
        ))
    } else {
        finish_txn(txn, seq)
    };
    match &outcome {
        Ok(()) => {
            for change in changes {
                let seq = change.seq;
                let _ = publisher.changes.send(change);
                publisher.latest.send_replace(seq);
            }
        }
        Err(e) => tracing::error!(error = %e, "store: commit failed"),
    }
    for finish in finishes {
        finish(outcome.clone());
    }
}

fn read_seq(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let meta = txn.open_table(META)?;
    Ok(meta.get(META_SEQ)?.map(|v| v.value()).unwrap_or(0))
}

/// Saves the counter, trims the event table, commits (fsync).
fn finish_txn(txn: WriteTransaction, seq: u64) -> Result<(), StoreError> {
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_SEQ, seq)?;
        let mut events = txn.open_table(EVENTS)?;
        let excess = events.len()?.saturating_sub(KEEP_EVENTS);
        for _ in 0..excess {
            events.pop_first()?;
        }
    }
    txn.commit()?;
    Ok(())
}
