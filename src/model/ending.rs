//! How a queue's tasks follow the queue when it ends or starts again: one pure rule for every
//! way a queue ends (its run's outcome, an abort while waiting, recovery after a crash, a run
//! that panicked) and for a re-queue (a new attempt starts its tasks afresh).

use super::{IllegalTransition, Millis, Status, Task, TaskId};

/// One task's change of status, to be recorded and published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChange {
    pub task: TaskId,
    pub from: Status,
    pub to: Status,
}

/// The queue's error when it is aborted before a run claimed it.
pub const ABORTED_WAITING: &str = "aborted before it started";

/// Why a task was closed when its queue ended `outcome` (`waiting_abort`: aborted before it
/// ever ran).
pub fn close_reason(outcome: Status, waiting_abort: bool) -> String {
    if waiting_abort {
        "the queue was aborted before it started".to_owned()
    } else {
        format!("queue ended {outcome} before this task finished")
    }
}

/// What an open task becomes when its queue ends `outcome`; `None` for a task that is done.
/// A running task shares an abort or a timeout and is otherwise `error` (it could not finish);
/// a task that never started is `skipped`.
pub fn closed_status(task: Status, outcome: Status) -> Option<Status> {
    match task {
        Status::Running => Some(match outcome {
            Status::Aborted => Status::Aborted,
            Status::TimedOut => Status::TimedOut,
            _ => Status::Error,
        }),
        Status::Waiting => Some(Status::Skipped),
        _ => None,
    }
}

/// Closes every open task of a queue that ended `outcome`, through `Status::task_transition`;
/// each closed task gets `why` as its error unless it has one. Returns the changes.
pub fn close_tasks(
    tasks: &mut [Task],
    outcome: Status,
    why: &str,
    now: Millis,
) -> Result<Vec<TaskChange>, IllegalTransition> {
    let mut changes = Vec::new();
    for t in tasks.iter_mut() {
        let Some(to) = closed_status(t.status, outcome) else {
            continue;
        };
        Status::task_transition(t.status, to)?;
        changes.push(TaskChange {
            task: t.id.clone(),
            from: t.status,
            to,
        });
        t.status = to;
        t.finished_at = Some(now);
        t.error.get_or_insert_with(|| why.to_owned());
    }
    Ok(changes)
}

/// The tasks of a queue that goes back to `waiting` for a new attempt: fresh records, same ids
/// and scenarios. Returns the changes (every task that was not waiting).
pub fn restart_tasks(tasks: &mut [Task]) -> Vec<TaskChange> {
    let mut changes = Vec::new();
    for t in tasks.iter_mut() {
        if t.status != Status::Waiting {
            changes.push(TaskChange {
                task: t.id.clone(),
                from: t.status,
                to: Status::Waiting,
            });
        }
        *t = Task::new(t.id.clone(), std::mem::take(&mut t.scenario));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, status: Status) -> Task {
        let mut t = Task::new(
            TaskId::from_scenarios(&[format!("{id}.xml")])[0].clone(),
            format!("{id}.xml"),
        );
        t.status = status;
        t
    }

    #[test]
    fn every_outcome_closes_running_and_waiting_tasks_and_leaves_finished_ones() {
        use Status::*;
        for outcome in [Passed, Failed, Error, TimedOut, Aborted] {
            let mut tasks = vec![task("a", Passed), task("b", Running), task("c", Waiting)];
            let changes = close_tasks(&mut tasks, outcome, "why", 7).unwrap();
            let running_to = match outcome {
                Aborted => Aborted,
                TimedOut => TimedOut,
                _ => Error,
            };
            assert_eq!(
                tasks.iter().map(|t| t.status).collect::<Vec<_>>(),
                [Passed, running_to, Skipped],
                "{outcome}"
            );
            assert_eq!(changes.len(), 2);
            assert_eq!((changes[0].from, changes[0].to), (Running, running_to));
            assert_eq!((changes[1].from, changes[1].to), (Waiting, Skipped));
            assert_eq!(tasks[0].error, None);
            assert_eq!(tasks[1].error.as_deref(), Some("why"));
            assert_eq!(tasks[2].finished_at, Some(7));
        }
    }

    #[test]
    fn a_restart_gives_fresh_tasks_and_names_every_change() {
        let mut tasks = vec![task("a", Status::Passed), task("b", Status::Waiting)];
        tasks[0].error = Some("old".into());
        let changes = restart_tasks(&mut tasks);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].from, Status::Passed);
        assert!(
            tasks
                .iter()
                .all(|t| t.status == Status::Waiting && t.error.is_none())
        );
        assert_eq!(tasks[0].scenario, "a.xml");
    }
}
