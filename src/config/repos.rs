//! `[worker] allowed_repos`: the only places repositories are fetched from (queues, webhook
//! deliveries and their submodules). An entry is
//! - a URL prefix with its scheme: `"https://gitea.example.org/"` (`https`, `http`, `ssh`, `git`);
//! - an scp-style ssh prefix: `"git@"`, `"git@gitea.example.org:"`;
//! - an absolute directory: `"/srv/git/"`, for local repositories under it.
//!
//! A repository is read the way git reads it: `scheme://…` is a URL, a `:` before any `/`
//! (`git@host:team/fw.git`) is scp-style ssh, anything else a local path. git's
//! `transport::address` form, relative paths and `file://` URLs are never allowed (list the
//! directory instead). Prefixes end on a boundary: `https://gitea.example.org` does not allow
//! `https://gitea.example.org.evil/`, `/srv/git` does not allow `/srv/gitevil`. A local path is
//! resolved (symlinks, `..`) before it is compared, so `/srv/git/../../etc` is `/etc`.
//!
//! The entries also decide which of git's transports may run at all (`GIT_ALLOW_PROTOCOL`).

use std::path::{Component, Path, PathBuf};

/// The key, as messages name it.
pub const KEY: &str = "[worker] allowed_repos";

/// URL schemes an entry may name (git's own transports; `file://` is a directory entry).
const SCHEMES: &[&str] = &["https", "http", "ssh", "git"];

/// Where repositories may come from; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRepos {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// As the operator wrote it, for messages.
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Url { scheme: String },
    Scp,
    Dir(PathBuf),
}

/// A repository location, classified as git will read it.
enum Location<'a> {
    Url { rest: &'a str },
    Scp { host: &'a str, path: &'a str },
    Local(&'a Path),
}

impl AllowedRepos {
    /// Parses the entries; the error says which entry and what to write instead.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedRepos, String> {
        let mut allowed = AllowedRepos {
            entries: Vec::new(),
        };
        for e in entries {
            allowed.push(e.as_ref())?;
        }
        if allowed.entries.is_empty() {
            return Err(
                "must list at least one place, e.g. [\"https://gitea.example.org/\"]".into(),
            );
        }
        Ok(allowed)
    }

    /// Adds one entry.
    pub fn push(&mut self, entry: &str) -> Result<(), String> {
        let entry = parse_entry(entry)?;
        if !self.entries.contains(&entry) {
            self.entries.push(entry);
        }
        Ok(())
    }

    /// Whether local directories are allowed (git's `file` transport is needed).
    pub fn allows_local(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.kind, Kind::Dir(_)))
    }

    /// `GIT_ALLOW_PROTOCOL`: the transports the entries need, e.g. `https:ssh`; scp-style
    /// locations are `ssh`, directories `file`.
    pub fn git_protocols(&self) -> String {
        let mut out: Vec<&str> = Vec::new();
        for e in &self.entries {
            let p = match &e.kind {
                Kind::Url { scheme } => scheme.as_str(),
                Kind::Scp => "ssh",
                Kind::Dir(_) => "file",
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out.join(":")
    }

    /// Ok if `repo` is in one of the allowed places; otherwise what is wrong and what to change,
    /// naming [`KEY`]. Reads the filesystem for local paths (symlinks).
    pub fn check(&self, repo: &str) -> Result<(), String> {
        let refused = |why: &str| Err(format!("repo {repo:?}: {why}"));
        let location = match locate(repo) {
            Ok(l) => l,
            Err(why) => return refused(&why),
        };
        let allowed = match location {
            Location::Url { rest } => {
                if has_dot_segment(rest.split_once('/').map_or("", |(_, p)| p)) {
                    return refused("a URL must not contain '.' or '..' path segments");
                }
                self.entries.iter().any(|e| match e.kind {
                    Kind::Url { .. } => prefix_matches(&e.text, repo, &['/']),
                    _ => false,
                })
            }
            Location::Scp { host, path } => {
                if host.starts_with('-') || host.contains("@-") {
                    return refused("a host must not start with '-'");
                }
                if has_dot_segment(path) {
                    return refused("the path must not contain '.' or '..' segments");
                }
                self.entries.iter().any(|e| match e.kind {
                    Kind::Scp => prefix_matches(&e.text, repo, &[':', '/']),
                    _ => false,
                })
            }
            Location::Local(path) => {
                let Some(resolved) = resolve(path) else {
                    return refused(&format!(
                        "a '..' after a directory that does not exist cannot be resolved: give the repository's own path, under {KEY}"
                    ));
                };
                let inside = self.entries.iter().any(|e| match &e.kind {
                    Kind::Dir(dir) => resolve(dir).is_some_and(|d| resolved.starts_with(d)),
                    _ => false,
                });
                if !inside && resolved != path {
                    return Err(format!(
                        "repo {repo:?} is {}, which {}",
                        resolved.display(),
                        self.not_listed()
                    ));
                }
                inside
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(format!("repo {repo:?} {}", self.not_listed()))
        }
    }

    fn not_listed(&self) -> String {
        let list: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{:?}", e.text))
            .collect();
        format!(
            "is not in {KEY} ({}): use a repository from one of those places, or have the server's operator add its URL prefix or directory to {KEY}",
            list.join(", ")
        )
    }
}

fn parse_entry(text: &str) -> Result<Entry, String> {
    let bad = |m: &str| Err(format!("{text:?}: {m}"));
    let examples = "use a URL prefix such as \"https://gitea.example.org/\", an scp-style prefix such as \"git@gitea.example.org:\" or an absolute directory such as \"/srv/git/\"";
    if text.trim().is_empty() {
        return Err(format!("an entry must not be empty: {examples}"));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must not contain spaces or control characters");
    }
    if text.starts_with('-') {
        return bad("must not start with '-'");
    }
    let kind = if let Some((scheme, _)) = text.split_once("://")
        && is_scheme(scheme)
    {
        if scheme == "file" {
            return bad(
                "file:// URLs are not allowed: list the directory itself, e.g. \"/srv/git/\"",
            );
        }
        if !SCHEMES.contains(&scheme) {
            return bad(&format!(
                "unknown scheme {scheme:?}: use one of {}, or an absolute directory",
                SCHEMES.join(", ")
            ));
        }
        Kind::Url {
            scheme: scheme.to_owned(),
        }
    } else if text.starts_with('/') {
        let path = Path::new(text);
        if path.components().any(|c| c == Component::ParentDir) {
            return bad("a directory must not contain '..'");
        }
        Kind::Dir(path.components().collect())
    } else {
        let head = text.split('/').next().unwrap_or_default();
        if head.contains("::") {
            return bad("git's transport::address form is not allowed");
        }
        if head.contains(':') || (!text.contains('/') && text.contains('@')) {
            Kind::Scp
        } else {
            return Err(format!(
                "{text:?} is not a URL prefix with a scheme, an scp-style prefix or an absolute directory: {examples}"
            ));
        }
    };
    Ok(Entry {
        text: text.to_owned(),
        kind,
    })
}

/// How git will read `repo`, or why it is never allowed.
fn locate(repo: &str) -> Result<Location<'_>, String> {
    if let Some((scheme, rest)) = repo.split_once("://")
        && is_scheme(scheme)
    {
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.starts_with('-') || authority.contains("@-") {
            return Err("a host must not start with '-'".into());
        }
        return Ok(Location::Url { rest });
    }
    let head = repo.split('/').next().unwrap_or_default();
    if head.contains("::") {
        return Err(format!(
            "git's transport::address form is never allowed: use a URL or a path under {KEY}"
        ));
    }
    if let Some((host, path)) = repo.split_once(':')
        && !host.contains('/')
    {
        return Ok(Location::Scp { host, path });
    }
    if repo.starts_with('/') {
        Ok(Location::Local(Path::new(repo)))
    } else {
        Err(format!(
            "a relative path is never allowed: give a URL or an absolute path under {KEY}"
        ))
    }
}

/// git's URL scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `s` starts with `prefix`, and the prefix ends on a boundary: it ends with `/`, `:` or `@`,
/// or what follows it in `s` is nothing or one of `next`.
fn prefix_matches(prefix: &str, s: &str, next: &[char]) -> bool {
    let Some(rest) = s.strip_prefix(prefix) else {
        return false;
    };
    prefix.ends_with(['/', ':', '@']) || rest.is_empty() || rest.starts_with(next)
}

/// A `.` or `..` segment in a URL path, also percent-encoded (`%2e%2e`, `..%2f`).
fn has_dot_segment(path: &str) -> bool {
    let path = path
        .to_ascii_lowercase()
        .replace("%2e", ".")
        .replace("%2f", "/");
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/').any(|s| s == "." || s == "..")
}

/// `path` as the kernel will find it, symlinks and `..` resolved. A path that does not exist
/// (yet) is resolved as far as it exists; a `..` in the rest is refused (`None`): what it
/// means depends on what is created later.
fn resolve(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut rest = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(base) = existing.canonicalize() {
            return Some(rest.iter().rev().fold(base, |p, c| p.join(c)));
        }
        rest.push(existing.file_name()?);
        existing = existing.parent()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> AllowedRepos {
        AllowedRepos::parse(entries).unwrap()
    }

    fn default() -> AllowedRepos {
        allowed(&["https://", "ssh://", "git@"])
    }

    #[test]
    fn the_default_allows_https_ssh_and_scp_style_only() {
        let d = default();
        for good in [
            "https://gitea.example.org/team/fw.git",
            "ssh://git@gitea.example.org:2222/team/fw.git",
            "git@gitea.example.org:team/fw.git",
        ] {
            assert_eq!(d.check(good), Ok(()), "{good}");
        }
        for bad in [
            "/srv/git/fw",
            "file:///srv/git/fw",
            "http://gitea.example.org/fw.git",
            "git://gitea.example.org/fw.git",
            "ext::sh -c touch% /tmp/x",
            "fd::17",
            "fw",
            "./fw",
            "git@/etc",
            "gitea.example.org:fw.git",
        ] {
            let e = d.check(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(d.git_protocols(), "https:ssh");
        assert!(!d.allows_local());
        let e = d.check("/srv/git/fw").unwrap_err();
        assert!(
            e.contains("[worker] allowed_repos") && e.contains("\"https://\""),
            "{e}"
        );
    }

    #[test]
    fn url_prefixes_end_on_a_boundary() {
        let a = allowed(&["https://gitea.example.org", "git@gitea.example.org"]);
        assert_eq!(a.check("https://gitea.example.org/team/fw.git"), Ok(()));
        assert_eq!(a.check("git@gitea.example.org:team/fw.git"), Ok(()));
        for bad in [
            "https://gitea.example.org.evil.com/team/fw.git",
            "https://gitea.example.org@evil.com/fw.git",
            "https://gitea.example.org:8443/fw.git",
            "git@gitea.example.org.evil.com:fw.git",
            "https://gitea.example.org/team/../../other/fw.git",
            "https://gitea.example.org/team/%2e%2E/x.git",
            "git@gitea.example.org:team/../x.git",
        ] {
            assert!(a.check(bad).is_err(), "{bad}");
        }
        let team = allowed(&["https://gitea.example.org/team/"]);
        assert!(team.check("https://gitea.example.org/team/fw.git").is_ok());
        assert!(
            team.check("https://gitea.example.org/team-evil/fw.git")
                .is_err()
        );
        assert!(
            team.check("https://gitea.example.org/other/fw.git")
                .is_err()
        );
    }

    #[test]
    fn hosts_that_look_like_options_are_refused() {
        let d = default();
        assert!(d.check("git@-oProxyCommand=x:fw").is_err());
        assert!(d.check("ssh://-oProxyCommand=x/fw").is_err());
        assert!(d.check("ssh://git@-oProxyCommand=x/fw").is_err());
    }

    #[test]
    fn directories_match_whole_components_after_resolving() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let git = base.join("git");
        std::fs::create_dir_all(git.join("fw")).unwrap();
        std::fs::create_dir_all(base.join("gitevil/fw")).unwrap();
        std::fs::create_dir_all(base.join("secret")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), git.join("link")).unwrap();
        let a = allowed(&[&git.display().to_string()]);
        assert!(a.allows_local());
        assert_eq!(a.git_protocols(), "file");
        let ok = |p: &str| a.check(&format!("{}/{p}", base.display()));
        assert_eq!(ok("git/fw"), Ok(()));
        assert_eq!(ok("git/fw/"), Ok(()));
        assert_eq!(ok("git/./fw"), Ok(()));
        assert_eq!(
            ok("git/not-yet"),
            Ok(()),
            "a missing repository fails later, at the clone"
        );
        assert!(ok("gitevil/fw").is_err());
        assert!(ok("git/../secret").is_err());
        assert!(ok("git/../../../../etc").is_err());
        assert!(ok("git/link").is_err(), "a symlink out of the directory");
        assert!(
            ok("git/link/x")
                .unwrap_err()
                .contains("[worker] allowed_repos")
        );
        // The kernel's `..` after a symlink is the parent of its target: back inside here.
        assert_eq!(ok("git/link/../git/fw"), Ok(()));
        assert!(ok("git/missing/../../secret").is_err());
        let e = ok("git/../secret").unwrap_err();
        let secret = base.join("secret").display().to_string();
        assert!(
            e.contains(&format!("/git/../secret\" is {secret}, which is not in")),
            "{e}"
        );
        assert!(
            a.check(&format!("file://{}/git/fw", base.display()))
                .is_err()
        );
        // With or without a trailing '/', the entry is the directory.
        let slash = allowed(&[&format!("{}/", git.display())]);
        assert!(slash.check(&format!("{}/fw", git.display())).is_ok());
        assert!(slash.check(&format!("{}evil/fw", git.display())).is_err());
    }

    #[test]
    fn bad_entries_are_refused_with_what_to_write() {
        for (bad, says) in [
            ("", "must not be empty"),
            ("  ", "must not be empty"),
            ("srv/git", "absolute directory"),
            ("./git", "absolute directory"),
            ("file:///srv/git/", "list the directory itself"),
            ("ftp://x/", "unknown scheme"),
            ("ext::sh", "transport::address"),
            ("/srv/../etc", "'..'"),
            ("-oProxy", "'-'"),
            ("https://a b/", "spaces"),
        ] {
            let e = AllowedRepos::parse(&[bad]).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let none: [&str; 0] = [];
        assert!(
            AllowedRepos::parse(&none)
                .unwrap_err()
                .contains("at least one")
        );
        let mixed = allowed(&["http://gitea.lan/", "git@", "ssh://", "/srv/git"]);
        assert_eq!(mixed.git_protocols(), "http:ssh:file");
    }
}
