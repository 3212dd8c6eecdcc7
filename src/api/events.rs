//! `GET /api/events`: queue and task state changes as server-sent events, resumable.
//!
//! A client resumes with `Last-Event-ID` (or `?from=SEQ`): the missed changes come from the
//! store's event table, then live ones from the change feed (both through the store's
//! [`Follower`], so a slow client never misses a change). When the table no longer reaches back
//! that far, the client gets a `reset` event and reloads.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::sse::{admit, frame, resume_point, sse_response};
use crate::store::{Feed, Follower};
use crate::wire::{ChangeRecord, ResetRecord};

/// `GET /api/events[?from=SEQ]`: `change` events (id = change sequence), `reset` when the client
/// must reload.
pub async fn stream(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let from = resume_point(&headers, &params, "change sequence number")?;
    let config = state.config();
    let counted = match admit(&state, &config.api, "events", None) {
        Ok(counted) => counted,
        Err(refused) => return Ok(*refused),
    };
    let follower = match from {
        Some(seq) => state.store.follow_from(seq),
        None => state.store.follow(),
    };
    let client = Client {
        follower,
        shutdown: state.shutdown.clone(),
        first: true,
    };
    let frames = futures_util::stream::unfold(client, |mut client| async move {
        let frame = client.next_frame().await?;
        Some((frame, client))
    });
    Ok(sse_response(frames, counted, config.api.sse_send_timeout))
}

/// One client's position in the change feed.
struct Client {
    follower: Follower,
    shutdown: CancellationToken,
    /// No event sent yet: the next one carries `retry`.
    first: bool,
}

impl Client {
    /// The next event, `None` when the stream ends (shutdown, store closed).
    async fn next_frame(&mut self) -> Option<Bytes> {
        let feed = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return None,
            feed = self.follower.next() => feed?,
        };
        // Serializing plain data to JSON cannot fail.
        let (event, seq, data) = match feed {
            Feed::Change(c) => (
                "change",
                c.seq,
                serde_json::to_string(&ChangeRecord::new(&c)),
            ),
            Feed::Reset { seq } => ("reset", seq, serde_json::to_string(&ResetRecord::new(seq))),
        };
        let data = data.unwrap_or_default();
        Some(frame(
            event,
            Some(seq),
            &data,
            std::mem::take(&mut self.first),
        ))
    }
}
