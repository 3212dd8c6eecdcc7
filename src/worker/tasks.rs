//! The scenario part of a run: which scenarios (given, or `scenarios/*.xml`), validation before
//! any board boots, one fresh board per scenario, results written to the store and the reports
//! as each test finishes.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::Deps;
use super::board::{Board, BootError, BootSpec, ShellHost};
use super::step::{StepCtx, StepError, command_env, repo_command};
use crate::config::{ConsoleKind, Environment};
use crate::exec::Spec;
use crate::layout::{Layout, QueueDir};
use crate::logs::{LogOf, LogWriter, marker};
use crate::model::{Queue, Status, Task, TestResult, TranscriptLine};
use crate::scenario::{self, Observer, Scenario};

/// A task and its scenario file, parsed (or the diagnostics saying why not).
pub struct Prepared {
    pub task: Task,
    pub scenario: Result<Scenario, String>,
}

/// Decides the task list and validates every scenario file before anything boots.
pub async fn prepare(
    deps: &Deps,
    queue: &Queue,
    repo_dir: &Path,
    log: &LogWriter,
) -> Result<Vec<Prepared>, StepError> {
    let tasks = if queue.request.scenarios.is_empty() {
        let found = discover(repo_dir).await?;
        if found.is_empty() {
            return Err(StepError::Error(
                "no scenarios: the request names none and the repository has no scenarios/*.xml"
                    .into(),
            ));
        }
        log.line(&format!("found scenarios: {}", found.join(", ")));
        deps.store
            .set_tasks(&queue.id, found)
            .await
            .map_err(|e| StepError::Error(e.to_string()))?
    } else {
        deps.store
            .get(&queue.id)
            .await
            .map_err(|e| StepError::Error(e.to_string()))?
            .map(|v| v.tasks)
            .unwrap_or_default()
    };
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (dir, rel) = (repo_dir.to_owned(), task.scenario.clone());
        let scenario = tokio::task::spawn_blocking(move || scenario::parse_in_checkout(&dir, &rel))
            .await
            .map_err(|e| StepError::Error(e.to_string()))?
            .map_err(|diags| {
                diags
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        if let Err(message) = &scenario {
            for line in message.lines() {
                log.line(line);
            }
        }
        out.push(Prepared { task, scenario });
    }
    Ok(out)
}

/// `scenarios/*.xml` of the checkout (see `scenario::discover`: a linked `scenarios` directory
/// or more files than a queue runs is an error).
async fn discover(repo_dir: &Path) -> Result<Vec<String>, StepError> {
    let dir = repo_dir.to_owned();
    tokio::task::spawn_blocking(move || scenario::discover(&dir))
        .await
        .map_err(|e| StepError::Error(e.to_string()))?
        .map_err(StepError::Error)
}

/// Runs one task on a fresh board, once `[worker] max_boards` leaves one free. Its lines go to
/// its own log and, through it, to the queue's (`ctx.log`), with the task's name in front when
/// the environment runs boards in parallel. `Err(Cancelled)` when the run was cancelled.
pub async fn run_task(
    ctx: &StepCtx<'_>,
    queue: &Queue,
    env: &Environment,
    repo_dir: &Path,
    queue_dir: &QueueDir,
    prepared: &Prepared,
) -> Result<Status, StepError> {
    let deps = ctx.deps;
    let task = &prepared.task;
    let name = task.id.as_str();
    let max = deps.config.worker.max_boards;
    if max.is_some_and(|max| deps.runs.boards() >= max) {
        ctx.log.line(&format!(
            "task {name} waits for a board ([worker] max_boards = {})",
            max.unwrap_or_default()
        ));
    }
    let _board = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => return Err(StepError::Cancelled),
        permit = deps.runs.board(max) => permit,
    };
    let prefix = (env.boards > 1).then(|| format!("[{name}] "));
    let log = deps
        .logs
        .writer(LogOf::Task(&queue.id, &task.id))
        .map_err(|e| StepError::Error(format!("cannot open the log of task {name}: {e}")))?
        .copying_to(ctx.log.clone(), prefix);
    let task_ctx = StepCtx { log: &log, ..*ctx };
    let result = on_board(&task_ctx, queue, env, repo_dir, queue_dir, prepared).await;
    // Closed before the task's end is recorded (see `end_task`); a cancelled task's log closes
    // here, and its end is recorded with the queue's.
    if let Err(e) = log.close().await {
        tracing::error!(queue = %queue.id, task = name, error = %e, "cannot write the task log");
    }
    result
}

/// The task on its board, with `ctx.log` the task's own log.
async fn on_board(
    ctx: &StepCtx<'_>,
    queue: &Queue,
    env: &Environment,
    repo_dir: &Path,
    queue_dir: &QueueDir,
    prepared: &Prepared,
) -> Result<Status, StepError> {
    let deps = ctx.deps;
    let task = &prepared.task;
    let task_dir = queue_dir.task(task.id.as_str());
    let name = task.id.as_str();
    // A run whose tasks the store cannot record would end in a contradiction: stop here.
    deps.store
        .task_status(&queue.id, &task.id, Status::Running, None)
        .await
        .map_err(|e| StepError::Error(format!("cannot record that task {name} started: {e}")))?;
    ctx.log.line(&marker(
        "task",
        name,
        &format!("started ({})", task.scenario),
    ));

    let scenario = match &prepared.scenario {
        Ok(s) => s,
        Err(message) => {
            let error = format!("invalid scenario file:\n{message}");
            return end_task(ctx, queue, task, &task_dir, Status::Error, Some(error)).await;
        }
    };

    let w = &deps.config.worker;
    let mut spec = Spec::new(env.simulate.clone(), repo_dir);
    if env.console == ConsoleKind::Stdio {
        spec = spec.with_stdin();
    }
    spec.env = command_env(queue, env, repo_dir);
    // A tcp: console is reached in the host's network namespace; nothing else gets a network.
    let network = matches!(env.console, ConsoleKind::Tcp(_));
    let spec = match repo_command(&*deps.sandbox, spec, repo_dir, network) {
        // On Slurm, a step of the queue's allocation; its time limit covers boot and scenario.
        Ok(spec) => ctx
            .site
            .place(spec, name, Some(env.boot_timeout + scenario.timeout)),
        Err(e) => {
            let why = format!("cannot start the simulator: {e}");
            return end_task(ctx, queue, task, &task_dir, Status::Error, Some(why)).await;
        }
    };
    ctx.log
        .line(&marker("step", &format!("boot:{name}"), "started"));
    if let Some(place) = ctx.site.step_name(name) {
        ctx.log.line(&format!("the board {place}"));
    }
    let boot = BootSpec {
        spec: &spec,
        console: &env.console,
        ready: &env.ready,
        boot_timeout: env.boot_timeout,
        max_line: w.max_line,
        grace: w.kill_grace,
        site: ctx.site,
    };
    let booted = Board::boot(boot, ctx.log, ctx.cancel).await;
    let mut board = match booted {
        Ok(board) => {
            ctx.log
                .line(&marker("step", &format!("boot:{name}"), "passed"));
            board
        }
        // The pipeline closes the task with the queue's outcome (aborted, timed out).
        Err(BootError::Cancelled) => return Err(StepError::Cancelled),
        Err(e) => {
            let why = match e {
                BootError::Spawn(m) => format!("cannot start the simulator: {m}"),
                BootError::Console(m) => format!("the board did not boot: {m}"),
                BootError::Exited(how) => format!(
                    "the board did not boot: {how} before printing {:?}",
                    env.ready
                ),
                BootError::Timeout(d) => format!(
                    "boot timed out: {:?} did not appear within {} (boot_timeout)",
                    env.ready,
                    crate::model::format_duration(d)
                ),
                BootError::Cancelled => unreachable!(),
            };
            ctx.log.line(&marker(
                "step",
                &format!("boot:{name}"),
                &format!("error: {why}"),
            ));
            return end_task(ctx, queue, task, &task_dir, Status::Error, Some(why)).await;
        }
    };

    let mut host = ShellHost {
        cwd: repo_dir.to_owned(),
        env: command_env(queue, env, repo_dir),
        sandbox: deps.sandbox.clone(),
        grace: w.kill_grace,
        max_line: w.max_line,
        cancel: ctx.cancel.clone(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let persister = tokio::spawn(persist(
        deps.clone(),
        queue.clone(),
        task.clone(),
        task_dir.clone(),
        rx,
    ));
    let mut observer = TaskObserver {
        log: ctx.log.clone(),
        tx,
    };
    let run =
        scenario::run_scenario(scenario, &mut board, &mut host, &mut observer, ctx.cancel).await;
    drop(observer);
    let exit = board.stop(w.kill_grace).await;
    ctx.log.line(&format!("board stopped ({exit})"));
    if let Err(e) = persister.await {
        tracing::error!(error = %e, "task persister failed");
    }

    if run.status == Status::Aborted {
        // Cancelled: abort, queue timeout or shutdown; the pipeline knows which.
        return Err(StepError::Cancelled);
    }
    let error = match run.status {
        Status::Passed => None,
        Status::TimedOut => Some(format!(
            "scenario timed out after {}",
            crate::model::format_duration(scenario.timeout)
        )),
        _ => run.board_exit.clone(),
    };
    end_task(ctx, queue, task, &task_dir, run.status, error).await
}

/// Records the task's outcome and writes its reports.
async fn end_task(
    ctx: &StepCtx<'_>,
    queue: &Queue,
    task: &Task,
    task_dir: &Path,
    status: Status,
    error: Option<String>,
) -> Result<Status, StepError> {
    let deps = ctx.deps;
    let line = match &error {
        Some(e) => format!("{status}: {}", e.lines().next().unwrap_or_default()),
        None => status.to_string(),
    };
    ctx.log.line(&marker("task", task.id.as_str(), &line));
    let _ = ctx.log.sync().await;
    let recorded = deps
        .store
        .task_status(&queue.id, &task.id, status, error)
        .await
        .map_err(|e| StepError::Error(e.to_string()))?;
    let (reports, queue, dir) = (deps.reports.clone(), queue.clone(), task_dir.to_owned());
    let written =
        tokio::task::spawn_blocking(move || reports.write_task(&dir, &queue, &recorded)).await;
    match written {
        // A task whose report is missing cannot pass: the queue ends `error` naming the file.
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot write a task report");
            Err(StepError::Error(e.to_string()))
        }
        Err(e) => Err(StepError::Error(format!(
            "writing a task report failed: {e}"
        ))),
        Ok(Ok(())) => Ok(status),
    }
}

/// Writes the queue's report for `queue` as given (its final state may not be stored yet), with
/// its tasks as stored.
pub async fn write_queue_report(deps: &Deps, queue: &Queue) {
    let Ok(Some(view)) = deps.store.get(&queue.id).await else {
        return;
    };
    let dir = Layout::new(&deps.config.root).queue(&queue.id);
    let (reports, queue) = (deps.reports.clone(), queue.clone());
    let written =
        tokio::task::spawn_blocking(move || reports.write_queue(dir.path(), &queue, &view.tasks))
            .await;
    if let Ok(Err(e)) = written {
        tracing::error!(error = %e, "cannot write the queue report");
    }
}

/// A finished test and what the board printed during it.
struct Finished(TestResult, Vec<TranscriptLine>);

/// Lines go to the task's log at once; results go to the persister in order.
struct TaskObserver {
    log: LogWriter,
    tx: mpsc::UnboundedSender<Finished>,
}

impl Observer for TaskObserver {
    fn log(&mut self, line: &str) {
        self.log.line(line);
    }

    fn test_finished(&mut self, result: &TestResult, transcript: &[TranscriptLine]) {
        let _ = self.tx.send(Finished(result.clone(), transcript.to_vec()));
    }
}

/// Writes each test's result to the store and its HTML log, as they arrive.
async fn persist(
    deps: Deps,
    queue: Queue,
    task: Task,
    task_dir: PathBuf,
    mut rx: mpsc::UnboundedReceiver<Finished>,
) {
    while let Some(event) = rx.recv().await {
        match event {
            Finished(result, transcript) => {
                match deps
                    .store
                    .record_test(&queue.id, &task.id, result.clone())
                    .await
                {
                    Ok(()) => deps.metrics.test(result.status),
                    Err(e) => tracing::error!(error = %e, "cannot record a test result"),
                }
                let (reports, q, tid, dir) = (
                    deps.reports.clone(),
                    queue.clone(),
                    task.id.clone(),
                    task_dir.clone(),
                );
                let written = tokio::task::spawn_blocking(move || {
                    reports.write_test_log(&dir, &q, &tid, &result, &transcript)
                })
                .await;
                if let Ok(Err(e)) = written {
                    tracing::error!(error = %e, "cannot write a test log");
                }
            }
        }
    }
}
