//! The server-sent-events conventions every stream of the API shares: the wire format of an
//! event, the limits on open streams ([`admit`]), the response (headers, keep-alive, at most one
//! chunk held for a client that does not read: see [`super::send`]), and the resume point
//! (`Last-Event-ID` or `?from=`).
//!
//! Framed by hand rather than with axum's `Sse`: the log stream sends hundreds of lines per
//! event, and per-line formatting there was the server's largest cost.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use super::AppState;
use super::error::ApiError;
use crate::config::ApiConfig;
use crate::metrics::{SseClient, SseLimits};

/// How often an idle stream sends a comment, so that proxies keep it open.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The reconnection delay announced on the first event.
pub(crate) const RETRY: Duration = Duration::from_secs(2);
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";
/// What a refused stream is told to wait before it tries again.
const RETRY_AFTER_SECONDS: u64 = 5;

/// Counts a new stream (`log` of `queue`, or `events`) against `[api] max_sse_clients` and
/// `max_sse_per_queue` of the request's configuration `api`; over a limit, the answer to send
/// instead: 503 naming the limit, with `Retry-After`.
pub(crate) fn admit(
    state: &AppState,
    api: &ApiConfig,
    stream: &'static str,
    queue: Option<&str>,
) -> Result<SseClient, Box<Response>> {
    let limits = SseLimits {
        total: api.max_sse_clients,
        per_queue: api.max_sse_per_queue,
    };
    state
        .metrics
        .sse_client(stream, queue, limits)
        .map_err(|full| {
            tracing::debug!(%full, "refused an SSE stream");
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                full.to_string(),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            Box::new(response)
        })
}

/// One event in SSE wire format: `event:`, `retry:` when asked, `id:`, then one `data:` field
/// per line of `data`. Written by hand into one buffer of about the right size: the log stream sends
/// hundreds of lines per event and this is its hot path.
pub(crate) fn frame(event: &str, id: Option<u64>, data: &str, retry: bool) -> Bytes {
    // SSE also ends a field at `\r`; the log writer never writes one, a hand-edited file may.
    let data: std::borrow::Cow<'_, str> = if data.contains('\r') {
        data.replace('\r', "").into()
    } else {
        data.into()
    };
    // Exactly the size of the frame (`data: ` and `\n` per line; the `id` and `retry` fields
    // take at most 64 bytes): the frame may sit in the connection's buffer while the client
    // reads slowly, and a grown `Vec` would hold up to twice that.
    let lines = data.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut out = Vec::with_capacity(data.len() + lines * 7 + event.len() + 64);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    if retry {
        // Writing to a Vec cannot fail.
        let _ = writeln!(out, "retry: {}", RETRY.as_millis());
    }
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

/// An SSE response over a stream of frames: a keep-alive comment after [`KEEP_ALIVE`] without
/// a frame, no caching, no buffering by proxies. The response ends when `frames` does; it is
/// cut when the client has not taken a frame for `send_timeout` (see [`super::send`]), and the
/// client resumes from its last event id.
pub(crate) fn sse_response<S>(frames: S, client: SseClient, send_timeout: Duration) -> Response
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let stalled = client.stall_counter();
    // `client` lives as long as the stream: it is counted in the metrics and the limits.
    let frames = futures_util::stream::unfold(
        (
            Box::pin(frames),
            Box::pin(tokio::time::sleep(KEEP_ALIVE)),
            client,
        ),
        |(mut frames, mut idle, client)| async move {
            let frame = tokio::select! {
                frame = frames.next() => frame?,
                () = idle.as_mut() => Bytes::from_static(KEEP_ALIVE_FRAME),
            };
            idle.as_mut().reset(Instant::now() + KEEP_ALIVE);
            Some((Ok(frame), (frames, idle, client)))
        },
    );
    let body = super::send::bounded(frames, send_timeout, move || {
        stalled.inc();
        tracing::info!(
            timeout = ?send_timeout,
            "closed an event stream whose client stopped reading; it can resume from its last event id"
        );
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_one_data_field_per_line() {
        let check =
            |f: Bytes, expected: &str| assert_eq!(std::str::from_utf8(&f).unwrap(), expected);
        check(
            frame("log", Some(12), "a\n\nb", true),
            "event: log\nretry: 2000\nid: 12\ndata: a\ndata: \ndata: b\n\n",
        );
        check(frame("end", None, "{}", false), "event: end\ndata: {}\n\n");
        check(
            frame("log", Some(3), "x\r", false),
            "event: log\nid: 3\ndata: x\n\n",
        );
    }

    #[test]
    fn resume_point_prefers_last_event_id() {
        let params = |q: &[(&str, &str)]| -> HashMap<String, String> {
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut headers = HeaderMap::new();
        assert_eq!(resume_point(&headers, &params(&[]), "n").unwrap(), None);
        assert_eq!(
            resume_point(&headers, &params(&[("from", "7")]), "n").unwrap(),
            Some(7)
        );
        headers.insert("last-event-id", "42".parse().unwrap());
        assert_eq!(
            resume_point(&headers, &params(&[("from", "7")]), "n").unwrap(),
            Some(42)
        );
        for bad in [params(&[("from", "x")]), params(&[("since", "1")])] {
            let e = resume_point(&HeaderMap::new(), &bad, "n").unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        }
        headers.insert("last-event-id", "-1".parse().unwrap());
        let e = resume_point(&headers, &params(&[]), "n").unwrap_err();
        assert_eq!(e.code, "invalid_last_event_id");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_sends_keep_alive_comments() {
        let metrics = crate::metrics::Metrics::new();
        let limits = SseLimits {
            total: 1,
            per_queue: 1,
        };
        let client = metrics.sse_client("events", None, limits).unwrap();
        let response = sse_response(
            futures_util::stream::pending::<Bytes>(),
            client,
            Duration::from_secs(3600),
        );
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        let mut body = response.into_body().into_data_stream();
        let started = Instant::now();
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], KEEP_ALIVE_FRAME);
        assert_eq!(started.elapsed(), KEEP_ALIVE);
    }
}
