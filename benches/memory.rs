//! The server's memory under clients that read slowly or not at all, measured on the real
//! `testarena` binary (a separate process, so only the server is counted): its resident set
//! (`VmRSS` of `/proc/PID/status`).
//!
//! - `?tail=`: six concurrent `GET /api/queues/{id}/log?tail=100000` on a 48 MB log, read to
//!   the end (peak RSS over idle while they run, sampled every 2 ms), and six that send the
//!   request and never read (RSS over idle once they are stuck).
//! - SSE: 1,000 clients of one queue's log stream that read the answer's head and nothing more,
//!   while the queue's build writes about 1.6 MB/s to its log: RSS over idle once their sockets
//!   are full, per client; then RSS once the server has dropped them (`[api] sse_send_timeout`,
//!   30 s by default); then twice 1,000 more on the same server, closed by the clients: RSS
//!   with them stuck and after they closed (the allocator keeps what the first wave made it
//!   take and uses it again; a leak would add up instead).
//!
//! Each round starts a fresh server. Prints medians of the rounds.
//!
//! Run: `cargo bench --bench memory` (`MEMORY_BENCH_QUICK=1` for one round).

#[path = "support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use server::{Server, median, status_kib};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TAIL_REQUESTS: usize = 6;
const TAIL_LINES: usize = 100_000;
/// 120,000 lines of 400 bytes: the tail is the last 40 MB.
const LOG_LINES: usize = 120_000;
const LOG_LINE: usize = 400;
const SSE_CLIENTS: usize = 1000;
/// How long the non-reading clients get to fill their sockets before RSS is read.
const FILL_TIME: Duration = Duration::from_secs(8);

fn main() {
    let quick = std::env::var_os("MEMORY_BENCH_QUICK").is_some();
    let rounds = if quick { 1 } else { 3 };
    // The server's own: the soft limit up to the hard one.
    let want = SSE_CLIENTS as u64 * 2 + 512;
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
        let mut tails = Vec::new();
        for round in 0..rounds {
            let t = tail_round().await;
            eprintln!("tail round {round}: {t:?}");
            tails.push(t);
        }
        let mut quiet = Vec::new();
        for round in 0..rounds {
            let q = quiet_round().await;
            eprintln!("quiet round {round}: {q:?}");
            quiet.push(q);
        }
        let mut streams = Vec::new();
        for round in 0..rounds {
            let s = sse_round().await;
            eprintln!("sse round {round}: {s:?}");
            streams.push(s);
        }
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let med = |v: Vec<f64>| median(v);
        println!(
            "idle server (tail rounds):                  {:>8.1} MiB",
            mib(med(tails.iter().map(|t| t.idle as f64).collect()))
        );
        println!(
            "{TAIL_REQUESTS} x ?tail={TAIL_LINES} on a 48 MB log, read:     {:>+8.1} MiB peak over idle  ({:.2} s for all six; goal +32 MiB at most)",
            mib(med(tails.iter().map(|t| t.peak_over_idle).collect())),
            med(tails.iter().map(|t| t.seconds).collect()),
        );
        println!(
            "{TAIL_REQUESTS} x ?tail={TAIL_LINES}, clients not reading:  {:>+8.1} MiB over idle",
            mib(med(tails.iter().map(|t| t.stuck_over_idle).collect()))
        );
        println!(
            "{SSE_CLIENTS} SSE clients of a queue with no log:  {:>+8.1} MiB over idle = {:.1} KiB per client",
            mib(med(quiet.clone())),
            med(quiet) / SSE_CLIENTS as f64 / 1024.0,
        );
        println!(
            "idle server, its queue writing its log:     {:>8.1} MiB",
            mib(med(streams.iter().map(|s| s.idle as f64).collect()))
        );
        println!(
            "{SSE_CLIENTS} SSE clients not reading:             {:>+8.1} MiB over idle = {:.1} KiB per client (goal 64 KiB at most)",
            mib(med(streams.iter().map(|s| s.stuck_over_idle).collect())),
            med(streams.iter().map(|s| s.stuck_over_idle).collect()) / SSE_CLIENTS as f64 / 1024.0,
        );
        println!(
            "after the server dropped them:              {:>+8.1} MiB over idle  ({} of {SSE_CLIENTS} dropped after {:.0} s)",
            mib(med(streams.iter().map(|s| s.after_drop_over_idle).collect())),
            med(streams.iter().map(|s| s.dropped as f64).collect()),
            med(streams.iter().map(|s| s.drop_seconds).collect()),
        );
        println!(
            "1000 more, twice, once those were gone:     {:>+8.1} MiB over idle = {:.1} KiB per client; {:+.1} MiB once they closed",
            mib(med(streams.iter().map(|s| s.warm_stuck_over_idle).collect())),
            med(streams.iter().map(|s| s.warm_stuck_over_idle).collect()) / SSE_CLIENTS as f64 / 1024.0,
            mib(med(streams.iter().map(|s| s.warm_after_close_over_idle).collect())),
        );
        println!("(medians of {rounds} rounds, each on a fresh server)");
    });
}

#[derive(Debug)]
struct TailRound {
    idle: u64,
    peak_over_idle: f64,
    stuck_over_idle: f64,
    seconds: f64,
}

#[derive(Debug)]
struct SseRound {
    idle: u64,
    stuck_over_idle: f64,
    after_drop_over_idle: f64,
    /// The same again, twice, on the same server once the first clients are gone: the memory
    /// the first wave made the allocator take is used again (a leak would add to it).
    warm_stuck_over_idle: f64,
    warm_after_close_over_idle: f64,
    dropped: u64,
    drop_seconds: f64,
}

async fn tail_round() -> TailRound {
    let server = Server::start("[worker]\nslots = 0\n").await;
    server
        .enqueue(serde_json::json!({
            "id": "big", "repo": "https://example.invalid/fw.git", "environment": "xtensa-sim"
        }))
        .await;
    let log = server.root.join("queues/big/queue.log");
    std::fs::create_dir_all(log.parent().expect("queue dir")).expect("queue dir");
    let mut content = Vec::with_capacity(LOG_LINES * LOG_LINE);
    for i in 0..LOG_LINES {
        content.extend_from_slice(format!("{i:08} ").as_bytes());
        content.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, LOG_LINE - 10));
        content.push(b'\n');
    }
    std::fs::write(&log, &content).expect("write the log");
    let expected = (LOG_LINES - TAIL_LINES) * LOG_LINE..content.len();
    drop(content);
    let idle = server.settled_rss().await;

    // Six clients that read everything: the peak while they run.
    let sampler = server.sample_peak();
    let started = Instant::now();
    let url = server.url(&format!("/api/queues/big/log?tail={TAIL_LINES}"));
    let reads = (0..TAIL_REQUESTS).map(|_| {
        let request = server.client.get(&url);
        async move {
            let response = request.send().await.expect("tail request");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("tail body").len()
        }
    });
    for len in futures_util::future::join_all(reads).await {
        assert_eq!(
            len,
            expected.len(),
            "the tail is the last {TAIL_LINES} lines"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = sampler.stop().await;

    // Six that never read past the head.
    let request = format!(
        "GET /api/queues/big/log?tail={TAIL_LINES} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    let mut stuck = Vec::new();
    for _ in 0..TAIL_REQUESTS {
        stuck.push(open_stuck(server.addr, &request).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck_rss = server.settled_rss().await;
    drop(stuck);
    server.stop().await;
    TailRound {
        idle,
        peak_over_idle: peak as f64 - idle as f64,
        stuck_over_idle: stuck_rss as f64 - idle as f64,
        seconds,
    }
}

/// RSS over idle with [`SSE_CLIENTS`] streams that have nothing to send: what a connection
/// costs by itself.
async fn quiet_round() -> f64 {
    let server = Server::start(&format!("{}\n[worker]\nslots = 0\n", sse_limits())).await;
    server
        .enqueue(serde_json::json!({
            "id": "quiet", "repo": "https://example.invalid/fw.git", "environment": "xtensa-sim"
        }))
        .await;
    let idle = server.settled_rss().await;
    let request = format!(
        "GET /api/queues/quiet/log/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    let mut clients = Vec::with_capacity(SSE_CLIENTS);
    for _ in 0..SSE_CLIENTS {
        clients.push(open_stuck(server.addr, &request).await);
    }
    let open = server.settled_rss().await;
    drop(clients);
    server.stop().await;
    open as f64 - idle as f64
}

async fn sse_round() -> SseRound {
    let repos = tempfile::tempdir().expect("temp dir");
    let repo = repos.path().join("fw");
    std::fs::create_dir_all(&repo).expect("repo dir");
    std::fs::write(repo.join("README"), "firmware\n").expect("readme");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "init"],
    ] {
        git(&repo, args);
    }
    // A build that prints 80-byte lines, 500 every ~25 ms (about 1.6 MB/s), until aborted.
    let build = r#"awk 'BEGIN { pad = sprintf("%70s", ""); gsub(/ /, "x", pad); for (i = 0; ; i++) { printf "%08d %s\n", i, pad; if (i % 500 == 499) { fflush(); system("sleep 0.02") } } }'"#;
    let limits = sse_limits();
    let config = format!(
        r#"
{limits}
[worker]
slots = 1
allowed_repos = [{repos}]
[sandbox]
mode = "none"
[environments.spam]
build = ["sh", "-c", {build}]
simulate = ["true"]
ready = "never"
build_timeout = "1h"
boot_timeout = "1s"
"#,
        repos = toml_str(&format!("{}/", repos.path().display())),
        build = toml_str(build),
    );
    let server = Server::start(&config).await;
    server
        .enqueue(serde_json::json!({
            "id": "spam", "repo": repo.display().to_string(), "branch": "main", "environment": "spam"
        }))
        .await;
    // The build is writing: a few MB of log, then idle RSS with it running.
    let log = server.root.join("queues/spam/queue.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&log).map_or(0, |m| m.len()) < 4 << 20 {
        assert!(Instant::now() < deadline, "the build never wrote its log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = server.settled_rss().await;

    let request = format!(
        "GET /api/queues/spam/log/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    let mut clients = Vec::with_capacity(SSE_CLIENTS);
    for _ in 0..SSE_CLIENTS {
        clients.push(open_stuck(server.addr, &request).await);
    }
    let connected = Instant::now();
    tokio::time::sleep(FILL_TIME).await;
    let stuck = server.settled_rss().await;
    eprintln!(
        "threads with the clients stuck: {}",
        status_kib(server.child.id(), "Threads:")
    );
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, "testarena_sse_clients{stream=\"log\"}"),
        SSE_CLIENTS as u64,
        "every client is still connected when RSS is read:\n{metrics}"
    );

    // The server drops them once they have not read for `sse_send_timeout`.
    let deadline = Instant::now() + Duration::from_secs(120);
    let dropped = loop {
        let metrics = server.metrics().await;
        let dropped = metric(&metrics, "testarena_sse_dropped_total{stream=\"log\"}");
        if dropped >= SSE_CLIENTS as u64 || Instant::now() > deadline {
            break dropped;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let drop_seconds = connected.elapsed().as_secs_f64();
    let after = server.settled_rss().await;
    eprintln!(
        "after the drop: {} open descriptors, threads {}",
        std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).map_or(0, |d| d.count()),
        status_kib(server.child.id(), "Threads:")
    );
    drop(clients);
    // Two more waves on the same server, each closed by its clients.
    let (mut warm_stuck, mut warm_after) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let mut clients = Vec::with_capacity(SSE_CLIENTS);
        for _ in 0..SSE_CLIENTS {
            clients.push(open_stuck(server.addr, &request).await);
        }
        tokio::time::sleep(FILL_TIME).await;
        warm_stuck.push(server.settled_rss().await as f64 - idle as f64);
        drop(clients);
        // Closed connections go once the server notices: wait for the gauge, not a time.
        let deadline = Instant::now() + Duration::from_secs(30);
        while metric(
            &server.metrics().await,
            "testarena_sse_clients{stream=\"log\"}",
        ) > 0
        {
            assert!(
                Instant::now() < deadline,
                "the closed clients were never noticed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        warm_after.push(server.settled_rss().await as f64 - idle as f64);
    }
    let r = server
        .client
        .post(server.url("/api/queues/spam/abort"))
        .send()
        .await
        .expect("abort");
    assert!(r.status().is_success(), "abort: {}", r.status());
    server.stop().await;
    SseRound {
        idle,
        stuck_over_idle: stuck as f64 - idle as f64,
        after_drop_over_idle: after as f64 - idle as f64,
        warm_stuck_over_idle: median(warm_stuck),
        warm_after_close_over_idle: median(warm_after),
        dropped,
        drop_seconds,
    }
}

/// `[api]` limits that let every client of the bench in; none with `MEMORY_BENCH_NO_LIMITS=1`,
/// for a build that has no such keys (a baseline).
fn sse_limits() -> String {
    if std::env::var_os("MEMORY_BENCH_NO_LIMITS").is_some() {
        return String::new();
    }
    let limit = SSE_CLIENTS * 2;
    format!("[api]\nmax_sse_clients = {limit}\nmax_sse_per_queue = {limit}\n")
}

/// A client that sends `request`, reads the answer's head and then nothing; its socket's
/// receive buffer is small, as a client that stopped reading would leave it.
async fn open_stuck(addr: SocketAddr, request: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(8192).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("the answer's head"));
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// The value of a sample line `name value` of an exposition (0 when absent).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a JSON string is a TOML string")
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.org",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}
