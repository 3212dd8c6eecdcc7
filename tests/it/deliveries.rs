//! Gitea deliveries on a team's day, with real repositories and runs: a newer push to a branch
//! aborts the older queue of that branch that still runs (no process left), while other
//! branches and queues of the API are left alone; one delivery makes a queue per environment.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::hooks::{PUSH, push_to};
use crate::worker::{SCENARIO_PASS, config, git, make_repo, wait_log_line};

const LIMIT: Duration = Duration::from_secs(30);

/// A process of a build that only this test starts.
const MARKER: &str = "sleep 617";

/// Whether any process's command line is `sh -c "<MARKER>"`'s child.
fn marker_running() -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " ").trim() == MARKER)
}

fn commit(repo: &Path, file: &str, text: &str, message: &str) -> String {
    std::fs::write(repo.join(file), text).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

async fn queue(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/queues/{id}")).await.1
}

#[tokio::test]
async fn a_newer_push_aborts_the_older_queue_of_its_branch_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    // The build runs the repository's build.sh: the first commit's hangs.
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/pass.xml", SCENARIO_PASS),
            ("build.sh", &format!("echo hanging build; exec {MARKER}\n")),
        ],
    );
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let settings = config(
        "sh ./build.sh",
        "[gitea]\nsecret = \"hook-secret\"\nenvironment = \"sim\"\n",
        "",
    );
    let app = spawn_app_with(&settings).await;
    let first_id = push_to(&app, &repo, "main", &first).await;
    app.wait_status(&first_id, "running", LIMIT).await;
    wait_log_line(&app, &first_id, "hanging build").await;
    // The shell starts the marker right after its line: wait for the process to show.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !marker_running() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first build never ran {MARKER}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another branch, and a queue of the API on the same branch: neither is superseded.
    git(&repo, &["checkout", "-q", "-b", "dev"]);
    let dev = commit(&repo, "build.sh", "echo built > built.txt\n", "dev build");
    let dev_id = push_to(&app, &repo, "dev", &dev).await;
    git(&repo, &["checkout", "-q", "main"]);
    let second = commit(
        &repo,
        "build.sh",
        "echo built > built.txt\n",
        "fix the build",
    );
    let api = json!({"id": "by-hand", "repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    assert_eq!(app.post_json("/api/queues", &api).await.status(), 201);

    let second_id = push_to(&app, &repo, "main", &second).await;
    let aborted = app.wait_status(&first_id, "aborted", LIMIT).await;
    assert_eq!(
        aborted["error"],
        format!("superseded by {second_id}"),
        "{aborted:#}"
    );
    assert!(
        !marker_running(),
        "the superseded build's processes are gone"
    );

    for id in [&dev_id, &second_id, &"by-hand".to_owned()] {
        let q = app.wait_status(id, "passed", LIMIT).await;
        assert!(q["error"].is_null(), "{q:#}");
    }
    // A redelivery of the older push folds into its finished queue and cancels nothing.
    let again = push_to(&app, &repo, "main", &first).await;
    assert_eq!(again, first_id);
    assert_eq!(queue(&app, &second_id).await["status"], "passed");
    app.stop().await;
}

#[tokio::test]
async fn one_delivery_makes_a_queue_per_environment() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let board = r#"[environments.sim2]
build = ["sh", "-c", "echo built > built.txt"]
simulate = ["sh", "-c", "echo READY; while read l; do echo pong; done"]
ready = "READY"
build_timeout = "20s"
boot_timeout = "5s"
"#;
    let settings = config(
        "echo built > built.txt",
        &format!(
            "{board}\n[gitea]\nsecret = \"hook-secret\"\nenvironments = [\"sim\", \"sim2\"]\n"
        ),
        "",
    );
    let app = spawn_app_with(&settings).await;
    let mut push: Value = serde_json::from_str(PUSH).unwrap();
    push["repository"]["clone_url"] = json!(repo.display().to_string());
    push["repository"]["full_name"] = json!("team/fw");
    push["after"] = json!(sha);
    let answer = crate::hooks::deliver_answer(&app, "push", &push).await;
    let ids: Vec<&str> = answer["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    let short = &sha[..12];
    assert_eq!(
        ids,
        [
            format!("team-fw-{short}-sim"),
            format!("team-fw-{short}-sim2")
        ]
    );
    for (id, env) in ids.iter().zip(["sim", "sim2"]) {
        let q = app.wait_status(id, "passed", LIMIT).await;
        assert_eq!(q["environment"], env);
        assert_eq!(q["source"], "gitea");
    }
    // A redelivery folds into both.
    let (status, again) = crate::hooks::deliver_status(&app, "push", &push).await;
    assert_eq!(status, 200, "{again:#}");
    assert_eq!(again["duplicate"], true);
    let (_, list) = app.get_json("/api/queues").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    app.stop().await;
}
