//! Where a scenario run's output goes, as the runner sees it: the queue log and each test's
//! result with its transcript.

use crate::model::{TestResult, TranscriptLine};

/// Receives everything a scenario run writes.
pub trait Observer: Send {
    /// A line for the queue log (markers, sends as "> LINE", console lines as-is, "$ COMMAND", command output).
    fn log(&mut self, line: &str);
    /// Called as each test finishes (also for skipped tests), with that test's transcript.
    fn test_finished(&mut self, result: &TestResult, transcript: &[TranscriptLine]);
}
