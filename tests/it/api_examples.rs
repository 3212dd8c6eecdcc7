//! The REST API's JSON shape, pinned by committed examples in `fixtures/api/` (one pretty-printed
//! file per request: `{"request", "status", "body"}`), so that a refactor cannot change a response
//! unnoticed. Values that change per run (timestamps, cursors) are replaced by placeholders such as
//! `"<time>"` before comparing; everything else must match exactly (compared as `serde_json::Value`,
//! so key order does not matter).
//!
//! After a deliberate change to the API, regenerate the examples and review the diff:
//!
//! ```sh
//! TESTARENA_BLESS=1 cargo test --test it api_examples
//! ```
//!
//! With `TESTARENA_BLESS=1` set, the test writes the files instead of comparing.

use std::path::{Path, PathBuf};

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Keys whose values change per run, and what they are replaced by (only when not null, so that
/// "set" versus "not set" is still pinned).
const VOLATILE: &[(&str, &str)] = &[
    ("created_at", "<time>"),
    ("started_at", "<time>"),
    ("finished_at", "<time>"),
    ("next_cursor", "<cursor>"),
];

fn normalise(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match VOLATILE.iter().find(|(k, _)| k == key) {
                    Some((_, placeholder)) if !value.is_null() => {
                        *value = Value::String((*placeholder).to_owned());
                    }
                    _ => normalise(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/api")
}

/// Sends one request; returns the example as it would be stored.
async fn example(app: &TestApp, method: &str, path: &str, body: Option<(&str, String)>) -> Value {
    let mut req = app
        .client
        .request(method.parse().expect("method"), app.url(path));
    if let Some((content_type, body)) = body {
        req = req.header(CONTENT_TYPE, content_type).body(body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let mut body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    normalise(&mut body);
    json!({"request": format!("{method} {path}"), "status": status, "body": body})
}

fn json_body(v: &Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

#[tokio::test]
async fn responses_match_the_committed_examples() {
    let app = spawn_app().await;
    let enqueue = json!({
        "id": "example-1",
        "repo": "https://git.example.org/team/fw.git",
        "branch": "main",
        "environment": "esp32",
        "scenarios": ["scenarios/smoke.xml"],
        "priority": 3,
    });
    let unknown_env = json!({
        "id": "example-2",
        "repo": "https://git.example.org/team/fw.git",
        "environment": "mars",
    });
    let dotted_id = json!({
        "id": "example..2",
        "repo": "https://git.example.org/team/fw.git",
        "environment": "esp32",
    });

    // In order: later cases see the state the earlier ones left.
    let cases: Vec<(&str, Value)> = vec![
        (
            "enqueue-created",
            example(&app, "POST", "/api/queues", json_body(&enqueue)).await,
        ),
        (
            "enqueue-again-idempotent",
            example(&app, "POST", "/api/queues", json_body(&enqueue)).await,
        ),
        (
            "get-queue",
            example(&app, "GET", "/api/queues/example-1", None).await,
        ),
        (
            "list-queues",
            example(&app, "GET", "/api/queues?limit=10", None).await,
        ),
        (
            "abort-waiting",
            example(&app, "POST", "/api/queues/example-1/abort", None).await,
        ),
        (
            "list-aborted",
            example(&app, "GET", "/api/queues?status=aborted", None).await,
        ),
        (
            "error-malformed-json",
            example(
                &app,
                "POST",
                "/api/queues",
                Some(("application/json", "{\"repo\": ".to_owned())),
            )
            .await,
        ),
        (
            "error-unknown-environment",
            example(&app, "POST", "/api/queues", json_body(&unknown_env)).await,
        ),
        (
            "error-dotted-id",
            example(&app, "POST", "/api/queues", json_body(&dotted_id)).await,
        ),
        (
            "error-unknown-queue",
            example(&app, "GET", "/api/queues/nope", None).await,
        ),
        (
            "error-wrong-content-type",
            example(
                &app,
                "POST",
                "/api/queues",
                Some(("text/plain", enqueue.to_string())),
            )
            .await,
        ),
    ];
    app.stop().await;

    let dir = example_dir();
    let bless = std::env::var_os("TESTARENA_BLESS").is_some_and(|v| v == "1");
    if bless {
        std::fs::create_dir_all(&dir).expect("fixtures/api");
    }
    let mut mismatches = Vec::new();
    for (i, (name, actual)) in cases.iter().enumerate() {
        let file = dir.join(format!("{:02}-{name}.json", i + 1));
        if bless {
            let text = serde_json::to_string_pretty(actual).expect("serialise") + "\n";
            std::fs::write(&file, text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display())),
            Err(e) => {
                mismatches.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        if &expected != actual {
            mismatches.push(format!(
                "{}\n--- expected\n{expected:#}\n--- actual\n{actual:#}",
                file.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "responses differ from the committed examples (after a deliberate API change, \
         regenerate with TESTARENA_BLESS=1 and review the diff):\n\n{}",
        mismatches.join("\n\n")
    );
}
