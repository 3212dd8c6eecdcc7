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
        [
            root.num("tests"),
            root.num("failures"),
            root.num("errors"),
            root.num("skipped")
        ],
        [6, 2, 2, 1]
    );
    assert_eq!(root.attr("time"), "10.345");
    let suite_names: Vec<&str> = root.children.iter().map(|s| s.attr("name")).collect();
    let hostile_clean = text::cleaned(HOSTILE);
    assert_eq!(suite_names, ["shell", "net", hostile_clean.as_str()]);

    let cases: Vec<&Element> = root.children.iter().flat_map(|s| &s.children).collect();
    assert_eq!(cases.len(), smoke.tests.len());
    for suite in &root.children {
        assert_eq!(suite.name, "testsuite");
        assert_eq!(suite.num("tests"), suite.children.len() as u64);
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
        match t.status {
            TestStatus::Passed => assert!(case.children.is_empty()),
            status => {
                let [outcome] = case.children.as_slice() else {
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
