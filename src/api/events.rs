//! `GET /api/events`: queue and task state changes as server-sent events, resumable.
//!
//! A client resumes with `Last-Event-ID` (or `?from=SEQ`): the missed changes come from the
//! store's event table, then live ones from the change feed. When the table no longer reaches back
//! that far, the client gets a `reset` event and reloads. A stream that falls behind the feed
//! goes back to the table, so a slow client never misses a change.

use std::collections::{HashMap, VecDeque};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::sse::{frame, resume_point, sse_response};
use crate::model::Change;
use crate::store::{Store, StoreError};

/// `GET /api/events[?from=SEQ]`: `change` events (id = change sequence), `reset` when the client
/// must reload.
pub async fn stream(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let from = resume_point(&headers, &params, "change sequence number")?;
    // Subscribe before reading the table or the latest seq: nothing falls between the two.
    let rx = state.store.subscribe();
    let feed = match from {
        Some(seq) => Feed::new(&state, rx, seq, true),
        None => Feed::new(&state, rx, state.store.latest_seq(), false),
    };
    let frames = futures_util::stream::unfold(feed, |mut feed| async move {
        let frame = feed.next_frame().await?;
        Some((frame, feed))
    });
    Ok(sse_response(frames, state.metrics.sse_client("events")))
}

/// One client's position in the change feed.
struct Feed {
    store: Store,
    rx: broadcast::Receiver<Change>,
    /// The last sequence the client has (or asked to start after).
    last: u64,
    /// Changes read from the table, not yet sent.
    backlog: VecDeque<Change>,
    /// Read the table before taking live changes.
    from_table: bool,
    shutdown: CancellationToken,
    /// No event sent yet: the next one carries `retry`.
    first: bool,
}

impl Feed {
    fn new(state: &AppState, rx: broadcast::Receiver<Change>, last: u64, from_table: bool) -> Feed {
        Feed {
            store: state.store.clone(),
            rx,
            last,
            backlog: VecDeque::new(),
            from_table,
            shutdown: state.shutdown.clone(),
            first: true,
        }
    }

    /// An event as a frame; the first one carries `retry`.
    fn emit(&mut self, event: &str, id: u64, data: &str) -> Bytes {
        frame(event, Some(id), data, std::mem::take(&mut self.first))
    }

    fn change(&mut self, change: &Change) -> Bytes {
        self.last = change.seq;
        // Serializing plain data to JSON cannot fail.
        let data = serde_json::to_string(change).unwrap_or_default();
        self.emit("change", change.seq, &data)
    }

    /// The next event, `None` when the stream ends (shutdown, store closed).
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            if let Some(change) = self.backlog.pop_front() {
                if change.seq > self.last {
                    return Some(self.change(&change));
                }
                continue;
            }
            if self.from_table {
                self.from_table = false;
                match self.read_table().await {
                    Ok(None) => continue,
                    Ok(Some(reset)) => return Some(reset),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the event table for an SSE client failed");
                        return None;
                    }
                }
            }
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                received = self.rx.recv() => match received {
                    Ok(change) if change.seq <= self.last => {}
                    Ok(change) if change.seq == self.last + 1 => return Some(self.change(&change)),
                    // A change between is missing: the table has it.
                    Ok(_) | Err(RecvError::Lagged(_)) => self.from_table = true,
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Fills the backlog from the table; a `reset` event when the table does not reach back to
    /// `last` (or `last` is ahead of the store, e.g. an id from before the data was reset).
    async fn read_table(&mut self) -> Result<Option<Bytes>, StoreError> {
        let latest = self.store.latest_seq();
        let after = self.store.events_after(self.last).await?;
        if after.complete && self.last <= latest {
            self.backlog = after.changes.into();
            return Ok(None);
        }
        let seq = after.changes.last().map_or(latest, |c| c.seq.max(latest));
        self.last = seq;
        let data = json!({
            "seq": seq,
            "message": "changes before this one are no longer kept: reload the state, then follow from here",
        });
        Ok(Some(self.emit("reset", seq, &data.to_string())))
    }
}
