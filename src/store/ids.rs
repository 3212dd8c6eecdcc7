//! The queue id → arrival seq index, in memory.
//!
//! Queues are stored under their arrival number, so a new queue is appended to `QUEUES` and a
//! batch of enqueues rewrites a few pages at the end of the table. Stored under the client's id,
//! every enqueue of a batch rewrote its own page chosen by the id (and fsynced it): that was
//! most of the writer's time per enqueue. The index costs about 100 bytes per queue and one
//! scan of `QUEUES` at start-up.
//!
//! Consistency: the writer changes the index only after a commit, before it answers the
//! callers, so an id a caller was told about is in the index; a reader looks the id up first
//! and opens its read transaction after, so the seq it found is in the snapshot unless the queue
//! was deleted since (then: not found, which is true).

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

    pub(super) fn get(&self, id: &QueueId) -> Option<u64> {
        self.map.read().expect("id index lock").get(id).copied()
    }

    /// Applies a committed batch's changes.
    pub(super) fn apply(&self, pending: Pending) {
        if pending.is_empty() {
            return;
        }
        let mut map = self.map.write().expect("id index lock");
        for (id, seq) in pending {
            match seq {
                Some(seq) => map.insert(id, seq),
                None => map.remove(&id),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_binds_and_removes() {
        let id = |s: &str| QueueId::parse(s).unwrap();
        let ids = Ids::new(HashMap::from([(id("a"), 1), (id("b"), 2)]));
        ids.apply(Pending::from([(id("a"), None), (id("c"), Some(3))]));
        assert_eq!(ids.get(&id("a")), None);
        assert_eq!(ids.get(&id("b")), Some(2));
        assert_eq!(ids.get(&id("c")), Some(3));
    }
}
