//! What the runner writes down: the queue log (through the observer), the current test's
//! transcript, and the console lines kept for the next `<expect>`.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::{Observer, Pattern};
use crate::model::{LineKind, TranscriptLine};

/// Lines kept for the next `<expect>` when nothing matches them; the oldest are dropped.
pub(super) const MAX_PENDING: usize = 10_000;
/// Console lines quoted in a failed expect's message.
const RECENT_LINES: usize = 5;

/// The observer, the transcript being written and the console lines not yet matched.
pub(super) struct Record<'a, O> {
    pub observer: &'a mut O,
    pub transcript: Vec<TranscriptLine>,
    /// When the current test started; transcript times count from here.
    pub test_start: Instant,
    /// Set once the console reported the board's end.
    pub exit: Option<String>,
    /// Lines received since the last match, oldest first: where the next expect searches.
    pending: VecDeque<String>,
    /// The last few lines received, quoted when an expect fails.
    recent: VecDeque<String>,
}

impl<'a, O: Observer> Record<'a, O> {
    pub fn new(observer: &'a mut O) -> Self {
        Record {
            observer,
            transcript: Vec::new(),
            test_start: Instant::now(),
            exit: None,
            pending: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    /// Adds a line to the current test's transcript.
    pub fn note(&mut self, kind: LineKind, text: impl Into<String>) {
        let at_ms = self.test_start.elapsed().as_millis();
        self.transcript.push(TranscriptLine {
            at_ms: u64::try_from(at_ms).unwrap_or(u64::MAX),
            kind,
            text: text.into(),
        });
    }

    /// Writes a line to the queue log and the transcript.
    pub fn log(&mut self, kind: LineKind, line: &str) {
        self.observer.log(line);
        self.note(kind, line);
    }

    /// A console line that did not satisfy the current expect (if any): kept for the next.
    pub fn console_line(&mut self, line: String) {
        self.log(LineKind::Console, &line);
        self.seen(&line);
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(line);
    }

    /// A console line that satisfied the current expect: everything before it is consumed.
    pub fn matched_line(&mut self, line: String) {
        self.observer.log(&line);
        self.seen(&line);
        self.pending.clear();
        self.note(LineKind::Match, line);
    }

    /// Looks for a match among the kept lines, consuming up to and including it.
    pub fn take_match(&mut self, pattern: &Pattern) -> bool {
        let Some(i) = self.pending.iter().position(|l| pattern.matches(l)) else {
            return false;
        };
        let line = self.pending.drain(..=i).next_back();
        if let Some(line) = line {
            self.note(LineKind::Match, line);
        }
        true
    }

    /// The board is gone (the test's marker line carries this to the queue log).
    pub fn exited(&mut self, what: String) {
        self.note(LineKind::Info, what.as_str());
        self.exit = Some(what);
    }

    fn seen(&mut self, line: &str) {
        if self.recent.len() == RECENT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_owned());
    }

    /// The last few console lines, quoted, for a failure message.
    pub fn describe_recent(&self) -> String {
        if self.recent.is_empty() {
            return "no console output was received".into();
        }
        let quoted: Vec<String> = self.recent.iter().map(|l| format!("{l:?}")).collect();
        format!("last console lines: {}", quoted.join(", "))
    }
}
