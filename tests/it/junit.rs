//! JUnit XML from a real run, checked with the real tools: `xmllint` against the Jenkins xUnit
//! plugin's `junit-10.xsd` (`fixtures/junit/`), for a task's file and the queue's merged one,
//! with a failing test and console output full of control characters and ANSI escapes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::helpers::spawn_app_with;
use crate::worker::{SCENARIO_PASS, config, make_repo};

const LIMIT: Duration = Duration::from_secs(60);

/// A coloured ESP-IDF line, control characters, a charset selection and a cursor sequence from
/// a host command; a test that passes on the board; one that fails.
const SCENARIO_NOISY: &str = r#"<scenario name="noisy">
  <suite name="console">
    <test name="colours" timeout="10"><run>printf '\033[0;32mI (312) main: hello\033[0m\n\001bell\007 \033(Bcharset\033[2K\n'</run></test>
    <test name="ping" timeout="5"><send>ping</send><expect>pong</expect></test>
    <test name="wrong" timeout="5"><send>ping</send><expect timeout="1s">never printed</expect></test>
  </suite>
</scenario>
"#;

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/junit/junit-10.xsd")
}

/// `xmllint --noout --schema junit-10.xsd file`: panics with xmllint's words unless valid.
/// A missing xmllint is a failure, never a skip.
fn assert_valid(file: &Path) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .arg(file)
        .output()
        .expect("xmllint runs (Debian package libxml2-utils)");
    assert!(
        out.status.success(),
        "{} is not valid against junit-10.xsd: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn task_and_queue_junit_of_a_real_run_are_valid_against_junit_10_xsd() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/noisy.xml", SCENARIO_NOISY),
            ("scenarios/pass.xml", SCENARIO_PASS),
        ],
    );
    let app = spawn_app_with(&config("echo built > built.txt", "", "")).await;
    let body = json!({
        "id": "junit-run",
        "repo": repo.display().to_string(),
        "branch": "main",
        "environment": "sim",
        "scenarios": ["scenarios/noisy.xml", "scenarios/pass.xml"],
    });
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let q = app.wait_status("junit-run", "failed", LIMIT).await;
    let queue_dir = app.root.join("queues/junit-run");

    let files = [
        queue_dir.join("tasks/noisy/junit.xml"),
        queue_dir.join("tasks/pass/junit.xml"),
        queue_dir.join("junit.xml"),
    ];
    for file in &files {
        assert_valid(file);
    }

    // The task's file: the root without `skipped`, each suite with its time and place, each
    // test with its output, cleaned.
    let noisy = std::fs::read_to_string(&files[0]).unwrap();
    let root = noisy.lines().nth(1).unwrap();
    assert!(
        root.starts_with("<testsuites ") && !root.contains("skipped="),
        "{root}"
    );
    let suite = noisy.lines().find(|l| l.contains("<testsuite ")).unwrap();
    for attr in [
        "timestamp=\"20",
        "hostname=\"",
        "skipped=\"0\"",
        "failures=\"1\"",
    ] {
        assert!(suite.contains(attr), "{suite} lacks {attr}");
    }
    assert!(noisy.contains("<failure message="), "{noisy}");
    assert_eq!(noisy.matches("<system-out>").count(), 3, "{noisy}");
    assert!(noisy.contains("output  I (312) main: hello\n"), "{noisy}");
    assert!(
        noisy.contains("output  \u{FFFD}bell\u{FFFD} charset\n"),
        "{noisy}"
    );
    assert!(noisy.contains("match   pong"), "{noisy}");
    // (The command line itself quotes `\033[0;32m` as text: only output lines are checked.)
    let output: Vec<&str> = noisy.lines().filter(|l| l.contains(" output ")).collect();
    assert!(
        !noisy.contains('\u{1b}') && !output.iter().any(|l| l.contains("[0;32m")),
        "{noisy}"
    );

    // The merged file: every task's suites, named after their task, served over HTTP.
    let r = app
        .client
        .get(app.url("/queues/junit-run/files/junit.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/xml; charset=utf-8"
    );
    let merged = r.text().await.unwrap();
    assert_eq!(merged, std::fs::read_to_string(&files[2]).unwrap());
    let suites: Vec<&str> = merged
        .lines()
        .filter(|l| l.contains("<testsuite "))
        .collect();
    assert_eq!(suites.len(), 2, "{merged}");
    assert!(
        suites[0].contains("name=\"noisy.console\""),
        "{}",
        suites[0]
    );
    assert!(suites[1].contains("name=\"pass.shell\""), "{}", suites[1]);
    let root = merged.lines().nth(1).unwrap();
    assert!(
        root.contains("name=\"junit-run\" tests=\"5\" failures=\"1\" errors=\"0\""),
        "{root}"
    );
    assert!(
        merged.contains("host ok"),
        "the pass task's output is there too"
    );
    assert_eq!(q["tasks"][1]["status"], "passed", "{q:#}");
    app.stop().await;
}
