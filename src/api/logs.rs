//! A queue's log over HTTP: `GET /api/queues/{id}/log` (the file as text: whole, `?tail=N`, or
//! byte ranges) and `GET /api/queues/{id}/log/stream` (server-sent events, resumable); a task's
//! own log the same way under `/api/queues/{id}/tasks/{task}/log[/stream]`.
//!
//! The stream replays the log from the asked-for offset, then follows the live writer; every
//! `log` event carries whole lines and its id is the byte offset after them. Once the queue (for
//! a task's log: the task, or its queue) is finished and everything is sent, an `end` event
//! carries the outcome, so a finished queue streams the same way as a live one.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeFile;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::sse::{admit, frame, resume_point, sse_response};
use super::validate::parse_id;
use crate::logs::{FollowError, FollowItem, LogFollower, LogOf};
use crate::model::{QueueId, Status, TaskId};
use crate::store::QueueView;
use crate::store::{Feed, Follower, Store};

/// The most lines `?tail=` returns.
const MAX_TAIL: usize = 100_000;
/// How much of the log a `?tail=` answer reads at a time.
const TAIL_CHUNK: usize = 64 * 1024;

/// `GET /api/queues/{id}/log[?tail=N]`: `text/plain`; `Range: bytes=` is honoured (206/416).
/// `?tail=N` finds where the last `N` lines start by reading the file backwards, then streams
/// from there: memory per request is a few chunks, whatever the log, its lines and `N`.
pub async fn text(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let target = Target::queue(&raw)?;
    serve_text(state, target, params, request).await
}

/// `GET /api/queues/{id}/tasks/{task}/log[?tail=N]`: a task's own log, as [`text`].
pub async fn task_text(
    State(state): State<AppState>,
    ApiPath((raw, task)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let target = Target::task(&raw, &task)?;
    serve_text(state, target, params, request).await
}

/// Whose log a request asks for: a queue's, or one of its tasks'.
struct Target {
    id: QueueId,
    task: Option<TaskId>,
}

impl Target {
    fn queue(raw: &str) -> Result<Target, ApiError> {
        Ok(Target {
            id: parse_id(raw)?,
            task: None,
        })
    }

    fn task(raw: &str, task: &str) -> Result<Target, ApiError> {
        let id = parse_id(raw)?;
        let task = TaskId::parse(task).map_err(|e| {
            ApiError::bad_request(
                "invalid_id",
                format!(
                    "task id {:?}: {e}",
                    task.chars().take(100).collect::<String>()
                ),
                Some("task"),
            )
        })?;
        Ok(Target {
            id,
            task: Some(task),
        })
    }

    fn log(&self) -> LogOf<'_> {
        match &self.task {
            None => LogOf::Queue(&self.id),
            Some(task) => LogOf::Task(&self.id, task),
        }
    }

    /// The queue as stored, and 404 when it (or the task) is not there.
    async fn find(&self, state: &AppState) -> Result<QueueView, ApiError> {
        let view = state
            .store
            .get(&self.id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("queue {}", self.id)))?;
        if let Some(task) = &self.task
            && !view.tasks.iter().any(|t| &t.id == task)
        {
            return Err(ApiError::not_found(format!(
                "task {task} of queue {}",
                self.id
            )));
        }
        Ok(view)
    }

    /// The status the stream's `end` reports: the task's, or the queue's.
    fn status(&self, view: &QueueView) -> Option<Status> {
        match &self.task {
            None => Some(view.queue.status),
            Some(task) => view.tasks.iter().find(|t| &t.id == task).map(|t| t.status),
        }
    }
}

async fn serve_text(
    state: AppState,
    target: Target,
    params: HashMap<String, String>,
    request: Request,
) -> Result<Response, ApiError> {
    let tail = tail_param(&params)?;
    target.find(&state).await?;
    if let Some(lines) = tail {
        let hub = state.logs.clone();
        let tail = tokio::task::spawn_blocking(move || hub.tail(target.log(), lines))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let Some(file) = tail.file.filter(|_| !tail.range.is_empty()) else {
            return Ok(plain_text(Body::empty()));
        };
        let len = tail.range.end - tail.range.start;
        let chunks = read_range(Arc::new(file), tail.range);
        let timeout = state.config().api.sse_send_timeout;
        let body = super::send::bounded(chunks, timeout, || {
            tracing::info!("closed a log tail answer whose client stopped reading");
        });
        let mut response = plain_text(Body::from_stream(body));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(response);
    }
    let path = state.logs.path(target.log());
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Ok(plain_text(Body::empty()));
    }
    let mut response = ServeFile::new_with_mime(&path, &mime_guess::mime::TEXT_PLAIN_UTF_8)
        .try_call(request)
        .await
        .map_err(ApiError::internal)?
        .map(Body::new);
    // The file grows while a queue runs: always revalidate.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The bytes `range` of `file`, [`TAIL_CHUNK`] at a time, each read on a blocking thread when
/// the one before is taken.
fn read_range(
    file: Arc<std::fs::File>,
    range: Range<u64>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::try_unfold(range, move |range| {
        let file = file.clone();
        async move {
            if range.is_empty() {
                return Ok(None);
            }
            let start = range.start;
            let len = (range.end - start).min(TAIL_CHUNK as u64) as usize;
            // Allocated here, on a runtime thread: memory a short-lived blocking thread
            // allocates can stay with the allocator after the thread is gone.
            let mut chunk = vec![0u8; len];
            let chunk = tokio::task::spawn_blocking(move || {
                file.read_exact_at(&mut chunk, start).map(|()| chunk)
            })
            .await
            .map_err(io::Error::other)??;
            Ok(Some((Bytes::from(chunk), start + len as u64..range.end)))
        }
    })
}

fn tail_param(params: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    if let Some(other) = params.keys().find(|k| k.as_str() != "tail") {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown query parameter {other:?}: only tail=N is accepted"),
            Some(other),
        ));
    }
    let Some(raw) = params.get("tail") else {
        return Ok(None);
    };
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n <= MAX_TAIL)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("tail {raw:?}: use a whole number of lines from 0 to {MAX_TAIL}"),
                Some("tail"),
            )
        })
}

fn plain_text(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /api/queues/{id}/log/stream[?from=OFFSET]`: `log` events, then `end`.
pub async fn stream(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let target = Target::queue(&raw)?;
    serve_stream(state, target, params, headers).await
}

/// `GET /api/queues/{id}/tasks/{task}/log/stream[?from=OFFSET]`: a task's own log, as
/// [`stream`]; `end` carries the task's outcome.
pub async fn task_stream(
    State(state): State<AppState>,
    ApiPath((raw, task)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let target = Target::task(&raw, &task)?;
    serve_stream(state, target, params, headers).await
}

async fn serve_stream(
    state: AppState,
    target: Target,
    params: HashMap<String, String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let from = resume_point(&headers, &params, "byte offset")?.unwrap_or(0);
    let config = state.config();
    let client = match admit(&state, &config.api, "log", Some(target.id.as_str())) {
        Ok(client) => client,
        Err(refused) => return Ok(*refused),
    };
    // Follow the change feed from before reading the status: no transition falls between.
    let changes = state.store.follow();
    let view = target.find(&state).await?;
    let follower = state
        .logs
        .subscribe(target.log(), from)
        .map_err(|e| match e {
            FollowError::Io(e) => ApiError::internal(e),
            e => ApiError::bad_request("invalid_offset", e.to_string(), Some("from")),
        })?;
    let follow = Follow {
        status: view.queue.status,
        task_status: target.status(&view),
        target,
        follower,
        changes,
        store: state.store.clone(),
        done: false,
        first: true,
        shutdown: state.shutdown.clone(),
    };
    let frames = futures_util::stream::unfold(follow, |mut follow| async move {
        let frame = follow.next_frame().await?;
        Some((frame, follow))
    });
    Ok(sse_response(frames, client, config.api.sse_send_timeout))
}

/// One client following one log.
struct Follow {
    target: Target,
    follower: LogFollower,
    changes: Follower,
    store: Store,
    /// The queue's status as last seen in the store.
    status: Status,
    /// For a task's log, the task's status as last seen (`None` for a queue's log).
    task_status: Option<Status>,
    done: bool,
    /// No event sent yet: the next one carries `retry`.
    first: bool,
    shutdown: CancellationToken,
}

impl Follow {
    /// The next event; `None` ends the stream (after `end`, on shutdown, or when the queue is
    /// deleted).
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if self.done || self.shutdown.is_cancelled() {
                return None;
            }
            // The worker closes the log before it finishes the queue (or the task); checking
            // the follower here (not a flag from an earlier `Idle`) also covers a run that came
            // and went.
            let ended = match (&self.target.task, self.task_status) {
                (None, _) => Some(self.status).filter(|s| s.is_terminal()),
                // A task ends before its queue; a queue that ended closes its tasks.
                (Some(_), task) => task
                    .filter(|s| s.is_terminal())
                    .or(Some(self.status).filter(|s| s.is_terminal()).and(task)),
            };
            if let Some(status) = ended
                && self.follower.is_idle()
            {
                self.done = true;
                let end = crate::wire::LogEnd { status };
                let data = serde_json::to_string(&end).unwrap_or_default();
                return Some(frame("end", None, &data, std::mem::take(&mut self.first)));
            }
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                item = self.follower.next() => match item {
                    FollowItem::Batch(batch) => {
                        // `log` events: one `data:` field per line, id = the offset after them.
                        let retry = std::mem::take(&mut self.first);
                        return Some(frame("log", Some(batch.end_offset), &batch.text, retry));
                    }
                    FollowItem::Idle => {}
                    FollowItem::Failed(e) => {
                        tracing::warn!(queue = %self.target.id, error = %e, "reading the log for an SSE client failed");
                        return None;
                    }
                },
                feed = self.changes.next() => match feed {
                    Some(Feed::Change(change)) if change.queue == self.target.id => {
                        match (&change.task, change.to) {
                            // The queue was deleted.
                            (None, None) => return None,
                            (None, Some(to)) => self.status = to,
                            (Some(task), Some(to)) if Some(task) == self.target.task.as_ref() => {
                                self.task_status = Some(to);
                            }
                            _ => {}
                        }
                    }
                    Some(Feed::Change(_)) => {}
                    // Changes were missed: the store has the status now.
                    Some(Feed::Reset { .. }) => match self.store.get(&self.target.id).await {
                        Ok(Some(view)) => {
                            self.status = view.queue.status;
                            self.task_status = self.target.status(&view);
                        }
                        Ok(None) => return None,
                        Err(e) => {
                            tracing::warn!(queue = %self.target.id, error = %e, "reading the queue for an SSE client failed");
                            return None;
                        }
                    },
                    None => return None,
                },
            }
        }
    }
}
