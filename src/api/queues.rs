//! `/api/queues`: enqueue, list, inspect, abort, delete.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::json::ApiJson;
use super::validate::{self, EnqueueBody, parse_id};
use crate::model::{ABORTED_WAITING, Queue, QueueId, Status, Task};
use crate::store::{Enqueued, Feed, QueueView, RerunOnly};
use crate::wire::{QueuePage, QueueRecord};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// A queue as the API shows it; `tasks` only when given.
pub fn queue_record(state: &AppState, q: &Queue, tasks: Option<&[Task]>) -> QueueRecord {
    let waiting_reason = match q.status {
        Status::Waiting => Some(state.worker.waiting_reason(q, &state.config())),
        // Claimed, but its executor has not given it a board yet.
        Status::Running => state.worker.noted(&q.id),
        _ => None,
    };
    QueueRecord::new(q, tasks, waiting_reason)
}

fn view_record(state: &AppState, view: &QueueView) -> QueueRecord {
    queue_record(state, &view.queue, Some(&view.tasks))
}

pub async fn enqueue(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<Response, ApiError> {
    let (id, request) = validate::enqueue(&body, &state.config())?;
    let (status, view) = match state.store.enqueue(id, request).await? {
        Enqueued::Created(v) => {
            state.metrics.enqueued(crate::metrics::Source::Api);
            (StatusCode::CREATED, v)
        }
        Enqueued::Existing(v) => (StatusCode::OK, v),
    };
    let location = format!("/api/queues/{}", view.queue.id);
    let mut response = (status, Json(view_record(&state, &view))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Json<QueuePage>, ApiError> {
    let mut status = None;
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = None;
    for (key, value) in &params {
        match key.as_str() {
            "status" if !value.is_empty() => {
                status = Some(value.parse::<Status>().map_err(|e| {
                    ApiError::bad_request("invalid_query", e.to_string(), Some("status"))
                })?)
            }
            "status" => {}
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("limit {value:?}: use a whole number from 1 to {MAX_LIMIT}"),
                            Some("limit"),
                        )
                    })?
            }
            "cursor" => {
                cursor = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("cursor {value:?}: pass back the next_cursor of the previous page"),
                        Some("cursor"),
                    )
                })?)
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter {other:?}: use status, limit or cursor"),
                    Some(other),
                ));
            }
        }
    }
    let page = state.store.list(status, limit, cursor).await?;
    Ok(Json(QueuePage {
        items: page
            .items
            .iter()
            .map(|q| queue_record(&state, q, None))
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<QueueRecord>, ApiError> {
    let id = parse_id(&raw)?;
    let view = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("queue {id}")))?;
    Ok(Json(view_record(&state, &view)))
}

pub async fn abort(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<QueueRecord>, ApiError> {
    let id = parse_id(&raw)?;
    stop(&state, &id, ABORTED_WAITING, "aborted").await?;
    let view = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("queue {id}")))?;
    Ok(Json(view_record(&state, &view)))
}

/// Aborts a waiting queue at once (its error `waiting_why`); stops a running one (its error
/// `running_why`) and waits until its processes are gone and it is recorded `aborted` (bounded
/// by the kill grace period plus a margin).
pub(super) async fn stop(
    state: &AppState,
    id: &QueueId,
    waiting_why: &str,
    running_why: &str,
) -> Result<(), ApiError> {
    let mut changes = state.store.follow();
    // A waiting queue ends here, its report written before its end is committed.
    let q = crate::worker::abort_waiting(&state.worker_deps(), id, waiting_why).await?;
    if q.status != Status::Running {
        return Ok(());
    }
    state.worker.abort(id, running_why);
    let limit = state.config().worker.kill_grace + Duration::from_secs(5);
    let finished = tokio::time::timeout(limit, async {
        loop {
            match changes.next_of(id).await {
                Some(Feed::Change(c)) => {
                    if c.to.is_none_or(|s| s.is_terminal() || s == Status::Waiting) {
                        return;
                    }
                }
                // Changes were missed: the store has the status now.
                Some(Feed::Reset { .. }) => {
                    if let Ok(Some(v)) = state.store.get(id).await
                        && v.queue.status != Status::Running
                    {
                        return;
                    }
                }
                None => return,
            }
        }
    })
    .await;
    state.worker.forget(id);
    if finished.is_err() {
        return Err(ApiError::new(
            StatusCode::ACCEPTED,
            "abort_pending",
            format!("queue {id} is still stopping; check its status again shortly"),
        ));
    }
    Ok(())
}

/// `POST /api/queues/{id}/rerun`, optional body `{"only": "failed"}` (or `"all"`, the default).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerunBody {
    only: Option<String>,
}

/// A new queue that re-runs finished queue `id` at the commit it resolved: 201 with it.
pub async fn rerun(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    body: Option<ApiJson<RerunBody>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let only = match body.and_then(|ApiJson(b)| b.only).as_deref() {
        None | Some("all") => RerunOnly::All,
        Some("failed") => RerunOnly::Failed,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("only {other:?}: use \"failed\" (the tasks that did not pass) or \"all\""),
                Some("only"),
            ));
        }
    };
    let view = state.store.rerun(&id, only).await?;
    state.metrics.enqueued(crate::metrics::Source::Api);
    let location = format!("/api/queues/{}", view.queue.id);
    let mut response = (StatusCode::CREATED, Json(view_record(&state, &view))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

pub async fn delete(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&raw)?;
    match stop(&state, &id, ABORTED_WAITING, "aborted").await {
        Ok(()) => {}
        // A finished queue cannot be aborted, but it can be deleted.
        Err(e) if e.status == StatusCode::CONFLICT => {}
        Err(e) => return Err(e),
    }
    state.store.delete(&id).await?;
    let dir = crate::layout::Layout::new(&state.config().root)
        .queue(&id)
        .path()
        .to_owned();
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
    .await;
    if let Ok(Err(e)) | Err(e) = removed.map_err(std::io::Error::other) {
        return Err(ApiError::internal(format!(
            "queue {id} deleted, its files not: {e}"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
