//! The client's human output: a queue's summary, a table of queues, one-line confirmations.
//! Pure: records in, text out (`--json` prints the API's own JSON instead).

use std::fmt::Write;

use crate::model::TestStatus;
use crate::wire::{QueuePage, QueueRecord, TaskRecord};

/// `repo@commit (branch)`: what the queue runs, as precisely as it is known.
fn what(q: &QueueRecord) -> String {
    let commit = q
        .resolved_commit
        .as_deref()
        .or(q.commit.as_deref())
        .map(|c| c.chars().take(12).collect::<String>());
    let mut s = q.repo.clone();
    if let Some(c) = commit {
        let _ = write!(s, "@{c}");
    }
    match (&q.branch, q.pull_request) {
        (_, Some(n)) => {
            let _ = write!(s, " (pull request #{n})");
        }
        (Some(b), None) => {
            let _ = write!(s, " ({b})");
        }
        (None, None) => {}
    }
    s
}

/// Seconds between two RFC 3339 times, when both parse.
fn took(start: &str, end: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let a = time::OffsetDateTime::parse(start, &Rfc3339).ok()?;
    let b = time::OffsetDateTime::parse(end, &Rfc3339).ok()?;
    let secs = (b - a).as_seconds_f64().max(0.0);
    Some(if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = secs.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    })
}

/// `2 passed, 1 failed` over a task's tests; `no tests` when it has none.
fn counts(task: &TaskRecord) -> String {
    let order = [
        TestStatus::Passed,
        TestStatus::Failed,
        TestStatus::TimedOut,
        TestStatus::Error,
        TestStatus::Skipped,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|st| {
            let n = task.tests.iter().filter(|t| t.status == *st).count();
            (n > 0).then(|| format!("{n} {st}"))
        })
        .collect();
    if parts.is_empty() {
        "no tests".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `status ID`: the queue, what it runs, where, when, and its tasks.
pub fn queue(q: &QueueRecord) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "queue {}: {}", q.id, q.status);
    let _ = writeln!(s, "  repo         {}", what(q));
    let _ = writeln!(s, "  environment  {}", q.environment);
    let _ = writeln!(s, "  created      {}", q.created_at);
    if let Some(t) = &q.started_at {
        let _ = writeln!(s, "  started      {t}");
    }
    if let Some(t) = &q.finished_at {
        let took = q.started_at.as_deref().and_then(|st| took(st, t));
        match took {
            Some(d) => writeln!(s, "  finished     {t} (took {d})"),
            None => writeln!(s, "  finished     {t}"),
        }
        .ok();
    }
    if q.attempt > 1 {
        let _ = writeln!(s, "  attempt      {}", q.attempt);
    }
    if let Some(why) = &q.waiting_reason {
        let _ = writeln!(s, "  waiting      {why}");
    }
    if let Some(e) = &q.error {
        let _ = writeln!(s, "  error        {e}");
    }
    if let Some(of) = &q.rerun_of {
        let _ = writeln!(s, "  re-run of    {of}");
    }
    if !q.reruns.is_empty() {
        let _ = writeln!(s, "  re-runs      {}", q.reruns.join(", "));
    }
    let tasks = q.tasks.as_deref().unwrap_or_default();
    if tasks.is_empty() {
        return s;
    }
    let _ = writeln!(s, "  tasks");
    let rows: Vec<[String; 3]> = tasks
        .iter()
        .map(|t| [t.scenario.clone(), t.status.to_string(), counts(t)])
        .collect();
    for line in columns(&rows) {
        let _ = writeln!(s, "    {line}");
    }
    for t in tasks {
        if let Some(e) = &t.error {
            let _ = writeln!(s, "    {}: {e}", t.scenario);
        }
    }
    s
}

/// `status` without an id: one row per queue, newest first.
pub fn table(page: &QueuePage) -> String {
    if page.items.is_empty() {
        return "no queues\n".to_owned();
    }
    let mut rows = vec![[
        "ID".to_owned(),
        "STATUS".to_owned(),
        "ENVIRONMENT".to_owned(),
        "CREATED".to_owned(),
        "REPO".to_owned(),
    ]];
    rows.extend(page.items.iter().map(|q| {
        [
            q.id.clone(),
            q.status.to_string(),
            q.environment.clone(),
            q.created_at.clone(),
            what(q),
        ]
    }));
    let mut s: String = columns(&rows).into_iter().map(|l| l + "\n").collect();
    if page.next_cursor.is_some() {
        s.push_str("(more: raise --limit)\n");
    }
    s
}

/// Rows with their columns padded to the widest cell; the last column is not padded.
fn columns<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// A one-line confirmation: `enqueued fw-1: waiting`.
pub fn done(verb: &str, q: &QueueRecord) -> String {
    match &q.waiting_reason {
        Some(why) => format!("{verb} {}: {} ({why})", q.id, q.status),
        None => format!("{verb} {}: {}", q.id, q.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, TestResult};

    fn record() -> QueueRecord {
        serde_json::from_value(serde_json::json!({
            "attempt": 1, "branch": "main", "commit": null,
            "created_at": "2026-01-02T10:00:00.000Z", "environment": "esp32", "error": null,
            "finished_at": "2026-01-02T10:01:05.500Z", "id": "fw-1", "priority": 0,
            "repo": "https://git.example.org/fw.git",
            "resolved_commit": "3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091",
            "scenarios": [], "source": "api", "started_at": "2026-01-02T10:00:01.000Z",
            "status": "failed", "tasks": [],
        }))
        .unwrap()
    }

    fn test(status: TestStatus) -> TestResult {
        TestResult {
            suite: "s".into(),
            name: "t".into(),
            status,
            duration_ms: 1,
            message: None,
        }
    }

    #[test]
    fn a_queue_summary_says_what_where_when_and_how_its_tasks_went() {
        let mut q = record();
        q.tasks = Some(vec![
            TaskRecord {
                error: None,
                finished_at: None,
                id: "t1".into(),
                scenario: "scenarios/smoke.xml".into(),
                started_at: None,
                status: Status::Failed,
                tests: vec![
                    test(TestStatus::Passed),
                    test(TestStatus::Passed),
                    test(TestStatus::Failed),
                ],
            },
            TaskRecord {
                error: Some("board did not boot".into()),
                finished_at: None,
                id: "t2".into(),
                scenario: "scenarios/boot.xml".into(),
                started_at: None,
                status: Status::Error,
                tests: vec![],
            },
        ]);
        let text = queue(&q);
        assert_eq!(
            text,
            "queue fw-1: failed
  repo         https://git.example.org/fw.git@3f2a9c1b7d0e (main)
  environment  esp32
  created      2026-01-02T10:00:00.000Z
  started      2026-01-02T10:00:01.000Z
  finished     2026-01-02T10:01:05.500Z (took 1m05s)
  tasks
    scenarios/smoke.xml  failed  2 passed, 1 failed
    scenarios/boot.xml   error   no tests
    scenarios/boot.xml: board did not boot
"
        );
    }

    #[test]
    fn a_list_is_a_table_and_confirmations_are_one_line() {
        let mut waiting = record();
        waiting.id = "fw-2".into();
        waiting.status = Status::Waiting;
        waiting.waiting_reason = Some("waiting for a free slot (1/1 busy)".into());
        let page = QueuePage {
            items: vec![waiting.clone(), record()],
            next_cursor: Some("x".into()),
        };
        let text = table(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with("ID    STATUS   ENVIRONMENT  CREATED"),
            "{text}"
        );
        assert!(lines[1].starts_with("fw-2  waiting  esp32"), "{text}");
        assert!(lines[2].starts_with("fw-1  failed   esp32"), "{text}");
        assert_eq!(lines[3], "(more: raise --limit)");
        assert_eq!(
            done("enqueued", &waiting),
            "enqueued fw-2: waiting (waiting for a free slot (1/1 busy))"
        );
        assert_eq!(done("aborted", &record()), "aborted fw-1: failed");
        assert_eq!(
            table(&QueuePage {
                items: vec![],
                next_cursor: None
            }),
            "no queues\n"
        );
    }
}
