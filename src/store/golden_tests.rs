//! Golden bytes of every record kind the store writes: `Queue` (`QUEUES`), `Task` with its
//! `TestResult`s (`TASKS`) and `Change` (`EVENTS`), and of the queues of format 2, which the
//! migration still reads.
//!
//! postcard is positional: reordering a `Status` variant or adding, removing or moving a field
//! silently changes the file format. Each test encodes one fixed example per kind (every field
//! set, every variant used) with [`codec::encode`], compares the bytes with the committed
//! `fixtures/golden/<kind>.bin`, and decodes the committed bytes back into the example, so
//! files written by earlier builds stay readable.
//!
//! A file holds `codec::encode(&Vec<record>)`: the schema byte, the count, then each record
//! exactly as the store writes it after its own schema byte.
//!
//! `TESTARENA_BLESS=1 cargo test --lib golden` writes the files instead of checking them. A change
//! of these bytes is a change of the file format: it needs a schema bump and a migration in
//! `store/init.rs`, not just a re-bless.

use std::fmt::Debug;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::legacy::QueueV2;
use crate::model::{
    Change, Line, Origin, Queue, QueueId, QueueRequest, Status, Task, TaskId, TestResult,
    TestStatus,
};

/// Every `Status` in declaration order, spelled out so that appending a variant (which old files
/// survive) does not change the example, while reordering one does change the bytes.
const STATUSES: [Status; 8] = [
    Status::Waiting,
    Status::Running,
    Status::Passed,
    Status::Failed,
    Status::Error,
    Status::TimedOut,
    Status::Aborted,
    Status::Skipped,
];

const TEST_STATUSES: [TestStatus; 5] = [
    TestStatus::Passed,
    TestStatus::Failed,
    TestStatus::TimedOut,
    TestStatus::Error,
    TestStatus::Skipped,
];

/// 2026-01-02T03:04:05.678Z, and later instants from it: never `now()`.
const T0: i64 = 1_767_323_045_678;

fn queue_id() -> QueueId {
    QueueId::parse("golden-queue").unwrap()
}

/// One queue per status a queue can have (queues are never `Skipped`), as format 2 stored
/// them.
fn queues_v2() -> Vec<QueueV2> {
    STATUSES
        .iter()
        .filter(|s| **s != Status::Skipped)
        .enumerate()
        .map(|(i, &status)| QueueV2 {
            id: QueueId::parse(&format!("golden-queue-{i}")).unwrap(),
            status,
            request: QueueRequest {
                repo: "https://git.example.com/fw/board.git".into(),
                branch: Some("main".into()),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
                environment: "qemu-arm".into(),
                scenarios: vec!["scenarios/boot.xml".into(), "scenarios/net/ping.xml".into()],
                priority: -3 + i as i32,
            },
            seq: 300 + i as u64,
            created_at: T0,
            started_at: Some(T0 + 1_000),
            finished_at: Some(T0 + 61_000),
            attempt: 2,
            error: Some(format!("queue error {i}")),
        })
        .collect()
}

/// The same queues as format 3 stores them, with every origin, and the fields it added set.
fn queues() -> Vec<Queue> {
    let origins = [
        Origin::Api,
        Origin::Gitea { line: None },
        Origin::Gitea {
            line: Some(Line::Branch("main".into())),
        },
        Origin::Gitea {
            line: Some(Line::PullRequest(42)),
        },
    ];
    queues_v2()
        .into_iter()
        .enumerate()
        .map(|(i, old)| Queue {
            origin: origins[i % origins.len()].clone(),
            resolved_commit: Some("89abcdef0123456789abcdef0123456789abcdef".into()),
            rerun_of: Some(QueueId::parse("golden-original").unwrap()),
            reruns: vec![QueueId::parse(&format!("golden-queue-{i}.r1")).unwrap()],
            ..Queue::from(old)
        })
        .collect()
}

/// One task per status, each with one test result per test status.
fn tasks() -> Vec<Task> {
    STATUSES
        .iter()
        .enumerate()
        .map(|(i, &status)| Task {
            id: TaskId::parse(&format!("task-{i}")).unwrap(),
            scenario: format!("scenarios/task-{i}.xml"),
            status,
            started_at: Some(T0 + 2_000),
            finished_at: Some(T0 + 32_000),
            error: Some(format!("task error {i}")),
            tests: TEST_STATUSES
                .iter()
                .enumerate()
                .map(|(j, &status)| TestResult {
                    suite: "boot".into(),
                    name: format!("test-{j}"),
                    status,
                    duration_ms: 1_500 + j as u64,
                    message: Some(format!("message {j}")),
                })
                .collect(),
        })
        .collect()
}

/// A change per status (`from` and `to` both set, with and without a task), then a creation
/// and a deletion (`from`/`to` absent).
fn changes() -> Vec<Change> {
    let mut out: Vec<Change> = STATUSES
        .iter()
        .enumerate()
        .map(|(i, &to)| Change {
            seq: 1_000 + i as u64,
            queue: queue_id(),
            task: (i % 2 == 1).then(|| TaskId::parse(&format!("task-{i}")).unwrap()),
            from: Some(STATUSES[(i + 1) % STATUSES.len()]),
            to: Some(to),
            at: T0 + i as i64,
        })
        .collect();
    out.push(Change {
        seq: 2_000,
        queue: queue_id(),
        task: None,
        from: None,
        to: Some(Status::Waiting),
        at: T0 + 10,
    });
    out.push(Change {
        seq: 2_001,
        queue: queue_id(),
        task: Some(TaskId::parse("task-0").unwrap()),
        from: Some(Status::Passed),
        to: None,
        at: T0 + 20,
    });
    out
}

fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(kind: &str, example: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/golden")
        .join(format!("{kind}.bin"));
    let bytes = codec::encode(example);
    if std::env::var_os("TESTARENA_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with TESTARENA_BLESS=1 to write it",
            path.display()
        )
    });
    const FORMAT_CHANGE: &str = "a change of these bytes is a change of the file format: it \
        needs a schema bump and a migration in store/init.rs, not just a re-bless \
        (TESTARENA_BLESS=1)";
    assert!(
        bytes == committed,
        "{kind} records no longer encode to {}; {FORMAT_CHANGE}",
        path.display()
    );
    let decoded: T = codec::decode(&committed)
        .unwrap_or_else(|e| panic!("{} no longer decodes: {e}; {FORMAT_CHANGE}", path.display()));
    assert_eq!(
        &decoded,
        example,
        "{} decodes to another value; {FORMAT_CHANGE}",
        path.display()
    );
}

#[test]
fn golden_queue() {
    check("queue", &queues());
}

/// Queues of format 2 (`queues-v2`) still decode, and become queues from the API with no
/// resolved commit and no re-runs.
#[test]
fn golden_queue_v2() {
    check("queue-v2", &queues_v2());
    let upgraded: Vec<Queue> = queues_v2().into_iter().map(Queue::from).collect();
    for q in &upgraded {
        assert_eq!(q.origin, Origin::Api);
        assert_eq!(
            (q.resolved_commit.as_ref(), q.rerun_of.as_ref()),
            (None, None)
        );
        assert!(q.reruns.is_empty());
    }
}

#[test]
fn golden_task() {
    check("task", &tasks());
}

#[test]
fn golden_change() {
    check("change", &changes());
}
