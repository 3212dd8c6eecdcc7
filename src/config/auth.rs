//! The `[auth]` section (tokens, anonymous access, session lifetime) and the `[api]` keys that
//! say how the server is reached: `hosts` and `public_url`.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::values::Dur;
use super::{ApiConfig, ConfigError, invalid, nonzero};
use crate::auth::{Anonymous, Scope, Token, TokenHash, Tokens, is_loopback};

/// Who may do what.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub tokens: Tokens,
    /// What a request without a token may do: `[auth] anonymous` when set, else resolved from
    /// the tokens and `listen` (see [`Anonymous::resolve`]).
    pub anonymous: Anonymous,
    /// Whether `anonymous` was set rather than resolved (for the start-up log).
    pub anonymous_explicit: bool,
    /// How long a dashboard sign-in lasts.
    pub session_ttl: Duration,
}

/// Browsers keep a cookie at most 400 days (RFC 6265bis), so a longer session could not last.
const MAX_SESSION_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthLayer {
    pub tokens: Option<Vec<TokenLayer>>,
    pub anonymous: Option<Anonymous>,
    pub session_ttl: Option<Dur>,
}

/// One `[auth] tokens` entry as written; checked in [`AuthLayer::finish`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenLayer {
    name: Option<String>,
    scope: Option<Scope>,
    hash: Option<String>,
}

impl fmt::Debug for TokenLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `hash` may hold a token pasted by mistake: never shown.
        f.debug_struct("TokenLayer")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    pub fn apply(&mut self, other: AuthLayer) {
        take!(self, other, tokens, anonymous, session_ttl);
    }

    /// Checks the tokens and resolves `anonymous` for the final `listen` address (after the
    /// `--listen` flag and `TESTARENA_LISTEN`).
    /// `published`: `[api] hosts` or `public_url` is set (see [`Anonymous::resolve`]).
    pub fn finish(
        self,
        origin: &str,
        listen: SocketAddr,
        published: bool,
    ) -> Result<AuthConfig, ConfigError> {
        let example = "e.g. { name = \"ci\", scope = \"write\", hash = \"sha256:…\" }, as \
                       `testarena token new NAME` prints it";
        let mut entries = Vec::new();
        for (i, t) in self.tokens.unwrap_or_default().into_iter().enumerate() {
            let key = |k: &str| format!("auth.tokens[{i}].{k}");
            let missing = |k: &str| invalid(origin, format!("{}: missing; {example}", key(k)));
            let name = t.name.ok_or_else(|| missing("name"))?;
            let scope = t.scope.ok_or_else(|| missing("scope"))?;
            let hash = t.hash.ok_or_else(|| missing("hash"))?;
            let hash: TokenHash = hash
                .trim()
                .parse()
                .map_err(|m| invalid(origin, format!("{} (token {name:?}): {m}", key("hash"))))?;
            entries.push(Token { name, scope, hash });
        }
        let tokens =
            Tokens::new(entries).map_err(|m| invalid(origin, format!("auth.tokens: {m}")))?;
        let anonymous = Anonymous::resolve(listen, published, !tokens.is_empty(), self.anonymous)
            .map_err(|e| invalid(origin, format!("auth: {e}")))?;
        let session_ttl = nonzero(origin, "auth.session_ttl", self.session_ttl)?;
        if session_ttl > MAX_SESSION_TTL {
            return Err(invalid(
                origin,
                "auth.session_ttl: must be at most 400 days (\"9600h\"), the longest a browser keeps a cookie",
            ));
        }
        Ok(AuthConfig {
            tokens,
            anonymous,
            anonymous_explicit: self.anonymous.is_some(),
            session_ttl,
        })
    }
}

/// An `[api] hosts` entry: a host name or address, with a port or for any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lowercase, without a trailing dot; an IPv6 address in brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

impl HostPattern {
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && (self.port.is_none() || self.port == port)
    }
}

/// Splits a `Host` header or a `hosts` entry into a lowercase host and a port: `name`,
/// `name:port`, `1.2.3.4:port`, `[::1]:port`. `None` when it is neither.
fn split_host(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        addr.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{addr}]"), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text.as_str(), None),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        let name_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if host.is_empty() || !host.chars().all(name_chars) {
            return None;
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host, port))
}

/// Checks `[api] hosts`.
pub(super) fn parse_hosts(
    origin: &str,
    list: Vec<String>,
) -> Result<Vec<HostPattern>, ConfigError> {
    list.into_iter()
        .map(|entry| {
            let bad = |why: &str| invalid(origin, format!("api.hosts: {entry:?}: {why}"));
            if entry.contains("://") {
                return Err(bad(
                    "a host name without a scheme, e.g. \"ci.example.org\" (the URL goes in api.public_url)",
                ));
            }
            if entry.contains('/') {
                return Err(bad("a host name without a path, e.g. \"ci.example.org\""));
            }
            let (host, port) = split_host(&entry).ok_or_else(|| {
                bad("use a host name or address with an optional port, e.g. \"ci.example.org\" or \"ci.example.org:8443\"")
            })?;
            Ok(HostPattern { host, port })
        })
        .collect()
}

/// Checks `[api] public_url`: empty for none, else an http or https URL without a path.
pub(super) fn parse_public_url(
    origin: &str,
    value: Option<String>,
) -> Result<Option<Url>, ConfigError> {
    let value = value.unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| invalid(origin, format!("api.public_url: {value:?}: {why}"));
    let use_ = "use the address users reach this server at, e.g. \"https://ci.example.org\"";
    let url = Url::parse(value).map_err(|_| bad(use_))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(use_));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "the server is served from the root of its address: leave out the path, query and fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("leave out the user name and password"));
    }
    Ok(Some(url))
}

impl ApiConfig {
    /// Whether a request whose `Host` header is `host_header` is for this server (else 421):
    /// the listed `hosts`, the host of `public_url`, and, on a loopback `listen` address,
    /// `localhost`, `127.0.0.1` and `[::1]` with any port. A browser tricked by DNS rebinding
    /// sends the attacker's name, which is none of these; so a loopback server answers to its
    /// loopback names only unless told more. On any other address with neither `hosts` nor
    /// `public_url` set, any name is taken.
    pub fn host_allowed(&self, host_header: &str, listen: SocketAddr) -> bool {
        if self.hosts.is_empty() && self.public_url.is_none() && !is_loopback(listen) {
            return true;
        }
        let Some((host, port)) = split_host(host_header) else {
            return false;
        };
        if is_loopback(listen) && matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
            return true;
        }
        let public = self.public_url.as_ref().and_then(|u| {
            let (public_host, _) = split_host(u.host_str()?)?;
            Some((public_host, u.port_or_known_default()))
        });
        // Browsers leave out the port when it is the scheme's default.
        let is_public = public.is_some_and(|(h, p)| h == host && (port.is_none() || port == p));
        is_public || self.hosts.iter().any(|p| p.matches(&host, port))
    }

    /// Whether the session cookie gets `Secure`: users reach the server over https.
    pub fn cookie_secure(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::config::{Config, Overrides};

    fn err(text: &str) -> String {
        Config::from_toml("my.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn api_hosts_and_public_url() {
        let d = Config::defaults().api;
        assert!(d.hosts.is_empty() && d.public_url.is_none() && !d.cookie_secure());
        let c = Config::from_toml(
            "my.toml",
            "[api]\nhosts = [\"CI.example.org\", \"ci.example.org.:8443\", \"10.0.0.5:8080\", \"[fd00::1]\"]\npublic_url = \"https://ci.example.org/\"\n[auth]\nanonymous = \"read\"",
        )
        .unwrap();
        let hosts: Vec<String> = c.api.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(
            hosts,
            [
                "ci.example.org",
                "ci.example.org:8443",
                "10.0.0.5:8080",
                "[fd00::1]"
            ]
        );
        assert!(c.api.cookie_secure());
        let env = [
            (
                "TESTARENA_API_HOSTS".to_owned(),
                "a.example, b.example:81".to_owned(),
            ),
            ("TESTARENA_AUTH_ANONYMOUS".to_owned(), "read".to_owned()),
        ];
        let c = Config::load(&Overrides::default(), env).unwrap();
        let hosts: Vec<String> = c.api.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["a.example", "b.example:81"]);

        for (entry, says) in [
            ("https://ci.example.org", "without a scheme"),
            ("ci.example.org/testarena", "without a path"),
            ("", "host name or address"),
            ("ci.example.org:http", "host name or address"),
            ("::1", "host name or address"),
            ("user@ci.example.org", "host name or address"),
        ] {
            let e = err(&format!("[api]\nhosts = [\"{entry}\"]"));
            assert!(
                e.contains("my.toml: api.hosts") && e.contains(says),
                "{entry}: {e}"
            );
        }
        let secure = |url: &str| {
            let text = format!("[api]\npublic_url = \"{url}\"\n[auth]\nanonymous = \"read\"");
            Config::from_toml("my.toml", &text)
                .map(|c| c.api.cookie_secure())
                .map_err(|e| e.to_string())
        };
        assert_eq!(secure("https://ci.example.org"), Ok(true));
        assert_eq!(secure("http://ci.example.org:8080/"), Ok(false));
        assert_eq!(secure(""), Ok(false));
        for (bad, says) in [
            ("ci.example.org", "e.g. \"https://ci.example.org\""),
            ("ftp://ci.example.org", "e.g. \"https://ci.example.org\""),
            ("https://ci.example.org/testarena", "leave out the path"),
            ("https://ci.example.org/?a=b", "leave out the path"),
            ("https://me:pw@ci.example.org", "user name and password"),
        ] {
            let e = secure(bad).unwrap_err();
            assert!(
                e.contains("my.toml: api.public_url") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn host_header_checks() {
        let api = |hosts: &[&str], public_url: &str| {
            let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
            let text = format!(
                "[api]\nhosts = [{}]\npublic_url = \"{public_url}\"\n[auth]\nanonymous = \"read\"",
                hosts.join(", ")
            );
            Config::from_toml("my.toml", &text).unwrap().api
        };
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let open: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        // Neither set, on an open address: any Host at all.
        let any = api(&[], "");
        for h in ["evil.example", "localhost:8080", "", "a b"] {
            assert!(any.host_allowed(h, open), "{h:?}");
        }
        // Neither set, on loopback: its loopback names only (DNS rebinding sends another).
        for (h, expected) in [
            ("evil.example", false),
            ("evil.example:8080", false),
            ("", false),
            ("localhost:8080", true),
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
        ] {
            assert_eq!(any.host_allowed(h, lo), expected, "{h:?}");
        }
        let set = api(
            &["ci.example.org", "alt.example.org:8443"],
            "https://public.example.org",
        );
        let check = |host: &str, listen: SocketAddr, expected: bool| {
            assert_eq!(
                set.host_allowed(host, listen),
                expected,
                "{host:?} on {listen}"
            );
        };
        for (host, on_loopback, on_open) in [
            ("ci.example.org", true, true),
            ("CI.Example.Org:8080", true, true),
            ("ci.example.org.", true, true),
            ("alt.example.org:8443", true, true),
            ("alt.example.org", false, false),
            ("alt.example.org:443", false, false),
            ("public.example.org", true, true),
            ("public.example.org:443", true, true),
            ("public.example.org:8443", false, false),
            ("localhost", true, false),
            ("localhost:8080", true, false),
            ("127.0.0.1:9999", true, false),
            ("[::1]:8080", true, false),
            ("[::1]", true, false),
            ("evil.example", false, false),
            ("evil.example:8080", false, false),
            ("ci.example.org.evil.example", false, false),
            ("", false, false),
            ("ci.example.org:", false, false),
            ("ci.example.org/x", false, false),
            ("[::1", false, false),
        ] {
            check(host, lo, on_loopback);
            check(host, open, on_open);
        }
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        check("localhost", v6, true);
    }
}
