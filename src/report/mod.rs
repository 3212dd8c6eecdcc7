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
//! tasks/<task>/tests/<suite>/<test>.txt    the same transcript as plain text
//! junit.xml                                every task's JUnit XML merged, for CI
//! ```
//! Every file is replaced atomically, so a reader never sees half a report. Every HTML page is
//! self-contained (the stylesheet is inlined), so it also works when opened from disk. Console
//! text is untrusted: it is escaped by the template engine and cleaned of characters XML forbids.

pub mod ansi;
mod assets;
mod atomic;
mod junit;
mod summary;
pub mod text;
mod transcript;
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
    /// This machine's name, JUnit's `hostname`: where the tests ran.
    hostname: Arc<str>,
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
            hostname: hostname().into(),
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

    /// Where a test's plain-text transcript lives relative to its task directory, beside its
    /// HTML log: `tests/<suite>/<test>.txt`.
    pub fn test_text_path(suite: &str, test: &str) -> String {
        view::test_text_path(suite, test)
    }

    /// Writes one test's transcript page and its plain-text transcript (which the JUnit files'
    /// `<system-out>` is read from) and returns the page's path.
    pub fn write_test_log(
        &self,
        task_dir: &Path,
        queue: &Queue,
        task_id: &TaskId,
        result: &TestResult,
        transcript: &[TranscriptLine],
    ) -> Result<PathBuf, ReportError> {
        let text = task_dir.join(Self::test_text_path(&result.suite, &result.name));
        write(&text, transcript::text(transcript).as_bytes())?;
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
        let junit = self.render(
            "junit.xml",
            junit::task(queue, task, task_dir, &self.hostname),
        )?;
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

    /// Writes the queue's merged `junit.xml`, then its `report.html`, linking every task's files
    /// and test logs.
    pub fn write_queue(
        &self,
        queue_dir: &Path,
        queue: &Queue,
        tasks: &[Task],
    ) -> Result<(), ReportError> {
        let dir = crate::layout::QueueDir::at(queue_dir);
        let junit = self.render(
            "junit.xml",
            junit::queue(queue, tasks, &dir, &self.hostname),
        )?;
        write(&dir.junit(), junit.as_bytes())?;
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
                has_junit => dir.junit().is_file(),
            },
        )?;
        write(&dir.report(), html.as_bytes())
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, ReportError> {
        Ok(self.env.get_template(name)?.render(ctx)?)
    }
}

/// The kernel's host name; `localhost` when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    atomic::write(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
