//! Parsing an enqueue request at the edge: everything that reaches the store, git or the
//! filesystem has passed through here. Each error names the field and says what to change.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::Deserialize;

use super::error::ApiError;
use crate::config::Config;
use crate::model::{MAX_SCENARIO_PATH_LEN, MAX_SCENARIOS, PRIORITIES, QueueId, QueueRequest};

/// The body of `POST /api/queues` (and what a webhook delivery becomes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBody {
    pub id: Option<String>,
    pub repo: String,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub environment: String,
    pub scenarios: Option<Vec<String>>,
    pub priority: Option<i32>,
}

pub fn parse_id(raw: &str) -> Result<QueueId, ApiError> {
    QueueId::parse(raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_id",
            format!("queue id {}: {e}", quoted(raw)),
            Some("id"),
        )
    })
}

/// Longest part of a value a refusal quotes, in characters.
const QUOTED_CHARS: usize = 100;

/// `value` quoted for a refusal, cut after [`QUOTED_CHARS`] characters: the answer stays small
/// whatever was sent (a body may be up to `[api] max_body`, and quoting escapes each control
/// character into several).
fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &value[..end], value.len()),
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_field", message, Some(field))
}

pub fn enqueue(body: &EnqueueBody, config: &Config) -> Result<(QueueId, QueueRequest), ApiError> {
    let id = match &body.id {
        Some(raw) => parse_id(raw)?,
        None => generate_id(),
    };
    repo(&body.repo)?;
    allowed_repo(&body.repo, config)?;
    if let Some(b) = &body.branch {
        ref_name(b).map_err(|m| invalid("branch", format!("branch {}: {m}", quoted(b))))?;
    }
    if let Some(c) = &body.commit {
        commit(c)?;
    }
    if config.environment(&body.environment).is_none() {
        return Err(invalid(
            "environment",
            format!(
                "unknown environment {}: use one of {}",
                quoted(&body.environment),
                config.environment_names().join(", ")
            ),
        ));
    }
    let scenarios = scenarios(body.scenarios.as_deref().unwrap_or_default())?;
    let priority = priority(body.priority.unwrap_or(0))?;
    Ok((
        id,
        QueueRequest {
            repo: body.repo.clone(),
            branch: body.branch.clone(),
            commit: body.commit.clone(),
            environment: body.environment.clone(),
            scenarios,
            priority,
        },
    ))
}

/// A time-ordered id: `YYYYMMDD-HHMMSS-mmm-NNNN` (UTC), unique within this process.
pub fn generate_id() -> QueueId {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = time::OffsetDateTime::now_utc();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000;
    let f = time::macros::format_description!(
        "[year][month][day]-[hour][minute][second]-[subsecond digits:3]"
    );
    let stamp = now
        .format(&f)
        .unwrap_or_else(|_| "00000000-000000-000".into());
    QueueId::parse(&format!("{stamp}-{n:04}")).expect("generated ids are valid")
}

/// A URL (`scheme://…`, `user@host:path`) or a local path; never something git reads as an option.
pub(super) fn repo(r: &str) -> Result<(), ApiError> {
    let bad = |m: &str| Err(invalid("repo", format!("repo {}: {m}", quoted(r))));
    if r.trim().is_empty() {
        return bad("must not be empty: give a git URL or a local path");
    }
    if r.starts_with('-') {
        return bad("must not start with '-'");
    }
    if r.chars().any(|c| c.is_control()) {
        return bad("must not contain control characters");
    }
    if r.len() > 2048 {
        return bad("is longer than 2048 characters");
    }
    Ok(())
}

/// In `[worker] allowed_repos`; the message names the key and what to change.
fn allowed_repo(r: &str, config: &Config) -> Result<(), ApiError> {
    config
        .worker
        .allowed_repos
        .check(r)
        .map_err(|m| invalid("repo", m))
}

/// git's ref name rules (git check-ref-format), for a branch name.
pub fn ref_name(b: &str) -> Result<(), String> {
    if b.is_empty() {
        return Err("must not be empty".into());
    }
    if b.len() > 255 {
        return Err("is longer than 255 characters".into());
    }
    if b.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    if b == "@" {
        return Err("must not be '@'".into());
    }
    if let Some(c) = b
        .chars()
        .find(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err(format!("must not contain {c:?}"));
    }
    for bad in ["..", "@{", "//"] {
        if b.contains(bad) {
            return Err(format!("must not contain {bad:?}"));
        }
    }
    if b.starts_with('/') || b.ends_with('/') || b.ends_with('.') || b.ends_with(".lock") {
        return Err("must not start or end with '/', or end with '.' or '.lock'".into());
    }
    if b.split('/').any(|part| part.starts_with('.')) {
        return Err("no part may start with '.'".into());
    }
    Ok(())
}

fn commit(c: &str) -> Result<(), ApiError> {
    let ok = (4..=64).contains(&c.len()) && c.chars().all(|ch| ch.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "commit",
            format!(
                "commit {}: use a commit hash of 4 to 64 hexadecimal digits",
                quoted(c)
            ),
        ))
    }
}

/// At most [`MAX_SCENARIOS`] paths, each checked; counted before anything is copied.
fn scenarios(list: &[String]) -> Result<Vec<String>, ApiError> {
    if list.len() > MAX_SCENARIOS {
        return Err(invalid(
            "scenarios",
            format!(
                "{} scenarios: a queue runs at most {MAX_SCENARIOS}; split them over several queues",
                list.len()
            ),
        ));
    }
    for (i, s) in list.iter().enumerate() {
        scenario_path(i, s)?;
    }
    Ok(list.to_vec())
}

fn scenario_path(i: usize, s: &str) -> Result<(), ApiError> {
    if s.len() > MAX_SCENARIO_PATH_LEN {
        // Not echoed: the answer stays small whatever was sent.
        return Err(invalid(
            "scenarios",
            format!(
                "scenario {i} is {} bytes long: use a path of at most {MAX_SCENARIO_PATH_LEN} bytes",
                s.len()
            ),
        ));
    }
    crate::model::check_scenario_path(s)
        .map_err(|m| invalid("scenarios", format!("scenario {}: {m}", quoted(s))))
}

fn priority(p: i32) -> Result<i32, ApiError> {
    if PRIORITIES.contains(&p) {
        Ok(p)
    } else {
        Err(invalid(
            "priority",
            format!(
                "priority {p}: use a number from {} to {} (higher runs first)",
                PRIORITIES.start(),
                PRIORITIES.end()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> EnqueueBody {
        serde_json::from_str(json).unwrap()
    }

    fn field_of(json: &str) -> Option<String> {
        enqueue(&body(json), &Config::defaults())
            .err()
            .and_then(|e| e.field)
    }

    #[test]
    fn accepts_a_good_request() {
        let (id, req) = enqueue(
            &body(r#"{"id":"q1","repo":"https://x/fw","branch":"feature/x","environment":"esp32","scenarios":["scenarios/a.xml"],"priority":3}"#),
            &Config::defaults(),
        )
        .unwrap();
        assert_eq!(id.as_str(), "q1");
        assert_eq!(req.priority, 3);
        assert_eq!(req.scenarios, ["scenarios/a.xml"]);
    }

    #[test]
    fn names_the_bad_field() {
        let base =
            |extra: &str| format!(r#"{{"repo":"https://x/r","environment":"esp32"{extra}}}"#);
        assert_eq!(field_of(&base(r#","id":"a/b""#)).as_deref(), Some("id"));
        assert_eq!(field_of(&base(r#","id":"..""#)).as_deref(), Some("id"));
        assert_eq!(
            field_of(&base(r#","branch":"a..b""#)).as_deref(),
            Some("branch")
        );
        assert_eq!(
            field_of(&base(r#","branch":"-x""#)).as_deref(),
            Some("branch")
        );
        assert_eq!(
            field_of(&base(r#","commit":"xyz""#)).as_deref(),
            Some("commit")
        );
        assert_eq!(
            field_of(&base(r#","scenarios":["../x.xml"]"#)).as_deref(),
            Some("scenarios")
        );
        assert_eq!(
            field_of(&base(r#","scenarios":["/etc/x"]"#)).as_deref(),
            Some("scenarios")
        );
        assert_eq!(
            field_of(r#"{"repo":"--upload-pack=x","environment":"esp32"}"#).as_deref(),
            Some("repo")
        );
        assert_eq!(
            field_of(r#"{"repo":"https://x/r","environment":"nope"}"#).as_deref(),
            Some("environment")
        );
    }

    /// The request `{"repo":"https://x/r","environment":"esp32", …extra}`; its error if refused.
    fn refused(extra: serde_json::Value) -> Option<ApiError> {
        let mut json = serde_json::json!({"repo": "https://x/r", "environment": "esp32"});
        for (k, v) in extra.as_object().unwrap() {
            json[k] = v.clone();
        }
        let body: EnqueueBody = serde_json::from_value(json).unwrap();
        enqueue(&body, &Config::defaults()).err()
    }

    #[test]
    fn at_most_256_scenarios() {
        let list = |n: usize| -> Vec<String> { (0..n).map(|i| format!("s/{i}.xml")).collect() };
        assert!(refused(serde_json::json!({ "scenarios": list(256) })).is_none());
        for n in [257, 4000, 100_000] {
            let e = refused(serde_json::json!({ "scenarios": list(n) })).unwrap();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(e.code, "invalid_field");
            assert_eq!(e.field.as_deref(), Some("scenarios"));
            assert!(e.message.contains("at most 256"), "{}", e.message);
        }
    }

    #[test]
    fn scenario_paths_are_at_most_1024_bytes_and_not_echoed() {
        let path = |len: usize| format!("s/{}", "x".repeat(len - 2));
        assert!(refused(serde_json::json!({ "scenarios": [path(1024)] })).is_none());
        let huge = path(1_000_000);
        let e = refused(serde_json::json!({ "scenarios": ["a.xml", path(1025)] })).unwrap();
        assert_eq!(e.field.as_deref(), Some("scenarios"));
        assert!(
            e.message.contains("scenario 1 is 1025 bytes"),
            "{}",
            e.message
        );
        assert!(e.message.contains("at most 1024 bytes"), "{}", e.message);
        let e = refused(serde_json::json!({ "scenarios": [huge] })).unwrap();
        assert!(e.message.len() < 200, "{}", e.message);
    }

    /// Found by fuzzing (`fixtures/fuzz/enqueue/`): refusals quoted the whole value, so a 1 MiB
    /// body came back as an answer of up to 3.5 MiB (quoting writes a combining mark, two bytes
    /// of JSON, as the seven of `\u{301}`).
    #[test]
    fn refusals_quote_at_most_100_characters() {
        let long = "\u{301}".repeat(1 << 19);
        for extra in [
            serde_json::json!({ "id": long }),
            serde_json::json!({ "repo": long }),
            serde_json::json!({ "repo": format!("https://x/{}", "r".repeat(1 << 20)) }),
            serde_json::json!({ "branch": long }),
            serde_json::json!({ "commit": long }),
            serde_json::json!({ "environment": long }),
            serde_json::json!({ "scenarios": [format!("{}\u{1}", "s".repeat(1000))] }),
        ] {
            let e = refused(extra).unwrap();
            let field = e.field.unwrap_or_default();
            assert!(e.message.len() < 1000, "{field}: {} bytes", e.message.len());
            assert!(e.message.contains("bytes)"), "{field}: {:.200}", e.message);
        }
        let e = refused(serde_json::json!({ "branch": "a..b" })).unwrap();
        assert_eq!(e.message, "branch \"a..b\": must not contain \"..\"");
    }

    #[test]
    fn priority_is_between_minus_1000_and_1000() {
        for good in [-1000, -1, 0, 7, 1000] {
            assert!(
                refused(serde_json::json!({ "priority": good })).is_none(),
                "{good}"
            );
        }
        for bad in [-1001, 1001, i32::MIN, i32::MAX] {
            let e = refused(serde_json::json!({ "priority": bad })).unwrap();
            assert_eq!(e.code, "invalid_field");
            assert_eq!(e.field.as_deref(), Some("priority"), "{bad}");
            assert!(e.message.contains("from -1000 to 1000"), "{}", e.message);
        }
    }

    #[test]
    fn unknown_environment_lists_known_ones() {
        let e = enqueue(
            &body(r#"{"repo":"https://x/r","environment":"nope"}"#),
            &Config::defaults(),
        )
        .unwrap_err();
        assert!(e.message.contains("esp32, xtensa-sim"), "{}", e.message);
    }

    #[test]
    fn repos_outside_allowed_repos_are_refused() {
        for bad in ["/srv/fw", "file:///srv/fw", "http://x/fw.git"] {
            let e = refused(serde_json::json!({ "repo": bad })).unwrap();
            assert_eq!(e.field.as_deref(), Some("repo"), "{bad}");
            assert!(
                e.message.contains("[worker] allowed_repos"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn generated_ids_are_valid_and_ordered() {
        let a = generate_id();
        let b = generate_id();
        assert!(a.as_str() < b.as_str(), "{a} {b}");
    }

    #[test]
    fn ref_names() {
        for good in ["main", "feature/extra", "v1.2", "a-b_c"] {
            assert!(ref_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "a b", "a..b", "a~1", "x.lock", "/a", "a/", ".hidden", "a/.b", "@", "a@{1}", "a:b",
        ] {
            assert!(ref_name(bad).is_err(), "{bad}");
        }
    }
}
