//! `GET /badge.svg?repo=URL&branch=NAME[&environment=ENV]`: an SVG badge with the outcome of
//! the newest finished queue of a repository's branch (and environment), for a README.
//!
//! Finished means an outcome that says something about the code: `passed` (green), `failed`
//! (red), `error` or `timed_out` (orange). An aborted queue (a user's abort, a superseded run)
//! is passed over; with no finished queue the badge says `unknown` (grey). The repository and
//! branch are matched exactly as the queues were enqueued with them. The newest is the newest to
//! arrive, found in the store's branch index in one lookup however long the history, and
//! whatever branch name a client asks for.
//!
//! The answer is `image/svg+xml` with `Cache-Control: no-cache`, so that the image a README
//! shows follows the branch (an image proxy revalidates it instead of keeping it).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiQuery;
use crate::model::Status;

/// The longest `repo`, `branch` or `environment` taken, in bytes.
const MAX_VALUE: usize = 2048;
/// A badge is an image: nothing in it runs, nor loads anything, even opened on its own.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// What one badge asks for.
#[derive(Debug, PartialEq, Eq)]
struct Query {
    repo: String,
    branch: String,
    environment: Option<String>,
}

/// `GET /badge.svg`.
pub async fn badge(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let q = parse(params)?;
    let newest = state
        .store
        .newest_of_branch(q.repo, q.branch, q.environment)
        .await?;
    let (message, color) = look(newest.map(|q| q.status));
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        svg("TestArena", message, color),
    )
        .into_response())
}

fn parse(mut params: HashMap<String, String>) -> Result<Query, ApiError> {
    if let Some(other) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "repo" | "branch" | "environment"))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "unknown query parameter {other:?}: a badge takes repo, branch and optionally environment"
            ),
            Some(other),
        ));
    }
    let mut take = |key: &str, example: &str| -> Result<Option<String>, ApiError> {
        match params.remove(key) {
            None => Ok(None),
            Some(v) if v.is_empty() || v.len() > MAX_VALUE => Err(ApiError::bad_request(
                "invalid_query",
                format!("{key}: give {example}, of 1 to {MAX_VALUE} bytes"),
                Some(key),
            )),
            Some(v) => Ok(Some(v)),
        }
    };
    let repo = take("repo", "the repository as queues name it")?;
    let branch = take("branch", "the branch name, e.g. main")?;
    let environment = take("environment", "an environment name, e.g. esp32")?;
    let missing = |key: &str, example: &str| {
        ApiError::bad_request(
            "missing_query",
            format!("{key} is missing: add ?{key}=… ({example}), URL-encoded"),
            Some(key),
        )
    };
    Ok(Query {
        repo: repo.ok_or_else(|| missing("repo", "the repository as queues name it"))?,
        branch: branch.ok_or_else(|| missing("branch", "e.g. main"))?,
        environment,
    })
}

/// The badge of one repository, branch and environment, as the queue page offers it.
pub struct Readme {
    /// The image on this server: `/badge.svg?…`.
    pub src: String,
    /// `[![TestArena](<base>/badge.svg?…)](<base>/)`, to paste into a README.
    pub markdown: String,
}

impl Readme {
    /// The badge on `base` (this server's address as users reach it). Every query value is
    /// URL-encoded, so nothing in it can end the Markdown link (`(`, `)`, `]` and spaces are
    /// encoded too).
    pub fn new(base: &reqwest::Url, repo: &str, branch: &str, environment: &str) -> Readme {
        let mut url = base.join("/badge.svg").unwrap_or_else(|_| base.clone());
        url.query_pairs_mut()
            .append_pair("repo", repo)
            .append_pair("branch", branch)
            .append_pair("environment", environment);
        let home = base.join("/").unwrap_or_else(|_| base.clone());
        let src = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        Readme {
            markdown: format!("[![TestArena]({url})]({home})"),
            src,
        }
    }
}

/// The badge's text and colour for the newest finished status, if any.
fn look(status: Option<Status>) -> (&'static str, &'static str) {
    match status {
        Some(Status::Passed) => ("passed", "#4c1"),
        Some(Status::Failed) => ("failed", "#e05d44"),
        Some(Status::Error) => ("error", "#fe7d37"),
        Some(Status::TimedOut) => ("timed out", "#fe7d37"),
        _ => ("unknown", "#9f9f9f"),
    }
}

/// A flat two-part badge: `label` on grey, `message` on `color`. Text is escaped; widths are
/// estimated from the character count (about 7 px a character at 11 px Verdana).
fn svg(label: &str, message: &str, color: &str) -> String {
    let width = |text: &str| 10 + 7 * text.chars().count();
    let (lw, mw) = (width(label), width(message));
    let total = lw + mw;
    let (label, message, color) = (escape(label), escape(message), escape(color));
    // Text is drawn at 10x and scaled down, for sharper rendering at small sizes.
    let (lx, mx) = (lw * 5, lw * 10 + mw * 5);
    let (ltl, mtl) = ((lw - 10) * 10, (mw - 10) * 10);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{total}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110"><text x="{lx}" y="140" transform="scale(.1)" textLength="{ltl}">{label}</text><text x="{mx}" y="140" transform="scale(.1)" textLength="{mtl}">{message}</text></g></svg>
"##
    )
}

/// `text` safe inside an XML element or a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn each_outcome_has_its_text_and_colour() {
        let check = |status, text: &str, color: &str| {
            assert_eq!(look(status), (text, color), "{status:?}");
            let svg = svg("TestArena", text, color);
            assert!(svg.contains(&format!(">{text}</text>")), "{svg}");
            assert!(svg.contains(&format!("fill=\"{color}\"")), "{svg}");
        };
        check(Some(Status::Passed), "passed", "#4c1");
        check(Some(Status::Failed), "failed", "#e05d44");
        check(Some(Status::Error), "error", "#fe7d37");
        check(Some(Status::TimedOut), "timed out", "#fe7d37");
        check(None, "unknown", "#9f9f9f");
    }

    #[test]
    fn text_is_escaped_and_wider_text_makes_a_wider_badge() {
        let escaped = svg("a<b>&\"c'", "ok", "#4c1");
        assert!(
            escaped.contains("a&lt;b&gt;&amp;&quot;c&#39;</text>"),
            "{escaped}"
        );
        assert!(!escaped.contains("a<b>"));
        let width = |s: &str| {
            let w = s.split("width=\"").nth(1).unwrap();
            w[..w.find('"').unwrap()].parse::<usize>().unwrap()
        };
        assert!(
            width(&svg("TestArena", "timed out", "#fff")) > width(&svg("TestArena", "ok", "#fff"))
        );
    }

    #[test]
    fn the_readme_markdown_is_one_link_whatever_the_names() {
        let base = reqwest::Url::parse("https://ci.example.org").unwrap();
        let r = Readme::new(&base, "https://g.example/a b(c).git", "fix/[x]", "esp32");
        assert_eq!(
            r.markdown,
            "[![TestArena](https://ci.example.org/badge.svg?repo=https%3A%2F%2Fg.example%2Fa+b%28c%29.git&branch=fix%2F%5Bx%5D&environment=esp32)](https://ci.example.org/)"
        );
        assert_eq!(
            r.src,
            "/badge.svg?repo=https%3A%2F%2Fg.example%2Fa+b%28c%29.git&branch=fix%2F%5Bx%5D&environment=esp32"
        );
    }

    #[test]
    fn the_query_needs_repo_and_branch_and_nothing_else() {
        let ok = parse(params(&[("repo", "https://g/x.git"), ("branch", "main")])).unwrap();
        assert_eq!(
            ok,
            Query {
                repo: "https://g/x.git".into(),
                branch: "main".into(),
                environment: None
            }
        );
        let with_env = parse(params(&[
            ("repo", "r"),
            ("branch", "b"),
            ("environment", "esp32"),
        ]))
        .unwrap();
        assert_eq!(with_env.environment.as_deref(), Some("esp32"));
        let refused = |pairs: &[(&str, &str)], field: &str| {
            let e = parse(params(pairs)).unwrap_err();
            assert_eq!(e.status, 400, "{pairs:?}");
            assert_eq!(e.field.as_deref(), Some(field), "{pairs:?}: {}", e.message);
        };
        refused(&[("branch", "main")], "repo");
        refused(&[("repo", "r")], "branch");
        refused(&[("repo", ""), ("branch", "main")], "repo");
        refused(
            &[("repo", "r"), ("branch", "main"), ("colour", "red")],
            "colour",
        );
        let long = "x".repeat(MAX_VALUE + 1);
        refused(&[("repo", "r"), ("branch", &long)], "branch");
    }
}
