//! Gitea commit statuses: a queue that a webhook delivery created (or one exactly like it) shows
//! on its commit (and its pull request) as pending while it waits and runs, then success,
//! failure or error, under the context `testarena/<environment>`.
//!
//! "Exactly like it": the repository is on the configured Gitea, the queue has the id a delivery
//! for that commit and environment gets (or that id with re-run suffixes, `.r<N>`), and it runs
//! one of the configured environments and the configured scenarios. So a status always stands
//! for the configured test set on that commit: a queue enqueued through the API with fewer
//! scenarios (a re-run of only the failed tasks, too) cannot put `success` on a commit.
//!
//! Statuses survive a crash: the event table is their outbox (see `store::outbox`). Every queue
//! state change is written to it in the same commit as the change itself, and the sender keeps
//! its position there too (`META` `statuses`: every change up to it was posted or passed over).
//! At start it follows the change feed from that position, so the statuses that were due when
//! the server stopped or crashed are posted after the restart; the event table keeps every
//! change after the position (up to a million, past which the oldest are dropped, logged).
//!
//! One task posts one status per queue state change, in order: a later state never overtakes an
//! earlier one, and a slow or absent Gitea delays statuses without slowing anything else. A post
//! that may succeed later (no connection, a 5xx, 429, 408) is retried with backoff (1 s, 2 s,
//! 4 s … at most 60 s apart) until Gitea takes it or the server stops; one that Gitea refuses
//! otherwise (another 4xx) is logged and given up. The position moves on after each change is
//! posted or passed over and is written to the store when the feed has been quiet for 200 ms,
//! every 1,000 changes and at shutdown: a restart may post a status again (harmless), never
//! skip one. A [`Feed::Reset`] (changes dropped from a full outbox) is logged and passed.
//!
//! The sender runs whatever `[gitea]` says: it reads the configuration at each change (and each
//! retry) and passes over the changes it gives no status, moving its position on, so turning
//! statuses on later posts the changes from then on, never old history. A file without a
//! position (a new one, or one of a build before the outbox) starts at its latest change.

use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{GiteaConfig, LiveConfig, StatusConfig};
use crate::model::{Queue, QueueId, SUPERSEDED, Status};
use crate::store::{Feed, Store};

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
    let environment = &queue.request.environment;
    let webhook_like =
        crate::hooks::is_webhook_id(&queue.id, &format!("{owner}/{repo}"), &sha, environment)
            && gitea.environments.contains(environment)
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
        Status::Aborted => (
            "error",
            match queue.error.as_deref() {
                Some(why) if why.starts_with(SUPERSEDED) => why.to_owned(),
                _ => "aborted".to_owned(),
            },
        ),
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

/// Retries start this far apart and double each time, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// The position is written to the store once the feed has been quiet this long…
const SAVE_IDLE: Duration = Duration::from_millis(200);
/// …or after this many changes.
const SAVE_EVERY: u32 = 1_000;

/// Follows the change feed from `from` (the store's position, see
/// [`Store::init_statuses_cursor`]) until `shutdown`, posting a status for every queue state
/// change of a queue that the `[gitea]` configuration at that moment says gets one (none while
/// `[gitea] statuses` is off), and moving the position on.
pub async fn run(live: LiveConfig, store: Store, from: u64, shutdown: CancellationToken) {
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
    let mut changes = store.follow_from(from);
    let mut position = Position::new(store.clone(), from);
    loop {
        let feed = tokio::select! {
            () = shutdown.cancelled() => break,
            feed = changes.next() => feed,
            () = tokio::time::sleep(SAVE_IDLE), if position.unsaved() => {
                position.save().await;
                continue;
            }
        };
        let change = match feed {
            Some(Feed::Change(c)) => c,
            Some(Feed::Reset { seq }) => {
                tracing::warn!(
                    up_to = seq,
                    "commit statuses: changes up to this one are no longer kept; their statuses are not posted"
                );
                position.handled(seq);
                continue;
            }
            // The store is closed: nothing can be saved any more.
            None => return,
        };
        if let (None, Some(to)) = (&change.task, change.to) {
            let delivered = Delivery {
                client: &client,
                live: &live,
                store: &store,
                queue: &change.queue,
                to,
            };
            if !delivered.run(&shutdown).await {
                break;
            }
        }
        position.handled(change.seq);
        if position.since_save >= SAVE_EVERY {
            position.save().await;
        }
    }
    // Shutting down: the store closes after this task ends.
    position.save().await;
}

/// The sender's position: in memory after every change, in the store now and then.
struct Position {
    store: Store,
    handled: u64,
    saved: u64,
    since_save: u32,
    /// The last save failed: the next is tried after the next change, not at once.
    failed: bool,
}

impl Position {
    fn new(store: Store, from: u64) -> Position {
        Position {
            store,
            handled: from,
            saved: from,
            since_save: 0,
            failed: false,
        }
    }

    /// Every change up to `seq` was posted or passed over.
    fn handled(&mut self, seq: u64) {
        self.handled = seq;
        self.since_save += 1;
        self.failed = false;
    }

    /// The store is behind and a save is worth trying.
    fn unsaved(&self) -> bool {
        self.handled > self.saved && !self.failed
    }

    async fn save(&mut self) {
        if self.handled <= self.saved {
            return;
        }
        self.since_save = 0;
        match self.store.set_statuses_cursor(self.handled).await {
            Ok(()) => self.saved = self.handled,
            Err(e) => {
                self.failed = true;
                tracing::warn!(error = %e, "commit statuses: cannot save the position; after a restart some statuses may be posted again");
            }
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Posted, refused for good, or not to be posted: the next change.
    Done,
    /// It may pass: again after a while.
    Retry,
}

/// Whether a post Gitea refused with `status` may succeed later.
fn may_pass(status: reqwest::StatusCode) -> bool {
    use reqwest::StatusCode;
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// The status of one queue state change, to post.
struct Delivery<'a> {
    client: &'a reqwest::Client,
    live: &'a LiveConfig,
    store: &'a Store,
    queue: &'a QueueId,
    /// The queue's status in the change (it may be in a later one already).
    to: Status,
}

impl Delivery<'_> {
    /// Posts it, retrying with backoff while the failure may pass. `false`: the server stops
    /// first.
    async fn run(&self, shutdown: &CancellationToken) -> bool {
        let mut delay = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            let sent = tokio::select! {
                () = shutdown.cancelled() => return false,
                sent = self.attempt(attempt) => sent,
            };
            if sent == Sent::Done {
                return true;
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RETRY);
            attempt += 1;
        }
    }

    /// One attempt, under the configuration of this moment.
    async fn attempt(&self, attempt: u32) -> Sent {
        let current = self.live.get();
        let gitea = &current.gitea;
        let Some(config) = &gitea.statuses else {
            return Sent::Done;
        };
        let mut queue = match self.store.get(self.queue).await {
            Ok(Some(view)) => view.queue,
            // Deleted meanwhile: nothing to show.
            Ok(None) => return Sent::Done,
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, attempt, "commit statuses: cannot read the queue");
                return Sent::Retry;
            }
        };
        queue.status = self.to;
        let Some(target) = target(gitea, config, &queue) else {
            return Sent::Done;
        };
        let body = status(config, &queue);
        post(self.client, config, &target, &body, &queue, attempt).await
    }
}

async fn post(
    client: &reqwest::Client,
    config: &StatusConfig,
    target: &Target,
    body: &CommitStatus,
    queue: &Queue,
    attempt: u32,
) -> Sent {
    // Segment by segment: nothing in a name can change the path.
    let Ok(mut url) = reqwest::Url::parse(&config.url) else {
        tracing::error!(url = %config.url, "commit statuses: [gitea] url is not a URL");
        return Sent::Done;
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
    let sent = client
        .post(url)
        .header("authorization", format!("token {token}"))
        .json(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            if attempt > 1 {
                tracing::info!(queue = %queue.id, state = body.state, attempt, "commit status posted");
            }
            Sent::Done
        }
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            if may_pass(status) {
                tracing::warn!(queue = %queue.id, %status, answer = %text, attempt, "commit status refused by Gitea; trying again later");
                Sent::Retry
            } else {
                tracing::error!(queue = %queue.id, %status, answer = %text, attempt, "commit status refused by Gitea; not retried");
                Sent::Done
            }
        }
        Err(e) => {
            tracing::warn!(queue = %queue.id, error = %e, attempt, "cannot reach Gitea for a commit status; trying again later");
            Sent::Retry
        }
    }
}

#[cfg(test)]
mod tests;
