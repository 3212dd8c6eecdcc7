//! Who is calling, as `access::identify` found out ([`Caller`]), and what the dashboard shows
//! of it ([`Viewer`]): plain values that the access layer, the session routes and the pages
//! share without depending on each other.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::auth::{Anonymous, Identity, Scope};
use crate::config::Config;

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "testarena_session";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Nothing,
    Bearer,
    Cookie,
}

/// Who is calling, as [`identify`] found out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Option<Identity>,
    pub via: Via,
    /// A bearer token was sent and is not valid: refused wherever a scope is needed.
    pub bad_token: bool,
    /// The session id of the cookie, when it is a valid session.
    pub session: Option<String>,
}

impl Caller {
    pub(super) const NOBODY: Caller = Caller {
        identity: None,
        via: Via::Nothing,
        bad_token: false,
        session: None,
    };

    /// What this caller may do under `config`: the larger of its token's scope and anonymous
    /// access; `None`: nothing that needs a scope.
    pub fn scope(&self, config: &Config) -> Option<Scope> {
        let token = if self.bad_token {
            None
        } else {
            self.identity.as_ref().map(|i| i.scope)
        };
        token.max(config.auth.anonymous.scope())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::NOBODY))
    }
}

/// Who the caller is: `GET /api/session`, and the answer to a sign-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Viewer {
    /// The token's name when signed in (or calling with a token).
    pub name: Option<String>,
    /// What the caller may do: the larger of the token's scope and anonymous access.
    pub scope: Option<Scope>,
    /// What anyone may do without a token.
    pub anonymous: Anonymous,
    /// Whether the caller may enqueue, abort and delete.
    pub can_write: bool,
}

impl Viewer {
    pub fn of(caller: &Caller, config: &Config) -> Viewer {
        let scope = caller.scope(config);
        Viewer {
            name: caller
                .identity
                .as_ref()
                .filter(|_| !caller.bad_token)
                .map(|i| i.name.clone()),
            scope,
            anonymous: config.auth.anonymous,
            can_write: scope >= Some(Scope::Write),
        }
    }
}
