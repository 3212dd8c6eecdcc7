//! Enqueue throughput and latency: durable enqueues over HTTP at 64 concurrent connections with
//! the worker paused, the store alone, and one commit per request as the baseline.
//!
//! Goal: at least 20,000 durable enqueues/s over HTTP at 64 connections, p99 at most 5 ms.
//!
//! Sections (each prints one row per round, then a summary over the rounds):
//! - HTTP, minimal client: 64 keep-alive sockets that write a request and read the response by
//!   hand, so the client costs as little CPU as possible;
//! - HTTP, reqwest: the same load through one `reqwest::Client` per connection;
//! - HTTP without an id: the server generates time-ordered ids (the store's inserts append);
//! - HTTP without the store: requests refused by validation (400), the ceiling of HTTP + JSON;
//! - store alone: `Store::enqueue` from 64 tasks, no HTTP, with per-task ids and with ids in
//!   arrival order;
//! - one commit per request: `Store::enqueue` from one task, one at a time.
//!
//! The client runs in this process on its own runtime and shares the machine's cores with the
//! server; CPU µs/request is shown per side (server runtime, client runtime, store writer thread),
//! from the threads' scheduler statistics.
//!
//! Run: `cargo bench --bench enqueue` (`ENQUEUE_BENCH_QUICK=1` for a short run,
//! `ENQUEUE_BENCH_ONLY=raw,store` for some sections).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testarena::config::Config;
use testarena::model::{QueueId, QueueRequest};
use testarena::server::Server;
use testarena::store::{Enqueued, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

const CONNECTIONS: usize = 64;

/// Runs `$op` (with `$n` the run's number) back to back until `$length` has passed; evaluates
/// to each run's latency in µs. A macro: the tasks it runs in must stay `Send`.
macro_rules! timed_loop {
    ($length:expr, |$n:ident| $op:block) => {{
        let (start, mut lat) = (Instant::now(), Vec::<u32>::new());
        while start.elapsed() < $length {
            let $n = lat.len();
            let t = Instant::now();
            $op
            lat.push(t.elapsed().as_micros() as u32);
        }
        lat
    }};
}

struct Plan {
    rounds: usize,
    round: Duration,
    warmup: Duration,
}

fn main() {
    let quick = std::env::var_os("ENQUEUE_BENCH_QUICK").is_some();
    let (rounds, round, warmup) = if quick { (2, 500, 200) } else { (5, 2000, 500) };
    let plan = Plan {
        rounds,
        round: Duration::from_millis(round),
        warmup: Duration::from_millis(warmup),
    };
    let server_rt = runtime("srv");
    let client_rt = runtime("cli");
    println!(
        "enqueue bench: {} cores; client and server run in this process and share the cores",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "latencies in ms; CPU in µs per request (srv = server runtime, cli = client, wr = store writer)"
    );
    println!("load average at the start: {}", load_average());

    // Secondary sections: fewer, shorter rounds, to keep the whole run under a minute.
    let short = Plan {
        rounds: plan.rounds.min(3),
        round: plan.round.min(Duration::from_secs(1)),
        ..plan
    };
    if wanted("raw") {
        http_section(&server_rt, &client_rt, &plan, Client::Raw, Body::Valid);
    }
    if wanted("reqwest") {
        http_section(&server_rt, &client_rt, &plan, Client::Reqwest, Body::Valid);
    }
    if wanted("generated") {
        http_section(&server_rt, &client_rt, &short, Client::Raw, Body::Generated);
    }
    if wanted("refused") {
        http_section(&server_rt, &client_rt, &short, Client::Raw, Body::Refused);
    }
    if wanted("store") {
        store_section(&server_rt, &plan, CONNECTIONS, Ids::PerCaller);
    }
    if wanted("ordered") {
        store_section(&server_rt, &short, CONNECTIONS, Ids::Ordered);
    }
    if wanted("sequential") {
        store_section(&server_rt, &short, 1, Ids::PerCaller);
    }
    println!();
    println!("load average at the end: {}", load_average());
}

/// The machine's load average: other work on the machine makes the numbers noisy.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `ENQUEUE_BENCH_ONLY=store,sequential` runs only the named sections
/// (raw, reqwest, generated, refused, store, ordered, sequential).
fn wanted(section: &str) -> bool {
    std::env::var("ENQUEUE_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn request(repo_n: usize) -> QueueRequest {
    QueueRequest {
        repo: format!("https://git.example.invalid/team/fw-{}.git", repo_n % 8),
        branch: Some("main".into()),
        commit: None,
        environment: "xtensa-sim".into(),
        scenarios: vec![],
        priority: 0,
    }
}

// ---- HTTP -------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Raw,
    Reqwest,
}

#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// A valid enqueue with the client's id (`<round>-c<connection>-<n>`): 201, durable.
    Valid,
    /// A valid enqueue without an id: the server generates a time-ordered one.
    Generated,
    /// An unknown environment: 400 from validation, the store is not touched.
    Refused,
}

fn body(kind: Body, id: &str, n: usize) -> String {
    let (id, env) = match kind {
        Body::Valid => (format!(r#""id":"{id}","#), "xtensa-sim"),
        Body::Generated => (String::new(), "xtensa-sim"),
        Body::Refused => (format!(r#""id":"{id}","#), "no-such-env"),
    };
    let repo = format!("https://git.example.invalid/team/fw-{}.git", n % 8);
    format!(r#"{{{id}"repo":"{repo}","branch":"main","environment":"{env}"}}"#)
}

fn http_section(server_rt: &Runtime, client_rt: &Runtime, plan: &Plan, client: Client, kind: Body) {
    let (title, tag) = match (client, kind) {
        (Client::Raw, Body::Valid) => (
            "HTTP POST /api/queues, minimal client (raw keep-alive sockets)",
            "raw",
        ),
        (Client::Reqwest, _) => (
            "HTTP POST /api/queues, reqwest client (one Client per connection)",
            "rq",
        ),
        (Client::Raw, Body::Generated) => (
            "HTTP POST /api/queues without an id (server-generated, time-ordered), minimal client",
            "gen",
        ),
        (Client::Raw, Body::Refused) => (
            "HTTP without the store: POST refused by validation (400), minimal client",
            "bad",
        ),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::from_toml("bench.toml", "[worker]\nslots = 0\n").expect("config");
    config.root = dir.path().join("root");
    let server = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Server::start(config, listener).await.expect("server")
    });
    let addr = server.addr;
    let expect = if kind == Body::Refused { 400 } else { 201 };
    let run = |name: String, length: Duration| {
        client_rt.block_on(http_round(addr, client, kind, expect, name, length))
    };
    run(format!("{tag}-warm"), plan.warmup);
    let mut table = Table::new(title, CONNECTIONS, plan);
    for round in 0..plan.rounds {
        table.add(run(format!("{tag}-{round}"), plan.round));
    }
    table.finish(kind != Body::Refused);
    server_rt.block_on(server.stop());
}

/// One round: every connection sends requests back to back until `length` has passed.
async fn http_round(
    addr: std::net::SocketAddr,
    client: Client,
    kind: Body,
    expect: u16,
    name: String,
    length: Duration,
) -> Round {
    let barrier = Arc::new(Barrier::new(CONNECTIONS + 1));
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (barrier, prefix) = (barrier.clone(), format!("{name}-c{c}"));
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(client, addr).await;
            barrier.wait().await;
            timed_loop!(length, |n| {
                let status = conn.post(&body(kind, &format!("{prefix}-{n}"), n)).await;
                assert_eq!(status, expect, "unexpected HTTP status");
            })
        }));
    }
    collect(barrier, tasks).await
}

/// Releases the tasks waiting on `barrier` and gathers their latencies into a round.
async fn collect(barrier: Arc<Barrier>, tasks: Vec<JoinHandle<Vec<u32>>>) -> Round {
    barrier.wait().await;
    let (cpu, start) = (Cpu::now(), Instant::now());
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("load task"));
    }
    Round::new(latencies, start.elapsed(), &cpu)
}

enum Conn {
    Raw(TcpStream, Vec<u8>),
    Reqwest(reqwest::Client, String),
}

impl Conn {
    async fn open(client: Client, addr: std::net::SocketAddr) -> Conn {
        match client {
            Client::Raw => {
                let s = TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                Conn::Raw(s, Vec::with_capacity(4096))
            }
            Client::Reqwest => {
                let c = testarena::http_client()
                    .pool_max_idle_per_host(1)
                    .no_proxy()
                    .build()
                    .expect("client");
                // Opens the keep-alive connection before the clock starts.
                let r = c
                    .get(format!("http://{addr}/healthz"))
                    .send()
                    .await
                    .expect("connect");
                r.bytes().await.expect("body");
                Conn::Reqwest(c, format!("http://{addr}/api/queues"))
            }
        }
    }

    /// Sends one enqueue and reads the whole response; returns the HTTP status.
    async fn post(&mut self, body: &str) -> u16 {
        match self {
            Conn::Reqwest(c, url) => {
                let r = c
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_owned())
                    .send()
                    .await
                    .expect("request");
                let status = r.status().as_u16();
                r.bytes().await.expect("body");
                status
            }
            Conn::Raw(s, buf) => {
                let req = format!(
                    "POST /api/queues HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(req.as_bytes()).await.expect("send");
                read_response(s, buf).await
            }
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length` body; returns its status.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).expect("ascii head");
    let status: u16 = head[9..12].parse().expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
    status
}

// ---- the store alone ---------------------------------------------------------------------------

/// How the store sections name their queues.
#[derive(Clone, Copy, PartialEq)]
enum Ids {
    /// `<round>-c<caller>-<n>`: each caller's inserts land in its own part of the id index.
    PerCaller,
    /// One shared counter: every insert lands at the end of the id index, like generated ids.
    Ordered,
}

fn store_section(rt: &Runtime, plan: &Plan, callers: usize, ids: Ids) {
    let title = match (callers, ids) {
        (1, _) => "one commit per request: Store::enqueue from one task, sequential (no folding)"
            .to_owned(),
        (_, Ids::PerCaller) => {
            format!("store alone: Store::enqueue from {callers} concurrent tasks, no HTTP")
        }
        (_, Ids::Ordered) => {
            format!("store alone, ids in arrival order (like generated ids), {callers} tasks")
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // Opened inside the runtime, as the server does: callers are answered on it.
    let store = {
        let _entered = rt.enter();
        Store::open(&dir.path().join("testarena.redb")).expect("store")
    };
    let counter = Arc::new(AtomicU64::new(0));
    let round = |name: String, length| {
        rt.block_on(store_round(&store, callers, ids, &counter, name, length))
    };
    round("warm".into(), plan.warmup);
    let mut table = Table::new(&title, callers, plan);
    for r in 0..plan.rounds {
        table.add(round(format!("r{r}"), plan.round));
    }
    table.finish(false);
    rt.block_on(store.close());
}

async fn store_round(
    store: &Store,
    callers: usize,
    ids: Ids,
    counter: &Arc<AtomicU64>,
    name: String,
    length: Duration,
) -> Round {
    let barrier = Arc::new(Barrier::new(callers + 1));
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (barrier, store, counter) = (barrier.clone(), store.clone(), counter.clone());
        let prefix = format!("{name}-c{c}");
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            timed_loop!(length, |n| {
                let id = match ids {
                    Ids::PerCaller => format!("{prefix}-{n}"),
                    Ids::Ordered => format!("q{:012}", counter.fetch_add(1, Ordering::Relaxed)),
                };
                let id = QueueId::parse(&id).expect("id");
                let done = store.enqueue(id, request(n)).await.expect("enqueue");
                assert!(matches!(done, Enqueued::Created(_)), "ids are unique");
            })
        }));
    }
    collect(barrier, tasks).await
}

// ---- measurements ----------------------------------------------------------------------------

/// Thread id → (name, ns on CPU).
type Snapshot = HashMap<u64, (String, u64)>;

/// CPU time (ns) of this process's threads, by group: server runtime, client runtime, writer.
#[derive(Clone, Copy, Default)]
struct Cpu {
    srv: u64,
    cli: u64,
    writer: u64,
}

impl Cpu {
    /// Every thread's name and on-CPU time, from `/proc/self/task/*/schedstat`.
    fn now() -> Snapshot {
        let mut threads = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return threads;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let tid = entry.file_name().to_string_lossy().parse().unwrap_or(0);
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let ns = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            threads.insert(tid, (comm.trim().to_owned(), ns));
        }
        threads
    }

    fn since(before: &Snapshot) -> Cpu {
        let mut cpu = Cpu::default();
        for (tid, (comm, ns)) in Cpu::now() {
            let used = ns - before.get(&tid).map_or(0, |b| b.1.min(ns));
            match comm.as_str() {
                c if c.starts_with("srv") => cpu.srv += used,
                c if c.starts_with("cli") => cpu.cli += used,
                c if c.starts_with("store-writer") => cpu.writer += used,
                _ => {}
            }
        }
        cpu
    }
}

struct Round {
    /// Per-request latency in µs, sorted.
    latencies: Vec<u32>,
    elapsed: Duration,
    cpu: Cpu,
}

impl Round {
    fn new(mut latencies: Vec<u32>, elapsed: Duration, before: &Snapshot) -> Round {
        let cpu = Cpu::since(before);
        latencies.sort_unstable();
        Round {
            latencies,
            elapsed,
            cpu,
        }
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// The latency at quantile `q` of sorted µs values, in ms.
fn pct(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}

struct Table {
    rounds: Vec<Round>,
}

impl Table {
    fn new(title: &str, concurrency: usize, plan: &Plan) -> Table {
        println!();
        println!(
            "== {title} (concurrency {concurrency}; {} rounds of {:?})",
            plan.rounds, plan.round
        );
        println!(
            "{:>7} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} | {:>6} {:>6} {:>6}",
            "round", "requests", "req/s", "min", "p50", "p90", "p99", "max", "srv", "cli", "wr"
        );
        Table { rounds: Vec::new() }
    }

    fn add(&mut self, r: Round) {
        let n = r.latencies.len().max(1) as f64;
        let per = |ns: u64| ns as f64 / 1000.0 / n;
        let q: String = [0.0, 0.5, 0.9, 0.99, 1.0]
            .iter()
            .map(|&q| format!(" {:>7.2}", pct(&r.latencies, q)))
            .collect();
        println!(
            "{:>7} {:>9} {:>9.0}{q} | {:>6.1} {:>6.1} {:>6.1}",
            self.rounds.len() + 1,
            r.latencies.len(),
            r.rate(),
            per(r.cpu.srv),
            per(r.cpu.cli),
            per(r.cpu.writer),
        );
        self.rounds.push(r);
    }

    /// Prints the spread over rounds and, for the HTTP enqueue, the goal.
    fn finish(self, goal: bool) {
        let (r0, r1, r2) = spread(&mut self.rounds.iter().map(Round::rate).collect::<Vec<_>>());
        let (p0, p1, p2) = spread(
            &mut self
                .rounds
                .iter()
                .map(|r| pct(&r.latencies, 0.99))
                .collect::<Vec<_>>(),
        );
        let mut all: Vec<u32> = self
            .rounds
            .iter()
            .flat_map(|r| r.latencies.iter().copied())
            .collect();
        all.sort_unstable();
        println!(
            "summary: {r1:.0} req/s median (rounds {r0:.0}..{r2:.0}); p99 {p1:.2} ms median (rounds {p0:.2}..{p2:.2}); all {} requests: min {:.2} / p50 {:.2} / p99 {:.2} / max {:.2} ms",
            all.len(),
            pct(&all, 0.0),
            pct(&all, 0.5),
            pct(&all, 0.99),
            pct(&all, 1.0),
        );
        if goal {
            let met = r1 >= 20_000.0 && p1 <= 5.0;
            let verdict = if met { "met" } else { "missed" };
            println!("goal >= 20000 req/s with p99 <= 5 ms: {verdict} (median round)");
        }
    }
}
