//! Live-log throughput and SSE memory, on loopback against the real server.
//!
//! Prints medians of several rounds:
//! - ingest: lines/s that `LogWriter::line` takes and persists with no follower;
//! - delivery: lines/s written once and received by every one of 100 SSE clients, with zero loss
//!   (each client checks its line count and that the last event id is the file's length);
//! - memory: RSS growth per idle SSE client (raw sockets, so the client side costs ~nothing).
//!
//! Run: `cargo bench --bench sse` (`SSE_BENCH_QUICK=1` for a short run).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use testarena::config::Config;
use testarena::model::{QueueId, QueueRequest, Status};
use testarena::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 100;
const IDLE_CLIENTS: usize = 2000;

fn main() {
    let quick = std::env::var_os("SSE_BENCH_QUICK").is_some();
    let (rounds, lines) = if quick { (1, 50_000) } else { (5, 400_000) };
    // The server's own: the soft limit up to the hard one.
    let want = IDLE_CLIENTS as u64 * 2 + 256;
    let nofile = testarena::serve::raise_fd_limit();
    if nofile < want {
        eprintln!(
            "warning: {nofile} open files allowed, {want} wanted: raise the hard limit (ulimit -Hn)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::from_toml(
            "bench.toml",
            "[worker]\nslots = 0\n[api]\nmax_sse_clients = 10000\nmax_sse_per_queue = 10000\n",
        )
        .expect("config");
        config.root = dir.path().join("root");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = Server::start(config, listener).await.expect("server");

        let mut ingest = Vec::new();
        let mut delivery = Vec::new();
        for round in 0..rounds {
            ingest.push(ingest_round(&server, round, lines).await);
            delivery.push(delivery_round(&server, round, lines).await);
        }
        println!(
            "ingest (no followers):        {:>12.0} lines/s  (median of {rounds}, {lines} lines of 80 bytes)",
            median(&mut ingest)
        );
        println!(
            "delivered to {CLIENTS} SSE clients: {:>12.0} lines/s  (median of {rounds}, zero loss checked)",
            median(&mut delivery)
        );
        let per_client = idle_memory(&server).await;
        println!(
            "memory per idle SSE client:   {:>12.1} KiB      ({IDLE_CLIENTS} clients)",
            per_client / 1024.0
        );
        server.stop().await;
    });
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn line(i: usize) -> String {
    // 80 bytes, like a typical build or console line.
    format!("{i:08} {}", "x".repeat(71))
}

async fn queue(server: &Server, name: &str) -> QueueId {
    let id = QueueId::parse(name).expect("id");
    let request = QueueRequest {
        repo: "https://example.invalid/repo.git".into(),
        branch: None,
        commit: None,
        environment: "xtensa-sim".into(),
        scenarios: vec![],
        priority: 0,
    };
    let store = &server.state.store;
    store.enqueue(id.clone(), request).await.expect("enqueue");
    store
        .transition(&id, Status::Running, None)
        .await
        .expect("run");
    id
}

async fn ingest_round(server: &Server, round: usize, lines: usize) -> f64 {
    let id = queue(server, &format!("ingest-{round}")).await;
    let w = server.state.logs.writer(&id).expect("writer");
    let start = Instant::now();
    for i in 0..lines {
        w.line(&line(i));
    }
    w.close().await.expect("close");
    let rate = lines as f64 / start.elapsed().as_secs_f64();
    let len = std::fs::metadata(server.state.logs.path(&id))
        .expect("log")
        .len();
    assert_eq!(len, lines as u64 * 81, "every line persisted");
    rate
}

async fn delivery_round(server: &Server, round: usize, lines: usize) -> f64 {
    let id = queue(server, &format!("deliver-{round}")).await;
    let url = format!("http://{}/api/queues/{id}/log/stream", server.addr);
    let client = testarena::http_client().build().expect("http client");
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let resp = client.get(&url).send().await.expect("connect");
        assert_eq!(resp.status(), 200);
        readers.push(tokio::spawn(count_lines(resp)));
    }
    let w = server.state.logs.writer(&id).expect("writer");
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for i in 0..lines {
            w.line(&line(i));
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
        w.close().await.expect("close");
    });
    writer.await.expect("writer task");
    server
        .state
        .store
        .transition(&id, Status::Passed, None)
        .await
        .expect("finish");
    let expected_end = lines as u64 * 81;
    for reader in readers {
        let (count, last_id) = reader.await.expect("reader task");
        assert_eq!(count, lines, "a client lost or repeated lines");
        assert_eq!(last_id, expected_end, "a client ended early");
    }
    lines as f64 / start.elapsed().as_secs_f64()
}

/// Counts `data:` lines of `log` events until `end`; returns the count and the last id.
async fn count_lines(resp: reqwest::Response) -> (usize, u64) {
    let mut body = resp.bytes_stream();
    let mut counter = Counter::default();
    let mut carry = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("body");
        // All ASCII, so no character is split between chunks; `str::find` is vectorised.
        let mut rest = std::str::from_utf8(&chunk).expect("the bench's stream is ASCII");
        if !carry.is_empty() {
            let Some(nl) = rest.find('\n') else {
                carry.push_str(rest);
                continue;
            };
            carry.push_str(&rest[..nl]);
            rest = &rest[nl + 1..];
            let line = std::mem::take(&mut carry);
            if counter.field(line.as_bytes()) {
                return (counter.count, counter.last_id);
            }
        }
        while let Some(nl) = rest.find('\n') {
            if counter.field(&rest.as_bytes()[..nl]) {
                return (counter.count, counter.last_id);
            }
            rest = &rest[nl + 1..];
        }
        carry.push_str(rest);
    }
    (counter.count, counter.last_id)
}

#[derive(Default)]
struct Counter {
    count: usize,
    pending: usize,
    last_id: u64,
    not_log: bool,
}

impl Counter {
    /// Takes one field line; `true` at the `end` event.
    fn field(&mut self, field: &[u8]) -> bool {
        if field.is_empty() {
            if !self.not_log {
                self.count += self.pending;
            }
            (self.pending, self.not_log) = (0, false);
        } else if field.starts_with(b"data:") {
            self.pending += 1;
        } else if let Some(id) = field.strip_prefix(b"id: ") {
            self.last_id = std::str::from_utf8(id)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        } else if field == b"event: end" {
            return true;
        } else if field.starts_with(b"event: ") {
            self.not_log = field != b"event: log";
        }
        false
    }
}

/// RSS growth per idle SSE client, measured with raw sockets that only read the headers.
async fn idle_memory(server: &Server) -> f64 {
    let id = QueueId::parse("idle").expect("id");
    let request = QueueRequest {
        repo: "https://example.invalid/repo.git".into(),
        branch: None,
        commit: None,
        environment: "xtensa-sim".into(),
        scenarios: vec![],
        priority: 0,
    };
    server
        .state
        .store
        .enqueue(id.clone(), request)
        .await
        .expect("enqueue");
    let request = format!(
        "GET /api/queues/{id}/log/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    // Warm up allocator arenas and lazily built state with a first batch, then measure.
    let mut warm = open_idle(server, &request, 200).await;
    settle().await;
    let before = rss_bytes();
    let clients = open_idle(server, &request, IDLE_CLIENTS).await;
    settle().await;
    let after = rss_bytes();
    drop(clients);
    warm.clear();
    after.saturating_sub(before) as f64 / IDLE_CLIENTS as f64
}

async fn open_idle(server: &Server, request: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        s.write_all(request.as_bytes()).await.expect("send");
        let mut head = Vec::new();
        let mut byte = [0u8; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut byte).await.expect("read");
            assert!(n > 0, "server closed an idle stream");
            head.extend_from_slice(&byte[..n]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "idle stream refused");
        streams.push(s);
    }
    streams
}

/// Lets the server finish polling the new streams before RSS is read.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
