//! Enqueue → claimed latency: how soon the event-driven scheduler starts a queue once it is
//! enqueued (the system this replaces polled once a second).
//!
//! Goal: enqueue → claimed p99 at most 5 ms.
//!
//! The real server runs with `[worker] slots = 1` and an environment whose runs end at once with
//! `error` (its repository does not exist, so the checkout fails), which frees the slot for the
//! next sample. Queues are enqueued one at a time over HTTP; each waits for the previous run to
//! end. A listener task stamps every change of the store's change feed as it arrives, so:
//! - commit → running: from the enqueue's commit (its `→ waiting` change) to the `waiting →
//!   running` change: the scheduler's wake-up plus the claim's durable commit;
//! - POST → running: from just before the POST to the `waiting → running` change;
//! - POST → 201: the enqueue's HTTP latency, for comparison.
//!
//! Two more sections time `Scheduler::try_run_next` directly (claim commit and start of a run),
//! with no other queue waiting and with 10,000 lower-priority queues waiting behind.
//!
//! Run: `cargo bench --bench claim` (`CLAIM_BENCH_QUICK=1` for a short run,
//! `CLAIM_BENCH_ONLY=server` for some sections).

use std::time::{Duration, Instant};

use testarena::config::{Config, LiveConfig};
use testarena::model::{Change, QueueId, QueueRequest, Status};
use testarena::server::Server;
use testarena::worker::Scheduler;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

const WARMUP: usize = 10;
const LIMIT: Duration = Duration::from_secs(10);
/// Lower-priority queues left waiting behind the measured ones in the last section.
const BACKLOG: usize = 10_000;

fn config(root: &std::path::Path, slots: usize) -> Config {
    // The missing repository is in the temporary directory that holds the root.
    let repos = root.parent().expect("the root is in a temporary directory");
    let text = format!(
        r#"
        [worker]
        slots = {slots}
        allowed_repos = [{repos:?}]
        [environments.fast]
        build = ["true"]
        simulate = ["true"]
        ready = "x"
        build_timeout = "10s"
        boot_timeout = "10s"
        "#
    );
    let mut config = Config::from_toml("bench.toml", &text).expect("config");
    config.root = root.to_path_buf();
    config
}

fn main() {
    let quick = std::env::var_os("CLAIM_BENCH_QUICK").is_some();
    let samples = if quick { 30 } else { 300 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "claim bench: {} cores, {samples} sequential queues per section (after {WARMUP} warm-up); latencies in ms",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!("load average at the start: {}", load_average());
    runtime.block_on(async {
        if wanted("server") {
            through_the_server(samples).await;
        }
        if wanted("direct") {
            try_run_next_directly(samples, 0).await;
        }
        if wanted("backlog") {
            try_run_next_directly(samples, BACKLOG).await;
        }
    });
    println!();
    println!("load average at the end: {}", load_average());
}

/// `CLAIM_BENCH_ONLY=server,direct` runs only the named sections (server, direct, backlog).
fn wanted(section: &str) -> bool {
    std::env::var("CLAIM_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

/// The machine's load average: other work on the machine makes the numbers noisy.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Every change of the feed with the instant it arrived. A thread of its own does the stamping,
/// so the runtime's workers being busy does not delay the stamps; it ends with the store.
fn stamp_changes(server: &Server) -> mpsc::UnboundedReceiver<(Instant, Change)> {
    let mut feed = server.state.store.subscribe();
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("stamp".into())
        .spawn(move || {
            loop {
                match feed.blocking_recv() {
                    Ok(change) => {
                        if tx.send((Instant::now(), change)).is_err() {
                            return;
                        }
                    }
                    // Only while the backlog is filled; the measured queues come after.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        })
        .expect("stamping thread");
    rx
}

async fn start(slots: usize) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::start(config(&dir.path().join("root"), slots), listener)
        .await
        .expect("server");
    (server, dir)
}

fn missing_repo(dir: &tempfile::TempDir) -> String {
    dir.path().join("no-such-repo").display().to_string()
}

/// The queue changes of `id` until it ends; returns the instants of `→ waiting` and `→ running`.
async fn follow(
    changes: &mut mpsc::UnboundedReceiver<(Instant, Change)>,
    id: &str,
) -> (Instant, Instant) {
    let (mut waiting, mut running) = (None, None);
    loop {
        let (at, c) = tokio::time::timeout(LIMIT, changes.recv())
            .await
            .expect("the queue ends in time")
            .expect("change feed open");
        if c.queue.as_str() != id || c.task.is_some() {
            continue;
        }
        match (c.from, c.to) {
            (None, Some(Status::Waiting)) => waiting = Some(at),
            (Some(Status::Waiting), Some(Status::Running)) => running = Some(at),
            (_, Some(to)) if to.is_terminal() => {
                assert_eq!(to, Status::Error, "the run ends at the failed checkout");
                return (
                    waiting.expect("the enqueue was seen"),
                    running.expect("the claim was seen"),
                );
            }
            _ => {}
        }
    }
}

/// Waits until the finished run has given its slot back.
async fn slot_free(server: &Server) {
    let deadline = Instant::now() + LIMIT;
    while server.state.worker.busy() > 0 {
        assert!(Instant::now() < deadline, "the slot is freed in time");
        tokio::task::yield_now().await;
    }
}

async fn through_the_server(samples: usize) {
    let (server, dir) = start(1).await;
    let mut changes = stamp_changes(&server);
    let client = testarena::http_client().no_proxy().build().expect("client");
    let url = format!("http://{}/api/queues", server.addr);
    let repo = missing_repo(&dir);
    let (mut post_201, mut commit_run, mut post_run) = (Vec::new(), Vec::new(), Vec::new());
    let mut claimed_before_201 = 0;
    for i in 0..WARMUP + samples {
        let id = format!("q{i}");
        let body = serde_json::json!({"id": id, "repo": repo, "environment": "fast"});
        let t0 = Instant::now();
        let response = client.post(&url).json(&body).send().await.expect("post");
        let answered = Instant::now();
        assert_eq!(response.status().as_u16(), 201, "enqueued");
        response.bytes().await.expect("body");
        let (waiting, running) = follow(&mut changes, &id).await;
        slot_free(&server).await;
        if i >= WARMUP {
            post_201.push(answered - t0);
            commit_run.push(running.saturating_duration_since(waiting));
            post_run.push(running - t0);
            claimed_before_201 += usize::from(running < answered);
        }
    }
    println!();
    println!("== through the server: POST /api/queues, scheduler on the change feed, slots = 1");
    header();
    row("commit → running", &mut commit_run);
    row("POST → running", &mut post_run);
    row("POST → 201", &mut post_201);
    println!(
        "claimed before the client had its 201: {claimed_before_201} of {samples}; goal enqueue → claimed p99 <= 5 ms: {}",
        verdict(&commit_run, &post_run)
    );
    server.stop().await;
}

fn verdict(commit_run: &[Duration], post_run: &[Duration]) -> String {
    let p = |v: &[Duration]| quantile(v, 0.99) <= Duration::from_millis(5);
    match (p(commit_run), p(post_run)) {
        (true, true) => "met (from the commit and from the POST)".into(),
        (true, false) => "met from the commit, missed from the POST".into(),
        (false, _) => "missed".into(),
    }
}

async fn try_run_next_directly(samples: usize, backlog: usize) {
    // The server's own scheduler is paused (slots = 0); ours gets one slot on the same state.
    let (server, dir) = start(0).await;
    let mut changes = stamp_changes(&server);
    let state = server.state.clone();
    let mut cfg = (*state.config()).clone();
    cfg.worker.slots = 1;
    let tracker = TaskTracker::new();
    let scheduler = Scheduler::new(state.worker_deps(), LiveConfig::new(cfg), tracker.clone());
    let repo = missing_repo(&dir);
    let request = |priority| QueueRequest {
        repo: repo.clone(),
        branch: None,
        commit: None,
        environment: "fast".into(),
        scenarios: vec![],
        priority,
    };
    fill_backlog(&server, backlog, request(-1)).await;
    let mut claim = Vec::new();
    for i in 0..WARMUP + samples {
        let id = QueueId::parse(&format!("d{i}")).expect("id");
        server
            .state
            .store
            .enqueue(id.clone(), request(0))
            .await
            .expect("enqueue");
        let t0 = Instant::now();
        let started = scheduler.try_run_next().await.expect("claim");
        let took = t0.elapsed();
        assert_eq!(started.as_ref(), Some(&id), "the waiting queue is claimed");
        follow(&mut changes, id.as_str()).await;
        slot_free(&server).await;
        if i >= WARMUP {
            claim.push(took);
        }
    }
    println!();
    println!(
        "== Scheduler::try_run_next directly (claim commit + start of the run), {backlog} lower-priority queues waiting behind"
    );
    header();
    row("try_run_next", &mut claim);
    tracker.close();
    tracker.wait().await;
    server.stop().await;
}

/// Enqueues `n` waiting queues from 64 tasks; they stay behind the measured ones.
async fn fill_backlog(server: &Server, n: usize, request: QueueRequest) {
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (store, request) = (server.state.store.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(64) {
                let id = QueueId::parse(&format!("backlog-{i}")).expect("id");
                store.enqueue(id, request.clone()).await.expect("enqueue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("backlog task");
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn header() {
    println!(
        "{:<18} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "min", "p50", "p90", "p99", "max"
    );
}

fn row(name: &str, values: &mut [Duration]) {
    values.sort_unstable();
    let ms = |q| quantile(values, q).as_secs_f64() * 1000.0;
    println!(
        "{name:<18} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        ms(0.0),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0)
    );
}
