//! The indexes of `QUEUES`, kept in the file: queue id → arrival seq (`IDS`), (status, arrival
//! seq) (`STATUSES`) and the number of queues per status (in `META`).
//!
//! Every write that adds, removes or moves a queue changes them in the same transaction
//! (`writes` through [`Batch`](super::actor::Batch)), so opening a file reads none of them
//! and costs the same whatever the history: no scan of the queues at start-up, and nothing per
//! queue in memory. A listing filtered by status reads the status index from the newest
//! queue of that status back, and start-up recovery finds the `running` queues there.
//!
//! Consistency: a read takes one read transaction and finds the index and the queues in it as
//! one commit left them; the writer changes both in one transaction. So a queue any snapshot
//! (a listing, the change feed) has shown can be read by its id, and a caller that was
//! answered (after the commit) finds its queue. No lock is needed for that.

use std::ops::Range;

use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::StoreError;
use super::codec;
use super::tables::{IDS, META, QUEUES, STATUSES, meta_count, status_code};
use crate::model::{Queue, Status};

/// The key of the queue that arrived `seq` in the status index, while it is in `status`.
pub(super) fn status_key(status: Status, seq: u64) -> (u8, u64) {
    (status_code(status), seq)
}

/// The keys of the queues in `status` that arrived before `before` (all of them: `None`), in
/// arrival order.
pub(super) fn of_status(status: Status, before: Option<u64>) -> Range<(u8, u64)> {
    let code = status_code(status);
    match before {
        Some(seq) => (code, 0)..(code, seq),
        // Every arrival seq is below `u64::MAX`: the sequence counter starts at 1.
        None => (code, 0)..(code, u64::MAX),
    }
}

/// A batch's changes to the counts per status, written once when the batch ends (one row per
/// status that changed, not one write per queue).
#[derive(Default)]
pub(super) struct Counts([i64; Status::ALL.len()]);

impl Counts {
    /// One more (`+1`) or one fewer (`-1`) queue in `status`.
    pub(super) fn add(&mut self, status: Status, delta: i64) {
        self.0[usize::from(status_code(status))] += delta;
    }

    /// Writes the changed counts into `meta`.
    pub(super) fn save(&self, meta: &mut Table<'_, &'static str, u64>) -> Result<(), StoreError> {
        for status in Status::ALL {
            let delta = self.0[usize::from(status_code(status))];
            if delta == 0 {
                continue;
            }
            let key = meta_count(status);
            let now = meta.get(key)?.map_or(0, |v| v.value());
            meta.insert(key, now.saturating_add_signed(delta))?;
        }
        Ok(())
    }
}

/// Queues per status in `txn`'s snapshot, in the order of `Status::ALL`.
pub(super) fn counts(txn: &ReadTransaction) -> Result<Vec<(Status, u64)>, StoreError> {
    let meta = txn.open_table(META)?;
    let mut out = Vec::with_capacity(Status::ALL.len());
    for status in Status::ALL {
        let n = meta.get(meta_count(status))?.map_or(0, |v| v.value());
        out.push((status, n));
    }
    Ok(out)
}

/// Builds the three indexes from every queue in `QUEUES` (the migration from a format that
/// kept them in memory; the tables are new then). Returns how many queues it indexed.
pub(super) fn build(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let queues = txn.open_table(QUEUES)?;
    let mut ids = txn.open_table(IDS)?;
    let mut statuses = txn.open_table(STATUSES)?;
    let mut meta = txn.open_table(META)?;
    let mut per_status = Counts::default();
    let mut n = 0;
    for entry in queues.iter()? {
        let (seq, bytes) = entry?;
        let q: Queue = codec::decode(bytes.value())?;
        ids.insert(q.id.as_str(), seq.value())?;
        statuses.insert(status_key(q.status, seq.value()), ())?;
        per_status.add(q.status, 1);
        n += 1;
    }
    per_status.save(&mut meta)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use redb::{Database, ReadableDatabase, ReadableTableMetadata};

    use super::*;
    use crate::model::{QueueId, QueueRequest};
    use crate::store::{ClaimFilter, RerunOnly, Store};

    fn id(s: &str) -> QueueId {
        QueueId::parse(s).unwrap()
    }

    fn req() -> QueueRequest {
        QueueRequest {
            repo: "https://git.example.invalid/fw.git".into(),
            branch: Some("main".into()),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            environment: "xtensa-sim".into(),
            scenarios: vec!["scenarios/a.xml".into()],
            priority: 0,
        }
    }

    /// Checks the three indexes against the queues, entry by entry; returns the counts.
    fn check(db: &Database) -> BTreeMap<&'static str, u64> {
        let txn = db.begin_read().unwrap();
        let queues = txn.open_table(QUEUES).unwrap();
        let ids = txn.open_table(IDS).unwrap();
        let statuses = txn.open_table(STATUSES).unwrap();
        let mut recount = BTreeMap::new();
        for entry in queues.iter().unwrap() {
            let (seq, bytes) = entry.unwrap();
            let q: Queue = codec::decode(bytes.value()).unwrap();
            let by_id = ids.get(q.id.as_str()).unwrap().map(|v| v.value());
            assert_eq!(by_id, Some(seq.value()), "the id index finds {}", q.id);
            let key = status_key(q.status, seq.value());
            assert!(statuses.get(key).unwrap().is_some(), "{} by status", q.id);
            *recount.entry(q.status.as_str()).or_insert(0) += 1;
        }
        let n = queues.len().unwrap();
        assert_eq!(ids.len().unwrap(), n, "no id without its queue");
        assert_eq!(
            statuses.len().unwrap(),
            n,
            "no status entry without its queue"
        );
        let counts: BTreeMap<&'static str, u64> = counts(&txn)
            .unwrap()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), n))
            .collect();
        assert_eq!(counts, recount, "the counts are those of the queues");
        counts
    }

    /// Runs `check` on the store's file between writes.
    async fn check_store(store: &Store) -> BTreeMap<&'static str, u64> {
        store.read(|db| Ok(check(db))).await.unwrap()
    }

    #[tokio::test]
    async fn the_indexes_follow_every_write_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = Store::open(&path).unwrap();
        for i in 0..10 {
            store.enqueue(id(&format!("q{i}")), req()).await.unwrap();
        }
        assert_eq!(check_store(&store).await, BTreeMap::from([("waiting", 10)]));
        let a = store
            .claim_next(ClaimFilter::default())
            .await
            .unwrap()
            .unwrap();
        let b = store
            .claim_next(ClaimFilter::default())
            .await
            .unwrap()
            .unwrap();
        store.transition(&a.id, Status::Passed, None).await.unwrap();
        store.transition(&b.id, Status::Failed, None).await.unwrap();
        store
            .claim_next(ClaimFilter::default())
            .await
            .unwrap()
            .unwrap();
        store.abort_waiting(&id("q9"), "no".into()).await.unwrap();
        store.rerun(&b.id, RerunOnly::All).await.unwrap();
        store.delete(&id("q8")).await.unwrap();
        assert_eq!(
            check_store(&store).await,
            BTreeMap::from([
                ("waiting", 6),
                ("running", 1),
                ("passed", 1),
                ("failed", 1),
                ("aborted", 1),
            ])
        );
        // Retention's removal: only the finished ones go.
        let removed = store
            .delete_finished(vec![a.id.clone(), id("q9"), id("q7")])
            .await
            .unwrap();
        assert_eq!(removed, [a.id.clone(), id("q9")]);
        assert!(store.get(&a.id).await.unwrap().is_none());
        let after = check_store(&store).await;
        assert_eq!(after.get("passed"), None);
        assert_eq!(after.get("aborted"), None);
        // Recovery: the running queue goes back to waiting.
        let recovered = store.recover(3).await.unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].status, Status::Waiting);
        let before = check_store(&store).await;
        assert_eq!(before.get("running"), None);
        store.close().await;
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(check_store(&store).await, before, "kept in the file");
        let counted: BTreeMap<&'static str, u64> = store
            .counts()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), n))
            .collect();
        assert_eq!(counted, before);
    }

    /// A caller that was answered reads its queue by id at once, and a deleted queue is gone
    /// from the index as soon as the deletion is answered, while batches are committing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answered_write_is_seen_by_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let tasks = (0..64).map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..20 {
                    let qid = id(&format!("c{c}-{n}"));
                    store.enqueue(qid.clone(), req()).await.unwrap();
                    let got = store.get(&qid).await.unwrap();
                    assert_eq!(got.map(|v| v.queue.id), Some(qid.clone()));
                    if n % 2 == 0 {
                        store.delete(&qid).await.unwrap();
                        assert!(store.get(&qid).await.unwrap().is_none(), "{qid} deleted");
                    }
                }
            })
        });
        for t in futures_util::future::join_all(tasks).await {
            t.unwrap();
        }
        assert_eq!(
            check_store(&store).await,
            BTreeMap::from([("waiting", 64 * 10)])
        );
    }

    /// A batch rolled back after a write failed half-way leaves the indexes as they were.
    #[tokio::test]
    async fn a_rolled_back_batch_leaves_the_indexes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        store.enqueue(id("kept"), req()).await.unwrap();
        let failed = store
            .write(|b| {
                let seq = b.seq_of(&id("kept"))?.unwrap();
                b.index(&id("kept"), seq, Some(Status::Waiting), None)?;
                b.index(&id("ghost"), 99, None, Some(Status::Running))?;
                Err::<(), _>(StoreError::Other("half-way".into()))
            })
            .await;
        assert!(failed.is_err());
        assert!(store.get(&id("kept")).await.unwrap().is_some());
        assert!(store.get(&id("ghost")).await.unwrap().is_none());
        assert_eq!(check_store(&store).await, BTreeMap::from([("waiting", 1)]));
    }

    /// A listing by status pages through the status index, newest first, whatever lies
    /// between.
    #[tokio::test]
    async fn a_status_listing_pages_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        for i in 0..30 {
            store.enqueue(id(&format!("q{i:02}")), req()).await.unwrap();
            if i % 6 == 0 {
                store.claim_next(ClaimFilter::default()).await.unwrap();
            }
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list(Some(Status::Running), 2, cursor).await.unwrap();
            assert!(page.items.iter().all(|q| q.status == Status::Running));
            seen.extend(page.items.iter().map(|q| q.id.to_string()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        // Claims take the oldest waiting queue: q00 to q04.
        assert_eq!(seen, ["q04", "q03", "q02", "q01", "q00"]);
        let passed = store.list(Some(Status::Passed), 10, None).await.unwrap();
        assert!(passed.items.is_empty() && passed.next_cursor.is_none());
    }
}
