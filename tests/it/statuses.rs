//! Gitea commit statuses against a stand-in Gitea on loopback: it serves the repository over
//! git's HTTP protocol (static files, as a bare repository after `update-server-info`) and
//! records the statuses posted to its API. A queue of that repository shows pending, pending,
//! then success on its commit; a failed post is retried.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_http::services::ServeDir;

use crate::helpers::spawn_app_with;
use crate::worker::{SCENARIO_PASS, config, git, make_repo};

/// One status as the stand-in received it: the URL path, the authorization header, the body.
type Posted = (String, String, Value);

#[derive(Clone)]
struct Fake {
    posted: mpsc::UnboundedSender<Posted>,
    /// How many of the first posts to answer 500.
    fail_first: Arc<AtomicUsize>,
}

async fn status(
    State(fake): State<Fake>,
    UrlPath((owner, repo, sha)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> StatusCode {
    let failing = fake
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = format!("/api/v1/repos/{owner}/{repo}/statuses/{sha}");
    let _ = fake.posted.send((path, auth, body.0));
    StatusCode::CREATED
}

/// Starts the stand-in Gitea serving `repos` (bare repositories by `owner/name.git`).
async fn fake_gitea(
    repos: &Path,
    fail_first: usize,
) -> (SocketAddr, mpsc::UnboundedReceiver<Posted>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let fake = Fake {
        posted: tx,
        fail_first: Arc::new(AtomicUsize::new(fail_first)),
    };
    let app = Router::new()
        .route("/api/v1/repos/{owner}/{repo}/statuses/{sha}", post(status))
        .fallback_service(ServeDir::new(repos))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Posted>) -> Posted {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a status in time")
        .expect("the stand-in is running")
}

#[tokio::test]
async fn a_queue_shows_on_its_commit_as_pending_then_success() {
    let dir = tempfile::tempdir().unwrap();
    let work = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let repos = dir.path().join("served");
    std::fs::create_dir_all(repos.join("team")).unwrap();
    let bare = repos.join("team/fw.git");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &bare.display().to_string(),
        ],
    );
    git(&bare, &["update-server-info"]);
    // The first post fails: the notifier retries it.
    let (gitea, mut posted) = fake_gitea(&repos, 1).await;

    let settings = format!(
        "[gitea]\nurl = \"http://{gitea}\"\nenvironment = \"sim\"\ntoken = \"tok\"\ndashboard_url = \"http://testarena.example\"\n"
    );
    // The repository is served over plain http: git may use http for it, and only for it.
    let allowed = format!("allowed_repos = [\"http://{gitea}/\"]");
    let app = spawn_app_with(&config("echo built > built.txt", &settings, &allowed)).await;
    // As a push delivery would enqueue it (the id of the commit, the configured environment).
    let body = json!({
        "id": format!("team-fw-{}", &sha[..12]),
        "repo": format!("http://{gitea}/team/fw.git"),
        "branch": "main",
        "commit": sha,
        "environment": "sim",
    });
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut states = Vec::new();
    loop {
        let (path, auth, status) = next(&mut posted).await;
        assert_eq!(path, format!("/api/v1/repos/team/fw/statuses/{sha}"));
        assert_eq!(auth, "token tok");
        assert_eq!(status["context"], "testarena/sim");
        assert_eq!(
            status["target_url"],
            format!("http://testarena.example/queues/{id}")
        );
        let state = status["state"].as_str().unwrap().to_owned();
        states.push((
            state.clone(),
            status["description"].as_str().unwrap().to_owned(),
        ));
        if state != "pending" {
            break;
        }
    }
    assert_eq!(
        states,
        [
            ("pending".to_owned(), "waiting to run".to_owned()),
            ("pending".to_owned(), "running".to_owned()),
            ("success".to_owned(), "passed".to_owned()),
        ]
    );
    let (_, q) = app.get_json(&format!("/api/queues/{id}")).await;
    assert_eq!(q["status"], "passed", "{q:#}");
    app.stop().await;
}
