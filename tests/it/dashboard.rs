//! The browser dashboard in a real browser (headless Chromium over WebDriver): the list follows
//! runs live, the enqueue form shows API errors at their field, the queue page follows its log
//! live and after the end, abort and delete work from their buttons, the list reconnects after a
//! server restart, a 200,000-line log stays smooth, hostile log text stays text. Plus the HTML error pages and static files over HTTP.
//!
//! Browser tests take one lock, so that one Chromium runs at a time. Every wait is a bounded
//! wait for a condition in the page, never a fixed sleep.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use testarena::model::QueueId;
use testarena::report::Reports;

use crate::helpers::{TestApp, spawn_app_with};
use webdriver::Browser;

mod colours;
mod webdriver;

/// How long one wait in the page may take.
const WAIT: Duration = Duration::from_secs(45);
/// How long one whole browser test may take.
const TEST_LIMIT: Duration = Duration::from_secs(240);

/// One browser at a time: the machine is small and Chromium is not.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const QUICK: &str = r#"<scenario name="quick"><suite name="shell">
  <test name="ping" timeout="5"><send>ping</send><expect>pong</expect></test>
</suite></scenario>
"#;
/// Passes `ping`, then waits until the test opens the gate.
const GATED: &str = r#"<scenario name="gated"><suite name="shell">
  <test name="ping" timeout="5"><send>ping</send><expect>pong</expect></test>
  <test name="gate" timeout="60"><send>gate</send><expect>opened</expect></test>
</suite></scenario>
"#;
/// Waits for a line the board never prints.
const HANG: &str = r#"<scenario name="hang"><suite name="shell">
  <test name="hang" timeout="60"><send>ping</send><expect>never printed</expect></test>
</suite></scenario>
"#;

/// A server with a scripted board, a git repository with three scenarios, and a gate file the
/// board waits for when sent `gate`.
struct Fixture {
    app: TestApp,
    repo: PathBuf,
    gate: PathBuf,
    _dir: tempfile::TempDir,
}

async fn fixture(slots: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let gate = dir.path().join("gate");
    let board = format!(
        r#"echo booting; echo READY; while read l; do case "$l" in ping) echo pong;; gate) while [ ! -e '{}' ]; do sleep 0.05; done; echo opened;; esac; done"#,
        gate.display()
    );
    let toml = format!(
        "[worker]\nslots = {slots}\nkill_grace = \"500ms\"\n\n[environments.sim]\nbuild = [\"true\"]\n\
         simulate = [\"sh\", \"-c\", {board}]\nready = \"READY\"\nbuild_timeout = \"30s\"\nboot_timeout = \"20s\"\n",
        board = serde_json::to_string(&board).expect("toml string"),
    ) + crate::worker::UNCONFINED;
    let repo = crate::worker::make_repo(
        dir.path(),
        &[
            ("scenarios/quick.xml", QUICK),
            ("scenarios/gated.xml", GATED),
            ("scenarios/hang.xml", HANG),
        ],
    );
    let app = spawn_app_with(&toml).await;
    Fixture {
        app,
        repo,
        gate,
        _dir: dir,
    }
}

impl Fixture {
    async fn enqueue(&self, scenario: &str) -> String {
        let body = json!({
            "repo": self.repo.display().to_string(),
            "branch": "main",
            "environment": "sim",
            "scenarios": [scenario],
        });
        let r = self.app.post_json("/api/queues", &body).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let v: Value = r.json().await.expect("queue json");
        v["id"].as_str().expect("id").to_owned()
    }

    fn open_gate(&self) {
        std::fs::write(&self.gate, "open").expect("gate file");
    }
}

fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(name)
}

/// A JS expression: the text of the rendered log lines, joined by `\n`.
const LOG_TEXT: &str = "Array.from(document.querySelectorAll('#log-window .log-line:not([hidden]) .lt')).map(e => e.textContent).join('\\n')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_follows_runs_live_and_the_form_shows_errors_at_their_field() {
    let _one = BROWSER.lock().await;
    let f = fixture(1).await;
    let b = Browser::start().await;
    tokio::time::timeout(TEST_LIMIT, async {
        b.goto(&f.app.url("/")).await;
        b.wait_for("the change feed to be live", "return document.getElementById('conn').dataset.state === 'live'").await;
        b.exec("window.samePage = true; return null").await;

        // Enqueued elsewhere: the row appears and goes running without a reload.
        let gated = f.enqueue("scenarios/gated.xml").await;
        let row = |id: &str| format!("document.querySelector('tr[data-id=\"{id}\"]')");
        b.wait_for("the new queue to show running", &format!("const r = {}; return r && r.dataset.status === 'running'", row(&gated))).await;

        // Enqueued with the form: it waits for the one slot, and says so.
        b.fill("#f-repo", &f.repo.display().to_string()).await;
        b.fill("#f-ref", "main").await;
        b.click("#f-environment option[value=sim]").await;
        b.fill("#f-scenarios", "scenarios/quick.xml").await;
        b.click("#enqueue-submit").await;
        let quick = b.wait_for("the form to confirm", "const a = document.querySelector('#form-ok:not([hidden]) a'); return a && a.textContent").await;
        let quick = quick.as_str().expect("queue id").to_owned();
        let reason = b.wait_for("the waiting row with its reason", &format!("const r = {}; return r && r.dataset.status === 'waiting' && r.querySelector('.reason').textContent", row(&quick))).await;
        assert!(reason.as_str().unwrap().contains("slot"), "waiting reason: {reason}");
        assert_eq!(b.exec("return Array.from(document.querySelectorAll('#rows tr')).map(r => r.dataset.id)").await, json!([quick, gated]), "newest first");

        // An API error shows next to its field.
        b.fill("#f-repo", "-not-a-repo").await;
        b.click("#enqueue-submit").await;
        let error = b.wait_for("the repo error", "const p = document.getElementById('e-repo'); return !p.hidden && p.textContent").await;
        assert!(error.as_str().unwrap().contains("must not start with '-'"), "{error}");
        assert_eq!(b.exec("return document.getElementById('f-repo').getAttribute('aria-invalid')").await, "true");
        b.wait_for("counts per status", "return document.querySelector('[data-count=\"running\"]').textContent === '1' && document.querySelector('[data-count=\"waiting\"]').textContent === '1'").await;
        b.exec("window.scrollTo(0, 0); return null").await;
        b.screenshot(&screenshot_path("list.png")).await;

        // Both finish; the page saw it all live.
        f.open_gate();
        for id in [&gated, &quick] {
            b.wait_for(&format!("{id} to pass"), &format!("const r = {}; return r && r.dataset.status === 'passed' && r.querySelector('.badge').textContent === 'passed'", row(id))).await;
        }
        b.wait_for("the passed count", "return document.querySelector('[data-count=\"passed\"]').textContent === '2' && document.querySelector('[data-count=\"all\"]').textContent === '2'").await;
        assert_eq!(b.exec("return window.samePage === true").await, true, "the page was reloaded");

        // A filtered list takes in the queues that come to match, and only those.
        // (A missing scenario file is a task that could not run: the queue ends `error`.)
        b.goto(&f.app.url("/?status=error")).await;
        b.wait_for("the filtered list to be live", "return document.getElementById('conn').dataset.state === 'live' && !document.getElementById('empty').hidden").await;
        let failing = f.enqueue("scenarios/missing.xml").await;
        b.wait_for("the errored queue in the filtered list", &format!("const r = {}; return r && r.dataset.status === 'error' && document.getElementById('empty').hidden", row(&failing))).await;
        assert_eq!(b.exec("return document.querySelectorAll('#rows tr').length").await, 1);

        // A phone-sized screen: no sideways scrolling of the page.
        b.set_size(390, 844).await;
        b.wait_for("the page to fit a narrow screen", "return document.documentElement.scrollWidth <= document.documentElement.clientWidth").await;
        b.screenshot(&screenshot_path("list-narrow.png")).await;
    })
    .await
    .expect("the test finished in time");
    b.quit().await;
    f.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_page_follows_its_log_live_and_after_the_end() {
    let _one = BROWSER.lock().await;
    let f = fixture(1).await;
    let b = Browser::start().await;
    tokio::time::timeout(TEST_LIMIT, async {
        let id = f.enqueue("scenarios/gated.xml").await;
        b.set_size(1280, 1500).await;
        b.goto(&f.app.url(&format!("/queues/{id}"))).await;

        // Live: lines, markers and the first test result arrive while the run goes on.
        b.wait_for("the log stream to be live", "return document.getElementById('log-state').dataset.state === 'live'").await;
        b.wait_for("pong in the log", &format!("return {LOG_TEXT}.includes('pong')")).await;
        b.wait_for("the checkout marker", "return Array.from(document.querySelectorAll('#markers .mk')).some(m => m.textContent.includes('checkout') && m.dataset.state === 'passed')").await;
        b.wait_for("ping passed in the tasks", "const t = document.querySelector('#task-gated tr.row-passed td.name'); return t && t.textContent === 'ping'").await;
        assert_eq!(b.exec("return document.querySelector('#q-status .badge').textContent").await, "running");
        assert_eq!(b.exec("return document.getElementById('abort').disabled").await, false);

        // Jumping to a marker pauses following and highlights its line.
        b.click("#markers .mk-btn").await;
        let current = b.wait_for("the marker line", "const l = document.querySelector('.log-line.is-current .lt'); return l && l.textContent").await;
        assert!(current.as_str().unwrap().starts_with("=== "), "{current}");
        assert_eq!(b.exec("return document.getElementById('log-follow').getAttribute('aria-pressed')").await, "false");
        b.click("#log-follow").await;

        // The end: status, outcome of the stream, both tests, links to the reports.
        f.open_gate();
        b.wait_for("the header to say passed", "return document.querySelector('#q-status .badge').textContent === 'passed'").await;
        b.wait_for("the stream to end passed", "return document.getElementById('log-state').dataset.state === 'ended-passed'").await;
        b.wait_for("opened in the log", &format!("return {LOG_TEXT}.includes('opened')")).await;
        b.wait_for("two passed tests", "return document.querySelectorAll('#task-gated tr.row-passed').length === 2 && !document.getElementById('q-report').hidden").await;
        let href = b.exec("return Array.from(document.querySelectorAll('#task-gated td[data-label=\"Log\"] a')).map(a => a.getAttribute('href'))").await;
        let expected: Vec<String> = ["ping", "gate"]
            .iter()
            .map(|t| format!("/queues/{id}/files/tasks/gated/{}", Reports::test_log_path("shell", t)))
            .collect();
        assert_eq!(href, json!(expected));
        let report = format!("/queues/{id}/files/report.html");
        for path in expected.iter().chain([&report]) {
            let r = f.app.client.get(f.app.url(path)).send().await.expect("request");
            assert_eq!(r.status(), 200, "{path}");
        }

        // After the end, a fresh page replays the whole log and says how it ended.
        b.goto(&f.app.url(&format!("/queues/{id}"))).await;
        b.wait_for("the replay to end", "return document.getElementById('log-state').dataset.state === 'ended-passed'").await;
        let log = f.app.client.get(f.app.url(&format!("/api/queues/{id}/log"))).send().await.expect("log").text().await.expect("text");
        let lines = log.lines().count();
        b.wait_for("every line counted", &format!("return document.getElementById('log-count').textContent === '{lines} lines'")).await;
        // One task's own log, then every task's again.
        let task_log = f.app.client.get(f.app.url(&format!("/api/queues/{id}/tasks/gated/log"))).send().await.expect("task log").text().await.expect("text");
        let task_lines = task_log.lines().count();
        assert!(task_lines > 0 && task_lines < lines, "{task_log}");
        let choose = |task: &str| format!("const s = document.getElementById('log-task'); s.value = '{task}'; s.dispatchEvent(new Event('change')); return null");
        b.exec(&choose("gated")).await;
        b.wait_for("the task's log alone", &format!("return document.getElementById('log-state').dataset.state === 'ended-passed' && document.getElementById('log-count').textContent === '{task_lines} lines'")).await;
        let shown = b.exec(&format!("return {LOG_TEXT}")).await;
        assert!(!shown.as_str().unwrap().contains("=== step checkout"), "only the task's lines: {shown}");
        assert_eq!(b.exec("return document.getElementById('log-download').getAttribute('href')").await, format!("/api/queues/{id}/tasks/gated/log"));
        b.exec(&choose("")).await;
        b.wait_for("every line again", &format!("return document.getElementById('log-state').dataset.state === 'ended-passed' && document.getElementById('log-count').textContent === '{lines} lines'")).await;
        b.fill("#log-q", "pong").await;
        b.press_enter("#log-q").await;
        let hits = b.wait_for("a search hit", "const m = document.querySelector('.log-line.is-current mark'); return m && document.getElementById('log-hits').textContent").await;
        assert!(hits.as_str().unwrap().starts_with("1 of "), "{hits}");
        b.exec("document.getElementById('log-q').blur(); return null").await;
        b.screenshot(&screenshot_path("queue.png")).await;

        b.set_size(390, 844).await;
        b.screenshot(&screenshot_path("queue-narrow.png")).await;
        b.wait_for("the page to fit a narrow screen", "return document.documentElement.scrollWidth <= document.documentElement.clientWidth").await;
    })
    .await
    .expect("the test finished in time");
    b.quit().await;
    f.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_delete_work_from_their_buttons() {
    let _one = BROWSER.lock().await;
    let f = fixture(1).await;
    let b = Browser::start().await;
    tokio::time::timeout(TEST_LIMIT, async {
        let id = f.enqueue("scenarios/hang.xml").await;
        b.goto(&f.app.url(&format!("/queues/{id}"))).await;
        b.wait_for("the board to be up", &format!("return document.querySelector('#q-status .badge').textContent === 'running' && {LOG_TEXT}.includes('READY')")).await;

        b.click("#abort").await;
        b.wait_for("the confirmation", "return document.getElementById('confirm').open").await;
        b.click("#confirm-ok").await;
        b.wait_for("the header to say aborted", "return document.querySelector('#q-status .badge').textContent === 'aborted' && document.getElementById('abort').disabled").await;
        b.wait_for("the stream to end aborted", "return document.getElementById('log-state').dataset.state === 'ended-aborted'").await;
        let (_, q) = f.app.get_json(&format!("/api/queues/{id}")).await;
        assert_eq!(q["status"], "aborted", "{q:#}");

        // Cancelling the dialog leaves the queue alone.
        b.click("#delete").await;
        b.wait_for("the confirmation", "return document.getElementById('confirm').open").await;
        b.click("#confirm button[value=cancel]").await;
        b.wait_for("the dialog to close", "return !document.getElementById('confirm').open").await;
        assert_eq!(f.app.get_json(&format!("/api/queues/{id}")).await.0, 200);

        b.click("#delete").await;
        b.wait_for("the confirmation", "return document.getElementById('confirm').open").await;
        b.click("#confirm-ok").await;
        b.wait_for("the deleted banner", "const s = document.querySelector('.banner'); return s && s.textContent.includes('deleted')").await;
        assert_eq!(f.app.get_json(&format!("/api/queues/{id}")).await.0, 404);
    })
    .await
    .expect("the test finished in time");
    b.quit().await;
    f.app.stop().await;
}

/// The server restarts under an open list page: the page says it lost the connection, comes
/// back live on its own, receives the changes it missed from where it stopped (counted once),
/// and is never reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_reconnects_after_a_server_restart_and_misses_nothing() {
    let _one = BROWSER.lock().await;
    let app = spawn_app_with("[worker]\nslots = 0\n").await;
    let body = |id: &str| json!({"id": id, "repo": "https://git.example/fw.git", "branch": "main", "environment": "esp32"});
    assert_eq!(
        app.post_json("/api/queues", &body("before")).await.status(),
        201
    );
    let b = Browser::start().await;
    let row = |id: &str| format!("document.querySelector('tr[data-id=\"{id}\"]')");
    let url = app.url("/");
    let app = tokio::time::timeout(TEST_LIMIT, async {
        b.goto(&url).await;
        b.wait_for("the change feed to be live", "return document.getElementById('conn').dataset.state === 'live'").await;
        b.exec("window.samePage = true; return null").await;

        let down = app.go_down().await;
        b.wait_for("the page to say it is reconnecting", "return document.getElementById('conn').dataset.state === 'reconnecting'").await;
        let app = down.start_again().await;
        // Enqueued before the page is back: it must come from the resumed feed.
        assert_eq!(app.post_json("/api/queues", &body("after")).await.status(), 201);
        b.wait_for("the page to be live again", "return document.getElementById('conn').dataset.state === 'live'").await;
        b.wait_for("the queue enqueued during the reconnect", &format!("const r = {}; return r && r.dataset.status === 'waiting'", row("after"))).await;
        assert_eq!(b.exec("return Array.from(document.querySelectorAll('#rows tr')).map(r => r.dataset.id)").await, json!(["after", "before"]));
        b.wait_for("each change counted once", "return document.querySelector('[data-count=\"waiting\"]').textContent === '2' && document.querySelector('[data-count=\"all\"]').textContent === '2'").await;

        // Live after the reconnect, too.
        let r = app.client.post(app.url("/api/queues/before/abort")).send().await.expect("abort");
        assert_eq!(r.status(), 200);
        b.wait_for("the abort to show", &format!("const r = {}; return r && r.dataset.status === 'aborted'", row("before"))).await;
        b.wait_for("the counts to follow", "return document.querySelector('[data-count=\"waiting\"]').textContent === '1' && document.querySelector('[data-count=\"aborted\"]').textContent === '1'").await;
        assert_eq!(b.exec("return window.samePage === true").await, true, "the page was reloaded");
        app
    })
    .await
    .expect("the test finished in time");
    b.quit().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200000_line_log_stays_smooth_and_hostile_text_stays_text() {
    const LINES: usize = 200_000;
    let _one = BROWSER.lock().await;
    let f = fixture(0).await;
    let id = f.enqueue("scenarios/quick.xml").await;
    let qid = QueueId::parse(&id).expect("id");
    let log = f.app.state.logs.writer(&qid).expect("log writer");
    for i in 0..LINES {
        match i {
            50_001 => log.line("<script>window.pwned = 1</script>"),
            150_001 => log.line("<img src=x onerror=\"window.pwned = 2\">"),
            160_001 => log.line("=== test <b>bold</b> passed"),
            i if i % 10_000 == 0 => log.line(&format!("=== step s{} started", i / 10_000)),
            i => log.line(&format!(
                "{i:06} the board says something fairly ordinary here, line {i}"
            )),
        }
    }
    log.line("the last line");
    log.close().await.expect("log closed");
    let r = f
        .app
        .client
        .post(f.app.url(&format!("/api/queues/{id}/abort")))
        .send()
        .await
        .expect("abort");
    assert_eq!(r.status(), 200);

    let b = Browser::start().await;
    tokio::time::timeout(TEST_LIMIT, async {
        b.goto(&f.app.url(&format!("/queues/{id}"))).await;
        b.wait_for("the whole log", "return performance.getEntriesByName('testarena:log-complete').length > 0").await;
        let first = b.exec("return performance.getEntriesByName('testarena:log-first-lines')[0].startTime").await;
        let complete = b.exec("return performance.getEntriesByName('testarena:log-complete')[0].startTime").await;
        assert_eq!(b.exec("return document.getElementById('log-count').textContent").await, "200,001 lines");
        let rows = b.exec("return document.querySelectorAll('.log-line').length").await;
        assert!(rows.as_u64().unwrap() < 1_000, "{rows} line elements for {LINES} lines");
        assert!(b.exec(&format!("return {LOG_TEXT}")).await.as_str().unwrap().ends_with("the last line"));

        // Scroll to the top, the middle and the end, then through the log frame by frame.
        let scroll = b.exec_async(r#"
            const done = arguments[arguments.length - 1];
            const v = document.getElementById('logview');
            const frame = () => new Promise(r => requestAnimationFrame(() => r()));
            (async () => {
              const b0 = performance.now();
              for (let k = 0; k < 30; k++) await frame();
              const idle = (performance.now() - b0) / 30;
              const t0 = performance.now();
              for (const at of [0, 0.5, 1]) { v.scrollTop = at * v.scrollHeight; await frame(); await frame(); }
              const jumps = performance.now() - t0;
              let worst = 0;
              for (let k = 0; k < 60; k++) {
                const t = performance.now();
                v.scrollTop = v.scrollHeight * (k / 60);
                await frame();
                worst = Math.max(worst, performance.now() - t);
              }
              v.scrollTop = v.scrollHeight; await frame(); await frame();
              done({ idle, jumps, worst, total: performance.now() - t0 });
            })();
        "#).await;
        println!(
            "200,000-line log: first lines {first} ms after navigation, all lines {complete} ms; \
             top/middle/end {} ms, worst frame while scrolling {} ms, whole scroll {} ms \
             (an idle frame: {} ms)",
            scroll["jumps"], scroll["worst"], scroll["total"], scroll["idle"]
        );
        // Bounds far above what the page takes (see the numbers above), far below what a page
        // that renders every line takes: they catch a freeze, not a slow machine.
        assert!(first.as_f64().unwrap() < 10_000.0, "first lines after {first} ms");
        assert!(complete.as_f64().unwrap() < 30_000.0, "whole log after {complete} ms");
        assert!(scroll["jumps"].as_f64().unwrap() < 3_000.0, "{scroll}");
        assert!(scroll["worst"].as_f64().unwrap() < 1_000.0, "{scroll}");
        b.wait_for("the end in view", &format!("return {LOG_TEXT}.endsWith('the last line')")).await;

        // Markers jump; hostile text is shown as text and never runs.
        let marks = b.exec("return document.querySelectorAll('#markers .mk').length").await;
        assert_eq!(marks, 21, "20 steps and one test");
        assert_eq!(b.exec("return document.querySelectorAll('#markers b, #logview b').length").await, 0);
        b.click("#markers .mk:nth-child(11) .mk-btn").await;
        b.wait_for("the step line", "const l = document.querySelector('.log-line.is-current .lt'); return l && l.textContent === '=== step s10 started'").await;
        for (needle, text) in [
            ("pwned = 1", "<script>window.pwned = 1</script>"),
            ("onerror", "<img src=x onerror=\"window.pwned = 2\">"),
        ] {
            b.fill("#log-q", needle).await;
            b.press_enter("#log-q").await;
            let shown = format!(
                "const l = document.querySelector('.log-line.is-current .lt'); return l && l.textContent === {}",
                json!(text)
            );
            b.wait_for(&format!("the line {text} shown as text"), &shown).await;
        }
        assert_eq!(b.exec("return document.querySelectorAll('#logview img, #logview script').length").await, 0);
        assert_eq!(b.exec("return typeof window.pwned").await, "undefined");
    })
    .await
    .expect("the test finished in time");
    b.quit().await;
    f.app.stop().await;
}

#[tokio::test]
async fn pages_and_static_files_over_http() {
    let f = fixture(0).await;
    let get = |path: &str| f.app.client.get(f.app.url(path)).send();

    let r = get("/").await.expect("list");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(r.text().await.unwrap().contains("Enqueue a run"));

    for (path, status, text) in [
        ("/queues/no-such-queue", 404, "Queue not found"),
        ("/queues/bad..id", 400, "Not a queue id"),
        ("/?status=done", 400, "Unknown status"),
    ] {
        let r = get(path).await.expect("page");
        assert_eq!(r.status(), status, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(r.text().await.unwrap().contains(text), "{path}");
    }

    let r = get("/static/common.js").await.expect("script");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = r.headers()["etag"].clone();
    let again = f
        .app
        .client
        .get(f.app.url("/static/common.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("revalidate");
    assert_eq!(again.status(), 304);
    let css = get("/static/dashboard.css").await.expect("css");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    for path in [
        "/static/nope.js",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fCargo.toml",
    ] {
        assert_eq!(get(path).await.expect("static").status(), 404, "{path}");
    }
    f.app.stop().await;
}

/// Signing in from the dashboard. With anonymous read access the list has no enqueue form but
/// a sign-in link; a wrong token is refused at its field; the right one lands back on the list
/// signed in, with the form (which then enqueues with the session), while the page can read
/// neither the session cookie (HttpOnly) nor the token; signing out shows the visitor's list
/// again. With no anonymous access the list itself answers 401 with the sign-in form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_and_out_shows_and_hides_what_a_writer_may_do() {
    let _one = BROWSER.lock().await;
    let writer = testarena::auth::NewToken::generate("ci-writer", testarena::auth::Scope::Write)
        .expect("a token");
    let toml = |anonymous: &str| {
        format!(
            "[worker]\nslots = 0\n\n[auth]\nanonymous = \"{anonymous}\"\ntokens = [\n  {}\n]\n",
            writer.entry
        )
    };
    let app = spawn_app_with(&toml("read")).await;
    let closed = spawn_app_with(&toml("none")).await;
    let b = Browser::start().await;
    const VISITOR: &str = "return !!document.getElementById('write-hint') && !document.getElementById('enqueue') \
        && !!document.getElementById('sign-in') && !document.getElementById('sign-out') \
        && !document.getElementById('viewer-name')";
    const SIGNED_IN: &str = "return location.pathname === '/' && !!document.getElementById('enqueue') \
        && !document.getElementById('write-hint') && !document.getElementById('sign-in') \
        && !!document.getElementById('sign-out') && document.getElementById('viewer-name').textContent";
    tokio::time::timeout(TEST_LIMIT, async {
        b.goto(&app.url("/")).await;
        b.wait_for("the visitor's list", VISITOR).await;
        click_and_follow(&b, "#sign-in").await;
        b.wait_for("the sign-in page", "return location.pathname === '/signin' && !!document.getElementById('signin')").await;

        // A wrong token: said at its field; nobody is signed in.
        b.fill("#f-token", "ta_not-a-token-of-this-server").await;
        b.click("#signin-submit").await;
        let error = b.wait_for("the token error", "const p = document.getElementById('e-token'); return !p.hidden && p.textContent").await;
        assert!(error.as_str().unwrap().contains("not valid"), "{error}");
        assert_eq!(b.exec("return document.getElementById('f-token').getAttribute('aria-invalid')").await, "true");
        assert_eq!(b.exec("return location.pathname").await, "/signin");

        b.fill("#f-token", &writer.token).await;
        click_and_follow(&b, "#signin-submit").await;
        let name = b.wait_for("the list, signed in", SIGNED_IN).await;
        assert_eq!(name, "ci-writer");
        let account = b.exec("return document.getElementById('account').textContent").await;
        assert!(account.as_str().unwrap().contains("(write)"), "{account}");
        // The page holds neither the session nor the token.
        let cookie = b.exec("return document.cookie").await;
        let cookie = cookie.as_str().expect("document.cookie");
        assert!(!cookie.contains("testarena_session"), "the session cookie is not HttpOnly: {cookie}");
        assert!(!cookie.contains(&writer.token), "the token is in a cookie: {cookie}");
        let stored = b.exec("return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])").await;
        assert!(!stored.as_str().unwrap().contains(&writer.token), "the token is stored: {stored}");

        // The form writes with the session (the browser sends the page's Origin).
        b.fill("#f-repo", "https://git.example/fw.git").await;
        b.click("#f-environment option[value=esp32]").await;
        b.click("#enqueue-submit").await;
        let id = b.wait_for("the form to confirm", "const a = document.querySelector('#form-ok:not([hidden]) a'); return a && a.textContent").await;
        let (status, q) = app.get_json(&format!("/api/queues/{}", id.as_str().expect("queue id"))).await;
        assert_eq!(status, 200, "{q:#}");
        assert_eq!(q["status"], "waiting", "{q:#}");

        click_and_follow(&b, "#sign-out").await;
        b.wait_for("the visitor's list after signing out", VISITOR).await;
        assert_eq!(b.exec("return location.pathname").await, "/");

        // No anonymous access: the list is the sign-in form, with 401; signing in shows it.
        let r = closed.client.get(closed.url("/")).send().await.expect("list");
        assert_eq!(r.status(), 401);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(r.text().await.unwrap().contains("id=\"signin\""));
        b.goto(&closed.url("/")).await;
        let status = b.wait_for("the sign-in form in place of the list", "return !!document.getElementById('signin') && !document.getElementById('rows') \
            && performance.getEntriesByType('navigation')[0].responseStatus").await;
        assert_eq!(status, 401);
        assert_eq!(b.exec("return document.getElementById('signin').dataset.next").await, "/");
        b.fill("#f-token", &writer.token).await;
        click_and_follow(&b, "#signin-submit").await;
        let name = b.wait_for("the list, signed in", SIGNED_IN).await;
        assert_eq!(name, "ci-writer");
        assert_eq!(b.exec("return !!document.getElementById('rows')").await, true);
        assert_eq!(b.exec("return performance.getEntriesByType('navigation')[0].responseStatus").await, 200);
    })
    .await
    .expect("the test finished in time");
    b.quit().await;
    app.stop().await;
    closed.stop().await;
}

/// Clicks `css`, whose script sends the browser to another page (or reloads this one) once the
/// server answers, and returns when the next page has loaded. A wait for a condition inside the
/// old page would be cut off by its unloading (WebDriver then answers only at its script
/// timeout), so this waits in the old page for `beforeunload`; WebDriver's next command then
/// waits for the new page to load.
async fn click_and_follow(b: &Browser, css: &str) {
    b.exec("window.taLeaving = false; addEventListener('beforeunload', () => { window.taLeaving = true; }); return null").await;
    b.click(css).await;
    let script = format!(
        r#"const done = arguments[arguments.length - 1];
        if (window.taLeaving === undefined) return done('arrived');
        if (window.taLeaving) return done('leaving');
        addEventListener('beforeunload', () => done('leaving'));
        setTimeout(() => done('stayed: ' + document.body.innerText.slice(0, 2000)), {});"#,
        WAIT.as_millis()
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        match b.exec_async(&script).await.as_str() {
            Some("arrived") => return,
            Some("leaving") => {}
            other => panic!("clicking {css} did not leave the page: {other:?}"),
        }
    }
    panic!("clicking {css}: no new page within {WAIT:?}");
}
