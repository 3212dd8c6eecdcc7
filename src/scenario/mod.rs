//! XML test scenarios: the typed model, the parser and the runner.
//!
//! A scenario file (format v1, see `docs/scenarios.md`) is parsed by [`parse`] into a
//! [`Scenario`]: suites of tests, each test an ordered list of [`Step`]s. Every problem in a file
//! is reported as a [`Diagnostic`] with file, line and column; files are read by `file`, which
//! refuses symbolic links, anything but regular files and files over [`MAX_FILE_SIZE`], and
//! elements nest at most [`MAX_DEPTH`] deep. [`run_scenario`] drives a parsed
//! scenario against a board's [`Console`] and a [`Host`] that runs commands in the checkout.

mod check;
mod console;
mod file;
mod host;
mod observer;
mod parse;
mod record;
mod runner;
mod steps;
mod xml;

#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod runner_tests;
#[cfg(test)]
mod test_support;

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use check::check_files;
pub use console::{Console, ConsoleEvent};
pub use file::{MAX_FILE_SIZE, discover};
pub use host::{Host, HostOutcome};
pub use observer::Observer;
pub use parse::parse;
pub use runner::{ScenarioRun, run_scenario};

/// Timeout of a whole scenario when `<scenario timeout>` is not given.
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Timeout of a test when `<test timeout>` is not given.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of an `<expect>` without `timeout`; never longer than what remains of the test.
pub const DEFAULT_EXPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest suite, test or scenario name: names become file names.
pub const MAX_NAME_LEN: usize = 64;
/// Deepest element nesting read (a valid scenario nests four: scenario, suite, test, step).
pub const MAX_DEPTH: usize = 32;

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// Bounds the whole run of the scenario.
    pub timeout: Duration,
    pub suites: Vec<Suite>,
}

impl Scenario {
    /// Number of tests over all suites.
    pub fn test_count(&self) -> usize {
        self.suites.iter().map(|s| s.tests.len()).sum()
    }
}

/// A named group of tests; its name is unique within the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub description: Option<String>,
    pub tests: Vec<Test>,
}

/// One test: steps run in order; its name is unique within its suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub name: String,
    pub description: Option<String>,
    pub timeout: Duration,
    pub steps: Vec<Step>,
}

/// One step of a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write `line` and a newline to the console.
    Send { line: String },
    /// Wait for a console line matching `pattern`, after the previous match.
    Expect { pattern: Pattern, timeout: Duration },
    /// Run `sh -c command` in the checkout; passes when it exits 0.
    Run { command: String, timeout: Duration },
}

/// What an `<expect>` looks for in one console line.
#[derive(Debug, Clone)]
pub enum Pattern {
    Substring(String),
    Regex(regex::Regex),
}

impl Pattern {
    /// Whether `line` satisfies the pattern.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Substring(s) => line.contains(s.as_str()),
            Pattern::Regex(re) => re.is_match(line),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Pattern::Substring(a), Pattern::Substring(b)) => a == b,
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// `"text"` for a substring, `/regex/` for a regular expression.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(s) => write!(f, "{s:?}"),
            Pattern::Regex(re) => write!(f, "/{}/", re.as_str()),
        }
    }
}

/// One problem in a scenario file; line and column are 1-based, columns count characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Reads and parses the scenario file at `path` (not a symbolic link, a regular file of at
/// most [`MAX_FILE_SIZE`] bytes); a file that cannot be read is one diagnostic at 1:1.
pub fn parse_file(path: &Path) -> Result<Scenario, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let bytes = file::read_path(path).map_err(|m| file_diagnostic(&name, m))?;
    parse(&name, &bytes)
}

/// Reads and parses `rel`, a scenario path inside the checkout `checkout`, never through a
/// symbolic link; diagnostics name the file by `rel`.
pub fn parse_in_checkout(checkout: &Path, rel: &str) -> Result<Scenario, Vec<Diagnostic>> {
    let bytes = file::read_in_checkout(checkout, rel).map_err(|m| file_diagnostic(rel, m))?;
    parse(rel, &bytes)
}

fn file_diagnostic(file: &str, message: String) -> Vec<Diagnostic> {
    vec![Diagnostic {
        file: file.to_owned(),
        line: 1,
        column: 1,
        message,
    }]
}
