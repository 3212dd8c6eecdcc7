//! `POST /api/hooks/gitea`: a Gitea webhook delivery becomes a queue.
//!
//! Checked in this order, each with its own error: webhooks configured (a secret is set),
//! JSON content type, the HMAC-SHA256 signature over the raw body, the event. Then the delivery
//! is validated like any enqueue, after its repository: from `[gitea] url` (when set) and in
//! `[worker] allowed_repos`, else 403. A delivery makes one queue per `[gitea] environments`.
//! Answers: 202 with the new `queues`; 200 with them when the same commit is already queued
//! everywhere (redelivery, a push and a pull-request update, a tag); 200 with `ignored` and the
//! reason for a delivery that queues nothing. Gitea shows the answer in the webhook's delivery
//! history. With `[gitea] cancel_superseded`, a delivery for a branch or a pull request then
//! aborts the older webhook queues of that line it supersedes (in the background).

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
use crate::model::{Line, Origin, Queue, QueueRequest, SUPERSEDED};
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

/// One queue per `[gitea] environments`; then, for a branch or a pull request, the older
/// webhook queues it supersedes are aborted in the background.
async fn enqueue(
    state: &AppState,
    config: &Config,
    wanted: Wanted,
    delivery: &str,
) -> Result<Response, ApiError> {
    let gitea = &config.gitea;
    let mut records = Vec::with_capacity(gitea.environments.len());
    let mut created = false;
    for environment in &gitea.environments {
        let (new, queue) = enqueue_one(state, config, &wanted, environment).await?;
        created |= new;
        tracing::info!(%delivery, queue = %queue.id, why = %wanted.why, duplicate = !new, "webhook delivery");
        if gitea.cancel_superseded
            && let Some(line) = &wanted.line
        {
            tokio::spawn(supersede(state.clone(), queue.clone(), line.clone()));
        }
        records.push(queue_record(state, &queue, None));
    }
    let location = records.first().map(|r| format!("/api/queues/{}", r.id));
    let answer = json!({
        "queues": records,
        "why": wanted.why,
        "duplicate": !created,
        "delivery": delivery,
    });
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(answer)).into_response();
    if let Some(v) = location.and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The delivery's queue in `environment`: `(true, queue)` when it was made now, `(false,
/// queue)` when the same commit was queued there before.
async fn enqueue_one(
    state: &AppState,
    config: &Config,
    wanted: &Wanted,
    environment: &str,
) -> Result<(bool, Queue), ApiError> {
    let gitea = &config.gitea;
    let body = EnqueueBody {
        id: Some(wanted.queue_id(environment).to_string()),
        repo: wanted.repo.clone(),
        branch: wanted.branch.clone(),
        commit: Some(wanted.commit.clone()),
        environment: environment.to_owned(),
        scenarios: Some(gitea.scenarios.clone()),
        priority: Some(gitea.priority),
    };
    let (id, request) = validate::enqueue(&body, config)
        .map_err(|e| ApiError::bad_request("invalid_payload", e.message, None))?;
    let origin = Origin::Gitea {
        line: wanted.line.clone(),
    };
    match state
        .store
        .enqueue_from(id.clone(), request.clone(), origin)
        .await
    {
        Ok(Enqueued::Created(view)) => {
            state.metrics.enqueued(crate::metrics::Source::Gitea);
            Ok((true, view.queue))
        }
        Ok(Enqueued::Existing(view)) => Ok((false, view.queue)),
        // The same commit asked for another way (a push and a pull request, a tag): already
        // queued, if the queue there runs the same thing. Anything else under this id is not
        // this delivery's queue.
        Err(StoreError::Conflict(_)) => match state.store.get(&id).await? {
            Some(view) if same_run(&view.queue.request, &request) => Ok((false, view.queue)),
            Some(_) => Err(ApiError::conflict(format!(
                "queue {id} exists and runs something else (another repository, environment or scenarios): delete it, then redeliver"
            ))),
            None => Err(ApiError::conflict(format!(
                "queue {id} changed meanwhile: redeliver"
            ))),
        },
        Err(e) => Err(e.into()),
    }
}

/// Aborts the webhook queues that `newer` supersedes: made by an earlier delivery for the same
/// `line` of the same repository, in the same environment, and still waiting or running. They
/// end `aborted` with the error `superseded by <newer>`. Queues of the API are never touched.
async fn supersede(state: AppState, newer: Queue, line: Line) {
    let mut candidates = match state.store.waiting().await {
        Ok(waiting) => waiting,
        Err(e) => {
            tracing::warn!(queue = %newer.id, error = %e, "cannot look for superseded queues");
            return;
        }
    };
    for id in state.worker.running() {
        if let Ok(Some(view)) = state.store.get(&id).await {
            candidates.push(view.queue);
        }
    }
    let origin = Origin::Gitea { line: Some(line) };
    let why = format!("{SUPERSEDED}{}", newer.id);
    for old in candidates {
        let superseded = old.seq < newer.seq
            && old.id != newer.id
            && old.origin == origin
            && old.request.repo == newer.request.repo
            && old.request.environment == newer.request.environment
            && !old.status.is_terminal();
        if !superseded {
            continue;
        }
        match super::queues::stop(&state, &old.id, &why, &why).await {
            Ok(()) => tracing::info!(queue = %old.id, by = %newer.id, "superseded queue aborted"),
            // It finished meanwhile: nothing to cancel.
            Err(e) if e.status == StatusCode::CONFLICT => {}
            Err(e) => {
                tracing::warn!(queue = %old.id, by = %newer.id, error = %e.message, "cannot abort a superseded queue")
            }
        }
    }
}

/// Whether two requests run the same tests on the same code; the branch may differ (a pull
/// request names none, a push its branch) and so may the priority.
fn same_run(a: &QueueRequest, b: &QueueRequest) -> bool {
    a.repo == b.repo
        && a.commit == b.commit
        && a.environment == b.environment
        && a.scenarios == b.scenarios
}
