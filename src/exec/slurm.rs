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
//! - `args`  the command lines of salloc, srun, squeue and scancel (pure)
//! - `parse` what those commands print: salloc's progress, squeue's rows, error texts (pure)
//! - `query` running one client command with a time limit, its failure typed

mod args;
mod parse;
mod query;

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Child, DEFAULT_GRACE, DEFAULT_MAX_LINE, Exit, Limits, Spec, StopFirst, Stream};
use parse::SallocEvent;

pub use parse::{JobState, slurm_message, srun_error};

/// How often squeue is asked while a job or step is expected to end (a cancel's confirmation).
const CONFIRM_POLL: Duration = Duration::from_millis(100);

/// How long a job or step may take to disappear from squeue after `SIGKILL`.
const KILL_CONFIRM: Duration = Duration::from_secs(20);

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

/// What a step or job cancel waits to disappear from squeue.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// The steps of `job` named `name`.
    Step { job: JobId, name: &'a str },
    /// Every step of `job`.
    Steps(JobId),
    /// The job itself (not ended).
    Job(JobId),
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

    /// Stops the steps of `job` named `name`: `SIGTERM` to them, up to the grace period for them
    /// to end, `SIGKILL`, then waits until squeue lists none (Slurm sends no notice: squeue is
    /// polled every 100 ms).
    pub async fn cancel_step(&self, job: JobId, name: &str) -> Result<Stop, SlurmError> {
        self.stop(Target::Step { job, name }).await
    }

    /// Ends the job `job` (an allocation, ours or a dead server's): its steps get `SIGTERM`, the
    /// grace period, `SIGKILL`; then the job is ended and squeue polled until it is gone. A
    /// pending job is withdrawn at once.
    pub async fn cancel_job(&self, job: JobId) -> Result<Stop, SlurmError> {
        match self.job_state(job).await? {
            None => return Ok(Stop::NotRunning),
            Some(state) if state.ended() => return Ok(Stop::NotRunning),
            Some(state) if state.pending() => {
                self.scancel(None, &[job.to_string()]).await?;
                self.confirm(Target::Job(job), KILL_CONFIRM).await?;
                return Ok(Stop::Terminated);
            }
            Some(_) => {}
        }
        let stop = self.stop(Target::Steps(job)).await?;
        self.scancel(None, &[job.to_string()]).await?;
        self.confirm(Target::Job(job), KILL_CONFIRM).await?;
        Ok(match stop {
            Stop::NotRunning => Stop::Terminated,
            stop => stop,
        })
    }

    /// Gives the allocation back: [`Slurm::cancel_job`] of its job.
    pub async fn release(&self, alloc: Allocation) -> Result<Stop, SlurmError> {
        self.cancel_job(alloc.job).await
    }

    /// Cancels every live job named exactly `name` (recovery when no job id was stored: a crash
    /// between the submission and the store's write). Returns the ids it cancelled.
    pub async fn cancel_by_name(&self, name: &str) -> Result<Vec<JobId>, SlurmError> {
        check_name(name)?;
        let out = self
            .query("squeue", args::jobs_named_argv(name))
            .await?
            .ok()?;
        let jobs: Vec<JobId> = parse::ids_named(&out, name)
            .filter_map(|id| id.parse().ok())
            .collect();
        for job in &jobs {
            self.cancel_job(*job).await?;
        }
        Ok(jobs)
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

    /// Checks that the Slurm nodes see the data root as the server does: writes a marker with a
    /// random token under `root`, reads it back from a step of a short allocation, compares.
    pub async fn verify_shared_root(
        &self,
        root: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), SlurmError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| SlurmError::NotShared(e.to_string()))?;
        let token = hex::encode(bytes);
        let marker = root.join(format!(".testarena-shared-{token}"));
        tokio::fs::write(&marker, &token)
            .await
            .map_err(|e| SlurmError::NotShared(format!("{}: {e}", marker.display())))?;
        let result = self.read_back(root, &marker, cancel).await;
        let _ = tokio::fs::remove_file(&marker).await;
        let seen = result?;
        if seen.trim() == token {
            Ok(())
        } else {
            Err(SlurmError::NotShared(format!(
                "a step read {:?} from {}, where the server wrote {token:?}; mount the data root \
                 at the same path on every node",
                seen.trim(),
                marker.display()
            )))
        }
    }

    async fn read_back(
        &self,
        root: &Path,
        marker: &Path,
        cancel: &CancellationToken,
    ) -> Result<String, SlurmError> {
        let name = "testarena/shared-root-check";
        let alloc = self
            .allocate(name, Duration::from_secs(60), cancel, |_| {})
            .await?;
        let cat = Spec::new(
            vec!["cat".into(), marker.to_string_lossy().into_owned()],
            root,
        );
        let spec = self.step(&alloc, cat, &format!("{name}/read"), None);
        let limits = Limits {
            timeout: Some(self.command_timeout),
            ..Limits::default()
        };
        let mut seen = String::new();
        let mut errors = Vec::new();
        let ran = super::run(&spec, &limits, cancel, |line| match line.stream {
            Stream::Stdout => seen.push_str(&line.text),
            Stream::Stderr => errors.push(line.text),
        })
        .await;
        self.release(alloc).await?;
        match ran {
            Ok(ending) if ending.success() => Ok(seen),
            Ok(ending) => {
                let detail = format!("{ending}: {}", errors.join("; "));
                Err(match errors.iter().find_map(|l| srun_error(l)) {
                    Some(e) => e,
                    None => SlurmError::NotShared(format!(
                        "a step could not read {}: {detail}",
                        marker.display()
                    )),
                })
            }
            Err(e) => Err(query::not_installed(e)),
        }
    }

    /// `SIGTERM`, grace, `SIGKILL` to `target`'s steps, then confirmation that they are gone.
    async fn stop(&self, target: Target<'_>) -> Result<Stop, SlurmError> {
        let ids = self.live(target).await?;
        if ids.is_empty() {
            return Ok(Stop::NotRunning);
        }
        let ids = match target {
            Target::Step { .. } => ids,
            Target::Steps(job) | Target::Job(job) => vec![job.to_string()],
        };
        self.scancel(Some("TERM"), &ids).await?;
        if self.wait_gone(target, self.grace).await? {
            return Ok(Stop::Terminated);
        }
        self.scancel(Some("KILL"), &ids).await?;
        self.confirm(target, KILL_CONFIRM).await?;
        Ok(Stop::Killed)
    }

    /// What of `target` squeue still lists: step ids, or the job's id while it has not ended.
    async fn live(&self, target: Target<'_>) -> Result<Vec<String>, SlurmError> {
        match target {
            Target::Step { job, name } => self.step_ids(job, name).await,
            Target::Steps(job) => {
                let out = self.query("squeue", args::steps_argv(job)).await?.ok()?;
                Ok(out
                    .lines()
                    .filter_map(|l| l.split_once('|'))
                    .map(|(id, _)| id.trim().to_owned())
                    .collect())
            }
            Target::Job(job) => Ok(match self.job_state(job).await? {
                Some(state) if !state.ended() => vec![job.to_string()],
                _ => Vec::new(),
            }),
        }
    }

    /// Polls squeue until `target` is gone (true) or `within` passed (false).
    async fn wait_gone(&self, target: Target<'_>, within: Duration) -> Result<bool, SlurmError> {
        let deadline = Instant::now() + within;
        loop {
            if self.live(target).await?.is_empty() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(CONFIRM_POLL.min(deadline - Instant::now())).await;
        }
    }

    async fn confirm(&self, target: Target<'_>, within: Duration) -> Result<(), SlurmError> {
        if self.wait_gone(target, within).await? {
            Ok(())
        } else {
            Err(SlurmError::NotGone(match target {
                Target::Step { job, name } => format!("step {name} of job {job}"),
                Target::Steps(job) => format!("a step of job {job}"),
                Target::Job(job) => format!("job {job}"),
            }))
        }
    }

    /// scancel; a target that is already gone is no error.
    async fn scancel(&self, signal: Option<&str>, targets: &[String]) -> Result<(), SlurmError> {
        let out = self
            .query("scancel", args::scancel_argv(signal, targets))
            .await?;
        if out.success || parse::gone(&out.stderr) {
            Ok(())
        } else {
            out.ok().map(drop)
        }
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
mod tests {
    use super::*;

    #[test]
    fn a_step_keeps_the_spec_s_directory_environment_and_stdin() {
        let mut slurm = Slurm::new("p");
        slurm.conf = Some("/etc/cluster/slurm.conf".into());
        let alloc = Allocation {
            job: JobId(5),
            name: "testarena/q".into(),
        };
        let spec = Spec::new(vec!["qemu".into(), "-nographic".into()], "/data/q/repo")
            .env("A", "1")
            .with_stdin();
        let mut confined = spec.clone();
        confined.clean_env = true;
        let step = slurm.step(&alloc, confined, "testarena/q/boot", None);
        assert_eq!(step.cwd, spec.cwd);
        assert!(step.stdin && step.clean_env);
        assert_eq!(
            step.env,
            [
                ("A".into(), "1".into()),
                ("SLURM_CONF".into(), "/etc/cluster/slurm.conf".into())
            ]
        );
        assert_eq!(step.argv[0], "srun");
        assert!(step.argv.contains(&"--jobid=5".into()));
        assert!(step.argv.ends_with(&["qemu".into(), "-nographic".into()]));
    }

    #[test]
    fn waiting_reads_as_a_reason() {
        let pending = Waiting::Pending {
            job: JobId(123),
            reason: "Resources".into(),
        };
        assert_eq!(pending.to_string(), "job 123 pending (Resources)");
        assert_eq!(pending.job(), JobId(123));
        let silent = Waiting::NoAnswer {
            job: JobId(9),
            detail: "timeout".into(),
        };
        assert!(silent.to_string().contains("does not answer"), "{silent}");
    }

    #[test]
    fn names_and_errors() {
        assert!(check_name("testarena/q-1.x/boot_2").is_ok());
        for bad in ["", "a,b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(SlurmError::Unavailable("x".into()).is_unavailable());
        assert!(!SlurmError::Ended("x".into()).is_unavailable());
        assert_eq!("42".parse::<JobId>().unwrap(), JobId(42));
        assert!("4.2".parse::<JobId>().is_err());
    }
}
