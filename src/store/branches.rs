//! The branch index (`BRANCHES`): for each (repository, branch, environment), the arrival seq of
//! its newest queue that finished with an outcome ([`Status::is_outcome`]) — what a status badge
//! shows. It is written when a queue finishes or is deleted, never at enqueue, so the enqueue
//! path pays nothing for it; and a badge is one lookup (or one short range, without an
//! environment), whatever the history and whatever branch name a client makes up.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::StoreError;
use super::codec;
use super::tables::{BRANCHES, QUEUES};
use crate::model::Queue;

/// `BRANCHES` as a write opens it.
pub(super) type BranchTable<'t> = Table<'t, (&'static str, &'static str, &'static str), u64>;

/// The most queues a delete reads to find the next older outcome of the branch whose newest it
/// removes (each a decode of about a microsecond, in the writer thread).
const RESCAN: usize = 100_000;

/// The index key of `q`, if it has one: queues enqueued without a branch are not indexed.
fn key(q: &Queue) -> Option<(&str, &str, &str)> {
    let r = &q.request;
    Some((
        r.repo.as_str(),
        r.branch.as_deref()?,
        r.environment.as_str(),
    ))
}

/// Queue `q` has just finished: it is its branch's newest outcome unless a queue that arrived
/// after it finished first.
pub(super) fn finished(branches: &mut BranchTable<'_>, q: &Queue) -> Result<(), StoreError> {
    let Some(key) = key(q) else {
        return Ok(());
    };
    if !q.status.is_outcome() {
        return Ok(());
    }
    let newer = branches.get(key)?.is_some_and(|v| v.value() > q.seq);
    if !newer {
        branches.insert(key, q.seq)?;
    }
    Ok(())
}

/// Queue `q` is being deleted (it is still in `queues`): if it was its branch's newest outcome,
/// the next older one takes its place, found by reading the queues that arrived before it,
/// newest first, at most [`RESCAN`] of them (a delete is rare; an old branch's entry goes).
pub(super) fn deleted(
    branches: &mut BranchTable<'_>,
    queues: &Table<'_, u64, &'static [u8]>,
    q: &Queue,
) -> Result<(), StoreError> {
    let Some(key) = key(q) else {
        return Ok(());
    };
    if branches.get(key)?.map(|v| v.value()) != Some(q.seq) {
        return Ok(());
    }
    let mut next = None;
    for entry in queues.range(..q.seq)?.rev().take(RESCAN) {
        let older: Queue = codec::decode(entry?.1.value())?;
        if older.status.is_outcome() && self::key(&older) == Some(key) {
            next = Some(older.seq);
            break;
        }
    }
    match next {
        Some(seq) => branches.insert(key, seq)?,
        None => branches.remove(key)?,
    };
    Ok(())
}

/// Builds the index from every queue (the migration from a format without it). Returns how
/// many branches it holds.
pub(super) fn build(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let queues = txn.open_table(QUEUES)?;
    let mut branches = txn.open_table(BRANCHES)?;
    // Oldest first: each finished queue is the newest of its branch so far.
    for entry in queues.iter()? {
        let q: Queue = codec::decode(entry?.1.value())?;
        finished(&mut branches, &q)?;
    }
    Ok(branches.len()?)
}

/// The newest queue of `repo` and `branch` (and of `environment` when given) that finished with
/// an outcome.
pub(super) fn newest(
    db: &redb::Database,
    repo: &str,
    branch: &str,
    environment: Option<&str>,
) -> Result<Option<Queue>, StoreError> {
    let txn = db.begin_read()?;
    let branches = txn.open_table(BRANCHES)?;
    let seq = match environment {
        Some(env) => branches.get((repo, branch, env))?.map(|v| v.value()),
        // Every environment of the branch: the keys that start with (repo, branch).
        None => {
            let mut newest = None;
            for entry in branches.range((repo, branch, "")..)? {
                let (k, v) = entry?;
                let (r, b, _) = k.value();
                if r != repo || b != branch {
                    break;
                }
                newest = newest.max(Some(v.value()));
            }
            newest
        }
    };
    match seq {
        Some(seq) => super::reads::queue(&txn, seq),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Queue, QueueId, QueueRequest, Status};
    use crate::store::Store;

    const REPO: &str = "https://git.example.invalid/fw.git";

    fn request(branch: Option<&str>, environment: &str) -> QueueRequest {
        QueueRequest {
            repo: REPO.into(),
            branch: branch.map(str::to_owned),
            commit: None,
            environment: environment.into(),
            scenarios: vec![],
            priority: 0,
        }
    }

    async fn enqueue(store: &Store, id: &str, branch: Option<&str>, env: &str) -> QueueId {
        let id = QueueId::parse(id).unwrap();
        store
            .enqueue(id.clone(), request(branch, env))
            .await
            .unwrap();
        store.transition(&id, Status::Running, None).await.unwrap();
        id
    }

    async fn newest(store: &Store, branch: &str, env: Option<&str>) -> Option<String> {
        store
            .newest_of_branch(REPO.into(), branch.into(), env.map(str::to_owned))
            .await
            .unwrap()
            .map(|q: Queue| q.id.to_string())
    }

    /// The badge's queue is the newest to arrive among those that finished with an outcome, per
    /// environment or across them; deleting it brings back the one before; a queue without a
    /// branch or without an outcome is never it.
    #[tokio::test]
    async fn the_branch_index_follows_finishes_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(newest(&store, "main", None).await, None);

        let old = enqueue(&store, "old", Some("main"), "esp32").await;
        let new = enqueue(&store, "new", Some("main"), "esp32").await;
        let sim = enqueue(&store, "sim", Some("main"), "sim").await;
        let loose = enqueue(&store, "loose", None, "esp32").await;
        // The newer one finishes first; the older one finishing later does not replace it.
        store.transition(&new, Status::Failed, None).await.unwrap();
        store.transition(&old, Status::Passed, None).await.unwrap();
        store
            .transition(&loose, Status::Passed, None)
            .await
            .unwrap();
        assert_eq!(
            newest(&store, "main", Some("esp32")).await.as_deref(),
            Some("new")
        );
        assert_eq!(newest(&store, "main", None).await.as_deref(), Some("new"));
        // An abort says nothing about the code.
        store.transition(&sim, Status::Aborted, None).await.unwrap();
        assert_eq!(newest(&store, "main", Some("sim")).await, None);
        let sim2 = enqueue(&store, "sim2", Some("main"), "sim").await;
        store
            .transition(&sim2, Status::TimedOut, None)
            .await
            .unwrap();
        assert_eq!(
            newest(&store, "main", Some("sim")).await.as_deref(),
            Some("sim2")
        );
        assert_eq!(newest(&store, "main", None).await.as_deref(), Some("sim2"));
        // Another branch, a branch that shares a prefix, a made-up one: nothing.
        assert_eq!(newest(&store, "mai", None).await, None);
        assert_eq!(newest(&store, "main2", None).await, None);

        // Deleting the newest brings back the one before it; deleting another changes nothing.
        store.delete(&new).await.unwrap();
        assert_eq!(
            newest(&store, "main", Some("esp32")).await.as_deref(),
            Some("old")
        );
        store.delete(&sim).await.unwrap();
        assert_eq!(
            newest(&store, "main", Some("sim")).await.as_deref(),
            Some("sim2")
        );
        store.delete(&old).await.unwrap();
        assert_eq!(newest(&store, "main", Some("esp32")).await, None);
        assert_eq!(newest(&store, "main", None).await.as_deref(), Some("sim2"));
        store.close().await;
    }
}
