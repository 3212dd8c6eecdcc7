//! Prometheus metrics (`GET /metrics`, OpenMetrics text): what an operator graphs and alerts on.
//!
//! Counters and histograms are updated where things happen; the gauges of queues per status and
//! of busy slots are read when scraped, so they are never stale. Each server has its own
//! registry (no global state), so tests can run servers side by side.
//!
//! - `testarena_queues_enqueued_total{source}`  new queues, by `api` or `gitea`
//! - `testarena_queues_finished_total{environment,status}`  queues that ended
//! - `testarena_queue_duration_seconds{environment}`  start to end of the queues that ran
//! - `testarena_tests_total{status}`  test results recorded
//! - `testarena_queues{status}`  queues stored, per status (at scrape time)
//! - `testarena_slots`, `testarena_slots_busy`  the worker's capacity and use (at scrape time)
//! - `testarena_sse_clients{stream}`  open SSE streams (`events`, `log`)
//! - `testarena_sse_dropped_total{stream}`  SSE streams the server closed because the client
//!   stopped reading
//! - `testarena_retention_removed_total{kind}`  what retention removed: finished queues
//!   (`queue`), unused git mirrors (`mirror`), checkouts of ended queues (`checkout`)
//! - `testarena_retention_freed_bytes_total`  disk space those removals freed
//!
//! The SSE guards also enforce `[api] max_sse_clients` and `max_sse_per_queue`: the counts the
//! gauge shows are the ones the limits apply to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    tests: Family<StatusLabel, Counter>,
    queues: Family<StatusLabel, Gauge>,
    slots: Gauge,
    slots_busy: Gauge,
    sse_clients: Family<StreamLabel, Gauge>,
    sse_dropped: Family<StreamLabel, Counter>,
    retention_removed: Family<KindLabel, Counter>,
    retention_freed: Counter,
    /// Open SSE streams, in all and per queue log: what the limits are checked against.
    sse_open: Mutex<SseOpen>,
}

#[derive(Default)]
struct SseOpen {
    total: usize,
    per_queue: HashMap<String, usize>,
}

/// How many SSE streams may be open (`[api] max_sse_clients`, `max_sse_per_queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    /// Streams of every kind together.
    pub total: usize,
    /// Log streams of one queue.
    pub per_queue: usize,
}

/// Why an SSE stream was refused: which limit it would cross.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseFull {
    #[error(
        "the server already has {0} open event streams, its limit ([api] max_sse_clients); retry later"
    )]
    Total(usize),
    #[error(
        "queue {queue}'s log already has {limit} open streams, the limit per queue ([api] max_sse_per_queue); retry later"
    )]
    Queue { queue: String, limit: usize },
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
        let tests = Family::<StatusLabel, Counter>::default();
        registry.register("tests", "Test results recorded, by status", tests.clone());
        let queues = Family::<StatusLabel, Gauge>::default();
        registry.register("queues", "Queues stored, by status", queues.clone());
        let slots = Gauge::default();
        registry.register("slots", "Queues that may run at once", slots.clone());
        let slots_busy = Gauge::default();
        registry.register("slots_busy", "Queues running now", slots_busy.clone());
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
        Metrics {
            inner: Arc::new(Inner {
                registry,
                enqueued,
                finished,
                duration,
                tests,
                queues,
                slots,
                slots_busy,
                sse_clients,
                sse_dropped,
                retention_removed,
                retention_freed,
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

    /// Counts an open SSE stream until the returned guard is dropped; `queue` is the queue whose
    /// log it follows. Refused when it would cross a limit.
    pub fn sse_client(
        &self,
        stream: &'static str,
        queue: Option<&str>,
        limits: SseLimits,
    ) -> Result<SseClient, SseFull> {
        {
            let mut open = self.sse_open();
            if open.total >= limits.total {
                return Err(SseFull::Total(limits.total));
            }
            if let Some(queue) = queue {
                let n = open.per_queue.entry(queue.to_owned()).or_default();
                if *n >= limits.per_queue {
                    let limit = limits.per_queue;
                    if *n == 0 {
                        open.per_queue.remove(queue);
                    }
                    return Err(SseFull::Queue {
                        queue: queue.to_owned(),
                        limit,
                    });
                }
                *n += 1;
            }
            open.total += 1;
        }
        let gauge = self
            .inner
            .sse_clients
            .get_or_create(&StreamLabel { stream })
            .clone();
        gauge.inc();
        let dropped = self
            .inner
            .sse_dropped
            .get_or_create(&StreamLabel { stream })
            .clone();
        Ok(SseClient {
            inner: self.inner.clone(),
            queue: queue.map(str::to_owned),
            gauge,
            dropped,
        })
    }

    fn sse_open(&self) -> std::sync::MutexGuard<'_, SseOpen> {
        // Held for a few additions, never across `.await`; the counts stay usable after a panic.
        self.inner
            .sse_open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The text exposition, with the scrape-time gauges set from `counts` and the slots.
    pub fn render(&self, counts: &[(Status, u64)], slots: usize, busy: usize) -> String {
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
        let mut out = String::new();
        encode(&mut out, &self.inner.registry).expect("writing to a String cannot fail");
        out
    }
}

/// An open SSE stream, counted while it lives.
pub struct SseClient {
    inner: Arc<Inner>,
    queue: Option<String>,
    gauge: Gauge,
    dropped: Counter,
}

impl SseClient {
    /// Counts this stream as closed by the server because the client stopped reading (the
    /// counter outlives the guard).
    pub fn stall_counter(&self) -> Counter {
        self.dropped.clone()
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        self.gauge.dec();
        let mut open = self
            .inner
            .sse_open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(queue) = &self.queue
            && let Some(n) = open.per_queue.get_mut(queue)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_queue.remove(queue);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{QueueId, QueueRequest};

    #[test]
    fn the_exposition_has_every_family_and_follows_what_happened() {
        let m = Metrics::new();
        m.enqueued(Source::Api);
        m.enqueued(Source::Gitea);
        m.enqueued(Source::Gitea);
        let q = Queue {
            id: QueueId::parse("q").unwrap(),
            status: Status::Passed,
            request: QueueRequest {
                repo: "r".into(),
                branch: None,
                commit: None,
                environment: "esp32".into(),
                scenarios: vec![],
                priority: 0,
            },
            seq: 1,
            created_at: 0,
            started_at: Some(1_000),
            finished_at: Some(4_000),
            attempt: 1,
            error: None,
            origin: crate::model::Origin::Api,
            resolved_commit: None,
            rerun_of: None,
            reruns: Vec::new(),
        };
        m.finished(&q);
        m.test(TestStatus::Failed);
        let client = m.sse_client("log", Some("q"), LOOSE).unwrap();
        client.stall_counter().inc();
        m.removed(Removed::Queue, 2);
        m.freed(4096);
        let text = m.render(&[(Status::Waiting, 3), (Status::Passed, 1)], 2, 1);
        for line in [
            "testarena_queues_enqueued_total{source=\"gitea\"} 2",
            "testarena_queues_enqueued_total{source=\"api\"} 1",
            "testarena_queues_finished_total{environment=\"esp32\",status=\"passed\"} 1",
            "testarena_queue_duration_seconds_sum{environment=\"esp32\"} 3.0",
            "testarena_queue_duration_seconds_count{environment=\"esp32\"} 1",
            "testarena_tests_total{status=\"failed\"} 1",
            "testarena_queues{status=\"waiting\"} 3",
            "testarena_slots 2",
            "testarena_slots_busy 1",
            "testarena_sse_clients{stream=\"log\"} 1",
            "testarena_sse_dropped_total{stream=\"log\"} 1",
            "testarena_retention_removed_total{kind=\"queue\"} 2",
            "testarena_retention_removed_total{kind=\"mirror\"} 0",
            "testarena_retention_freed_bytes_total 4096",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
        drop(client);
        let text = m.render(&[], 2, 0);
        assert!(
            text.contains("testarena_sse_clients{stream=\"log\"} 0"),
            "{text}"
        );
    }

    const LOOSE: SseLimits = SseLimits {
        total: 1000,
        per_queue: 1000,
    };

    #[test]
    fn sse_limits_count_every_stream_and_each_queue_log() {
        let m = Metrics::new();
        let limits = SseLimits {
            total: 3,
            per_queue: 2,
        };
        let a1 = m.sse_client("log", Some("a"), limits).unwrap();
        let a2 = m.sse_client("log", Some("a"), limits).unwrap();
        let full = m.sse_client("log", Some("a"), limits).err().unwrap();
        assert_eq!(
            full,
            SseFull::Queue {
                queue: "a".into(),
                limit: 2
            }
        );
        assert!(full.to_string().contains("max_sse_per_queue"), "{full}");
        let events = m.sse_client("events", None, limits).unwrap();
        let full = m.sse_client("log", Some("b"), limits).err().unwrap();
        assert_eq!(full, SseFull::Total(3));
        assert!(full.to_string().contains("max_sse_clients"), "{full}");
        drop(a1);
        let b = m.sse_client("log", Some("b"), limits).unwrap();
        assert!(m.sse_client("events", None, limits).is_err());
        drop((a2, b, events));
        assert_eq!(m.sse_open().total, 0);
        assert!(m.sse_open().per_queue.is_empty());
        let text = m.render(&[], 0, 0);
        assert!(text.contains("testarena_sse_clients{stream=\"events\"} 0"));
    }
}
