//! The HTTP surface: every route in one `router`, handlers grouped by resource.
//!
//! - `queues`   enqueue, list, get, abort, delete
//! - `logs`     a queue's log as text and as a resumable SSE stream
//! - `events`   the change feed as a resumable SSE stream
//! - `sse`      what every SSE stream shares: event framing, limits, keep-alive, resume point
//! - `send`     streaming bodies that hold at most one chunk for a client that does not read
//! - `files`    report files under a queue's directory, read-only
//! - `archive`  those files as one streamed `.tar.gz`
//! - `badge`    the SVG status badge of a repository's branch
//! - `pages`    the dashboard: queue list, queue page, static assets
//! - `validate` parsing an enqueue request at the edge
//! - `access`   who may call what: the `Host` check, tokens and sessions, the per-route guard
//! - `session`  dashboard sign-in and sign-out
//! - `observe`  every request counted by route template and status, and its access log line
//! - `error`    the one error type; `json` our JSON extractor with error bodies

pub mod access;
pub mod archive;
pub mod badge;
pub mod caller;
pub mod error;
pub mod events;
pub mod extract;
pub mod files;
pub mod hooks;
pub mod json;
pub mod logs;
pub mod observe;
pub mod pages;
pub mod queues;
pub mod send;
pub mod session;
pub mod sse;
pub mod validate;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use crate::auth::Scope;
use crate::metrics::Format;
pub use crate::state::AppState;
use access::Access;
use error::ApiError;

/// One route and who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// As registered, e.g. `/api/queues/{id}`.
    pub path: &'static str,
    pub access: Access,
}

/// Builds the router and, route by route, the table of who may call what.
struct Routes {
    state: AppState,
    router: Router<AppState>,
    table: Vec<Route>,
}

impl Routes {
    /// `handler` answers `method` on `path`, behind the guard for `access`.
    fn add<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        let guard = axum::middleware::from_fn_with_state(
            self.state.clone(),
            move |state, caller, req, next| access::guard(access, state, caller, req, next),
        );
        self.router = self
            .router
            .route(path, on(filter, handler).route_layer(guard));
        self.table.push(Route {
            method,
            path,
            access,
        });
        self
    }
}

/// Every route with what it needs: the one place a route is added.
pub fn routes(state: AppState) -> (Router, Vec<Route>) {
    use Access::{Api, Page, Public};
    use Method as M;
    let (read, write) = (Scope::Read, Scope::Write);
    let max_body = state.config().api.max_body;
    let r = Routes {
        state: state.clone(),
        router: Router::new(),
        table: Vec::new(),
    }
    .add(M::GET, "/", Page(read), pages::list)
    .add(M::GET, "/queues/{id}", Page(read), pages::queue)
    .add(M::GET, "/signin", Public, session::page)
    .add(M::GET, "/static/{*path}", Public, pages::asset)
    .add(M::GET, "/healthz", Public, healthz)
    .add(M::GET, "/metrics", Api(read), metrics)
    // An image in a README cannot send a token: it shows where anonymous read is allowed.
    .add(M::GET, "/badge.svg", Api(read), badge::badge)
    .add(M::GET, "/api/session", Public, session::get)
    .add(M::POST, "/api/session", Public, session::create)
    .add(M::DELETE, "/api/session", Public, session::delete)
    .add(M::GET, "/api/queues", Api(read), queues::list)
    .add(M::POST, "/api/queues", Api(write), queues::enqueue)
    .add(M::GET, "/api/queues/{id}", Api(read), queues::get)
    .add(M::DELETE, "/api/queues/{id}", Api(write), queues::delete)
    .add(M::POST, "/api/queues/{id}/abort", Api(write), queues::abort)
    .add(M::POST, "/api/queues/{id}/rerun", Api(write), queues::rerun)
    .add(M::GET, "/api/queues/{id}/log", Api(read), logs::text)
    .add(
        M::GET,
        "/api/queues/{id}/log/stream",
        Api(read),
        logs::stream,
    )
    .add(
        M::GET,
        "/api/queues/{id}/tasks/{task}/log",
        Api(read),
        logs::task_text,
    )
    .add(
        M::GET,
        "/api/queues/{id}/tasks/{task}/log/stream",
        Api(read),
        logs::task_stream,
    )
    .add(
        M::GET,
        "/api/queues/{id}/archive",
        Api(read),
        archive::archive,
    )
    .add(M::GET, "/api/events", Api(read), events::stream)
    // Signed with the webhook's secret instead of a token.
    .add(M::POST, "/api/hooks/gitea", Public, hooks::gitea)
    .add(
        M::GET,
        "/queues/{id}/files/{*path}",
        Api(read),
        files::serve_file,
    );
    let router = r
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::identify,
        ))
        .layer(DefaultBodyLimit::max(max_body));
    let router = observe::layer(router, state.metrics.clone()).with_state(state);
    (router, r.table)
}

pub fn router(state: AppState) -> Router {
    routes(state).0
}

/// `GET /healthz`: 200 `ok`, or 503 with the cause while the store cannot write.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.fault() {
        None => "ok\n".into_response(),
        Some(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// `GET /metrics`: the Prometheus text format, or OpenMetrics when `Accept` prefers it (see
/// `crate::metrics`).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let counts = state.store.counts().await?;
    state.metrics.store_commits(state.store.commit_stats());
    let config = state.config();
    let text = state.metrics.render(
        format,
        &crate::metrics::Load {
            counts: &counts,
            slots: config.worker.slots,
            busy: state.worker.busy(),
            boards: state.worker.boards(),
            max_boards: config.worker.max_boards.unwrap_or(0),
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        text,
    )
        .into_response())
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
