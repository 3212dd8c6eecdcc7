//! Domain values and the state machine: pure data, no I/O.
//!
//! Everything that names a directory (`QueueId`, `TaskId`) is a newtype parsed at the edge, so an
//! invalid id cannot reach the filesystem. Every status change goes through [`Status::transition`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest id accepted: ids become directory names.
pub const MAX_ID_LEN: usize = 64;

/// Why an id was refused; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

/// Checks the id grammar `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` without `..`.
pub fn validate_id(s: &str) -> Result<(), InvalidId> {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return Err(InvalidId("an id must not be empty".into()));
    };
    if s.len() > MAX_ID_LEN {
        return Err(InvalidId(format!(
            "an id is at most {MAX_ID_LEN} characters (got {})",
            s.len()
        )));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(InvalidId(format!(
            "an id must start with a letter or digit (got {first:?})"
        )));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(InvalidId(format!(
            "an id may contain only letters, digits, '.', '_' and '-' (got {bad:?})"
        )));
    }
    if s.contains("..") {
        return Err(InvalidId("an id must not contain '..'".into()));
    }
    Ok(())
}

/// Most scenarios one queue runs (named in a request, or found in `scenarios/`).
pub const MAX_SCENARIOS: usize = 256;
/// Longest scenario path a request may name, in bytes.
pub const MAX_SCENARIO_PATH_LEN: usize = 1024;
/// The priorities a request may give (higher runs first).
pub const PRIORITIES: RangeInclusive<i32> = -1000..=1000;

/// A scenario path as requests give it: relative to the repository, `/`-separated, without
/// `..` or empty parts; the error says what to change.
pub fn check_scenario_path(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.starts_with('/') || s.starts_with('\\') {
        return Err("must be a path relative to the repository root");
    }
    if s.contains('\\') || s.chars().any(|c| c.is_control()) {
        return Err("use '/' as separator and no control characters");
    }
    if s.split('/').any(|p| p.is_empty() || p == "..") {
        return Err("must not contain '..' or empty parts");
    }
    Ok(())
}

macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                validate_id(s)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_newtype!(
    /// A queue id: a directory name under `<root>/queues/`.
    QueueId
);
id_newtype!(
    /// A task id, unique within its queue: a directory name under `queues/<id>/tasks/`.
    TaskId
);

impl TaskId {
    /// Task ids derived from scenario paths: the file stem, made safe, `-2`, `-3`… on repeats.
    ///
    /// Linear: the ids taken so far are in a set, and each stem remembers the first suffix not
    /// yet tried (ids are only ever added, so every smaller suffix is still taken). Each id can
    /// be passed over at most once, as the one `base-N` it spells, so the loop stays short even
    /// for thousands of names sharing one stem.
    pub fn from_scenarios(scenarios: &[String]) -> Vec<TaskId> {
        let mut out: Vec<TaskId> = Vec::with_capacity(scenarios.len());
        let mut taken: HashSet<String> = HashSet::with_capacity(scenarios.len());
        let mut next_suffix: HashMap<String, u64> = HashMap::new();
        for path in scenarios {
            let base = task_stem(path);
            let id = if taken.contains(&base) {
                let n = next_suffix.entry(base.clone()).or_insert(2);
                loop {
                    let candidate = format!("{base}-{n}");
                    *n += 1;
                    if !taken.contains(&candidate) {
                        break candidate;
                    }
                }
            } else {
                base
            };
            taken.insert(id.clone());
            out.push(TaskId(id));
        }
        out
    }
}

/// The safe stem of a scenario path: letters, digits, `-` and `_`, at most 56 characters,
/// starting with a letter or a digit (room is left for a `-N` suffix within [`MAX_ID_LEN`]).
fn task_stem(path: &str) -> String {
    let stem = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches(".xml");
    let mut base: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        base.insert(0, 't');
    }
    base
}

/// Status of a queue or a task. Tasks may also be `Skipped`; queues never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Waiting,
    Running,
    Passed,
    Failed,
    Error,
    TimedOut,
    Aborted,
    Skipped,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Waiting,
        Status::Running,
        Status::Passed,
        Status::Failed,
        Status::Error,
        Status::TimedOut,
        Status::Aborted,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Running => "running",
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::TimedOut => "timed_out",
            Status::Aborted => "aborted",
            Status::Skipped => "skipped",
        }
    }

    /// A finished queue or task never changes again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Waiting | Status::Running)
    }

    /// Finished with something to say about the code: passed, failed, error or timed out (not
    /// aborted, which a user or a newer push decided). What a status badge shows.
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            Status::Passed | Status::Failed | Status::Error | Status::TimedOut
        )
    }

    /// The one place that says which queue transitions are legal.
    ///
    /// `running → waiting` is the re-queue after a shutdown or a crash.
    pub fn queue_transition(from: Status, to: Status) -> Result<Status, IllegalTransition> {
        use Status::*;
        let ok = matches!(
            (from, to),
            (Waiting, Running | Aborted | Error)
                | (
                    Running,
                    Waiting | Passed | Failed | Error | TimedOut | Aborted
                )
        );
        if ok {
            Ok(to)
        } else {
            Err(IllegalTransition { from, to })
        }
    }

    /// Legal task transitions: like a queue's, plus `skipped` from `waiting`.
    pub fn task_transition(from: Status, to: Status) -> Result<Status, IllegalTransition> {
        use Status::*;
        let ok = matches!(
            (from, to),
            (Waiting, Running | Skipped | Aborted | Error | TimedOut)
                | (
                    Running,
                    Waiting | Passed | Failed | Error | TimedOut | Aborted
                )
        );
        if ok {
            Ok(to)
        } else {
            Err(IllegalTransition { from, to })
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status {0:?}: use one of waiting, running, passed, failed, error, timed_out, aborted, skipped"
)]
pub struct UnknownStatus(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition {from} → {to}")]
pub struct IllegalTransition {
    pub from: Status,
    pub to: Status,
}

/// Outcome of one `<test>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    Passed,
    Failed,
    TimedOut,
    Error,
    Skipped,
}

impl TestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Passed => "passed",
            TestStatus::Failed => "failed",
            TestStatus::TimedOut => "timed_out",
            TestStatus::Error => "error",
            TestStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for TestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One test's result as stored and shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    pub suite: String,
    pub name: String,
    pub status: TestStatus,
    pub duration_ms: u64,
    pub message: Option<String>,
}

/// Milliseconds since the Unix epoch (UTC); rendered as RFC 3339 at the API edge.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_millis() as i64
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T15:21:27.123Z`.
pub fn rfc3339(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Parses a duration: `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"30d"`, or plain seconds (`"30"`).
/// The error says what is accepted.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            "invalid duration {s:?}: use a whole number with ms, s, m, h or d, e.g. \"500ms\", \"30s\", \"20m\", \"30d\""
        )
    };
    if num.is_empty() || num.len() > 12 {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86_400),
        _ => return Err(bad()),
    };
    Ok(d)
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// What a client asked for, validated. Equality of two requests decides idempotency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRequest {
    pub repo: String,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub environment: String,
    pub scenarios: Vec<String>,
    pub priority: i32,
}

/// A queue as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub id: QueueId,
    pub status: Status,
    pub request: QueueRequest,
    /// Order of arrival; newest-first listing and oldest-first claiming use it.
    pub seq: u64,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// 1 on the first run; raised each time a run is interrupted and re-queued.
    pub attempt: u32,
    pub error: Option<String>,
    /// Where the queue came from (a later Gitea delivery for the same line supersedes it).
    pub origin: Origin,
    /// The commit its checkout resolved (the branch's head at that time): what a re-run runs.
    pub resolved_commit: Option<String>,
    /// The queue this one re-runs.
    pub rerun_of: Option<QueueId>,
    /// The re-runs of this queue, oldest first.
    pub reruns: Vec<QueueId>,
}

/// Where a queue came from. Variants are only ever appended (the store encodes by position).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Origin {
    /// `POST /api/queues`, the CLI, a re-run.
    #[default]
    Api,
    /// A Gitea webhook delivery, for the branch or pull request in `line` (none for a tag).
    Gitea { line: Option<Line> },
}

/// How the error of a queue that a newer delivery aborted starts: `superseded by <id>`.
pub const SUPERSEDED: &str = "superseded by ";

/// What a webhook queue tests: a newer delivery for the same line of the same repository and
/// environment supersedes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Line {
    Branch(String),
    PullRequest(u64),
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Branch(b) => write!(f, "branch {b}"),
            Line::PullRequest(n) => write!(f, "pull request #{n}"),
        }
    }
}

/// A task (one scenario of a queue) as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub scenario: String,
    pub status: Status,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub error: Option<String>,
    pub tests: Vec<TestResult>,
}

impl Task {
    pub fn new(id: TaskId, scenario: String) -> Self {
        Task {
            id,
            scenario,
            status: Status::Waiting,
            started_at: None,
            finished_at: None,
            error: None,
            tests: Vec::new(),
        }
    }
}

/// One committed state change, published after commit and kept for SSE resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: u64,
    pub queue: QueueId,
    pub task: Option<TaskId>,
    /// `None` when the record was created.
    pub from: Option<Status>,
    /// `None` when the record was deleted.
    pub to: Option<Status>,
    pub at: Millis,
}

/// What one line of a transcript is; the per-test HTML log colours by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Written to the board's console.
    Send,
    /// Read from the board's console.
    Console,
    /// A console line that satisfied an `<expect>`.
    Match,
    /// A host command started by `<run>`.
    Command,
    /// Output of a host command.
    Output,
    /// A note of the engine (step boundaries, outcomes).
    Info,
}

/// One line of a test's transcript, `at_ms` counted from the start of the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    pub at_ms: u64,
    pub kind: LineKind,
    pub text: String,
}

mod ending;
pub use ending::{
    ABORTED_WAITING, TaskChange, close_reason, close_tasks, closed_status, restart_tasks,
};
mod retention;
pub use retention::{Beyond, Verdict};

#[cfg(test)]
mod tests;
