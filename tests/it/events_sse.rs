//! `/api/events` over real sockets: live changes, exact resume, reset, shutdown.

use serde_json::Value;
use testarena::model::Status;

use crate::helpers::spawn_app;
use crate::logs_sse::{SseClient, SseEvent, enqueue};

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
