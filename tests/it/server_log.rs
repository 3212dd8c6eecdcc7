//! The server's own log as JSON (`serve --log-format json`, `TESTARENA_LOG_FORMAT=json`) from the
//! real binary: every line one JSON object, with an access log line per request that names the
//! route's template and never a token, a cookie or the path.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const LIMIT: Duration = Duration::from_secs(30);
/// Sent in the bearer token, the cookie and the query: none of it may reach the log.
const SECRET: &str = "sekrit-3f9a";

/// Parses a log line: one JSON object with a timestamp, a level and a message.
fn parse(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    for key in ["timestamp", "level", "target"] {
        assert!(v[key].is_string(), "no {key} in {line}");
    }
    v
}

/// Waits for the next line that `want` accepts; returns it parsed.
async fn next_line(
    lines: &mut mpsc::UnboundedReceiver<String>,
    seen: &mut Vec<String>,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, lines.recv()).await {
            Ok(Some(line)) => {
                let v = parse(&line);
                seen.push(line);
                if want(&v) {
                    return v;
                }
            }
            Ok(None) => panic!("the server's log ended; so far:\n{}", seen.join("\n")),
            Err(_) => panic!(
                "no such line within {LIMIT:?}; so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[tokio::test]
async fn serve_logs_json_lines_with_an_access_log_line_per_request() {
    // The flag, then the variable.
    for (args, env) in [
        (&["--log-format", "json"][..], None),
        (&[][..], Some(("TESTARENA_LOG_FORMAT", "json"))),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_testarena"));
        cmd.arg("serve")
            .args(args)
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(["--listen", &addr])
            .env("RUST_LOG", "info")
            .env_remove("TESTARENA_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((key, value)) = env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let serving = next_line(&mut lines, &mut seen, |v| v["message"] == "serving").await;
        assert_eq!(serving["level"], "INFO");
        assert_eq!(serving["addr"], addr.as_str());

        let client = testarena::http_client().build().unwrap();
        let r = client
            .get(format!(
                "http://{addr}/api/queues/q-{SECRET}?token={SECRET}"
            ))
            .header("authorization", format!("Bearer {SECRET}"))
            .header("cookie", format!("testarena_session={SECRET}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let access = next_line(&mut lines, &mut seen, |v| {
            v["span"]["route"] == "/api/queues/{id}"
        })
        .await;
        assert_eq!(access["level"], "INFO", "{access}");
        assert_eq!(access["span"]["method"], "GET", "{access}");
        assert_eq!(access["status"], status, "{access}");
        assert!(access["latency_ms"].as_f64().is_some(), "{access}");
        // A path no route takes is `other`.
        let r = client
            .get(format!("http://{addr}/nothing/{SECRET}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let other = next_line(&mut lines, &mut seen, |v| v["span"]["route"] == "other").await;
        assert_eq!(other["status"], 404, "{other}");

        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        next_line(&mut lines, &mut seen, |v| v["message"] == "stopped").await;
        assert!(child.wait().unwrap().success());
        reader.join().unwrap();
        while let Ok(line) = lines.try_recv() {
            parse(&line);
            seen.push(line);
        }
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        for line in stdout.lines() {
            parse(line);
        }
        let log = seen.join("\n");
        assert!(!log.contains(SECRET), "a secret in the log:\n{log}");
    }
}
