//! `POST /api/hooks/gitea`: a Gitea webhook delivery becomes a queue.
//!
//! Checked in this order, each with its own error: webhooks configured (a secret is set),
//! JSON content type, the HMAC-SHA256 signature over the raw body, the event. Then the delivery
//! is validated like any enqueue, after its repository: from `[gitea] url` (when set) and in
//! `[worker] allowed_repos`, else 403. Answers: 202 with the new queue; 200 with the queue when
//! the same commit is already queued (redelivery, a push and a pull-request update, a tag); 200
//! with `ignored` and the reason for a delivery that queues nothing. Gitea shows the answer in
//! the webhook's delivery history.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::queues::queue_record;
use super::validate;
use super::validate::EnqueueBody;
use crate::config::Config;
use crate::hooks::gitea::{Decision, Wanted, decide, from_this_gitea};
use crate::hooks::signature_matches;
use crate::model::QueueRequest;
use crate::store::{Enqueued, StoreError};

pub async fn gitea(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let config = state.config();
    let Some(secret) = &config.gitea.secret else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "hooks_disabled",
            "webhooks are off: set [gitea] secret (or TESTARENA_GITEA_SECRET) on the server and the same secret in the Gitea webhook",
        ));
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "set the webhook's POST content type to application/json",
        ));
    }
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large()
        } else {
            ApiError::bad_request("unreadable_body", r.body_text(), None)
        }
    })?;
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header_text("x-gitea-signature")
        .or_else(|| header_text("x-hub-signature-256").and_then(|s| s.strip_prefix("sha256=")))
        .unwrap_or("");
    if !signature_matches(secret.expose(), &body, signature) {
        let message = if signature.is_empty() {
            "the delivery is not signed: set the same secret in the Gitea webhook as [gitea] secret"
        } else {
            "the signature does not match the body: the webhook's secret differs from [gitea] secret"
        };
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            message,
        ));
    }
    let delivery = header_text("x-gitea-delivery").unwrap_or("").to_owned();
    let Some(event) = header_text("x-gitea-event") else {
        return Err(ApiError::bad_request(
            "missing_event",
            "the X-Gitea-Event header is missing: send Gitea webhook deliveries here",
            None,
        ));
    };
    let wanted = match decide(event, &body, &config.gitea) {
        Err(e) => return Err(ApiError::bad_request("invalid_payload", e.0, None)),
        Ok(Decision::Ignore(why)) => {
            tracing::info!(%delivery, event, %why, "webhook delivery not queued");
            let answer = json!({"ignored": why, "delivery": delivery});
            return Ok((StatusCode::OK, Json(answer)).into_response());
        }
        Ok(Decision::Queue(wanted)) => wanted,
    };
    repo_allowed(&config, &wanted.repo).inspect_err(|e| {
        let (repo, why) = (&wanted.repo, &e.message);
        tracing::warn!(%delivery, event, %repo, %why, "webhook delivery refused");
    })?;
    enqueue(&state, &config, wanted, &delivery).await
}

/// A delivery's repository must be on `[gitea] url` (when set) and in `[worker] allowed_repos`
/// (403); a malformed one is the payload's fault (400), as for any enqueue.
fn repo_allowed(config: &Config, repo: &str) -> Result<(), ApiError> {
    validate::repo(repo).map_err(|e| ApiError::bad_request("invalid_payload", e.message, None))?;
    from_this_gitea(repo, &config.gitea)
        .and_then(|()| config.worker.allowed_repos.check(repo))
        .map_err(|m| ApiError::new(StatusCode::FORBIDDEN, "repo_not_allowed", m))
}

async fn enqueue(
    state: &AppState,
    config: &Config,
    wanted: Wanted,
    delivery: &str,
) -> Result<Response, ApiError> {
    let gitea = &config.gitea;
    let body = EnqueueBody {
        id: Some(wanted.id.to_string()),
        repo: wanted.repo,
        branch: wanted.branch,
        commit: Some(wanted.commit),
        environment: gitea.environment.clone(),
        scenarios: Some(gitea.scenarios.clone()),
        priority: Some(gitea.priority),
    };
    let (id, request) = validate::enqueue(&body, config)
        .map_err(|e| ApiError::bad_request("invalid_payload", e.message, None))?;
    let (status, queue) = match state.store.enqueue(id.clone(), request.clone()).await {
        Ok(Enqueued::Created(view)) => {
            state.metrics.enqueued(crate::metrics::Source::Gitea);
            (StatusCode::ACCEPTED, view.queue)
        }
        Ok(Enqueued::Existing(view)) => (StatusCode::OK, view.queue),
        // The same commit asked for another way (a push and a pull request, a tag): already
        // queued, if the queue there runs the same thing. Anything else under this id is not
        // this delivery's queue.
        Err(StoreError::Conflict(_)) => match state.store.get(&id).await? {
            Some(view) if same_run(&view.queue.request, &request) => (StatusCode::OK, view.queue),
            Some(_) => {
                return Err(ApiError::conflict(format!(
                    "queue {id} exists and runs something else (another repository, environment or scenarios): delete it, then redeliver"
                )));
            }
            None => {
                return Err(ApiError::conflict(format!(
                    "queue {id} changed meanwhile: redeliver"
                )));
            }
        },
        Err(e) => return Err(e.into()),
    };
    let duplicate = status == StatusCode::OK;
    tracing::info!(%delivery, queue = %id, why = %wanted.why, duplicate, "webhook delivery");
    let answer = json!({
        "queue": queue_record(state, &queue, None),
        "why": wanted.why,
        "duplicate": duplicate,
        "delivery": delivery,
    });
    let mut response = (status, Json(answer)).into_response();
    if let Ok(v) = format!("/api/queues/{id}").parse() {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Whether two requests run the same tests on the same code; the branch may differ (a pull
/// request names none, a push its branch) and so may the priority.
fn same_run(a: &QueueRequest, b: &QueueRequest) -> bool {
    a.repo == b.repo
        && a.commit == b.commit
        && a.environment == b.environment
        && a.scenarios == b.scenarios
}
