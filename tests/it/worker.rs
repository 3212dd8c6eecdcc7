//! The worker end to end with real git repositories, real subprocesses and a scripted board:
//! outcomes, every timeout layer, abort with stubborn grandchildren, mirror cache, slots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testarena::logs::FollowItem;
use testarena::model::QueueId;

use crate::helpers::{TestApp, spawn_app_with};

const LIMIT: Duration = Duration::from_secs(30);

/// A scripted board: boots, prints READY, answers `ping` with `pong`, exits 7 on `die`,
/// goes silent on `hang`.
pub const BOARD: &str = r#"echo "booting board"; echo READY; while read l; do case "$l" in ping) echo pong;; die) echo dying; exit 7;; hang) ;; *) echo "echo: $l";; esac; done"#;

/// For tests that steer a build or a board through files outside the checkout (gates,
/// markers), which the sandbox hides: repository code runs unconfined.
pub const UNCONFINED: &str = "\n[sandbox]\nmode = \"none\"\n";

pub const SCENARIO_PASS: &str = r#"<scenario name="pass">
  <suite name="shell">
    <test name="ping" timeout="5"><send>ping</send><expect>pong</expect></test>
    <test name="host" timeout="10"><run>test -f built.txt &amp;&amp; echo "host ok"</run></test>
  </suite>
</scenario>
"#;

const SCENARIO_FAIL: &str = r#"<scenario name="fail">
  <suite name="shell">
    <test name="ping" timeout="5"><send>ping</send><expect>pong</expect></test>
    <test name="wrong" timeout="5"><send>ping</send><expect timeout="1s">never printed</expect></test>
  </suite>
</scenario>
"#;

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A git repository with `files`, committed on `main`.
pub fn make_repo(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    for (path, text) in files {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    repo
}

/// Config with one environment `sim` built by `build` and booted as the scripted board.
pub fn config(build: &str, extra_env: &str, extra: &str) -> String {
    format!(
        r#"
[worker]
slots = 1
kill_grace = "300ms"
{extra}
[environments.sim]
build = ["sh", "-c", {build}]
simulate = ["sh", "-c", {board}]
ready = "READY"
build_timeout = "20s"
boot_timeout = "5s"
{extra_env}
"#,
        build = toml_str(build),
        board = toml_str(BOARD),
    )
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

async fn enqueue(app: &TestApp, body: Value) -> String {
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

fn request(repo: &Path, extra: Value) -> Value {
    let mut body =
        json!({"repo": repo.display().to_string(), "branch": "main", "environment": "sim"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// Waits until the queue log has a line containing `needle`.
pub async fn wait_log_line(app: &TestApp, id: &str, needle: &str) {
    let mut follower = app
        .state
        .logs
        .subscribe(&QueueId::parse(id).unwrap(), 0)
        .unwrap();
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            match follower.next().await {
                FollowItem::Batch(b) if b.lines().any(|l| l.contains(needle)) => return,
                FollowItem::Failed(e) => panic!("log: {e}"),
                _ => {}
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no log line with {needle:?} in {id}");
}

pub fn log_text(app: &TestApp, id: &str) -> String {
    std::fs::read_to_string(app.root.join("queues").join(id).join("queue.log")).unwrap_or_default()
}

#[tokio::test]
async fn a_queue_runs_checkout_build_boot_and_scenarios_to_passed_or_failed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/pass.xml", SCENARIO_PASS),
            ("scenarios/fail.xml", SCENARIO_FAIL),
        ],
    );
    let app = spawn_app_with(&config("echo compiling; echo built > built.txt", "", "")).await;
    let id = enqueue(
        &app,
        request(&repo, json!({"scenarios": ["scenarios/pass.xml"]})),
    )
    .await;
    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert_eq!(q["tasks"][0]["status"], "passed", "{q:#}");
    let tests = q["tasks"][0]["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2);
    assert!(tests.iter().all(|t| t["status"] == "passed"), "{q:#}");
    assert!(q["started_at"].is_string() && q["finished_at"].is_string());
    let log = log_text(&app, &id);
    for needle in [
        "=== step checkout started",
        "=== step build passed",
        "compiling",
        "booting board",
        "pong",
        "host ok",
        "=== task pass passed",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in log:\n{log}");
    }
    let task_dir = app.root.join("queues").join(&id).join("tasks/pass");
    for f in ["report.html", "junit.xml", "summary.json", "task.log"] {
        assert!(task_dir.join(f).is_file(), "{f}");
    }
    let report =
        std::fs::read_to_string(app.root.join("queues").join(&id).join("report.html")).unwrap();
    assert!(
        report.contains(&format!("<title>{id} · passed")),
        "the queue report shows the final status"
    );

    // No scenarios named: every scenarios/*.xml runs; one failing test fails the queue.
    let id = enqueue(&app, request(&repo, json!({}))).await;
    let q = app.wait_status(&id, "failed", LIMIT).await;
    let tasks: Vec<(&str, &str)> = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(tasks, [("fail", "failed"), ("pass", "passed")]);
    let wrong = &q["tasks"][0]["tests"][1];
    assert_eq!(wrong["status"], "failed");
    assert!(
        wrong["message"].as_str().unwrap().contains("never printed"),
        "{wrong:#}"
    );
    // The second queue of the same repository used the mirror cache.
    assert!(log_text(&app, &id).contains("into the mirror cache"));
    assert!(
        log_text(&app, &id).contains("fetching"),
        "{}",
        log_text(&app, &id)
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_repository_branch_commit_and_build_end_in_error_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with(&config("echo compiling >&2; exit 3", "", "")).await;
    let cases = [
        (
            json!({"repo": dir.path().join("missing").display().to_string(), "environment": "sim"}),
            "git clone failed",
        ),
        (
            request(&repo, json!({"branch": "nope"})),
            "branch \"nope\" not found",
        ),
        (
            request(&repo, json!({"commit": "deadbeef"})),
            "commit \"deadbeef\" not found",
        ),
        (request(&repo, json!({})), "build failed (exit status 3)"),
    ];
    for (body, reason) in cases {
        let id = enqueue(&app, body).await;
        let q = app.wait_status(&id, "error", LIMIT).await;
        let error = q["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{reason:?} not in {error:?}");
    }
    // The build's own output is in the log.
    let page: Value = app.get_json("/api/queues?status=error&limit=1").await.1;
    let last = page["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(log_text(&app, &last).contains("compiling"));
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_scenario_file_is_a_task_error_before_any_board_boots() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "<scenario name=\"b\">\n  <suite name=\"s\">\n    <test name=\"t\"><sned>ping</sned></test>\n  </suite>\n</scenario>\n";
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/a-broken.xml", broken),
            ("scenarios/pass.xml", SCENARIO_PASS),
        ],
    );
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    // The other task still runs; the queue ends `error`, naming the task that could not.
    let q = app.wait_status(&id, "error", LIMIT).await;
    assert_eq!(
        q["error"], "could not run every task: a-broken ended error",
        "{q:#}"
    );
    let broken_task = &q["tasks"][0];
    assert_eq!(broken_task["status"], "error", "{q:#}");
    let error = broken_task["error"].as_str().unwrap();
    assert!(error.contains("scenarios/a-broken.xml:3:"), "{error}");
    assert_eq!(q["tasks"][1]["status"], "passed");
    // The file was rejected before its board booted: exactly one boot, for pass.xml.
    assert_eq!(log_text(&app, &id).matches("booting board").count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn boot_timeout_and_board_exit_are_reported_per_task() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with(
        r#"
[worker]
slots = 1
kill_grace = "300ms"
[environments.mute]
build = ["true"]
simulate = ["sh", "-c", "echo booting; exec sleep 600"]
ready = "READY"
build_timeout = "10s"
boot_timeout = "1s"
[environments.dead]
build = ["true"]
simulate = ["sh", "-c", "echo booting; exit 4"]
ready = "READY"
build_timeout = "10s"
boot_timeout = "5s"
"#,
    )
    .await;
    let id = enqueue(
        &app,
        json!({"repo": repo.display().to_string(), "environment": "mute"}),
    )
    .await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    assert_eq!(q["tasks"][0]["status"], "error");
    assert!(
        q["tasks"][0]["error"]
            .as_str()
            .unwrap()
            .contains("boot timed out"),
        "{q:#}"
    );
    let id = enqueue(
        &app,
        json!({"repo": repo.display().to_string(), "environment": "dead"}),
    )
    .await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    assert!(
        q["tasks"][0]["error"]
            .as_str()
            .unwrap()
            .contains("exit status 4"),
        "{q:#}"
    );
    app.stop().await;
}

/// Pids of live (non-zombie) processes whose command line contains `token`.
pub fn processes_with(token: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(token) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test]
async fn abort_kills_grandchildren_that_ignore_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let token = format!("stubborn-{}", std::process::id());
    let build = format!(
        "sh -c 'trap \"\" TERM; sleep 600; true' {token} & trap '' TERM; echo build-running; wait"
    );
    let app = spawn_app_with(&config(&build, "", "")).await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    wait_log_line(&app, &id, "build-running").await;
    assert!(!processes_with(&token).is_empty(), "the grandchild runs");
    let took = app.abort(&id).await;
    // Without SIGKILL after the grace (300 ms) the grandchild would hold the abort for its
    // 600 s; the bound leaves room for a loaded machine (the suite runs QEMU and Slurm
    // alongside), and the processes are checked gone below.
    assert!(took < Duration::from_secs(10), "{:?}", took);
    assert!(
        processes_with(&token).is_empty(),
        "a process of the queue survived the abort"
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_running_queue_aborts_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with(&config("echo build-running; exec sleep 600", "", "")).await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    wait_log_line(&app, &id, "build-running").await;
    let r = app
        .client
        .delete(app.url(&format!("/api/queues/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.get_json(&format!("/api/queues/{id}")).await.0, 404);
    assert!(!app.root.join("queues").join(&id).exists());
    app.stop().await;
}

#[tokio::test]
async fn every_timeout_layer_ends_with_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let hang = r#"<scenario name="hang" timeout="2s">
  <suite name="s">
    <test name="slow-host" timeout="1s"><run>sleep 30</run></test>
    <test name="after" timeout="5"><send>ping</send><expect>pong</expect></test>
    <test name="forever" timeout="60"><send>hang</send><expect timeout="60s">never</expect></test>
  </suite>
</scenario>
"#;
    let repo = make_repo(dir.path(), &[("scenarios/hang.xml", hang)]);

    // Test timeout (the board stays up, the next test runs), then the scenario timeout.
    let app = spawn_app_with(&config("true", "", "")).await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    let q = app.wait_status(&id, "failed", LIMIT).await;
    let t = &q["tasks"][0];
    assert_eq!(t["status"], "timed_out", "{q:#}");
    let statuses: Vec<&str> = t["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["timed_out", "passed", "timed_out"]);
    app.stop().await;

    // Build timeout.
    let app = spawn_app_with(&config("sleep 30", "", "").replace("\"20s\"", "\"1s\"")).await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    assert!(
        q["error"].as_str().unwrap().contains("build timed out"),
        "{q:#}"
    );
    app.stop().await;

    // Silence watchdog.
    let app = spawn_app_with(&config(
        "echo one; sleep 30",
        "",
        "silence_timeout = \"1s\"",
    ))
    .await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    assert!(
        q["error"].as_str().unwrap().contains("printed nothing"),
        "{q:#}"
    );
    app.stop().await;

    // Queue timeout.
    let app = spawn_app_with(&config("sleep 30", "", "queue_timeout = \"1s\"")).await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    let q = app.wait_status(&id, "timed_out", LIMIT).await;
    assert!(
        q["error"].as_str().unwrap().contains("queue_timeout"),
        "{q:#}"
    );
    app.stop().await;

    // Queue timeout in the middle of a scenario: the running task times out too.
    let forever = r#"<scenario name="forever"><suite name="s"><test name="t" timeout="60"><send>hang</send><expect timeout="60s">never</expect></test></suite></scenario>"#;
    let dir2 = tempfile::tempdir().unwrap();
    let repo2 = make_repo(dir2.path(), &[("scenarios/forever.xml", forever)]);
    let app = spawn_app_with(&config("true", "", "queue_timeout = \"2s\"")).await;
    let id = enqueue(&app, request(&repo2, json!({}))).await;
    let q = app.wait_status(&id, "timed_out", LIMIT).await;
    assert_eq!(q["tasks"][0]["status"], "timed_out", "{q:#}");
    let task_dir = app.root.join("queues").join(&id).join("tasks/forever");
    assert!(task_dir.join("junit.xml").is_file());
    app.stop().await;
}

#[tokio::test]
async fn slots_and_max_parallel_hold_and_waiting_queues_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let gate = dir.path().join("go");
    let build = format!(
        "echo build-running; while [ ! -e {} ]; do sleep 0.05; done; echo built > built.txt",
        gate.display()
    );
    let app = spawn_app_with(&(format!(
        "{}\n[environments.solo]\nbuild = [\"sh\", \"-c\", {}]\nsimulate = [\"sh\", \"-c\", {}]\nready = \"READY\"\nbuild_timeout = \"20s\"\nboot_timeout = \"5s\"\nmax_parallel = 1\n",
        config(&build, "", "").replace("slots = 1", "slots = 2"),
        toml_str(&build),
        toml_str(BOARD)
    ) + UNCONFINED))
    .await;
    let solo = |_: ()| json!({"repo": repo.display().to_string(), "environment": "solo"});
    let a = enqueue(&app, solo(())).await;
    wait_log_line(&app, &a, "build-running").await;
    let b = enqueue(&app, solo(())).await;
    let q = app.get_json(&format!("/api/queues/{b}")).await.1;
    assert_eq!(q["status"], "waiting");
    assert_eq!(q["waiting_reason"], "environment solo busy (1/1)");
    // The second slot takes a queue of another environment meanwhile.
    let c = enqueue(&app, request(&repo, json!({}))).await;
    wait_log_line(&app, &c, "build-running").await;
    let d = enqueue(&app, request(&repo, json!({}))).await;
    let q = app.get_json(&format!("/api/queues/{d}")).await.1;
    assert_eq!(q["waiting_reason"], "waiting for a free slot (2/2 busy)");
    std::fs::write(&gate, "").unwrap();
    for id in [&a, &b, &c, &d] {
        app.wait_status(id, "passed", LIMIT).await;
    }
    app.stop().await;
}

/// A paused server (`slots = 0`) whose configuration is reloaded with a slot runs the queue
/// that waits, without a new enqueue or any other change to wake it.
#[tokio::test]
async fn more_slots_from_a_reload_start_waiting_queues() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let toml = config("echo built > built.txt", "", "").replace("slots = 1", "slots = 0");
    let app = spawn_app_with(&toml).await;
    let id = enqueue(&app, request(&repo, json!({}))).await;
    let q = app.get_json(&format!("/api/queues/{id}")).await.1;
    assert_eq!(q["status"], "waiting");
    assert_eq!(q["waiting_reason"], "worker paused ([worker] slots = 0)");
    let mut reloaded = (*app.state.config()).clone();
    reloaded.worker.slots = 1;
    app.state.live.set(reloaded);
    app.wait_status(&id, "passed", LIMIT).await;
    app.stop().await;
}
