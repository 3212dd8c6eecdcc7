//! Gitea commit statuses against a stand-in Gitea on loopback: it serves the repository over
//! git's HTTP protocol (static files, as a bare repository after `update-server-info`) and
//! records the statuses posted to its API, answering them as the test says (accepted, or
//! refused while "down"). A queue of that repository shows pending, pending, then success on its
//! commit; a post that may pass is retried until Gitea takes it, one refused for good is not;
//! and statuses that were due when the server was killed are posted after its restart.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_http::services::ServeDir;

use crate::cli::{start_with_env, wait_status};
use crate::helpers::spawn_app_with;
use crate::worker::{SCENARIO_PASS, config, git, make_repo};

/// One post as the stand-in received it, and how it answered.
#[derive(Debug)]
struct Post {
    path: String,
    auth: String,
    body: Value,
    answer: StatusCode,
}

impl Post {
    fn accepted(&self) -> bool {
        self.answer.is_success()
    }

    /// (state, description).
    fn shows(&self) -> (String, String) {
        let s = |k: &str| self.body[k].as_str().unwrap_or_default().to_owned();
        (s("state"), s("description"))
    }
}

#[derive(Clone)]
struct Fake {
    posts: mpsc::UnboundedSender<Post>,
    /// Answers to the next posts, in order; after them, 503 while `down`, else 201.
    script: Arc<Mutex<VecDeque<StatusCode>>>,
    down: Arc<AtomicBool>,
}

async fn status(
    State(fake): State<Fake>,
    UrlPath((owner, repo, sha)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> StatusCode {
    let scripted = fake.script.lock().unwrap().pop_front();
    let answer = scripted.unwrap_or(if fake.down.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::CREATED
    });
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = format!("/api/v1/repos/{owner}/{repo}/statuses/{sha}");
    let _ = fake.posts.send(Post {
        path,
        auth,
        body: body.0,
        answer,
    });
    answer
}

/// The stand-in Gitea.
struct Gitea {
    addr: SocketAddr,
    posts: mpsc::UnboundedReceiver<Post>,
    /// While set, posts are answered 503.
    down: Arc<AtomicBool>,
}

/// Starts the stand-in Gitea serving `repos` (bare repositories by `owner/name.git`); its first
/// answers are `script`.
async fn fake_gitea(repos: &Path, script: &[StatusCode], down: bool) -> Gitea {
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake {
        posts: tx,
        script: Arc::new(Mutex::new(script.iter().copied().collect())),
        down: Arc::new(AtomicBool::new(down)),
    };
    let down = fake.down.clone();
    let app = Router::new()
        .route("/api/v1/repos/{owner}/{repo}/statuses/{sha}", post(status))
        .fallback_service(ServeDir::new(repos))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Gitea {
        addr,
        posts: rx,
        down,
    }
}

impl Gitea {
    /// The next post, whatever the answer.
    async fn next(&mut self) -> Post {
        tokio::time::timeout(Duration::from_secs(30), self.posts.recv())
            .await
            .expect("a status in time")
            .expect("the stand-in is running")
    }

    /// The states the server shows on the commit, in the order Gitea took them, until the
    /// final one; refused posts are checked to be for the first state not yet taken.
    async fn accepted_until_final(&mut self, sha: &str, id: &str) -> Vec<(String, String)> {
        let mut states: Vec<(String, String)> = Vec::new();
        let mut retrying = None;
        loop {
            let post = self.next().await;
            assert_eq!(post.path, format!("/api/v1/repos/team/fw/statuses/{sha}"));
            assert_eq!(post.auth, "token tok");
            assert_eq!(post.body["context"], "testarena/sim");
            assert_eq!(
                post.body["target_url"],
                format!("http://testarena.example/queues/{id}")
            );
            let shows = post.shows();
            if !post.accepted() {
                if let Some(before) = retrying.replace(shows.clone()) {
                    assert_eq!(before, shows, "another status while one is retried");
                }
                continue;
            }
            if let Some(refused) = retrying.take() {
                assert_eq!(refused, shows, "a later status overtook a retried one");
            }
            let done = shows.0 != "pending";
            states.push(shows);
            if done {
                return states;
            }
        }
    }

    /// Waits for `n` refused posts (any accepted one fails the test); returns what they showed.
    async fn refused(&mut self, n: usize) -> Vec<(String, String)> {
        let mut shown = Vec::new();
        while shown.len() < n {
            let post = self.next().await;
            assert!(!post.accepted(), "Gitea took a post while down: {post:?}");
            shown.push(post.shows());
        }
        shown
    }
}

/// A repository with a passing scenario, served by the stand-in as `team/fw.git` from
/// `<dir>/served`; returns that directory and the commit.
fn served_repo(dir: &Path) -> (PathBuf, String) {
    let work = make_repo(dir, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let repos = dir.join("served");
    std::fs::create_dir_all(repos.join("team")).unwrap();
    let bare = repos.join("team/fw.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &bare.display().to_string(),
        ],
    );
    git(&bare, &["update-server-info"]);
    (repos, sha)
}

/// The server's configuration: statuses to the stand-in, the repository allowed from it.
fn settings(gitea: SocketAddr) -> String {
    let settings = format!(
        "[gitea]\nurl = \"http://{gitea}\"\nenvironment = \"sim\"\ntoken = \"tok\"\ndashboard_url = \"http://testarena.example\"\n"
    );
    // The repository is served over plain http: git may use http for it, and only for it.
    let allowed = format!("allowed_repos = [\"http://{gitea}/\"]");
    config("echo built > built.txt", &settings, &allowed)
}

/// The queue a push delivery would enqueue (the id of the commit, the configured environment).
fn webhook_like(gitea: SocketAddr, sha: &str) -> Value {
    json!({
        "id": format!("team-fw-{}-sim", &sha[..12]),
        "repo": format!("http://{gitea}/team/fw.git"),
        "branch": "main",
        "commit": sha,
        "environment": "sim",
    })
}

fn pending_pending_success() -> Vec<(String, String)> {
    [
        ("pending", "waiting to run"),
        ("pending", "running"),
        ("success", "passed"),
    ]
    .map(|(s, d)| (s.to_owned(), d.to_owned()))
    .to_vec()
}

#[tokio::test]
async fn a_queue_shows_on_its_commit_as_pending_then_success() {
    let dir = tempfile::tempdir().unwrap();
    let (repos, sha) = served_repo(dir.path());
    // The first post fails: the notifier retries it.
    let mut gitea = fake_gitea(&repos, &[StatusCode::INTERNAL_SERVER_ERROR], false).await;
    let app = spawn_app_with(&settings(gitea.addr)).await;
    let r = app
        .post_json("/api/queues", &webhook_like(gitea.addr, &sha))
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let states = gitea.accepted_until_final(&sha, &id).await;
    assert_eq!(states, pending_pending_success());
    let (_, q) = app.get_json(&format!("/api/queues/{id}")).await;
    assert_eq!(q["status"], "passed", "{q:#}");
    app.stop().await;
}

/// Gitea answers 429, 502, then 503 while it is down — more failures than the notifier once
/// retried — while the queue runs to its end; once Gitea is back, every status arrives, in order.
#[tokio::test]
async fn statuses_wait_for_a_gitea_that_is_down_and_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (repos, sha) = served_repo(dir.path());
    let script = [StatusCode::TOO_MANY_REQUESTS, StatusCode::BAD_GATEWAY];
    let mut gitea = fake_gitea(&repos, &script, true).await;
    let app = spawn_app_with(&settings(gitea.addr)).await;
    let r = app
        .post_json("/api/queues", &webhook_like(gitea.addr, &sha))
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let id = format!("team-fw-{}-sim", &sha[..12]);
    app.wait_status(&id, "passed", Duration::from_secs(30))
        .await;
    // The first status, tried again and again; no later one overtakes it.
    let refused = gitea.refused(3).await;
    assert!(
        refused.iter().all(|s| s.1 == "waiting to run"),
        "{refused:?}"
    );

    gitea.down.store(false, Ordering::SeqCst);
    let states = gitea.accepted_until_final(&sha, &id).await;
    assert_eq!(states, pending_pending_success());
    app.stop().await;
}

/// A status Gitea refuses for good (a 4xx other than 429) is logged and given up: the next
/// ones still come, at once.
#[tokio::test]
async fn a_status_gitea_refuses_for_good_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (repos, sha) = served_repo(dir.path());
    let mut gitea = fake_gitea(&repos, &[StatusCode::UNPROCESSABLE_ENTITY], false).await;
    let app = spawn_app_with(&settings(gitea.addr)).await;
    let r = app
        .post_json("/api/queues", &webhook_like(gitea.addr, &sha))
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let first = gitea.next().await;
    assert_eq!(first.answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first.shows().1, "waiting to run");
    let mut rest = Vec::new();
    loop {
        let post = gitea.next().await;
        assert!(post.accepted(), "refused again: {post:?}");
        let shows = post.shows();
        let done = shows.0 != "pending";
        rest.push(shows);
        if done {
            break;
        }
    }
    assert_eq!(rest, pending_pending_success()[1..]);
    app.stop().await;
}

/// `kill -9` after the queue ended but before Gitea took any of its statuses (it was down):
/// after the restart, every one of them is posted, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_due_at_a_kill_9_are_posted_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (repos, sha) = served_repo(dir.path());
    let mut gitea = fake_gitea(&repos, &[], true).await;
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, settings(gitea.addr)).unwrap();
    let root = dir.path().join("root");
    let start = || start_with_env(&root, Some(&cfg), &[], Stdio::null(), &[]);
    let mut server = start();
    let client = testarena::http_client().build().expect("http client");
    let r = client
        .post(format!("http://{}/api/queues", server.addr))
        .json(&webhook_like(gitea.addr, &sha))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let id = format!("team-fw-{}-sim", &sha[..12]);
    wait_status(&client, &server, &id, "passed").await;
    // Its first status was tried (and refused): the sender is waiting to try again.
    assert_eq!(gitea.refused(1).await[0].1, "waiting to run");

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    while let Ok(post) = gitea.posts.try_recv() {
        assert!(!post.accepted(), "Gitea took a post while down: {post:?}");
    }

    gitea.down.store(false, Ordering::SeqCst);
    let server = start();
    let states = gitea.accepted_until_final(&sha, &id).await;
    assert_eq!(states, pending_pending_success());
    drop(server);
}
