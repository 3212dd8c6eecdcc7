//! The browser dashboard: server-rendered pages and the static files they load.
//!
//! - `GET /`               the queue list (newest first, `?status=` filter, `?cursor=` older)
//! - `GET /queues/{id}`    one queue: header, tasks and test results, the live log viewer
//! - `GET /static/{*path}` the scripts and stylesheets under `ui/static/`, as embedded for the
//!   reports ([`Reports::static_file`])
//!
//! Pages render through the shared template environment (`pages/*.html` extend `base.html`) and
//! are complete without scripts; the scripts (`common.js`, then each page's own) then keep them
//! live from `/api/events` and the log stream. Each page carries the change sequence read *before* its data, so the script
//! follows changes from exactly there and misses none. Pages say which scripts may run (only
//! ours, never inline), so text a log or a request carries cannot become code.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde_json::json;

use super::AppState;
use super::caller::{Caller, Viewer};
use super::error::ApiError;
use super::files::check_path;
use super::queues::queue_record;
use crate::config::Config;
use crate::model::{Millis, Queue, QueueId, Status, now_millis};
use crate::report::{Counts, Reports};

/// Queues per list page.
const PAGE_SIZE: usize = 100;

/// Pages run our own scripts and styles only; the scripts talk to this origin only.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// `GET /`: the queue list.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&caller, &state.config());
    let filter = match params.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(raw) => match raw.parse::<Status>() {
            Ok(s) if s != Status::Skipped => Some(s),
            _ => {
                let names: Vec<&str> = queue_statuses().iter().map(|s| s.as_str()).collect();
                return error_page(
                    &state,
                    &viewer,
                    StatusCode::BAD_REQUEST,
                    "Unknown status",
                    &format!(
                        "There is no queue status {raw:?}. Filter by one of: {}.",
                        names.join(", ")
                    ),
                );
            }
        },
    };
    let cursor = match params.get("cursor").map(|c| c.parse::<u64>()) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => {
            return error_page(
                &state,
                &viewer,
                StatusCode::BAD_REQUEST,
                "Bad page link",
                "The cursor in this link is not a number: go back to the first page.",
            );
        }
    };
    // Read before the data: the script follows changes from here, so none falls between.
    let seq = state.store.latest_seq();
    let page = state.store.list(filter, PAGE_SIZE, cursor).await?;
    let counts = state.store.counts().await?;
    let now = now_millis();
    let queues: Vec<serde_json::Value> = page.items.iter().map(|q| row(&state, q, now)).collect();
    let per_status: Vec<serde_json::Value> = queue_statuses()
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            json!({"status": s, "count": n})
        })
        .collect();
    let total: u64 = counts
        .iter()
        .filter(|(s, _)| *s != Status::Skipped)
        .map(|(_, n)| n)
        .sum();
    let environments: Vec<String> = state
        .config()
        .environment_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    render(
        &state,
        &viewer,
        StatusCode::OK,
        "pages/list.html",
        context! {
            queues => jinja(&serde_json::Value::Array(queues)),
            counts => jinja(&serde_json::Value::Array(per_status)),
            total,
            filter => filter.map(Status::as_str),
            older => page.next_cursor,
            paged => cursor.is_some(),
            environments,
            seq,
        },
    )
}

/// `GET /queues/{id}`: one queue with its tasks and its live log.
pub async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = state.config();
    let viewer = Viewer::of(&caller, &config);
    let id = match QueueId::parse(&raw) {
        Ok(id) => id,
        Err(e) => {
            return error_page(
                &state,
                &viewer,
                StatusCode::BAD_REQUEST,
                "Not a queue id",
                &format!("{raw:?} cannot be a queue id: {e}."),
            );
        }
    };
    let seq = state.store.latest_seq();
    let Some(view) = state.store.get(&id).await? else {
        return error_page(
            &state,
            &viewer,
            StatusCode::NOT_FOUND,
            "Queue not found",
            &format!("There is no queue {id}: it may have been deleted."),
        );
    };
    let mut q = page_json(queue_record(&state, &view.queue, Some(&view.tasks)));
    q["duration_ms"] = json!(duration_ms(&view.queue, now_millis()));
    q["has_failed"] = json!(view.tasks.iter().any(|t| t.status != Status::Passed));
    for (task, value) in view.tasks.iter().zip(tasks_mut(&mut q)) {
        value["duration_ms"] = json!(span(task.started_at, task.finished_at));
        value["counts"] =
            serde_json::to_value(Counts::of(&task.tests)).unwrap_or(serde_json::Value::Null);
        value["terminal"] = json!(task.status.is_terminal());
        if let Some(tests) = value["tests"].as_array_mut() {
            for (result, test) in task.tests.iter().zip(tests) {
                test["log"] = json!(Reports::test_log_path(&result.suite, &result.name));
            }
        }
    }
    let request = &view.queue.request;
    let badge = request.branch.as_deref().map(|branch| {
        let (base, public) = origin(&config, &headers);
        let badge = super::badge::Readme::new(&base, &request.repo, branch, &request.environment);
        context! { src => badge.src, markdown => badge.markdown, public }
    });
    render(
        &state,
        &viewer,
        StatusCode::OK,
        "pages/queue.html",
        context! {
            queue => jinja(&q),
            terminal => view.queue.status.is_terminal(),
            badge,
            seq,
        },
    )
}

/// This server's address as users reach it, for links that leave the dashboard (a README
/// badge): `[api] public_url` when set (`true`), else `http://` and the `Host` this page was
/// asked for (the `Host` check let it through), else `http://` and `listen`.
fn origin(config: &Config, headers: &HeaderMap) -> (reqwest::Url, bool) {
    if let Some(url) = &config.api.public_url {
        return (url.clone(), true);
    }
    let listen = config.listen.to_string();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(&listen);
    let only_host = |u: &reqwest::Url| {
        u.path() == "/" && u.query().is_none() && u.fragment().is_none() && u.username().is_empty()
    };
    let url = reqwest::Url::parse(&format!("http://{host}/"))
        .ok()
        .filter(only_host)
        .or_else(|| reqwest::Url::parse(&format!("http://{listen}/")).ok())
        .expect("a socket address makes a URL");
    (url, false)
}

/// `GET /static/{*path}`: the embedded scripts and stylesheets, revalidated by `ETag`.
pub async fn asset(
    State(_state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("static file {path}"));
    if check_path(&path).is_err() {
        return Err(missing());
    }
    let file = Reports::static_file(&path).ok_or_else(missing)?;
    let hash = file.metadata.sha256_hash();
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    let etag = HeaderValue::from_str(&format!("\"{hex}\"")).map_err(ApiError::internal)?;
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == etag.as_bytes())
    });
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if fresh {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let content_type = HeaderValue::from_static(static_type(&path));
    Ok((
        common,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(file.data),
    )
        .into_response())
}

/// The content type of an embedded static file.
fn static_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The statuses a queue can have, in the order the filter shows them.
fn queue_statuses() -> Vec<Status> {
    Status::ALL
        .into_iter()
        .filter(|s| *s != Status::Skipped)
        .collect()
}

/// A list row: the queue's JSON plus its duration so far.
fn row(state: &AppState, q: &Queue, now: Millis) -> serde_json::Value {
    let mut v = page_json(queue_record(state, q, None));
    v["duration_ms"] = json!(duration_ms(q, now));
    v
}

/// The record as JSON, for the page-only fields (durations, counts, links) laid over it.
fn page_json(record: crate::wire::QueueRecord) -> serde_json::Value {
    serde_json::to_value(record).unwrap_or(serde_json::Value::Null)
}

/// How long the queue ran, or has been running.
fn duration_ms(q: &Queue, now: Millis) -> Option<u64> {
    match q.status {
        Status::Running => span(q.started_at, Some(now)),
        _ => span(q.started_at, q.finished_at),
    }
}

fn span(start: Option<Millis>, end: Option<Millis>) -> Option<u64> {
    let (start, end) = (start?, end?);
    Some(u64::try_from(end.saturating_sub(start)).unwrap_or(0))
}

fn tasks_mut(q: &mut serde_json::Value) -> impl Iterator<Item = &mut serde_json::Value> {
    q["tasks"].as_array_mut().into_iter().flatten()
}

/// A JSON value as a template value (objects become maps, `null` becomes none).
fn jinja(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => items.iter().map(jinja).collect(),
        J::Object(map) => Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), jinja(v)))),
    }
}

/// A readable HTML error page with the given status.
fn error_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Result<Response, ApiError> {
    render(
        state,
        viewer,
        status,
        "pages/error.html",
        context! { code => status.as_u16(), title, message },
    )
}

/// Renders page template `name` for `viewer` (who is signed in, what they may do).
pub(super) fn render(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    name: &str,
    ctx: Value,
) -> Result<Response, ApiError> {
    let html = state
        .reports
        .env()
        .get_template(name)
        .and_then(|t| {
            t.render(context! {
                sandbox_problem => state.sandbox.unavailable(),
                viewer => jinja(&serde_json::to_value(viewer).unwrap_or_default()),
                ..ctx
            })
        })
        .map_err(|e| ApiError::internal(format!("rendering {name}: {e:#}")))?;
    Ok((
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        html,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_static_file_a_page_loads_is_shipped_with_a_known_type() {
        let reports = Reports::new().unwrap();
        let link = regex::Regex::new(r#""/static/([^"]+)""#).unwrap();
        let mut loaded = Vec::new();
        for (name, template) in reports.env().templates() {
            if name.starts_with("pages/") {
                let found = link.captures_iter(template.source());
                loaded.extend(found.map(|c| c[1].to_owned()));
            }
        }
        for name in [
            "style.css",
            "dashboard.css",
            "common.js",
            "enqueue.js",
            "list.js",
            "logview.js",
            "queue.js",
            "signin.js",
        ] {
            assert!(loaded.iter().any(|l| l == name), "{name} not in {loaded:?}");
        }
        for name in &loaded {
            assert!(
                Reports::static_file(name).is_some(),
                "{name} is not shipped"
            );
            assert_ne!(
                static_type(name),
                "application/octet-stream",
                "{name} would be served as bytes"
            );
        }
    }

    #[test]
    fn spans_never_go_negative() {
        assert_eq!(span(Some(1_000), Some(3_500)), Some(2_500));
        assert_eq!(span(Some(5_000), Some(3_000)), Some(0));
        assert_eq!(span(None, Some(3_000)), None);
        assert_eq!(span(Some(3_000), None), None);
    }
}
