//! Write operations, each run inside a batch's transaction by the writer thread.
//!
//! Rule: an operation validates everything before it writes anything, so a refused request
//! leaves no trace in a batch that commits. A state change updates the record, its indexes and
//! the event table in the same transaction.
//!
//! Here: what every write uses (a queue and its tasks loaded and saved, a status change with its
//! indexes), and the writes of a queue once it exists: its resolved commit, the claim, the end,
//! an abort, a re-queue, recovery, deletion.
//!
//! - `create` new queues: an enqueue, a re-run of a finished queue
//! - `tasks`  a queue's task list, a task's status, a test's result

mod create;
mod tasks;

use redb::ReadableTable;

use super::actor::{Batch, Tables};
use super::codec;
use super::index;
use super::{ClaimFilter, StoreError};
use crate::model::{Queue, QueueId, Status, Task, TaskId, now_millis};

pub use create::{Enqueued, RerunOnly};
pub(super) use create::{enqueue, rerun};
pub(super) use tasks::{record_test, set_tasks, task_status};

pub(super) fn load_queue(b: &Batch<'_>, id: &QueueId) -> Result<Queue, StoreError> {
    let not_found = || StoreError::NotFound(id.to_string());
    let seq = b.seq_of(id)?.ok_or_else(not_found)?;
    let bytes = b.t.queues.get(seq)?.ok_or_else(not_found)?;
    Ok(codec::decode(bytes.value())?)
}

fn save_queue(b: &mut Batch<'_>, q: &Queue) -> Result<(), StoreError> {
    b.touch();
    b.t.queues.insert(q.seq, codec::encode(q).as_slice())?;
    Ok(())
}

/// Tasks are keyed by their queue's arrival number: a new queue's tasks go to the end of the
/// table instead of to random places (queue ids are the client's choice).
fn load_tasks(t: &Tables<'_>, seq: u64) -> Result<Vec<Task>, StoreError> {
    let mut out = Vec::new();
    for entry in t.tasks.range((seq, 0)..=(seq, u32::MAX))? {
        let (_, v) = entry?;
        out.push(codec::decode(v.value())?);
    }
    Ok(out)
}

fn replace_tasks(b: &mut Batch<'_>, seq: u64, list: &[Task]) -> Result<(), StoreError> {
    b.t.tasks
        .retain_in((seq, 0)..=(seq, u32::MAX), |_, _| false)?;
    insert_tasks(b, seq, list)
}

/// Writes the tasks of a queue that has none stored (a new queue).
fn insert_tasks(b: &mut Batch<'_>, seq: u64, list: &[Task]) -> Result<(), StoreError> {
    b.touch();
    for (i, t) in list.iter().enumerate() {
        b.t.tasks
            .insert((seq, i as u32), codec::encode(t).as_slice())?;
    }
    Ok(())
}

fn waiting_key(q: &Queue) -> (i64, u64) {
    (-(q.request.priority as i64), q.seq)
}

/// Moves `q` to `to` (through the state machine), keeping the waiting index in step.
fn set_status(b: &mut Batch<'_>, q: &mut Queue, to: Status) -> Result<(), StoreError> {
    let from = q.status;
    Status::queue_transition(from, to)?;
    let now = now_millis();
    b.index(&q.id, q.seq, Some(from), Some(to))?;
    if from == Status::Waiting {
        b.t.waiting.remove(waiting_key(q))?;
    }
    if to == Status::Waiting {
        b.t.waiting.insert(waiting_key(q), q.id.as_str())?;
    }
    q.status = to;
    match to {
        Status::Running => {
            q.started_at = Some(now);
            q.finished_at = None;
            q.error = None;
        }
        Status::Waiting => {}
        _ => q.finished_at = Some(now),
    }
    super::branches::finished(&mut b.t.branches, q)?;
    b.record(&q.id, None, Some(from), Some(to))?;
    Ok(())
}

/// The waiting tasks of a new task list, one per scenario in order, made before the write is
/// sent (naming them is linear, but it is the request's work, not the writer thread's).
pub(super) struct NewTasks(Vec<Task>);

impl NewTasks {
    pub(super) fn for_scenarios(scenarios: Vec<String>) -> NewTasks {
        NewTasks(
            TaskId::from_scenarios(&scenarios)
                .into_iter()
                .zip(scenarios)
                .map(|(tid, path)| Task::new(tid, path))
                .collect(),
        )
    }

    /// Whether these are the tasks of `scenarios`, in order (`Store::enqueue` makes them from
    /// the request it sends, so they are).
    fn are_for(&self, scenarios: &[String]) -> bool {
        self.0.len() == scenarios.len()
            && self.0.iter().zip(scenarios).all(|(t, s)| &t.scenario == s)
    }
}

/// Records the commit a queue's checkout resolved.
pub(super) fn set_resolved_commit(
    b: &mut Batch<'_>,
    id: &QueueId,
    commit: String,
) -> Result<(), StoreError> {
    let mut q = load_queue(b, id)?;
    if q.resolved_commit.as_deref() != Some(commit.as_str()) {
        q.resolved_commit = Some(commit);
        save_queue(b, &q)?;
    }
    Ok(())
}

pub(super) fn transition(
    b: &mut Batch<'_>,
    id: &QueueId,
    to: Status,
    error: Option<String>,
) -> Result<Queue, StoreError> {
    end(b, id, to, error, &crate::model::close_reason(to, false))
}

/// The one way a queue ends (and the one way it goes back to `waiting`): its status through
/// `Status::queue_transition`, and in the same transaction its tasks through the model's rule
/// (`close_tasks`, or `restart_tasks` for a re-queue), every change recorded.
fn end(
    b: &mut Batch<'_>,
    id: &QueueId,
    to: Status,
    error: Option<String>,
    task_why: &str,
) -> Result<Queue, StoreError> {
    let mut q = load_queue(b, id)?;
    set_status(b, &mut q, to)?;
    if error.is_some() {
        q.error = error;
    }
    save_queue(b, &q)?;
    let mut tasks = load_tasks(&b.t, q.seq)?;
    let changes = if to == Status::Waiting {
        crate::model::restart_tasks(&mut tasks)
    } else {
        crate::model::close_tasks(&mut tasks, to, task_why, now_millis())?
    };
    if !changes.is_empty() {
        replace_tasks(b, q.seq, &tasks)?;
        for c in changes {
            b.record(id, Some(&c.task), Some(c.from), Some(c.to))?;
        }
    }
    Ok(q)
}

pub(super) fn claim_next(
    b: &mut Batch<'_>,
    filter: &ClaimFilter,
) -> Result<Option<Queue>, StoreError> {
    // Walk the index in claim order and stop at the first queue whose environment has room.
    let mut found = None;
    let mut stale = Vec::new();
    for entry in b.t.waiting.iter()? {
        let (key, _) = entry?;
        let key = key.value();
        let Some(bytes) = b.t.queues.get(key.1)? else {
            stale.push(key);
            continue;
        };
        let q: Queue = codec::decode(bytes.value())?;
        if !filter.blocked_environments.contains(&q.request.environment) {
            found = Some(q);
            break;
        }
    }
    // An index entry without its queue cannot be run; it must not stop the others.
    for key in stale {
        tracing::error!(seq = key.1, "store: a waiting entry has no queue; removed");
        b.touch();
        b.t.waiting.remove(key)?;
    }
    let Some(mut q) = found else {
        return Ok(None);
    };
    set_status(b, &mut q, Status::Running)?;
    save_queue(b, &q)?;
    Ok(Some(q))
}

pub(super) fn abort_waiting(
    b: &mut Batch<'_>,
    id: &QueueId,
    reason: String,
) -> Result<Queue, StoreError> {
    let q = load_queue(b, id)?;
    match q.status {
        Status::Waiting => end(
            b,
            id,
            Status::Aborted,
            Some(reason),
            &crate::model::close_reason(Status::Aborted, true),
        ),
        Status::Running => Ok(q),
        s => Err(StoreError::Conflict(format!(
            "queue {id} already finished ({s}); only a waiting or running queue can be aborted"
        ))),
    }
}

pub(super) fn delete(b: &mut Batch<'_>, id: &QueueId) -> Result<(), StoreError> {
    let q = load_queue(b, id)?;
    if q.status == Status::Running {
        return Err(StoreError::Conflict(format!(
            "queue {id} is running: abort it before deleting"
        )));
    }
    // The original of a re-run no longer lists it.
    if let Some(of) = &q.rerun_of
        && let Ok(mut original) = load_queue(b, of)
    {
        original.reruns.retain(|r| r != id);
        save_queue(b, &original)?;
    }
    b.touch();
    super::branches::deleted(&mut b.t.branches, &b.t.queues, &q)?;
    b.t.queues.remove(q.seq)?;
    b.index(id, q.seq, Some(q.status), None)?;
    if q.status == Status::Waiting {
        b.t.waiting.remove(waiting_key(&q))?;
    }
    replace_tasks(b, q.seq, &[])?;
    b.record(id, None, Some(q.status), None)?;
    Ok(())
}

/// Removes the queues of `ids` that are still stored and finished, each with its tasks and its
/// deletion recorded like [`delete`]'s; the others are passed over (deleted or changed
/// meanwhile). Returns the queues removed.
pub(super) fn delete_finished(
    b: &mut Batch<'_>,
    ids: &[QueueId],
) -> Result<Vec<QueueId>, StoreError> {
    let mut removed = Vec::new();
    for id in ids {
        match load_queue(b, id) {
            Ok(q) if q.status.is_terminal() => {}
            Ok(_) | Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        }
        delete(b, id)?;
        removed.push(id.clone());
    }
    Ok(removed)
}

pub(super) fn requeue(
    b: &mut Batch<'_>,
    id: &QueueId,
    bump_attempt: bool,
    reason: &str,
) -> Result<Queue, StoreError> {
    let mut q = end(b, id, Status::Waiting, Some(reason.to_owned()), reason)?;
    if bump_attempt {
        q.attempt += 1;
        save_queue(b, &q)?;
    }
    Ok(q)
}

/// Finds the `running` queues in the status index (not among all queues: start-up costs the
/// same whatever the history).
pub(super) fn recover(b: &mut Batch<'_>, max_attempts: u32) -> Result<Vec<Queue>, StoreError> {
    let mut found = Vec::new();
    let mut stale = Vec::new();
    for entry in
        b.t.statuses
            .range(index::of_status(Status::Running, None))?
    {
        let (key, _) = entry?;
        match b.t.queues.get(key.value().1)? {
            Some(bytes) => found.push(codec::decode::<Queue>(bytes.value())?),
            None => stale.push(key.value()),
        }
    }
    // An index entry without its queue names nothing to recover; it must not stop the others.
    for key in stale {
        tracing::error!(
            seq = key.1,
            "store: a status index entry has no queue; removed"
        );
        b.touch();
        b.t.statuses.remove(key)?;
    }
    let mut out = Vec::new();
    for q in found {
        let id = q.id.clone();
        if q.attempt < max_attempts {
            out.push(requeue(
                b,
                &id,
                true,
                &format!("interrupted during attempt {}; re-queued", q.attempt),
            )?);
        } else {
            out.push(end(
                b,
                &id,
                Status::Error,
                Some("interrupted".into()),
                "interrupted",
            )?);
        }
    }
    Ok(out)
}
