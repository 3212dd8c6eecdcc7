//! `POST /api/hooks/gitea`: signed Gitea deliveries become queues, folded per commit; every
//! refused delivery says why. Router tests use the fixture payloads; two tests run a real
//! repository's pushed commit and a pull request's head (reachable only through
//! `refs/pull/<n>/head`, as for a fork) to `passed`.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{TestApp, spawn_app_with, test_state};
use crate::worker::{SCENARIO_PASS, config, git, make_repo};
use testarena::api::router;
use testarena::hooks::sign;
use testarena::state::AppState;

const SECRET: &str = "hook-secret";
pub const PUSH: &str = include_str!("../../fixtures/webhooks/push.json");
const PULL: &str = include_str!("../../fixtures/webhooks/pull_request.json");
const SETTINGS: &str =
    "[gitea]\nsecret = \"hook-secret\"\nenvironment = \"xtensa-sim\"\n[worker]\nslots = 0\n";

/// A delivery as Gitea sends it: pretty-printed JSON, signed over those exact bytes.
pub fn delivery(event: &str, payload: &Value, uuid: &str) -> Request<Body> {
    let body = serde_json::to_vec_pretty(payload).unwrap();
    Request::post("/api/hooks/gitea")
        .header("content-type", "application/json")
        .header("x-gitea-event", event)
        .header("x-gitea-delivery", uuid)
        .header("x-gitea-signature", sign(SECRET.as_bytes(), &body))
        .body(Body::from(body))
        .unwrap()
}

pub async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn a_push_becomes_one_queue_however_often_its_commit_arrives() {
    let (state, _dir) = test_state(SETTINGS);
    let (s, first) = call(&state, delivery("push", &fixture(PUSH), "d-1")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first:#}");
    let q = &first["queues"][0];
    assert_eq!(q["id"], "team-fw-app-3f2a9c1b7d0e-xtensa-sim");
    assert_eq!(q["status"], "waiting");
    assert_eq!(q["repo"], "https://gitea.example.invalid/team/fw-app.git");
    assert_eq!(q["branch"], "main");
    assert_eq!(q["commit"], "3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091");
    assert_eq!(q["environment"], "xtensa-sim");
    assert_eq!(first["why"], "push to main");
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["delivery"], "d-1");

    // A manual redelivery (new delivery id), a tag on the same commit and a pull request
    // whose head is that commit all fold into the queue there is.
    let mut tag = fixture(PUSH);
    tag["ref"] = json!("refs/tags/v1.0");
    let mut pull = fixture(PULL);
    pull["pull_request"]["head"]["sha"] = json!("3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091");
    for (event, payload) in [
        ("push", fixture(PUSH)),
        ("push", tag),
        ("pull_request", pull),
    ] {
        let (s, again) = call(&state, delivery(event, &payload, "d-2")).await;
        assert_eq!(s, StatusCode::OK, "{again:#}");
        assert_eq!(again["duplicate"], true);
        assert_eq!(
            again["queues"][0]["id"],
            "team-fw-app-3f2a9c1b7d0e-xtensa-sim"
        );
    }
    let page = state.store.list(None, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1, "one queue for one commit");

    // Another commit is another queue.
    let (s, pr) = call(&state, delivery("pull_request", &fixture(PULL), "d-3")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{pr:#}");
    assert_eq!(pr["queues"][0]["id"], "team-fw-app-b7c8d9e0f1a2-xtensa-sim");
    assert_eq!(pr["queues"][0]["branch"], Value::Null);
    assert_eq!(
        pr["queues"][0]["commit"],
        "b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6"
    );
}

/// A queue enqueued through the API under the id a push would get, but running something else,
/// is not taken for the push's queue.
#[tokio::test]
async fn a_queue_that_runs_something_else_under_the_id_is_not_folded_into() {
    let (state, _dir) = test_state(SETTINGS);
    let squat = json!({"id": "team-fw-app-3f2a9c1b7d0e-xtensa-sim", "repo": "https://elsewhere.invalid/x.git",
        "commit": "3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091", "environment": "xtensa-sim",
        "scenarios": ["scenarios/always-passes.xml"]});
    let req = Request::post("/api/queues")
        .header("content-type", "application/json")
        .body(Body::from(squat.to_string()))
        .unwrap();
    assert_eq!(call(&state, req).await.0, StatusCode::CREATED);
    let (s, e) = call(&state, delivery("push", &fixture(PUSH), "d")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e:#}");
    assert_error(&e, "conflict", "runs something else");
    let q = state
        .store
        .get(&testarena::model::QueueId::parse("team-fw-app-3f2a9c1b7d0e-xtensa-sim").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        q.queue.request.repo, "https://elsewhere.invalid/x.git",
        "untouched"
    );
}

#[tokio::test]
async fn deliveries_that_queue_nothing_say_why() {
    let (state, _dir) = test_state(
        "[gitea]\nsecret = \"hook-secret\"\nenvironment = \"xtensa-sim\"\nbranches = [\"release\"]\n[worker]\nslots = 0\n",
    );
    let mut closed = fixture(PULL);
    closed["action"] = json!("closed");
    let mut deleted = fixture(PUSH);
    deleted["ref"] = json!("refs/heads/old");
    deleted["after"] = json!("0000000000000000000000000000000000000000");
    for (event, payload, reason) in [
        (
            "issues",
            json!({"action": "opened"}),
            "only push and pull_request",
        ),
        ("push", fixture(PUSH), "\"main\" is not in [gitea] branches"),
        ("push", deleted, "was deleted"),
        ("pull_request", closed, "was closed"),
    ] {
        let (s, body) = call(&state, delivery(event, &payload, "d")).await;
        assert_eq!(s, StatusCode::OK, "{event}: {body:#}");
        let why = body["ignored"].as_str().unwrap_or_default();
        assert!(why.contains(reason), "{event}: {body:#}");
    }
    assert!(
        state
            .store
            .list(None, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn a_push_whose_head_commit_says_skip_ci_is_answered_ignored() {
    let (state, _dir) = test_state(SETTINGS);
    let mut push = fixture(PUSH);
    push["head_commit"]["message"] = json!("docs: fix a typo [ci skip]\n");
    let (s, body) = call(&state, delivery("push", &push, "d-skip")).await;
    assert_eq!(s, StatusCode::OK, "{body:#}");
    let why = body["ignored"].as_str().unwrap_or_default();
    assert!(why.contains("[ci skip]"), "{body:#}");
    assert_eq!(body["delivery"], "d-skip");
    let page = state.store.list(None, 10, None).await.unwrap();
    assert!(page.items.is_empty(), "nothing queued");
}

fn assert_error(body: &Value, code: &str, mentions: &str) {
    assert_eq!(body["error"]["code"], code, "{body:#}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "{body:#}");
}

#[tokio::test]
async fn unsigned_forged_and_malformed_deliveries_are_refused() {
    let (state, _dir) = test_state(SETTINGS);
    let body = serde_json::to_vec_pretty(&fixture(PUSH)).unwrap();
    let post = |sig: Option<String>, content_type: &str, body: Vec<u8>| {
        let mut r = Request::post("/api/hooks/gitea")
            .header("content-type", content_type)
            .header("x-gitea-event", "push");
        if let Some(sig) = sig {
            r = r.header("x-gitea-signature", sig);
        }
        r.body(Body::from(body)).unwrap()
    };
    let (s, e) = call(&state, post(None, "application/json", body.clone())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&e, "bad_signature", "not signed");
    let wrong = sign(b"another secret", &body);
    let (s, e) = call(&state, post(Some(wrong), "application/json", body.clone())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&e, "bad_signature", "secret differs");
    // Signed over the compact form, sent pretty-printed: the bytes are what is signed.
    let compact = serde_json::to_vec(&fixture(PUSH)).unwrap();
    let (s, _) = call(
        &state,
        post(
            Some(sign(SECRET.as_bytes(), &compact)),
            "application/json",
            body.clone(),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The copy of the signature Gitea sends for GitHub-style receivers is accepted too.
    let mut r = post(None, "application/json", body.clone());
    let hub = format!("sha256={}", sign(SECRET.as_bytes(), &body));
    r.headers_mut()
        .insert("x-hub-signature-256", hub.parse().unwrap());
    assert_eq!(call(&state, r).await.0, StatusCode::ACCEPTED);

    let form = format!("payload={}", String::from_utf8_lossy(&body));
    let (s, e) = call(
        &state,
        post(
            Some(sign(SECRET.as_bytes(), form.as_bytes())),
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&e, "unsupported_media_type", "application/json");

    let junk = b"{\"ref\": ".to_vec();
    let (s, e) = call(
        &state,
        post(
            Some(sign(SECRET.as_bytes(), &junk)),
            "application/json",
            junk,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&e, "invalid_payload", "push payload");

    let mut bad_url = fixture(PUSH);
    bad_url["repository"]["clone_url"] = json!("-uhelper");
    let (s, e) = call(&state, delivery("push", &bad_url, "d")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&e, "invalid_payload", "repo");

    let huge = vec![b' '; 2 * 1024 * 1024];
    let (s, e) = call(
        &state,
        post(
            Some(sign(SECRET.as_bytes(), &huge)),
            "application/json",
            huge,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&e, "payload_too_large", "max_body");
    let count = state.store.list(None, 10, None).await.unwrap().items.len();
    assert_eq!(count, 1, "only the signed, valid delivery queued");
}

#[tokio::test]
async fn without_a_secret_webhooks_are_off_and_say_how_to_turn_them_on() {
    let (state, _dir) = test_state("[worker]\nslots = 0\n");
    let (s, e) = call(&state, delivery("push", &fixture(PUSH), "d")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_error(&e, "hooks_disabled", "TESTARENA_GITEA_SECRET");
}

// ---- real repositories --------------------------------------------------------------------------

const LIMIT: Duration = Duration::from_secs(30);

fn real_app_settings() -> String {
    config(
        "echo built > built.txt",
        "[gitea]\nsecret = \"hook-secret\"\nenvironment = \"sim\"\n",
        "",
    )
}

async fn deliver(app: &TestApp, event: &str, payload: &Value) -> Value {
    deliver_answer(app, event, payload).await
}

/// Sends a signed delivery; expects 202 (something was queued) and returns the answer.
pub async fn deliver_answer(app: &TestApp, event: &str, payload: &Value) -> Value {
    let (status, answer) = deliver_status(app, event, payload).await;
    assert_eq!(status, 202, "{answer:#}");
    answer
}

/// Sends a signed delivery; returns the status and the answer.
pub async fn deliver_status(app: &TestApp, event: &str, payload: &Value) -> (u16, Value) {
    let body = serde_json::to_vec_pretty(payload).unwrap();
    let r = app
        .client
        .post(app.url("/api/hooks/gitea"))
        .header("content-type", "application/json")
        .header("x-gitea-event", event)
        .header("x-gitea-delivery", "real")
        .header("x-gitea-signature", sign(SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Delivers a push of `sha` to `branch` of `repo` (as `team/fw`); returns the id of its queue
/// (the first environment's).
pub async fn push_to(app: &TestApp, repo: &Path, branch: &str, sha: &str) -> String {
    let mut push = fixture(PUSH);
    point_at(&mut push, repo);
    push["ref"] = json!(format!("refs/heads/{branch}"));
    push["after"] = json!(sha);
    let (_, answer) = deliver_status(app, "push", &push).await;
    answer["queues"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a queue: {answer:#}"))
        .to_owned()
}

fn point_at(payload: &mut Value, repo: &Path) {
    payload["repository"]["clone_url"] = json!(repo.display().to_string());
    payload["repository"]["full_name"] = json!("team/fw");
}

#[tokio::test]
async fn a_pushed_commit_runs_to_passed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let app = spawn_app_with(&real_app_settings()).await;
    let mut push = fixture(PUSH);
    point_at(&mut push, &repo);
    push["after"] = json!(sha);
    let answer = deliver(&app, "push", &push).await;
    let id = answer["queues"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, format!("team-fw-{}-sim", &sha[..12]));
    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert_eq!(
        q["tasks"].as_array().unwrap().len(),
        1,
        "every scenario: {q:#}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_pull_request_head_only_the_base_repository_has_runs_to_passed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    // The head of a pull request from a fork: a commit on no branch, under refs/pull/4/head.
    git(&repo, &["checkout", "-q", "-b", "from-a-fork"]);
    std::fs::write(repo.join("CHANGES"), "faster boot\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "faster boot"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["update-ref", "refs/pull/4/head", &head]);
    git(&repo, &["checkout", "-q", "main"]);
    git(&repo, &["branch", "-q", "-D", "from-a-fork"]);

    let app = spawn_app_with(&real_app_settings()).await;
    let mut pull = fixture(PULL);
    point_at(&mut pull, &repo);
    pull["pull_request"]["head"]["sha"] = json!(head);
    let answer = deliver(&app, "pull_request", &pull).await;
    let id = answer["queues"][0]["id"].as_str().unwrap().to_owned();
    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert_eq!(q["commit"], head.as_str(), "{q:#}");
    app.stop().await;
}
