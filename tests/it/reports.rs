//! The files route: written reports are served read-only with the right headers; traversal,
//! escaping symlinks, unknown files and the checkout are refused.

use std::path::Path;

use serde_json::Value;
use testarena::model::{
    LineKind, Queue, QueueId, QueueRequest, Status, Task, TaskId, TestResult, TestStatus,
    TranscriptLine,
};
use testarena::report::Reports;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, spawn_app};

fn queue(id: &str) -> Queue {
    Queue {
        id: QueueId::parse(id).unwrap(),
        status: Status::Failed,
        request: QueueRequest {
            repo: "https://git.example/fw.git".into(),
            branch: Some("main".into()),
            commit: None,
            environment: "xtensa-sim".into(),
            scenarios: vec!["scenarios/smoke.xml".into()],
            priority: 0,
        },
        seq: 1,
        created_at: 1_700_000_000_000,
        started_at: Some(1_700_000_001_000),
        finished_at: Some(1_700_000_002_000),
        attempt: 1,
        error: None,
        origin: testarena::model::Origin::Api,
        resolved_commit: None,
        rerun_of: None,
        reruns: Vec::new(),
    }
}

/// Writes a queue's reports the way the worker does and returns the queue directory.
fn write_reports(app: &TestApp, id: &str) -> std::path::PathBuf {
    let reports = Reports::new().unwrap();
    let queue = queue(id);
    let queue_dir = app.root.join("queues").join(id);
    std::fs::create_dir_all(&queue_dir).unwrap();
    std::fs::write(queue_dir.join("queue.log"), "booted\n").unwrap();
    let mut task = Task::new(
        TaskId::parse("smoke").unwrap(),
        "scenarios/smoke.xml".into(),
    );
    task.status = Status::Failed;
    task.tests = vec![TestResult {
        suite: "shell".into(),
        name: "ping".into(),
        status: TestStatus::Failed,
        duration_ms: 1500,
        message: Some("<script>alert(1)</script>".into()),
    }];
    let task_dir = queue_dir.join("tasks/smoke");
    let line = TranscriptLine {
        at_ms: 5,
        kind: LineKind::Send,
        text: "ping".into(),
    };
    reports
        .write_test_log(&task_dir, &queue, &task.id, &task.tests[0], &[line])
        .unwrap();
    reports.write_task(&task_dir, &queue, &task).unwrap();
    reports.write_queue(&queue_dir, &queue, &[task]).unwrap();
    queue_dir
}

/// A request sent byte for byte, so that `..` and `%2e%2e` reach the server unnormalised.
async fn raw_get(app: &TestApp, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let host = app.addr;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn error_code(body: &str) -> String {
    // The body may be chunked; the JSON object is the part between the outer braces.
    let json = &body[body.find('{').unwrap_or(0)..=body.rfind('}').unwrap_or(0)];
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn serves_written_reports_with_their_content_types() {
    let app = spawn_app().await;
    write_reports(&app, "q1");
    let cases = [
        ("report.html", "text/html; charset=utf-8", "q1"),
        (
            "tasks/smoke/report.html",
            "text/html; charset=utf-8",
            "&lt;script&gt;",
        ),
        (
            "tasks/smoke/tests/shell/ping.html",
            "text/html; charset=utf-8",
            "line-send",
        ),
        (
            "tasks/smoke/junit.xml",
            "application/xml; charset=utf-8",
            "<testsuites",
        ),
        (
            "tasks/smoke/summary.json",
            "application/json",
            "\"task\": \"smoke\"",
        ),
        ("queue.log", "text/plain; charset=utf-8", "booted"),
    ];
    for (path, content_type, needle) in cases {
        let r = app
            .client
            .get(app.url(&format!("/queues/q1/files/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], content_type, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("sandbox")
        );
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path}: {body}");
    }
    let head = app
        .client
        .head(app.url("/queues/q1/files/report.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let len: u64 = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let on_disk = std::fs::metadata(app.root.join("queues/q1/report.html"))
        .unwrap()
        .len();
    assert_eq!(len, on_disk);
    assert!(head.bytes().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn traversal_is_refused_before_the_filesystem_is_touched() {
    let app = spawn_app().await;
    write_reports(&app, "q1");
    std::fs::write(app.root.join("secret.txt"), "secret").unwrap();
    let cases = [
        ("/queues/q1/files/../secret.txt", 400, "invalid_path"),
        ("/queues/q1/files/../../secret.txt", 400, "invalid_path"),
        ("/queues/q1/files/%2e%2e/secret.txt", 400, "invalid_path"),
        (
            "/queues/q1/files/%2E%2E/%2e%2e/secret.txt",
            400,
            "invalid_path",
        ),
        (
            "/queues/q1/files/tasks%2f..%2f..%2fsecret.txt",
            400,
            "invalid_path",
        ),
        ("/queues/q1/files//etc/passwd", 400, "invalid_path"),
        ("/queues/q1/files/%2fetc%2fpasswd", 400, "invalid_path"),
        ("/queues/q1/files/..%5csecret.txt", 400, "invalid_path"),
        ("/queues/q1/files/report.html%00.txt", 400, "invalid_path"),
        ("/queues/q1/files/./report.html", 400, "invalid_path"),
        ("/queues/%2e%2e/files/secret.txt", 400, "invalid_id"),
        ("/queues/q1%2f..%2f../files/secret.txt", 400, "invalid_id"),
    ];
    for (target, status, code) in cases {
        let (got, body) = raw_get(&app, target).await;
        assert_eq!(got, status, "{target}: {body}");
        assert_eq!(error_code(&body), code, "{target}: {body}");
        assert!(
            !body.contains("secret\r\n") && !body.ends_with("secret"),
            "{target} leaked"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_symlink_leading_out_of_the_queue_is_refused_one_inside_is_followed() {
    let app = spawn_app().await;
    let queue_dir = write_reports(&app, "q1");
    std::fs::write(app.root.join("secret.txt"), "secret").unwrap();
    let task_dir = queue_dir.join("tasks/smoke");
    symlink(&app.root.join("secret.txt"), &task_dir.join("escape.txt"));
    symlink(&app.root, &task_dir.join("up"));
    symlink(Path::new("report.html"), &task_dir.join("latest.html"));

    for path in ["tasks/smoke/escape.txt", "tasks/smoke/up/secret.txt"] {
        let r = app
            .client
            .get(app.url(&format!("/queues/q1/files/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{path}");
    }
    let r = app
        .client
        .get(app.url("/queues/q1/files/tasks/smoke/latest.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("ping"));
    app.stop().await;
}

#[tokio::test]
async fn the_checkout_is_never_served() {
    let app = spawn_app().await;
    let queue_dir = write_reports(&app, "q1");
    let repo = queue_dir.join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::write(repo.join("index.html"), "<script>alert(1)</script>").unwrap();
    std::fs::write(repo.join(".git/config"), "[remote]").unwrap();
    std::fs::write(queue_dir.join("other.txt"), "other").unwrap();
    for path in ["repo/index.html", "repo/.git/config", "other.txt"] {
        let r = app
            .client
            .get(app.url(&format!("/queues/q1/files/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("not the checkout"), "{message}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_files_directories_and_queues_are_not_found() {
    let app = spawn_app().await;
    write_reports(&app, "q1");
    for path in [
        "/queues/q1/files/nope.html",
        "/queues/q1/files/tasks/smoke/tests/shell/missing.html",
        "/queues/q1/files/report.html/inside",
        "/queues/q1/files/tasks",
        "/queues/q1/files/tasks/smoke",
        "/queues/other/files/report.html",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let r = app
        .client
        .post(app.url("/queues/q1/files/report.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    app.stop().await;
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}
