//! Which queues get a status, where it goes, what it says, and which refusals are retried.

use super::*;
use crate::config::Config;
use crate::model::{QueueId, QueueRequest};

const SHA: &str = "abc1234def5678";

fn gitea() -> GiteaConfig {
    Config::from_toml(
        "t.toml",
        "[gitea]\nurl = \"https://gitea.example.org/\"\ntoken = \"t\"\ndashboard_url = \"https://ta.example.org\"\n",
    )
    .unwrap()
    .gitea
}

/// A queue as a webhook delivery for `repo` at `SHA` makes it.
fn queue(repo: &str, status: Status) -> Queue {
    let id = repo
        .strip_prefix("https://gitea.example.org/")
        .map(|p| crate::hooks::queue_id(p.trim_end_matches(".git"), SHA, "esp32"))
        .unwrap_or_else(|| QueueId::parse("elsewhere").unwrap());
    Queue {
        id,
        status,
        request: QueueRequest {
            repo: repo.into(),
            branch: Some("main".into()),
            commit: Some(SHA.into()),
            environment: "esp32".into(),
            scenarios: vec![],
            priority: 0,
        },
        seq: 1,
        created_at: 0,
        started_at: None,
        finished_at: None,
        attempt: 1,
        error: Some("build failed (exit 2)".into()),
        origin: crate::model::Origin::Api,
        resolved_commit: None,
        rerun_of: None,
        reruns: Vec::new(),
    }
}

fn target_of(q: &Queue) -> Option<Target> {
    let g = gitea();
    target(&g, g.statuses.as_ref().unwrap(), q)
}

#[test]
fn webhook_queues_of_repositories_on_the_gitea_get_statuses() {
    let t = target_of(&queue(
        "https://gitea.example.org/team/fw.git",
        Status::Waiting,
    ));
    assert_eq!(
        t,
        Some(Target {
            owner: "team".into(),
            repo: "fw".into(),
            sha: SHA.into()
        })
    );
    let no_git = target_of(&queue("https://gitea.example.org/team/fw", Status::Waiting));
    assert_eq!(no_git.map(|t| t.repo), Some("fw".into()));
    // A re-run of a webhook queue (the same scenarios) shows on the same commit.
    let mut rerun = queue("https://gitea.example.org/team/fw.git", Status::Waiting);
    rerun.id = QueueId::parse(&format!("{}.r2", rerun.id)).unwrap();
    assert!(target_of(&rerun).is_some(), "{}", rerun.id);
    // Another environment than the webhook ones gets none.
    let mut elsewhere = queue("https://gitea.example.org/team/fw.git", Status::Waiting);
    elsewhere.request.environment = "xtensa-sim".into();
    elsewhere.id = crate::hooks::queue_id("team/fw", SHA, "xtensa-sim");
    assert_eq!(target_of(&elsewhere), None);
    for other in [
        "https://github.example.org/team/fw.git",
        "https://gitea.example.org.evil/team/fw.git",
        "https://gitea.example.org/team",
        "https://gitea.example.org/a/b/c.git",
        "/srv/fw",
    ] {
        assert_eq!(target_of(&queue(other, Status::Waiting)), None, "{other}");
    }
}

#[test]
fn names_that_could_change_the_status_url_get_no_status() {
    for repo in [
        "https://gitea.example.org/victim/fw\\forks#",
        "https://gitea.example.org/../user\\repos#",
        "https://gitea.example.org/x/..",
        "https://gitea.example.org/x/.",
        "https://gitea.example.org/team/fw?x=1",
        "https://gitea.example.org/team/fw%2F..",
    ] {
        let mut q = queue(repo, Status::Waiting);
        // Even under the id a delivery would get.
        if let Some(p) = repo.strip_prefix("https://gitea.example.org/") {
            q.id = crate::hooks::queue_id(p, SHA, "esp32");
        }
        assert_eq!(target_of(&q), None, "{repo}");
    }
    let mut q = queue("https://gitea.example.org/team/fw.git", Status::Waiting);
    q.request.commit = Some("main/../x".into());
    assert_eq!(target_of(&q), None, "a commit is hex");
}

#[test]
fn queues_unlike_a_webhook_queue_get_no_status() {
    let repo = "https://gitea.example.org/team/fw.git";
    let mut narrower = queue(repo, Status::Passed);
    narrower.request.scenarios = vec!["scenarios/always-passes.xml".into()];
    assert_eq!(
        target_of(&narrower),
        None,
        "fewer scenarios than configured"
    );
    let mut other_env = queue(repo, Status::Passed);
    other_env.request.environment = "xtensa-sim".into();
    assert_eq!(target_of(&other_env), None);
    let mut other_id = queue(repo, Status::Passed);
    other_id.id = QueueId::parse("mine").unwrap();
    assert_eq!(target_of(&other_id), None);
    let mut no_commit = queue(repo, Status::Passed);
    no_commit.request.commit = None;
    assert_eq!(
        target_of(&no_commit),
        None,
        "a branch alone names no commit"
    );
}

#[test]
fn what_may_pass_is_retried_and_other_refusals_are_not() {
    use reqwest::StatusCode;
    for retried in [500, 502, 503, 504, 429, 408] {
        assert!(
            may_pass(StatusCode::from_u16(retried).unwrap()),
            "{retried}"
        );
    }
    for given_up in [400, 401, 403, 404, 422, 301] {
        assert!(
            !may_pass(StatusCode::from_u16(given_up).unwrap()),
            "{given_up}"
        );
    }
}

#[test]
fn each_state_maps_to_a_gitea_state_with_a_link() {
    let g = gitea();
    let c = g.statuses.as_ref().unwrap();
    let repo = "https://gitea.example.org/team/fw.git";
    let s = |status| super::status(c, &queue(repo, status));
    assert_eq!(s(Status::Waiting).state, "pending");
    assert_eq!(s(Status::Running).state, "pending");
    assert_eq!(s(Status::Passed).state, "success");
    assert_eq!(s(Status::Failed).state, "failure");
    assert_eq!(s(Status::TimedOut).state, "error");
    assert_eq!(s(Status::Aborted).description, "aborted");
    let mut superseded = queue(repo, Status::Aborted);
    superseded.error = Some("superseded by team-fw-0123456789ab-esp32".into());
    let st = super::status(c, &superseded);
    assert_eq!(
        (st.state, st.description.as_str()),
        ("error", "superseded by team-fw-0123456789ab-esp32")
    );
    let e = s(Status::Error);
    assert_eq!(
        (e.state, e.description.as_str()),
        ("error", "build failed (exit 2)")
    );
    assert_eq!(e.context, "testarena/esp32");
    let id = crate::hooks::queue_id("team/fw", SHA, "esp32");
    assert_eq!(
        e.target_url,
        Some(format!("https://ta.example.org/queues/{id}"))
    );
}
