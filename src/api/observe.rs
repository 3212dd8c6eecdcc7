//! What every request leaves behind: one count in `testarena_http_requests_total` and one access
//! log line at `info` (tower-http's `TraceLayer`). Both name the route by its template
//! (`/api/queues/{id}`, `other` when no route matched), never the path, the query, a header or a
//! cookie: no token or session id reaches the log, and the metric's labels stay few.

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::metrics::Metrics;

/// `router` with the request counter and the access log around every route and the fallback.
pub fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>, metrics: Metrics) -> Router<S> {
    router
        .layer(from_fn_with_state(metrics, count))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!("request", method = %req.method(), route = route(req))
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "answered"
                    );
                })
                .on_body_chunk(())
                .on_eos(())
                // A 5xx is in the line above; the error itself was logged where it happened.
                .on_failure(()),
        )
}

/// The template of the route that matched `req`, or `other`.
fn route(req: &Request) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("other", MatchedPath::as_str)
}

async fn count(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let res = next.run(req).await;
    metrics.request(
        route.as_ref().map(MatchedPath::as_str),
        &method,
        res.status().as_u16(),
    );
    res
}
