//! Gitea commit statuses: a queue that a webhook delivery created (or one exactly like it) shows
//! on its commit (and its pull request) as pending while it waits and runs, then success,
//! failure or error, under the context `testarena/<environment>`.
//!
//! "Exactly like it": the repository is on the configured Gitea, the queue has the id a delivery
//! for that commit gets, and it runs the configured environment and scenarios. So a status
//! always stands for the configured test set on that commit: a queue enqueued through the API
//! with fewer scenarios cannot put `success` on a commit.
//!
//! The notifier follows the change feed and posts one status per queue state change, in order,
//! from one task: a later state never overtakes an earlier one, and a slow or absent Gitea
//! delays statuses without slowing anything else. A failed post is retried twice (1 s, then
//! 2 s later) when the failure may pass (no connection, a 5xx), and logged.

use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{GiteaConfig, LiveConfig, StatusConfig};
use crate::model::{Queue, Status};
use crate::store::Follower;

/// Where a queue's status goes: `POST {url}/api/v1/repos/{owner}/{repo}/statuses/{sha}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub owner: String,
    pub repo: String,
    pub sha: String,
}

/// The body Gitea takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    pub state: &'static str,
    pub description: String,
    pub context: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// A Gitea owner or repository name: letters, digits, `.`, `_`, `-`, and not `.` or `..`.
fn gitea_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Where the queue's status goes, if it gets one: its repository URL is
/// `{url}/{owner}/{repo}[.git]`, it names a commit, and it is a webhook queue (see above).
pub fn target(gitea: &GiteaConfig, config: &StatusConfig, queue: &Queue) -> Option<Target> {
    let sha = queue.request.commit.clone()?;
    if sha.len() < 7 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let path = queue
        .request
        .repo
        .strip_prefix(&config.url)?
        .strip_prefix('/')?;
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, repo) = path.split_once('/')?;
    if !gitea_name(owner) || !gitea_name(repo) {
        return None;
    }
    let webhook_like = queue.id == crate::hooks::queue_id(&format!("{owner}/{repo}"), &sha)
        && queue.request.environment == gitea.environment
        && queue.request.scenarios == gitea.scenarios;
    webhook_like.then(|| Target {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        sha,
    })
}

/// The status a queue in its current state shows.
pub fn status(config: &StatusConfig, queue: &Queue) -> CommitStatus {
    let (state, description) = match queue.status {
        Status::Waiting if queue.attempt > 1 => {
            ("pending", "re-queued after an interruption".to_owned())
        }
        Status::Waiting => ("pending", "waiting to run".to_owned()),
        Status::Running => ("pending", "running".to_owned()),
        Status::Passed => ("success", "passed".to_owned()),
        Status::Failed => ("failure", "tests failed".to_owned()),
        Status::TimedOut => ("error", "timed out".to_owned()),
        Status::Aborted => ("error", "aborted".to_owned()),
        Status::Error | Status::Skipped => (
            "error",
            queue.error.clone().unwrap_or_else(|| "error".to_owned()),
        ),
    };
    // Gitea shows a short line; keep whole characters.
    let description: String = description.chars().take(120).collect();
    CommitStatus {
        state,
        description,
        context: format!("testarena/{}", queue.request.environment),
        target_url: config
            .dashboard_url
            .as_ref()
            .map(|base| format!("{base}/queues/{}", queue.id)),
    }
}

/// Follows the change feed until `shutdown`, posting a status for every queue state change of
/// a queue that the `[gitea]` configuration at that moment says gets one (none while
/// `[gitea] statuses` is off).
pub async fn run(live: LiveConfig, mut changes: Follower, shutdown: CancellationToken) {
    let client = match crate::http_client()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "commit statuses: cannot build the HTTP client; none will be posted");
            return;
        }
    };
    loop {
        let change = tokio::select! {
            () = shutdown.cancelled() => return,
            change = changes.next_queue(|_| true) => change,
        };
        // The queue in the status of the change, not a later one it may already be in.
        let Some(queue) = change else {
            return;
        };
        let current = live.get();
        let gitea = &current.gitea;
        let Some(config) = &gitea.statuses else {
            continue;
        };
        let Some(target) = target(gitea, config, &queue) else {
            continue;
        };
        let body = status(config, &queue);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = post(&client, config, &target, &body, &queue) => {}
        }
    }
}

async fn post(
    client: &reqwest::Client,
    config: &StatusConfig,
    target: &Target,
    body: &CommitStatus,
    queue: &Queue,
) {
    // Segment by segment: nothing in a name can change the path.
    let Ok(mut url) = reqwest::Url::parse(&config.url) else {
        tracing::error!(url = %config.url, "commit statuses: [gitea] url is not a URL");
        return;
    };
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend([
            "api",
            "v1",
            "repos",
            &target.owner,
            &target.repo,
            "statuses",
            &target.sha,
        ]);
    }
    let token = String::from_utf8_lossy(config.token.expose()).into_owned();
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=3 {
        let sent = client
            .post(url.clone())
            .header("authorization", format!("token {token}"))
            .json(body)
            .send()
            .await;
        let retry = match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let text: String = text.chars().take(200).collect();
                tracing::warn!(queue = %queue.id, %status, answer = %text, attempt, "commit status refused by Gitea");
                status.is_server_error()
            }
            Err(e) => {
                tracing::warn!(queue = %queue.id, error = %e, attempt, "cannot reach Gitea for a commit status");
                true
            }
        };
        if !retry || attempt == 3 {
            return;
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

#[cfg(test)]
mod tests {
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
            .map(|p| crate::hooks::queue_id(p.trim_end_matches(".git"), SHA))
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
                q.id = crate::hooks::queue_id(p, SHA);
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
        let e = s(Status::Error);
        assert_eq!(
            (e.state, e.description.as_str()),
            ("error", "build failed (exit 2)")
        );
        assert_eq!(e.context, "testarena/esp32");
        let id = crate::hooks::queue_id("team/fw", SHA);
        assert_eq!(
            e.target_url,
            Some(format!("https://ta.example.org/queues/{id}"))
        );
    }
}
