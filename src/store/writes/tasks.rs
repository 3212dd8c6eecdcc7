//! Task-level writes: a queue's task list, a task's status, a test's result.

use super::super::StoreError;
use super::super::actor::Batch;
use super::{NewTasks, load_queue, load_tasks, replace_tasks};
use crate::model::{QueueId, Status, Task, TaskId, TestResult, now_millis};

pub(in super::super) fn set_tasks(
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

pub(in super::super) fn task_status(
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

pub(in super::super) fn record_test(
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
