//! Where a run's builds and boards run: on this host, or as steps of the queue's own Slurm
//! allocation (`[environments.X] executor = "slurm"`). The allocation is asked for before the
//! build and given back when the run ends, whatever ended it; while Slurm has not granted it the
//! queue says what it waits for (`waiting for a board: job 123 pending (Resources)`) and no
//! build or boot timeout runs — only the queue's own timeout.
//!
//! `<run>` steps of the scenarios stay on the server (they drive the lab around the board).

use std::time::Duration;

use crate::config::{Config, ExecutorKind, SlurmEnv};
use crate::exec::slurm::{Allocation, Slurm, SlurmError, Stop};
use crate::exec::{Line, Spec, Stream};
use crate::logs::LogWriter;
use crate::model::Queue;
use tokio_util::sync::CancellationToken;

/// Where a run's builds and boards run.
pub enum Site {
    /// Here, as the server's children.
    Local,
    /// As steps of the queue's allocation.
    Slurm {
        slurm: Box<Slurm>,
        alloc: Allocation,
    },
}

impl Site {
    /// `spec` (already confined) as it is started for the step `step` (`build`, or a task's
    /// name): unchanged here; as a job step of the allocation on Slurm, with `limit` as the
    /// step's own time limit behind the server's.
    pub fn place(&self, spec: Spec, step: &str, limit: Option<Duration>) -> Spec {
        match self {
            Site::Local => spec,
            Site::Slurm { slurm, alloc } => {
                let name = format!("{}/{step}", alloc.name);
                slurm.step(alloc, spec, &name, limit)
            }
        }
    }

    /// Whether a line of a step's output is the executor's own message (srun's, slurmstepd's),
    /// not the command's: it goes to the log, never to the console.
    pub fn own_message(&self, line: &Line) -> bool {
        matches!(self, Site::Slurm { .. })
            && line.stream == Stream::Stderr
            && crate::exec::slurm::slurm_message(&line.text)
    }

    /// Why a step that failed did: the executor (`executor unavailable: …`, the job ended),
    /// when one of its lines says so.
    pub fn failure(&self, line: &Line) -> Option<String> {
        if !self.own_message(line) {
            return None;
        }
        crate::exec::slurm::srun_error(&line.text).map(|e| match e {
            SlurmError::Unavailable(detail) => format!("executor unavailable: {detail}"),
            e => e.to_string(),
        })
    }

    /// Where the work runs, for the log.
    pub fn describe(&self) -> String {
        match self {
            Site::Local => "this host".into(),
            Site::Slurm { alloc, .. } => format!("Slurm job {} ({})", alloc.job, alloc.name),
        }
    }

    /// Where the step `step` runs, for its log: `None` here.
    pub fn step_name(&self, step: &str) -> Option<String> {
        match self {
            Site::Local => None,
            Site::Slurm { alloc, .. } => Some(format!(
                "runs as step {}/{step} of Slurm job {}",
                alloc.name, alloc.job
            )),
        }
    }

    /// Gives the allocation back (its steps stopped with the grace, the job ended, confirmed).
    pub async fn release(&self, log: &LogWriter) {
        if let Site::Slurm { slurm, alloc } = self {
            let job = alloc.job;
            match slurm.release(alloc.clone()).await {
                Ok(Stop::Killed) => log.line(&format!(
                    "Slurm job {job} given back (a step had to be killed)"
                )),
                Ok(_) => log.line(&format!("Slurm job {job} given back")),
                Err(e) => {
                    tracing::error!(job = %job, error = %e, "cannot give a Slurm allocation back");
                    log.line(&format!("cannot give Slurm job {job} back: {e}"));
                }
            }
        }
    }
}

/// The Slurm client for an environment's settings.
pub fn slurm_for(env: &SlurmEnv, grace: Duration) -> Slurm {
    let mut slurm = Slurm::new(env.partition.clone());
    slurm.account = env.account.clone();
    slurm.qos = env.qos.clone();
    slurm.srun_args = env.srun_args.clone();
    slurm.conf = env.conf.clone();
    slurm.grace = grace;
    slurm
}

/// The job name of a queue's allocation; its steps are `<name>/build` and `<name>/<task>`.
pub fn job_name(queue: &Queue) -> String {
    format!("testarena/{}", queue.id)
}

/// At start-up, for every environment on Slurm: the jobs of the queues a crash left running that
/// ran out of attempts (in `recovered`, ended) are cancelled — a queue that runs again cancels
/// its own before it asks for a new allocation of the same name, so those are left to it — and the data root is checked to be shared with the nodes
/// (a step reads a marker the server wrote; the boards' checkouts and logs live there). Runs in
/// the background: Slurm may be slow to answer, and the server serves meanwhile. What it finds
/// is logged.
pub async fn at_start(
    config: std::sync::Arc<Config>,
    recovered: Vec<Queue>,
    shutdown: CancellationToken,
) {
    for env in config.environments.values() {
        let ExecutorKind::Slurm(settings) = &env.executor else {
            continue;
        };
        let slurm = slurm_for(settings, config.worker.kill_grace);
        for queue in recovered
            .iter()
            .filter(|q| q.request.environment == env.name && q.status.is_terminal())
        {
            match slurm.cancel_by_name(&job_name(queue)).await {
                Ok(jobs) if jobs.is_empty() => {}
                Ok(jobs) => {
                    tracing::info!(queue = %queue.id, ?jobs, "cancelled the Slurm jobs of a queue the last run left")
                }
                Err(e) => {
                    tracing::warn!(queue = %queue.id, error = %e, "cannot cancel the Slurm jobs of a recovered queue")
                }
            }
        }
        match slurm.verify_shared_root(&config.root, &shutdown).await {
            Ok(()) => {
                tracing::info!(environment = %env.name, "the data root is shared with the Slurm nodes")
            }
            Err(e) => tracing::error!(
                environment = %env.name,
                error = %e,
                "the data root must be on a file system every Slurm node mounts at the same path: its builds and boards cannot run"
            ),
        }
    }
}
