//! Stopping: a step or a job cancelled with `SIGTERM`, the grace period, then `SIGKILL`, each
//! confirmed by polling squeue; jobs found by name for recovery.

use std::time::Duration;

use tokio::time::Instant;

use super::{Allocation, JobId, Slurm, SlurmError, Stop, args, check_name, parse};

/// How often squeue is asked while a job or step is expected to end (a cancel's confirmation).
const CONFIRM_POLL: Duration = Duration::from_millis(100);

/// How long a job or step may take to disappear from squeue after `SIGKILL`.
const KILL_CONFIRM: Duration = Duration::from_secs(20);

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
}
