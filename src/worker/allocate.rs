//! Getting a queue's Slurm allocation: asked for after the checkout, waited for with the reason
//! as the queue's `waiting_reason`, asked again while Slurm does not answer. The `Site` it gives
//! is where the run's builds and boards then go (`site`).

use std::time::Duration;

use super::site::{Site, job_name, slurm_for};
use super::step::{StepCtx, StepError};
use crate::config::SlurmEnv;
use crate::exec::slurm::SlurmError;
use crate::logs::marker;
use crate::model::Queue;

/// How long to wait before asking a Slurm that did not answer again.
const RETRY: Duration = Duration::from_secs(5);

/// Asks Slurm for the queue's allocation and waits until it is granted, saying why meanwhile.
/// A job of the same name left by a server that died is cancelled first. A Slurm that does not
/// answer is asked again until it does, or until the run is cancelled: then, unless a user
/// aborted or the server stops, the queue ends `error` "executor unavailable".
pub async fn allocate(ctx: &StepCtx<'_>, queue: &Queue, env: &SlurmEnv) -> Result<Site, StepError> {
    let deps = ctx.deps;
    let slurm = slurm_for(env, deps.config.worker.kill_grace);
    let name = job_name(queue);
    let note = |text: String| {
        ctx.log.line(&text);
        deps.runs.note(&queue.id, Some(text));
    };
    let mut unavailable: Option<String> = None;
    let result = loop {
        if ctx.cancel.is_cancelled() {
            break Err(SlurmError::Cancelled);
        }
        // What a dead server left under this queue's name goes first.
        let attempt = async {
            let left = slurm.cancel_by_name(&name).await?;
            if !left.is_empty() {
                let ids: Vec<String> = left.iter().map(ToString::to_string).collect();
                ctx.log.line(&format!(
                    "cancelled Slurm job {} left by an earlier run of this queue",
                    ids.join(", ")
                ));
            }
            slurm
                .allocate(&name, deps.config.worker.queue_timeout, ctx.cancel, |w| {
                    note(format!("waiting for a board: {w}"))
                })
                .await
        };
        match attempt.await {
            Err(SlurmError::Unavailable(detail)) => {
                note(format!(
                    "waiting for a board: Slurm does not answer ({detail})"
                ));
                unavailable = Some(detail);
                tokio::select! {
                    () = ctx.cancel.cancelled() => {}
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
            other => break other,
        }
    };
    deps.runs.note(&queue.id, None);
    match result {
        Ok(alloc) => {
            let site = Site::Slurm {
                slurm: Box::new(slurm),
                alloc,
            };
            ctx.log.line(&marker(
                "step",
                "allocate",
                &format!("passed ({})", site.describe()),
            ));
            Ok(site)
        }
        // The queue timeout while Slurm did not answer: the executor's failure, said so.
        Err(SlurmError::Cancelled)
            if unavailable.is_some()
                && deps.runs.abort_reason(&queue.id).is_none()
                && !deps.shutdown.is_cancelled() =>
        {
            Err(StepError::Error(format!(
                "executor unavailable: {}",
                unavailable.unwrap_or_default()
            )))
        }
        Err(SlurmError::Cancelled) => Err(StepError::Cancelled),
        Err(SlurmError::Unavailable(detail)) => {
            Err(StepError::Error(format!("executor unavailable: {detail}")))
        }
        Err(e) => Err(StepError::Error(format!(
            "cannot get a board from Slurm: {e}"
        ))),
    }
}
