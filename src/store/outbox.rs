//! The commit-status outbox, built on the event table.
//!
//! Every queue state change is written to `EVENTS` in the same commit as the change itself, so
//! the statuses still to post are the events after the sender's position. That position lives in
//! `META` (`statuses`): every change up to it has had its status posted, or was passed over on
//! purpose. The sender ([`crate::statuses`]) follows the feed from there after a start, and moves
//! the position on after the changes it handled; the event table's trim keeps every event after
//! it ([`trim`]), up to [`MAX_OUTBOX_EVENTS`], so a crash loses no status that was due.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};

use super::tables::{META, META_SEQ, META_STATUSES};
use super::{Store, StoreError};

/// The most events the table keeps for a sender that lags (Gitea down for long): past this the
/// oldest unposted ones are dropped (logged), so the file cannot grow forever. Small in unit
/// tests, so that they can reach it.
pub(super) const MAX_OUTBOX_EVENTS: u64 = if cfg!(test) { 30_000 } else { 1_000_000 };
/// Dropped on top when the bound is reached, so that the loss is logged once per this many
/// changes rather than in every batch.
const OUTBOX_SLACK: u64 = MAX_OUTBOX_EVENTS / 100;
/// The most events one batch trims: a sender that catches up after a long outage frees the
/// table over several batches instead of holding up one.
const MAX_TRIM: u64 = 100_000;

impl Store {
    /// The sender's position: every change up to this sequence number has had its commit status
    /// posted or passed over. `None` until a sender ran on this file.
    pub async fn statuses_cursor(&self) -> Result<Option<u64>, StoreError> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get(META_STATUSES)?.map(|v| v.value()))
        })
        .await
    }

    /// The sender's position, set to the latest committed change when the file has none yet (a
    /// new file, or one written by a build without the outbox): a first start does not post the
    /// statuses of old history. Call it before start-up recovery, whose changes then get their
    /// statuses.
    pub async fn init_statuses_cursor(&self) -> Result<u64, StoreError> {
        self.write(|b| {
            if let Some(seq) = b.t.meta.get(META_STATUSES)?.map(|v| v.value()) {
                return Ok(seq);
            }
            // The last committed change: changes of this batch, if any, come after it.
            let latest = b.t.meta.get(META_SEQ)?.map_or(0, |v| v.value());
            b.touch();
            b.t.meta.insert(META_STATUSES, latest)?;
            Ok(latest)
        })
        .await
    }

    /// Moves the sender's position on to `seq` (never back): the statuses of every change up to
    /// it were posted or passed over.
    pub async fn set_statuses_cursor(&self, seq: u64) -> Result<(), StoreError> {
        self.write(move |b| {
            let current = b.t.meta.get(META_STATUSES)?.map(|v| v.value());
            if current.is_none_or(|c| c < seq) {
                b.touch();
                b.t.meta.insert(META_STATUSES, seq)?;
            }
            Ok(())
        })
        .await
    }
}

/// How many of the oldest events the trim drops, of the `wanted` ones beyond the newest
/// `KEEP_EVENTS`: none that the sender has yet to handle, unless the table holds more than
/// [`MAX_OUTBOX_EVENTS`]. Without a position (no sender ran) the table is trimmed as it always
/// was. Sequence numbers in the table are contiguous, so the count up to the position is a
/// subtraction.
pub(super) fn trim(
    meta: &Table<'_, &'static str, u64>,
    events: &Table<'_, u64, &'static [u8]>,
    wanted: u64,
) -> Result<u64, StoreError> {
    let Some(cursor) = meta.get(META_STATUSES)?.map(|v| v.value()) else {
        return Ok(wanted.min(MAX_TRIM));
    };
    let len = events.len()?;
    let first = events.first()?.map_or(0, |(seq, _)| seq.value());
    let handled = cursor.saturating_add(1).saturating_sub(first);
    let over = match len.saturating_sub(MAX_OUTBOX_EVENTS) {
        0 => 0,
        n => n + OUTBOX_SLACK,
    };
    let trim = wanted.min(handled.max(over)).min(MAX_TRIM);
    if trim > handled {
        tracing::warn!(
            dropped = trim - handled,
            from_seq = first.max(cursor.saturating_add(1)),
            "store: more than {MAX_OUTBOX_EVENTS} changes wait for their commit statuses \
             (is Gitea down?); the oldest are dropped and their statuses will not be posted"
        );
    }
    Ok(trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{QueueId, Status};
    use crate::store::KEEP_EVENTS;
    use crate::store::tables::EVENTS;

    /// Records `n` changes in one batch (a stand-in for that many state changes).
    async fn record(store: &Store, n: u64) {
        let id = QueueId::parse("q").unwrap();
        store
            .write(move |b| {
                for _ in 0..n {
                    b.record(&id, None, Some(Status::Waiting), Some(Status::Running))?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }

    /// (first seq, count) of the event table.
    async fn events(store: &Store) -> (u64, u64) {
        store
            .read(|db| {
                let txn = db.begin_read()?;
                let events = txn.open_table(EVENTS)?;
                let first = events.first()?.map_or(0, |(k, _)| k.value());
                Ok((first, events.len()?))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_position_starts_at_the_latest_change_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = Store::open(&path).unwrap();
        record(&store, 3).await;
        assert_eq!(store.statuses_cursor().await.unwrap(), None);
        assert_eq!(
            store.init_statuses_cursor().await.unwrap(),
            3,
            "not history"
        );
        record(&store, 2).await;
        assert_eq!(store.init_statuses_cursor().await.unwrap(), 3, "kept");
        store.set_statuses_cursor(4).await.unwrap();
        store.set_statuses_cursor(2).await.unwrap();
        assert_eq!(
            store.statuses_cursor().await.unwrap(),
            Some(4),
            "never back"
        );
        store.close().await;
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.statuses_cursor().await.unwrap(), Some(4));
        assert_eq!(store.init_statuses_cursor().await.unwrap(), 4);
        let after = store.events_after(4).await.unwrap();
        assert!(after.complete);
        assert_eq!(after.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [5]);
    }

    #[tokio::test]
    async fn the_trim_keeps_every_change_after_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(store.init_statuses_cursor().await.unwrap(), 0);
        record(&store, KEEP_EVENTS + 2_000).await;
        assert_eq!(
            events(&store).await,
            (1, KEEP_EVENTS + 2_000),
            "all unposted"
        );
        // Posted up to 500: those may go, the rest stays.
        store.set_statuses_cursor(500).await.unwrap();
        assert_eq!(events(&store).await, (501, KEEP_EVENTS + 1_500));
        assert!(store.events_after(500).await.unwrap().complete);
        // Posted far enough: back to the newest KEEP_EVENTS.
        store.set_statuses_cursor(KEEP_EVENTS).await.unwrap();
        assert_eq!(events(&store).await, (2_001, KEEP_EVENTS));
    }

    #[tokio::test]
    async fn a_sender_far_behind_gets_every_change_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(store.init_statuses_cursor().await.unwrap(), 0);
        let n = 2 * crate::store::reads::EVENTS_PAGE as u64 + 500;
        record(&store, n).await;
        // Read page by page, with no live change to wake it.
        let mut follower = store.follow_from(0);
        for seq in 1..=n {
            let next = tokio::time::timeout(std::time::Duration::from_secs(30), follower.next());
            match next.await.expect("no hang between pages") {
                Some(crate::store::Feed::Change(c)) => assert_eq!(c.seq, seq),
                other => panic!("{other:?} instead of change {seq}"),
            }
        }
    }

    #[tokio::test]
    async fn a_lagging_sender_cannot_grow_the_table_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(store.init_statuses_cursor().await.unwrap(), 0);
        record(&store, MAX_OUTBOX_EVENTS + 100).await;
        let (first, len) = events(&store).await;
        assert_eq!(len, MAX_OUTBOX_EVENTS - OUTBOX_SLACK);
        assert_eq!(first, 100 + OUTBOX_SLACK + 1, "the oldest unposted went");
        assert!(!store.events_after(0).await.unwrap().complete, "a reset");
    }
}
