//! Queues whose environment runs on Slurm (`executor = "slurm"`), on the real single-node
//! cluster of `slurm_cluster`: the lab firmware in QEMU passes and fails exactly as it does
//! locally, an abort leaves no job and no board behind within the grace and 2 s (a board that
//! ignores `SIGTERM` too), a pending allocation is a reason to wait and not a timeout, a job a
//! dead server left is cancelled before the queue runs again, and parallel boards run as
//! concurrent steps.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::slurm_cluster::{Cluster, PARTITION};
use crate::worker::{BOARD, make_repo, processes_with, wait_log_line};

const LIMIT: Duration = Duration::from_secs(120);
const GRACE: Duration = Duration::from_secs(1);

const PING: &str = r#"<scenario name="ping"><suite name="s">
  <test name="ping" timeout="10"><send>ping</send><expect>pong</expect></test>
</suite></scenario>
"#;

/// An allocation named `name` held on the test cluster (`extra`: what it asks for), as another
/// user's job or a dead server's would be.
fn hold(cluster: &Cluster, name: &str, extra: &[&str]) {
    let out = cluster
        .command("salloc")
        .args(["--no-shell", "--partition", PARTITION, "--time=5"])
        .arg(format!("--job-name={name}"))
        .args(extra)
        .output()
        .expect("salloc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `[environments.NAME]` on the test cluster, with `rest` (build, simulate, ready, ...).
fn slurm_env(cluster: &Cluster, name: &str, rest: &str) -> String {
    format!(
        "\n[environments.{name}]\nexecutor = \"slurm\"\npartition = \"{PARTITION}\"\nslurm_conf = {conf}\n{rest}\n",
        conf = serde_json::to_string(&cluster.conf().display().to_string()).unwrap()
    )
}

fn worker(slots: usize) -> String {
    format!(
        "[worker]\nslots = {slots}\nkill_grace = \"{}s\"\n",
        GRACE.as_secs()
    )
}

/// A scripted board on Slurm, tagged `tag` on its command line.
fn scripted(board: &str, tag: &str, extra: &str) -> String {
    format!(
        "build = [\"true\"]\nsimulate = [\"sh\", \"-c\", {board}, \"{tag}\"]\nready = \"READY\"\n\
         build_timeout = \"30s\"\nboot_timeout = \"20s\"\n{extra}",
        board = serde_json::to_string(board).unwrap()
    )
}

async fn enqueue(app: &TestApp, body: Value) -> String {
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The jobs squeue lists under `name`.
fn jobs_named(cluster: &Cluster, name: &str) -> String {
    let out = cluster
        .command("squeue")
        .args(["-h", "-o", "%i %j %T", "--name", name])
        .output()
        .expect("squeue");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A task's name and its tests' (suite, test, status).
type TaskResults = (String, Vec<(String, String, String)>);

/// Every task's results, in task order.
fn results(q: &Value) -> Vec<TaskResults> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let tests = t["tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (s(&x["suite"]), s(&x["name"]), s(&x["status"])))
                .collect();
            (s(&t["id"]), tests)
        })
        .collect()
}

#[tokio::test]
async fn the_lab_firmware_passes_and_fails_on_slurm_exactly_as_it_does_here() {
    crate::e2e_qemu::require_tools();
    let cluster = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::e2e_qemu::demo_repo(dir.path());
    let lab = "build = [\"make\"]\nsimulate = [\"qemu-system-xtensa\", \"-M\", \"sim\", \"-cpu\", \"lx106\", \"-nodefaults\", \"-display\", \"none\", \"-semihosting\", \"-kernel\", \"build/fw.elf\"]\nready = \"testarena-fw: READY\"\nbuild_timeout = \"5m\"\nboot_timeout = \"20s\"\nboards = 2\n";
    let toml = format!("{}{}", worker(2), slurm_env(cluster, "lab-slurm", lab));
    let app = spawn_app_with(&toml).await;
    let body = |env: &str| {
        json!({
            "repo": repo.display().to_string(),
            "branch": "main",
            "environment": env,
            "scenarios": ["scenarios/pass.xml", "scenarios/fail.xml"],
        })
    };
    let local = enqueue(&app, body("xtensa-sim")).await;
    let remote = enqueue(&app, body("lab-slurm")).await;
    let local = app.wait_status(&local, "failed", LIMIT).await;
    let remote = app.wait_status(&remote, "failed", LIMIT).await;
    assert_eq!(results(&remote), results(&local), "{remote:#}");
    assert!(
        results(&remote)
            .iter()
            .flat_map(|(_, t)| t)
            .any(|(_, _, s)| s == "passed"),
        "{remote:#}"
    );
    let id = remote["id"].as_str().unwrap();
    let log = crate::worker::log_text(&app, id);
    assert!(
        log.contains("=== step allocate passed (Slurm job "),
        "{log}"
    );
    assert!(log.contains("given back"), "{log}");
    // Each task's own log says where its board ran.
    let pass =
        std::fs::read_to_string(app.root.join(format!("queues/{id}/tasks/pass/task.log"))).unwrap();
    assert!(
        pass.contains(&format!(
            "the board runs as step testarena/{id}/pass of Slurm job "
        )),
        "{pass}"
    );
    assert!(
        !log.contains("srun:"),
        "srun's own lines stay out of the console: {log}"
    );
    assert_eq!(jobs_named(cluster, &format!("testarena/{id}")), "");
    app.stop().await;
}

#[tokio::test]
async fn abort_on_slurm_leaves_no_job_and_no_board_even_one_that_ignores_term() {
    let cluster = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let hang = r#"<scenario name="hang"><suite name="s">
  <test name="hang" timeout="100"><send>hang</send><expect timeout="90s">never printed</expect></test>
</suite></scenario>
"#;
    let repo = make_repo(dir.path(), &[("scenarios/hang.xml", hang)]);
    // The board ignores SIGTERM and the end of its input: only SIGKILL after the grace ends it.
    let stubborn = "trap '' TERM; echo booting; echo READY; \
        while :; do if read l; then [ \"$l\" = ping ] && echo pong; else sleep 0.05; fi; done";
    let tag = "slurm-stubborn-board";
    // Unconfined: bubblewrap would end with the first SIGTERM and take the board with it,
    // which would hide whether the grace is given.
    let toml = format!(
        "{}{}{}",
        worker(1),
        slurm_env(cluster, "farm", &scripted(stubborn, tag, "")),
        crate::worker::UNCONFINED
    );
    let app = spawn_app_with(&toml).await;
    let id = enqueue(
        &app,
        json!({"repo": repo.display().to_string(), "environment": "farm"}),
    )
    .await;
    wait_log_line(&app, &id, "=== step boot:hang passed").await;
    assert!(!processes_with(tag).is_empty(), "the board runs");
    assert!(jobs_named(cluster, &format!("testarena/{id}")).contains("RUNNING"));

    let started = Instant::now();
    app.abort(&id).await;
    let q = app.wait_status(&id, "aborted", LIMIT).await;
    let took = started.elapsed();
    let left = processes_with(tag);
    assert!(left.is_empty(), "board processes left: {left:?}");
    assert_eq!(jobs_named(cluster, &format!("testarena/{id}")), "");
    assert!(
        took >= GRACE,
        "the board was given its grace before SIGKILL, yet the abort took {took:?}"
    );
    assert!(
        took <= GRACE + Duration::from_secs(2),
        "the abort took {took:?}, more than the grace and 2 s"
    );
    assert_eq!(q["tasks"][0]["status"], "aborted", "{q:#}");
    eprintln!("slurm: abort with a board ignoring TERM took {took:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_pending_allocation_waits_with_its_reason_and_no_timeout_runs() {
    let cluster = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/ping.xml", PING)]);
    // Short build and boot timeouts: waiting longer than both must not end the queue.
    let toml = format!(
        "{}{}",
        worker(1),
        slurm_env(
            cluster,
            "farm",
            &scripted(BOARD, "slurm-pending-board", "")
                .replace("build_timeout = \"30s\"", "build_timeout = \"1s\"")
                .replace("boot_timeout = \"20s\"", "boot_timeout = \"2s\""),
        )
    );
    let app = spawn_app_with(&toml).await;
    // Another job holds every CPU of the node.
    let holder = format!("testarena-it-holder-{}", std::process::id());
    hold(
        cluster,
        &holder,
        &[&format!("--cpus-per-task={}", cluster.cpus)],
    );
    let release_holder = || {
        let _ = cluster
            .command("scancel")
            .arg(format!("--name={holder}"))
            .status();
    };

    let id = enqueue(
        &app,
        json!({"repo": repo.display().to_string(), "environment": "farm"}),
    )
    .await;
    wait_log_line(&app, &id, "waiting for a board: job ").await;
    let (_, q) = app.get_json(&format!("/api/queues/{id}")).await;
    let reason = q["waiting_reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.starts_with("waiting for a board: job ") && reason.contains(" pending ("),
        "{q:#}"
    );
    assert_eq!(q["status"], "running");
    // Longer than the build and boot timeouts together: still waiting, nothing timed out.
    let ended = tokio::time::timeout(
        Duration::from_secs(4),
        app.wait_status(&id, "passed", LIMIT),
    )
    .await;
    release_holder();
    assert!(ended.is_err(), "the queue ended while its job was pending");
    let (_, q) = app.get_json(&format!("/api/queues/{id}")).await;
    assert_eq!(q["status"], "running", "{q:#}");

    // Once Slurm grants the job, the queue runs and passes; the reason is gone.
    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert!(q.get("waiting_reason").is_none(), "{q:#}");
    app.stop().await;
}

#[tokio::test]
async fn a_job_a_dead_server_left_is_cancelled_before_the_queue_runs_again() {
    let cluster = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/ping.xml", PING)]);
    let id = format!("left-{}", std::process::id());
    let name = format!("testarena/{id}");
    // What a server killed mid-run leaves: its queue's allocation, still held.
    hold(cluster, &name, &[]);
    let old = jobs_named(cluster, &name);
    assert!(old.contains("RUNNING"), "{old}");
    let old_job = old.split_whitespace().next().unwrap().to_owned();

    let toml = format!(
        "{}{}",
        worker(1),
        slurm_env(cluster, "farm", &scripted(BOARD, "slurm-left-board", ""))
    );
    let app = spawn_app_with(&toml).await;
    enqueue(
        &app,
        json!({"id": id, "repo": repo.display().to_string(), "environment": "farm"}),
    )
    .await;
    let q = app.wait_status(&id, "passed", LIMIT).await;
    let log = crate::worker::log_text(&app, &id);
    assert!(
        log.contains(&format!(
            "cancelled Slurm job {old_job} left by an earlier run of this queue"
        )),
        "{log}"
    );
    assert_eq!(jobs_named(cluster, &name), "", "{q:#}");
    app.stop().await;
}

#[tokio::test]
async fn parallel_boards_run_as_concurrent_steps_of_one_allocation() {
    let cluster = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    // Each test waits until both tasks reached it: it passes only if both boards run at once.
    let barrier = |name: &str| {
        format!(
            r#"<scenario name="{name}"><suite name="s">
  <test name="together" timeout="30"><run>touch arrived-{name}; until [ "$(ls arrived-* | wc -l)" -ge 2 ]; do sleep 0.05; done</run></test>
  <test name="ping" timeout="10"><send>ping</send><expect>pong</expect></test>
</suite></scenario>
"#
        )
    };
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/a.xml", &barrier("a")),
            ("scenarios/b.xml", &barrier("b")),
        ],
    );
    let toml = format!(
        "{}{}",
        worker(1),
        slurm_env(
            cluster,
            "farm",
            &scripted(BOARD, "slurm-parallel-board", "boards = 2\n")
        )
    );
    let app = spawn_app_with(&toml).await;
    let id = enqueue(
        &app,
        json!({"repo": repo.display().to_string(), "environment": "farm"}),
    )
    .await;
    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert_eq!(q["tasks"].as_array().unwrap().len(), 2, "{q:#}");
    let log = crate::worker::log_text(&app, &id);
    let allocations = log.matches("=== step allocate passed").count();
    assert_eq!(allocations, 1, "one allocation for the queue: {log}");
    app.stop().await;
}

#[tokio::test]
async fn after_kill_9_of_the_server_the_old_job_is_cancelled_and_the_queue_runs_again() {
    use crate::cli::{Binary, start_with};
    use std::process::Stdio;

    let cluster = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    // The board answers `gate` once the gate file exists: the first run waits there.
    let board = format!(
        "echo booting; echo READY; while read l; do case \"$l\" in gate) while [ ! -e '{}' ]; do sleep 0.05; done; echo opened;; esac; done",
        gate.display()
    );
    let scenario = r#"<scenario name="gated"><suite name="s">
  <test name="gate" timeout="60"><send>gate</send><expect>opened</expect></test>
</suite></scenario>
"#;
    let repo = make_repo(dir.path(), &[("scenarios/gated.xml", scenario)]);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}{}",
            worker(1),
            slurm_env(
                cluster,
                "farm",
                &scripted(&board, "slurm-killed-server", "")
            ),
            crate::worker::UNCONFINED
        ),
    )
    .unwrap();
    let root = dir.path().join("root");
    let client = testarena::http_client().build().unwrap();
    let id = format!("killed-{}", std::process::id());
    let name = format!("testarena/{id}");

    let mut server: Binary = start_with(&root, Some(&config), &[], Stdio::null());
    let r = client
        .post(format!("http://{}/api/queues", server.addr))
        .json(&json!({"id": id, "repo": repo.display().to_string(), "environment": "farm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Until the board is up on Slurm: the log stream says so.
    let mut stream = client
        .get(format!("http://{}/api/queues/{id}/log/stream", server.addr))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    tokio::time::timeout(LIMIT, async {
        while !seen.contains("=== step boot:gated passed") {
            let chunk = stream
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the board boots on Slurm");
    drop(stream);
    let old = jobs_named(cluster, &name);
    assert!(old.contains("RUNNING"), "{old}");
    let old_job = old.split_whitespace().next().unwrap().to_owned();

    // kill -9: nothing of the server runs its stop; the job stays in Slurm.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(jobs_named(cluster, &name).contains(&old_job));
    std::fs::write(&gate, "open").unwrap();

    let server = start_with(&root, Some(&config), &[], Stdio::null());
    let q = crate::cli::wait_status(&client, &server, &id, "passed").await;
    assert_eq!(q["attempt"], 2, "{q:#}");
    let log = std::fs::read_to_string(root.join(format!("queues/{id}/queue.log"))).unwrap();
    assert!(
        log.contains(&format!(
            "cancelled Slurm job {old_job} left by an earlier run of this queue"
        )),
        "{log}"
    );
    let now = jobs_named(cluster, &name);
    assert!(!now.contains(&old_job), "the old job is gone: {now}");
    drop(server);
}
