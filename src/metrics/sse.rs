//! Open SSE streams: counted in `testarena_sse_clients{stream}` while they live, and held to
//! `[api] max_sse_clients` and `max_sse_per_queue` — the counts the gauge shows are the ones the
//! limits apply to.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::{Inner, Metrics, StreamLabel};

#[derive(Default)]
pub(super) struct SseOpen {
    pub(super) total: usize,
    pub(super) per_queue: HashMap<String, usize>,
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

impl Metrics {
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

    pub(super) fn sse_open(&self) -> std::sync::MutexGuard<'_, SseOpen> {
        lock(&self.inner)
    }
}

fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, SseOpen> {
    // Held for a few additions, never across `.await`; the counts stay usable after a panic.
    inner
        .sse_open
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let mut open = lock(&self.inner);
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
    use crate::metrics::Format;

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
        let text = m.render(Format::Classic, &crate::metrics::Load::default());
        assert!(text.contains("testarena_sse_clients{stream=\"events\"} 0"));
    }
}
