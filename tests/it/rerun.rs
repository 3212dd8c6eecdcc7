//! Re-running a finished queue: a new queue at the commit the original resolved (even after the
//! branch moved on), all its scenarios or only those that did not pass, linked both ways; and
//! every request that cannot be a re-run refused with what to change.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::worker::{SCENARIO_PASS, config, git, make_repo};

const LIMIT: Duration = Duration::from_secs(30);

const SCENARIO_FAIL: &str = r#"<scenario name="fail">
  <suite name="shell">
    <test name="wrong" timeout="5"><send>ping</send><expect timeout="1s">never printed</expect></test>
  </suite>
</scenario>
"#;

/// The same scenario once fixed: what the branch has after it moved on.
const SCENARIO_FIXED: &str = r#"<scenario name="fail">
  <suite name="shell">
    <test name="wrong" timeout="5"><send>ping</send><expect>pong</expect></test>
  </suite>
</scenario>
"#;

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.client.post(app.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn task_ids(q: &Value) -> Vec<String> {
    q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_rerun_of_failed_tasks_runs_them_at_the_original_commit_after_the_branch_moved_on() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/pass.xml", SCENARIO_PASS),
            ("scenarios/fail.xml", SCENARIO_FAIL),
        ],
    );
    let first_commit = git(&repo, &["rev-parse", "HEAD"]);
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;
    let (s, q) = post(
        &app,
        "/api/queues",
        Some(json!({"id": "fw-7", "repo": repo.display().to_string(), "branch": "main", "environment": "sim"})),
    )
    .await;
    assert_eq!(s, 201, "{q:#}");
    let original = app.wait_status("fw-7", "failed", LIMIT).await;
    assert_eq!(
        original["resolved_commit"],
        first_commit.as_str(),
        "{original:#}"
    );

    // The branch moves on: the failing scenario is fixed there.
    std::fs::write(repo.join("scenarios/fail.xml"), SCENARIO_FIXED).unwrap();
    git(&repo, &["commit", "-qam", "fix the test"]);
    assert_ne!(git(&repo, &["rev-parse", "HEAD"]), first_commit);

    let (s, rerun) = post(
        &app,
        "/api/queues/fw-7/rerun",
        Some(json!({"only": "failed"})),
    )
    .await;
    assert_eq!(s, 201, "{rerun:#}");
    let id = rerun["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "fw-7.r1");
    assert_eq!(rerun["rerun_of"], "fw-7");
    assert_eq!(
        rerun["commit"],
        first_commit.as_str(),
        "the commit the original ran"
    );
    assert_eq!(rerun["branch"], "main");
    assert_eq!(rerun["scenarios"], json!(["scenarios/fail.xml"]));
    assert_eq!(
        task_ids(&rerun),
        ["fail"],
        "only the task that did not pass"
    );

    // Not while it waits or runs (it cannot have finished: its test waits 1 s for a line that
    // never comes).
    let (s, e) = post(&app, &format!("/api/queues/{id}/rerun"), None).await;
    assert_eq!(s, 409, "{e:#}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("once it has finished"),
        "{e:#}"
    );

    // At the original commit the test still fails: the fix on the branch is not what ran.
    let done = app.wait_status(&id, "failed", LIMIT).await;
    assert_eq!(task_ids(&done), ["fail"]);
    assert_eq!(done["resolved_commit"], first_commit.as_str());
    let log = crate::worker::log_text(&app, &id);
    assert!(
        log.contains(&format!("checked out {first_commit}")),
        "{log}"
    );

    // The original links its re-runs; a full re-run runs every scenario again.
    let (_, original) = app.get_json("/api/queues/fw-7").await;
    assert_eq!(original["reruns"], json!(["fw-7.r1"]));
    let (s, all) = post(&app, "/api/queues/fw-7/rerun", None).await;
    assert_eq!(s, 201, "{all:#}");
    assert_eq!(all["id"], "fw-7.r2");
    assert_eq!(
        all["scenarios"],
        json!([]),
        "the original's: every scenario found"
    );
    let all = app.wait_status("fw-7.r2", "failed", LIMIT).await;
    assert_eq!(task_ids(&all), ["fail", "pass"], "{all:#}");
    let (_, original) = app.get_json("/api/queues/fw-7").await;
    assert_eq!(original["reruns"], json!(["fw-7.r1", "fw-7.r2"]));

    // The queue page links both ways.
    let page = app
        .client
        .get(app.url("/queues/fw-7.r1"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Re-run of") && html.contains("href=\"/queues/fw-7\""),
        "{html}"
    );
    let page = app
        .client
        .get(app.url("/queues/fw-7"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    for button in ["id=\"rerun\"", "id=\"rerun-failed\""] {
        let tag = &html[html.find(button).expect(button)..];
        let tag = &tag[..tag.find('>').unwrap()];
        assert!(
            !tag.contains("disabled"),
            "a finished queue with a failed task: {tag}"
        );
    }
    assert!(
        html.contains("href=\"/queues/fw-7.r1\""),
        "the original links its re-runs"
    );

    // Deleting a re-run takes it off the original's list.
    let r = app
        .client
        .delete(app.url("/api/queues/fw-7.r2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, original) = app.get_json("/api/queues/fw-7").await;
    assert_eq!(original["reruns"], json!(["fw-7.r1"]));
    app.stop().await;
}

#[tokio::test]
async fn requests_that_cannot_be_a_rerun_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;
    let body = json!({"id": "ok-1", "repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    assert_eq!(post(&app, "/api/queues", Some(body)).await.0, 201);
    app.wait_status("ok-1", "passed", LIMIT).await;

    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();
    let (s, e) = post(
        &app,
        "/api/queues/ok-1/rerun",
        Some(json!({"only": "failed"})),
    )
    .await;
    assert_eq!((s, code(&e)), (409, "conflict".to_owned()), "{e:#}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("every task of queue ok-1 passed")
    );

    let (s, e) = post(
        &app,
        "/api/queues/ok-1/rerun",
        Some(json!({"only": "flaky"})),
    )
    .await;
    assert_eq!((s, code(&e)), (400, "invalid_body".to_owned()), "{e:#}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"failed\""),
        "{e:#}"
    );

    let (s, e) = post(
        &app,
        "/api/queues/ok-1/rerun",
        Some(json!({"failed": true})),
    )
    .await;
    assert_eq!((s, code(&e)), (400, "invalid_body".to_owned()), "{e:#}");

    let r = app
        .client
        .post(app.url("/api/queues/ok-1/rerun"))
        .header("content-type", "application/json")
        .body("{\"only\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = app
        .client
        .post(app.url("/api/queues/ok-1/rerun"))
        .header("content-type", "text/plain")
        .body("only=failed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415, "a body is JSON or nothing");

    let (s, e) = post(&app, "/api/queues/nope/rerun", None).await;
    assert_eq!((s, code(&e)), (404, "not_found".to_owned()), "{e:#}");
    let (s, _) = post(&app, "/api/queues/..%2Fetc/rerun", None).await;
    assert_eq!(s, 400);

    // A queue that ended before its checkout resolved anything has no commit to re-run.
    let body = json!({"id": "never", "repo": repo.display().to_string(), "branch": "no-such-branch", "environment": "sim"});
    assert_eq!(post(&app, "/api/queues", Some(body)).await.0, 201);
    app.wait_status("never", "error", LIMIT).await;
    let (s, e) = post(&app, "/api/queues/never/rerun", None).await;
    assert_eq!(s, 409, "{e:#}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("enqueue it again"),
        "{e:#}"
    );

    // Nothing of the refused requests was stored.
    let (_, list) = app.get_json("/api/queues").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list:#}");
    app.stop().await;
}
