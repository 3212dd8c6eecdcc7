//! Parsing an enqueue request at the edge: everything that reaches the store, git or the
//! filesystem has passed through here. Each error names the field and says what to change.

use std::sync::atomic::{AtomicU32, Ordering};

use super::error::ApiError;
use super::queues::{EnqueueBody, parse_id};
use crate::config::Config;
use crate::model::{QueueId, QueueRequest};

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_field", message, Some(field))
}

pub fn enqueue(body: &EnqueueBody, config: &Config) -> Result<(QueueId, QueueRequest), ApiError> {
    let id = match &body.id {
        Some(raw) => parse_id(raw)?,
        None => generate_id(),
    };
    repo(&body.repo)?;
    if let Some(b) = &body.branch {
        ref_name(b).map_err(|m| invalid("branch", format!("branch {b:?}: {m}")))?;
    }
    if let Some(c) = &body.commit {
        commit(c)?;
    }
    if config.environment(&body.environment).is_none() {
        return Err(invalid(
            "environment",
            format!(
                "unknown environment {:?}: use one of {}",
                body.environment,
                config.environment_names().join(", ")
            ),
        ));
    }
    let scenarios = body.scenarios.clone().unwrap_or_default();
    for s in &scenarios {
        scenario_path(s)?;
    }
    Ok((
        id,
        QueueRequest {
            repo: body.repo.clone(),
            branch: body.branch.clone(),
            commit: body.commit.clone(),
            environment: body.environment.clone(),
            scenarios,
            priority: body.priority.unwrap_or(0),
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
fn repo(r: &str) -> Result<(), ApiError> {
    let bad = |m: &str| Err(invalid("repo", format!("repo {r:?}: {m}")));
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
            format!("commit {c:?}: use a commit hash of 4 to 64 hexadecimal digits"),
        ))
    }
}

fn scenario_path(s: &str) -> Result<(), ApiError> {
    crate::model::check_scenario_path(s)
        .map_err(|m| invalid("scenarios", format!("scenario {s:?}: {m}")))
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
            &body(r#"{"id":"q1","repo":"/srv/fw","branch":"feature/x","environment":"esp32","scenarios":["scenarios/a.xml"],"priority":3}"#),
            &Config::defaults(),
        )
        .unwrap();
        assert_eq!(id.as_str(), "q1");
        assert_eq!(req.priority, 3);
        assert_eq!(req.scenarios, ["scenarios/a.xml"]);
    }

    #[test]
    fn names_the_bad_field() {
        let base = |extra: &str| format!(r#"{{"repo":"/r","environment":"esp32"{extra}}}"#);
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
            field_of(r#"{"repo":"/r","environment":"nope"}"#).as_deref(),
            Some("environment")
        );
    }

    #[test]
    fn unknown_environment_lists_known_ones() {
        let e = enqueue(
            &body(r#"{"repo":"/r","environment":"nope"}"#),
            &Config::defaults(),
        )
        .unwrap_err();
        assert!(e.message.contains("esp32, xtensa-sim"), "{}", e.message);
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
