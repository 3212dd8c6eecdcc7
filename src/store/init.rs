//! Opening a database file: creates the tables, checks the file format, and migrates the tables
//! of earlier formats. Nothing here reads the queues of a file of this format: opening costs the
//! same whatever the history.

use redb::{Database, ReadableTable, TableHandle, WriteTransaction};

use super::StoreError;
use super::codec;
use super::legacy::QueueV2;
use super::tables::{
    BRANCHES, EVENTS, FORMAT, IDS, META, META_SCHEMA, META_SEQ, QUEUES, STATUSES, TASKS, WAITING,
    v1, v2,
};
use super::{branches, index};
use crate::model::Queue;

/// Prepares the file; returns the last sequence number it holds.
pub(super) fn init(db: &Database) -> Result<u64, StoreError> {
    // One transaction: a crash during a migration leaves the file as it was.
    let txn = db.begin_write()?;
    let seq;
    {
        let mut meta = txn.open_table(META)?;
        let format = meta.get(META_SCHEMA)?.map(|v| v.value());
        let migrate = match format {
            None | Some(FORMAT) => None,
            Some(f @ 1..FORMAT) => Some(f),
            Some(f) => {
                return Err(StoreError::Other(format!(
                    "the database was written by a newer build (file format {f}; this build reads formats 1 to {FORMAT}): run that build, or start with another root"
                )));
            }
        };
        // Format 1 stored the record schema byte here; an older build refuses a newer format.
        meta.insert(META_SCHEMA, FORMAT)?;
        seq = meta.get(META_SEQ)?.map(|v| v.value()).unwrap_or(0);
        txn.open_table(QUEUES)?;
        txn.open_table(WAITING)?;
        txn.open_table(TASKS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(IDS)?;
        txn.open_table(STATUSES)?;
        txn.open_table(BRANCHES)?;
        drop(meta);
        match migrate {
            Some(1) => migrate_v1(&txn)?,
            Some(2) => migrate_v2(&txn)?,
            _ => {}
        }
        if let Some(from @ 1..4) = migrate {
            // Formats 1 to 3 kept these in memory, rebuilt at every start.
            let queues = index::build(&txn)?;
            tracing::info!(
                queues,
                from,
                "store: indexed the queues by id and by status, and counted them"
            );
        }
        if let Some(from) = migrate {
            // Formats 1 to 4 found a badge's queue by reading the newest queues.
            let branches = branches::build(&txn)?;
            tracing::info!(
                branches,
                from,
                "store: indexed the newest outcome of every branch"
            );
        }
    }
    txn.commit()?;
    Ok(seq)
}

/// `queues-v1` (keyed by id) and `arrivals-v1` → `queues-v3` (keyed by arrival seq).
fn migrate_v1(txn: &WriteTransaction) -> Result<(), StoreError> {
    if !has_table(txn, v1::QUEUES.name())? {
        return Ok(());
    }
    {
        let old = txn.open_table(v1::QUEUES)?;
        let mut new = txn.open_table(QUEUES)?;
        let mut moved = 0usize;
        for entry in old.iter()? {
            let (_, bytes) = entry?;
            let q: Queue = codec::decode::<QueueV2>(bytes.value())?.into();
            new.insert(q.seq, codec::encode(&q).as_slice())?;
            moved += 1;
        }
        tracing::info!(queues = moved, "store: migrated queues-v1 to queues-v3");
    }
    txn.delete_table(v1::QUEUES)?;
    txn.delete_table(v1::ARRIVALS)?;
    Ok(())
}

/// `queues-v2` → `queues-v3` (each queue with an origin, no resolved commit, no re-runs).
fn migrate_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    if !has_table(txn, v2::QUEUES.name())? {
        return Ok(());
    }
    {
        let old = txn.open_table(v2::QUEUES)?;
        let mut new = txn.open_table(QUEUES)?;
        let mut moved = 0usize;
        for entry in old.iter()? {
            let (seq, bytes) = entry?;
            let q: Queue = codec::decode::<QueueV2>(bytes.value())?.into();
            new.insert(seq.value(), codec::encode(&q).as_slice())?;
            moved += 1;
        }
        tracing::info!(queues = moved, "store: migrated queues-v2 to queues-v3");
    }
    txn.delete_table(v2::QUEUES)?;
    Ok(())
}

fn has_table(txn: &WriteTransaction, name: &str) -> Result<bool, StoreError> {
    Ok(txn.list_tables()?.any(|t| t.name() == name))
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTableMetadata};

    use super::*;
    use crate::model::{QueueId, QueueRequest, Status, Task, TaskId};
    use crate::store::Store;

    /// `queue(id, seq)` as formats 1 and 2 stored it.
    fn old(id: &str, seq: u64) -> QueueV2 {
        queue(id, seq).into()
    }

    fn queue(id: &str, seq: u64) -> Queue {
        Queue {
            id: QueueId::parse(id).unwrap(),
            status: Status::Waiting,
            request: QueueRequest {
                repo: "https://git.example.invalid/fw.git".into(),
                branch: Some("main".into()),
                commit: None,
                environment: "xtensa-sim".into(),
                scenarios: vec![],
                priority: 0,
            },
            seq,
            created_at: 0,
            started_at: None,
            finished_at: None,
            attempt: 1,
            error: None,
            origin: crate::model::Origin::Api,
            resolved_commit: None,
            rerun_of: None,
            reruns: Vec::new(),
        }
    }

    /// A file written by a build that kept queues under their id opens with every queue
    /// readable by id, listed in arrival order, and the old tables gone.
    #[tokio::test]
    async fn migrates_queues_v1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(META_SCHEMA, 1).unwrap();
                meta.insert(META_SEQ, 7).unwrap();
                let mut queues = txn.open_table(v1::QUEUES).unwrap();
                let mut arrivals = txn.open_table(v1::ARRIVALS).unwrap();
                let mut waiting = txn.open_table(WAITING).unwrap();
                let mut tasks = txn.open_table(TASKS).unwrap();
                for (id, seq) in [("zeta", 3), ("alpha", 7)] {
                    queues
                        .insert(id, codec::encode(&old(id, seq)).as_slice())
                        .unwrap();
                    arrivals.insert(seq, id).unwrap();
                    waiting.insert((0, seq), id).unwrap();
                }
                let task = Task::new(TaskId::parse("boot").unwrap(), "boot.xml".into());
                tasks
                    .insert((7, 0), codec::encode(&task).as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let alpha = QueueId::parse("alpha").unwrap();
        let got = store
            .get(&alpha)
            .await
            .unwrap()
            .expect("alpha after migration");
        assert_eq!(got.queue, queue("alpha", 7));
        assert_eq!(got.tasks.len(), 1, "tasks stay with their queue");
        assert_eq!(got.tasks[0].scenario, "boot.xml");
        let waiting_count = store.counts().await.unwrap()[0];
        assert_eq!(waiting_count, (Status::Waiting, 2), "counted");
        let waiting: Vec<String> = store
            .waiting()
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.id.to_string())
            .collect();
        assert_eq!(waiting, ["zeta", "alpha"], "claim order: oldest first");
        let page = store.list(None, 10, None).await.unwrap();
        let listed: Vec<&str> = page.items.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(listed, ["alpha", "zeta"], "newest first");
        // A new queue gets the next arrival number, after the migrated ones.
        let new = QueueId::parse("new").unwrap();
        store.enqueue(new, queue("x", 0).request).await.unwrap();
        let page = store.list(None, 1, None).await.unwrap();
        assert_eq!(page.items[0].id.as_str(), "new");
        assert_eq!(page.items[0].seq, 8);
        store.close().await;
        drop(store);

        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with("-v1") && n.starts_with("queues"))
        );
        assert!(!names.iter().any(|n| n.starts_with("arrivals")));
    }

    /// A file of format 2 (`queues-v2`) opens with every queue readable, as a queue from the
    /// API, and the old table gone.
    #[tokio::test]
    async fn migrates_queues_v2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(META_SCHEMA, 2).unwrap();
                meta.insert(META_SEQ, 9).unwrap();
                let mut queues = txn.open_table(v2::QUEUES).unwrap();
                let mut waiting = txn.open_table(WAITING).unwrap();
                for (id, seq) in [("one", 4), ("two", 9)] {
                    queues
                        .insert(seq, codec::encode(&old(id, seq)).as_slice())
                        .unwrap();
                    waiting.insert((0, seq), id).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let two = store
            .get(&QueueId::parse("two").unwrap())
            .await
            .unwrap()
            .expect("two after migration");
        assert_eq!(two.queue, queue("two", 9));
        let page = store.list(None, 10, None).await.unwrap();
        let listed: Vec<&str> = page.items.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(listed, ["two", "one"]);
        store.close().await;
        drop(store);
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        assert!(!txn.list_tables().unwrap().any(|t| t.name() == "queues-v2"));
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get(META_SCHEMA).unwrap().unwrap().value(), FORMAT);
    }

    /// A file of format 3 (queues-v3, the indexes kept in memory) opens with the indexes and
    /// the counts built from its queues, in the one transaction that raises its format:
    /// readable by id, listed by status, the `running` one found by recovery.
    #[tokio::test]
    async fn migrates_format_3() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let statuses = [
            ("w1", 2, Status::Waiting),
            ("p1", 3, Status::Passed),
            ("r1", 5, Status::Running),
            ("p2", 6, Status::Passed),
            ("w2", 8, Status::Waiting),
            ("f1", 9, Status::Failed),
        ];
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert(META_SCHEMA, 3).unwrap();
                meta.insert(META_SEQ, 12).unwrap();
                let mut queues = txn.open_table(QUEUES).unwrap();
                let mut waiting = txn.open_table(WAITING).unwrap();
                for (id, seq, status) in statuses {
                    let q = Queue {
                        status,
                        ..queue(id, seq)
                    };
                    queues.insert(seq, codec::encode(&q).as_slice()).unwrap();
                    if status == Status::Waiting {
                        waiting.insert((0, seq), id).unwrap();
                    }
                }
            }
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        for (id, seq, status) in statuses {
            let got = store.get(&QueueId::parse(id).unwrap()).await.unwrap();
            let q = got.unwrap_or_else(|| panic!("{id} after migration")).queue;
            assert_eq!((q.seq, q.status), (seq, status));
        }
        let count = |counts: &[(Status, u64)], s: Status| {
            counts.iter().find(|c| c.0 == s).map_or(0, |c| c.1)
        };
        let counts = store.counts().await.unwrap();
        assert_eq!(count(&counts, Status::Waiting), 2);
        assert_eq!(count(&counts, Status::Passed), 2);
        assert_eq!(count(&counts, Status::Running), 1);
        assert_eq!(count(&counts, Status::Failed), 1);
        let passed = store.list(Some(Status::Passed), 10, None).await.unwrap();
        let listed: Vec<&str> = passed.items.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(listed, ["p2", "p1"]);
        // The branch index: the newest outcome, the failed one that arrived last.
        let badge = store
            .newest_of_branch(
                "https://git.example.invalid/fw.git".into(),
                "main".into(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(badge.map(|q| q.id.to_string()).as_deref(), Some("f1"));
        let recovered = store.recover(5).await.unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].id.as_str(), "r1");
        let counts = store.counts().await.unwrap();
        assert_eq!(count(&counts, Status::Running), 0);
        assert_eq!(count(&counts, Status::Waiting), 3);
        store.close().await;
        drop(store);
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get(META_SCHEMA).unwrap().unwrap().value(), FORMAT);
        assert_eq!(txn.open_table(IDS).unwrap().len().unwrap(), 6);
    }

    /// A file of format 4 (no branch index) opens with the index built from its queues, and
    /// nothing else rebuilt: the counts stay as they were.
    #[tokio::test]
    async fn migrates_format_4() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = Store::open(&path).unwrap();
        let mut request = queue("x", 0).request;
        for (id, env, to) in [
            ("a", "esp32", Status::Passed),
            ("b", "esp32", Status::Failed),
            ("c", "sim", Status::Aborted),
        ] {
            let id = QueueId::parse(id).unwrap();
            request.environment = env.into();
            store.enqueue(id.clone(), request.clone()).await.unwrap();
            if to != Status::Aborted {
                store.transition(&id, Status::Running, None).await.unwrap();
            }
            store.transition(&id, to, None).await.unwrap();
        }
        let counts = store.counts().await.unwrap();
        store.close().await;
        drop(store);
        {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_SCHEMA, 4)
                .unwrap();
            assert!(txn.delete_table(BRANCHES).unwrap());
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.counts().await.unwrap(), counts);
        let newest = |env: Option<&str>| {
            store.newest_of_branch(request.repo.clone(), "main".into(), env.map(str::to_owned))
        };
        let id = |q: Option<Queue>| q.map(|q| q.id.to_string());
        assert_eq!(id(newest(None).await.unwrap()).as_deref(), Some("b"));
        assert_eq!(
            id(newest(Some("sim")).await.unwrap()),
            None,
            "aborted is no outcome"
        );
        store.close().await;
    }

    /// A file of a newer format is refused with a message that says what to do, and is left
    /// as it was.
    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_SCHEMA, FORMAT + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(&path).err().expect("refused");
        let message = err.to_string();
        assert!(message.contains("newer build"), "{message}");
        assert!(message.contains("another root"), "{message}");
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get(META_SCHEMA).unwrap().unwrap().value(), FORMAT + 1);
    }
}
