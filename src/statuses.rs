//! Gitea commit statuses: a queue of a repository on the configured Gitea that names a commit
//! shows on that commit (and its pull request) as pending while it waits and runs, then success,
//! failure or error, under the context `testarena/<environment>`.
//!
//! The notifier follows the change feed and posts one status per queue state change, in order,
//! from one task: a later state never overtakes an earlier one, and a slow or absent Gitea
//! delays statuses without slowing anything else. A failed post is retried twice (1 s, then
//! 2 s later) when the failure may pass (no connection, a 5xx), and logged.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::api::AppState;
use crate::config::StatusConfig;
use crate::model::{Queue, Status};

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

/// The queue's commit on the configured Gitea, if it has one there: its repository URL is
/// `{url}/{owner}/{repo}[.git]` and it names a commit.
pub fn target(config: &StatusConfig, queue: &Queue) -> Option<Target> {
    let sha = queue.request.commit.clone()?;
    let path = queue
        .request
        .repo
        .strip_prefix(&config.url)?
        .strip_prefix('/')?;
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, repo) = path.split_once('/')?;
    if owner.is_empty() || repo.is_empty() || repo.contains('/') {
        return None;
    }
    Some(Target {
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

/// Follows the change feed until shutdown, posting a status for every queue state change.
pub async fn run(state: AppState, config: StatusConfig) {
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
    let mut changes = state.store.subscribe();
    loop {
        let change = tokio::select! {
            () = state.shutdown.cancelled() => return,
            change = changes.recv() => change,
        };
        let change = match change {
            Ok(c) if c.task.is_none() && c.to.is_some() => c,
            Ok(_) => continue,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "commit statuses: the change feed ran ahead; some statuses were skipped"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Ok(Some(view)) = state.store.get(&change.queue).await else {
            continue;
        };
        // The status of the change, not a later one the queue may already be in.
        let mut queue = view.queue;
        queue.status = change.to.unwrap_or(queue.status);
        let Some(target) = target(&config, &queue) else {
            continue;
        };
        let body = status(&config, &queue);
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = post(&client, &config, &target, &body, &queue) => {}
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
    let url = format!(
        "{}/api/v1/repos/{}/{}/statuses/{}",
        config.url, target.owner, target.repo, target.sha
    );
    let token = String::from_utf8_lossy(config.token.expose()).into_owned();
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=3 {
        let sent = client
            .post(&url)
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

    fn config() -> StatusConfig {
        let c = Config::from_toml(
            "t.toml",
            "[gitea]\nurl = \"https://gitea.example.org/\"\ntoken = \"t\"\ndashboard_url = \"https://ta.example.org\"\n",
        )
        .unwrap();
        c.gitea.statuses.expect("statuses configured")
    }

    fn queue(repo: &str, commit: Option<&str>, status: Status) -> Queue {
        Queue {
            id: QueueId::parse("q1").unwrap(),
            status,
            request: QueueRequest {
                repo: repo.into(),
                branch: Some("main".into()),
                commit: commit.map(Into::into),
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

    #[test]
    fn only_commits_of_repositories_on_the_gitea_get_statuses() {
        let c = config();
        let sha = Some("abc1234");
        let t = target(
            &c,
            &queue(
                "https://gitea.example.org/team/fw.git",
                sha,
                Status::Waiting,
            ),
        );
        assert_eq!(
            t,
            Some(Target {
                owner: "team".into(),
                repo: "fw".into(),
                sha: "abc1234".into()
            })
        );
        let no_git = target(
            &c,
            &queue("https://gitea.example.org/team/fw", sha, Status::Waiting),
        );
        assert_eq!(no_git.map(|t| t.repo), Some("fw".into()));
        for other in [
            "https://github.example.org/team/fw.git",
            "https://gitea.example.org.evil/team/fw.git",
            "https://gitea.example.org/team",
            "https://gitea.example.org/a/b/c.git",
            "/srv/fw",
        ] {
            assert_eq!(
                target(&c, &queue(other, sha, Status::Waiting)),
                None,
                "{other}"
            );
        }
        let no_commit = queue(
            "https://gitea.example.org/team/fw.git",
            None,
            Status::Waiting,
        );
        assert_eq!(
            target(&c, &no_commit),
            None,
            "a branch alone names no commit"
        );
    }

    #[test]
    fn each_state_maps_to_a_gitea_state_with_a_link() {
        let c = config();
        let repo = "https://gitea.example.org/team/fw.git";
        let s = |status| super::status(&c, &queue(repo, Some("abc1234"), status));
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
        assert_eq!(
            e.target_url.as_deref(),
            Some("https://ta.example.org/queues/q1")
        );
    }
}
