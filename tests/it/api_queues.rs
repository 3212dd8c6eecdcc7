//! The queue REST API through the router (`oneshot`, no socket): success and failure paths.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::test_state;
use testarena::api::router;
use testarena::state::AppState;

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, location, body)
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn enqueue(state: &AppState, body: Value) -> (StatusCode, Value) {
    let (s, _, b) = call(state, post("/api/queues", body.to_string())).await;
    (s, b)
}

fn queue(id: &str) -> Value {
    json!({"id": id, "repo": "https://git.example/fw.git", "branch": "main", "environment": "esp32",
           "scenarios": ["scenarios/smoke.xml", "scenarios/smoke2.xml"], "priority": 1})
}

fn assert_error(body: &Value, code: &str, field: Option<&str>) {
    assert_eq!(body["error"]["code"], code, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body:#}"
    );
    if let Some(f) = field {
        assert_eq!(body["error"]["field"], f, "{body:#}");
    }
}

#[tokio::test]
async fn enqueue_returns_201_with_location_then_is_idempotent() {
    let (state, _dir) = test_state("[worker]\nslots = 0");
    let (s, loc, body) = call(&state, post("/api/queues", queue("q1").to_string())).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(loc.as_deref(), Some("/api/queues/q1"));
    assert_eq!(body["id"], "q1");
    assert_eq!(body["status"], "waiting");
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["waiting_reason"], "worker paused ([worker] slots = 0)");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let tasks = body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["id"], "smoke");
    assert_eq!(tasks[0]["status"], "waiting");

    let (s, again) = enqueue(&state, queue("q1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["created_at"], body["created_at"]);

    let mut other = queue("q1");
    other["branch"] = json!("develop");
    let (s, err) = enqueue(&state, other).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error(&err, "conflict", None);
}

#[tokio::test]
async fn enqueue_without_id_generates_a_time_ordered_one() {
    let (state, _dir) = test_state("[worker]\nslots = 0");
    let body = json!({"repo": "https://example.org/fw.git", "environment": "xtensa-sim"});
    let (s1, a) = enqueue(&state, body.clone()).await;
    let (s2, b) = enqueue(&state, body).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert!(a["id"].as_str().unwrap() < b["id"].as_str().unwrap());
}

#[tokio::test]
async fn bad_requests_say_what_to_change() {
    let (state, _dir) = test_state("[worker]\nslots = 0");
    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (
            json!({"id": "a/b", "repo": "https://git.example/r", "environment": "esp32"}),
            "invalid_id",
            Some("id"),
        ),
        (
            json!({"id": "..", "repo": "https://git.example/r", "environment": "esp32"}),
            "invalid_id",
            Some("id"),
        ),
        (
            json!({"repo": "https://git.example/r", "environment": "mars"}),
            "invalid_field",
            Some("environment"),
        ),
        (
            json!({"repo": "https://git.example/r", "environment": "esp32", "branch": "a..b"}),
            "invalid_field",
            Some("branch"),
        ),
        (
            json!({"repo": "https://git.example/r", "environment": "esp32", "commit": "zz"}),
            "invalid_field",
            Some("commit"),
        ),
        (
            json!({"repo": "https://git.example/r", "environment": "esp32", "scenarios": ["../../etc/passwd"]}),
            "invalid_field",
            Some("scenarios"),
        ),
        (
            json!({"environment": "esp32"}),
            "invalid_body",
            Some("repo"),
        ),
        (
            json!({"repo": "https://git.example/r", "environment": "esp32", "colour": "red"}),
            "invalid_body",
            Some("colour"),
        ),
        (
            json!({"repo": "https://git.example/r", "environment": "esp32", "priority": "high"}),
            "invalid_body",
            None,
        ),
    ];
    for (body, code, field) in cases {
        let (s, err) = enqueue(&state, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&err, code, field);
    }
    let (s, err) = enqueue(
        &state,
        json!({"repo": "https://git.example/r", "environment": "mars"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("esp32, xtensa-sim")
    );
    // Nothing was half-written.
    let (_, _, list) = call(&state, get("/api/queues")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn malformed_json_wrong_type_and_oversized_bodies() {
    let (state, _dir) = test_state("[worker]\nslots = 0\n[api]\nmax_body = 1024");
    let (s, _, err) = call(&state, post("/api/queues", "{\"repo\": ")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&err, "malformed_json", None);

    let req = Request::post("/api/queues")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(queue("x").to_string()))
        .unwrap();
    let (s, _, err) = call(&state, req).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&err, "unsupported_media_type", None);

    let big = json!({"repo": "/r".repeat(1000), "environment": "esp32"}).to_string();
    let (s, _, err) = call(&state, post("/api/queues", big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&err, "payload_too_large", None);
}

#[tokio::test]
async fn list_is_newest_first_with_cursor_pagination_and_status_filter() {
    let (state, _dir) = test_state("[worker]\nslots = 0");
    for i in 0..5 {
        enqueue(&state, queue(&format!("q{i}"))).await;
    }
    call(&state, post("/api/queues/q1/abort", "")).await;

    let (s, _, page) = call(&state, get("/api/queues?limit=2")).await;
    assert_eq!(s, StatusCode::OK);
    let ids = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), ["q4", "q3"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, page2) = call(&state, get(&format!("/api/queues?limit=2&cursor={cursor}"))).await;
    assert_eq!(ids(&page2), ["q2", "q1"]);
    let cursor = page2["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, page3) = call(&state, get(&format!("/api/queues?limit=2&cursor={cursor}"))).await;
    assert_eq!(ids(&page3), ["q0"]);
    assert!(page3["next_cursor"].is_null());

    let (_, _, aborted) = call(&state, get("/api/queues?status=aborted")).await;
    assert_eq!(ids(&aborted), ["q1"]);
    let (_, _, waiting) = call(&state, get("/api/queues?status=waiting")).await;
    assert_eq!(ids(&waiting), ["q4", "q3", "q2", "q0"]);

    for bad in [
        "/api/queues?status=done",
        "/api/queues?limit=0",
        "/api/queues?limit=x",
        "/api/queues?cursor=abc",
        "/api/queues?sort=up",
    ] {
        let (s, _, err) = call(&state, get(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&err, "invalid_query", None);
    }
}

#[tokio::test]
async fn get_abort_delete_and_unknown_queues() {
    let (state, dir) = test_state("[worker]\nslots = 0");
    enqueue(&state, queue("q1")).await;
    let (s, _, q) = call(&state, get("/api/queues/q1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(q["repo"], "https://git.example/fw.git");
    assert_eq!(q["tasks"][1]["scenario"], "scenarios/smoke2.xml");

    let (s, _, q) = call(&state, post("/api/queues/q1/abort", "")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(q["status"], "aborted");
    assert!(q["finished_at"].is_string());
    assert_eq!(q["tasks"][0]["status"], "skipped");
    let report = std::fs::read_to_string(dir.path().join("queues/q1/report.html")).unwrap();
    assert!(
        report.contains("aborted"),
        "an aborted queue has its report"
    );
    let (s, _, err) = call(&state, post("/api/queues/q1/abort", "")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error(&err, "conflict", None);

    let files = dir.path().join("queues/q1");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("queue.log"), "x\n").unwrap();
    let resp = router(state.clone())
        .oneshot(
            Request::delete("/api/queues/q1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!files.exists());
    let (s, _, err) = call(&state, get("/api/queues/q1")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&err, "not_found", None);

    for (req, code) in [
        (get("/api/queues/nope"), StatusCode::NOT_FOUND),
        (post("/api/queues/nope/abort", ""), StatusCode::NOT_FOUND),
        (
            Request::delete("/api/queues/nope")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (get("/api/queues/..%2Fetc"), StatusCode::BAD_REQUEST),
        (get("/api/nothing"), StatusCode::NOT_FOUND),
        (
            Request::put("/api/queues").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let (s, _, body) = call(&state, req).await;
        assert_eq!(s, code);
        assert!(body["error"]["code"].is_string(), "{body:#}");
    }
}

#[tokio::test]
async fn healthz() {
    let (state, _dir) = test_state("");
    let resp = router(state).oneshot(get("/healthz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Paths and query strings that cannot even be decoded get the same JSON error body as every
/// other mistake, not axum's plain text.
#[tokio::test]
async fn undecodable_paths_and_queries_are_json_errors() {
    let (state, _dir) = test_state("[worker]\nslots = 0");
    for path in [
        "/api/queues/%FF",
        "/api/queues/%FF/abort",
        "/api/queues/%C3%28/log",
        "/queues/%FF/files/report.html",
    ] {
        let method = if path.ends_with("abort") {
            "POST"
        } else {
            "GET"
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let (s, _, err) = call(&state, req).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}");
        assert_error(&err, "invalid_path", None);
    }
    for path in [
        "/api/queues?status=%FF",
        "/api/events?after=%FF",
        "/api/queues/x/log?offset=%FF",
    ] {
        let (s, _, err) = call(&state, get(path)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}");
        assert_error(&err, "invalid_query", None);
    }
}
