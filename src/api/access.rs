//! Who may call what. Every route is registered with its [`Access`] (see `api::router`), so a
//! route cannot be added without deciding it; `tests/it/access.rs` walks the whole table.
//!
//! Two layers of middleware:
//! - [`identify`], around every route: the `Host` check (421 for a name not in `[api] hosts`,
//!   against DNS rebinding) and who the caller is: a bearer token, else the dashboard's session
//!   cookie, else nobody ([`Caller`], put into the request's extensions).
//! - [`guard`], per route: the decision for that route's [`Access`] (`auth::access`: 401 without
//!   a good token where one is needed, 403 with too small a scope) and, for a write, that a
//!   browser did not send it from another site: a write authenticated by the cookie must carry
//!   this server's `Origin` (or `Referer`), and a write from another site's page is refused
//!   whoever sends it. Bearer-token requests cannot come from another site's page (a browser
//!   does not add that header across sites without CORS, which this server never grants).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
pub use super::caller::{Caller, SESSION_COOKIE, Via};
use super::error::ApiError;
use crate::auth::{self, Denied, Scope};
use crate::config::Config;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, static files, the sign-in itself, the webhook (it has its own HMAC).
    Public,
    /// A scope, answered as JSON when refused.
    Api(Scope),
    /// A scope, for a dashboard page: refused, it shows the sign-in form.
    Page(Scope),
}

impl Access {
    /// The scope it needs, if any.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Access::Public => None,
            Access::Api(s) | Access::Page(s) => Some(s),
        }
    }
}

/// Around every route: the `Host` check, then who the caller is.
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let config = state.config();
    // A browser always names the host; a request without one (HTTP/1.0, an in-process call)
    // cannot be a browser's that DNS rebinding sent here.
    if let Some(host) = request_host(&req)
        && !config.api.host_allowed(host, config.listen)
    {
        let shown = host;
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown_host",
            format!(
                "this server does not answer to the host name {shown:?}: use one listed in [api] hosts (or add it there)"
            ),
        )
        .into_response();
    }
    let caller = caller(&state, &config, req.headers());
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The host the client asked for: `Host`, or the URI's authority (HTTP/2).
fn request_host(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

fn caller(state: &AppState, config: &Config, headers: &HeaderMap) -> Caller {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if let Some(token) = bearer {
        let identity = config.auth.tokens.verify(token);
        return Caller {
            bad_token: identity.is_none(),
            identity,
            via: Via::Bearer,
            session: None,
        };
    }
    if let Some(id) = session_cookie(headers)
        && let Some(identity) = state.sessions.identity(id, &config.auth.tokens)
    {
        return Caller {
            identity: Some(identity),
            via: Via::Cookie,
            bad_token: false,
            session: Some(id.to_owned()),
        };
    }
    Caller::NOBODY
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// Per route: may this caller do what the route does?
pub async fn guard(
    access: Access,
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
    next: Next,
) -> Response {
    match refusal(&state, access, &caller, &req) {
        None => next.run(req).await,
        Some(refusal) => refusal,
    }
}

/// Why this caller may not call this route, as the response; `None`: it may.
fn refusal(state: &AppState, access: Access, caller: &Caller, req: &Request) -> Option<Response> {
    let config = state.config();
    let writes = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS");
    if writes
        && caller.via != Via::Bearer
        && let Some(refused) = cross_site(&config, caller, req.headers())
    {
        return Some(refused.into_response());
    }
    let needed = access.scope()?;
    if caller.bad_token {
        return Some(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is not valid: check TESTARENA_TOKEN (or the token file), or make a new one with `testarena token new NAME`",
            )
            .into_response(),
        );
    }
    auth::access(config.auth.anonymous, caller.identity.as_ref(), needed)
        .err()
        .map(|denied| refuse(state, access, denied, req))
}

/// 401 or 403: JSON for the API, the sign-in page for a dashboard page.
fn refuse(state: &AppState, access: Access, denied: Denied, req: &Request) -> Response {
    let status = StatusCode::from_u16(denied.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    if let Access::Page(_) = access {
        let next = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        return super::session::sign_in_page(state, status, &denied.to_string(), &next);
    }
    let code = match denied {
        Denied::Unauthenticated { .. } => "unauthenticated",
        Denied::Forbidden { .. } => "forbidden",
    };
    let mut response = ApiError::new(status, code, denied.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"testarena\""),
        );
    }
    response
}

/// A write from a browser must come from this server's own pages. With the session cookie
/// the request must say where it comes from (`Origin`, else `Referer`) and that must be this
/// server; without it, a request that says it comes from elsewhere is refused (an anonymous
/// write that another site's page makes the browser send).
fn cross_site(config: &Config, caller: &Caller, headers: &HeaderMap) -> Option<ApiError> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or("");
    let from = text(header::ORIGIN)
        .filter(|o| *o != "null")
        .map(|o| (o, false))
        .or_else(|| text(header::REFERER).map(|r| (r, true)));
    let cross_site = text(axum::http::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|s| s.eq_ignore_ascii_case("cross-site"));
    let ok = match from {
        Some((url, _)) => !cross_site && this_server(config, host, url),
        // An opaque origin (`Origin: null`, e.g. a sandboxed frame) is never this server.
        None if text(header::ORIGIN) == Some("null") => false,
        None => caller.via != Via::Cookie && !cross_site,
    };
    if ok {
        return None;
    }
    let message = if caller.via == Via::Cookie && from.is_none() {
        "a signed-in write must say where it comes from: send the Origin header (the dashboard's pages do)"
    } else {
        "writes from another site's pages are refused: use the dashboard on this server, or a client with a bearer token"
    };
    Some(ApiError::new(StatusCode::FORBIDDEN, "cross_site", message))
}

/// Whether `url` (an origin or a referrer) is this server: the host the request was sent to,
/// or `[api] public_url`.
fn this_server(config: &Config, host: &str, url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return false,
    };
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        return true;
    }
    config
        .api
        .public_url
        .as_ref()
        .is_some_and(|public| public.origin() == url.origin())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn caller(via: Via) -> Caller {
        Caller {
            via,
            ..Caller::NOBODY
        }
    }

    #[test]
    fn a_cookie_write_needs_this_servers_origin() {
        let config = Config::defaults();
        let cookie = caller(Via::Cookie);
        let host = ("host", "127.0.0.1:8080");
        let ok = |h: &[(&'static str, &str)]| cross_site(&config, &cookie, &headers(h)).is_none();
        assert!(ok(&[host, ("origin", "http://127.0.0.1:8080")]));
        assert!(ok(&[host, ("referer", "http://127.0.0.1:8080/queues/q1")]));
        assert!(!ok(&[host]), "no origin at all");
        assert!(!ok(&[host, ("origin", "http://evil.example")]));
        assert!(
            !ok(&[host, ("origin", "http://127.0.0.1:8081")]),
            "another port is another origin"
        );
        assert!(!ok(&[host, ("origin", "null")]));
        assert!(!ok(&[host, ("referer", "http://evil.example/x")]));
        assert!(!ok(&[
            host,
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ]));
    }

    #[test]
    fn an_anonymous_write_is_refused_only_when_it_comes_from_another_site() {
        let config = Config::defaults();
        let nobody = caller(Via::Nothing);
        let host = ("host", "127.0.0.1:8080");
        let ok = |h: &[(&'static str, &str)]| cross_site(&config, &nobody, &headers(h)).is_none();
        assert!(ok(&[host]), "curl and the CLI send no origin");
        assert!(ok(&[host, ("origin", "http://127.0.0.1:8080")]));
        assert!(!ok(&[host, ("origin", "http://evil.example")]));
        assert!(!ok(&[host, ("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[host, ("origin", "null")]));
    }

    #[test]
    fn the_public_url_is_this_server_too() {
        let config = Config::from_toml(
            "t.toml",
            "[api]\npublic_url = \"https://ci.example.org\"\n[auth]\nanonymous = \"read\"\n",
        )
        .unwrap();
        let c = caller(Via::Cookie);
        let ok = |h: &[(&'static str, &str)]| cross_site(&config, &c, &headers(h)).is_none();
        assert!(ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://ci.example.org")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://ci.example.org")
        ]));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; testarena_session=abc ; b=2")]);
        assert_eq!(session_cookie(&h), Some("abc"));
        assert_eq!(session_cookie(&headers(&[("cookie", "a=1")])), None);
    }
}
