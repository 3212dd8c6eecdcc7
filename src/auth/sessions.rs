//! Dashboard sign-ins. A browser that signed in with a token holds a cookie with a random session
//! id, never the token; the server maps the id to the token's name (and hash) until it expires.
//!
//! In memory only: a restart signs everybody out, which costs a sign-in and keeps tokens out of
//! the store. At most [`MAX_SESSIONS`], the oldest evicted first, so sign-ins cannot fill memory.
//! A session has no scope of its own: [`Sessions::identity`] resolves it from the tokens in force
//! at each request, so a token removed from the configuration, or replaced by a new one of the
//! same name, signs its sessions out.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock: `tokio::time::pause()` and `advance` move it in tests; outside a paused
// runtime it is the monotonic clock.
use tokio::time::Instant;

use super::{Identity, TokenHash, Tokens, random_hex};

/// The most sessions kept at once; signing in beyond it ends the oldest session.
pub const MAX_SESSIONS: usize = 10_000;

/// A random session id (32 bytes from the OS, 64 hex digits): what the cookie holds. Whoever has
/// it is signed in, so it is kept out of `Debug` and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// The value for the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(…)")
    }
}

/// The signed-in sessions: a cheap handle, clones share them.
#[derive(Clone)]
pub struct Sessions {
    // A std mutex: every critical section is a few map operations, never held across `.await`.
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    ttl: Duration,
    /// Increases with every session: orders them by age.
    next_seq: u64,
    by_id: HashMap<String, Session>,
    /// Session ids by `seq`, oldest first: what is evicted and what expires first.
    by_age: BTreeMap<u64, String>,
}

struct Session {
    name: String,
    /// The token's hash when the session began: a new token under the same name does not
    /// inherit the session.
    hash: TokenHash,
    expires: Instant,
    seq: u64,
}

impl Sessions {
    /// No sessions yet; each new one lasts `ttl` (`[auth] session_ttl`).
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            inner: Arc::new(Mutex::new(Inner {
                ttl,
                next_seq: 0,
                by_id: HashMap::new(),
                by_age: BTreeMap::new(),
            })),
        }
    }

    /// How long a new session lasts (for the cookie's `Max-Age`).
    pub fn ttl(&self) -> Duration {
        self.lock().ttl
    }

    /// Sessions begun from now on last `ttl` (a reloaded configuration); existing ones keep
    /// their expiry.
    pub fn set_ttl(&self, ttl: Duration) {
        self.lock().ttl = ttl;
    }

    /// Signs in as the token named `name` (just verified against `tokens`); `None` when `tokens`
    /// has no such token. Ends the oldest session if [`MAX_SESSIONS`] are open.
    pub fn create(&self, tokens: &Tokens, name: &str) -> Option<SessionId> {
        let hash = tokens.entry(name)?.hash;
        let id = random_hex();
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove_expired(now);
        while inner.by_id.len() >= MAX_SESSIONS {
            let Some((_, oldest)) = inner.by_age.pop_first() else {
                break;
            };
            inner.by_id.remove(&oldest);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let expires = now.checked_add(inner.ttl).unwrap_or(now);
        inner.by_age.insert(seq, id.clone());
        let session = Session {
            name: name.to_owned(),
            hash,
            expires,
            seq,
        };
        inner.by_id.insert(id.clone(), session);
        Some(SessionId(id))
    }

    /// The token name of session `id`, if it exists and has not expired (an expired one is
    /// removed). Not the scope: see [`Sessions::identity`].
    pub fn lookup(&self, id: &str) -> Option<String> {
        let mut inner = self.lock();
        let session = inner.by_id.get(id)?;
        if session.expires <= Instant::now() {
            inner.remove(id);
            return None;
        }
        Some(session.name.clone())
    }

    /// Who session `id` is now: its token as `tokens` has it, with the token's current scope.
    /// `None`, and the session ended, when it has expired or its token is gone or was replaced.
    pub fn identity(&self, id: &str, tokens: &Tokens) -> Option<Identity> {
        let mut inner = self.lock();
        let session = inner.by_id.get(id)?;
        let current = tokens
            .entry(&session.name)
            .filter(|t| t.hash == session.hash);
        match current {
            Some(token) if session.expires > Instant::now() => Some(token.identity()),
            _ => {
                inner.remove(id);
                None
            }
        }
    }

    /// Signs out; nothing happens if there is no such session.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Sessions kept, expired ones included until they are next looked at.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The maps stay consistent even if a holder panicked: every change is one insert or
        // remove on each, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn remove(&mut self, id: &str) {
        if let Some(s) = self.by_id.remove(id) {
            self.by_age.remove(&s.seq);
        }
    }

    /// Ends the oldest sessions while they have expired (with one `ttl` they expire in order).
    fn remove_expired(&mut self, now: Instant) {
        while let Some((_, id)) = self.by_age.first_key_value() {
            match self.by_id.get(id) {
                Some(s) if s.expires > now => break,
                _ => {
                    let (_, id) = self.by_age.pop_first().expect("a first entry");
                    self.by_id.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Scope, Token};
    use super::*;

    fn tokens(list: &[(&str, Scope, &str)]) -> Tokens {
        let entries = list
            .iter()
            .map(|&(name, scope, token)| Token {
                name: name.to_owned(),
                scope,
                hash: TokenHash::of(token),
            })
            .collect();
        Tokens::new(entries).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_stands_for_its_token_until_it_expires() {
        let t = tokens(&[("ci", Scope::Write, "ta_1")]);
        let s = Sessions::new(Duration::from_secs(60));
        assert!(s.create(&t, "nobody").is_none(), "only a configured token");
        let id = s.create(&t, "ci").unwrap();
        assert_eq!(id.as_str().len(), 64);
        assert!(id.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(s.create(&t, "ci").unwrap(), id, "every session id is new");
        assert_eq!(s.lookup(id.as_str()).as_deref(), Some("ci"));
        let who = s.identity(id.as_str(), &t).unwrap();
        assert_eq!((who.name.as_str(), who.scope), ("ci", Scope::Write));
        assert_eq!(s.lookup("0".repeat(64).as_str()), None);

        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(s.identity(id.as_str(), &t).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.identity(id.as_str(), &t), None, "expired");
        assert_eq!(
            s.len(),
            1,
            "the expired session is gone, the other is not yet"
        );
        assert_eq!(s.lookup(id.as_str()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_sessions_go_on_lookup_and_when_others_begin() {
        let t = tokens(&[("ci", Scope::Read, "ta_1")]);
        let s = Sessions::new(Duration::from_secs(10));
        let old = s.create(&t, "ci").unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(s.lookup(old.as_str()), None);
        assert!(s.is_empty());
        s.create(&t, "ci").unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        s.set_ttl(Duration::from_secs(30));
        assert_eq!(s.ttl(), Duration::from_secs(30));
        let new = s.create(&t, "ci").unwrap();
        assert_eq!(s.len(), 1, "the expired one was swept");
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(s.lookup(new.as_str()).is_some(), "the new ttl applies");
    }

    #[tokio::test(start_paused = true)]
    async fn removing_or_replacing_a_token_signs_its_sessions_out() {
        let before = tokens(&[("ci", Scope::Write, "ta_1"), ("ro", Scope::Read, "ta_2")]);
        let s = Sessions::new(Duration::from_secs(3600));
        let ci = s.create(&before, "ci").unwrap();
        let ro = s.create(&before, "ro").unwrap();
        // The file changes: "ci" is now read-only, "ro" got a new token.
        let after = tokens(&[("ci", Scope::Read, "ta_1"), ("ro", Scope::Read, "ta_3")]);
        assert_eq!(s.identity(ci.as_str(), &after).unwrap().scope, Scope::Read);
        assert_eq!(
            s.identity(ro.as_str(), &after),
            None,
            "a new token, a new sign-in"
        );
        assert_eq!(s.lookup(ro.as_str()), None, "and the session is gone");
        assert_eq!(s.identity(ci.as_str(), &Tokens::default()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn sign_out_and_the_bound() {
        let t = tokens(&[("ci", Scope::Write, "ta_1")]);
        let s = Sessions::new(Duration::from_secs(3600));
        let first = s.create(&t, "ci").unwrap();
        let second = s.create(&t, "ci").unwrap();
        s.remove(first.as_str());
        s.remove(first.as_str());
        assert_eq!(s.lookup(first.as_str()), None);
        for _ in 1..MAX_SESSIONS {
            s.create(&t, "ci").unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            s.lookup(second.as_str()).is_some(),
            "still within the bound"
        );
        let newest = s.create(&t, "ci").unwrap();
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(s.lookup(second.as_str()), None, "the oldest was evicted");
        assert!(s.lookup(newest.as_str()).is_some());
        let shown = format!("{s:?} {newest:?}");
        assert!(!shown.contains(newest.as_str()), "{shown}");
    }
}
