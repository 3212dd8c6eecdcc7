//! The HTML pages as a browser sees them: links, escaping, self-containment, content.

use std::collections::BTreeMap;
use std::fs;

use super::*;
use crate::report::text::is_xml_char;

#[test]
fn the_environment_is_a_cheap_shared_handle() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Reports>();
    let reports = Reports::new().unwrap();
    for name in [
        "base.html",
        "test_log.html",
        "task_report.html",
        "queue_report.html",
        "junit.xml",
    ] {
        assert!(reports.env().get_template(name).is_ok(), "{name}");
    }
}

#[test]
fn every_file_is_written_and_every_link_resolves() {
    let w = write_all();
    let hostile = "tasks/smoke/tests/_script_alert_1___script__________31mred__0m/_script_alert_1___script__________31mred__0m";
    let mut expected = vec![
        "junit.xml".to_owned(),
        "queue.log".to_owned(),
        "report.html".to_owned(),
        "tasks/boot/junit.xml".to_owned(),
        "tasks/boot/report.html".to_owned(),
        "tasks/boot/summary.json".to_owned(),
        "tasks/smoke/junit.xml".to_owned(),
        "tasks/smoke/report.html".to_owned(),
        "tasks/smoke/summary.json".to_owned(),
    ];
    // Each test that ran: its HTML log and its plain-text transcript.
    for test in [
        hostile,
        "tasks/smoke/tests/net/dhcp",
        "tasks/smoke/tests/shell/echo_back",
        "tasks/smoke/tests/shell/ping",
        "tasks/smoke/tests/shell/slow",
    ] {
        expected.push(format!("{test}.html"));
        expected.push(format!("{test}.txt"));
    }
    let found: Vec<String> = files_under(&w.queue_dir())
        .iter()
        .map(|p| {
            p.strip_prefix(w.queue_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(found, expected, "no temporary file may remain either");

    let href = regex::Regex::new(r#"href="([^"]*)""#).unwrap();
    let mut targets = BTreeMap::new();
    for page in html_files(&w) {
        let html = fs::read_to_string(&page).unwrap();
        for cap in href.captures_iter(&html) {
            let link = cap[1].replace("&#x2f;", "/").replace("&amp;", "&");
            if link.starts_with('#') {
                continue;
            }
            assert!(
                !link.contains(':') && !link.starts_with('/'),
                "{page:?} links out: {link}"
            );
            let target = page.parent().unwrap().join(&link);
            assert!(target.is_file(), "{page:?}: dead link {link}");
            *targets.entry(target.canonicalize().unwrap()).or_insert(0) += 1;
        }
    }
    // The queue report reaches every file: each task's three files and every test log.
    let queue_page = w.read("report.html").replace("&#x2f;", "/");
    for rel in expected.iter().filter(|r| **r != "report.html") {
        assert!(
            queue_page.contains(&format!("href=\"{rel}\"")),
            "queue report lacks {rel}"
        );
    }
}

#[test]
fn hostile_text_is_escaped_in_every_page() {
    let w = write_all();
    for page in html_files(&w) {
        let html = fs::read_to_string(&page).unwrap();
        assert!(
            !html.contains("<script"),
            "{page:?} carries a raw script tag"
        );
        assert!(!html.contains("alert(1)</"), "{page:?}");
        assert!(
            html.chars().all(|c| is_xml_char(c) && c != '\u{1b}'),
            "{page:?} carries a control character"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{page:?}"
        );
    }
    let log = w.read("tasks/smoke/tests/shell/ping.html");
    // Colours become classes, the text between them is kept.
    assert!(
        log.contains(
            "&quot;&amp;&#x27; \u{FFFD}\u{FFFD}<span class=\"ansi-fg-1\">red</span></span>"
        ),
        "{log}"
    );
}

#[test]
fn pages_are_self_contained() {
    let w = write_all();
    for page in html_files(&w) {
        let html = fs::read_to_string(&page).unwrap();
        assert!(
            html.contains("<style>") && html.contains(".transcript"),
            "{page:?} lacks the stylesheet"
        );
        for external in ["<link", "<script", "src=", "@import", "url("] {
            assert!(
                !html.contains(external),
                "{page:?} loads something: {external}"
            );
        }
        assert!(html.contains("Content-Security-Policy"), "{page:?}");
    }
}

#[test]
fn a_test_log_shows_the_transcript_by_kind_with_times_status_and_message() {
    let w = write_all();
    let html = w.read("tasks/smoke/tests/shell/echo_back.html");
    for class in [
        "line-info",
        "line-send",
        "line-console",
        "line-match",
        "line-command",
        "line-output",
    ] {
        assert!(html.contains(&format!("class=\"line {class}\"")), "{class}");
    }
    assert!(html.contains(r##"<a class="at" href="#L4">+1.500s</a><span class="kind">match</span><span class="text">pong</span>"##));
    assert!(html.contains("+0.003s") && html.contains("ok &amp; done"));
    assert!(html.contains(r#"<span class="badge status-failed">failed</span>"#));
    assert!(html.contains("5.0 s"), "duration");
    assert!(
        html.contains("expected &quot;pong&quot;\nlast line:"),
        "message"
    );
    assert!(html.contains("<title>shell / echo back · failed · q-1</title>"));
}

#[test]
fn the_task_report_lists_every_test_and_links_the_logs_it_has() {
    let w = write_all();
    let html = w.read("tasks/smoke/report.html").replace("&#x2f;", "/");
    for status in ["passed", "failed", "timed_out", "error", "skipped"] {
        assert!(html.contains(&format!("badge status-{status}")), "{status}");
    }
    assert!(html.contains(r#"href="tests/shell/ping.html""#));
    assert!(html.contains(r#"href="tests/net/dhcp.html""#));
    assert!(
        !html.contains("tests/net/wifi.html"),
        "a skipped test has no log to link"
    );
    assert!(html.contains("previous test timed out"));
    assert!(html.contains(r#"href="junit.xml""#) && html.contains(r#"href="summary.json""#));
    assert!(html.contains("<b>6</b> tests") && html.contains("<b>2</b> failed"));

    let boot = w.read("tasks/boot/report.html");
    assert!(boot.contains("build failed: exit status 2"));
    assert!(boot.contains("No test results."));
}

#[test]
fn the_queue_report_shows_the_header() {
    let w = write_all();
    let html = w.read("report.html");
    for needle in [
        "https:&#x2f;&#x2f;git.example&#x2f;fw.git#",
        "main",
        "0123abcd",
        "xtensa-sim",
        "<dt>Attempt</dt><dd>2</dd>",
        "2023-11-14T22:13:20.000Z",
        "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:14:21.500Z",
        "1m 00s",
        r#"href="queue.log""#,
        "badge status-failed",
        "badge status-error",
    ] {
        assert!(html.contains(needle), "queue report lacks {needle}");
    }
}
