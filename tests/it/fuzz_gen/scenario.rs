//! Target `scenario`: `testarena::scenario::parse` on scenario files (format v1, see
//! `docs/scenarios.md`).
//!
//! Three kinds of case, all rendered from one XML tree type ([`X`]):
//! - valid: a scenario built from its parts, written in any of the equivalent ways (either
//!   quote, character references, CDATA, comments, CRLF, a BOM, an XML declaration), sometimes
//!   with thousands of tests; it must parse into exactly the [`Scenario`] it was built from;
//! - damaged: a valid scenario with foreign nodes put inside its suites and tests (unknown or
//!   misplaced elements, stray text, bad references, elements nested thousands deep, an
//!   element or an attribute repeated a hundred thousand times) and odd attribute values;
//! - hostile: any tree of elements, attributes, text, CDATA, references, comments, processing
//!   instructions and raw tokens, with the element names of the format mixed in.
//!
//! Any of them may then get byte mutations (invalid UTF-8 among them). The property: `parse`
//! returns, within the time bound, either the scenario or diagnostics, at least one, each with
//! a message, the file name, and a line and column inside the file.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use testarena::scenario::{
    DEFAULT_EXPECT_TIMEOUT, DEFAULT_SCENARIO_TIMEOUT, DEFAULT_TEST_TIMEOUT, Pattern, Scenario,
    Step, Suite, Test, parse,
};

use super::common::{
    MAX_INPUT, Mutation, WORDS, apply, message, mutations, odd_string, repeat_to, tame_text,
};
use super::runner::{Input, Target, Verdict};

pub struct ScenarioTarget;

#[derive(Clone, Debug)]
pub struct ScenarioCase {
    prolog: Vec<X>,
    root: X,
    /// After the root: a second root, stray text.
    epilogue: Vec<X>,
    style: Style,
    /// What a valid case must parse into.
    expect: Option<Scenario>,
    mutations: Vec<Mutation>,
}

/// A node of an XML document, or something in its place.
#[derive(Clone, Debug)]
pub enum X {
    Elem {
        name: String,
        attrs: Vec<(String, String)>,
        children: Vec<X>,
        end: End,
    },
    /// Character data, escaped as the style says.
    Text(String),
    /// Written as is: `<`, `&` and all.
    RawText(String),
    CData(String),
    /// `&…;`
    Ref(String),
    Comment(String),
    Pi(String),
    /// `inner` inside `depth` elements named `name`, closed or not.
    Deep {
        name: String,
        depth: u32,
        closed: bool,
        inner: Box<X>,
    },
    Repeat {
        n: u32,
        item: Box<X>,
    },
    /// `<name a0="…" a1="…" …/>`, `n` attributes, all named alike or not.
    ManyAttrs {
        name: String,
        n: u32,
        unique: bool,
    },
    Raw(&'static str),
}

#[derive(Clone, Debug)]
pub enum End {
    Normal,
    SelfClosing,
    Unclosed,
    Mismatched(String),
}

/// How a document is written; every style means the same document.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    single_quotes: bool,
    declaration: bool,
    bom: bool,
    /// Between elements: nothing, newlines and indentation, CRLF, comments too.
    layout: u8,
    /// Every k-th character of text as a character reference (0: none).
    char_refs: u8,
    cdata: bool,
}

const NAMES: &[&str] = &[
    "scenario",
    "suite",
    "test",
    "description",
    "send",
    "expect",
    "run",
];

const ATTRS: &[&str] = &[
    "name", "timeout", "regex", "xmlns", "name ", "a:b", "\u{e9}", "",
];

const REFS: &[&str] = &[
    "amp",
    "lt",
    "gt",
    "apos",
    "quot",
    "nbsp",
    "foo",
    "",
    "#0",
    "#9",
    "#10",
    "#13",
    "#x0",
    "#x41",
    "#xD800",
    "#xDFFF",
    "#x110000",
    "#xFFFE",
    "#x10FFFF",
    "#1114112",
    "#-1",
    "#x",
    "#",
    "#99999999999999999999",
    "#x1F600",
    "&amp",
];

const RAW: &[&str] = &[
    "<",
    "</",
    "/>",
    ">",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?",
    "?>",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE scenario [<!ENTITY a \"b\">]>",
    "<!ENTITY x SYSTEM \"/etc/passwd\">",
    "&",
    ";",
    "=",
    "\"",
    "'",
    "<scenario",
    "</scenario>",
    "<a b=c>",
    "<a b>",
    "<a b=\"1\" b=\"2\">",
    "<:a>",
    "<1a>",
    "</ suite>",
    "<suite/ >",
    "\u{feff}",
    "\0",
    "\r",
    "\u{85}",
    "\u{2028}",
];

pub const TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?",
    "?>",
    "&",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&#xD800;",
    "&lt",
    "\"",
    "'",
    "=",
    "<suite name=\"s\">",
    "</test>",
    "<send>x</send>",
    "timeout=\"0s\"",
    "regex=\"true\"",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "\u{feff}",
    "<!DOCTYPE x>",
];

impl Target for ScenarioTarget {
    type Case = ScenarioCase;
    const NAME: &'static str = "scenario";

    fn strategy() -> BoxedStrategy<ScenarioCase> {
        prop_oneof![
            4 => valid_case(),
            3 => damaged_case(),
            3 => hostile_case(),
        ]
        .boxed()
    }

    fn render(case: &ScenarioCase) -> Input {
        let mut out = Vec::new();
        let st = &case.style;
        if st.bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        if st.declaration {
            out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        }
        for x in &case.prolog {
            write(x, st, &mut out, 0);
        }
        write(&case.root, st, &mut out, 0);
        for x in &case.epilogue {
            write(x, st, &mut out, 0);
        }
        if st.layout > 0 {
            out.extend_from_slice(b"\n");
        }
        apply(&mut out, &case.mutations);
        Input::bytes(out)
    }

    fn check(case: &ScenarioCase, input: &Input) -> Verdict {
        // A rendering cut at `MAX_INPUT` is not the scenario built.
        let expect = if case.mutations.is_empty() && input.bytes.len() <= MAX_INPUT {
            case.expect.as_ref()
        } else {
            None
        };
        verdict(&input.bytes, expect)
    }

    fn replay(bytes: &[u8]) -> Verdict {
        verdict(bytes, None)
    }
}

const FILE: &str = "fuzz/scenario.xml";

fn verdict(bytes: &[u8], expect: Option<&Scenario>) -> Verdict {
    match parse(FILE, bytes) {
        Ok(scenario) => {
            if scenario.suites.is_empty() || scenario.test_count() == 0 {
                return Err(format!("accepted a scenario without tests: {scenario:?}"));
            }
            if let Some(expected) = expect
                && &scenario != expected
            {
                return Err(format!(
                    "a valid scenario parsed into something else:\n  got      {}\n  expected {}",
                    short(&format!("{scenario:?}")),
                    short(&format!("{expected:?}"))
                ));
            }
            Ok("accepted")
        }
        Err(diagnostics) => {
            let Some(first) = diagnostics.first() else {
                return Err("refused with no diagnostic".into());
            };
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            for d in &diagnostics {
                message("a diagnostic", &d.message)?;
                if d.file != FILE {
                    return Err(format!(
                        "a diagnostic names file {:?}, not {FILE:?}",
                        d.file
                    ));
                }
                if d.line == 0 || d.column == 0 || d.line as usize > lines {
                    return Err(format!(
                        "a diagnostic at {}:{} in a file of {lines} lines: {}",
                        d.line, d.column, d.message
                    ));
                }
            }
            if let Some(expected) = expect {
                return Err(format!(
                    "a valid scenario was refused: {first}\n  it was built from {}",
                    short(&format!("{expected:?}"))
                ));
            }
            Ok(if first.message.starts_with("invalid UTF-8") {
                "refused: not UTF-8"
            } else if diagnostics.len() == 1 && is_xml_error(&first.message) {
                "refused: not well-formed"
            } else {
                "refused: not a valid scenario"
            })
        }
    }
}

fn is_xml_error(m: &str) -> bool {
    m.starts_with("malformed XML")
        || m.contains("not closed")
        || m.contains("root element")
        || m.contains("nested more than")
        || m.contains("entity")
        || m.contains("DOCTYPE")
        || m.contains("outside the root")
        || m.contains("closing tag")
}

fn short(s: &str) -> String {
    if s.len() <= 600 {
        s.to_owned()
    } else {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

// ---- rendering --------------------------------------------------------------------------------

fn write(x: &X, st: &Style, out: &mut Vec<u8>, depth: usize) {
    if out.len() > MAX_INPUT {
        return;
    }
    match x {
        X::Elem {
            name,
            attrs,
            children,
            end,
        } => {
            out.push(b'<');
            out.extend_from_slice(name.as_bytes());
            for (k, v) in attrs {
                out.push(b' ');
                out.extend_from_slice(k.as_bytes());
                let q = if st.single_quotes { b'\'' } else { b'"' };
                out.push(b'=');
                out.push(q);
                escape_attr(v, q, out);
                out.push(q);
            }
            if matches!(end, End::SelfClosing) && children.is_empty() {
                out.extend_from_slice(b"/>");
                return;
            }
            out.push(b'>');
            for (i, c) in children.iter().enumerate() {
                separate(st, out, depth + 1, i);
                write(c, st, out, depth + 1);
            }
            if !children.is_empty() && matches!(children.last(), Some(X::Elem { .. })) {
                separate(st, out, depth, 0);
            }
            match end {
                End::Normal | End::SelfClosing => {
                    out.extend_from_slice(b"</");
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'>');
                }
                End::Unclosed => {}
                End::Mismatched(other) => {
                    out.extend_from_slice(b"</");
                    out.extend_from_slice(other.as_bytes());
                    out.push(b'>');
                }
            }
        }
        X::Text(t) => escape_text(t, st, out),
        X::RawText(t) => out.extend_from_slice(t.as_bytes()),
        X::CData(t) => {
            out.extend_from_slice(b"<![CDATA[");
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"]]>");
        }
        X::Ref(r) => {
            out.push(b'&');
            out.extend_from_slice(r.as_bytes());
            out.push(b';');
        }
        X::Comment(t) => {
            out.extend_from_slice(b"<!--");
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"-->");
        }
        X::Pi(t) => {
            out.extend_from_slice(b"<?");
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"?>");
        }
        X::Deep {
            name,
            depth: n,
            closed,
            inner,
        } => {
            // The name may be long too: the cap is checked at every level.
            for _ in 0..*n {
                if out.len() > MAX_INPUT {
                    break;
                }
                out.push(b'<');
                out.extend_from_slice(name.as_bytes());
                out.push(b'>');
            }
            write(inner, st, out, depth);
            if *closed {
                for _ in 0..*n {
                    if out.len() > 2 * MAX_INPUT {
                        break;
                    }
                    out.extend_from_slice(b"</");
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'>');
                }
            }
        }
        X::Repeat { n, item } => {
            for _ in 0..*n {
                let before = out.len();
                write(item, st, out, depth);
                // Nothing written (an empty text): nothing will be, however many more times.
                if out.len() > MAX_INPUT || out.len() == before {
                    break;
                }
            }
        }
        X::ManyAttrs { name, n, unique } => {
            out.push(b'<');
            out.extend_from_slice(name.as_bytes());
            for i in 0..*n {
                if out.len() > MAX_INPUT {
                    break;
                }
                let k = if *unique {
                    format!(" a{i}=\"\"")
                } else {
                    " a=\"\"".to_owned()
                };
                out.extend_from_slice(k.as_bytes());
            }
            out.extend_from_slice(b"/>");
        }
        X::Raw(t) => out.extend_from_slice(t.as_bytes()),
    }
}

/// Between two children: nothing, a newline and indentation (LF or CRLF), or also a comment.
fn separate(st: &Style, out: &mut Vec<u8>, depth: usize, i: usize) {
    match st.layout {
        0 => {}
        1 | 2 => {
            out.extend_from_slice(if st.layout == 2 { b"\r\n" } else { b"\n" });
            out.extend(std::iter::repeat_n(b' ', 2 * depth.min(40)));
        }
        _ => {
            out.extend_from_slice(format!("\n<!-- {i} -->\n<?pi {i}?>").as_bytes());
        }
    }
}

fn escape_attr(v: &str, quote: u8, out: &mut Vec<u8>) {
    for c in v.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '"' if quote == b'"' => out.extend_from_slice(b"&quot;"),
            '\'' if quote == b'\'' => out.extend_from_slice(b"&apos;"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

fn escape_text(t: &str, st: &Style, out: &mut Vec<u8>) {
    if st.cdata && !t.is_empty() {
        out.extend_from_slice(b"<![CDATA[");
        out.extend_from_slice(t.replace("]]>", "]]]]><![CDATA[>").as_bytes());
        out.extend_from_slice(b"]]>");
        return;
    }
    for (i, c) in t.chars().enumerate() {
        if st.char_refs > 0 && i % usize::from(st.char_refs) == 0 {
            let r = if i % 2 == 0 {
                format!("&#{};", u32::from(c))
            } else {
                format!("&#x{:X};", u32::from(c))
            };
            out.extend_from_slice(r.as_bytes());
            continue;
        }
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

fn style() -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![6 => Just(false), 1 => Just(true)],
        0u8..4,
        prop_oneof![4 => Just(0u8), 1 => 1u8..4],
        prop_oneof![4 => Just(false), 1 => Just(true)],
    )
        .prop_map(
            |(single_quotes, declaration, bom, layout, char_refs, cdata)| Style {
                single_quotes,
                declaration,
                bom,
                layout,
                char_refs,
                cdata,
            },
        )
}

// ---- valid scenarios --------------------------------------------------------------------------

/// A valid scenario as a tree, and what it means.
#[derive(Clone, Debug)]
struct Built {
    x: X,
    scenario: Scenario,
}

fn elem(name: &str, attrs: Vec<(String, String)>, children: Vec<X>) -> X {
    X::Elem {
        name: name.to_owned(),
        attrs,
        children,
        end: End::Normal,
    }
}

/// A name base: `[A-Za-z0-9][A-Za-z0-9 ._-]*`, short enough for a `-<index>` suffix, no `..`.
fn name_base() -> BoxedStrategy<String> {
    let first = prop_oneof![
        proptest::char::range('a', 'z'),
        proptest::char::range('A', 'Z'),
        proptest::char::range('0', '9')
    ];
    let rest = prop_oneof![
        6 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('0', '9'),
        1 => select(&[' ', '.', '_', '-', 'Z'][..]),
    ];
    (first, vec(rest, 0..50))
        .prop_map(|(f, r)| {
            let mut s: String = std::iter::once(f).chain(r).collect();
            while s.contains("..") {
                s = s.replace("..", "._");
            }
            s
        })
        .boxed()
}

fn unique_name(base: &str, i: usize) -> String {
    let suffix = format!("-{i}");
    let keep = 64 - suffix.len();
    let base: String = base.chars().take(keep).collect();
    let mut name = format!("{base}{suffix}");
    while name.contains("..") {
        name = name.replace("..", "._");
    }
    name
}

/// A timeout attribute and its value: `None` for the default.
fn timeout() -> BoxedStrategy<Option<(String, Duration)>> {
    let n = prop_oneof![
        6 => 1u64..120,
        2 => 1u64..1_000_000_000_000,
        1 => Just(999_999_999_999u64),
    ];
    let unit = select(&["ms", "s", "m", "h", ""][..]);
    let pad = select(&["", " ", "\t", "  "][..]);
    prop_oneof![
        1 => Just(None),
        2 => (n, unit, pad).prop_map(|(n, unit, pad)| {
            let d = match unit {
                "ms" => Duration::from_millis(n),
                "m" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                _ => Duration::from_secs(n),
            };
            // Attribute values turn a tab into a space; both are trimmed.
            Some((format!("{pad}{n}{unit}{pad}"), d))
        }),
    ]
    .boxed()
}

/// Text of one line: letters, odd characters, XML syntax characters, inner spaces and tabs.
fn line_text(min: usize) -> BoxedStrategy<String> {
    let c = prop_oneof![
        8 => tame_text(1, 2).prop_map(|s| s.chars().next().unwrap_or('x')),
        2 => select(&[' ', '\t', '<', '>', '&', '"', '\'', ']', '=', '/', '\\', '{', '$', '*', '|'][..]),
    ];
    vec(c, min..40)
        .prop_map(move |v| {
            let s: String = v.into_iter().collect();
            let t = s.trim().to_owned();
            if t.is_empty() && min > 0 {
                "x".to_owned()
            } else {
                t
            }
        })
        .boxed()
}

/// Several lines (for `<run>` and `<description>`).
fn lines_text() -> BoxedStrategy<String> {
    vec(line_text(1), 1..4).prop_map(|l| l.join("\n")).boxed()
}

#[derive(Clone, Debug)]
enum StepKind {
    Send(String),
    Expect {
        text: String,
        regex: Option<bool>,
        timeout: Option<(String, Duration)>,
    },
    Run {
        command: String,
        timeout: Option<(String, Duration)>,
    },
}

fn step() -> BoxedStrategy<StepKind> {
    prop_oneof![
        2 => line_text(0).prop_map(StepKind::Send),
        3 => (line_text(1), prop_oneof![Just(None), Just(Some(false)), Just(Some(true))], timeout())
            .prop_map(|(text, regex, timeout)| StepKind::Expect { text, regex, timeout }),
        1 => (lines_text(), timeout()).prop_map(|(command, timeout)| StepKind::Run { command, timeout }),
    ]
    .boxed()
}

fn description() -> BoxedStrategy<Option<String>> {
    prop_oneof![2 => Just(None), 1 => lines_text().prop_map(Some)].boxed()
}

fn build_step(s: &StepKind, test_timeout: Duration) -> (X, Step) {
    match s {
        StepKind::Send(line) => (
            elem("send", vec![], text_children(line)),
            Step::Send { line: line.clone() },
        ),
        StepKind::Expect {
            text,
            regex,
            timeout,
        } => {
            let mut attrs = Vec::new();
            if let Some(r) = regex {
                attrs.push(("regex".to_owned(), r.to_string()));
            }
            if let Some((t, _)) = timeout {
                attrs.push(("timeout".to_owned(), t.clone()));
            }
            let (written, pattern) = if *regex == Some(true) {
                let re = regex::escape(text);
                let pattern = Pattern::Regex(regex::Regex::new(&re).expect("an escaped regex"));
                (re, pattern)
            } else {
                (text.clone(), Pattern::Substring(text.clone()))
            };
            (
                elem("expect", attrs, text_children(&written)),
                Step::Expect {
                    pattern,
                    timeout: timeout.as_ref().map_or(DEFAULT_EXPECT_TIMEOUT, |t| t.1),
                },
            )
        }
        StepKind::Run { command, timeout } => {
            let attrs = timeout
                .iter()
                .map(|(t, _)| ("timeout".to_owned(), t.clone()))
                .collect();
            (
                elem("run", attrs, text_children(command)),
                Step::Run {
                    command: command.clone(),
                    timeout: timeout.as_ref().map_or(test_timeout, |t| t.1),
                },
            )
        }
    }
}

fn text_children(t: &str) -> Vec<X> {
    if t.is_empty() {
        vec![]
    } else {
        vec![X::Text(t.to_owned())]
    }
}

fn with_description(description: &Option<String>, mut children: Vec<X>) -> Vec<X> {
    if let Some(d) = description {
        children.insert(
            0,
            elem("description", vec![], vec![X::Text(format!("  {d}\n"))]),
        );
    }
    children
}

#[derive(Clone, Debug)]
struct TestPlan {
    base: String,
    timeout: Option<(String, Duration)>,
    description: Option<String>,
    steps: Vec<StepKind>,
    /// Copies of this test (renamed): thousands now and then.
    copies: usize,
}

fn test_plan() -> BoxedStrategy<TestPlan> {
    let copies = prop_oneof![400 => Just(1usize), 1 => 2usize..3000];
    (
        name_base(),
        timeout(),
        description(),
        vec(step(), 1..5),
        copies,
    )
        .prop_map(|(base, timeout, description, steps, copies)| TestPlan {
            base,
            timeout,
            description,
            steps,
            copies,
        })
        .boxed()
}

#[derive(Clone, Debug)]
struct SuitePlan {
    base: String,
    description: Option<String>,
    tests: Vec<TestPlan>,
}

fn suite_plan() -> BoxedStrategy<SuitePlan> {
    (name_base(), description(), vec(test_plan(), 1..4))
        .prop_map(|(base, description, tests)| SuitePlan {
            base,
            description,
            tests,
        })
        .boxed()
}

fn built() -> BoxedStrategy<Built> {
    (
        name_base(),
        timeout(),
        description(),
        vec(suite_plan(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(base, timeout, description, suites, attrs_reversed)| {
            build(base, timeout, description, suites, attrs_reversed)
        })
        .boxed()
}

fn build(
    base: String,
    timeout: Option<(String, Duration)>,
    description: Option<String>,
    suites: Vec<SuitePlan>,
    attrs_reversed: bool,
) -> Built {
    let mut suite_xs = Vec::new();
    let mut suite_values = Vec::new();
    for (si, sp) in suites.iter().enumerate() {
        let suite_name = unique_name(&sp.base, si);
        let mut test_xs = Vec::new();
        let mut test_values = Vec::new();
        for tp in &sp.tests {
            for _ in 0..tp.copies {
                let name = unique_name(&tp.base, test_values.len());
                let test_timeout = tp.timeout.as_ref().map_or(DEFAULT_TEST_TIMEOUT, |t| t.1);
                let (step_xs, steps): (Vec<X>, Vec<Step>) =
                    tp.steps.iter().map(|s| build_step(s, test_timeout)).unzip();
                let mut attrs = vec![("name".to_owned(), name.clone())];
                if let Some((t, _)) = &tp.timeout {
                    attrs.push(("timeout".to_owned(), t.clone()));
                }
                if attrs_reversed {
                    attrs.reverse();
                }
                test_xs.push(elem(
                    "test",
                    attrs,
                    with_description(&tp.description, step_xs),
                ));
                test_values.push(Test {
                    name,
                    description: tp.description.clone(),
                    timeout: test_timeout,
                    steps,
                });
            }
        }
        suite_xs.push(elem(
            "suite",
            vec![("name".to_owned(), suite_name.clone())],
            with_description(&sp.description, test_xs),
        ));
        suite_values.push(Suite {
            name: suite_name,
            description: sp.description.clone(),
            tests: test_values,
        });
    }
    let name = unique_name(&base, 0);
    let mut attrs = vec![("name".to_owned(), name.clone())];
    if let Some((t, _)) = &timeout {
        attrs.push(("timeout".to_owned(), t.clone()));
    }
    if attrs_reversed {
        attrs.reverse();
    }
    Built {
        x: elem("scenario", attrs, with_description(&description, suite_xs)),
        scenario: Scenario {
            name,
            description,
            timeout: timeout.map_or(DEFAULT_SCENARIO_TIMEOUT, |t| t.1),
            suites: suite_values,
        },
    }
}

fn prolog() -> BoxedStrategy<Vec<X>> {
    prop_oneof![
        4 => Just(Vec::new()),
        1 => vec(prop_oneof![
            Just(X::Comment(" a comment ".into())),
            Just(X::Pi("pi x".into())),
            Just(X::RawText("\n  \t".into())),
        ], 1..3),
    ]
    .boxed()
}

fn valid_case() -> BoxedStrategy<ScenarioCase> {
    (built(), prolog(), style(), mutations(TOKENS))
        .prop_map(|(b, prolog, style, mutations)| ScenarioCase {
            prolog,
            root: b.x,
            epilogue: Vec::new(),
            style,
            expect: Some(b.scenario),
            mutations,
        })
        .boxed()
}

// ---- damaged and hostile scenarios ------------------------------------------------------------

fn element_name() -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(NAMES).prop_map(str::to_owned),
        1 => odd_string(),
        1 => select(&["x", "Scenario", "a:b", "\u{e9}", "_", "a.b", "-a", "1", "suite ", "send\u{0}"][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

fn attr_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => odd_string(),
        2 => select(WORDS).prop_map(str::to_owned),
        1 => select(&["true", "false", "TRUE", "", "s", "0s", "1ms", "99999999999999h"][..]).prop_map(str::to_owned),
        1 => name_base(),
    ]
    .boxed()
}

fn attrs() -> BoxedStrategy<Vec<(String, String)>> {
    let name = prop_oneof![
        6 => select(ATTRS).prop_map(str::to_owned),
        1 => odd_string(),
    ];
    vec((name, attr_value()), 0..4).boxed()
}

fn end() -> BoxedStrategy<End> {
    prop_oneof![
        12 => Just(End::Normal),
        3 => Just(End::SelfClosing),
        1 => Just(End::Unclosed),
        1 => element_name().prop_map(End::Mismatched),
    ]
    .boxed()
}

fn deep_count() -> BoxedStrategy<u32> {
    prop_oneof![
        10 => 1u32..40,
        4 => 28u32..36,
        1 => 40u32..20_000,
    ]
    .boxed()
}

fn huge_count() -> BoxedStrategy<u32> {
    prop_oneof![
        30 => 2u32..100,
        1 => 100u32..200_000,
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<X> {
    prop_oneof![
        4 => odd_string().prop_map(X::Text),
        1 => odd_string().prop_map(X::RawText),
        1 => odd_string().prop_map(X::CData),
        1 => select(REFS).prop_map(|r| X::Ref(r.to_owned())),
        1 => odd_string().prop_map(X::Comment),
        1 => odd_string().prop_map(X::Pi),
        1 => select(RAW).prop_map(X::Raw),
        4 => (element_name(), attrs(), end()).prop_map(|(name, attrs, end)| X::Elem { name, attrs, children: vec![], end }),
        1 => (element_name(), huge_count(), any::<bool>()).prop_map(|(name, n, unique)| X::ManyAttrs { name, n, unique }),
        1 => (line_text(0), huge_count()).prop_map(|(t, n)| X::Text(repeat_to(&t, n as usize))),
    ]
    .boxed()
}

fn node() -> BoxedStrategy<X> {
    leaf()
        .prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                6 => (element_name(), attrs(), vec(inner.clone(), 0..6), end())
                    .prop_map(|(name, attrs, children, end)| X::Elem { name, attrs, children, end }),
                1 => (element_name(), deep_count(), prop_oneof![3 => Just(true), 1 => Just(false)], inner.clone())
                    .prop_map(|(name, depth, closed, inner)| X::Deep { name, depth, closed, inner: Box::new(inner) }),
                1 => (huge_count(), inner).prop_map(|(n, item)| X::Repeat { n, item: Box::new(item) }),
            ]
        })
        .boxed()
}

fn hostile_case() -> BoxedStrategy<ScenarioCase> {
    let root = prop_oneof![
        4 => (attrs(), vec(node(), 0..6), end()).prop_map(|(attrs, children, end)| X::Elem {
            name: "scenario".into(), attrs, children, end
        }),
        2 => node(),
    ];
    (
        prolog(),
        root,
        vec(node(), 0..2),
        style(),
        mutations(TOKENS),
    )
        .prop_map(|(prolog, root, epilogue, style, mutations)| ScenarioCase {
            prolog,
            root,
            epilogue,
            style,
            expect: None,
            mutations,
        })
        .boxed()
}

/// A change to a valid tree: foreign nodes put into some elements, odd attribute values.
#[derive(Clone, Debug)]
struct Damage {
    /// Which element (in document order, modulo the count) and what goes in.
    inserts: Vec<(u32, u32, X)>,
    attrs: Vec<(u32, String, String)>,
}

fn damage() -> BoxedStrategy<Damage> {
    let attr_name = prop_oneof![
        4 => select(&["name", "timeout", "regex"][..]).prop_map(str::to_owned),
        1 => select(ATTRS).prop_map(str::to_owned),
    ];
    (
        vec((any::<u32>(), any::<u32>(), node()), 0..4),
        vec((any::<u32>(), attr_name, attr_value()), 0..4),
    )
        .prop_map(|(inserts, attrs)| Damage { inserts, attrs })
        .boxed()
}

fn count_elements(x: &X) -> u32 {
    match x {
        X::Elem { children, .. } => 1 + children.iter().map(count_elements).sum::<u32>(),
        _ => 0,
    }
}

/// Applies `f` to the `index`-th element in document order.
fn with_element(x: &mut X, index: &mut u32, f: &mut dyn FnMut(&mut X)) -> bool {
    if !matches!(x, X::Elem { .. }) {
        return false;
    }
    if *index == 0 {
        f(x);
        return true;
    }
    *index -= 1;
    if let X::Elem { children, .. } = x {
        for c in children {
            if with_element(c, index, f) {
                return true;
            }
        }
    }
    false
}

fn damaged_case() -> BoxedStrategy<ScenarioCase> {
    (built(), damage(), style(), mutations(TOKENS))
        .prop_map(|(b, damage, style, mutations)| {
            let mut root = b.x;
            let total = count_elements(&root).max(1);
            for (which, at, node) in damage.inserts {
                let mut i = which % total;
                let mut node = Some(node);
                with_element(&mut root, &mut i, &mut |el| {
                    if let X::Elem { children, .. } = el {
                        let at = at as usize % (children.len() + 1);
                        children.insert(at, node.take().expect("inserted once"));
                    }
                });
            }
            for (which, name, value) in damage.attrs {
                let mut i = which % total;
                with_element(&mut root, &mut i, &mut |el| {
                    if let X::Elem { attrs, .. } = el {
                        match attrs.iter_mut().find(|(k, _)| *k == name) {
                            Some(a) => a.1 = value.clone(),
                            None => attrs.push((name.clone(), value.clone())),
                        }
                    }
                });
            }
            ScenarioCase {
                prolog: Vec::new(),
                root,
                epilogue: Vec::new(),
                style,
                expect: None,
                mutations,
            }
        })
        .boxed()
}
