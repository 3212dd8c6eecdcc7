//! A queue's archive and a branch's badge: the archive of a real run listed and unpacked by
//! the real `tar`, entry by entry the bytes the files route serves, never the checkout; the
//! `download` command; the badge's text and colour for each outcome; refusals of bad input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testarena::model::{QueueId, Status};

use crate::helpers::{TestApp, spawn_app};
use crate::worker::{SCENARIO_PASS, config, make_repo};

const LIMIT: Duration = Duration::from_secs(30);

const SCENARIO_FAIL: &str = r#"<scenario name="fail">
  <suite name="shell">
    <test name="wrong" timeout="5"><send>ping</send><expect timeout="1s">never printed</expect></test>
  </suite>
</scenario>
"#;

/// A finished run of two scenarios (one fails), with a symbolic link planted in its task
/// directory that leads out of the queue's directory. Returns the app, the queue id and the
/// directory the repository is in.
async fn finished_run() -> (TestApp, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(
        dir.path(),
        &[
            ("scenarios/pass.xml", SCENARIO_PASS),
            ("scenarios/fail.xml", SCENARIO_FAIL),
        ],
    );
    // The checkout is kept, to check that the archive leaves it out.
    let keep = "[retention]\ncheckouts = \"keep\"\n";
    let app = crate::helpers::spawn_app_with(&config("echo built > built.txt", "", keep)).await;
    let body = json!({"id": "fw-1", "repo": repo.display().to_string(), "branch": "main",
        "environment": "sim"});
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    app.wait_status("fw-1", "failed", LIMIT).await;
    let task_dir = app.root.join("queues/fw-1/tasks/pass");
    std::os::unix::fs::symlink("/etc/hostname", task_dir.join("escape.txt")).unwrap();
    (app, "fw-1".to_owned(), dir)
}

/// Every regular file under the queue's directory, relative to it, the checkout left out.
fn files_on_disk(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if kind.is_dir() && rel != "repo" {
                walk(base, &path, out);
            } else if kind.is_file() {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn tar(args: &[&str], cwd: &Path) -> String {
    let out = Command::new("tar")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("tar runs");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert_eq!(ct, "application/json", "an error is JSON");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn the_archive_holds_exactly_what_the_files_route_serves_under_the_queue_id() {
    let (app, id, _repo) = finished_run().await;
    let r = app
        .client
        .get(app.url(&format!("/api/queues/{id}/archive")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["content-type"], "application/gzip");
    assert_eq!(
        h["content-disposition"],
        format!("attachment; filename=\"{id}.tar.gz\"")
    );
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("a.tar.gz");
    std::fs::write(&file, r.bytes().await.unwrap()).unwrap();

    let listed = tar(&["tzf", "a.tar.gz"], out.path());
    let entries: Vec<&str> = listed.lines().collect();
    let prefix = format!("{id}/");
    assert!(entries.iter().all(|e| e.starts_with(&prefix)), "{listed}");
    let files: BTreeSet<String> = entries
        .iter()
        .filter(|e| !e.ends_with('/'))
        .map(|e| e[prefix.len()..].to_owned())
        .collect();
    let queue_dir = app.root.join("queues").join(&id);
    let expected = files_on_disk(&queue_dir);
    assert_eq!(files, expected, "the archive lists every served file");
    for must in [
        "queue.log",
        "report.html",
        "tasks/pass/report.html",
        "tasks/pass/junit.xml",
        "tasks/pass/summary.json",
        "tasks/pass/task.log",
        "tasks/pass/tests/shell/ping.html",
        "tasks/fail/report.html",
    ] {
        assert!(files.contains(must), "{must} missing from {files:?}");
    }
    assert!(
        queue_dir.join("repo/built.txt").is_file(),
        "a checkout exists"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.contains("/repo/") || e.contains("escape")),
        "neither the checkout nor a symbolic link is archived: {listed}"
    );

    // Unpacked, each file is byte for byte what the files route serves.
    tar(&["xzf", "a.tar.gz"], out.path());
    for rel in &files {
        let served = app
            .client
            .get(app.url(&format!("/queues/{id}/files/{rel}")))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200, "{rel}");
        let unpacked = std::fs::read(out.path().join(&id).join(rel)).unwrap();
        assert_eq!(served.bytes().await.unwrap(), unpacked, "{rel}");
    }
    let (status, _) = app
        .get_json(&format!("/queues/{id}/files/tasks/pass/escape.txt"))
        .await;
    assert_eq!(status, 403, "the files route refuses the link too");
    app.stop().await;
}

#[tokio::test]
async fn download_saves_the_archive_and_says_what_went_wrong() {
    let (app, id, _repo) = finished_run().await;
    let out = tempfile::tempdir().unwrap();
    // Awaited, not blocking: the server runs on this test's runtime.
    let download = |args: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_testarena"))
            .arg("download")
            .args(["--server", &app.url("")])
            .args(args)
            .current_dir(out.path())
            .env_remove("TESTARENA_TOKEN")
            .output()
    };
    // Without -o: <id>.tar.gz here.
    let done = download(&[&id]).await.unwrap();
    assert!(done.status.success(), "{done:?}");
    let listed = tar(&["tzf", &format!("{id}.tar.gz")], out.path());
    assert!(
        listed.lines().any(|l| l == format!("{id}/queue.log")),
        "{listed}"
    );
    let named = download(&[&id, "-o", "saved.tgz"]).await.unwrap();
    assert!(named.status.success(), "{named:?}");
    assert_eq!(
        std::fs::read(out.path().join("saved.tgz")).unwrap().len(),
        std::fs::read(out.path().join(format!("{id}.tar.gz")))
            .unwrap()
            .len()
    );
    // An unknown queue: the server's message, and no file, not even a partial one.
    let missing = download(&["nope", "-o", "nope.tgz"]).await.unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("queue nope not found (404)"), "{stderr}");
    let left: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("nope"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    app.stop().await;
}

#[tokio::test]
async fn archive_refusals_are_json_and_say_what_to_change() {
    let app = spawn_app().await;
    let get = |path: &str| app.client.get(app.url(path)).send();
    let (status, e) = error_of(get("/api/queues/nope/archive").await.unwrap()).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, e) = error_of(get("/api/queues/a..b/archive").await.unwrap()).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("id")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains(".."),
        "{e}"
    );
    // A waiting queue has no directory yet: an archive with its top folder only.
    let body = json!({"id": "w1", "repo": "https://git.example/fw.git", "environment": "esp32"});
    assert_eq!(app.post_json("/api/queues", &body).await.status(), 201);
    let (status, e) = error_of(get("/api/queues/w1/archive?all=1").await.unwrap()).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("all")),
        "{e}"
    );
    let r = get("/api/queues/w1/archive").await.unwrap();
    assert_eq!(r.status(), 200);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("w.tgz"), r.bytes().await.unwrap()).unwrap();
    assert_eq!(tar(&["tzf", "w.tgz"], out.path()), "w1/\n");
    app.stop().await;
}

const REPO: &str = "https://git.example/team/fw.git";

/// A queue of `REPO` on `branch` in `environment` that ends `status` (or stays waiting).
async fn queue_ending(app: &TestApp, id: &str, branch: &str, environment: &str, status: Status) {
    let body = json!({"id": id, "repo": REPO, "branch": branch, "environment": environment});
    assert_eq!(app.post_json("/api/queues", &body).await.status(), 201);
    let id = QueueId::parse(id).unwrap();
    let store = &app.state.store;
    match status {
        Status::Waiting => {}
        Status::Aborted => {
            store
                .abort_waiting(&id, "aborted before it started".into())
                .await
                .unwrap();
        }
        end => {
            store.transition(&id, Status::Running, None).await.unwrap();
            store.transition(&id, end, None).await.unwrap();
        }
    }
}

/// The badge for `query`: (text, colour), after checking what every badge answer carries.
async fn badge(app: &TestApp, query: &[(&str, &str)]) -> (String, String) {
    let url = reqwest::Url::parse_with_params(&app.url("/badge.svg"), query).unwrap();
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{query:?}");
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let svg = r.text().await.unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    let title = svg
        .split("<title>")
        .nth(1)
        .unwrap()
        .split("</title>")
        .next();
    let text = title.unwrap().trim_start_matches("TestArena: ").to_owned();
    let colour = svg
        .split("<rect x=")
        .nth(1)
        .and_then(|r| r.split("fill=\"").nth(1))
        .map(|f| f[..f.find('"').unwrap()].to_owned())
        .unwrap();
    (text, colour)
}

#[tokio::test]
async fn the_badge_shows_the_newest_finished_queue_of_a_branch() {
    let app = spawn_app().await;
    let cases = [
        ("b-passed", Status::Passed, "passed", "#4c1"),
        ("b-failed", Status::Failed, "failed", "#e05d44"),
        ("b-error", Status::Error, "error", "#fe7d37"),
        ("b-timed", Status::TimedOut, "timed out", "#fe7d37"),
    ];
    for (branch, status, text, colour) in cases {
        queue_ending(&app, branch, branch, "esp32", status).await;
        let got = badge(&app, &[("repo", REPO), ("branch", branch)]).await;
        assert_eq!(got, (text.to_owned(), colour.to_owned()), "{branch}");
    }
    let unknown = ("unknown".to_owned(), "#9f9f9f".to_owned());
    assert_eq!(
        badge(&app, &[("repo", REPO), ("branch", "none")]).await,
        unknown
    );
    let other_repo = [
        ("repo", "https://git.example/other.git"),
        ("branch", "b-passed"),
    ];
    assert_eq!(badge(&app, &other_repo).await, unknown);

    // On one branch: the newest finished one counts; waiting and aborted ones are passed over.
    queue_ending(&app, "m1", "main", "esp32", Status::Passed).await;
    queue_ending(&app, "m2", "main", "xtensa-sim", Status::Failed).await;
    queue_ending(&app, "m3", "main", "esp32", Status::Aborted).await;
    queue_ending(&app, "m4", "main", "esp32", Status::Waiting).await;
    let main = |env: Option<&'static str>| {
        let mut q = vec![("repo", REPO), ("branch", "main")];
        q.extend(env.map(|e| ("environment", e)));
        q
    };
    assert_eq!(badge(&app, &main(None)).await.0, "failed");
    assert_eq!(badge(&app, &main(Some("esp32"))).await.0, "passed");
    assert_eq!(badge(&app, &main(Some("xtensa-sim"))).await.0, "failed");
    assert_eq!(badge(&app, &main(Some("qemu"))).await, unknown);
    app.stop().await;
}

/// Anyone may ask for a badge, for any branch name. The answer comes from the store's branch
/// index, not from reading the history newest first (which stopped after 100,000 queues): a
/// branch whose last outcome is followed by more queues than that still shows it, and a
/// made-up branch is `unknown` from one lookup however long the history (the cost is in
/// `benches/history.rs`).
#[tokio::test]
async fn a_badge_finds_its_outcome_behind_a_long_history_and_made_up_branches_nothing() {
    let app = spawn_app().await;
    queue_ending(&app, "old", "quiet", "esp32", Status::Failed).await;
    // 100,001 queues after it, on other branches: many in flight, so the writer folds them.
    let store = &app.state.store;
    let template = testarena::model::QueueRequest {
        repo: REPO.into(),
        branch: Some("busy".into()),
        commit: None,
        environment: "esp32".into(),
        scenarios: vec![],
        priority: 0,
    };
    let ids: Vec<u32> = (0..100_001).collect();
    for chunk in ids.chunks(1000) {
        let writes = chunk.iter().map(|n| {
            let id = QueueId::parse(&format!("h-{n}")).unwrap();
            store.enqueue(id, template.clone())
        });
        for written in futures_util::future::join_all(writes).await {
            written.unwrap();
        }
    }
    assert_eq!(
        badge(&app, &[("repo", REPO), ("branch", "quiet")]).await.0,
        "failed"
    );
    for n in 0..20 {
        let made_up = format!("made-up-{n}");
        let got = badge(&app, &[("repo", REPO), ("branch", made_up.as_str())]).await;
        assert_eq!(got.0, "unknown", "{made_up}");
    }
    app.stop().await;
}

#[tokio::test]
async fn badge_refusals_are_json_and_name_the_parameter() {
    let app = spawn_app().await;
    let cases: [(&str, &str, &str); 4] = [
        ("/badge.svg?branch=main", "repo", "missing_query"),
        ("/badge.svg?repo=r", "branch", "missing_query"),
        ("/badge.svg?repo=&branch=main", "repo", "invalid_query"),
        (
            "/badge.svg?repo=r&branch=main&color=red",
            "color",
            "invalid_query",
        ),
    ];
    for (path, field, code) in cases {
        let (status, e) = error_of(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(e["error"]["field"], field, "{path}: {e}");
        assert_eq!(e["error"]["code"], code, "{path}: {e}");
    }
    app.stop().await;
}

/// The text of HTML as a browser shows it: the entities the templates write decoded.
fn unescape(html: &str) -> String {
    [
        ("&#x2f;", "/"),
        ("&quot;", "\""),
        ("&#x27;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
    ]
    .iter()
    .fold(html.to_owned(), |s, (from, to)| s.replace(from, to))
    .replace("&amp;", "&")
}

#[tokio::test]
async fn the_queue_page_links_the_archive_and_offers_the_badge_markdown() {
    let app = spawn_app().await;
    queue_ending(&app, "p1", "fix/x", "esp32", Status::Passed).await;
    let page = app.client.get(app.url("/queues/p1")).send().await.unwrap();
    let page = unescape(&page.text().await.unwrap());
    assert!(page.contains("href=\"/api/queues/p1/archive\""), "{page}");
    let origin = app.url("");
    let query = "repo=https%3A%2F%2Fgit.example%2Fteam%2Ffw.git&branch=fix%2Fx&environment=esp32";
    let markdown = format!("[![TestArena]({origin}/badge.svg?{query})]({origin}/)");
    assert!(page.contains(&markdown), "{markdown} not in {page}");
    let src = format!("/badge.svg?{query}");
    assert!(page.contains(&format!("src=\"{src}\"")), "{page}");
    // The image the page shows is the badge.
    let r = app.client.get(app.url(&src)).send().await.unwrap();
    assert!(r.text().await.unwrap().contains(">passed</text>"));
    app.stop().await;
}
