//! The one way the worker ends a queue: the final state is worked out first (the queue's
//! status and its tasks closed by the model's rule), its reports are written from it, and only
//! then is it committed, in one store write that closes the tasks the same way. So when a
//! client sees the final status, the reports are there. Used by the end of a run, the panic
//! path, and an abort of a waiting queue.

use std::time::Duration;

use super::Deps;
use crate::layout::Layout;
#[cfg(doc)]
use crate::model::ABORTED_WAITING;
use crate::model::{Queue, QueueId, Status, close_reason, close_tasks, now_millis};
use crate::report::ReportError;
use crate::store::{QueueView, StoreError};

/// Writes the reports the queue will have once it ends `to`, then commits that end; retries a
/// storage error a few times (a queue must not stay `running`; the next start's recovery is the
/// last resort).
pub async fn end_queue(
    deps: &Deps,
    id: &QueueId,
    to: Status,
    error: Option<String>,
) -> Result<Queue, StoreError> {
    let (mut to, mut error) = (to, error);
    if let Ok(Some(view)) = deps.store.get(id).await {
        let why = close_reason(to, false);
        if let Err(e) = write_final_reports(deps, view.clone(), to, error.clone(), &why).await
            && to != Status::Error
        {
            // Its reports are missing: the queue cannot end as if they were there.
            (to, error) = (Status::Error, Some(e));
            let why = close_reason(to, false);
            let _ = write_final_reports(deps, view, to, error.clone(), &why).await;
        }
    }
    let mut attempt = 1u32;
    loop {
        match deps.store.transition(id, to, error.clone()).await {
            Err(StoreError::Other(e)) if attempt < 5 => {
                tracing::warn!(queue = %id, error = %e, attempt, "cannot record the outcome; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            // The disk is full or failing: the store recovers once that passes, so keep trying
            // (a queue must not stay `running`) until the server stops; recovery at the next
            // start is the last resort.
            Err(e @ StoreError::Storage { .. }) => {
                tracing::warn!(queue = %id, error = %e, attempt, "cannot record the outcome; retrying when the store writes again");
                let mut fault = deps.store.watch_fault();
                let wait = Duration::from_millis(250 * u64::from(attempt.min(20)));
                tokio::select! {
                    () = deps.shutdown.cancelled() => return Err(e),
                    _ = fault.wait_for(Option::is_none) => {}
                    () = tokio::time::sleep(wait) => {}
                }
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Aborts a queue that is still waiting, with `reason` as its error ([`ABORTED_WAITING`] for a
/// user's abort): its reports first, then the commit, which happens only if it is still
/// waiting. Returns the queue as it is then (`running` if it was claimed meanwhile: the run
/// then ends it and writes its own reports).
pub async fn abort_waiting(deps: &Deps, id: &QueueId, reason: &str) -> Result<Queue, StoreError> {
    if let Some(view) = deps.store.get(id).await?
        && view.queue.status == Status::Waiting
    {
        let why = close_reason(Status::Aborted, true);
        let error = Some(reason.to_owned());
        // Aborted either way; a report that cannot be written is logged.
        let _ = write_final_reports(deps, view, Status::Aborted, error, &why).await;
    }
    deps.store.abort_waiting(id, reason.to_owned()).await
}

/// The reports of the queue in `view` as they will be once it ends `to` (its tasks closed
/// with `why`, as the store will close them): the report of every task the end closes while
/// it runs, and the queue's report. `Err` names the file that could not be written.
async fn write_final_reports(
    deps: &Deps,
    view: QueueView,
    to: Status,
    error: Option<String>,
    why: &str,
) -> Result<(), String> {
    let QueueView {
        mut queue,
        mut tasks,
    } = view;
    let before: Vec<Status> = tasks.iter().map(|t| t.status).collect();
    let now = now_millis();
    if close_tasks(&mut tasks, to, why, now).is_err() {
        return Ok(());
    }
    queue.status = to;
    if error.is_some() {
        queue.error = error;
    }
    queue.finished_at = Some(now);
    let id = queue.id.clone();
    let dir = Layout::new(&deps.config.root).queue(&id);
    let reports = deps.reports.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<(), ReportError> {
        for (task, was) in tasks.iter().zip(before) {
            if was == Status::Running {
                reports.write_task(&dir.task(task.id.as_str()), &queue, task)?;
            }
        }
        reports.write_queue(dir.path(), &queue, &tasks)
    })
    .await;
    let failed = match written {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("writing the final reports failed: {e}"),
    };
    tracing::error!(queue = %id, error = %failed, "cannot write the final reports");
    Err(failed)
}
