//! The cost of a long history: the real server started on a store that already holds 10,000,
//! 100,000 and 1,000,000 queues.
//!
//! Goal, with 1,000,000 stored queues: start-up to serving at most 1 s, resident memory when
//! idle at most 128 MiB, and p99 at most 10 ms for `GET /api/queues?limit=50`, for a filter on a
//! rare status (`?status=running&limit=50`, `?status=waiting&limit=50`) and for the dashboard's
//! list (`/`). Also measured: `/metrics`, and a status badge, of a branch with queues and of a
//! branch without any (what a client that makes names up asks for).
//!
//! Each size's store file is built once through the library's `Store` (many writes in flight,
//! so the writer folds them into big commits) and kept under the bench's temporary target
//! directory, named by its size, the store's file format and the mix; every run copies it into
//! a fresh root. The mix, spread over the history: 4 queues `running` when the file was closed
//! (as if the server had 4 slots and crashed: start-up recovery puts them back to `waiting`, so
//! `?status=running` finds none, the worst case for a scan), 40 `waiting`, and of the others 1
//! in 100 `aborted`, 10 `failed`, 2 `error`, the rest `passed`; each with one task, ids in no
//! particular order (like clients' ids), 20 repositories.
//!
//! Per size: the file's size, start-up (spawn of `testarena serve` to the first `/healthz`
//! that answers; the median of 3 starts, each on a fresh copy), the idle resident set (`VmRSS` a second after a few requests), and p50/p99 of
//! each request over `HISTORY_BENCH_REQUESTS` (500) sequential requests on one keep-alive
//! connection. Retention is on, with limits nothing crosses, so its passes are part of idle.
//!
//! Run: `cargo bench --bench history` (`HISTORY_BENCH_SIZES=10000,100000` for smaller sizes).

#[path = "support/server.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::Server;
use testarena::model::{QueueId, QueueRequest, Status};
use testarena::store::Store;

/// Requests in flight while filling a store: enough for the writer's biggest batches.
const IN_FLIGHT: usize = 4096;
/// Queues `running` when the file was closed, whatever the size.
const RUNNING: u64 = 4;
/// Queues `waiting`, whatever the size.
const WAITING: u64 = 40;
/// Starts per size; start-up is their median.
const STARTS: usize = 3;
/// Names the mix of statuses in the cached files' names: a new mix builds new files.
const MIX: u32 = 2;

const CONFIG: &str = r#"
[worker]
slots = 0
[retention]
max_age = "3650d"
max_queues = 0
"#;

/// The requests measured, with their labels. `badge?`: a badge for a branch nobody pushed, as
/// anyone may ask (the worst case for a search: there is nothing to find).
const REQUESTS: [(&str, &str); 7] = [
    ("list", "/api/queues?limit=50"),
    ("running", "/api/queues?status=running&limit=50"),
    ("waiting", "/api/queues?status=waiting&limit=50"),
    ("dashboard", "/"),
    ("metrics", "/metrics"),
    (
        "badge",
        "/badge.svg?repo=https://git.example.invalid/team/fw-3.git&branch=develop",
    ),
    (
        "badge?",
        "/badge.svg?repo=https://git.example.invalid/team/fw-3.git&branch=made-up",
    ),
];

fn main() {
    let sizes: Vec<u64> = std::env::var("HISTORY_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .expect("HISTORY_BENCH_SIZES: numbers")
        })
        .collect();
    let requests: usize = std::env::var("HISTORY_BENCH_REQUESTS")
        .ok()
        .map_or(500, |n| {
            n.parse().expect("HISTORY_BENCH_REQUESTS: a number")
        });
    testarena::serve::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "history bench: {} cores; {requests} sequential requests per kind; load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        let file = rt.block_on(stored(n));
        let row = rt.block_on(measure(n, &file, requests));
        row.print_one();
        rows.push(row);
    }
    println!();
    println!("== how each grows with the history (p50 / p99 in ms)");
    Row::header();
    for row in &rows {
        row.print();
    }
    if let Some(big) = rows.iter().find(|r| r.queues >= 1_000_000) {
        let worst = big.latencies.iter().map(|(_, l)| l.1).fold(0.0, f64::max);
        let met = big.startup <= Duration::from_secs(1)
            && big.rss <= 128 << 20
            && big.latencies.iter().all(|(_, l)| l.1 <= 10.0);
        println!(
            "goal at {} queues (start-up <= 1 s, idle RSS <= 128 MiB, p99 <= 10 ms): {} \
             (start-up {} ms, RSS {:.1} MiB, worst p99 {worst:.2} ms)",
            big.queues,
            if met { "met" } else { "missed" },
            big.startup.as_millis(),
            big.rss as f64 / 1048576.0,
        );
    }
    println!("load average at the end: {}", load_average());
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The store file holding `n` queues, built once per size and file format.
async fn stored(n: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("history");
    std::fs::create_dir_all(&dir).expect("cache directory");
    let format = testarena::store::FORMAT;
    let file = dir.join(format!("{n}-format{format}-mix{MIX}.redb"));
    if file.exists() {
        return file;
    }
    let partial = file.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let t0 = Instant::now();
    let store = Store::open(&partial).expect("store");
    futures_util::stream::iter(0..n)
        .map(|i| fill_one(&store, i, n))
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
    store.close().await;
    drop(store);
    std::fs::rename(&partial, &file).expect("rename");
    println!(
        "built a store of {n} queues in {:.1} s: {}",
        t0.elapsed().as_secs_f64(),
        file.display()
    );
    file
}

/// splitmix64: ids in no particular order, the same in every build.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Queue `i` of `n` and its history: enqueued, then maybe claimed and ended.
async fn fill_one(store: &Store, i: u64, n: u64) {
    let h = mix(i);
    let id = QueueId::parse(&format!("fw-{:016x}", h)).expect("id");
    let request = QueueRequest {
        repo: format!("https://git.example.invalid/team/fw-{}.git", h % 20),
        branch: Some(["main", "develop", "release-1"][(h >> 8) as usize % 3].into()),
        commit: None,
        environment: "xtensa-sim".into(),
        scenarios: vec!["scenarios/smoke.xml".into()],
        priority: 0,
    };
    store.enqueue(id.clone(), request).await.expect("enqueue");
    // A few running (as many as a server has slots) and waiting, spread over the history.
    let end = if i % (n / RUNNING).max(1) == 1 {
        None
    } else if i % (n / WAITING).max(1) == 2 {
        return;
    } else {
        match h % 100 {
            0 => {
                let why = "superseded".to_owned();
                store.abort_waiting(&id, why).await.expect("abort");
                return;
            }
            1..=10 => Some(Status::Failed),
            11..=12 => Some(Status::Error),
            _ => Some(Status::Passed),
        }
    };
    store
        .transition(&id, Status::Running, None)
        .await
        .expect("running");
    if let Some(end) = end {
        store.transition(&id, end, None).await.expect("end");
    }
}

struct Row {
    queues: u64,
    file_bytes: u64,
    startup: Duration,
    rss: u64,
    /// (label, (p50, p99) in ms)
    latencies: Vec<(&'static str, (f64, f64))>,
}

impl Row {
    fn header() {
        let kinds: String = REQUESTS
            .iter()
            .map(|(label, _)| format!(" {label:>15}"))
            .collect();
        println!(
            "{:>9} {:>9} {:>9} {:>9} |{kinds}",
            "queues", "file MiB", "start ms", "RSS MiB"
        );
    }

    fn print(&self) {
        let lat: String = self
            .latencies
            .iter()
            .map(|(_, (p50, p99))| format!(" {:>15}", format!("{p50:.2} / {p99:.2}")))
            .collect();
        println!(
            "{:>9} {:>9.1} {:>9} {:>9.1} |{lat}",
            self.queues,
            self.file_bytes as f64 / 1048576.0,
            self.startup.as_millis(),
            self.rss as f64 / 1048576.0,
        );
    }

    fn print_one(&self) {
        println!();
        Row::header();
        self.print();
    }
}

/// The server on a copy of `file`.
async fn start(file: &Path) -> Server {
    Server::start_with(CONFIG, |root| {
        std::fs::create_dir_all(root).expect("root");
        let copy = root.join("testarena.redb");
        std::fs::copy(file, &copy).expect("copy the store");
        // On disk before the clock starts: the server's first commit would flush the copy.
        let copy = std::fs::File::open(&copy).expect("the copy");
        copy.sync_all().expect("sync the copy");
    })
    .await
}

async fn measure(n: u64, file: &Path, requests: usize) -> Row {
    let file_bytes = std::fs::metadata(file).expect("store file").len();
    // Start-up is a few commits (each an fsync, whose time depends on what else the machine
    // writes): the median of a few starts, each on a fresh copy.
    let mut startups = Vec::new();
    for _ in 1..STARTS {
        let server = start(file).await;
        startups.push(server.startup);
        server.stop().await;
    }
    let server = start(file).await;
    startups.push(server.startup);
    startups.sort();
    let startup = startups[startups.len() / 2];
    let mut latencies = Vec::new();
    for (label, path) in REQUESTS {
        let url = server.url(path);
        // A few first, to open the connection and warm what a first request warms.
        for _ in 0..5 {
            get(&server, &url).await;
        }
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            get(&server, &url).await;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        latencies.push((label, (pct(&times, 0.5), pct(&times, 0.99))));
    }
    let rss = server.settled_rss().await;
    server.stop().await;
    Row {
        queues: n,
        file_bytes,
        startup,
        rss,
        latencies,
    }
}

async fn get(server: &Server, url: &str) {
    let r = server.client.get(url).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.bytes().await.expect("body");
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}
