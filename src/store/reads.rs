//! Read-only queries. Each opens its own read transaction; they run on blocking threads and
//! never wait for the writer.

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use super::codec;
use super::index;
use super::tables::{EVENTS, IDS, QUEUES, STATUSES, TASKS, WAITING};
use super::{QueueView, StoreError};
use crate::model::{Beyond, Change, Queue, QueueId, Status, Task, Verdict};

/// One page of a newest-first listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Queue>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<u64>,
}

/// The most changes one read of the event table returns: a follower far behind (the table can
/// hold many changes for the commit-status outbox) reads it page by page, in bounded memory.
pub const EVENTS_PAGE: usize = 10_000;

/// Changes after a sequence number.
#[derive(Debug, Clone)]
pub struct EventsAfter {
    /// In order, at most `EVENTS_PAGE`: when full, ask again after the last one.
    pub changes: Vec<Change>,
    /// `false` when changes after the asked-for seq were already trimmed: the client must reload.
    pub complete: bool,
}

/// The queue that arrived `seq`th, if it is still stored.
pub(super) fn queue(txn: &ReadTransaction, seq: u64) -> Result<Option<Queue>, StoreError> {
    let queues = txn.open_table(QUEUES)?;
    match queues.get(seq)? {
        Some(v) => Ok(Some(codec::decode(v.value())?)),
        None => Ok(None),
    }
}

pub(super) fn get(db: &Database, id: &QueueId) -> Result<Option<QueueView>, StoreError> {
    // The index and the queues in one snapshot (see `index`).
    let txn = db.begin_read()?;
    let Some(seq) = txn.open_table(IDS)?.get(id.as_str())?.map(|v| v.value()) else {
        return Ok(None);
    };
    let Some(queue) = queue(&txn, seq)? else {
        return Ok(None);
    };
    let tasks_table = txn.open_table(TASKS)?;
    let mut tasks: Vec<Task> = Vec::new();
    for entry in tasks_table.range((queue.seq, 0)..=(queue.seq, u32::MAX))? {
        tasks.push(codec::decode(entry?.1.value())?);
    }
    Ok(Some(QueueView { queue, tasks }))
}

/// Newest first, from before `cursor`: with a status, through the status index, so the page
/// costs the same however many queues of other statuses lie between.
pub(super) fn list(
    db: &Database,
    status: Option<Status>,
    limit: usize,
    cursor: Option<u64>,
) -> Result<Page, StoreError> {
    let txn = db.begin_read()?;
    let queues = txn.open_table(QUEUES)?;
    let mut items = Vec::new();
    let mut more = false;
    match status {
        None => {
            for entry in queues.range(..cursor.unwrap_or(u64::MAX))?.rev() {
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(codec::decode::<Queue>(entry?.1.value())?);
            }
        }
        Some(status) => {
            let statuses = txn.open_table(STATUSES)?;
            for entry in statuses.range(index::of_status(status, cursor))?.rev() {
                if items.len() == limit {
                    more = true;
                    break;
                }
                let seq = entry?.0.value().1;
                // In the same snapshot as the index: always there.
                if let Some(bytes) = queues.get(seq)? {
                    items.push(codec::decode::<Queue>(bytes.value())?);
                }
            }
        }
    }
    // There is at least one more: the page ends after the last item taken.
    let next_cursor = if more {
        items.last().map(|q| q.seq)
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Queues per status, in the order of `Status::ALL`.
pub(super) fn counts(db: &Database) -> Result<Vec<(Status, u64)>, StoreError> {
    index::counts(&db.begin_read()?)
}

pub(super) fn waiting(db: &Database) -> Result<Vec<Queue>, StoreError> {
    let txn = db.begin_read()?;
    let waiting = txn.open_table(WAITING)?;
    let mut out = Vec::new();
    for entry in waiting.iter()? {
        let (key, _) = entry?;
        if let Some(q) = queue(&txn, key.value().1)? {
            out.push(q);
        }
    }
    Ok(out)
}

pub(super) fn events_after(db: &Database, seq: u64) -> Result<EventsAfter, StoreError> {
    let txn = db.begin_read()?;
    let events = txn.open_table(EVENTS)?;
    // Sequence numbers are contiguous and the table is trimmed from the front only, so the
    // answer is complete when it starts right after `seq` (or there is nothing newer).
    let mut changes = Vec::new();
    for entry in events.range(seq.saturating_add(1)..)?.take(EVENTS_PAGE) {
        changes.push(codec::decode::<Change>(entry?.1.value())?);
    }
    let complete = changes.first().is_none_or(|c| c.seq <= seq + 1);
    Ok(EventsAfter { changes, complete })
}

/// The finished queues `beyond` judges to be beyond the retention limits, oldest first, at most
/// `max`: a scan from the oldest queue that stops where `beyond` says nothing later can be.
/// `beyond` is made from the number of finished queues in the same snapshot.
pub(super) fn beyond_limits(
    db: &Database,
    beyond: impl FnOnce(u64) -> Beyond,
    max: usize,
) -> Result<Vec<Queue>, StoreError> {
    let mut out = Vec::new();
    let txn = db.begin_read()?;
    let finished = index::counts(&txn)?
        .into_iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, n)| n)
        .sum();
    let mut beyond = beyond(finished);
    if beyond.is_done() {
        return Ok(out);
    }
    let queues = txn.open_table(QUEUES)?;
    for entry in queues.iter()? {
        let q: Queue = codec::decode(entry?.1.value())?;
        match beyond.judge(&q) {
            Verdict::Remove => out.push(q),
            Verdict::Keep => {}
            Verdict::Stop => break,
        }
        if out.len() == max {
            break;
        }
    }
    Ok(out)
}
