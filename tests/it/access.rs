//! Access control over the router: every route under every anonymous setting and scope, the
//! dashboard's cookie with this server's and a foreign `Origin`, the cross-site abort an
//! attacker's page makes a browser send, and a foreign `Host` (DNS rebinding).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::test_state;
use testarena::api::access::Access;
use testarena::api::{Route, router, routes};
use testarena::auth::{Scope, TokenHash};
use testarena::model::{QueueId, QueueRequest, Status};
use testarena::state::AppState;

const HOST: &str = "127.0.0.1:8080";
const ORIGIN: &str = "http://127.0.0.1:8080";

/// A token per scope: (token, scope).
const TOKENS: [(&str, Scope); 3] = [
    ("ta_read_token_for_tests", Scope::Read),
    ("ta_write_token_for_tests", Scope::Write),
    ("ta_admin_token_for_tests", Scope::Admin),
];

fn auth_toml(anonymous: &str) -> String {
    let entries: Vec<String> = TOKENS
        .iter()
        .map(|(t, s)| {
            format!(
                "{{ name = \"{s}-client\", scope = \"{s}\", hash = \"{}\" }}",
                TokenHash::of(t)
            )
        })
        .collect();
    format!(
        "[auth]\nanonymous = \"{anonymous}\"\ntokens = [{}]\n",
        entries.join(", ")
    )
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Refused by access control (not by the handler after it).
    fn refused(&self) -> bool {
        let refusal_status = matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        );
        refusal_status
            && (matches!(
                self.code().as_str(),
                "unauthenticated" | "forbidden" | "invalid_token" | "cross_site"
            ) || self.text.contains("id=\"signin\""))
    }
}

async fn call(state: &AppState, req: Request<Body>) -> Answer {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let stream = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if stream {
        // An SSE stream does not end: that it started is the answer.
        return Answer {
            status,
            headers,
            text: String::new(),
        };
    }
    // Chunk by chunk, each dropped once copied, as a connection does: a streamed body
    // (`api::send`) makes its next chunk only when the last one is gone.
    let mut bytes = Vec::new();
    let mut body = resp.into_body().into_data_stream();
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A request for `route` with its path parameters filled in.
fn request(route: &Route, bearer: Option<&str>) -> Request<Body> {
    let path = route
        .path
        .replace("{id}", "q1")
        .replace("{task}", "smoke")
        .replace("{*path}", "report.html");
    let mut b = Request::builder()
        .method(route.method.clone())
        .uri(path)
        .header(header::HOST, HOST);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if route.method != Method::GET {
        b = b.header(header::CONTENT_TYPE, "application/json");
    }
    b.body(Body::from(if route.method == Method::GET {
        ""
    } else {
        "{}"
    }))
    .unwrap()
}

async fn waiting_queue(state: &AppState, id: &str) {
    let request = QueueRequest {
        repo: "https://git.example/fw.git".into(),
        branch: Some("main".into()),
        commit: None,
        environment: "esp32".into(),
        scenarios: vec!["scenarios/smoke.xml".into()],
        priority: 0,
    };
    state
        .store
        .enqueue(QueueId::parse(id).unwrap(), request)
        .await
        .unwrap();
}

/// Every route, under each `anonymous` value, with no token, a token of each scope and a
/// token that is not valid: refused exactly when what the caller has is less than what the
/// route needs. The table comes from the router itself, so a new route is in it.
#[tokio::test]
async fn every_route_under_every_anonymous_setting_and_scope() {
    let (state, _dir) = test_state(&auth_toml("none"));
    let (_, table) = routes(state.clone());
    assert!(table.len() >= 19, "{table:?}");
    // Every route that changes something needs at least write, or is one of the few that
    // prove who is calling by other means (sign-in itself, the HMAC-signed webhook).
    for route in &table {
        let open_write = matches!(route.path, "/api/session" | "/api/hooks/gitea");
        if route.method != Method::GET && !open_write {
            assert!(
                route.access.scope() >= Some(Scope::Write),
                "{route:?} changes something and must need write"
            );
        }
        if route.method == Method::GET
            && !matches!(
                route.path,
                "/healthz" | "/static/{*path}" | "/signin" | "/api/session"
            )
        {
            assert!(route.access.scope().is_some(), "{route:?} shows data");
        }
    }
    let callers: Vec<(Option<&str>, Option<Scope>, bool)> = std::iter::once((None, None, false))
        .chain(TOKENS.iter().map(|(t, s)| (Some(*t), Some(*s), false)))
        .chain(std::iter::once((Some("ta_not_a_token"), None, true)))
        .collect();
    for anonymous in ["none", "read", "write"] {
        let (state, _dir) = test_state(&auth_toml(anonymous));
        let anon_scope = match anonymous {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        };
        let (_, table) = routes(state.clone());
        for route in &table {
            for (token, scope, bad) in &callers {
                // Each call on a fresh queue: an allowed delete must not change the next one.
                let _ = state.store.delete(&QueueId::parse("q1").unwrap()).await;
                waiting_queue(&state, "q1").await;
                let answer = call(&state, request(route, *token)).await;
                let allowed = match route.access {
                    Access::Public => true,
                    _ if *bad => false,
                    a => (*scope).max(anon_scope) >= a.scope(),
                };
                let who = format!(
                    "{} {} with {token:?} under anonymous = {anonymous}",
                    route.method, route.path
                );
                assert_eq!(
                    !answer.refused(),
                    allowed,
                    "{who}: {} {}",
                    answer.status,
                    answer.text.chars().take(300).collect::<String>()
                );
                if !allowed {
                    let expected = match (bad, token, route.access) {
                        (true, _, _) | (false, None, _) => StatusCode::UNAUTHORIZED,
                        _ => StatusCode::FORBIDDEN,
                    };
                    assert_eq!(answer.status, expected, "{who}");
                }
            }
        }
    }
}

/// Without a token where one is needed: 401 that says how to send one, and `WWW-Authenticate`.
#[tokio::test]
async fn a_refusal_says_what_to_send() {
    let (state, _dir) = test_state(&auth_toml("none"));
    let req = Request::get("/api/queues")
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap();
    let a = call(&state, req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "unauthenticated");
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));
    // A page: the sign-in form, with the way back.
    let req = Request::get("/queues/q1?x=1")
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap();
    let a = call(&state, req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.text.contains("id=\"signin\""), "{}", a.text);
    assert!(
        a.text.contains("data-next=\"&#x2f;queues&#x2f;q1?x=1\""),
        "{}",
        a.text
    );
}

fn sign_in(token: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/session")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(json!({ "token": token }).to_string()))
        .unwrap()
}

fn abort_with_cookie(cookie: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/queues/q1/abort")
        .header(header::HOST, HOST)
        .header(header::COOKIE, cookie);
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::empty()).unwrap()
}

async fn status_of(state: &AppState, id: &str) -> Status {
    let view = state.store.get(&QueueId::parse(id).unwrap()).await.unwrap();
    view.unwrap().queue.status
}

/// The dashboard's session: the cookie holds a random id (never the token), is `HttpOnly` and
/// `SameSite=Strict`; a write with it needs this server's `Origin`; signing out ends it.
#[tokio::test]
async fn the_session_cookie_works_only_from_this_servers_pages() {
    let (state, _dir) = test_state(&auth_toml("read"));
    waiting_queue(&state, "q1").await;
    let write_token = TOKENS[1].0;

    let bad = call(&state, sign_in("ta_guess", Some(ORIGIN))).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(!bad.headers.contains_key(header::SET_COOKIE));

    let signed = call(&state, sign_in(write_token, Some(ORIGIN))).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
    assert_eq!(signed.json()["name"], "write-client");
    assert_eq!(signed.json()["can_write"], true);
    let set_cookie = signed.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    assert!(
        !set_cookie.contains(write_token),
        "the token itself: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // Another site's page (the browser adds the cookie, and its own Origin): refused.
    let a = call(
        &state,
        abort_with_cookie(&cookie, Some("http://evil.example")),
    )
    .await;
    assert_eq!(
        (a.status, a.code().as_str()),
        (StatusCode::FORBIDDEN, "cross_site")
    );
    // No Origin at all with the cookie: refused too.
    let a = call(&state, abort_with_cookie(&cookie, None)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&state, "q1").await, Status::Waiting);
    // Without the cookie, anonymous (read) may not abort.
    let req = Request::post("/api/queues/q1/abort")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&state, req).await.status, StatusCode::UNAUTHORIZED);
    // This server's page: done.
    let a = call(&state, abort_with_cookie(&cookie, Some(ORIGIN))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(status_of(&state, "q1").await, Status::Aborted);

    // Who am I, then sign out: the cookie is cleared and no longer works.
    let who = Request::get("/api/session")
        .header(header::HOST, HOST)
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&state, who).await.json()["name"], "write-client");
    let out = Request::delete("/api/session")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let out = call(&state, out).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    waiting_queue(&state, "q2").await;
    let req = Request::post("/api/queues/q2/abort")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&state, req).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&state, "q2").await, Status::Waiting);
}

/// The attack from the issue: on the default loopback server (anonymous may write), a page on
/// another site makes the browser POST a body-less abort. The browser sends that site's
/// `Origin` (and `Sec-Fetch-Site: cross-site`): refused, and the queue keeps waiting. A client
/// without an `Origin` (curl, the CLI) still may.
#[tokio::test]
async fn a_cross_site_abort_through_the_users_browser_is_refused() {
    let (state, _dir) = test_state("");
    assert_eq!(
        state.config().auth.anonymous,
        testarena::auth::Anonymous::Write
    );
    waiting_queue(&state, "q1").await;
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("referer", "http://evil.example/page.html")],
    ] {
        let mut b = Request::post("/api/queues/q1/abort").header(header::HOST, HOST);
        for (k, v) in &headers {
            b = b.header(*k, *v);
        }
        let a = call(&state, b.body(Body::empty()).unwrap()).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{headers:?}: {}", a.text);
        assert_eq!(a.code(), "cross_site");
    }
    assert_eq!(status_of(&state, "q1").await, Status::Waiting);
    let plain = Request::post("/api/queues/q1/abort")
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&state, plain).await.status, StatusCode::OK);
    assert_eq!(status_of(&state, "q1").await, Status::Aborted);
}

/// DNS rebinding: the attacker's name resolves to the loopback server, so the browser sends
/// `Host: evil.example`. A loopback server answers to its loopback names only (421 for the
/// rest); with `[api] hosts` it answers to those too, and to nothing else.
#[tokio::test]
async fn a_foreign_host_is_misdirected() {
    let get = |host: &str| {
        Request::get("/api/queues")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    let (state, _dir) = test_state("");
    for host in ["evil.example", "evil.example:8080", "127.0.0.2.nip.io:8080"] {
        let a = call(&state, get(host)).await;
        assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert_eq!(a.code(), "unknown_host");
        assert!(
            a.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("[api] hosts")
        );
    }
    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        assert_eq!(
            call(&state, get(host)).await.status,
            StatusCode::OK,
            "{host}"
        );
    }
    // Published under another name: anonymous must be chosen (it is no longer loopback only).
    let (state, _dir) =
        test_state("[api]\nhosts = [\"ci.example.org\"]\n[auth]\nanonymous = \"read\"\n");
    assert_eq!(
        call(&state, get("ci.example.org")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&state, get("localhost:8080")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&state, get("other.example.org")).await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
}
