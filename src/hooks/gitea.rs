//! Gitea deliveries: `push` and `pull_request` become queues; everything else is answered with
//! the reason it was not queued (Gitea shows the answer in the webhook's delivery history).
//!
//! A push whose head commit's message carries a skip marker (`[skip ci]`, `[ci skip]`, `[no ci]`,
//! `[skip actions]`, `[actions skip]`, in any case: the markers Gitea Actions accepts) is not
//! queued. A `pull_request` payload carries no commit message, so there the marker is looked
//! for in the pull request's title, as Woodpecker does; the head commit's own message is not
//! seen (its push to the branch is, if the branch is tested).

use serde::Deserialize;

use crate::config::GiteaConfig;
use crate::model::{Line, QueueId};

/// What a delivery asks for, before the API validates it like any enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The repository's `owner/name` on Gitea.
    pub full_name: String,
    /// What it tests: a branch or a pull request (none for a tag); a newer delivery for the
    /// same line supersedes this one's queues.
    pub line: Option<Line>,
    pub repo: String,
    pub branch: Option<String>,
    pub commit: String,
    /// For the log and the answer: "push to main", "pull request #4 (synchronized)".
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Queue(Wanted),
    /// Not queued, and why.
    Ignore(String),
}

/// The payload is not what the event says it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

#[derive(Deserialize)]
struct Repository {
    full_name: String,
    clone_url: String,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    repository: Repository,
    /// Absent or `null` for a deleted ref.
    head_commit: Option<Commit>,
    #[serde(default)]
    commits: Vec<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    number: u64,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Deserialize)]
struct PullRequest {
    head: Head,
    #[serde(default)]
    title: String,
}

#[derive(Deserialize)]
struct Head {
    sha: String,
}

impl Wanted {
    /// The id of this delivery's queue in `environment`.
    pub fn queue_id(&self, environment: &str) -> QueueId {
        super::queue_id(&self.full_name, &self.commit, environment)
    }
}

/// Decides what delivery `event` (the `X-Gitea-Event` header) with `body` asks for.
pub fn decide(event: &str, body: &[u8], config: &GiteaConfig) -> Result<Decision, Malformed> {
    match event {
        "push" => push(parse(event, body)?, config),
        "pull_request" => pull_request(parse(event, body)?),
        other => Ok(Decision::Ignore(format!(
            "{other} events are not queued: only push and pull_request are"
        ))),
    }
}

/// With `[gitea] url` set, a delivery's repository must be on that Gitea: a URL under it,
/// compared up to a `/`. The reason is for the webhook's delivery history.
pub fn from_this_gitea(repo: &str, config: &GiteaConfig) -> Result<(), String> {
    let Some(statuses) = &config.statuses else {
        return Ok(());
    };
    let url = statuses.url.as_str();
    if repo
        .strip_prefix(url)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        Ok(())
    } else {
        Err(format!(
            "repository {repo:?} is not on [gitea] url ({url}): only that Gitea's repositories are queued; send this webhook from there, or change [gitea] url on the server"
        ))
    }
}

fn parse<'a, T: Deserialize<'a>>(event: &str, body: &'a [u8]) -> Result<T, Malformed> {
    serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("the body is not a Gitea {event} payload: {e}")))
}

/// The markers that keep a commit from being queued, lowercase (Gitea Actions' list; Woodpecker
/// knows the first two).
pub const SKIP_MARKERS: [&str; 5] = [
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip actions]",
    "[actions skip]",
];

/// The first skip marker in `text`, as it is written there (any case).
pub fn skip_marker(text: &str) -> Option<&str> {
    // ASCII lowercasing keeps every byte offset, so a match indexes `text` itself.
    let lower = text.to_ascii_lowercase();
    SKIP_MARKERS
        .iter()
        .filter_map(|m| lower.find(m).map(|at| (at, m.len())))
        .min()
        .map(|(at, len)| &text[at..at + len])
}

/// A commit id: hex, and not all zeros (Gitea's "no commit": a deleted ref).
fn commit(sha: &str) -> Option<&str> {
    let hex = sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit());
    (hex && sha.chars().any(|c| c != '0')).then_some(sha)
}

fn push(p: Push, config: &GiteaConfig) -> Result<Decision, Malformed> {
    let Some(sha) = commit(&p.after) else {
        return Ok(Decision::Ignore(format!(
            "{} was deleted: nothing to test",
            p.git_ref
        )));
    };
    let (branch, line, why) = if let Some(branch) = p.git_ref.strip_prefix("refs/heads/") {
        if !config.branches.is_empty() && !config.branches.iter().any(|b| b == branch) {
            return Ok(Decision::Ignore(format!(
                "branch {branch:?} is not in [gitea] branches ({})",
                config.branches.join(", ")
            )));
        }
        (
            Some(branch.to_owned()),
            Some(Line::Branch(branch.to_owned())),
            format!("push to {branch}"),
        )
    } else if let Some(tag) = p.git_ref.strip_prefix("refs/tags/") {
        (None, None, format!("tag {tag}"))
    } else {
        return Ok(Decision::Ignore(format!(
            "{} is neither a branch nor a tag",
            p.git_ref
        )));
    };
    // The head commit, else the pushed commit that is the new head.
    let head = p
        .head_commit
        .as_ref()
        .or_else(|| p.commits.iter().find(|c| c.id == sha));
    if let Some(marker) = head.and_then(|c| skip_marker(&c.message)) {
        let short: String = sha.chars().take(12).collect();
        return Ok(Decision::Ignore(format!(
            "{why}: commit {short} says {marker} in its message: not queued"
        )));
    }
    Ok(Decision::Queue(Wanted {
        full_name: p.repository.full_name,
        line,
        repo: p.repository.clone_url,
        branch,
        commit: sha.to_owned(),
        why,
    }))
}

fn pull_request(p: PullRequestEvent) -> Result<Decision, Malformed> {
    // Gitea spells it "synchronized"; "synchronize" is the spelling of the forges it mimics.
    if !matches!(
        p.action.as_str(),
        "opened" | "reopened" | "synchronized" | "synchronize"
    ) {
        return Ok(Decision::Ignore(format!(
            "pull request #{} was {}: only opened, reopened and synchronized pull requests are queued",
            p.number, p.action
        )));
    }
    let Some(sha) = commit(&p.pull_request.head.sha) else {
        return Err(Malformed(format!(
            "pull request #{}: head.sha {:?} is not a commit id",
            p.number, p.pull_request.head.sha
        )));
    };
    if let Some(marker) = skip_marker(&p.pull_request.title) {
        return Ok(Decision::Ignore(format!(
            "pull request #{}: its title says {marker}: not queued",
            p.number
        )));
    }
    // The head commit is fetched from the base repository (its mirror holds refs/pull/*), so
    // pull requests from forks work too.
    Ok(Decision::Queue(Wanted {
        full_name: p.repository.full_name,
        line: Some(Line::PullRequest(p.number)),
        repo: p.repository.clone_url,
        branch: None,
        commit: sha.to_owned(),
        why: format!("pull request #{} ({})", p.number, p.action),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::config::Config;

    const PUSH: &str = include_str!("../../fixtures/webhooks/push.json");
    const PULL: &str = include_str!("../../fixtures/webhooks/pull_request.json");
    const SHA: &str = "3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091";

    fn config(extra: &str) -> GiteaConfig {
        Config::from_toml("t.toml", extra).unwrap().gitea
    }

    fn with(fixture: &str, change: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(fixture).unwrap();
        change(&mut v);
        serde_json::to_vec_pretty(&v).unwrap()
    }

    fn ignored(d: Decision) -> String {
        match d {
            Decision::Ignore(why) => why,
            other => panic!("expected to be ignored: {other:?}"),
        }
    }

    #[test]
    fn a_branch_push_queues_its_commit_on_its_branch() {
        let d = decide("push", PUSH.as_bytes(), &config("")).unwrap();
        assert_eq!(
            d,
            Decision::Queue(Wanted {
                full_name: "team/fw-app".into(),
                line: Some(Line::Branch("main".into())),
                repo: "https://gitea.example.invalid/team/fw-app.git".into(),
                branch: Some("main".into()),
                commit: SHA.into(),
                why: "push to main".into(),
            })
        );
    }

    #[test]
    fn a_tag_push_queues_its_commit_and_deleted_refs_are_ignored() {
        let tag = with(PUSH, |v| v["ref"] = json!("refs/tags/v1.2.0"));
        let Decision::Queue(w) = decide("push", &tag, &config("")).unwrap() else {
            panic!("a tag is queued");
        };
        assert_eq!((w.branch.clone(), w.commit.as_str()), (None, SHA));
        assert_eq!(
            w.queue_id("esp32").as_str(),
            "team-fw-app-3f2a9c1b7d0e-esp32",
            "folds with the branch push"
        );
        assert_eq!(w.line, None, "a tag supersedes nothing");
        // A deleted tag: `after` is all zeros, whatever the hash length.
        for zeros in ["0".repeat(40), "0".repeat(64)] {
            let deleted = with(PUSH, |v| {
                v["ref"] = json!("refs/tags/v1.2.0");
                v["after"] = json!(zeros);
            });
            let why = ignored(decide("push", &deleted, &config("")).unwrap());
            assert!(why.contains("deleted"), "{why}");
        }
        let notes = with(PUSH, |v| v["ref"] = json!("refs/notes/commits"));
        ignored(decide("push", &notes, &config("")).unwrap());
    }

    #[test]
    fn the_branch_filter_applies_to_pushes_only() {
        let cfg = config("[gitea]\nbranches = [\"release\"]\n");
        let why = ignored(decide("push", PUSH.as_bytes(), &cfg).unwrap());
        assert!(
            why.contains("\"main\" is not in [gitea] branches (release)"),
            "{why}"
        );
        assert!(matches!(
            decide("pull_request", PULL.as_bytes(), &cfg).unwrap(),
            Decision::Queue(_)
        ));
    }

    #[test]
    fn pull_requests_queue_their_head_from_the_base_repository() {
        let Decision::Queue(w) = decide("pull_request", PULL.as_bytes(), &config("")).unwrap()
        else {
            panic!("a synchronized pull request is queued");
        };
        assert_eq!(
            w.repo, "https://gitea.example.invalid/team/fw-app.git",
            "the base repository"
        );
        assert_eq!(w.branch, None);
        assert_eq!(w.commit, "b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6");
        assert_eq!(w.why, "pull request #4 (synchronized)");
        assert_eq!(w.line, Some(Line::PullRequest(4)));
        for action in ["opened", "reopened"] {
            let body = with(PULL, |v| v["action"] = json!(action));
            assert!(matches!(
                decide("pull_request", &body, &config("")).unwrap(),
                Decision::Queue(_)
            ));
        }
        for action in ["closed", "edited", "label_updated", "assigned"] {
            let body = with(PULL, |v| v["action"] = json!(action));
            let why = ignored(decide("pull_request", &body, &config("")).unwrap());
            assert!(why.contains(&format!("was {action}")), "{why}");
        }
    }

    #[test]
    fn with_a_gitea_url_only_its_repositories_are_queued() {
        let any = config("");
        assert!(
            from_this_gitea("/srv/x", &any).is_ok(),
            "no url: not checked here"
        );
        let cfg = config("[gitea]\nurl = \"https://gitea.example.org/\"\ntoken = \"t\"\n");
        assert!(from_this_gitea("https://gitea.example.org/team/fw.git", &cfg).is_ok());
        for bad in [
            "https://gitea.example.org.evil.com/team/fw.git",
            "https://gitea.example.org@evil.com/fw.git",
            "https://gitea.example.org",
            "https://elsewhere.example.org/team/fw.git",
            "/srv/git/fw",
        ] {
            let e = from_this_gitea(bad, &cfg).unwrap_err();
            assert!(e.contains("[gitea] url (https://gitea.example.org)"), "{e}");
        }
    }

    #[test]
    fn skip_markers_in_any_case() {
        for (text, marker) in [
            ("docs: typo [skip ci]", Some("[skip ci]")),
            ("[CI SKIP] bump", Some("[CI SKIP]")),
            ("readme\n\n[No Ci]\n", Some("[No Ci]")),
            ("[skip actions]", Some("[skip actions]")),
            ("x [actions skip] y [skip ci]", Some("[actions skip]")),
            ("Größe [skip ci]", Some("[skip ci]")),
            ("skip ci", None),
            ("[skip-ci]", None),
            ("[skip  ci]", None),
            ("", None),
        ] {
            assert_eq!(skip_marker(text), marker, "{text:?}");
        }
    }

    #[test]
    fn a_push_whose_head_commit_says_skip_ci_is_ignored() {
        let skip = with(PUSH, |v| {
            v["head_commit"]["message"] = json!("docs: typo\n\n[Skip CI]\n")
        });
        let why = ignored(decide("push", &skip, &config("")).unwrap());
        assert_eq!(
            why,
            "push to main: commit 3f2a9c1b7d0e says [Skip CI] in its message: not queued"
        );
        // Without `head_commit`, the pushed commit that is the new head.
        let listed = with(PUSH, |v| {
            v.as_object_mut().unwrap().remove("head_commit");
            v["commits"][0]["message"] = json!("[ci skip] bump");
        });
        let why = ignored(decide("push", &listed, &config("")).unwrap());
        assert!(why.contains("[ci skip]"), "{why}");
        // An earlier commit of the push that says it does not skip the head.
        let earlier = with(PUSH, |v| {
            let mut old = v["commits"][0].clone();
            old["id"] = json!("9e1b4c2d5f6a7b8c9d0e1f2a3b4c5d6e7f809112");
            old["message"] = json!("wip [skip ci]");
            v["commits"].as_array_mut().unwrap().insert(0, old);
        });
        assert!(matches!(
            decide("push", &earlier, &config("")).unwrap(),
            Decision::Queue(_)
        ));
        let null = with(PUSH, |v| v["head_commit"] = Value::Null);
        assert!(matches!(
            decide("push", &null, &config("")).unwrap(),
            Decision::Queue(_)
        ));
    }

    #[test]
    fn a_pull_request_whose_title_says_skip_ci_is_ignored() {
        let skip = with(PULL, |v| {
            v["pull_request"]["title"] = json!("Faster boot [NO CI]")
        });
        let why = ignored(decide("pull_request", &skip, &config("")).unwrap());
        assert_eq!(why, "pull request #4: its title says [NO CI]: not queued");
    }

    #[test]
    fn other_events_are_ignored_and_bad_payloads_say_what_is_wrong() {
        let why = ignored(decide("issues", b"{}", &config("")).unwrap());
        assert!(why.contains("only push and pull_request"), "{why}");
        let e = decide("push", b"{\"ref\": 1}", &config("")).unwrap_err();
        assert!(e.0.contains("not a Gitea push payload"), "{e}");
        let e = decide("push", b"not json", &config("")).unwrap_err();
        assert!(e.0.contains("push payload"), "{e}");
        let bad_sha = with(PULL, |v| v["pull_request"]["head"]["sha"] = json!("main"));
        let e = decide("pull_request", &bad_sha, &config("")).unwrap_err();
        assert!(e.0.contains("not a commit id"), "{e}");
    }
}
