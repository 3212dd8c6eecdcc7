//! From an element tree to a typed [`Scenario`], collecting every problem found.
//!
//! Well-formedness is checked first (`xml`, one error at most); then every element, attribute and
//! text is checked here, and all diagnostics are returned together, sorted by position.

use std::collections::HashMap;
use std::time::Duration;

use super::xml::{Attr, Element, Node, Positions, read_tree};
use super::{
    DEFAULT_EXPECT_TIMEOUT, DEFAULT_SCENARIO_TIMEOUT, DEFAULT_TEST_TIMEOUT, Diagnostic,
    MAX_NAME_LEN, Pattern, Scenario, Step, Suite, Test,
};

/// Parses the scenario in `bytes`; `file` names it in diagnostics.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Scenario, Vec<Diagnostic>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let (line, column) = Positions::new(valid).line_col(valid.len());
            let byte = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
            return Err(vec![Diagnostic {
                file: file.to_owned(),
                line,
                column,
                message: format!("invalid UTF-8 (byte 0x{byte:02x}): scenario files must be UTF-8"),
            }]);
        }
    };
    let src = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cx = Checker {
        file,
        positions: Positions::new(src),
        diags: Vec::new(),
    };
    let scenario = match read_tree(src) {
        Ok(root) => cx.scenario(&root),
        Err(e) => {
            cx.error(e.pos, e.message);
            None
        }
    };
    match scenario {
        Some(s) if cx.diags.is_empty() => Ok(s),
        _ => {
            let mut diags = cx.diags;
            diags.sort_by_key(|d| (d.line, d.column));
            Err(diags)
        }
    }
}

/// Walks the tree and records diagnostics.
struct Checker<'a> {
    file: &'a str,
    positions: Positions<'a>,
    diags: Vec<Diagnostic>,
}

/// The parts of a container element (`scenario`, `suite`, `test`) besides its attributes.
struct Children<'e> {
    description: Option<String>,
    elements: Vec<&'e Element>,
    /// Child elements reported as misplaced or unknown.
    rejected: usize,
}

impl Children<'_> {
    /// No child element at all: worth its own diagnostic.
    fn is_empty(&self) -> bool {
        self.elements.is_empty() && self.rejected == 0
    }
}

impl Checker<'_> {
    fn error(&mut self, pos: usize, message: impl Into<String>) {
        let (line, column) = self.positions.line_col(pos);
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn scenario(&mut self, el: &Element) -> Option<Scenario> {
        if el.name != "scenario" {
            self.error(
                el.pos,
                format!("the root element must be <scenario>, not <{}>", el.name),
            );
            return None;
        }
        self.check_attrs(el, &["name", "timeout"]);
        let name = self.name(el, "scenario");
        let timeout = self.timeout(el, DEFAULT_SCENARIO_TIMEOUT);
        let children = self.children(el, "<suite>");
        let empty = children.is_empty();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut suites = Vec::new();
        for child in children.elements {
            let suite = self.suite(child);
            if !suite.name.is_empty() {
                self.unique(&mut seen, &suite.name, child, "suite", "in this scenario");
            }
            suites.push(suite);
        }
        if empty {
            self.error(
                el.pos,
                "<scenario> has no <suite>: add at least one with a test",
            );
        }
        Some(Scenario {
            name,
            description: children.description,
            timeout,
            suites,
        })
    }

    fn suite(&mut self, el: &Element) -> Suite {
        self.check_attrs(el, &["name"]);
        let name = self.name(el, "suite");
        let children = self.children(el, "<test>");
        let empty = children.is_empty();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut tests = Vec::new();
        for child in children.elements {
            let test = self.test(child);
            if !test.name.is_empty() {
                let scope = format!("in suite {name:?}");
                self.unique(&mut seen, &test.name, child, "test", &scope);
            }
            tests.push(test);
        }
        if empty {
            self.error(el.pos, format!("suite {name:?} has no <test>"));
        }
        Suite {
            name,
            description: children.description,
            tests,
        }
    }

    fn test(&mut self, el: &Element) -> Test {
        self.check_attrs(el, &["name", "timeout"]);
        let name = self.name(el, "test");
        let timeout = self.timeout(el, DEFAULT_TEST_TIMEOUT);
        let children = self.children(el, "<send>, <expect> or <run>");
        if children.is_empty() {
            self.error(
                el.pos,
                format!("test {name:?} has no steps: add <send>, <expect> or <run>"),
            );
        }
        let steps: Vec<Step> = children
            .elements
            .into_iter()
            .filter_map(|child| self.step(child, timeout))
            .collect();
        Test {
            name,
            description: children.description,
            timeout,
            steps,
        }
    }

    fn step(&mut self, el: &Element, test_timeout: Duration) -> Option<Step> {
        match el.name.as_str() {
            "send" => {
                self.check_attrs(el, &[]);
                let line = self.text(el)?;
                if line.contains('\n') {
                    self.error(el.pos, "<send> writes one line: remove the line break");
                    return None;
                }
                Some(Step::Send { line })
            }
            "expect" => {
                self.check_attrs(el, &["timeout", "regex"]);
                let timeout = self.timeout(el, DEFAULT_EXPECT_TIMEOUT);
                let regex = self.regex_flag(el);
                let text = self.text(el)?;
                let pattern = self.pattern(el, text, regex?)?;
                Some(Step::Expect { pattern, timeout })
            }
            "run" => {
                self.check_attrs(el, &["timeout"]);
                let timeout = self.timeout(el, test_timeout);
                let command = self.text(el)?;
                if command.is_empty() {
                    self.error(el.pos, "<run> needs a command");
                    return None;
                }
                Some(Step::Run { command, timeout })
            }
            _ => None,
        }
    }

    fn pattern(&mut self, el: &Element, text: String, regex: bool) -> Option<Pattern> {
        if text.is_empty() {
            self.error(el.pos, "<expect> needs the text to wait for");
            return None;
        }
        if !regex {
            if text.contains('\n') {
                self.error(
                    el.pos,
                    "<expect> matches one console line: remove the line break",
                );
                return None;
            }
            return Some(Pattern::Substring(text));
        }
        match regex::Regex::new(&text) {
            Ok(re) => Some(Pattern::Regex(re)),
            Err(e) => {
                self.error(
                    el.pos,
                    format!("invalid regex {text:?}: {}", regex_reason(&e)),
                );
                None
            }
        }
    }

    fn regex_flag(&mut self, el: &Element) -> Option<bool> {
        let Some(a) = attr(el, "regex") else {
            return Some(false);
        };
        match a.value.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.error(
                    a.pos,
                    format!("regex must be \"true\" or \"false\", not {other:?}"),
                );
                None
            }
        }
    }

    /// Separates a container's description and child elements, reporting everything else.
    fn children<'e>(&mut self, el: &'e Element, expected: &str) -> Children<'e> {
        let mut out = Children {
            description: None,
            elements: Vec::new(),
            rejected: 0,
        };
        let mut seen_description = false;
        for node in &el.children {
            match node {
                Node::Text { text, pos } => {
                    if !text.trim().is_empty() {
                        self.error(
                            *pos,
                            format!(
                                "text is not allowed directly inside <{}>: put it in <description>",
                                el.name
                            ),
                        );
                    }
                }
                Node::Element(child) if child.name == "description" => {
                    self.check_attrs(child, &[]);
                    if seen_description {
                        self.error(
                            child.pos,
                            format!("a second <description> in <{}>", el.name),
                        );
                    }
                    seen_description = true;
                    if let Some(text) = self.text(child) {
                        out.description = Some(text).filter(|t| !t.is_empty());
                    }
                }
                Node::Element(child) if allowed_in(&el.name, &child.name) => {
                    out.elements.push(child)
                }
                Node::Element(child) => {
                    let what = if KNOWN.contains(&child.name.as_str()) {
                        format!("<{}> is not allowed inside <{}>", child.name, el.name)
                    } else {
                        format!("unknown element <{}>", child.name)
                    };
                    self.error(child.pos, format!("{what}: expected {expected}"));
                    out.rejected += 1;
                }
            }
        }
        out
    }

    /// The trimmed text of a text-only element; child elements are errors.
    fn text(&mut self, el: &Element) -> Option<String> {
        let mut text = String::new();
        let mut ok = true;
        for node in &el.children {
            match node {
                Node::Text { text: t, .. } => text.push_str(t),
                Node::Element(child) => {
                    self.error(
                        child.pos,
                        format!(
                            "<{}> is not allowed inside <{}>: it holds text only",
                            child.name, el.name
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| text.trim().to_owned())
    }

    fn check_attrs(&mut self, el: &Element, allowed: &[&str]) {
        for a in &el.attrs {
            if allowed.contains(&a.name.as_str()) {
                continue;
            }
            let hint = if allowed.is_empty() {
                format!("<{}> takes no attributes", el.name)
            } else {
                format!("<{}> takes {}", el.name, allowed.join(", "))
            };
            self.error(a.pos, format!("unknown attribute {:?}: {hint}", a.name));
        }
    }

    /// The element's `name`, checked; an empty string when missing or invalid.
    fn name(&mut self, el: &Element, what: &str) -> String {
        let Some(a) = attr(el, "name") else {
            self.error(el.pos, format!("<{what}> needs a name attribute"));
            return String::new();
        };
        match check_name(&a.value) {
            Ok(()) => a.value.clone(),
            Err(reason) => {
                self.error(
                    a.pos,
                    format!("invalid {what} name {:?}: {reason}", a.value),
                );
                String::new()
            }
        }
    }

    fn timeout(&mut self, el: &Element, default: Duration) -> Duration {
        let Some(a) = attr(el, "timeout") else {
            return default;
        };
        match crate::model::parse_duration(&a.value) {
            Ok(d) if d.is_zero() => {
                self.error(a.pos, "timeout must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(a.pos, format!("timeout: {e}"));
                default
            }
        }
    }

    fn unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        name: &str,
        el: &Element,
        what: &str,
        scope: &str,
    ) {
        let pos = attr(el, "name").map_or(el.pos, |a| a.pos);
        if let Some(&first) = seen.get(name) {
            let (line, column) = self.positions.line_col(first);
            self.error(
                pos,
                format!("duplicate {what} name {name:?} {scope} (first at {line}:{column})"),
            );
        } else {
            seen.insert(name.to_owned(), pos);
        }
    }
}

/// Every element name of format v1.
const KNOWN: [&str; 7] = [
    "scenario",
    "suite",
    "test",
    "description",
    "send",
    "expect",
    "run",
];

fn allowed_in(parent: &str, child: &str) -> bool {
    matches!(
        (parent, child),
        ("scenario", "suite") | ("suite", "test") | ("test", "send" | "expect" | "run")
    )
}

fn attr<'e>(el: &'e Element, name: &str) -> Option<&'e Attr> {
    el.attrs.iter().find(|a| a.name == name)
}

/// Names become file names: `[A-Za-z0-9][A-Za-z0-9 ._-]*`, at most 64 characters, no `..`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("a name must not be empty".into());
    };
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("a name is at most {MAX_NAME_LEN} characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err("a name must start with a letter or a digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-')))
    {
        return Err(format!(
            "a name may contain only letters, digits, spaces, '.', '_' and '-' (found {bad:?})"
        ));
    }
    if name.contains("..") {
        return Err("a name must not contain '..'".into());
    }
    Ok(())
}

/// The one-line reason of a regex error (its display spans several lines).
fn regex_reason(e: &regex::Error) -> String {
    let full = e.to_string();
    full.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error:"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| full.lines().next().unwrap_or_default().to_owned())
}
