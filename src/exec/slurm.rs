//! Slurm as an executor: one allocation per queue, one job step per build and per board.
//!
//! A queue's allocation is `salloc --no-shell` ([`Slurm::allocate`]): a pure allocation, with no
//! batch script occupying the node and nothing local to keep alive once granted; salloc prints
//! the job id as soon as the job is submitted ("Pending job allocation N"), and exits when it is
//! granted ("Granted job allocation N"), so the grant needs no polling, only the pending reason
//! does (`squeue -h -j N -o '%T|%r'`). `sbatch --parsable --wrap` would give the id at once too,
//! but runs a batch step on the node for the whole queue. Each build and board is a step
//! ([`Slurm::step`]): `srun --jobid=N --job-name=testarena/<queue>/<task> --quiet --overlap`,
//! its stdin and stdout the console. Stopping goes through the controller (`scancel`), never
//! through srun's signals, and is confirmed with squeue, polled: Slurm notifies nobody.
//!
//! Measured on Slurm 22.05.8 (Debian 12; `proctrack/linuxproc`, `task/none`; the tests'
//! single-node cluster, `tests/it/slurm_cluster.rs`):
//!
//! - Console: stdin and stdout lines pass through without `--unbuffered` (a line round trip
//!   through srun and slurmstepd: 0.1–3.3 ms, the other tests running). Without it slurmstepd forwards whole lines only:
//!   a prompt without a newline ("login: ") arrives with the rest of its line (2 s later in the
//!   measurement; with `--unbuffered`, at once). The runner's console is line-based, so nothing
//!   is lost; a scenario that waits for an unterminated prompt would need `--unbuffered`.
//! - srun's stderr: the task's stderr, plus srun's and slurmstepd's own lines, even with
//!   `--quiet`: `srun: error: <node>: task 0: Exited with exit code 3`, `… task 0: Killed`,
//!   `slurmstepd-<node>: error: *** STEP 12.3 ON <node> CANCELLED AT … ***` (`… DUE TO TIME
//!   LIMIT`). [`slurm_message`] tells them apart, [`srun_error`] those that mean Slurm failed.
//! - Exit status: srun exits with the task's code; a task killed by a signal gives 128 + signal
//!   (143, 137). A program that cannot be executed gives 2 and a slurmstepd line. A working
//!   directory missing on the node is not an error: slurmstepd runs the task in `/tmp` instead,
//!   hence `env -C <cwd>` in front of every command.
//! - `SIGTERM` to srun: the task gets `SIGKILL` at once, never `SIGTERM` (srun exits 137, the
//!   step is gone within 0.1 s). So a graceful stop is `scancel --signal=TERM <job>.<step>`, the
//!   grace period, then `scancel --signal=KILL`: a task that ignores `SIGTERM` is gone, and no
//!   longer listed, 1.06–1.19 s after the cancel began, with a 1 s grace. `SIGINT` once only makes srun print
//!   the step's status.
//! - srun forks a helper that cancels the step when srun alone dies, even by `SIGKILL` (the task
//!   is killed at once; squeue lists the step 2–7 s more). When srun and the helper both die
//!   (their process group killed, as dropping an unstopped [`super::Child`] does), the task runs
//!   on under slurmstepd until `scancel` or the job's time limit: hence the stored job id and
//!   [`Slurm::cancel_job`]. Such a step, once killed, stays listed about 7 s (slurmstepd retries
//!   reporting to the dead srun).
//! - A `salloc --no-shell` allocation is not ended by `InactiveLimit`, only by its time limit or
//!   `scancel`. salloc given `SIGTERM` while pending withdraws the job itself.
//! - Steps of one allocation without `--overlap` wait silently (with `--quiet`) while another
//!   step holds the CPUs; with it, a board never waits for a previous step still completing.
//! - A request the partition can never satisfy (more CPUs than any node) is not refused: the
//!   job pends with reason `PartitionConfig`. A step `--time` beyond the job's is accepted.
//! - A controller that does not answer: every client command fails with "Unable to contact
//!   slurm controller (connect failure)" after retrying for `MessageTimeout` (10 s by default:
//!   squeue 18 s, salloc, srun and scancel 9 s; 2 s and 1 s with `MessageTimeout=2`).
//! - Cost of a step: `true` takes 39–44 ms as a step against 1.6–1.7 ms spawned locally (median
//!   of 20 runs, two runs of the test).
//!
//! - `args`   the command lines of salloc, srun, squeue and scancel (pure)
//! - `parse`  what those commands print: salloc's progress, squeue's rows, error texts (pure)
//! - `query`  running one client command with a time limit, its failure typed
//! - `cancel` stopping a step or a job: `SIGTERM`, the grace, `SIGKILL`, confirmed with squeue
//! - `shared` the check that the nodes see the data root at the server's path

mod args;
mod cancel;
mod parse;
mod query;
mod shared;

use std::fmt;
use std::path::PathBuf;
use std::pin::pin;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Child, DEFAULT_GRACE, DEFAULT_MAX_LINE, Exit, Spec, StopFirst};
use parse::SallocEvent;

pub use parse::{JobState, slurm_message, srun_error};

/// A Slurm job id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(JobId)
    }
}

/// Why a Slurm operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlurmError {
    /// The controller did not answer (down, unreachable, overloaded), a client command is not
    /// installed, or did not return in time: nothing is known about the job. The queue waits or
    /// ends `error` "executor unavailable", never as a failed build.
    #[error("Slurm does not answer: {0}")]
    Unavailable(String),
    /// Slurm answered and refused (an unknown partition, account or QoS; a malformed option).
    #[error("Slurm refused {command}: {detail}")]
    Refused {
        command: &'static str,
        detail: String,
    },
    /// Slurm ended the job or step itself: cancelled by someone else, its time limit, its node.
    #[error("the Slurm job ended: {0}")]
    Ended(String),
    /// Still listed by squeue after `SIGKILL` and the confirmation time.
    #[error("{0} is still listed by squeue after SIGKILL")]
    NotGone(String),
    /// The caller cancelled the wait; the job was withdrawn.
    #[error("cancelled while waiting for the allocation")]
    Cancelled,
    /// A step does not see the server's data root as the server does.
    #[error("the data root is not shared with the Slurm nodes: {0}")]
    NotShared(String),
}

impl SlurmError {
    /// The executor is unavailable (as opposed to a command, a build or a board failing).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SlurmError::Unavailable(_))
    }
}

/// One environment's Slurm settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slurm {
    /// The partition every allocation asks for.
    pub partition: String,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// More `salloc` arguments: what one queue's allocation asks for (`--cpus-per-task=4`,
    /// `--mem=4G`, `--constraint=kvm`).
    pub alloc_args: Vec<String>,
    /// More `srun` arguments for every step.
    pub srun_args: Vec<String>,
    /// Time between `SIGTERM` and `SIGKILL` when a step or job is cancelled.
    pub grace: Duration,
    /// The cluster's `slurm.conf` (`SLURM_CONF` for every command); `None`: the server's
    /// `SLURM_CONF`, else Slurm's default.
    pub conf: Option<PathBuf>,
    /// Time between two squeue requests while an allocation is pending.
    pub poll: Duration,
    /// Longest a client command (squeue, scancel) may take before Slurm counts as not answering.
    pub command_timeout: Duration,
}

impl Slurm {
    pub fn new(partition: impl Into<String>) -> Self {
        Slurm {
            partition: partition.into(),
            account: None,
            qos: None,
            alloc_args: Vec::new(),
            srun_args: Vec::new(),
            grace: DEFAULT_GRACE,
            conf: None,
            poll: Duration::from_secs(2),
            command_timeout: Duration::from_secs(30),
        }
    }
}

/// A granted allocation: the job the steps of one queue run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub job: JobId,
    /// The job's name (`testarena/<queue>`).
    pub name: String,
}

/// What an allocation waits for, reported while Slurm has not granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Slurm holds the job pending, for `reason` (squeue's `%r`: `Resources`, `Priority`, …).
    Pending { job: JobId, reason: String },
    /// The job is submitted but squeue did not answer; salloc keeps waiting for the grant.
    NoAnswer { job: JobId, detail: String },
}

impl Waiting {
    pub fn job(&self) -> JobId {
        match self {
            Waiting::Pending { job, .. } | Waiting::NoAnswer { job, .. } => *job,
        }
    }
}

impl fmt::Display for Waiting {
    /// `job 123 pending (Resources)`, for "waiting for a board: …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Pending { job, reason } => write!(f, "job {job} pending ({reason})"),
            Waiting::NoAnswer { job, detail } => {
                write!(f, "job {job} submitted, Slurm does not answer ({detail})")
            }
        }
    }
}

/// How a cancel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nothing of that name or id was running.
    NotRunning,
    /// Gone within the grace period after `SIGTERM`.
    Terminated,
    /// Still there after the grace period: killed with `SIGKILL`, then gone.
    Killed,
}

impl Slurm {
    /// Submits the allocation `name` (`testarena/<queue>`) for `time_limit` and waits until Slurm
    /// grants it, calling `on_wait` when it is pending and whenever the reason changes (first as
    /// soon as the job id is known, so the caller can store it). Cancelling `cancel` withdraws
    /// the job and confirms it is gone.
    ///
    /// Cancel through `cancel`, not by dropping the future: a dropped wait kills salloc with
    /// `SIGKILL`, which leaves the pending job in Slurm.
    pub async fn allocate(
        &self,
        name: &str,
        time_limit: Duration,
        cancel: &CancellationToken,
        mut on_wait: impl FnMut(&Waiting),
    ) -> Result<Allocation, SlurmError> {
        check_name(name)?;
        let spec = self.client(self.salloc_argv(name, time_limit));
        let (mut child, mut lines) =
            Child::spawn(&spec, DEFAULT_MAX_LINE).map_err(query::not_installed)?;
        let mut job = None;
        let mut granted = None;
        let mut refusal = Vec::new();
        let mut revoked = None;
        let mut next_poll: Option<Instant> = None;
        let mut last: Option<Waiting> = None;
        let mut open = true;
        let mut on_line = |text: &str, job: &mut Option<JobId>, next_poll: &mut Option<Instant>| {
            match parse::salloc_line(text) {
                Some(SallocEvent::Pending(id)) => {
                    *job = Some(id);
                    *next_poll = Some(Instant::now());
                }
                Some(SallocEvent::Granted(id)) => granted = Some(id),
                Some(SallocEvent::Revoked(why)) => revoked = Some(why),
                None if text.contains("error") => refusal.push(text.to_owned()),
                None => {}
            }
        };

        let exited: Option<Exit> = {
            let mut waiting = pin!(child.wait());
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break None,
                    line = lines.recv(), if open => match line {
                        Some(line) => on_line(&line.text, &mut job, &mut next_poll),
                        None => open = false,
                    },
                    () = sleep_until(next_poll) => {
                        next_poll = Some(Instant::now() + self.poll);
                        let Some(id) = job else { continue };
                        let state = tokio::select! {
                            state = self.job_state(id) => state,
                            () = cancel.cancelled() => break None,
                        };
                        let now = match state {
                            Ok(Some(state)) if state.pending() => Waiting::Pending {
                                job: id,
                                reason: state.reason,
                            },
                            Ok(_) => continue,
                            Err(e) => Waiting::NoAnswer { job: id, detail: e.to_string() },
                        };
                        if last.as_ref() != Some(&now) {
                            on_wait(&now);
                            last = Some(now);
                        }
                    }
                    exit = &mut waiting => break Some(exit),
                }
            }
        };
        let exit = match exited {
            Some(exit) => exit,
            None => {
                // salloc withdraws a pending job itself on SIGTERM; the cancel below confirms it.
                child.stop(self.grace).await;
                while let Some(line) = lines.recv().await {
                    on_line(&line.text, &mut job, &mut next_poll);
                }
                match granted.or(job) {
                    Some(id) => self.cancel_job(id).await?,
                    None => {
                        self.cancel_by_name(name).await?;
                        Stop::NotRunning
                    }
                };
                return Err(SlurmError::Cancelled);
            }
        };
        while let Some(line) = lines.recv().await {
            on_line(&line.text, &mut job, &mut next_poll);
        }
        match (granted, exit.success()) {
            (Some(job), true) => Ok(Allocation {
                job,
                name: name.to_owned(),
            }),
            _ => {
                let detail = if refusal.is_empty() {
                    format!("salloc: {exit}")
                } else {
                    refusal.join("; ")
                };
                Err(if parse::no_answer(&detail) {
                    SlurmError::Unavailable(detail)
                } else if let Some(why) = revoked {
                    SlurmError::Ended(format!("{why} ({detail})"))
                } else if job.is_some() {
                    SlurmError::Ended(detail)
                } else {
                    SlurmError::Refused {
                        command: "salloc",
                        detail,
                    }
                })
            }
        }
    }

    /// The `Spec` that runs `spec` as the step `name` (`testarena/<queue>/<task>`) of `alloc`:
    /// srun in front, the command in `spec.cwd` on the node, the same environment (srun
    /// propagates its own, which is `spec`'s, plus `SLURM_*`), stdin and stdout forwarded.
    /// `time_limit` becomes the step's `--time` (whole minutes), a backstop behind the
    /// server's own timeout. Confine first (`Executor::confine`), then wrap: the sandbox runs
    /// on the node.
    pub fn step(
        &self,
        alloc: &Allocation,
        spec: Spec,
        name: &str,
        time_limit: Option<Duration>,
    ) -> Spec {
        let cwd = spec.cwd.to_string_lossy().into_owned();
        let argv = self.srun_argv(alloc.job, name, time_limit, &cwd, &spec.argv);
        let mut env = spec.env;
        if let Some(conf) = self.conf_path() {
            env.push(("SLURM_CONF".into(), conf.to_string_lossy().into_owned()));
        }
        // Signalling srun kills its step at once: a stop goes through scancel first, with the
        // grace the caller gives.
        let (slurm, job, step) = (self.clone(), alloc.job, name.to_owned());
        let stop_first = StopFirst(std::sync::Arc::new(move |grace| {
            let (mut slurm, step) = (slurm.clone(), step.clone());
            slurm.grace = grace;
            Box::pin(async move {
                if let Err(e) = slurm.cancel_step(job, &step).await {
                    tracing::warn!(job = %job, step = %step, error = %e, "cannot cancel a Slurm step");
                }
            })
        }));
        Spec {
            argv,
            env,
            stop_first: Some(stop_first),
            ..spec
        }
    }

    /// The job's state and reason; `None` once squeue no longer lists it.
    pub async fn job_state(&self, job: JobId) -> Result<Option<JobState>, SlurmError> {
        let out = self.query("squeue", args::job_state_argv(job)).await?;
        if !out.success && parse::gone(&out.stderr) {
            return Ok(None);
        }
        Ok(parse::job_state(&out.ok()?))
    }

    /// The ids (`<job>.<step>`) of the live steps of `job` named `name`.
    pub async fn step_ids(&self, job: JobId, name: &str) -> Result<Vec<String>, SlurmError> {
        let out = self.query("squeue", args::steps_argv(job)).await?.ok()?;
        Ok(parse::ids_named(&out, name).map(str::to_owned).collect())
    }

    /// The `slurm.conf` the commands use, when one is named.
    fn conf_path(&self) -> Option<PathBuf> {
        self.conf
            .clone()
            .or_else(|| std::env::var_os("SLURM_CONF").map(PathBuf::from))
    }

    /// A client command (salloc, squeue, scancel) with the server's environment.
    fn client(&self, argv: Vec<String>) -> Spec {
        let spec = Spec::new(argv, "/");
        match &self.conf {
            Some(conf) => spec.env("SLURM_CONF", conf.to_string_lossy()),
            None => spec,
        }
    }
}

/// Names are matched through squeue's `--name`, which splits at commas.
fn check_name(name: &str) -> Result<(), SlurmError> {
    if name.is_empty() || name.contains(',') || name.chars().any(char::is_whitespace) {
        return Err(SlurmError::Refused {
            command: "a job name",
            detail: format!("{name:?} is empty or holds a comma or a space"),
        });
    }
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
