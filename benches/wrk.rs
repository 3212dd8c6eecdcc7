//! Durable enqueues with a real client: `wrk` against the release server, in its own process.
//!
//! Goal: on a 2-core machine, at 64 connections (`wrk -t2 -c64`) with the worker paused
//! (`[worker] slots = 0`, so queues stay waiting), the median of three runs at least 20,000
//! enqueues/s with a p99 of at most 5 ms.
//!
//! Each run starts a fresh server, warms it with a short wrk run, then measures one run of
//! `WRK_BENCH_SECONDS` (10). A Lua script POSTs `/api/queues` with an id of its own per request
//! (`<run>-t<thread>-<n>`); any answer other than 201 is counted and fails the run. The server
//! logs at `warn` (no access log); `BENCH_SERVER_RUST_LOG=info` runs it with the default level,
//! which writes one access log line per request (to a file in the temporary directory).
//!
//! Beside wrk's figures, each run reports what the server and the machine did meanwhile: the
//! store's commits (writes per commit, and the commit times from `testarena_store_commit_seconds`
//! as bucket bounds: median, p99, and how many took 12.8 ms or more — a disk stall holds every
//! connection's answer for as long), and the CPU time the hypervisor took from this machine
//! (`steal` in `/proc/stat`). A run whose p99 comes from a few stalled commits, or from stolen
//! time, says so.
//!
//! Run: `cargo bench --bench wrk` (needs `wrk` on the PATH; `WRK_BENCH_RUNS`,
//! `WRK_BENCH_SECONDS`, `WRK_BENCH_CONNECTIONS`, `WRK_BENCH_THREADS` change the load).

#[path = "support/server.rs"]
mod support;

use std::process::Command;

use support::Server;

const CONFIG: &str = "[worker]\nslots = 0\n";

/// `wrk.thread`-local counters, summed in `done` (which runs once, in wrk's main thread).
const SCRIPT: &str = r#"
local threads = {}
local prefix = os.getenv("WRK_BENCH_PREFIX") or "run"

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  counter = 0
  bad = 0
end

function request()
  counter = counter + 1
  local id = prefix .. "-t" .. tid .. "-" .. counter
  local body = '{"id":"' .. id .. '","repo":"https://git.example.invalid/team/fw-'
    .. (counter % 8) .. '.git","branch":"main","environment":"xtensa-sim"}'
  return wrk.format("POST", "/api/queues",
    {["Content-Type"] = "application/json", ["Host"] = "127.0.0.1"}, body)
end

function response(status, headers, body)
  if status ~= 201 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local refused = 0
  for _, t in ipairs(threads) do refused = refused + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d not201=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, refused,
    e.connect + e.read + e.write + e.timeout))
end
"#;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().map_or(default, |v| {
        v.parse().ok().unwrap_or_else(|| panic!("{name}: {v:?}"))
    })
}

struct Run {
    commits: Commits,
    /// Share of the CPU time stolen by the hypervisor during the run, in percent.
    steal: f64,
    rate: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    requests: u64,
}

fn main() {
    let runs: usize = env_or("WRK_BENCH_RUNS", 3);
    let seconds: u32 = env_or("WRK_BENCH_SECONDS", 10);
    let connections: u32 = env_or("WRK_BENCH_CONNECTIONS", 64);
    let threads: u32 = env_or("WRK_BENCH_THREADS", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("enqueue.lua");
    std::fs::write(&script, SCRIPT).expect("script");
    testarena::serve::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "wrk bench: {} cores, wrk -t{threads} -c{connections}, {runs} runs of {seconds} s, \
         server log level {}; load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("BENCH_SERVER_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        load_average(),
    );
    println!(
        "{:>4} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} | {:>7} {:>10} {:>10} {:>7} {:>6}",
        "run",
        "requests",
        "req/s",
        "p50",
        "p90",
        "p99",
        "max",
        "commits",
        "commit p50",
        "commit p99",
        ">=12.8",
        "steal"
    );
    let mut results = Vec::new();
    for run in 1..=runs {
        let server = rt.block_on(Server::start(CONFIG));
        let wrk = |prefix: String, seconds: u32| {
            wrk(&server, &script, &prefix, threads, connections, seconds)
        };
        wrk(format!("warm{run}"), 2);
        let before = (rt.block_on(commit_buckets(&server)), cpu_times());
        let mut r = wrk(format!("run{run}"), seconds);
        let after = (rt.block_on(commit_buckets(&server)), cpu_times());
        r.commits = Commits::between(&before.0, &after.0);
        r.steal = 100.0 * (after.1.0 - before.1.0) as f64 / (after.1.1 - before.1.1).max(1) as f64;
        let c = &r.commits;
        println!(
            "{run:>4} {:>9} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2} | {:>7} {:>10} {:>10} {:>7} {:>5.1}%",
            r.requests,
            r.rate,
            r.p50,
            r.p90,
            r.p99,
            r.max,
            c.count,
            c.quantile_ms(0.5),
            c.quantile_ms(0.99),
            c.stalled,
            r.steal
        );
        results.push(r);
        rt.block_on(server.stop());
    }
    let median = |f: fn(&Run) -> f64| support::median(results.iter().map(f).collect());
    let (rate, p99) = (median(|r| r.rate), median(|r| r.p99));
    println!(
        "median of {runs}: {rate:.0} enqueues/s, p50 {:.2} ms, p99 {p99:.2} ms (latencies in ms)",
        median(|r| r.p50)
    );
    let met = rate >= 20_000.0 && p99 <= 5.0;
    println!(
        "goal >= 20000 enqueues/s with p99 <= 5 ms: {}",
        if met { "met" } else { "missed" }
    );
    println!("load average at the end: {}", load_average());
    println!(
        "(latencies in ms; commits: the store's durable commits during the run, their times as \
         the histogram's bucket bounds in ms, >=12.8: commits that took 12.8 ms or more; steal: \
         CPU time the hypervisor took)"
    );
}

/// `testarena_store_commit_seconds` as scraped: (upper bound in seconds, cumulative count).
async fn commit_buckets(server: &Server) -> Vec<(f64, u64)> {
    // A connection of its own: the one the server's start was checked with may have been
    // closed while idle.
    let client = testarena::http_client()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics body");
    let buckets: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("testarena_store_commit_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, n.trim().parse().ok()?))
        })
        .collect();
    assert!(
        !buckets.is_empty(),
        "no commit histogram in /metrics:\n{text}"
    );
    buckets
}

/// The store's commits during a run, from two scrapes of the histogram.
#[derive(Default)]
struct Commits {
    count: u64,
    /// (upper bound in seconds, commits in this bucket or below)
    buckets: Vec<(f64, u64)>,
    /// Commits that took 12.8 ms or more.
    stalled: u64,
}

impl Commits {
    fn between(before: &[(f64, u64)], after: &[(f64, u64)]) -> Commits {
        let buckets: Vec<(f64, u64)> = after
            .iter()
            .zip(before)
            .map(|(a, b)| (a.0, a.1 - b.1))
            .collect();
        let count = buckets.last().map_or(0, |b| b.1);
        let under = buckets
            .iter()
            .rev()
            .find(|(le, _)| *le < 0.0128)
            .map_or(0, |b| b.1);
        Commits {
            count,
            stalled: count - under,
            buckets,
        }
    }

    /// The bucket bound (ms) below which fraction `q` of the commits took.
    fn quantile_ms(&self, q: f64) -> String {
        let want = (self.count as f64 * q).ceil() as u64;
        match self.buckets.iter().find(|(_, n)| *n >= want.max(1)) {
            Some((le, _)) if le.is_finite() => format!("<={:.1}", le * 1000.0),
            _ => "-".into(),
        }
    }
}

/// (steal, total) CPU time of the machine so far, in clock ticks, from `/proc/stat`.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal ...
    let steal = fields.get(7).copied().unwrap_or(0);
    (steal, fields.iter().take(8).sum())
}

fn wrk(
    server: &Server,
    script: &std::path::Path,
    prefix: &str,
    threads: u32,
    connections: u32,
    seconds: u32,
) -> Run {
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(server.url("/"))
        .env("WRK_BENCH_PREFIX", prefix)
        .output()
        .expect("wrk runs (is it installed?)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line from the script: {text}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    assert_eq!(field("not201"), 0, "every enqueue is created: {line}");
    assert_eq!(field("socket_errors"), 0, "no socket error: {line}");
    let ms = |name: &str| field(name) as f64 / 1000.0;
    Run {
        commits: Commits::default(),
        steal: 0.0,
        rate: field("requests") as f64 / (field("duration_us") as f64 / 1e6),
        p50: ms("p50_us"),
        p90: ms("p90_us"),
        p99: ms("p99_us"),
        max: ms("max_us"),
        requests: field("requests"),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
