//! A board that prints coloured ESP-IDF-style lines: in the live log viewer (real Chromium) the
//! line is a span with the colour's class and no escape shows; the per-test HTML log likewise.

use serde_json::json;

use super::webdriver::Browser;
use super::{BROWSER, LOG_TEXT, TEST_LIMIT};
use crate::helpers::spawn_app_with;

/// On `hello`, the board prints what ESP-IDF's logging prints, plus a charset selection and an
/// erase-line sequence (as `tput` writes them) on a line of their own.
const BOARD: &str = r#"echo booting; echo READY; while read l; do case "$l" in hello) printf '\033[0;32mI (312) main: hello\033[0m\n'; printf '\033[1;31mE (313) main: bold red\033(B\033[m\033[K\n';; esac; done"#;

const SCENARIO: &str = r#"<scenario name="colours"><suite name="idf">
  <test name="hello" timeout="10"><send>hello</send><expect>bold red</expect></test>
</suite></scenario>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coloured_console_lines_are_styled_spans_in_the_live_log_and_the_test_log() {
    let _one = BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = format!(
        "[worker]\nslots = 1\nkill_grace = \"500ms\"\n\n[environments.sim]\nbuild = [\"true\"]\n\
         simulate = [\"sh\", \"-c\", {board}]\nready = \"READY\"\nbuild_timeout = \"30s\"\nboot_timeout = \"20s\"\n",
        board = serde_json::to_string(BOARD).expect("toml string"),
    );
    let repo = crate::worker::make_repo(dir.path(), &[("scenarios/colours.xml", SCENARIO)]);
    let app = spawn_app_with(&toml).await;
    let body = json!({
        "id": "colours",
        "repo": repo.display().to_string(),
        "branch": "main",
        "environment": "sim",
        "scenarios": ["scenarios/colours.xml"],
    });
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);

    let b = Browser::start().await;
    tokio::time::timeout(TEST_LIMIT, async {
        b.goto(&app.url("/queues/colours")).await;
        b.wait_for("the queue to pass", "return document.querySelector('#q-status .badge').textContent === 'passed'").await;
        b.wait_for("the stream to end", "return document.getElementById('log-state').dataset.state === 'ended-passed'").await;
        let green = b
            .wait_for(
                "the green line",
                "const s = Array.from(document.querySelectorAll('#log-window .log-line:not([hidden]) .lt span.ansi-fg-2')); \
                 return s.length > 0 && s.map(e => e.textContent)",
            )
            .await;
        assert!(
            green.as_array().unwrap().iter().any(|t| t == "I (312) main: hello"),
            "{green}"
        );
        let red = b
            .exec("return Array.from(document.querySelectorAll('#log-window .lt span.ansi-fg-1.ansi-bold')).map(e => e.textContent)")
            .await;
        assert!(
            red.as_array().unwrap().iter().any(|t| t == "E (313) main: bold red"),
            "{red}"
        );
        let text = b.exec(&format!("return {LOG_TEXT}")).await;
        let text = text.as_str().unwrap();
        assert!(text.contains("I (312) main: hello"), "{text}");
        for raw in ["\u{1b}", "[0;32m", "[0m", "(B", "[K", "[m"] {
            assert!(!text.contains(raw), "{raw:?} shows in the log: {text}");
        }
        // Computed colour: the class is styled (green), not the text's default colour.
        let colours = b
            .exec("const s = document.querySelector('#log-window .lt span.ansi-fg-2'); const t = s.parentElement; \
                   return [getComputedStyle(s).color, getComputedStyle(t).color]")
            .await;
        assert_ne!(colours[0], colours[1], "{colours}");
        // Search still finds the text of a coloured line and marks it inside its span.
        b.fill("#log-q", "main: hello").await;
        b.press_enter("#log-q").await;
        b.wait_for(
            "a search hit inside the coloured span",
            "const m = document.querySelector('.log-line.is-current span.ansi-fg-2 mark'); return m && m.textContent === 'main: hello'",
        )
        .await;
        assert_eq!(b.exec("return document.querySelectorAll('#logview script, #log-window .lt [style]').length").await, 0);
    })
    .await
    .expect("the test finished in time");
    b.quit().await;

    // The per-test HTML log: the same spans, served as a file; its plain-text transcript keeps
    // the bytes.
    let base = "/queues/colours/files/tasks/colours/tests/idf/hello";
    let r = app
        .client
        .get(app.url(&format!("{base}.html")))
        .send()
        .await
        .expect("test log");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    assert!(
        html.contains(r#"<span class="ansi-fg-2">I (312) main: hello</span>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="ansi-fg-1 ansi-bold">E (313) main: bold red</span>"#),
        "{html}"
    );
    for raw in ["\u{1b}", "[0;32m", "(B", "[K", "style="] {
        assert!(!html.contains(raw), "{raw:?} in the test log");
    }
    let text = app
        .client
        .get(app.url(&format!("{base}.txt")))
        .send()
        .await
        .expect("transcript")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("\u{1b}[0;32mI (312) main: hello\u{1b}[0m"),
        "{text}"
    );
    let log = app
        .client
        .get(app.url("/api/queues/colours/log"))
        .send()
        .await
        .expect("log");
    assert!(
        log.text()
            .await
            .expect("log text")
            .contains("\u{1b}[0;32mI (312) main: hello\u{1b}[0m"),
        "queue.log keeps the bytes"
    );
    app.stop().await;
}
