//! `GET /api/events`: queue and task state changes as server-sent events, resumable; and the SSE
//! conventions every stream of the API shares (headers, keep-alive, retry, resume point).
//!
//! A client resumes with `Last-Event-ID` (or `?from=SEQ`): the missed changes come from the
//! store's event table, then live ones from the change feed. When the table no longer reaches back
//! that far, the client gets a `reset` event and reloads. A stream that falls behind the feed
//! goes back to the table, so a slow client never misses a change.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use crate::model::Change;
use crate::store::{Store, StoreError};

/// How often an idle stream sends a comment, so that proxies keep it open.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The reconnection delay announced on the first event.
pub(crate) const RETRY: Duration = Duration::from_secs(2);

/// An SSE response: keep-alive comments, no buffering by proxies, `retry` on the first event.
pub(crate) fn sse_response<S>(events: S) -> Response
where
    S: Stream<Item = Event> + Send + 'static,
{
    use futures_util::StreamExt;
    let mut first = true;
    let events = events.map(move |event| {
        let event = if std::mem::take(&mut first) {
            event.retry(RETRY)
        } else {
            event
        };
        Ok::<_, Infallible>(event)
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Where a stream resumes: the `Last-Event-ID` header (what a reconnecting browser sends), else
/// `?from=`; `None` when neither is given. Any other query parameter is refused.
pub(crate) fn resume_point(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    what: &str,
) -> Result<Option<u64>, ApiError> {
    if let Some(other) = params.keys().find(|k| k.as_str() != "from") {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown query parameter {other:?}: only from={what} is accepted"),
            Some(other),
        ));
    }
    if let Some(raw) = headers.get("last-event-id") {
        let text = raw.to_str().unwrap_or("").trim();
        if !text.is_empty() {
            return text.parse().map(Some).map_err(|_| {
                ApiError::bad_request(
                    "invalid_last_event_id",
                    format!("Last-Event-ID {text:?}: send the id of an event received, a {what}"),
                    Some("Last-Event-ID"),
                )
            });
        }
    }
    match params.get("from") {
        None => Ok(None),
        Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("from {raw:?}: use a whole number, a {what}"),
                Some("from"),
            )
        }),
    }
}

/// `GET /api/events[?from=SEQ]`: `change` events (id = change sequence), `reset` when the client
/// must reload.
pub async fn stream(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let from = resume_point(&headers, &params, "change sequence number")?;
    // Subscribe before reading the table or the latest seq: nothing falls between the two.
    let rx = state.store.subscribe();
    let feed = match from {
        Some(seq) => Feed::new(&state, rx, seq, true),
        None => Feed::new(&state, rx, state.store.latest_seq(), false),
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        Some((event, feed))
    });
    Ok(sse_response(events))
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
        }
    }

    /// The next event, `None` when the stream ends (shutdown, store closed).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            if let Some(change) = self.backlog.pop_front() {
                if change.seq > self.last {
                    self.last = change.seq;
                    return Some(change_event(&change));
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
                    Ok(change) if change.seq == self.last + 1 => {
                        self.last = change.seq;
                        return Some(change_event(&change));
                    }
                    // A change between is missing: the table has it.
                    Ok(_) | Err(RecvError::Lagged(_)) => self.from_table = true,
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Fills the backlog from the table; a `reset` event when the table does not reach back to
    /// `last` (or `last` is ahead of the store, e.g. an id from before the data was reset).
    async fn read_table(&mut self) -> Result<Option<Event>, StoreError> {
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
        Ok(Some(
            Event::default()
                .event("reset")
                .id(seq.to_string())
                .data(data.to_string()),
        ))
    }
}

fn change_event(change: &Change) -> Event {
    let data = serde_json::to_string(change).unwrap_or_default();
    Event::default()
        .event("change")
        .id(change.seq.to_string())
        .data(data)
}
