//! `junit.xml` read back with an XML parser, as a CI server reads it.

use std::collections::BTreeMap;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use super::*;
use crate::report::text::{self, is_xml_char};

/// A parsed XML element: attributes and text unescaped as any XML reader would see them.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{} lacks {name}", self.name))
    }
    fn num(&self, name: &str) -> u64 {
        self.attr(name).parse().unwrap()
    }
}

fn parse_xml(xml: &str) -> Element {
    fn open(e: &BytesStart<'_>) -> Element {
        let mut el = Element {
            name: e.name().as_ref().to_owned(),
            ..Default::default()
        };
        for a in e.attributes() {
            let a = a.unwrap();
            let key = a.key.as_ref().to_owned();
            el.attrs.insert(
                key,
                a.normalized_value(XmlVersion::Explicit1_0)
                    .unwrap()
                    .into_owned(),
            );
        }
        el
    }
    assert!(
        xml.chars().all(is_xml_char),
        "junit.xml carries a character XML 1.0 forbids"
    );
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack = vec![Element::default()];
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => stack.push(open(&e)),
            Event::Empty(e) => {
                let el = open(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(el);
            }
            Event::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&r.xml10_content())
                        .unwrap()
                        .to_owned(),
                };
                stack.last_mut().unwrap().text.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack.pop().unwrap();
    assert!(stack.is_empty(), "unbalanced XML");
    assert_eq!(doc.children.len(), 1);
    doc.children.pop().unwrap()
}

#[test]
fn junit_xml_parses_back_to_the_results() {
    let w = write_all();
    let root = parse_xml(&w.read("tasks/smoke/junit.xml"));
    let smoke = &w.tasks[0];
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attr("name"), "q-1/smoke");
    assert_eq!(
        [root.num("tests"), root.num("failures"), root.num("errors")],
        [6, 2, 2]
    );
    // junit-10.xsd has no `skipped` on the root: Jenkins would refuse the file.
    assert!(!root.attrs.contains_key("skipped"), "{:?}", root.attrs);
    assert_eq!(root.attr("time"), "10.345");
    let suite_names: Vec<&str> = root.children.iter().map(|s| s.attr("name")).collect();
    let hostile_clean = text::cleaned(HOSTILE);
    assert_eq!(suite_names, ["shell", "net", hostile_clean.as_str()]);

    let cases: Vec<&Element> = root.children.iter().flat_map(|s| &s.children).collect();
    assert_eq!(cases.len(), smoke.tests.len());
    for suite in &root.children {
        assert_eq!(suite.name, "testsuite");
        assert_eq!(suite.num("tests"), suite.children.len() as u64);
        assert_eq!(suite.attr("timestamp"), "2023-11-14T22:13:22");
        assert!(!suite.attr("hostname").is_empty());
        let count = |kind: &str| {
            suite
                .children
                .iter()
                .filter(|c| c.children.iter().any(|k| k.name == kind))
                .count() as u64
        };
        assert_eq!(suite.num("failures"), count("failure"));
        assert_eq!(suite.num("errors"), count("error"));
        assert_eq!(suite.num("skipped"), count("skipped"));
    }
    for (case, t) in cases.iter().zip(&smoke.tests) {
        assert_eq!(case.name, "testcase");
        assert_eq!(
            case.attr("classname"),
            format!("smoke.{}", text::cleaned(&t.suite))
        );
        assert_eq!(case.attr("name"), text::cleaned(&t.name));
        assert_eq!(case.attr("time"), text::seconds(t.duration_ms));
        let message = text::cleaned(t.message.as_deref().unwrap_or(""));
        // Every test that ran has its transcript as its output, cleaned.
        let (out, outcomes): (Vec<&Element>, Vec<&Element>) =
            case.children.iter().partition(|c| c.name == "system-out");
        if t.status == TestStatus::Skipped {
            assert!(out.is_empty(), "{}", t.name);
        } else {
            let [out] = out.as_slice() else {
                panic!("{case:?}")
            };
            let expected = transcript_text();
            assert_eq!(out.text, expected, "{}", t.name);
        }
        match t.status {
            TestStatus::Passed => assert!(outcomes.is_empty()),
            status => {
                let [outcome] = outcomes.as_slice() else {
                    panic!("{case:?}")
                };
                let (kind, ty) = match status {
                    TestStatus::Failed => ("failure", Some("failed")),
                    TestStatus::TimedOut => ("error", Some("timeout")),
                    TestStatus::Error => ("error", Some("error")),
                    _ => ("skipped", None),
                };
                assert_eq!(outcome.name, kind, "{}", t.name);
                assert_eq!(outcome.attrs.get("type").map(String::as_str), ty);
                assert_eq!(
                    outcome.attr("message"),
                    message,
                    "line breaks survive in attributes"
                );
                if kind != "skipped" {
                    assert_eq!(outcome.text, message);
                }
            }
        }
    }
}

/// The transcript of `transcript()` as `<system-out>` holds it.
fn transcript_text() -> String {
    let hostile = text::cleaned(HOSTILE);
    [
        "+0.000s info    test started".to_owned(),
        "+0.003s send    ping".to_owned(),
        format!("+0.040s console {hostile}"),
        "+1.500s match   pong".to_owned(),
        "+1.502s command python3 tools/check.py".to_owned(),
        "+1.600s output  ok & done".to_owned(),
    ]
    .map(|l| l + "\n")
    .concat()
}

#[test]
fn the_queue_junit_merges_every_task() {
    let w = write_all();
    let root = parse_xml(&w.read("junit.xml"));
    assert_eq!(root.attr("name"), "q-1");
    assert!(!root.attrs.contains_key("skipped"));
    assert_eq!(
        [root.num("tests"), root.num("failures"), root.num("errors")],
        [7, 2, 3],
        "six tests of smoke and the failed boot"
    );
    assert_eq!(root.attr("time"), "60.500");
    let hostile = text::cleaned(HOSTILE);
    let names: Vec<&str> = root.children.iter().map(|s| s.attr("name")).collect();
    assert_eq!(
        names,
        [
            "smoke.shell",
            "smoke.net",
            &format!("smoke.{hostile}"),
            "boot.boot"
        ]
    );
    for (task, suite) in [("smoke", 0), ("boot", 3)] {
        let expected = parse_xml(&w.read(&format!("tasks/{task}/junit.xml")));
        let cases = &root.children[suite].children;
        assert_eq!(cases[0].attrs, expected.children[0].children[0].attrs);
    }
}

#[test]
fn both_junit_files_are_valid_against_the_jenkins_schema() {
    let w = write_all();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/junit/junit-10.xsd");
    for file in ["junit.xml", "tasks/smoke/junit.xml", "tasks/boot/junit.xml"] {
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(w.queue_dir().join(file))
            .output()
            .expect("xmllint runs (Debian: libxml2-utils)");
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn junit_marks_a_task_that_failed_before_its_tests_as_an_error() {
    let w = write_all();
    let root = parse_xml(&w.read("tasks/boot/junit.xml"));
    assert_eq!(
        [root.num("tests"), root.num("errors"), root.num("failures")],
        [1, 1, 0]
    );
    let case = &root.children[0].children[0];
    assert_eq!(case.attr("classname"), "boot.boot");
    let error = &case.children[0];
    assert_eq!(error.name, "error");
    assert!(
        error
            .attr("message")
            .starts_with("build failed: exit status 2 <script>")
    );
}
