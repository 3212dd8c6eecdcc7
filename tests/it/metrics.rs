//! `GET /metrics` on a real server: what ran, how it ended and who is watching.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};
use crate::logs_sse::SseClient;
use crate::worker::{SCENARIO_PASS, config, make_repo};

pub async fn metrics(app: &TestApp) -> String {
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    r.text().await.unwrap()
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test]
async fn metrics_follow_runs_results_and_stream_clients() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;
    let before = metrics(&app).await;
    assert!(has(&before, "testarena_slots 1"), "{before}");
    assert!(has(&before, "testarena_slots_busy 0"), "{before}");

    let body = json!({"repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_status(&id, "passed", Duration::from_secs(30))
        .await;
    // The final status is counted from the change feed, just after the change: each scrape
    // is a fresh look, up to a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let finished = "testarena_queues_finished_total{environment=\"sim\",status=\"passed\"} 1";
    let text = loop {
        let text = metrics(&app).await;
        if has(&text, finished) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{finished:?} never came:\n{text}"
        );
        tokio::task::yield_now().await;
    };
    for line in [
        "testarena_queues_enqueued_total{source=\"api\"} 1",
        "testarena_tests_total{status=\"passed\"} 2",
        "testarena_queue_duration_seconds_count{environment=\"sim\"} 1",
        "testarena_queues{status=\"passed\"} 1",
        "testarena_queues{status=\"waiting\"} 0",
    ] {
        assert!(has(&text, line), "missing {line:?} in:\n{text}");
    }

    // Open streams are counted while they are open: one that ends (a finished queue's log,
    // replayed to its `end`) is no longer counted...
    let mut log = SseClient::connect(&app, &format!("/api/queues/{id}/log/stream"), None).await;
    while let Some(event) = log.next().await {
        assert_ne!(event.event, "error");
    }
    let events = SseClient::connect(&app, "/api/events", None).await;
    let text = metrics(&app).await;
    assert!(
        has(&text, "testarena_sse_clients{stream=\"events\"} 1"),
        "{text}"
    );
    assert!(
        has(&text, "testarena_sse_clients{stream=\"log\"} 0"),
        "{text}"
    );

    // ...nor is a client that went away: the server notices when it next writes to it.
    drop(events);
    let mut gone = false;
    for i in 0..20 {
        let poke = json!({"id": format!("poke-{i}"), "repo": std::env::temp_dir().join("nonexistent/repo"), "branch": "main", "environment": "sim"});
        assert_eq!(app.post_json("/api/queues", &poke).await.status(), 201);
        app.wait_status(&format!("poke-{i}"), "error", Duration::from_secs(30))
            .await;
        if has(
            &metrics(&app).await,
            "testarena_sse_clients{stream=\"events\"} 0",
        ) {
            gone = true;
            break;
        }
    }
    assert!(gone, "a disconnected client is still counted");
    app.stop().await;
}
