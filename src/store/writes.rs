//! Write operations, each run inside a batch's transaction by the writer thread.
//!
//! Rule: an operation validates everything before it writes anything, so a refused request
//! leaves no trace in a batch that commits. A state change updates the record, its indexes and
//! the event table in the same transaction.

use redb::ReadableTable;

use super::actor::{Batch, Tables};
use super::codec;
use super::index;
use super::{ClaimFilter, QueueView, StoreError};
use crate::model::{
    MAX_ID_LEN, Origin, Queue, QueueId, QueueRequest, Status, Task, TaskId, TestResult, now_millis,
};

/// What an enqueue did.
#[derive(Debug, Clone)]
pub enum Enqueued {
    Created(QueueView),
    /// The same id with the same request was stored before: nothing changed.
    Existing(QueueView),
}

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

pub(super) fn enqueue(
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
pub(super) fn rerun(
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

pub(super) fn set_tasks(
    b: &mut Batch<'_>,
    id: &QueueId,
    NewTasks(tasks): NewTasks,
) -> Result<Vec<Task>, StoreError> {
    let seq = load_queue(b, id)?.seq;
    replace_tasks(b, seq, &tasks)?;
    for t in &tasks {
        b.record(id, Some(&t.id), None, Some(Status::Waiting))?;
    }
    Ok(tasks)
}

/// Loads the tasks of `id`, lets `f` change the one named `task`, saves them.
fn with_task<T>(
    b: &mut Batch<'_>,
    id: &QueueId,
    task: &TaskId,
    f: impl FnOnce(&mut Task) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let seq = load_queue(b, id)?.seq;
    let mut tasks = load_tasks(&b.t, seq)?;
    let t = tasks
        .iter_mut()
        .find(|t| &t.id == task)
        .ok_or_else(|| StoreError::NotFound(format!("{id}/{task}")))?;
    let out = f(t)?;
    replace_tasks(b, seq, &tasks)?;
    Ok(out)
}

pub(super) fn task_status(
    b: &mut Batch<'_>,
    id: &QueueId,
    task: &TaskId,
    to: Status,
    error: Option<String>,
) -> Result<Task, StoreError> {
    let mut from = to;
    let updated = with_task(b, id, task, |t| {
        from = t.status;
        if t.status != to {
            Status::task_transition(t.status, to)?;
        }
        let now = now_millis();
        t.status = to;
        if to == Status::Running {
            t.started_at = Some(now);
        } else if to.is_terminal() {
            t.finished_at = Some(now);
        }
        if error.is_some() {
            t.error = error;
        }
        Ok(t.clone())
    })?;
    if from != to {
        b.record(id, Some(task), Some(from), Some(to))?;
    }
    Ok(updated)
}

pub(super) fn record_test(
    b: &mut Batch<'_>,
    id: &QueueId,
    task: &TaskId,
    result: TestResult,
) -> Result<(), StoreError> {
    with_task(b, id, task, |t| {
        match t
            .tests
            .iter_mut()
            .find(|r| r.suite == result.suite && r.name == result.name)
        {
            Some(slot) => *slot = result,
            None => t.tests.push(result),
        }
        Ok(())
    })
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
