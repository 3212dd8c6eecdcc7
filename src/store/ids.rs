//! The queue id → arrival seq index and the number of queues per status, in memory.
//!
//! Queues are stored under their arrival number, so a new queue is appended to `QUEUES` and a
//! batch of enqueues rewrites a few pages at the end of the table. Stored under the client's id,
//! every enqueue of a batch rewrote its own page chosen by the id (and fsynced it): that was
//! most of the writer's time per enqueue. The index costs about 100 bytes per queue and one
//! scan of `QUEUES` at start-up.
//!
//! Consistency: a batch that changes the index holds its write lock across the commit and the
//! change ([`Ids::commit`]); a read by id holds the read lock across the lookup and the start of
//! its read transaction ([`Ids::snapshot`]). So a snapshot and the index always agree: a queue
//! any snapshot (a listing, the change feed) has shown can be read by its id, and a caller that
//! was answered finds its queue.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use crate::model::{QueueId, Status};

#[derive(Default)]
pub(super) struct Ids {
    // std locks: held for one lookup or one batch's updates, never across an await.
    map: RwLock<HashMap<QueueId, u64>>,
    /// Queues per status, in the order of `Status::ALL` (the dashboard's and the metrics'
    /// counts, without a scan of every queue).
    counts: Mutex<[u64; Status::ALL.len()]>,
}

/// A batch's changes to the index and the counts, applied once the batch is committed.
#[derive(Default)]
pub(super) struct Pending {
    /// `Some(seq)` binds an id, `None` removes it.
    ids: HashMap<QueueId, Option<u64>>,
    counts: [i64; Status::ALL.len()],
}

fn slot(status: Status) -> usize {
    Status::ALL
        .iter()
        .position(|s| *s == status)
        .expect("every status is in Status::ALL")
}

impl Pending {
    /// What the batch did to `id` so far: `None` if nothing.
    pub(super) fn get(&self, id: &QueueId) -> Option<Option<u64>> {
        self.ids.get(id).copied()
    }

    pub(super) fn bind(&mut self, id: &QueueId, seq: Option<u64>) {
        self.ids.insert(id.clone(), seq);
    }

    /// One more (`+1`) or one fewer (`-1`) queue in `status`.
    pub(super) fn count(&mut self, status: Status, delta: i64) {
        self.counts[slot(status)] += delta;
    }
}

impl Ids {
    /// The index and the counts of the queues in `queues` (id, seq, status).
    pub(super) fn new(queues: impl IntoIterator<Item = (QueueId, u64, Status)>) -> Ids {
        let mut map = HashMap::new();
        let mut counts = [0u64; Status::ALL.len()];
        for (id, seq, status) in queues {
            map.insert(id, seq);
            counts[slot(status)] += 1;
        }
        Ids {
            map: RwLock::new(map),
            counts: Mutex::new(counts),
        }
    }

    /// The writer's lookup (the writer is the only one that changes the index).
    pub(super) fn get(&self, id: &QueueId) -> Option<u64> {
        self.map.read().expect("id index lock").get(id).copied()
    }

    /// Looks `id` up and runs `open` (which starts a read transaction) before any batch can
    /// commit a change to the index.
    pub(super) fn snapshot<T>(&self, id: &QueueId, open: impl FnOnce(u64) -> T) -> Option<T> {
        let map = self.map.read().expect("id index lock");
        map.get(id).map(|&seq| open(seq))
    }

    /// Queues per status, as of the last commit.
    pub(super) fn counts(&self) -> Vec<(Status, u64)> {
        let counts = self.counts.lock().expect("counts lock");
        Status::ALL
            .into_iter()
            .zip(counts.iter().copied())
            .collect()
    }

    /// Runs `commit`; if it succeeds, applies the batch's changes: the index before any read by
    /// id can look again (a batch that changes no id does not take its lock), then the counts.
    pub(super) fn commit<E>(
        &self,
        pending: Pending,
        commit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        if pending.ids.is_empty() {
            commit()?;
        } else {
            let mut map = self.map.write().expect("id index lock");
            commit()?;
            for (id, seq) in pending.ids {
                match seq {
                    Some(seq) => map.insert(id, seq),
                    None => map.remove(&id),
                };
            }
        }
        if pending.counts.iter().any(|d| *d != 0) {
            let mut counts = self.counts.lock().expect("counts lock");
            for (n, d) in counts.iter_mut().zip(pending.counts) {
                *n = n.saturating_add_signed(d);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_binds_removes_and_counts_only_when_it_succeeds() {
        let id = |s: &str| QueueId::parse(s).unwrap();
        let ids = Ids::new([(id("a"), 1, Status::Waiting), (id("b"), 2, Status::Passed)]);
        let count = |ids: &Ids, s: Status| ids.counts().into_iter().find(|c| c.0 == s).unwrap().1;
        let mut p = Pending::default();
        p.bind(&id("b"), None);
        p.count(Status::Passed, -1);
        assert_eq!(ids.commit(p, || Err("disk full")), Err("disk full"));
        assert_eq!(
            ids.get(&id("b")),
            Some(2),
            "a failed commit changes nothing"
        );
        assert_eq!(count(&ids, Status::Passed), 1);
        let mut p = Pending::default();
        p.bind(&id("a"), None);
        p.count(Status::Waiting, -1);
        p.bind(&id("c"), Some(3));
        p.count(Status::Waiting, 1);
        p.count(Status::Waiting, -1);
        p.count(Status::Running, 1);
        assert_eq!(ids.commit::<()>(p, || Ok(())), Ok(()));
        assert_eq!(ids.get(&id("a")), None);
        assert_eq!(ids.get(&id("b")), Some(2));
        assert_eq!(ids.snapshot(&id("c"), |seq| seq * 10), Some(30));
        assert_eq!(ids.snapshot(&id("a"), |seq| seq), None);
        assert_eq!(count(&ids, Status::Waiting), 0);
        assert_eq!(count(&ids, Status::Running), 1);
        assert_eq!(count(&ids, Status::Passed), 1);
    }
}
