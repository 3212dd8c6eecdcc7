//! The queue id → arrival seq index, in memory.
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
use std::sync::RwLock;

use crate::model::QueueId;

#[derive(Default)]
pub(super) struct Ids {
    // std RwLock: held for one lookup or one batch's updates, never across an await.
    map: RwLock<HashMap<QueueId, u64>>,
}

/// A batch's changes to the index: `Some(seq)` binds an id, `None` removes it.
pub(super) type Pending = HashMap<QueueId, Option<u64>>;

impl Ids {
    pub(super) fn new(map: HashMap<QueueId, u64>) -> Ids {
        Ids {
            map: RwLock::new(map),
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

    /// Runs `commit`; if it succeeds, applies the batch's changes before any read by id can
    /// look again. A batch that changes no id does not take the lock.
    pub(super) fn commit<E>(
        &self,
        pending: Pending,
        commit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        if pending.is_empty() {
            return commit();
        }
        let mut map = self.map.write().expect("id index lock");
        commit()?;
        for (id, seq) in pending {
            match seq {
                Some(seq) => map.insert(id, seq),
                None => map.remove(&id),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_binds_and_removes_only_when_it_succeeds() {
        let id = |s: &str| QueueId::parse(s).unwrap();
        let ids = Ids::new(HashMap::from([(id("a"), 1), (id("b"), 2)]));
        let failed = ids.commit(Pending::from([(id("b"), None)]), || Err("disk full"));
        assert_eq!(failed, Err("disk full"));
        assert_eq!(
            ids.get(&id("b")),
            Some(2),
            "a failed commit changes nothing"
        );
        let done = ids.commit::<()>(Pending::from([(id("a"), None), (id("c"), Some(3))]), || {
            Ok(())
        });
        assert_eq!(done, Ok(()));
        assert_eq!(ids.get(&id("a")), None);
        assert_eq!(ids.get(&id("b")), Some(2));
        assert_eq!(ids.snapshot(&id("c"), |seq| seq * 10), Some(30));
        assert_eq!(ids.snapshot(&id("a"), |seq| seq), None);
    }
}
