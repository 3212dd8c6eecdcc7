//! Dashboard sign-in: `POST /api/session` trades a token for an `HttpOnly`, `SameSite=Strict`
//! cookie that holds a random session id (never the token); `DELETE /api/session` signs out;
//! `GET /api/session` says who the caller is and what they may do (the dashboard shows it).
//! `GET /signin` is the form.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use super::AppState;
use super::caller::{Caller, SESSION_COOKIE, Via, Viewer};
use super::error::ApiError;
use super::json::ApiJson;

/// `POST /api/session`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// `GET /api/session`.
pub async fn get(State(state): State<AppState>, caller: Caller) -> Json<Viewer> {
    Json(Viewer::of(&caller, &state.config()))
}

/// `POST /api/session`: signs in with a token; sets the session cookie.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    let config = state.config();
    let Some(identity) = config.auth.tokens.verify(body.token.trim()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "that token is not valid: paste a token made with `testarena token new NAME` whose hash is in [auth] tokens",
        )
        .with_field("token"));
    };
    state.sessions.set_ttl(config.auth.session_ttl);
    let session = state
        .sessions
        .create(&config.auth.tokens, &identity.name)
        .ok_or_else(|| ApiError::internal("a verified token has no entry"))?;
    tracing::info!(token = %identity.name, "signed in");
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session.as_str(),
        config.auth.session_ttl.as_secs(),
        if config.api.cookie_secure() {
            "; Secure"
        } else {
            ""
        },
    );
    let caller = Caller {
        identity: Some(identity),
        via: Via::Cookie,
        bad_token: false,
        session: Some(session.as_str().to_owned()),
    };
    let viewer = Viewer::of(&caller, &config);
    let cookie = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    Ok(([(header::SET_COOKIE, cookie)], Json(viewer)).into_response())
}

/// `DELETE /api/session`: signs out (ends the session, clears the cookie).
pub async fn delete(State(state): State<AppState>, caller: Caller) -> Response {
    if let Some(id) = &caller.session {
        state.sessions.remove(id);
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    match HeaderValue::from_str(&clear) {
        Ok(v) => (StatusCode::NO_CONTENT, [(header::SET_COOKIE, v)]).into_response(),
        Err(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `GET /signin[?next=/path]`: the sign-in form.
pub async fn page(
    State(state): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let next = params.get("next").map_or("/", String::as_str);
    sign_in_page(&state, StatusCode::OK, "", next)
}

/// The sign-in page with `status` and `message`; after signing in the browser goes to `next`
/// (a path on this server only).
pub fn sign_in_page(state: &AppState, status: StatusCode, message: &str, next: &str) -> Response {
    // Only a local path: `//evil.example` or `https://…` would send the user elsewhere.
    let next = if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    };
    let viewer = Viewer::of(
        &Caller {
            identity: None,
            via: Via::Nothing,
            bad_token: false,
            session: None,
        },
        &state.config(),
    );
    super::pages::render(
        state,
        &viewer,
        status,
        "pages/signin.html",
        context! { message, next },
    )
    .unwrap_or_else(IntoResponse::into_response)
}
