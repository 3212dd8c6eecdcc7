//! The server's memory while it streams a queue's archive (`GET /api/queues/{id}/archive`),
//! measured on the real `testarena` binary (a separate process, so only the server is
//! counted): its resident set (`VmRSS` of `/proc/PID/status`), sampled every 2 ms.
//!
//! The queue has a 200 MB log (lines of log-like text: a counter, a step name, hex) and a few
//! reports. Measured over the idle server's RSS:
//! - one download read to the end (peak), with its time and size;
//! - four at once, read to the end (peak);
//! - four clients that send the request and never read (once they are stuck), and whether the
//!   server drops them (`[api] sse_send_timeout`, 5 s here).
//!
//! The goal is flat memory: a download costs a few 64 KiB chunks and the compressor's state,
//! whatever the size of the queue. Each round starts a fresh server; prints medians.
//!
//! Run: `cargo bench --bench archive` (`ARCHIVE_BENCH_QUICK=1` for one round).

#[path = "support/server.rs"]
mod server;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use server::{Server, median};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The log's size.
const LOG_BYTES: u64 = 200 * 1000 * 1000;
const PARALLEL: usize = 4;
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let quick = std::env::var_os("ARCHIVE_BENCH_QUICK").is_some();
    let rounds = if quick { 1 } else { 3 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut all = Vec::new();
        for round in 0..rounds {
            let r = round_once().await;
            eprintln!("round {round}: {r:?}");
            all.push(r);
        }
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let med = |f: &dyn Fn(&Round) -> f64| median(all.iter().map(f).collect());
        println!(
            "idle server:                                {:>8.1} MiB",
            mib(med(&|r| r.idle as f64))
        );
        println!(
            "1 download of a 200 MB log, read:           {:>+8.1} MiB peak over idle  ({:.1} s, {:.0} MB/s of log, {:.1} MB sent)",
            mib(med(&|r| r.one_peak)),
            med(&|r| r.one_seconds),
            LOG_BYTES as f64 / 1e6 / med(&|r| r.one_seconds),
            med(&|r| r.archive_bytes as f64) / 1e6,
        );
        println!(
            "{PARALLEL} downloads at once, read:                 {:>+8.1} MiB peak over idle  ({:.1} s for all)",
            mib(med(&|r| r.parallel_peak)),
            med(&|r| r.parallel_seconds),
        );
        println!(
            "{PARALLEL} downloads, clients not reading:          {:>+8.1} MiB over idle",
            mib(med(&|r| r.stuck)),
        );
        println!(
            "after the server dropped them:              {:>+8.1} MiB over idle  ({} of {PARALLEL} dropped {:.0} s after the RSS above)",
            mib(med(&|r| r.after_drop)),
            med(&|r| r.dropped as f64),
            med(&|r| r.drop_seconds),
        );
        println!("(medians of {rounds} rounds, each on a fresh server)");
    });
}

#[derive(Debug)]
struct Round {
    idle: u64,
    one_peak: f64,
    one_seconds: f64,
    archive_bytes: u64,
    parallel_peak: f64,
    parallel_seconds: f64,
    stuck: f64,
    after_drop: f64,
    dropped: usize,
    drop_seconds: f64,
}

async fn round_once() -> Round {
    let timeout = format!("{}s", SEND_TIMEOUT.as_secs());
    let server = Server::start(&format!(
        "[worker]\nslots = 0\n[api]\nsse_send_timeout = \"{timeout}\"\n"
    ))
    .await;
    server.enqueue_big().await;
    write_queue(&server.root.join("queues/big"));
    let idle = server.settled_rss().await;
    let url = server.url("/api/queues/big/archive");

    let sampler = server.sample_peak();
    let started = Instant::now();
    let archive_bytes = download(&server.client, &url).await;
    let one_seconds = started.elapsed().as_secs_f64();
    let one_peak = sampler.stop().await as f64 - idle as f64;

    let sampler = server.sample_peak();
    let started = Instant::now();
    let all = (0..PARALLEL).map(|_| download(&server.client, &url));
    for len in futures_util::future::join_all(all).await {
        assert_eq!(len, archive_bytes, "every download is the same archive");
    }
    let parallel_seconds = started.elapsed().as_secs_f64();
    let parallel_peak = sampler.stop().await as f64 - idle as f64;

    // Clients that read the head and nothing more. Whether the server dropped them is seen in
    // its open descriptors: reading the sockets here would let their downloads go on.
    let fds_before = server.open_fds();
    let mut stuck = Vec::new();
    for _ in 0..PARALLEL {
        stuck.push(
            server
                .request_and_stop_reading("/api/queues/big/archive")
                .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck_rss = server.rss() as f64 - idle as f64;
    let waited = Instant::now();
    while server.open_fds() > fds_before && waited.elapsed() < SEND_TIMEOUT * 4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drop_seconds = waited.elapsed().as_secs_f64();
    let dropped = PARALLEL.saturating_sub(server.open_fds().saturating_sub(fds_before));
    let after_drop = server.settled_rss().await as f64 - idle as f64;
    drop(stuck);
    server.stop().await;
    Round {
        idle,
        one_peak,
        one_seconds,
        archive_bytes,
        parallel_peak,
        parallel_seconds,
        stuck: stuck_rss,
        after_drop,
        dropped,
        drop_seconds,
    }
}

/// Reads the archive to the end, chunk by chunk; its length.
async fn download(client: &reqwest::Client, url: &str) -> u64 {
    let response = client.get(url).send().await.expect("archive request");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut len = 0;
    while let Some(chunk) = body.next().await {
        len += chunk.expect("archive body").len() as u64;
    }
    len
}

/// The queue's files: a 200 MB `queue.log` and a task's reports.
fn write_queue(dir: &Path) {
    std::fs::create_dir_all(dir.join("tasks/smoke/tests/shell")).expect("queue dir");
    let file = std::fs::File::create(dir.join("queue.log")).expect("log");
    let mut log = std::io::BufWriter::with_capacity(1 << 20, file);
    let steps = ["build", "boot", "smoke", "console", "scenario"];
    let (mut written, mut i, mut x) = (0u64, 0u64, 0x9e37_79b9_7f4a_7c15u64);
    while written < LOG_BYTES {
        // xorshift: text that compresses like a log, not like a run of one byte.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "{i:09} [{}] value={x:016x} status=ok {}\n",
            steps[(x % 5) as usize],
            "-".repeat((x % 60) as usize)
        );
        log.write_all(line.as_bytes()).expect("log line");
        written += line.len() as u64;
        i += 1;
    }
    log.flush().expect("log");
    for (name, text) in [
        ("report.html", "<html>queue</html>\n"),
        ("tasks/smoke/report.html", "<html>task</html>\n"),
        ("tasks/smoke/junit.xml", "<testsuites/>\n"),
        ("tasks/smoke/task.log", "ping\npong\n"),
        ("tasks/smoke/tests/shell/ping.html", "<html>ping</html>\n"),
    ] {
        std::fs::write(dir.join(name), text).expect("report");
    }
}

/// What only this bench asks of the server.
trait ArchiveServer {
    async fn enqueue_big(&self);
    async fn request_and_stop_reading(&self, path: &str) -> tokio::net::TcpStream;
    fn open_fds(&self) -> usize;
}

impl ArchiveServer for Server {
    async fn enqueue_big(&self) {
        self.enqueue(serde_json::json!({
            "id": "big", "repo": "https://example.invalid/fw.git", "environment": "xtensa-sim"
        }))
        .await;
    }

    /// Sends `GET path`, reads the head of the answer, and reads nothing more.
    async fn request_and_stop_reading(&self, path: &str) -> tokio::net::TcpStream {
        let mut socket = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        socket.write_all(request.as_bytes()).await.expect("request");
        let mut head = [0u8; 512];
        let n = socket.read(&mut head).await.expect("answer");
        assert!(head[..n].starts_with(b"HTTP/1.1 200"), "the archive starts");
        socket
    }

    /// How many descriptors the server has open (one per connection, among others).
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }
}
