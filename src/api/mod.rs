//! The HTTP surface: every route in one `router`, handlers grouped by resource.
//!
//! - `queues`   enqueue, list, get, abort, delete
//! - `logs`     a queue's log as text and as a resumable SSE stream
//! - `events`   the change feed as a resumable SSE stream
//! - `sse`      what every SSE stream shares: event framing, keep-alive, resume point
//! - `files`    report files under a queue's directory, read-only
//! - `pages`    the dashboard: queue list, queue page, static assets
//! - `validate` parsing an enqueue request at the edge
//! - `error`    the one error type; `json` our JSON extractor with error bodies

pub mod error;
pub mod events;
pub mod extract;
pub mod files;
pub mod hooks;
pub mod json;
pub mod logs;
pub mod pages;
pub mod queues;
pub mod sse;
pub mod validate;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use crate::state::AppState;
use error::ApiError;

pub fn router(state: AppState) -> Router {
    let max_body = state.config().api.max_body;
    Router::new()
        .route("/", get(pages::list))
        .route("/queues/{id}", get(pages::queue))
        .route("/static/{*path}", get(pages::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/queues", post(queues::enqueue).get(queues::list))
        .route("/api/queues/{id}", get(queues::get).delete(queues::delete))
        .route("/api/queues/{id}/abort", post(queues::abort))
        .route("/api/queues/{id}/log", get(logs::text))
        .route("/api/queues/{id}/log/stream", get(logs::stream))
        .route("/api/events", get(events::stream))
        .route("/api/hooks/gitea", post(hooks::gitea))
        .route("/queues/{id}/files/{*path}", get(files::serve_file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /metrics`: Prometheus/OpenMetrics text (see `crate::metrics`).
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let counts = state.store.counts().await?;
    let text = state
        .metrics
        .render(&counts, state.config().worker.slots, state.worker.busy());
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route: see the API table in the README",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method: see the API table in the README",
    )
}
