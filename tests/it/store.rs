//! The redb store on its own: transitions, claim order, pagination, idempotency, change feed,
//! recovery, reopening.

use std::collections::HashSet;

use testarena::model::{QueueId, QueueRequest, Status, TaskId, TestResult, TestStatus};
use testarena::store::{ClaimFilter, Enqueued, Feed, Store, StoreError};

fn req(env: &str, priority: i32) -> QueueRequest {
    QueueRequest {
        repo: "/srv/fw".into(),
        branch: Some("main".into()),
        commit: None,
        environment: env.into(),
        scenarios: vec!["scenarios/a.xml".into()],
        priority,
    }
}

fn id(s: &str) -> QueueId {
    QueueId::parse(s).unwrap()
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("t.redb")).unwrap()
}

#[tokio::test]
async fn legal_and_illegal_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.enqueue(id("a"), req("esp32", 0)).await.unwrap();
    let err = store
        .transition(&id("a"), Status::Passed, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Illegal(_)), "{err}");
    let q = store
        .transition(&id("a"), Status::Running, None)
        .await
        .unwrap();
    assert!(q.started_at.is_some());
    let q = store
        .transition(&id("a"), Status::Failed, Some("x".into()))
        .await
        .unwrap();
    assert_eq!(q.status, Status::Failed);
    assert!(q.finished_at.is_some());
    for to in [Status::Running, Status::Waiting, Status::Passed] {
        assert!(store.transition(&id("a"), to, None).await.is_err());
    }
    assert!(matches!(
        store.transition(&id("nope"), Status::Running, None).await,
        Err(StoreError::NotFound(_))
    ));
    // A refused write left nothing behind.
    assert_eq!(
        store.get(&id("a")).await.unwrap().unwrap().queue.status,
        Status::Failed
    );
}

#[tokio::test]
async fn claim_takes_highest_priority_then_oldest_and_skips_blocked_environments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.enqueue(id("low-old"), req("esp32", 0)).await.unwrap();
    store.enqueue(id("high"), req("esp32", 5)).await.unwrap();
    store
        .enqueue(id("low-new"), req("xtensa-sim", 0))
        .await
        .unwrap();
    store
        .enqueue(id("high-sim"), req("xtensa-sim", 5))
        .await
        .unwrap();
    let blocked = ClaimFilter {
        blocked_environments: HashSet::from(["esp32".to_owned()]),
    };
    let q = store.claim_next(blocked.clone()).await.unwrap().unwrap();
    assert_eq!(q.id.as_str(), "high-sim");
    assert_eq!(q.status, Status::Running);
    let order: Vec<String> = store
        .waiting()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.id.to_string())
        .collect();
    assert_eq!(order, ["high", "low-old", "low-new"]);
    let q = store
        .claim_next(ClaimFilter::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.id.as_str(), "high");
    let q = store.claim_next(blocked).await.unwrap().unwrap();
    assert_eq!(q.id.as_str(), "low-new");
    let q = store
        .claim_next(ClaimFilter::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.id.as_str(), "low-old");
    assert!(
        store
            .claim_next(ClaimFilter::default())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_a_queue_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..50 {
        store
            .enqueue(id(&format!("q{i}")), req("esp32", 0))
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    for _ in 0..60 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            s.claim_next(ClaimFilter::default()).await.unwrap()
        }));
    }
    let mut seen = HashSet::new();
    let mut none = 0;
    for h in handles {
        match h.await.unwrap() {
            Some(q) => assert!(seen.insert(q.id), "claimed twice"),
            None => none += 1,
        }
    }
    assert_eq!((seen.len(), none), (50, 10));
}

#[tokio::test]
async fn idempotent_enqueue_and_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(matches!(
        store.enqueue(id("a"), req("esp32", 0)).await.unwrap(),
        Enqueued::Created(_)
    ));
    assert!(matches!(
        store.enqueue(id("a"), req("esp32", 0)).await.unwrap(),
        Enqueued::Existing(_)
    ));
    assert!(matches!(
        store.enqueue(id("a"), req("esp32", 1)).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn change_feed_is_ordered_and_kept_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut feed = store.subscribe();
    store.enqueue(id("a"), req("esp32", 0)).await.unwrap();
    store.claim_next(ClaimFilter::default()).await.unwrap();
    let task = TaskId::parse("a").unwrap();
    store
        .task_status(&id("a"), &task, Status::Running, None)
        .await
        .unwrap();
    store
        .transition(&id("a"), Status::Aborted, None)
        .await
        .unwrap();
    store.delete(&id("a")).await.unwrap();

    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(feed.recv().await.unwrap());
    }
    let seqs: Vec<u64> = got.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let steps: Vec<(Option<Status>, Option<Status>, bool)> = got
        .iter()
        .map(|c| (c.from, c.to, c.task.is_some()))
        .collect();
    assert_eq!(
        steps,
        [
            (None, Some(Status::Waiting), false),
            (Some(Status::Waiting), Some(Status::Running), false),
            (Some(Status::Waiting), Some(Status::Running), true),
            (Some(Status::Running), Some(Status::Aborted), false),
            // The queue's end closes its running task in the same commit, and says so.
            (Some(Status::Running), Some(Status::Aborted), true),
            (Some(Status::Aborted), None, false),
        ]
    );
    assert_eq!(store.latest_seq(), seqs[5]);
    let after = store.events_after(seqs[1]).await.unwrap();
    assert!(after.complete);
    assert_eq!(after.changes, got[2..].to_vec());
}

#[tokio::test]
async fn test_results_and_recovery_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let task = TaskId::parse("a").unwrap();
    {
        let store = open(&dir);
        for name in ["a", "b"] {
            store.enqueue(id(name), req("esp32", 0)).await.unwrap();
            store.claim_next(ClaimFilter::default()).await.unwrap();
        }
        store
            .task_status(&id("a"), &task, Status::Running, None)
            .await
            .unwrap();
        let result = TestResult {
            suite: "s".into(),
            name: "t".into(),
            status: TestStatus::Passed,
            duration_ms: 5,
            message: None,
        };
        store
            .record_test(&id("a"), &task, result.clone())
            .await
            .unwrap();
        let v = store.get(&id("a")).await.unwrap().unwrap();
        assert_eq!(v.tasks[0].tests, [result]);
        store.close().await;
    }
    {
        // The crash left both running: attempt 1 of 2 → re-queued as attempt 2 with fresh tasks.
        let store = open(&dir);
        let before = store.latest_seq();
        assert_eq!(store.recover(2).await.unwrap().len(), 2);
        // The re-queue restarts the running task, and the change feed says so.
        let changes = store.events_after(before).await.unwrap().changes;
        assert!(
            changes.iter().any(|c| c.queue == id("a")
                && c.task.as_ref() == Some(&task)
                && (c.from, c.to) == (Some(Status::Running), Some(Status::Waiting))),
            "{changes:?}"
        );
        let a = store.get(&id("a")).await.unwrap().unwrap();
        assert_eq!((a.queue.status, a.queue.attempt), (Status::Waiting, 2));
        assert!(a.tasks[0].tests.is_empty());
        assert_eq!(a.tasks[0].status, Status::Waiting);
        store.claim_next(ClaimFilter::default()).await.unwrap();
        store.claim_next(ClaimFilter::default()).await.unwrap();
        store.close().await;
    }
    let store = open(&dir);
    let before = store.latest_seq();
    store.recover(2).await.unwrap();
    let changes = store.events_after(before).await.unwrap().changes;
    for name in ["a", "b"] {
        let q = store.get(&id(name)).await.unwrap().unwrap();
        assert_eq!((q.queue.status, q.queue.attempt), (Status::Error, 2));
        assert_eq!(q.queue.error.as_deref(), Some("interrupted"));
        assert!(q.tasks.iter().all(|t| t.status.is_terminal()));
        assert_eq!(q.tasks[0].error.as_deref(), Some("interrupted"));
        // Every task change of the recovery is in the change feed, through the transitions.
        assert!(
            changes.iter().any(|c| c.queue == id(name)
                && c.task.is_some()
                && (c.from, c.to) == (Some(Status::Waiting), Some(Status::Skipped))),
            "{changes:?}"
        );
    }
}

#[tokio::test]
async fn a_closed_store_refuses_writes_and_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..20 {
        store
            .enqueue(id(&format!("q{i}")), req("esp32", 0))
            .await
            .unwrap();
    }
    store.close().await;
    assert!(matches!(
        store.enqueue(id("late"), req("esp32", 0)).await,
        Err(StoreError::Unavailable)
    ));
    drop(store);
    let store = open(&dir);
    let page = store.list(None, 100, None).await.unwrap();
    assert_eq!(page.items.len(), 20);
    assert_eq!(page.items[0].id.as_str(), "q19");
}

#[tokio::test]
async fn the_same_id_enqueued_concurrently_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Concurrent writes share a batch: the second enqueue must see the first one's queue.
    let same = (0..20).map(|_| store.enqueue(id("same"), req("esp32", 0)));
    let results = futures_util::future::join_all(same).await;
    let created = results
        .iter()
        .filter(|r| matches!(r, Ok(Enqueued::Created(_))))
        .count();
    let existing = results
        .iter()
        .filter(|r| matches!(r, Ok(Enqueued::Existing(_))))
        .count();
    assert_eq!((created, existing), (1, 19));
    let other = (0..10).map(|p| store.enqueue(id("other"), req("esp32", p)));
    let results = futures_util::future::join_all(other).await;
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
        .count();
    assert_eq!(conflicts, 9, "one body wins, the nine others conflict");
    assert_eq!(store.list(None, 100, None).await.unwrap().items.len(), 2);
}

#[tokio::test]
async fn ids_survive_a_restart_deleted_ones_stay_gone_and_can_be_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for name in ["keep", "gone", "reused"] {
        store.enqueue(id(name), req("esp32", 0)).await.unwrap();
    }
    store.delete(&id("gone")).await.unwrap();
    store.delete(&id("reused")).await.unwrap();
    let again = store.enqueue(id("reused"), req("xtensa-sim", 3)).await;
    let Ok(Enqueued::Created(view)) = again else {
        panic!("a deleted id can be enqueued again: {again:?}");
    };
    let reused_seq = view.queue.seq;
    store.close().await;
    drop(store);

    let store = open(&dir);
    assert!(store.get(&id("gone")).await.unwrap().is_none());
    let reused = store.get(&id("reused")).await.unwrap().expect("reused");
    assert_eq!(reused.queue.seq, reused_seq);
    assert_eq!(reused.queue.request.environment, "xtensa-sim");
    assert!(matches!(
        store.enqueue(id("keep"), req("esp32", 0)).await.unwrap(),
        Enqueued::Existing(_)
    ));
    assert!(matches!(
        store.enqueue(id("keep"), req("esp32", 1)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.delete(&id("gone")).await,
        Err(StoreError::NotFound(_))
    ));
    let listed: Vec<String> = store
        .list(None, 10, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|q| q.id.to_string())
        .collect();
    assert_eq!(listed, ["reused", "keep"]);
}

#[tokio::test]
async fn pages_follow_the_cursor_newest_first_with_a_status_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..7 {
        store
            .enqueue(id(&format!("p{i}")), req("esp32", 0))
            .await
            .unwrap();
    }
    store
        .abort_waiting(&id("p5"), "aborted before it started".into())
        .await
        .expect("abort a waiting queue");
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = store.list(None, 3, cursor).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|q| q.id.to_string()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, ["p6", "p5", "p4", "p3", "p2", "p1", "p0"]);
    let waiting = store.list(Some(Status::Waiting), 10, None).await.unwrap();
    let ids: Vec<&str> = waiting.items.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["p6", "p4", "p3", "p2", "p1", "p0"]);
    assert!(waiting.next_cursor.is_none());
    let aborted = store.list(Some(Status::Aborted), 10, None).await.unwrap();
    assert_eq!(aborted.items.len(), 1);
}

/// A queue that a listing shows can be read by its id, even while batches are committing:
/// the id index and the snapshots never disagree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_queue_can_always_be_read_by_id() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move {
            let (mut reads, mut misses) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                for q in store.list(None, 3, None).await.unwrap().items {
                    reads += 1;
                    if store.get(&q.id).await.unwrap().is_none() {
                        misses.push(q.id.to_string());
                    }
                }
            }
            (reads, misses)
        }
    });
    for burst in 0..60 {
        let enqueues =
            (0..64).map(|i| store.enqueue(id(&format!("b{burst}-{i}")), req("esp32", 0)));
        for r in futures_util::future::join_all(enqueues).await {
            r.unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, misses) = reader.await.unwrap();
    assert!(reads > 0, "the reader ran");
    assert!(misses.is_empty(), "listed but not found by id: {misses:?}");
}

/// The store answers on the runtime it was opened in; once that runtime is gone, a caller on
/// another runtime still gets its answer (and the truth: the write was committed).
#[test]
fn answers_arrive_after_the_opening_runtime_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let store = first.block_on(async { open(&dir) });
    drop(first);
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    other.block_on(async {
        let wait = std::time::Duration::from_secs(10);
        let answer = tokio::time::timeout(wait, store.enqueue(id("late"), req("esp32", 0)))
            .await
            .expect("answered");
        assert!(matches!(answer, Ok(Enqueued::Created(_))), "{answer:?}");
        let stored = store.get(&id("late")).await.unwrap();
        assert!(stored.is_some());
        store.close().await;
    });
}

/// A follower that fell behind the broadcast (it holds 4,096 changes) still gets every change,
/// in order, each once: the rest comes from the event table.
#[tokio::test]
async fn a_follower_that_falls_behind_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut follower = store.follow();
    let first = store.latest_seq() + 1;
    let n = 5_000;
    let enqueues = (0..n).map(|i| store.enqueue(id(&format!("f{i}")), req("esp32", 0)));
    for r in futures_util::future::join_all(enqueues).await {
        r.unwrap();
    }
    let mut seqs = Vec::new();
    for _ in 0..n {
        let c = tokio::time::timeout(std::time::Duration::from_secs(10), follower.next())
            .await
            .expect("a change in time")
            .expect("the store is open");
        let Feed::Change(c) = c else {
            panic!("a reset while every change is kept: {c:?}")
        };
        seqs.push(c.seq);
    }
    let expected: Vec<u64> = (first..first + n as u64).collect();
    assert_eq!(seqs, expected);
}

/// The counts per status are kept with every write, not counted from the queues: they must
/// agree with the queues after every kind of change, and after a restart.
#[tokio::test]
async fn counts_per_status_agree_with_the_queues_through_every_change_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..12 {
        store
            .enqueue(id(&format!("c{i}")), req("esp32", 0))
            .await
            .unwrap();
    }
    // Idempotent and refused writes change nothing.
    store.enqueue(id("c0"), req("esp32", 0)).await.unwrap();
    assert!(store.enqueue(id("c0"), req("esp32", 5)).await.is_err());
    let claimed = store
        .claim_next(ClaimFilter::default())
        .await
        .unwrap()
        .unwrap();
    store
        .claim_next(ClaimFilter::default())
        .await
        .unwrap()
        .unwrap();
    store
        .transition(&claimed.id, Status::Passed, None)
        .await
        .unwrap();
    assert!(
        store
            .transition(&claimed.id, Status::Running, None)
            .await
            .is_err()
    );
    store
        .abort_waiting(&id("c5"), "aborted before it started".into())
        .await
        .unwrap();
    store.delete(&id("c6")).await.unwrap();
    store.delete(&claimed.id).await.unwrap();
    let scanned = |items: Vec<testarena::model::Queue>| {
        let mut by: std::collections::BTreeMap<String, u64> = Default::default();
        for q in items {
            *by.entry(q.status.to_string()).or_default() += 1;
        }
        by
    };
    let kept = |counts: Vec<(Status, u64)>| {
        counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.to_string(), n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let queues = store.list(None, 100, None).await.unwrap().items;
    let counts = store.counts().await.unwrap();
    assert_eq!(kept(counts.clone()), scanned(queues));
    let expect = [("aborted", 1), ("running", 1), ("waiting", 8)];
    assert_eq!(
        kept(counts),
        expect.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    );
    store.close().await;
    drop(store);
    let store = open(&dir);
    assert_eq!(
        kept(store.counts().await.unwrap()),
        expect.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        "rebuilt at start-up"
    );
}
