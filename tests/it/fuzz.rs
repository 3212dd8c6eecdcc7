//! Fuzzing, the short run: a few hundred generated cases per target (the generators and the
//! runner are in `fuzz_gen/`, shared with the long run, `cargo bench --bench fuzz`), the inputs
//! that once failed (`fixtures/fuzz/<target>/`) replayed, and generated enqueue bodies sent
//! through the router.
//!
//! The cases are the same on every run (a fixed base seed); `FUZZ_SEED`, `FUZZ_CASES` and the
//! other variables of `fuzz_gen/runner.rs` change that, e.g.
//! `FUZZ_SEED=$RANDOM FUZZ_CASES=5000 cargo test --test it fuzz`.

#[path = "fuzz_gen/mod.rs"]
mod fuzz_gen;

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::helpers::test_state;
use fuzz_gen::{Options, TARGETS, enqueue_bodies, replay_named, run_named};
use testarena::api::router;

const SEED: u64 = 0x7e57_a2e4_a000_0013;

/// Runs `cases` cases of `target` on one thread; fails with the minimal failing input.
fn short_run(target: &str, cases: u64) {
    let options = Options::from_env(cases, SEED, 1).expect("the FUZZ_* variables");
    let report = run_named(target, &options).expect("a known target");
    println!("{report}");
    if let Some(failure) = &report.failure {
        panic!("{failure}");
    }
    assert_eq!(report.cases, options.replay.map_or(options.cases, |_| 1));
}

#[test]
fn fuzz_scenario_parser() {
    short_run("scenario", 300);
}

#[test]
fn fuzz_webhook_deliveries() {
    short_run("webhook", 400);
}

#[test]
fn fuzz_config_files() {
    short_run("config", 300);
}

#[test]
fn fuzz_enqueue_bodies() {
    short_run("enqueue", 400);
}

/// Every file under `fixtures/fuzz/<target>/` is an input that once failed: each must now
/// hold the property (no panic, a message with every error, in time).
#[test]
fn fuzz_fixtures_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for dir in std::fs::read_dir(&root).expect("fixtures/fuzz") {
        let dir = dir.expect("an entry").path();
        let target = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !dir.is_dir() {
            continue;
        }
        assert!(
            TARGETS.contains(&target.as_str()),
            "fixtures/fuzz/{target}: not a target ({TARGETS:?})"
        );
        for file in std::fs::read_dir(&dir).expect("a fixture directory") {
            let path = file.expect("an entry").path();
            let bytes = std::fs::read(&path).expect("a fixture");
            let started = std::time::Instant::now();
            let verdict = replay_named(&target, &bytes).expect("a known target");
            replayed += 1;
            let took = started.elapsed();
            match verdict {
                Err(why) => failures.push(format!("{}: {why}", path.display())),
                Ok(_) if took > std::time::Duration::from_secs(20) => {
                    failures.push(format!("{}: took {took:?}", path.display()));
                }
                Ok(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(replayed > 0, "no fixture under {}", root.display());
}

/// Generated bodies through `POST /api/queues` (axum's JSON extractor, our rejections, the
/// store): never a 5xx, every 4xx with an error message, every valid body enqueued (or a
/// conflict with an earlier body that drew the same id).
#[tokio::test]
async fn fuzz_enqueue_bodies_through_the_router() {
    let (state, _dir) = test_state("");
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(150usize)
        .min(2000);
    for (body, valid) in enqueue_bodies(cases, SEED) {
        let request = Request::post("/api/queues")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let shown = String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned();
        match status {
            StatusCode::OK | StatusCode::CREATED => {}
            StatusCode::BAD_REQUEST
            | StatusCode::CONFLICT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    !message.trim().is_empty(),
                    "{status} without a message: {answer} for {shown}"
                );
            }
            other => panic!("{other} for {shown}: {answer}"),
        }
        if valid {
            assert!(
                matches!(
                    status,
                    StatusCode::OK | StatusCode::CREATED | StatusCode::CONFLICT
                ),
                "a valid body got {status}: {answer} for {shown}"
            );
        }
    }
}
