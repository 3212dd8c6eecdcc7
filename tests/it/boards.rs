//! Several boards per queue (`[environments.X] boards`, `[worker] max_boards`) and the per-task
//! live logs, with real git repositories and real (scripted) boards in the sandbox.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testarena::model::{Millis, QueueId, Status, TaskId};

use crate::helpers::{TestApp, spawn_app_with};
use crate::logs_sse::SseClient;
use crate::worker::{BOARD, UNCONFINED, log_text, make_repo, processes_with, wait_log_line};

const LIMIT: Duration = Duration::from_secs(60);

/// An environment `sim` whose boards are the scripted board, named `tag` on their command line.
fn config(boards: usize, tag: &str, extra: &str) -> String {
    let board = serde_json::to_string(BOARD).unwrap();
    format!(
        r#"
[worker]
slots = 2
kill_grace = "300ms"
{extra}
[environments.sim]
build = ["true"]
simulate = ["sh", "-c", {board}, "{tag}"]
ready = "READY"
build_timeout = "20s"
boot_timeout = "10s"
boards = {boards}
"#
    )
}

/// A scenario whose first test waits (in the checkout every task of the queue shares) until
/// `together` tasks have reached it: it can pass only if that many boards run at once.
fn barrier(name: &str, together: usize) -> String {
    format!(
        r#"<scenario name="{name}">
  <suite name="s">
    <test name="together" timeout="20"><run>touch arrived-{name}; echo "{name} arrived"; until [ "$(ls arrived-* | wc -l)" -ge {together} ]; do sleep 0.05; done; echo "{name}: all {together} here"</run></test>
    <test name="ping" timeout="5"><send>ping</send><expect>pong</expect></test>
  </suite>
</scenario>
"#
    )
}

fn scenario(name: &str, tests: &str) -> String {
    format!("<scenario name=\"{name}\">\n  <suite name=\"s\">\n{tests}\n  </suite>\n</scenario>\n")
}

async fn enqueue(app: &TestApp, repo: &Path, id: &str, scenarios: &[&str]) -> String {
    let body = json!({
        "id": id,
        "repo": repo.display().to_string(),
        "branch": "main",
        "environment": "sim",
        "scenarios": scenarios.iter().map(|s| format!("scenarios/{s}.xml")).collect::<Vec<_>>(),
    });
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    id.to_owned()
}

/// Each task's (name, started, finished) as recorded.
async fn task_times(app: &TestApp, id: &str) -> Vec<(String, Millis, Millis)> {
    let view = app
        .state
        .store
        .get(&QueueId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    view.tasks
        .iter()
        .map(|t| {
            (
                t.id.to_string(),
                t.started_at.expect("started"),
                t.finished_at.expect("finished"),
            )
        })
        .collect()
}

/// The most intervals that overlap at one time (an end at the same millisecond as a start does
/// not overlap it).
fn most_at_once(intervals: &[(String, Millis, Millis)]) -> usize {
    let mut edges: Vec<(Millis, i32)> = intervals
        .iter()
        .flat_map(|(_, start, end)| [(*start, 1), (*end, -1)])
        .collect();
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

fn task_log(app: &TestApp, id: &str, task: &str) -> String {
    std::fs::read_to_string(
        app.root
            .join("queues")
            .join(id)
            .join("tasks")
            .join(task)
            .join("task.log"),
    )
    .unwrap_or_default()
}

#[tokio::test]
async fn four_boards_run_at_once_and_each_task_has_its_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["t1", "t2", "t3", "t4"];
    let files: Vec<(String, String)> = names
        .iter()
        .map(|n| (format!("scenarios/{n}.xml"), barrier(n, 4)))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let repo = make_repo(dir.path(), &files);
    let app = spawn_app_with(&config(4, "board-four", "")).await;
    let id = enqueue(&app, &repo, "four", &names).await;

    // Follow t1's own log from before it starts: one event, then the connection drops and
    // the rest comes by resuming from the last event id.
    let t1_stream = "/api/queues/four/tasks/t1/log/stream";
    let mut sse = SseClient::connect(&app, t1_stream, None).await;
    let first = sse.next().await.expect("a first event");
    assert_eq!(first.event, "log");
    drop(sse);
    let mut sse = SseClient::connect(&app, t1_stream, first.id.as_deref()).await;
    let (rest, end) = sse.read_to_end().await;

    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert!(q["tasks"].as_array().unwrap().len() == 4, "{q:#}");
    let times = task_times(&app, &id).await;
    let last_start = times.iter().map(|t| t.1).max().unwrap();
    let first_end = times.iter().map(|t| t.2).min().unwrap();
    assert!(
        last_start < first_end,
        "every task started before any ended: {times:?}"
    );
    assert_eq!(most_at_once(&times), 4);

    // The task's stream: what was sent, with the resumed part, is its log file exactly.
    assert_eq!(end, r#"{"status":"passed"}"#);
    let t1 = task_log(&app, &id, "t1");
    assert_eq!(format!("{}\n{rest}", first.data), t1);
    assert!(t1.contains("t1: all 4 here"), "{t1}");
    assert!(
        t1.contains("booting board"),
        "the board's boot is in it: {t1}"
    );
    assert!(
        !t1.contains("t2") && !t1.contains("[t1]"),
        "only t1's lines, without a prefix: {t1}"
    );

    // The queue log holds every task's lines, each with its task's name in front, and the
    // engine's markers as they were.
    let log = log_text(&app, &id);
    for n in names {
        assert!(log.contains(&format!("[{n}] {n}: all 4 here")), "{log}");
        assert!(log.contains(&format!("[{n}] booting board")), "{log}");
        assert!(log.contains(&format!("\n=== task {n} passed")), "{log}");
        // Every line of the task's own log is in the queue log.
        for line in task_log(&app, &id, n).lines() {
            let copied = if line.starts_with("=== ") {
                line.to_owned()
            } else {
                format!("[{n}] {line}")
            };
            assert!(
                log.contains(&copied),
                "{copied:?} missing from the queue log"
            );
        }
    }

    // The plain text route, whole and as a tail, and the 404s.
    let text = app
        .client
        .get(app.url("/api/queues/four/tasks/t2/log?tail=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    let tail = text.text().await.unwrap();
    assert_eq!(tail.lines().count(), 1);
    assert!(task_log(&app, &id, "t2").ends_with(&tail));
    let (status, body) = app.get_json("/api/queues/four/tasks/nope/log").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task nope"),
        "{body}"
    );
    let (status, _) = app.get_json("/api/queues/none/tasks/t1/log/stream").await;
    assert_eq!(status, 404);
    let (status, body) = app.get_json("/api/queues/four/tasks/..%2Fx/log").await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn max_boards_holds_across_two_queues() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("boards-now");
    std::fs::create_dir_all(&count).unwrap();
    let arrived = dir.path().join("arrived");
    std::fs::create_dir_all(&arrived).unwrap();
    let release = dir.path().join("release");
    // Each task counts the boards running now (a file per board in a directory outside the
    // checkouts) and holds its board until two tasks have arrived and the test has released
    // them: the first two overlap, so the cap is reached (and scraped while it is), and the
    // count shows whether it is ever passed. (`hold""ing` keeps the needle the test waits for
    // out of the logged command line.)
    let hold = |name: &str| {
        scenario(
            name,
            &format!(
                r#"    <test name="hold" timeout="20"><run>f={count}/$TESTARENA_QUEUE_ID-{name}; touch $f {arrived}/$TESTARENA_QUEUE_ID-{name}; until [ "$(ls {arrived} | wc -l)" -ge 2 ]; do sleep 0.05; done; echo "{name} hold""ing"; until [ -e {release} ]; do sleep 0.05; done; echo "boards now $(ls {count} | wc -l)"; rm $f</run></test>"#,
                count = count.display(),
                arrived = arrived.display(),
                release = release.display()
            ),
        )
    };
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/a.xml", &hold("a")),
            ("scenarios/b.xml", &hold("b")),
        ],
    );
    let toml = format!(
        "{}{UNCONFINED}",
        config(2, "board-capped", "max_boards = 2")
    );
    let app = spawn_app_with(&toml).await;
    let one = enqueue(&app, &repo, "capped-1", &["a", "b"]).await;
    let two = enqueue(&app, &repo, "capped-2", &["a", "b"]).await;
    // Both boards of the first queue held: the cap is reached, and `/metrics` says so.
    wait_log_line(&app, &one, "[a] a holding").await;
    wait_log_line(&app, &one, "[b] b holding").await;
    let text = crate::metrics::metrics(&app).await;
    for line in ["testarena_boards_busy 2", "testarena_boards_max 2"] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    std::fs::write(&release, "").unwrap();
    app.wait_status(&one, "passed", LIMIT).await;
    app.wait_status(&two, "passed", LIMIT).await;

    let mut times = task_times(&app, &one).await;
    times.extend(task_times(&app, &two).await);
    assert_eq!(most_at_once(&times), 2, "{times:?}");
    let logs = format!("{}{}", log_text(&app, &one), log_text(&app, &two));
    let seen: Vec<usize> = logs
        .lines()
        .filter_map(|l| l.split("boards now ").nth(1))
        // The command itself is logged too: only the numbers it printed.
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert_eq!(seen.len(), 4, "{logs}");
    assert_eq!(seen.iter().max(), Some(&2), "{logs}");
    assert!(
        logs.contains("waits for a board ([worker] max_boards = 2)"),
        "{logs}"
    );
    // Every board given back.
    let text = crate::metrics::metrics(&app).await;
    assert!(
        text.lines().any(|l| l == "testarena_boards_busy 0"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn abort_stops_every_board_of_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let hang = |name: &str| {
        scenario(
            name,
            r#"    <test name="hang" timeout="120"><send>hang</send><expect timeout="100s">never printed</expect></test>"#,
        )
    };
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/h1.xml", &hang("h1")),
            ("scenarios/h2.xml", &hang("h2")),
            ("scenarios/h3.xml", &hang("h3")),
        ],
    );
    let tag = "board-abort-every";
    let app = spawn_app_with(&config(3, tag, "")).await;
    let id = enqueue(&app, &repo, "abort-every", &["h1", "h2", "h3"]).await;
    for n in ["h1", "h2", "h3"] {
        wait_log_line(&app, &id, &format!("=== step boot:{n} passed")).await;
    }
    assert!(
        processes_with(tag).len() >= 3,
        "three boards run: {:?}",
        processes_with(tag)
    );
    app.abort(&id).await;
    let q = app.wait_status(&id, "aborted", LIMIT).await;
    let left = processes_with(tag);
    assert!(left.is_empty(), "boards left running: {left:?}");
    for t in q["tasks"].as_array().unwrap() {
        assert_eq!(t["status"], "aborted", "{q:#}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_board_that_crashes_fails_only_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let ping =
        r#"    <test name="ping" timeout="10"><send>ping</send><expect>pong</expect></test>"#;
    let repo = make_repo(
        dir.path(),
        &[
            (
                "scenarios/crash.xml",
                &scenario(
                    "crash",
                    r#"    <test name="die" timeout="10"><send>die</send><expect>pong</expect></test>"#,
                ),
            ),
            ("scenarios/ok1.xml", &scenario("ok1", ping)),
            ("scenarios/ok2.xml", &scenario("ok2", ping)),
        ],
    );
    let app = spawn_app_with(&config(3, "board-crash", "")).await;
    let id = enqueue(&app, &repo, "crash-one", &["crash", "ok1", "ok2"]).await;
    let q = app.wait_status(&id, "failed", LIMIT).await;
    let status = |name: &str| -> Value {
        q["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == name)
            .unwrap_or_else(|| panic!("task {name} in {q:#}"))
            .clone()
    };
    assert_eq!(status("crash")["status"], "failed", "{q:#}");
    assert!(
        status("crash")["error"]
            .as_str()
            .unwrap_or_default()
            .contains("exit status 7"),
        "{q:#}"
    );
    assert_eq!(status("ok1")["status"], "passed", "{q:#}");
    assert_eq!(status("ok2")["status"], "passed", "{q:#}");
    let view = app
        .state
        .store
        .get(&QueueId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let ok1 = TaskId::parse("ok1").unwrap();
    assert!(
        view.tasks
            .iter()
            .any(|t| t.id == ok1 && t.status == Status::Passed)
    );
    app.stop().await;
}
