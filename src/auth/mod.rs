//! Who may do what: API tokens, scopes, anonymous access and the decision for one request.
//! Pure but for the OS random number generator (new tokens, session ids): no HTTP, no config
//! files, so every case is a unit test; `config` parses `[auth]` into these types and the API
//! layer turns a [`Denied`] into 401 or 403.
//!
//! - A token is a random string that only its holder knows; the configuration keeps its SHA-256
//!   ([`TokenHash`]) under a name and a [`Scope`]. [`Tokens::verify`] hashes what a client
//!   presents and compares it with every entry in constant time.
//! - [`Anonymous`] is what a request without a token may do; [`Anonymous::resolve`] picks it
//!   when the configuration does not say.
//! - [`access`] decides one request: allowed, [`Denied::Unauthenticated`] or
//!   [`Denied::Forbidden`].
//! - `sessions` keeps dashboard sign-ins: a random session id stands for a token by name.
//!
//! A presented token is never stored, logged or shown: types that hold secrets (a new token, a
//! session id) have a `Debug` that hides them.

pub mod sessions;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
// `subtle` rather than `==`: a byte comparison that stops at the first difference tells an
// attacker, by its timing, how much of a hash they guessed. It is a small, audited crate that
// the tree already builds (rustls depends on it), so it adds no new code to trust.
use subtle::{ConditionallySelectable, ConstantTimeEq};

pub use sessions::{SessionId, Sessions};

/// What a token may do. Ordered: `Read < Write < Admin`, and a scope includes the ones below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Lists, queues, logs, events, files, pages, metrics.
    Read,
    /// Enqueue, abort, delete (and any later write).
    Write,
    /// Everything, including what administers the server itself.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}: use \"read\", \"write\" or \"admin\""))
    }
}

/// What a request without a token may do: `[auth] anonymous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    /// Nothing: every request that needs a scope needs a token.
    None,
    /// Reads.
    Read,
    /// Reads and writes (enqueue runs code): only for a server nobody else can reach.
    Write,
}

impl Anonymous {
    pub const ALL: [Anonymous; 3] = [Anonymous::None, Anonymous::Read, Anonymous::Write];

    pub fn as_str(self) -> &'static str {
        match self {
            Anonymous::None => "none",
            Anonymous::Read => "read",
            Anonymous::Write => "write",
        }
    }

    /// The scope a request without a token has; `None` for none.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Anonymous::None => None,
            Anonymous::Read => Some(Scope::Read),
            Anonymous::Write => Some(Scope::Write),
        }
    }

    /// The value in force: `explicit` when the configuration sets one; else `Write` for a server
    /// on a loopback address without tokens (the two-command start and the demo need none), and
    /// `Read` otherwise. A server reachable from the network with no token and no explicit value
    /// is refused: it would be open to anyone, or to no one, without anybody having said so.
    /// `published`: other names lead to it (`[api] hosts` or `public_url`, e.g. through a
    /// reverse proxy), so a loopback address does not mean that only this machine reaches it.
    pub fn resolve(
        listen: SocketAddr,
        published: bool,
        has_tokens: bool,
        explicit: Option<Anonymous>,
    ) -> Result<Anonymous, Unprotected> {
        let local = is_loopback(listen) && !published;
        match explicit {
            Some(a) => Ok(a),
            None if !has_tokens && local => Ok(Anonymous::Write),
            None if !has_tokens => Err(Unprotected { listen, published }),
            None => Ok(Anonymous::Read),
        }
    }
}

impl fmt::Display for Anonymous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Anonymous {
    type Err = String;
    fn from_str(s: &str) -> Result<Anonymous, String> {
        Anonymous::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown value {s:?}: use \"none\", \"read\" or \"write\""))
    }
}

/// Why [`Anonymous::resolve`] refuses: reachable from other machines, no token, no explicit
/// choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "listening on {listen}{}, which other machines can reach, with no [auth] tokens: make a token \
     with `testarena token new NAME --scope write` and paste the line it prints under \
     [auth] tokens, or set [auth] anonymous explicitly (\"read\": anyone may read, \"write\": \
     anyone may also enqueue, which runs code, \"none\": nobody may)",
    if *published { " and published under [api] hosts or public_url" } else { "" }
)]
pub struct Unprotected {
    pub listen: SocketAddr,
    pub published: bool,
}

/// Whether `addr` is reachable from this machine only (`127.0.0.0/8`, `::1`, or `::ffff:127.…`).
pub fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Who a request is: the token it presented (directly or through a session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's name in the configuration.
    pub name: String,
    pub scope: Scope,
}

/// Why a request may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token, and anonymous requests may not do this: 401.
    #[error(
        "this needs a token with scope {needed}: send `Authorization: Bearer <token>` \
         (TESTARENA_TOKEN for the command line) or sign in"
    )]
    Unauthenticated { needed: Scope },
    /// A token whose scope is too small: 403.
    #[error(
        "this needs a token with scope {needed}, and this one has {has}: use a token made \
         with `testarena token new NAME --scope {needed}`"
    )]
    Forbidden { needed: Scope, has: Scope },
}

impl Denied {
    /// The HTTP status: 401 or 403.
    pub fn http_status(self) -> u16 {
        match self {
            Denied::Unauthenticated { .. } => 401,
            Denied::Forbidden { .. } => 403,
        }
    }
}

/// May a request by `identity` (`None`: no token) do what needs `needed`? A token never gives
/// less than no token, so `anonymous` applies to every request.
pub fn access(
    anonymous: Anonymous,
    identity: Option<&Identity>,
    needed: Scope,
) -> Result<(), Denied> {
    let has = identity.map(|i| i.scope);
    // `None < Some(_)`: the larger of what the token and what anonymity grant.
    if has.max(anonymous.scope()) >= Some(needed) {
        return Ok(());
    }
    match has {
        None => Err(Denied::Unauthenticated { needed }),
        Some(has) => Err(Denied::Forbidden { needed, has }),
    }
}

/// The SHA-256 of a token, as the configuration keeps it: `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a presented or new token.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

impl FromStr for TokenHash {
    type Err = String;
    /// Never repeats its input in the error: someone may have pasted the token itself.
    fn from_str(s: &str) -> Result<TokenHash, String> {
        if s.starts_with(TOKEN_PREFIX) {
            return Err(
                "this is a token, not its hash: put the hash here (the `hash = \"sha256:…\"` \
                 that `testarena token new NAME` prints), and since the token has been written \
                 into a file, make a new one"
                    .to_owned(),
            );
        }
        let mut bytes = [0u8; 32];
        match s.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex::decode_to_slice(hex, &mut bytes).is_ok() => {
                Ok(TokenHash(bytes))
            }
            _ => Err(
                "must be `sha256:` followed by 64 hex digits; make one with `testarena token new NAME`"
                    .to_owned(),
            ),
        }
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret, but not useful in a log either, and one step from a weak token.
        f.write_str("TokenHash(sha256:…)")
    }
}

/// One `[auth] tokens` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub scope: Scope,
    pub hash: TokenHash,
}

/// The configured tokens, names unique and hashes unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    entries: Vec<Token>,
}

impl Tokens {
    /// Checks names (see [`check_token_name`]) and that no name or hash is used twice; the error
    /// says what to change, without the key (the caller knows it).
    pub fn new(entries: Vec<Token>) -> Result<Tokens, String> {
        for (i, t) in entries.iter().enumerate() {
            check_token_name(&t.name).map_err(|m| format!("{:?}: {m}", t.name))?;
            if let Some(first) = entries[..i].iter().find(|e| e.name == t.name) {
                return Err(format!(
                    "two tokens are named {:?}: give each its own name (sessions refer to tokens by name)",
                    first.name
                ));
            }
            if let Some(first) = entries[..i].iter().find(|e| e.hash == t.hash) {
                return Err(format!(
                    "tokens {:?} and {:?} have the same hash: make one token for each with `testarena token new NAME`",
                    first.name, t.name
                ));
            }
        }
        Ok(Tokens { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Token> {
        self.entries.iter()
    }

    /// Who presents `presented`, if it is one of the tokens. Its hash is compared with every
    /// entry, each in constant time, whether or not an earlier one matched.
    pub fn verify(&self, presented: &str) -> Option<Identity> {
        let hash = TokenHash::of(presented);
        // 1 + the index of the entry that matched, 0 for none; chosen without a branch.
        let mut found = 0u64;
        for (i, t) in self.entries.iter().enumerate() {
            let equal = t.hash.0[..].ct_eq(&hash.0[..]);
            found.conditional_assign(&(i as u64 + 1), equal);
        }
        let index = usize::try_from(found.checked_sub(1)?).ok()?;
        self.entries.get(index).map(Token::identity)
    }

    /// The token named `name` as the configuration has it now: a session's scope is resolved
    /// at each request, so a token removed from the file signs its sessions out.
    pub fn by_name(&self, name: &str) -> Option<Identity> {
        self.entry(name).map(Token::identity)
    }

    fn entry(&self, name: &str) -> Option<&Token> {
        self.entries.iter().find(|t| t.name == name)
    }
}

impl Token {
    fn identity(&self) -> Identity {
        Identity {
            name: self.name.clone(),
            scope: self.scope,
        }
    }
}

/// A token name: 1 to 64 letters, digits, `-`, `_` and `.`.
pub fn check_token_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err("a token name is 1 to 64 letters, digits, '-', '_' and '.'".to_owned())
    }
}

/// What every token starts with, so that one found in a file or a log can be recognized.
pub const TOKEN_PREFIX: &str = "ta_";

/// 32 bytes from the operating system's random number generator, as 64 hex digits.
///
/// # Panics
/// If the OS has no random number generator to give (on Linux: never, once booted).
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator works");
    hex::encode(bytes)
}

/// A new token: `testarena token new NAME --scope SCOPE`.
pub struct NewToken {
    /// The token itself, shown once and then only its holder has it.
    pub token: String,
    /// The `[auth] tokens` entry that admits it, a line of TOML ending in a comma.
    pub entry: String,
}

impl NewToken {
    /// A random token (`ta_` and 64 hex digits) for `name` with `scope`.
    pub fn generate(name: &str, scope: Scope) -> Result<NewToken, String> {
        check_token_name(name).map_err(|m| format!("invalid name {name:?}: {m}"))?;
        let token = format!("{TOKEN_PREFIX}{}", random_hex());
        let entry = format!(
            "{{ name = \"{name}\", scope = \"{scope}\", hash = \"{}\" }},",
            TokenHash::of(&token)
        );
        Ok(NewToken { token, entry })
    }
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("token", &"…")
            .field("entry", &self.entry)
            .finish()
    }
}

#[cfg(test)]
mod tests;
