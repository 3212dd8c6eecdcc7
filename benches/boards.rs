//! Boards in parallel: one queue of 8 scenarios on the project's Xtensa firmware in real
//! `qemu-system-xtensa` (the `xtensa-sim` environment of the built-in defaults), each scenario
//! waiting on the board the way firmware tests do (a one-second host step, then a console
//! command), run with `boards = 1` and with `boards = 4` on the real `testarena` binary.
//!
//! Measured per queue: the wall time from enqueue to its log stream's `end` (checkout, build
//! and every task), and the span of its tasks (first task started to last task finished, as
//! recorded). Rounds alternate between the two settings on fresh servers; prints medians and
//! the ratio of the medians. The goal: `boards = 4` takes at most 0.4 of the sequential time.
//!
//! Run: `cargo bench --bench boards` (`BOARDS_BENCH_ROUNDS=N`, default 3).

#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use server::{Server, median};

const SCENARIOS: usize = 8;

fn scenario(n: usize) -> String {
    format!(
        r#"<scenario name="wait{n}" timeout="60">
  <suite name="lab">
    <test name="settle" timeout="10"><run>sleep 1</run></test>
    <test name="ping" timeout="10"><send>ping</send><expect>pong</expect></test>
  </suite>
</scenario>
"#
    )
}

/// The demo firmware repository with the 8 waiting scenarios committed on `main`.
fn lab_repo(dir: &Path) -> PathBuf {
    let repo = server::demo_repo(dir);
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=b", "-c", "user.email=b@example.org"])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}");
    };
    git(&["checkout", "-q", "main"]);
    for n in 1..=SCENARIOS {
        std::fs::write(repo.join(format!("scenarios/wait{n}.xml")), scenario(n)).unwrap();
    }
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "waiting scenarios"]);
    repo
}

struct Run {
    wall: Duration,
    tasks: Duration,
}

async fn run_queue(repo: &Path, boards: usize) -> Run {
    let allowed = repo.parent().unwrap().display().to_string();
    let config = format!(
        "[worker]\nslots = 1\nallowed_repos = [\"{allowed}/\"]\n\
         [environments.xtensa-sim]\nboards = {boards}\n"
    );
    let server = Server::start(&config).await;
    let scenarios: Vec<String> = (1..=SCENARIOS)
        .map(|n| format!("scenarios/wait{n}.xml"))
        .collect();
    let id = format!("boards-{boards}");
    let started = Instant::now();
    server
        .enqueue(json!({
            "id": id,
            "repo": repo.display().to_string(),
            "branch": "main",
            "environment": "xtensa-sim",
            "scenarios": scenarios,
        }))
        .await;
    // The log stream's `end` event: the queue is finished.
    let q = server.run_to_end(&id).await;
    let wall = started.elapsed();
    assert_eq!(q["status"], "passed", "{q:#}");
    let time = server::millis;
    let tasks = q["tasks"].as_array().unwrap();
    let first = tasks.iter().map(|t| time(t, "started_at")).min().unwrap();
    let last = tasks.iter().map(|t| time(t, "finished_at")).max().unwrap();
    server.stop().await;
    Run {
        wall,
        tasks: Duration::from_millis((last - first) as u64),
    }
}

fn main() {
    let rounds: usize = std::env::var("BOARDS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = lab_repo(dir.path());
        let (mut one, mut four) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let a = run_queue(&repo, 1).await;
            let b = run_queue(&repo, 4).await;
            eprintln!(
                "round {round}: boards=1 {:.2} s (tasks {:.2} s), boards=4 {:.2} s (tasks {:.2} s)",
                a.wall.as_secs_f64(),
                a.tasks.as_secs_f64(),
                b.wall.as_secs_f64(),
                b.tasks.as_secs_f64()
            );
            one.push(a);
            four.push(b);
        }
        let med = |runs: &[Run], f: fn(&Run) -> Duration| {
            median(runs.iter().map(|r| f(r).as_secs_f64()).collect())
        };
        let (w1, w4) = (med(&one, |r| r.wall), med(&four, |r| r.wall));
        let (t1, t4) = (med(&one, |r| r.tasks), med(&four, |r| r.tasks));
        println!("{SCENARIOS} scenarios, medians of {rounds} rounds:");
        println!("  boards = 1: queue {w1:>6.2} s   tasks {t1:>6.2} s");
        println!("  boards = 4: queue {w4:>6.2} s   tasks {t4:>6.2} s");
        println!(
            "  ratio:      queue {:>6.2}     tasks {:>6.2}   (goal: queue <= 0.40)",
            w4 / w1,
            t4 / t1
        );
    });
}
