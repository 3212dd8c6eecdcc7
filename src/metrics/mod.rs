//! Prometheus metrics (`GET /metrics`): what an operator graphs and alerts on, in the classic
//! text format or OpenMetrics, as the scraper asks (`format`).
//!
//! Counters and histograms are updated where things happen; the gauges of queues per status and
//! of busy slots are read when scraped, so they are never stale. Each server has its own
//! registry (no global state), so tests can run servers side by side.
//!
//! - `testarena_queues_enqueued_total{source}`  new queues, by `api` or `gitea`
//! - `testarena_queues_finished_total{environment,status}`  queues that ended
//! - `testarena_queue_duration_seconds{environment}`  start to end of the queues that ran
//! - `testarena_queue_wait_seconds{environment}`  from enqueue to start, observed at each claim
//! - `testarena_tests_total{status}`  test results recorded
//! - `testarena_queues{status}`  queues stored, per status (at scrape time)
//! - `testarena_slots`, `testarena_slots_busy`  the worker's capacity and use (at scrape time)
//! - `testarena_boards_busy`  boards running now, across every queue; `testarena_boards_max`
//!   the cap on them (`[worker] max_boards`, 0 = none) (at scrape time)
//! - `testarena_sse_clients{stream}`  open SSE streams (`events`, `log`)
//! - `testarena_sse_dropped_total{stream}`  SSE streams the server closed because the client
//!   stopped reading
//! - `testarena_retention_removed_total{kind}`  what retention removed: finished queues
//!   (`queue`), unused git mirrors (`mirror`), checkouts of ended queues (`checkout`)
//! - `testarena_retention_freed_bytes_total`  disk space those removals freed
//! - `testarena_http_requests_total{route,method,status}`  requests answered, by the route's
//!   template (`/api/queues/{id}`, `other` when none matched): the label values stay few
//! - `testarena_store_commits_total`, `testarena_store_writes_total`  the store writer's durable
//!   commits and the writes they held (set at scrape time): writes per commit is how much the
//!   writer folds
//! - `testarena_store_commit_seconds`  each durable commit's time (its pages written and
//!   synced): a slow or stalling disk shows here first, as every answered write waits for one
//! - `testarena_build_info{version}`  always 1
//!
//! The SSE guards (`sse`) also enforce `[api] max_sse_clients` and `max_sse_per_queue`.

mod format;
mod sse;

use std::sync::{Arc, Mutex};

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use format::Format;
pub use sse::{SseClient, SseFull, SseLimits};

use crate::model::{Queue, Status, TestStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvStatusLabels {
    environment: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvLabel {
    environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabel {
    stream: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// What retention removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Queue,
    Mirror,
    Checkout,
}

impl Removed {
    pub const ALL: [Removed; 3] = [Removed::Queue, Removed::Mirror, Removed::Checkout];

    pub fn as_str(self) -> &'static str {
        match self {
            Removed::Queue => "queue",
            Removed::Mirror => "mirror",
            Removed::Checkout => "checkout",
        }
    }
}

/// Where a new queue came from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Api,
    Gitea,
}

/// What the scrape-time gauges show: read from the store and the worker when scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load<'a> {
    /// Queues stored, per status.
    pub counts: &'a [(Status, u64)],
    /// `[worker] slots`, and the queues running now.
    pub slots: usize,
    pub busy: usize,
    /// Boards running now, and `[worker] max_boards` (0: no limit).
    pub boards: usize,
    pub max_boards: usize,
}

/// One server's metrics: cheap to clone, safe to share.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    enqueued: Family<SourceLabel, Counter>,
    finished: Family<EnvStatusLabels, Counter>,
    duration: Family<EnvLabel, Histogram>,
    wait: Family<EnvLabel, Histogram>,
    tests: Family<StatusLabel, Counter>,
    queues: Family<StatusLabel, Gauge>,
    slots: Gauge,
    slots_busy: Gauge,
    boards_busy: Gauge,
    boards_max: Gauge,
    sse_clients: Family<StreamLabel, Gauge>,
    sse_dropped: Family<StreamLabel, Counter>,
    retention_removed: Family<KindLabel, Counter>,
    retention_freed: Counter,
    requests: Family<RequestLabels, Counter>,
    store_commits: Counter,
    store_writes: Counter,
    store_commit_time: Histogram,
    /// Open SSE streams, in all and per queue log: what the limits are checked against.
    sse_open: Mutex<sse::SseOpen>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("testarena");
        let enqueued = Family::<SourceLabel, Counter>::default();
        registry.register(
            "queues_enqueued",
            "New queues, by where they came from",
            enqueued.clone(),
        );
        let finished = Family::<EnvStatusLabels, Counter>::default();
        registry.register(
            "queues_finished",
            "Queues that ended, by environment and final status",
            finished.clone(),
        );
        // 1 s to about 4.5 h.
        let duration = Family::<EnvLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 15))
        });
        registry.register(
            "queue_duration_seconds",
            "From the start of a queue's run to its end",
            duration.clone(),
        );
        // 0.1 s to about 3.6 h.
        let wait = Family::<EnvLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.1, 2.0, 18))
        });
        registry.register(
            "queue_wait_seconds",
            "From a queue's enqueue to the start of its run",
            wait.clone(),
        );
        let tests = Family::<StatusLabel, Counter>::default();
        registry.register("tests", "Test results recorded, by status", tests.clone());
        let queues = Family::<StatusLabel, Gauge>::default();
        registry.register("queues", "Queues stored, by status", queues.clone());
        let slots = Gauge::default();
        registry.register("slots", "Queues that may run at once", slots.clone());
        let slots_busy = Gauge::default();
        registry.register("slots_busy", "Queues running now", slots_busy.clone());
        let boards_busy = Gauge::default();
        registry.register(
            "boards_busy",
            "Boards running now, across every queue",
            boards_busy.clone(),
        );
        let boards_max = Gauge::default();
        registry.register(
            "boards_max",
            "Boards that may run at once across every queue ([worker] max_boards; 0: no limit)",
            boards_max.clone(),
        );
        let sse_clients = Family::<StreamLabel, Gauge>::default();
        registry.register(
            "sse_clients",
            "Open server-sent event streams",
            sse_clients.clone(),
        );
        let sse_dropped = Family::<StreamLabel, Counter>::default();
        registry.register(
            "sse_dropped",
            "Server-sent event streams closed by the server because the client stopped reading",
            sse_dropped.clone(),
        );
        let retention_removed = Family::<KindLabel, Counter>::default();
        registry.register(
            "retention_removed",
            "What retention removed: finished queues, unused git mirrors, checkouts of ended queues",
            retention_removed.clone(),
        );
        // Every kind shows, at 0 until something is removed.
        for kind in Removed::ALL {
            drop(retention_removed.get_or_create(&KindLabel {
                kind: kind.as_str(),
            }));
        }
        let retention_freed = Counter::default();
        registry.register(
            "retention_freed_bytes",
            "Disk space freed by retention's removals",
            retention_freed.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let store_commits = Counter::default();
        registry.register(
            "store_commits",
            "Durable commits of the store's writer",
            store_commits.clone(),
        );
        let store_writes = Counter::default();
        registry.register(
            "store_writes",
            "Writes the store's commits held (each commit folds every write that was waiting)",
            store_writes.clone(),
        );
        // 100 µs to about 3.3 s.
        let store_commit_time = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "store_commit_seconds",
            "Time of each durable commit of the store's writer (its pages written and synced)",
            store_commit_time.clone(),
        );
        registry.register(
            "build",
            "The running server's version",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                enqueued,
                finished,
                duration,
                wait,
                tests,
                queues,
                slots,
                slots_busy,
                boards_busy,
                boards_max,
                sse_clients,
                sse_dropped,
                retention_removed,
                retention_freed,
                requests,
                store_commits,
                store_writes,
                store_commit_time,
                sse_open: Mutex::default(),
            }),
        }
    }

    pub fn enqueued(&self, source: Source) {
        let source = match source {
            Source::Api => "api",
            Source::Gitea => "gitea",
        };
        self.inner
            .enqueued
            .get_or_create(&SourceLabel { source })
            .inc();
    }

    /// A queue reached its final status.
    pub fn finished(&self, queue: &Queue) {
        let environment = queue.request.environment.clone();
        self.inner
            .finished
            .get_or_create(&EnvStatusLabels {
                environment: environment.clone(),
                status: queue.status.as_str(),
            })
            .inc();
        if let (Some(start), Some(end)) = (queue.started_at, queue.finished_at) {
            let seconds = end.saturating_sub(start) as f64 / 1000.0;
            self.inner
                .duration
                .get_or_create(&EnvLabel { environment })
                .observe(seconds);
        }
    }

    /// Retention removed `n` of `kind`.
    pub fn removed(&self, kind: Removed, n: u64) {
        self.inner
            .retention_removed
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc_by(n);
    }

    /// Retention's removals freed `bytes` of disk space.
    pub fn freed(&self, bytes: u64) {
        self.inner.retention_freed.inc_by(bytes);
    }

    pub fn test(&self, status: TestStatus) {
        self.inner
            .tests
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .inc();
    }

    /// A queue was claimed: how long it waited, from its enqueue to the start of its run.
    pub fn claimed(&self, queue: &Queue) {
        if let Some(start) = queue.started_at {
            let seconds = start.saturating_sub(queue.created_at) as f64 / 1000.0;
            self.inner
                .wait
                .get_or_create(&EnvLabel {
                    environment: queue.request.environment.clone(),
                })
                .observe(seconds);
        }
    }

    /// A request was answered. `route` is the route's template (`None` when no route matched),
    /// never the path itself; methods other than the standard ones count as `other`.
    pub fn request(&self, route: Option<&str>, method: &Method, status: u16) {
        let method = match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                route: route.unwrap_or("other").to_owned(),
                method,
                status,
            })
            .inc();
    }

    /// The store's commits and the writes they held so far (`Store::commit_stats`), read at
    /// scrape time.
    pub fn store_commits(&self, (commits, writes): (u64, u64)) {
        use std::sync::atomic::Ordering;
        // The counters mirror the store's own: set, not added to.
        let inner = &self.inner;
        inner
            .store_commits
            .inner()
            .store(commits, Ordering::Relaxed);
        inner.store_writes.inner().store(writes, Ordering::Relaxed);
    }

    /// The histogram the store observes each commit's time in (`Store::time_commits`).
    pub fn store_commit_time(&self) -> Histogram {
        self.inner.store_commit_time.clone()
    }

    /// The exposition in `format`, with the scrape-time gauges set from `load`.
    pub fn render(&self, format: Format, load: &Load<'_>) -> String {
        let Load {
            counts,
            slots,
            busy,
            boards,
            max_boards,
        } = *load;
        for (status, n) in counts {
            self.inner
                .queues
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(*n as i64);
        }
        self.inner.slots.set(slots as i64);
        self.inner.slots_busy.set(busy as i64);
        self.inner.boards_busy.set(boards as i64);
        self.inner.boards_max.set(max_boards as i64);
        let mut out = String::new();
        let registry = &self.inner.registry;
        match format {
            Format::Classic => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        }
        .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests;
