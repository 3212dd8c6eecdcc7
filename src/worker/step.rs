//! What every pipeline step shares: the queue's log, its cancellation, the limits from the
//! configuration, and one way to run a supervised command with its output in the log.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::exec::{self, Ending, Limits, Line, Spec};
use crate::logs::LogWriter;

/// How a step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The infrastructure failed (checkout, build, boot): the queue ends `error` with this text.
    Error(String),
    /// The run's token fired (abort, queue timeout or shutdown): the caller decides which.
    Cancelled,
}

impl StepError {
    /// Keeps a cancellation as it is; turns any error into `message`.
    pub fn or_error(self, message: String) -> StepError {
        match self {
            StepError::Cancelled => StepError::Cancelled,
            StepError::Error(_) => StepError::Error(message),
        }
    }

    pub fn from_ending(ending: &Ending, what: &str) -> StepError {
        match ending {
            Ending::Cancelled(_) => StepError::Cancelled,
            Ending::TimedOut(_) => StepError::Error(format!("{what} timed out")),
            Ending::Silent(_) => StepError::Error(format!(
                "{what} printed nothing for too long ([worker] silence_timeout)"
            )),
            Ending::Exited(exit) => StepError::Error(format!("{what} failed ({exit})")),
        }
    }
}

pub struct StepCtx<'a> {
    pub state: &'a AppState,
    pub log: &'a LogWriter,
    pub cancel: &'a CancellationToken,
}

impl StepCtx<'_> {
    pub fn limits(&self, timeout: Option<Duration>) -> Limits {
        let w = &self.state.config.worker;
        Limits {
            timeout,
            silence: w.silence_timeout,
            grace: w.kill_grace,
            max_line: w.max_line,
        }
    }

    /// Runs `spec`; every output line goes to the log, then to `on_line`.
    pub async fn run(
        &self,
        spec: &Spec,
        timeout: Option<Duration>,
        on_line: impl FnMut(Line),
    ) -> Result<Ending, StepError> {
        self.run_logging(spec, timeout, |_| true, on_line).await
    }

    /// Like `run`, but only lines for which `logged` says so go to the log.
    pub async fn run_logging(
        &self,
        spec: &Spec,
        timeout: Option<Duration>,
        logged: impl Fn(&Line) -> bool,
        mut on_line: impl FnMut(Line),
    ) -> Result<Ending, StepError> {
        let log = self.log;
        exec::run(spec, &self.limits(timeout), self.cancel, |line| {
            if logged(&line) {
                log.line(&line.text);
            }
            on_line(line);
        })
        .await
        .map_err(|e| StepError::Error(e.to_string()))
    }
}
