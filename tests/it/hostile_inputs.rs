//! Inputs written to hurt the server: a scenario nested 50,000 deep, scenario files that are
//! links to `/etc/passwd`, an enqueue of thousands of scenarios. Each is refused with a reason,
//! nothing of a link's target is shown, and the server goes on serving everyone else.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::worker::{SCENARIO_PASS, config, git, make_repo};

const LIMIT: Duration = Duration::from_secs(30);

const RULE: &str = "scenario files must be regular files inside the repository";

async fn enqueue(app: &TestApp, repo: &Path, extra: Value) -> String {
    let mut body =
        json!({"repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// The queue's log as the API serves it.
async fn log_of(app: &TestApp, id: &str) -> String {
    let r = app
        .client
        .get(app.url(&format!("/api/queues/{id}/log")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Every file the server wrote for the queue (logs, reports), its checkout left out; links
/// are not followed.
fn written_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() && entry.file_name() != "repo" {
            written_files(&entry.path(), out);
        } else if kind.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
            out.push((entry.path().display().to_string(), text));
        }
    }
}

/// No line of `/etc/passwd` in the queue's JSON, its log (API) or any file written for it.
async fn assert_nothing_of_passwd(app: &TestApp, id: &str, queue: &Value) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let mut shown = vec![
        ("queue JSON".to_owned(), queue.to_string()),
        ("queue log".to_owned(), log_of(app, id).await),
    ];
    written_files(&app.root.join("queues").join(id), &mut shown);
    assert!(shown.len() > 3, "the queue's log and reports are written");
    for (what, text) in &shown {
        assert!(!text.contains("root:x:0:0"), "{what}: {text}");
        for line in passwd.lines().filter(|l| !l.trim().is_empty()) {
            assert!(!text.contains(line), "{what} shows {line:?}");
        }
    }
}

#[tokio::test]
async fn a_scenario_nested_50000_deep_is_a_task_error_and_the_next_queue_passes() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("<scenario name=\"deep\">\n{}", "<a>".repeat(50_000));
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/deep.xml", deep.as_str()),
            ("scenarios/pass.xml", SCENARIO_PASS),
        ],
    );
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;

    let id = enqueue(&app, &repo, json!({"scenarios": ["scenarios/deep.xml"]})).await;
    // The scenario is refused before any board boots: the task is `error`, and so the queue.
    let q = app.wait_status(&id, "error", LIMIT).await;
    let task = &q["tasks"][0];
    assert_eq!(task["status"], "error", "{q:#}");
    let error = task["error"].as_str().unwrap();
    assert_eq!(
        error,
        "invalid scenario file:\nscenarios/deep.xml:2:94: elements are nested more than 32 deep: a scenario nests four (scenario, suite, test, step)"
    );
    let diagnostic = error.lines().last().unwrap();
    assert!(log_of(&app, &id).await.contains(diagnostic));

    // The server is alive and the next queue runs as usual.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = enqueue(&app, &repo, json!({"scenarios": ["scenarios/pass.xml"]})).await;
    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert_eq!(q["tasks"][0]["status"], "passed", "{q:#}");
    app.stop().await;
}

#[tokio::test]
async fn a_scenario_linked_to_etc_passwd_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    std::os::unix::fs::symlink("/etc/passwd", repo.join("scenarios/passwd.xml")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc/passwd", repo.join("up.xml")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "links"]);
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;

    // Named in the request: absolute and relative links alike.
    for (path, shown) in [
        ("scenarios/passwd.xml", "scenarios/passwd.xml"),
        ("up.xml", "up.xml"),
    ] {
        let id = enqueue(&app, &repo, json!({ "scenarios": [path] })).await;
        let q = app.wait_status(&id, "error", LIMIT).await;
        let task = &q["tasks"][0];
        assert_eq!(task["status"], "error", "{q:#}");
        assert_eq!(
            task["error"],
            format!("invalid scenario file:\n{shown}:1:1: is a symbolic link; {RULE}"),
            "{q:#}"
        );
        assert_nothing_of_passwd(&app, &id, &q).await;
    }

    // Found in scenarios/: the link is refused by name, the regular file runs.
    let id = enqueue(&app, &repo, json!({})).await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    let tasks: Vec<(&str, &str)> = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["scenario"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        [
            ("scenarios/pass.xml", "passed"),
            ("scenarios/passwd.xml", "error")
        ]
    );
    assert_nothing_of_passwd(&app, &id, &q).await;
    app.stop().await;
}

#[tokio::test]
async fn a_scenarios_directory_linked_to_etc_is_a_queue_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("README", "links\n")]);
    std::os::unix::fs::symlink("/etc", repo.join("scenarios")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "link"]);
    let app = spawn_app_with(&config("true", "", "")).await;

    // Discovery refuses the directory without listing what it leads to.
    let id = enqueue(&app, &repo, json!({})).await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    assert_eq!(q["error"], format!("scenarios is a symbolic link; {RULE}"));
    assert!(!log_of(&app, &id).await.contains("found scenarios"));
    assert_nothing_of_passwd(&app, &id, &q).await;

    // Named through it: refused at the link, never opened.
    let id = enqueue(&app, &repo, json!({"scenarios": ["scenarios/passwd"]})).await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    assert_eq!(
        q["tasks"][0]["error"],
        format!(
            "invalid scenario file:\nscenarios/passwd:1:1: scenarios is a symbolic link; {RULE}"
        ),
        "{q:#}"
    );
    assert_nothing_of_passwd(&app, &id, &q).await;
    app.stop().await;
}

#[tokio::test]
async fn an_enqueue_of_4000_scenarios_is_refused_while_another_is_answered() {
    let app = spawn_app().await;
    // Never cloned (the worker is paused); a local path the test configuration allows.
    let repo = std::env::temp_dir().join("fw").display().to_string();
    let many: Vec<String> = (0..4000)
        .map(|i| format!("scenarios/{}-{i}.xml", "s".repeat(60)))
        .collect();
    let hostile = json!({"id": "hostile", "repo": repo, "environment": "esp32", "scenarios": many});
    let normal = json!({"id": "normal", "repo": repo, "environment": "esp32", "scenarios": ["scenarios/a.xml"]});
    let (refused, answered) = tokio::join!(
        app.post_json("/api/queues", &hostile),
        app.post_json("/api/queues", &normal),
    );
    assert_eq!(answered.status(), 201);
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_field", "{body:#}");
    assert_eq!(body["error"]["field"], "scenarios", "{body:#}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("at most 256"), "{message}");
    assert_eq!(app.get_json("/api/queues/hostile").await.0, 404);
    assert_eq!(app.get_json("/api/queues/normal").await.0, 200);

    // The most a queue may name, all cut to one stem: distinct task ids, in order.
    let most: Vec<String> = many[..256].to_vec();
    let r = app
        .post_json(
            "/api/queues",
            &json!({"id": "most", "repo": repo, "environment": "esp32", "scenarios": most}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let q: Value = r.json().await.unwrap();
    let ids: Vec<&str> = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let stem = "s".repeat(56);
    assert_eq!(ids.len(), 256);
    assert_eq!(ids[0], stem);
    assert_eq!(ids[255], format!("{stem}-256"));

    // The other limits: a long path, a priority out of range.
    for (extra, field, says) in [
        (
            json!({"scenarios": [format!("s/{}", "x".repeat(5000))]}),
            "scenarios",
            "at most 1024 bytes",
        ),
        (
            json!({"priority": 1_000_000}),
            "priority",
            "from -1000 to 1000",
        ),
        (json!({"priority": -1001}), "priority", "from -1000 to 1000"),
    ] {
        let mut body = json!({"repo": repo, "environment": "esp32"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post_json("/api/queues", &body).await;
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_field", "{body:#}");
        assert_eq!(body["error"]["field"], field, "{body:#}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(message.len() < 300, "the path is not echoed: {message}");
    }
    app.stop().await;
}
