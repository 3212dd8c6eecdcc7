//! What every pipeline step shares: the queue's log, its cancellation, the limits from the
//! configuration, one way to run a supervised command with its output in the log, and how a
//! command from the repository is confined (its environment, the sandbox).

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Deps;
use super::site::Site;
use crate::config::Environment;
use crate::exec::{self, Confinement, Ending, Executor, Limits, Line, SandboxError, Spec};
use crate::logs::LogWriter;
use crate::model::Queue;

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
    pub deps: &'a Deps,
    pub log: &'a LogWriter,
    pub cancel: &'a CancellationToken,
    /// Where builds and boards run (this host, or the queue's Slurm allocation).
    pub site: &'a Site,
}

impl StepCtx<'_> {
    pub fn limits(&self, timeout: Option<Duration>) -> Limits {
        let w = &self.deps.config.worker;
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

/// The environment variables every command of a queue gets (on top of the allow-list, see
/// `exec::Spec::clean_env`): what describes the queue, then the environment's own `env` table.
/// Never the data root or anything of the server's own.
pub fn command_env(queue: &Queue, env: &Environment, repo_dir: &Path) -> Vec<(String, String)> {
    let mut vars = vec![
        ("TESTARENA_QUEUE_ID".into(), queue.id.to_string()),
        (
            "TESTARENA_ENVIRONMENT".into(),
            queue.request.environment.clone(),
        ),
        ("TESTARENA_REPO_DIR".into(), repo_dir.display().to_string()),
    ];
    vars.extend(env.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars
}

/// A command from the repository, run in `repo_dir` as the sandbox says: only the checkout
/// writable, the network only when `network`.
pub fn repo_command(
    sandbox: &dyn Executor,
    spec: Spec,
    repo_dir: &Path,
    network: bool,
) -> Result<Spec, SandboxError> {
    let confinement = Confinement {
        writable: vec![repo_dir.to_owned()],
        network,
    };
    sandbox.confine(spec, &confinement)
}
