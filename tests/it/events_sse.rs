//! `/api/events` over real sockets: live changes, exact resume, reset, shutdown.

use serde_json::Value;
use testarena::model::Status;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::logs_sse::{SseClient, SseEvent, enqueue, scrape};

fn json(event: &SseEvent) -> Value {
    assert_eq!(event.event, "change", "{event:?}");
    serde_json::from_str(&event.data).expect("JSON data")
}

#[tokio::test]
async fn changes_arrive_live_as_json() {
    let app = spawn_app().await;
    let mut sse = SseClient::connect(&app, "/api/events", None).await;
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    let id = enqueue(&app, "live").await;
    let created = sse.next().await.unwrap();
    assert_eq!(created.retry, Some(2000));
    let data = json(&created);
    assert_eq!(data["queue"], "live");
    assert_eq!(data["from"], Value::Null);
    assert_eq!(data["to"], "waiting");
    assert_eq!(created.id, Some(data["seq"].to_string()));
    app.state
        .store
        .transition(&id, Status::Running, None)
        .await
        .unwrap();
    let data = json(&sse.next().await.unwrap());
    assert_eq!(
        (&data["from"], &data["to"]),
        (&"waiting".into(), &"running".into())
    );
}

#[tokio::test]
async fn resume_delivers_exactly_the_missed_changes() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let mut sse = SseClient::connect(&app, "/api/events", None).await;
    let a = enqueue(&app, "a").await;
    let seen = sse.next().await.unwrap();
    drop(sse);
    let last = seen.id.clone().unwrap();

    // Missed while disconnected.
    let b = enqueue(&app, "b").await;
    store.transition(&a, Status::Running, None).await.unwrap();
    store.transition(&b, Status::Aborted, None).await.unwrap();
    store.transition(&a, Status::Passed, None).await.unwrap();
    let missed = store.events_after(last.parse().unwrap()).await.unwrap();
    assert!(missed.complete);
    assert_eq!(missed.changes.len(), 4);

    for (path, header) in [
        ("/api/events".to_owned(), Some(last.as_str())),
        (format!("/api/events?from={last}"), None),
    ] {
        let expected: Vec<Value> = store
            .events_after(last.parse().unwrap())
            .await
            .unwrap()
            .changes
            .iter()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        let mut sse = SseClient::connect(&app, &path, header).await;
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            got.push(json(&sse.next().await.unwrap()));
        }
        assert_eq!(got, expected, "{path}");
        // And then live, with nothing repeated.
        let c = enqueue(&app, &format!("c{}", path.len())).await;
        let next = json(&sse.next().await.unwrap());
        assert_eq!(next["queue"], c.as_str());
        assert_eq!(next["seq"], store.latest_seq());
    }
}

#[tokio::test]
async fn a_client_ahead_of_the_store_is_told_to_reload() {
    let app = spawn_app().await;
    enqueue(&app, "x").await;
    let latest = app.state.store.latest_seq();
    let mut sse = SseClient::connect(&app, "/api/events", Some("999999")).await;
    let reset = sse.next().await.unwrap();
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.id, Some(latest.to_string()));
    let data: Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(data["seq"], latest);
    enqueue(&app, "y").await;
    let next = json(&sse.next().await.unwrap());
    assert_eq!(next["queue"], "y");
}

#[tokio::test]
async fn a_client_older_than_the_kept_events_is_told_to_reload() {
    let app = spawn_app().await;
    let first = enqueue(&app, "first").await;
    let oldest = app.state.store.latest_seq();
    // More changes than the event table ever keeps.
    let ids: Vec<String> = (0..testarena::store::MAX_EVENTS + 50)
        .map(|i| format!("q{i}"))
        .collect();
    futures_util::future::join_all(ids.iter().map(|id| enqueue(&app, id))).await;
    assert!(
        !app.state
            .store
            .events_after(oldest - 1)
            .await
            .unwrap()
            .complete
    );
    let mut sse = SseClient::connect(&app, "/api/events", Some(&(oldest - 1).to_string())).await;
    let reset = sse.next().await.unwrap();
    assert_eq!(reset.event, "reset");
    let latest = app.state.store.latest_seq();
    assert_eq!(reset.id, Some(latest.to_string()));
    app.state
        .store
        .transition(&first, Status::Aborted, None)
        .await
        .unwrap();
    let next = json(&sse.next().await.unwrap());
    assert_eq!(next["seq"], latest + 1);
}

#[tokio::test]
async fn bad_resume_points_get_json_errors() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/events?from=-1").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "from");
    let r = app
        .client
        .get(app.url("/api/events"))
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_last_event_id");
}

#[tokio::test]
async fn shutdown_ends_the_stream() {
    let app = spawn_app().await;
    let mut sse = SseClient::connect(&app, "/api/events", None).await;
    app.stop().await;
    assert!(sse.next().await.is_none());
}

/// A stream request refused for a limit: 503, `Retry-After`, and a message naming the limit.
async fn refused(app: &TestApp, path: &str, limit: &str) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 503, "{path}");
    assert_eq!(r.headers()["retry-after"], "5", "{path}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(limit), "{path}: {message}");
}

#[tokio::test]
async fn streams_over_the_limits_get_503_naming_the_limit() {
    let app =
        spawn_app_with("[worker]\nslots = 0\n[api]\nmax_sse_clients = 3\nmax_sse_per_queue = 2\n")
            .await;
    let a = enqueue(&app, "a").await;
    let b = enqueue(&app, "b").await;
    let log = |id: &testarena::model::QueueId| format!("/api/queues/{id}/log/stream");

    let mut a1 = SseClient::connect(&app, &log(&a), None).await;
    let mut a2 = SseClient::connect(&app, &log(&a), None).await;
    refused(&app, &log(&a), "queue a's log already has 2 open streams").await;
    refused(&app, &log(&a), "max_sse_per_queue").await;
    // Another stream may still open, until the server's limit.
    let mut events = SseClient::connect(&app, "/api/events", None).await;
    refused(&app, &log(&b), "max_sse_clients").await;
    refused(&app, "/api/events", "already has 3 open event streams").await;
    let metrics = scrape(&app).await;
    for line in [
        "testarena_sse_clients{stream=\"log\"} 2",
        "testarena_sse_clients{stream=\"events\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }

    // Streams that end make room: queue a ends, its log streams send `end` and close.
    app.state
        .store
        .transition(&a, Status::Aborted, None)
        .await
        .unwrap();
    for client in [&mut a1, &mut a2] {
        let (text, end) = client.read_to_end().await;
        assert_eq!(
            (text.as_str(), end.as_str()),
            ("", r#"{"status":"aborted"}"#)
        );
        assert!(client.next().await.is_none());
    }
    let mut b1 = SseClient::connect(&app, &log(&b), None).await;
    let _b2 = SseClient::connect(&app, &log(&b), None).await;
    refused(&app, &log(&b), "max_sse_clients").await;
    // The streams that stayed open still stream.
    assert_eq!(json(&events.next().await.unwrap())["to"], "aborted");
    app.state
        .store
        .transition(&b, Status::Aborted, None)
        .await
        .unwrap();
    assert_eq!(b1.read_to_end().await.1, r#"{"status":"aborted"}"#);
}
