//! The browser dashboard: server-rendered pages and the static files they load.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// `GET /`: the queue list.
pub async fn list(State(_state): State<AppState>) -> Result<Response, ApiError> {
    Ok((StatusCode::OK, "TestArena").into_response())
}

/// `GET /queues/{id}`: one queue with its tasks and its live log.
pub async fn queue(
    State(_state): State<AppState>,
    Path(_raw): Path<String>,
) -> Result<Response, ApiError> {
    Ok((StatusCode::OK, "TestArena").into_response())
}

/// `GET /static/{*path}`: the embedded scripts and stylesheets.
pub async fn asset(
    State(_state): State<AppState>,
    Path(_path): Path<String>,
) -> Result<Response, ApiError> {
    Err(ApiError::not_found("static file"))
}
