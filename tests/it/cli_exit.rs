//! The client commands' exit codes with the real binary, one per outcome: passed 0, failed 1,
//! a refused request or bad usage 2, `error` or `aborted` 3, an unreachable or failing (5xx)
//! server 4; human output by default, the API's JSON with `--json`; shell completions.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::cli::{client, free_port, start_with};
use crate::worker::{SCENARIO_PASS, UNCONFINED, config, make_repo};

const SCENARIO_FAILS: &str = r#"<scenario name="fails">
  <suite name="shell">
    <test name="host" timeout="10"><run>false</run></test>
  </suite>
</scenario>
"#;

/// An environment whose build never ends: its queue stays running until it is aborted.
const HANG: &str = r#"
[environments.hang]
build = ["sleep", "600"]
simulate = ["true"]
ready = "never"
"#;

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn testarena(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testarena"))
        .args(args)
        .env_remove("TESTARENA_SERVER")
        .env_remove("TESTARENA_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn exit_codes_follow_the_outcome_and_output_is_human_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let good = make_repo(
        &dir.path().join("good"),
        &[("scenarios/pass.xml", SCENARIO_PASS)],
    );
    let bad = make_repo(
        &dir.path().join("bad"),
        &[("scenarios/fails.xml", SCENARIO_FAILS)],
    );
    let cfg = dir.path().join("config.toml");
    let toml = config("echo built > built.txt", HANG, "") + UNCONFINED;
    std::fs::write(&cfg, toml).unwrap();
    let server = start_with(&dir.path().join("root"), Some(&cfg), &[], Stdio::null());
    let (good, bad) = (good.display().to_string(), bad.display().to_string());
    let follow = |repo: &str, env: &str, id: &str, extra: &[&str]| {
        let mut args = vec![
            "enqueue", "--repo", repo, "--env", env, "--id", id, "--follow",
        ];
        args.extend_from_slice(extra);
        client(&server, &args)
    };

    let out = follow(&good, "sim", "p1", &[]);
    assert_eq!(code(&out), Some(0), "passed: {}", text(&out));
    let out = follow(&bad, "sim", "f1", &[]);
    assert_eq!(code(&out), Some(1), "failed: {}", text(&out));
    assert!(
        text(&out).contains("queue f1 ended failed"),
        "{}",
        text(&out)
    );
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let out = follow(&good, "sim", "e1", &["--commit", missing]);
    assert_eq!(code(&out), Some(3), "error: {}", text(&out));

    // Human output by default, the API's JSON with --json.
    let out = client(&server, &["status", "p1"]);
    let human = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(human.starts_with("queue p1: passed\n"), "{human}");
    assert!(human.contains("environment  sim"), "{human}");
    assert!(
        human.contains("scenarios/pass.xml  passed  2 passed"),
        "{human}"
    );
    let out = client(&server, &["status", "p1", "--json"]);
    let q: Value = serde_json::from_slice(&out.stdout).expect("--json is JSON");
    assert_eq!(
        (q["id"].as_str(), q["status"].as_str()),
        (Some("p1"), Some("passed"))
    );
    let out = client(&server, &["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("ID "), "{table}");
    for row in ["e1  error", "f1  failed", "p1  passed"] {
        assert!(table.contains(row), "{row}: {table}");
    }
    let out = client(&server, &["status", "--json"]);
    let page: Value = serde_json::from_slice(&out.stdout).expect("--json is JSON");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3));

    // Refused requests (4xx).
    let out = client(&server, &["enqueue", "--repo", &good, "--env", "mars"]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unknown environment"), "{}", text(&out));
    let out = client(&server, &["status", "no-such-queue"]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    let out = client(&server, &["abort", "p1"]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));

    // Aborted: 3 for whoever follows it; the abort itself did what it was asked.
    let out = client(
        &server,
        &["enqueue", "--repo", &good, "--env", "hang", "--id", "h1"],
    );
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("enqueued h1: "), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
    let out = client(&server, &["abort", "h1"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "aborted h1: aborted\n"
    );
    let out = client(&server, &["logs", "--follow", "h1"]);
    assert_eq!(code(&out), Some(3), "aborted: {}", text(&out));
    let out = client(&server, &["delete", "h1"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "deleted h1\n");
}

#[test]
fn bad_usage_is_2_and_the_help_lists_the_exit_codes() {
    let out = testarena(&["enqueue", "--env", "esp32"]);
    assert_eq!(code(&out), Some(2), "no --repo: {}", text(&out));
    let out = testarena(&["status", "--no-such-flag"]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    for args in [&["--help"][..], &["enqueue", "--help"]] {
        let out = testarena(args);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(code(&out), Some(0));
        assert!(
            help.contains("Exit codes") && help.contains("4  the server could not be reached"),
            "{help}"
        );
    }
}

#[test]
fn an_unreachable_server_is_4() {
    // A port that was free a moment ago: nothing listens there.
    let server = format!("http://127.0.0.1:{}", free_port());
    let out = testarena(&["status", "--server", &server]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("cannot reach the server"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_server_failure_is_4() {
    // A stand-in server that answers every request 500 with the API's error body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stand_in = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"error":{"code":"internal","message":"internal error","field":null}}"#;
        let answer = format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(answer.as_bytes()).unwrap();
    });
    let out = testarena(&["status", "q1", "--server", &format!("http://{addr}")]);
    stand_in.join().unwrap();
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("internal error (500)"),
        "{}",
        text(&out)
    );
}

#[test]
fn completions_print_a_script() {
    let out = testarena(&["completions", "bash"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("_testarena"));
    for shell in ["zsh", "fish"] {
        let out = testarena(&["completions", shell]);
        assert_eq!(code(&out), Some(0), "{shell}: {}", text(&out));
        assert!(!out.stdout.is_empty());
    }
}
