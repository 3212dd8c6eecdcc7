//! Retention on a real server: finished queues beyond `max_queues` or older than `max_age` go
//! with their directories, oldest first; waiting and running queues and the mirrors they use
//! stay; checkouts go when a queue ends. Age is tested with a pass run at a later time, never
//! by waiting.

use std::time::Duration;

use serde_json::{Value, json};
use testarena::config::Checkouts;
use testarena::model::{Change, Millis, now_millis};
use testarena::worker::Pass;
use tokio::sync::broadcast;

use crate::helpers::{TestApp, spawn_app_with};
use crate::metrics::metrics;
use crate::worker::{SCENARIO_PASS, config, make_repo};

const LIMIT: Duration = Duration::from_secs(30);
const DAY: Millis = 86_400_000;

async fn enqueue(app: &TestApp, body: Value) {
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

/// A queue of a repository that is never fetched (the worker is paused or busy).
async fn enqueue_elsewhere(app: &TestApp, id: &str) {
    let body = json!({"id": id, "repo": "https://git.example/fw.git", "environment": "esp32"});
    enqueue(app, body).await;
}

async fn status_of(app: &TestApp, id: &str) -> Value {
    let (code, q) = app.get_json(&format!("/api/queues/{id}")).await;
    if code == 404 {
        return Value::Null;
    }
    assert_eq!(code, 200);
    q["status"].clone()
}

/// Waits (on the change feed) until queue `id`'s record is deleted.
async fn wait_deleted(changes: &mut broadcast::Receiver<Change>, id: &str) {
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            let c = changes.recv().await.expect("the change feed");
            if c.queue.as_str() == id && c.task.is_none() && c.to.is_none() {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "queue {id} was not removed within {LIMIT:?}");
}

/// The value of the metric line that starts with `series` (name and labels).
async fn metric(app: &TestApp, series: &str) -> u64 {
    let text = metrics(app).await;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(series).is_some_and(|v| v.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Applies `change` to the live configuration, as a reload of the file would.
fn reconfigure(app: &TestApp, change: impl FnOnce(&mut testarena::config::Config)) {
    let mut config = (*app.state.config()).clone();
    change(&mut config);
    app.state.live.set(config);
}

#[tokio::test]
async fn by_count_the_oldest_finished_queues_go_with_their_directories() {
    let app = spawn_app_with("[worker]\nslots = 0\n[retention]\nmax_queues = 2\n").await;
    let mut changes = app.state.store.subscribe();
    // The oldest and the newest wait; q1 to q4 end (aborted while waiting).
    for id in ["q0", "q1", "q2", "q3", "q4", "q5"] {
        enqueue_elsewhere(&app, id).await;
    }
    for id in ["q1", "q2", "q3", "q4"] {
        app.abort(id).await;
        assert!(
            app.root
                .join("queues")
                .join(id)
                .join("report.html")
                .is_file()
        );
    }
    // The background task acts on queues ending: two finished queues are kept.
    wait_deleted(&mut changes, "q1").await;
    wait_deleted(&mut changes, "q2").await;
    // And on a reload that lowers the limit.
    reconfigure(&app, |c| c.retention.max_queues = Some(1));
    wait_deleted(&mut changes, "q3").await;
    // Passes are one at a time: after this one, every earlier removal is done.
    app.state.retention().pass(now_millis()).await;
    for (id, status) in [
        ("q0", json!("waiting")),
        ("q1", Value::Null),
        ("q2", Value::Null),
        ("q3", Value::Null),
        ("q4", json!("aborted")),
        ("q5", json!("waiting")),
    ] {
        assert_eq!(status_of(&app, id).await, status, "{id}");
    }
    for id in ["q1", "q2", "q3"] {
        assert!(!app.root.join("queues").join(id).exists(), "{id}'s files");
    }
    assert!(app.root.join("queues/q4/report.html").is_file());
    let (_, page) = app.get_json("/api/queues?limit=10").await;
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["q5", "q4", "q0"]);
    let removed = r#"testarena_retention_removed_total{kind="queue"}"#;
    assert_eq!(metric(&app, removed).await, 3);
    assert!(metric(&app, "testarena_retention_freed_bytes_total").await > 0);
    assert_eq!(
        std::fs::read_dir(app.root.join("trash")).unwrap().count(),
        0,
        "the trash is emptied"
    );
    app.stop().await;
}

#[tokio::test]
async fn by_age_old_queues_and_unused_mirrors_go_but_never_what_waits_or_runs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let extra = "[retention]\nmax_age = \"1d\"\nmax_queues = 0\n";
    let app = spawn_app_with(&config("sleep 60", "", extra)).await;
    let retention = app.state.retention();
    let run = |id: &str| json!({"id": id, "repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    enqueue(&app, run("run")).await;
    app.wait_status("run", "running", LIMIT).await;
    // Its checkout made the mirror.
    crate::worker::wait_log_line(&app, "run", "checked out").await;
    // The slot is taken: these wait; two of them end at once.
    enqueue(&app, run("next")).await;
    for id in ["a1", "a2"] {
        enqueue_elsewhere(&app, id).await;
        app.abort(id).await;
    }
    let mirrors = app.root.join("cache/git");
    assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 1);
    // Leftovers of an interrupted pass are emptied by the next one.
    std::fs::create_dir_all(app.root.join("trash/queue-0")).unwrap();
    std::fs::write(app.root.join("trash/queue-0/queue.log"), "x".repeat(8192)).unwrap();

    let now = now_millis();
    let half_a_day = retention.pass(now + DAY / 2).await;
    assert_eq!(half_a_day.queues, 0);
    assert!(!app.root.join("trash/queue-0").exists());
    assert!(status_of(&app, "a1").await.is_string());

    // Two days on: the finished queues are too old; the running and the waiting one stay, and
    // the mirror their repository uses.
    let pass = retention.pass(now + 2 * DAY).await;
    assert_eq!((pass.queues, pass.mirrors), (2, 0), "{pass:?}");
    assert!(pass.freed_bytes > 0);
    for id in ["a1", "a2"] {
        assert_eq!(status_of(&app, id).await, Value::Null, "{id}");
        assert!(!app.root.join("queues").join(id).exists(), "{id}'s files");
    }
    assert_eq!(status_of(&app, "run").await, "running");
    assert_eq!(status_of(&app, "next").await, "waiting");
    assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 1);

    // The run ends; `next` stays waiting (paused), so its repository's mirror stays.
    reconfigure(&app, |c| c.worker.slots = 0);
    app.abort("run").await;
    let pass = retention.pass(now + 2 * DAY).await;
    assert_eq!((pass.queues, pass.mirrors), (1, 0), "{pass:?}");
    assert_eq!(status_of(&app, "run").await, Value::Null);
    assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 1);

    // Nothing names the repository any more: its mirror goes too.
    app.abort("next").await;
    let pass = retention.pass(now + 2 * DAY).await;
    assert_eq!((pass.queues, pass.mirrors), (1, 1), "{pass:?}");
    assert_eq!(std::fs::read_dir(&mirrors).unwrap().count(), 0);
    // The server's own passes (at the real time) removed nothing: every removal is counted here.
    assert_eq!(
        metric(&app, r#"testarena_retention_removed_total{kind="queue"}"#).await,
        4
    );
    assert_eq!(
        metric(&app, r#"testarena_retention_removed_total{kind="mirror"}"#).await,
        1
    );
    assert_eq!(retention.pass(now + 2 * DAY).await, Pass::default());
    app.stop().await;
}

#[tokio::test]
async fn a_checkout_goes_when_its_queue_ends_and_its_log_and_reports_stay() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;
    let body = |id: &str| json!({"id": id, "repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    enqueue(&app, body("deleted")).await;
    app.wait_status("deleted", "passed", LIMIT).await;
    // Gone by the time the final status shows; what is served stays.
    let q = app.root.join("queues/deleted");
    assert!(!q.join("repo").exists(), "the checkout is removed");
    for f in [
        "queue.log",
        "report.html",
        "tasks/pass/report.html",
        "tasks/pass/junit.xml",
    ] {
        assert!(q.join(f).is_file(), "{f}");
    }
    let r = app
        .client
        .get(app.url("/queues/deleted/files/report.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let checkouts = r#"testarena_retention_removed_total{kind="checkout"}"#;
    assert_eq!(metric(&app, checkouts).await, 1);

    // `checkouts = "keep"`, live: the next run keeps its checkout, build included.
    reconfigure(&app, |c| c.retention.checkouts = Checkouts::Keep);
    enqueue(&app, body("kept")).await;
    app.wait_status("kept", "passed", LIMIT).await;
    assert!(app.root.join("queues/kept/repo/built.txt").is_file());
    assert_eq!(metric(&app, checkouts).await, 1);
    app.stop().await;
}
