//! `GET /metrics` on a real server: what ran, how it ended and who is watching; both
//! exposition formats, and `promtool check metrics` on a real scrape.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, require_tool, spawn_app_with};
use crate::logs_sse::SseClient;
use crate::worker::{SCENARIO_PASS, config, make_repo};

const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A scrape with no `Accept`, as curl and promtool make it: the classic text format.
pub async fn metrics(app: &TestApp) -> String {
    let (content_type, text) = scrape(app, None).await;
    assert_eq!(content_type, CLASSIC);
    text
}

/// A scrape with `accept`: the content type and the text.
async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut req = app.client.get(app.url("/metrics"));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["vary"], "accept");
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, r.text().await.unwrap())
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// The value of the sample named `series` (name and labels, as written), if there is one.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Runs a queue that passes on a fresh server and waits until its end is counted.
async fn app_after_a_run() -> (TestApp, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;
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
    loop {
        let text = metrics(&app).await;
        if has(&text, finished) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{finished:?} never came:\n{text}"
        );
        tokio::task::yield_now().await;
    }
    (app, id, dir)
}

#[tokio::test]
async fn promtool_accepts_a_real_scrape_with_build_info_wait_times_and_requests_by_route() {
    let promtool = require_tool("promtool", "prometheus");
    let (app, id, _dir) = app_after_a_run().await;
    let r = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = metrics(&app).await;

    let mut promtool = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\non:\n{text}"
    );

    let version = env!("CARGO_PKG_VERSION");
    assert!(
        has(
            &text,
            &format!("testarena_build_info{{version=\"{version}\"}} 1")
        ),
        "{text}"
    );
    // One queue waited, between nothing and the time the test took.
    let waited = |s: &str| {
        value(
            &text,
            &format!("testarena_queue_wait_seconds_{s}{{environment=\"sim\"}}"),
        )
    };
    assert_eq!(waited("count"), Some(1.0), "{text}");
    let sum = waited("sum").expect("a wait time");
    assert!((0.0..30.0).contains(&sum), "{sum}");
    // Requests by the route's template, never the path: the queue's id is not a label value.
    let requests = |route: &str, method: &str, status: u16| {
        value(
            &text,
            &format!(
                "testarena_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("/api/queues", "POST", 201), Some(1.0), "{text}");
    assert!(
        requests("/api/queues/{id}", "GET", 200).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        requests("/metrics", "GET", 200).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(requests("other", "GET", 404), Some(1.0), "{text}");
    assert!(!text.contains(&id), "a queue id in a label:\n{text}");
    // Every durable commit's time is observed (the histogram is read after the counter, and a
    // background write may commit in between), each taking some time, none of it more than the
    // test took.
    let commits = value(&text, "testarena_store_commits_total").expect("commits");
    assert!(commits >= 1.0, "{text}");
    let timed = value(&text, "testarena_store_commit_seconds_count").expect("a count");
    assert!(
        timed >= commits,
        "{timed} commits timed of {commits}:\n{text}"
    );
    let spent = value(&text, "testarena_store_commit_seconds_sum").expect("a sum");
    assert!(spent > 0.0 && spent < 60.0, "{spent}");
    assert!(!text.contains("/no/such/page"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn metrics_answer_the_format_the_scraper_asks_for() {
    let app = spawn_app_with("[worker]\nslots = 0\n").await;
    for (accept, expected) in [
        (None, CLASSIC),
        (Some("*/*"), CLASSIC),
        (Some("text/plain;version=0.0.4"), CLASSIC),
        (Some(PROMETHEUS_ACCEPT), OPENMETRICS),
        (
            Some("application/openmetrics-text;version=1.0.0;q=0.2,text/plain;version=0.0.4;q=0.8"),
            CLASSIC,
        ),
        (
            Some("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0"),
            OPENMETRICS,
        ),
    ] {
        let (content_type, text) = scrape(&app, accept).await;
        assert_eq!(content_type, expected, "Accept: {accept:?}");
        let openmetrics = expected == OPENMETRICS;
        // OpenMetrics ends with `# EOF` and names a counter's family without `_total`; the
        // classic format has no end marker and names help and type with `_total`.
        assert_eq!(text.ends_with("# EOF\n"), openmetrics, "{text}");
        let (help, kind) = if openmetrics {
            (
                "# HELP testarena_retention_removed ",
                "# TYPE testarena_retention_removed counter",
            )
        } else {
            (
                "# HELP testarena_retention_removed_total ",
                "# TYPE testarena_retention_removed_total counter",
            )
        };
        assert!(text.lines().any(|l| l.starts_with(help)), "{text}");
        assert!(has(&text, kind), "{text}");
        assert!(has(&text, "testarena_slots 0"), "{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_follow_runs_results_and_stream_clients() {
    let (app, id, _dir) = app_after_a_run().await;
    let text = metrics(&app).await;
    assert!(has(&text, "testarena_slots 1"), "{text}");
    assert!(has(&text, "testarena_slots_busy 0"), "{text}");
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
