//! `[worker] allowed_repos` from an attacker's side: repositories elsewhere, `file://` and
//! `transport::` URLs, relative paths, `..` and symlinks out of an allowed directory, a sibling
//! that shares its name's prefix, submodules that point outside (directly, as `file://`, as
//! `ext::`, or one level down), and webhook deliveries from another Gitea. Real git repositories
//! in temporary directories: `allowed/` is listed, `outside/` is not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use testarena::config::Config;

use crate::helpers::{TestApp, spawn_app_with, spawn_app_with_config, test_state};
use crate::hooks::{PUSH, call, delivery};
use crate::worker::{SCENARIO_PASS, UNCONFINED, config, git, make_repo};

const LIMIT: Duration = Duration::from_secs(30);

/// `base/allowed` (listed) and `base/outside` (not), canonical, so messages can be compared.
struct Dirs {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    allowed: PathBuf,
    outside: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let (allowed, outside) = (base.join("allowed"), base.join("outside"));
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    Dirs {
        _tmp: tmp,
        base,
        allowed,
        outside,
    }
}

fn text(p: &Path) -> String {
    p.display().to_string()
}

/// `allowed_repos = ["https://", "<allowed>"]`, for the `[worker]` section.
fn allowing(dir: &Path) -> String {
    format!(
        "allowed_repos = [\"https://\", {}]\n",
        serde_json::to_string(&text(dir)).unwrap()
    )
}

/// A paused server (no queue runs) that allows https and `dir`.
async fn paused(dir: &Path) -> TestApp {
    spawn_app_with(&format!("[worker]\nslots = 0\n{}", allowing(dir))).await
}

/// A running server (environment `sim`) that allows https and `dir`.
/// A running server that reads repositories under `dir`; checkouts are kept for inspection.
async fn running(dir: &Path) -> TestApp {
    let keep = "\n[retention]\ncheckouts = \"keep\"\n";
    spawn_app_with(&(config("echo built > built.txt", "", &allowing(dir)) + UNCONFINED + keep))
        .await
}

async fn enqueue(app: &TestApp, repo: &str) -> (u16, Value) {
    let body = json!({"repo": repo, "branch": "main", "environment": "esp32"});
    let r = app.post_json("/api/queues", &body).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// 400, `invalid_field` on `repo`, and the message names the key and the repository.
fn assert_refused(status: u16, body: &Value, repo: &str) -> String {
    assert_eq!(status, 400, "{repo}: {body:#}");
    assert_eq!(body["error"]["code"], "invalid_field", "{repo}: {body:#}");
    assert_eq!(body["error"]["field"], "repo", "{repo}: {body:#}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("[worker] allowed_repos"),
        "{repo}: {message}"
    );
    message
}

async fn queue_count(app: &TestApp) -> usize {
    let (_, list) = app.get_json("/api/queues").await;
    list["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn repositories_outside_allowed_repos_are_refused_naming_the_key() {
    let d = dirs();
    let inside = make_repo(&d.allowed, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let elsewhere = make_repo(&d.outside, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = paused(&d.allowed).await;
    let marker = d.base.join("pwned");
    for repo in [
        text(&elsewhere),
        format!("file://{}", text(&inside)),
        format!("file://{}", text(&elsewhere)),
        format!("ext::sh -c touch% {}", text(&marker)),
        "repo".to_owned(),
        "http://git.example/fw.git".to_owned(),
    ] {
        let (status, body) = enqueue(&app, &repo).await;
        let message = assert_refused(status, &body, &repo);
        assert!(message.contains(&format!("{repo:?}")), "{message}");
    }
    let (status, _) = enqueue(&app, &text(&elsewhere)).await;
    assert_eq!(status, 400);
    assert_eq!(queue_count(&app).await, 0, "nothing was queued");
    // The allowed directory itself, and https, are accepted.
    assert_eq!(enqueue(&app, &text(&inside)).await.0, 201);
    assert_eq!(enqueue(&app, "https://git.example/fw.git").await.0, 201);
    assert!(!marker.exists());
    app.stop().await;
}

#[tokio::test]
async fn by_default_no_local_repository_is_allowed() {
    let d = dirs();
    let repo = make_repo(&d.allowed, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let app = spawn_app_with_config("[worker]\nslots = 0\n", |c| {
        c.worker.allowed_repos = Config::defaults().worker.allowed_repos;
    })
    .await;
    for local in [text(&repo), format!("file://{}", text(&repo))] {
        let (status, body) = enqueue(&app, &local).await;
        let message = assert_refused(status, &body, &local);
        assert!(
            message.contains(r#"("https://", "ssh://", "git@")"#),
            "the message lists what is allowed: {message}"
        );
    }
    for url in [
        "https://gitea.example.org/team/fw.git",
        "ssh://git@gitea.example.org/team/fw.git",
        "git@gitea.example.org:team/fw.git",
    ] {
        assert_eq!(enqueue(&app, url).await.0, 201, "{url}");
    }
    app.stop().await;
}

#[tokio::test]
async fn escapes_from_an_allowed_directory_are_refused() {
    let d = dirs();
    let secret = make_repo(&d.outside, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let sibling = d.base.join("allowedevil");
    let evil = make_repo(&sibling, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    std::os::unix::fs::symlink(&secret, d.allowed.join("link")).unwrap();
    let app = paused(&d.allowed).await;
    let a = text(&d.allowed);
    let cases = [
        // `..` out of the directory, to a repository that exists and to /etc.
        (format!("{a}/../outside/repo"), Some(secret.clone())),
        (
            format!("{a}/../../../../../../../../etc"),
            Some("/etc".into()),
        ),
        // A symlink inside that leads out.
        (format!("{a}/link"), Some(secret.clone())),
        // A directory whose name merely starts with the allowed one.
        (text(&evil), None),
        // `..` after a directory that does not exist: what it means depends on what comes later.
        (format!("{a}/not-yet/../../outside/repo"), None),
    ];
    for (repo, resolved) in cases {
        let (status, body) = enqueue(&app, &repo).await;
        let message = assert_refused(status, &body, &repo);
        if let Some(resolved) = resolved {
            assert!(
                message.contains(&format!("\" is {}, which is not in", text(&resolved))),
                "the message says where it leads: {message}"
            );
        }
    }
    assert_eq!(queue_count(&app).await, 0);
    app.stop().await;
}

/// A repository in `dir` with the passing scenario and a submodule `lib` (a commit of `sub`)
/// whose URL in `.gitmodules` is `url`.
fn with_submodule(dir: &Path, sub: &Path, url: &str) -> PathBuf {
    let repo = make_repo(dir, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    git(
        &repo,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "--quiet",
            "add",
            &text(sub),
            "lib",
        ],
    );
    git(
        &repo,
        &["config", "-f", ".gitmodules", "submodule.lib.url", url],
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "lib"]);
    repo
}

async fn enqueue_sim(app: &TestApp, repo: &Path) -> String {
    let body = json!({"repo": text(repo), "branch": "main", "environment": "sim"});
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_submodule_outside_allowed_repos_ends_the_checkout_in_error() {
    let d = dirs();
    let sub = make_repo(&d.outside, &[("README", "the secret library\n")]);
    let marker = d.base.join("pwned");
    let app = running(&d.allowed).await;
    let urls = [
        text(&sub),
        format!("file://{}", text(&sub)),
        "/etc".to_owned(),
        format!("ext::sh -c touch% {}", text(&marker)),
        // Relative to the repository (`allowed/N/repo`): up and out.
        "../../../outside/repo".to_owned(),
    ];
    for (i, url) in urls.iter().enumerate() {
        let top = with_submodule(&d.allowed.join(i.to_string()), &sub, url);
        let id = enqueue_sim(&app, &top).await;
        let q = app.wait_status(&id, "error", LIMIT).await;
        let error = q["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("a submodule of the repository is refused")
                && error.contains("[worker] allowed_repos"),
            "{url}: {error}"
        );
        assert!(
            q["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["status"] != "passed")
        );
        let checkout = app.root.join("queues").join(&id).join("repo");
        assert!(checkout.join("scenarios/pass.xml").is_file(), "{url}");
        assert!(
            !checkout.join("lib/README").exists(),
            "{url}: the submodule was not fetched"
        );
    }
    assert!(!marker.exists(), "ext:: never ran");
    app.stop().await;
}

#[tokio::test]
async fn a_submodule_one_level_down_is_checked_too() {
    let d = dirs();
    let deep = make_repo(&d.outside, &[("README", "the secret library\n")]);
    let mid = with_submodule(&d.allowed.join("mid"), &deep, &text(&deep));
    let top = with_submodule(&d.allowed.join("top"), &mid, "../../mid/repo");
    let app = running(&d.allowed).await;
    let id = enqueue_sim(&app, &top).await;
    let q = app.wait_status(&id, "error", LIMIT).await;
    let error = q["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("a submodule of submodule lib is refused") && error.contains(&text(&deep)),
        "{error}"
    );
    let checkout = app.root.join("queues").join(&id).join("repo");
    assert!(
        checkout.join("lib/scenarios/pass.xml").is_file(),
        "the allowed level was checked out"
    );
    assert!(!checkout.join("lib/lib/README").exists());
    app.stop().await;
}

#[tokio::test]
async fn submodules_inside_an_allowed_directory_are_checked_out() {
    let d = dirs();
    let lib = make_repo(&d.allowed.join("lib"), &[("README", "the library\n")]);
    // Relative to the repository, as Gitea users write them:
    // `allowed/top/repo` → `allowed/lib/repo`.
    let top = with_submodule(&d.allowed.join("top"), &lib, "../../lib/repo");
    let app = running(&d.allowed).await;
    let id = enqueue_sim(&app, &top).await;
    app.wait_status(&id, "passed", LIMIT).await;
    let checkout = app.root.join("queues").join(&id).join("repo");
    let readme = std::fs::read_to_string(checkout.join("lib/README")).unwrap();
    assert_eq!(readme, "the library\n");
    app.stop().await;
}

// ---- webhooks -----------------------------------------------------------------------------------

const HOOKS: &str =
    "[gitea]\nsecret = \"hook-secret\"\nenvironment = \"xtensa-sim\"\n[worker]\nslots = 0\n";

fn push_from(clone_url: &str) -> Value {
    let mut push: Value = serde_json::from_str(PUSH).unwrap();
    push["repository"]["clone_url"] = json!(clone_url);
    push
}

fn assert_forbidden(status: StatusCode, body: &Value, mentions: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body:#}");
    assert_eq!(body["error"]["code"], "repo_not_allowed", "{body:#}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(mentions), "{message}");
}

#[tokio::test]
async fn a_delivery_whose_clone_url_is_not_on_gitea_url_is_refused() {
    let settings = HOOKS.replace(
        "[worker]",
        "url = \"https://gitea.example.invalid/\"\ntoken = \"tok\"\n[worker]",
    );
    let (state, _dir) = test_state(&settings);
    for elsewhere in [
        "https://gitea.example.invalid.evil.org/team/fw-app.git",
        "https://gitea.example.invalid@evil.org/team/fw-app.git",
        "https://github.com/team/fw-app.git",
    ] {
        let (s, e) = call(&state, delivery("push", &push_from(elsewhere), "d")).await;
        assert_forbidden(s, &e, "[gitea] url (https://gitea.example.invalid)");
    }
    let count = state.store.list(None, 10, None).await.unwrap().items.len();
    assert_eq!(count, 0, "nothing was queued");
    let on_gitea = push_from("https://gitea.example.invalid/team/fw-app.git");
    let (s, body) = call(&state, delivery("push", &on_gitea, "d")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body:#}");
}

#[tokio::test]
async fn a_delivery_whose_clone_url_is_not_in_allowed_repos_is_refused() {
    let d = dirs();
    let repo = make_repo(&d.outside, &[("scenarios/pass.xml", SCENARIO_PASS)]);
    let settings = HOOKS.replace(
        "slots = 0\n",
        "slots = 0\nallowed_repos = [\"https://gitea.example.invalid/\"]\n",
    );
    let (state, _dir) = test_state(&settings);
    for elsewhere in [
        text(&repo),
        format!("file://{}", text(&repo)),
        "https://github.com/team/fw-app.git".to_owned(),
    ] {
        let (s, e) = call(&state, delivery("push", &push_from(&elsewhere), "d")).await;
        assert_forbidden(s, &e, "[worker] allowed_repos");
    }
    // A malformed location is still the payload's fault.
    let (s, e) = call(&state, delivery("push", &push_from("-uhelper"), "d")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e:#}");
    assert_eq!(e["error"]["code"], "invalid_payload");
    let count = state.store.list(None, 10, None).await.unwrap().items.len();
    assert_eq!(count, 0, "nothing was queued");
}
