//! New queues: an enqueue (the same request again changes nothing), and a re-run of a
//! finished queue under the next free `.r<N>` id.

use super::super::actor::Batch;
use super::super::{QueueView, StoreError};
use super::{NewTasks, insert_tasks, load_queue, load_tasks, save_queue, waiting_key};
use crate::model::{MAX_ID_LEN, Origin, Queue, QueueId, QueueRequest, Status, now_millis};

/// What an enqueue did.
#[derive(Debug, Clone)]
pub enum Enqueued {
    Created(QueueView),
    /// The same id with the same request was stored before: nothing changed.
    Existing(QueueView),
}

pub(in super::super) fn enqueue(
    b: &mut Batch<'_>,
    id: QueueId,
    request: QueueRequest,
    origin: Origin,
    tasks: NewTasks,
) -> Result<Enqueued, StoreError> {
    match load_queue(b, &id) {
        Ok(existing) => {
            if existing.request == request {
                let tasks = load_tasks(&b.t, existing.seq)?;
                return Ok(Enqueued::Existing(QueueView {
                    queue: existing,
                    tasks,
                }));
            }
            return Err(StoreError::Conflict(format!(
                "queue {id} already exists with a different request: use another id, or repeat the same body"
            )));
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    debug_assert!(tasks.are_for(&request.scenarios));
    let view = create(b, id, request, origin, None, tasks)?;
    Ok(Enqueued::Created(view))
}

/// Stores a new waiting queue with its tasks; its id is known to be free.
fn create(
    b: &mut Batch<'_>,
    id: QueueId,
    request: QueueRequest,
    origin: Origin,
    rerun_of: Option<QueueId>,
    NewTasks(tasks): NewTasks,
) -> Result<QueueView, StoreError> {
    // The creation event's sequence number is the queue's arrival order.
    let seq = b.record(&id, None, None, Some(Status::Waiting))?;
    let queue = Queue {
        id: id.clone(),
        status: Status::Waiting,
        request,
        seq,
        created_at: now_millis(),
        started_at: None,
        finished_at: None,
        attempt: 1,
        error: None,
        origin,
        resolved_commit: None,
        rerun_of,
        reruns: Vec::new(),
    };
    save_queue(b, &queue)?;
    insert_tasks(b, seq, &tasks)?;
    b.t.waiting.insert(waiting_key(&queue), id.as_str())?;
    b.index(&id, seq, None, Some(Status::Waiting))?;
    Ok(QueueView { queue, tasks })
}

/// Which tasks a re-run runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerunOnly {
    /// The same scenarios as the original's request.
    All,
    /// The scenarios of the original's tasks that did not pass.
    Failed,
}

/// A new queue that runs what finished queue `id` ran, at the commit it resolved: the same
/// repository, branch, environment and priority, and its scenarios (or those of its tasks that
/// did not pass). The original lists it among its re-runs, in the same commit.
pub(in super::super) fn rerun(
    b: &mut Batch<'_>,
    id: &QueueId,
    only: RerunOnly,
) -> Result<QueueView, StoreError> {
    let mut original = load_queue(b, id)?;
    if !original.status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "queue {id} is still {}: re-run it once it has finished (or abort it first)",
            original.status
        )));
    }
    let Some(commit) = original
        .resolved_commit
        .clone()
        .or_else(|| original.request.commit.clone())
    else {
        return Err(StoreError::Conflict(format!(
            "queue {id} ended before its checkout resolved a commit, so there is no commit to re-run: enqueue it again instead"
        )));
    };
    let tasks = load_tasks(&b.t, original.seq)?;
    let scenarios = match only {
        RerunOnly::Failed if !tasks.is_empty() => {
            let failed: Vec<String> = tasks
                .iter()
                .filter(|t| t.status != Status::Passed)
                .map(|t| t.scenario.clone())
                .collect();
            if failed.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "every task of queue {id} passed: there is nothing to re-run with only = failed"
                )));
            }
            failed
        }
        // No task was made (it ended before its scenarios were known): all of them.
        _ => original.request.scenarios.clone(),
    };
    let request = QueueRequest {
        commit: Some(commit),
        scenarios,
        ..original.request.clone()
    };
    let new_id = rerun_id(b, &original)?;
    let tasks = NewTasks::for_scenarios(request.scenarios.clone());
    let view = create(
        b,
        new_id.clone(),
        request,
        Origin::Api,
        Some(id.clone()),
        tasks,
    )?;
    original.reruns.push(new_id);
    save_queue(b, &original)?;
    Ok(view)
}

/// `<id>.r<N>` for the first N from the number of re-runs so far whose id is free, the
/// original's id shortened to leave room.
fn rerun_id(b: &Batch<'_>, original: &Queue) -> Result<QueueId, StoreError> {
    let base = original.id.as_str();
    for n in original.reruns.len() + 1.. {
        let suffix = format!(".r{n}");
        let keep = base.len().min(MAX_ID_LEN - suffix.len());
        let stem = base[..keep].trim_end_matches(['.', '-', '_']);
        let candidate = QueueId::parse(&format!("{stem}{suffix}"))
            .map_err(|e| StoreError::Other(format!("re-run id: {e}")))?;
        if b.seq_of(&candidate)?.is_none() {
            return Ok(candidate);
        }
    }
    unreachable!("an unbounded range always yields a free id")
}
