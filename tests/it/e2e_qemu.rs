//! End to end on the real thing: the demo firmware repository (`fixtures/demo-repo.sh`) checked
//! out with git, built with `make` and Debian's Xtensa cross compiler, booted in
//! `qemu-system-xtensa` and driven by the `xtensa-sim` environment of the built-in defaults.
//! Outcomes of every kind, the second branch, abort with QEMU and a host command running, the
//! live log stream and the reports on disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::worker::wait_log_line;

const CONFIG: &str = "[worker]\nslots = 1\nkill_grace = \"1s\"\n";
const LIMIT: Duration = Duration::from_secs(90);
const BANNER: &str = "TestArena demo firmware v1";

/// The programs these tests run, with the Debian package that provides each.
const TOOLS: [(&str, &str); 4] = [
    ("qemu-system-xtensa", "qemu-system-misc"),
    ("xtensa-lx106-elf-gcc", "gcc-xtensa-lx106"),
    ("make", "make"),
    ("git", "git"),
];

/// Fails (never skips) when a program is missing, naming the package to install.
pub(crate) fn require_tools() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(bin, _)| !std::env::split_paths(&path).any(|d| d.join(bin).is_file()))
        .map(|(bin, package)| format!("{bin} (Debian package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the end-to-end tests need {}; scripts/test installs them, or run \
         `apt-get install qemu-system-misc gcc-xtensa-lx106 binutils-xtensa-lx106 make git`",
        missing.join(", ")
    );
}

/// Builds the demo firmware repository in `dir` and returns its path.
pub(crate) fn demo_repo(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo-repo.sh");
    let out = Command::new(script)
        .arg(dir.join("demo"))
        .output()
        .expect("fixtures/demo-repo.sh runs");
    assert!(
        out.status.success(),
        "demo-repo.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

async fn enqueue(app: &TestApp, repo: &Path, branch: &str, scenarios: &[&str]) -> String {
    let body = json!({
        "repo": repo.display().to_string(),
        "branch": branch,
        "environment": "xtensa-sim",
        "scenarios": scenarios,
    });
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// `(suite, name, status)` of every test in a `tests` array (the API's or `summary.json`'s).
fn triples(tests: &Value) -> Vec<(String, String, String)> {
    let s = |t: &Value, k: &str| t[k].as_str().unwrap_or_default().to_owned();
    let tests = tests.as_array().expect("a tests array");
    tests
        .iter()
        .map(|t| (s(t, "suite"), s(t, "name"), s(t, "status")))
        .collect()
}

fn api_tests(task: &Value) -> Vec<(String, String, String)> {
    triples(&task["tests"])
}

fn expect_tests(task: &Value, expected: &[(&str, &str, &str)]) {
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(api_tests(task), expected, "task {}:\n{task:#}", task["id"]);
}

fn test_named<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no test {name} in {task:#}"))
}

/// One server-sent event.
#[derive(Debug, Default)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: Vec<String>,
}

/// Reads an SSE stream until its `end` event (or until it closes) and returns every event.
async fn read_sse(client: &reqwest::Client, url: &str) -> Vec<SseEvent> {
    let mut response = client.get(url).send().await.expect("stream request");
    assert_eq!(response.status(), 200);
    let mut events = Vec::new();
    let mut buf = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.expect("stream chunk") {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(at) = buf.find("\n\n") {
                let block: String = buf.drain(..at + 2).collect();
                let mut ev = SseEvent::default();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => ev.event = value.to_owned(),
                        "id" => ev.id = Some(value.to_owned()),
                        "data" => ev.data.push(value.to_owned()),
                        _ => {} // comments (keep-alives)
                    }
                }
                if ev.event.is_empty() && ev.data.is_empty() {
                    continue;
                }
                let end = ev.event == "end";
                events.push(ev);
                if end {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("the log stream ended in time");
    events
}

/// Checks the live log stream against `queue.log`: every line, in order, the final offset, and
/// an `end` event with the queue's status.
fn check_stream(app: &TestApp, id: &str, events: &[SseEvent], status: &str) {
    let end = events.last().expect("at least one event");
    assert_eq!(end.event, "end", "the stream ends with `end`: {events:?}");
    let outcome: Value = serde_json::from_str(&end.data.join("\n")).unwrap();
    assert_eq!(outcome["status"], status);
    let logs: Vec<&SseEvent> = events.iter().filter(|e| e.event == "log").collect();
    assert!(!logs.is_empty());
    let streamed: Vec<&str> = logs
        .iter()
        .flat_map(|e| e.data.iter().map(String::as_str))
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        streamed.iter().any(|l| l.contains(BANNER)),
        "no boot banner in the stream: {streamed:#?}"
    );
    let file = std::fs::read_to_string(app.root.join("queues").join(id).join("queue.log")).unwrap();
    let written: Vec<&str> = file.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        streamed, written,
        "the stream carries queue.log, line by line"
    );
    let last_id = logs.last().unwrap().id.as_deref().unwrap();
    assert_eq!(last_id, file.len().to_string(), "last event id = log size");
}

/// Test counts of a JUnit file: `(tests, failures, errors, skipped)` from the root's attributes
/// (`skipped` from the suites'),
/// and `(classname.name, outcome)` of every case, parsed with an XML reader.
fn read_junit(path: &Path) -> ([u64; 4], [u64; 4], Vec<(String, String)>) {
    use quick_xml::events::{BytesStart, Event};
    let xml = std::fs::read_to_string(path).unwrap();
    let attr = |e: &BytesStart<'_>, name: &str| -> String {
        let a = e.try_get_attribute(name).unwrap();
        let a = a.unwrap_or_else(|| panic!("{}: no {name}", path.display()));
        a.value.into_owned()
    };
    let mut declared = [0; 4];
    let mut counted = [0; 4];
    let mut cases = Vec::new();
    let mut reader = quick_xml::Reader::from_str(&xml);
    loop {
        let e = match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        match e.name().as_ref() {
            "testsuites" => {
                for (i, key) in ["tests", "failures", "errors"].iter().enumerate() {
                    declared[i] = attr(&e, key).parse().unwrap();
                }
            }
            // junit-10.xsd has `skipped` on each suite only.
            "testsuite" => declared[3] += attr(&e, "skipped").parse::<u64>().unwrap(),
            "testcase" => {
                counted[0] += 1;
                let name = format!("{}.{}", attr(&e, "classname"), attr(&e, "name"));
                // Passed unless an outcome follows (a passed case may still carry its output).
                cases.push((name, "passed".to_owned()));
            }
            outcome @ ("failure" | "error" | "skipped") => {
                let i = match outcome {
                    "failure" => 1,
                    "error" => 2,
                    _ => 3,
                };
                counted[i] += 1;
                let case = cases.last_mut().expect("an outcome inside a testcase");
                case.1 = outcome.to_owned();
            }
            _ => {}
        }
    }
    (declared, counted, cases)
}

/// `report.html`, `junit.xml` and `summary.json` of every task exist and agree with the API.
fn check_reports(app: &TestApp, queue: &Value) {
    let id = queue["id"].as_str().unwrap();
    let queue_dir = app.root.join("queues").join(id);
    assert!(queue_dir.join("report.html").is_file(), "queue report");
    for task in queue["tasks"].as_array().unwrap() {
        let task_id = task["id"].as_str().unwrap();
        let dir = queue_dir.join("tasks").join(task_id);
        let tests = api_tests(task);
        let count = |s: &[&str]| tests.iter().filter(|t| s.contains(&t.2.as_str())).count() as u64;
        let expected = [
            tests.len() as u64,
            count(&["failed"]),
            count(&["error", "timed_out"]),
            count(&["skipped"]),
        ];

        let (declared, counted, cases) = read_junit(&dir.join("junit.xml"));
        assert_eq!(declared, expected, "{task_id}: junit.xml totals");
        assert_eq!(counted, expected, "{task_id}: junit.xml cases");
        let junit_outcome = |status: &str| {
            match status {
                "failed" => "failure",
                "error" | "timed_out" => "error",
                other => other,
            }
            .to_owned()
        };
        let api_cases: Vec<(String, String)> = tests
            .iter()
            .map(|(suite, name, status)| {
                let case = format!("{task_id}.{suite}.{name}");
                (case, junit_outcome(status))
            })
            .collect();
        assert_eq!(cases, api_cases, "{task_id}: junit.xml test cases");

        let summary: Value =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
        assert_eq!(
            summary["status"], task["status"],
            "{task_id}: summary status"
        );
        let c = &summary["counts"];
        for status in ["passed", "failed", "timed_out", "error", "skipped"] {
            let n = count(&[status]);
            assert_eq!(c[status], n, "{task_id}: summary counts.{status}");
        }
        assert_eq!(c["total"], tests.len() as u64, "{task_id}: summary total");
        let summary_tests = triples(&summary["tests"]);
        assert_eq!(summary_tests, tests, "{task_id}: summary tests");
        for t in summary["tests"].as_array().unwrap() {
            if t["status"] != "skipped" {
                let log = t["log"].as_str().expect("a test that ran has a log page");
                assert!(dir.join(log).is_file(), "{task_id}: {log}");
            }
        }

        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        for (_, name, _) in &tests {
            assert!(
                html.contains(name.as_str()),
                "{task_id}: report.html lacks {name}"
            );
        }
    }
}

#[tokio::test]
async fn four_scenarios_on_the_firmware_pass_fail_time_out_and_crash() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path());
    let app = spawn_app_with(CONFIG).await;
    let scenarios = [
        "scenarios/pass.xml",
        "scenarios/fail.xml",
        "scenarios/timeout.xml",
        "scenarios/crash.xml",
    ];
    let id = enqueue(&app, &repo, "main", &scenarios).await;
    // Follow the live log from the start while the queue runs.
    let stream = tokio::spawn({
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/api/queues/{id}/log/stream?from=0")),
        );
        async move { read_sse(&client, &url).await }
    });
    let q = app.wait_status(&id, "failed", LIMIT).await;

    let tasks: Vec<(&str, &str)> = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tasks,
        [
            ("pass", "passed"),
            ("fail", "failed"),
            ("timeout", "failed"),
            ("crash", "failed")
        ],
        "{q:#}"
    );
    let t = &q["tasks"];
    expect_tests(
        &t[0],
        &[
            ("shell", "ping", "passed"),
            ("shell", "add", "passed"),
            ("shell", "add-negative", "passed"),
            ("shell", "echo", "passed"),
            ("host", "check-image", "passed"),
        ],
    );
    expect_tests(
        &t[1],
        &[
            ("selftest", "ping", "passed"),
            ("selftest", "sensor", "failed"),
        ],
    );
    let sensor = test_named(&t[1], "sensor")["message"].as_str().unwrap();
    assert!(sensor.contains("TEST sensor PASS"), "{sensor}");
    expect_tests(
        &t[2],
        &[("shell", "echo", "passed"), ("shell", "hang", "timed_out")],
    );
    expect_tests(
        &t[3],
        &[
            ("shell", "echo", "passed"),
            ("shell", "crash", "failed"),
            ("shell", "after-crash", "skipped"),
        ],
    );
    let crash = test_named(&t[3], "crash")["message"].as_str().unwrap();
    assert!(
        crash.contains("board exited") && crash.contains("99"),
        "the crash test names the board's exit status 99: {crash:?}"
    );
    let after = test_named(&t[3], "after-crash")["message"]
        .as_str()
        .unwrap();
    assert!(after.contains("board exited earlier"), "{after:?}");

    let log = std::fs::read_to_string(app.root.join("queues").join(&id).join("queue.log")).unwrap();
    for needle in [
        BANNER,
        "testarena-fw: READY",
        "FATAL: illegal instruction",
        "SELFTEST DONE 1 FAILED",
    ] {
        assert!(log.contains(needle), "no {needle:?} in the log:\n{log}");
    }

    let events = stream.await.unwrap();
    check_stream(&app, &id, &events, "failed");
    check_reports(&app, &q);
    app.stop().await;
}

#[tokio::test]
async fn the_feature_branch_runs_its_own_scenario_and_passes() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path());
    let app = spawn_app_with(CONFIG).await;
    let id = enqueue(&app, &repo, "feature/extra", &["scenarios/extra.xml"]).await;
    let q = app.wait_status(&id, "passed", LIMIT).await;
    assert_eq!(q["tasks"][0]["status"], "passed", "{q:#}");
    expect_tests(&q["tasks"][0], &[("feature", "echo-branch", "passed")]);
    let out = Command::new("git")
        .args(["rev-parse", "refs/heads/feature/extra"])
        .current_dir(&repo)
        .output()
        .unwrap();
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let log = std::fs::read_to_string(app.root.join("queues").join(&id).join("queue.log")).unwrap();
    assert!(log.contains(&format!("checked out {commit}")), "{log}");
    check_reports(&app, &q);
    app.stop().await;
}

/// Live processes whose working directory is inside `dir`: `(pid, command line)`.
fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if !zombie && cwd.starts_with(&dir) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            out.push((pid, cmdline));
        }
    }
    out
}

#[tokio::test]
async fn abort_with_qemu_and_a_host_command_running_leaves_no_process() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path());
    let app = spawn_app_with(CONFIG).await;
    let id = enqueue(&app, &repo, "main", &["scenarios/manual/slow.xml"]).await;
    // The command's own output (its `$ ...` line reads `long check $phase`).
    wait_log_line(&app, &id, "long check started").await;

    let queue_dir = app.root.join("queues").join(&id);
    let before = processes_in(&queue_dir);
    assert!(
        before
            .iter()
            .any(|(_, c)| c.starts_with("qemu-system-xtensa")),
        "QEMU runs: {before:#?}"
    );
    assert!(
        before.iter().any(|(_, c)| c.contains("long check $phase")),
        "the host command runs: {before:#?}"
    );

    let took = app.abort(&id).await;
    assert!(took < Duration::from_secs(5), "abort took {:?}", took);
    let left = processes_in(&queue_dir);
    assert!(
        left.is_empty(),
        "processes of the queue survived the abort: {left:#?}"
    );
    // Nor did any of them move elsewhere.
    let everywhere = processes_in(Path::new("/"));
    let survivors: Vec<&(u32, String)> = before.iter().filter(|p| everywhere.contains(p)).collect();
    assert!(
        survivors.is_empty(),
        "moved away and survived: {survivors:#?}"
    );

    let q = app.wait_status(&id, "aborted", LIMIT).await;
    let task = &q["tasks"][0];
    assert_eq!(task["status"], "aborted", "{q:#}");
    expect_tests(
        task,
        &[
            ("host", "ping", "passed"),
            ("host", "long-check", "error"),
            ("host", "after", "skipped"),
        ],
    );
    assert_eq!(test_named(task, "long-check")["message"], "aborted");
    let url = app.url(&format!("/api/queues/{id}/log/stream?from=0"));
    let events = read_sse(&app.client, &url).await;
    check_stream(&app, &id, &events, "aborted");
    app.stop().await;
}
