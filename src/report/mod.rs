//! Reports: per-test HTML logs, the task report (`report.html`, `junit.xml`, `summary.json`)
//! and the queue report, rendered with the embedded templates under `ui/templates/`.
//!
//! Layout under a queue directory (links between the files are relative):
//! ```text
//! report.html                              queue report: header, every task, every test log
//! tasks/<task>/report.html                 table of the task's tests
//! tasks/<task>/junit.xml                   JUnit XML for CI
//! tasks/<task>/summary.json                counts and results for scripts
//! tasks/<task>/tests/<suite>/<test>.html   one test's transcript
//! ```
//! Every file is replaced atomically, so a reader never sees half a report. Every HTML page is
//! self-contained (the stylesheet is inlined), so it also works when opened from disk. Console
//! text is untrusted: it is escaped by the template engine and cleaned of characters XML forbids.

mod assets;
mod atomic;
mod summary;
pub mod text;
mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, context};

use crate::model::{Queue, Task, TaskId, TestResult, TranscriptLine};

pub use assets::stylesheet;
pub use summary::{TaskSummary, TestSummary};
pub use view::Counts;

/// Why a report could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("template error: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("embedded asset {0:?} is missing or not UTF-8")]
    Asset(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the summary: {0}")]
    Json(#[from] serde_json::Error),
}

/// The template environment and the report writers. Cheap to clone.
#[derive(Clone)]
pub struct Reports {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports").finish_non_exhaustive()
    }
}

impl Reports {
    /// Loads every embedded template; a template with a syntax error is an error here.
    pub fn new() -> Result<Reports, ReportError> {
        Ok(Reports {
            env: Arc::new(assets::environment()?),
        })
    }

    /// The environment the dashboard pages render through too.
    pub fn env(&self) -> &Environment<'static> {
        &self.env
    }

    /// Where a test's HTML log lives relative to its task directory:
    /// `tests/<suite>/<test>.html`, each name reduced to `[A-Za-z0-9._-]` (spaces become `_`).
    pub fn test_log_path(suite: &str, test: &str) -> String {
        view::test_log_path(suite, test)
    }

    /// Writes one test's transcript page and returns its path.
    pub fn write_test_log(
        &self,
        task_dir: &Path,
        queue: &Queue,
        task_id: &TaskId,
        result: &TestResult,
        transcript: &[TranscriptLine],
    ) -> Result<PathBuf, ReportError> {
        let path = task_dir.join(Self::test_log_path(&result.suite, &result.name));
        let html = self.render(
            "test_log.html",
            context! {
                queue => view::queue(queue),
                task => task_id.as_str(),
                test => view::test(result, task_dir),
                lines => transcript.iter().map(view::line).collect::<Vec<_>>(),
            },
        )?;
        write(&path, html.as_bytes())?;
        Ok(path)
    }

    /// Writes `report.html`, `junit.xml` and `summary.json` into the task directory.
    pub fn write_task(
        &self,
        task_dir: &Path,
        queue: &Queue,
        task: &Task,
    ) -> Result<(), ReportError> {
        let junit = self.render("junit.xml", view::junit(queue, task))?;
        write(&task_dir.join("junit.xml"), junit.as_bytes())?;
        let summary = TaskSummary::new(queue, task, task_dir);
        let mut json = serde_json::to_vec_pretty(&summary)?;
        json.push(b'\n');
        write(&task_dir.join("summary.json"), &json)?;
        // Last, so that its links to the two files above are live.
        let html = self.render(
            "task_report.html",
            context! { queue => view::queue(queue), task => view::task(task, task_dir) },
        )?;
        write(&task_dir.join("report.html"), html.as_bytes())
    }

    /// Writes the queue's `report.html`, linking every task's files and test logs.
    pub fn write_queue(
        &self,
        queue_dir: &Path,
        queue: &Queue,
        tasks: &[Task],
    ) -> Result<(), ReportError> {
        let dir = crate::layout::QueueDir::at(queue_dir);
        let task_views: Vec<_> = tasks
            .iter()
            .map(|t| view::task(t, &dir.task(t.id.as_str())))
            .collect();
        let html = self.render(
            "queue_report.html",
            context! {
                queue => view::queue(queue),
                tasks => task_views,
                counts => view::total_counts(tasks),
                has_log => dir.log().is_file(),
            },
        )?;
        write(&dir.report(), html.as_bytes())
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, ReportError> {
        Ok(self.env.get_template(name)?.render(ctx)?)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    atomic::write(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
