//! One queue's run: checkout → build → for each scenario (fresh board, scenario runner) →
//! reports → outcome. Every step writes marker lines to the queue log.
//!
//! Outcome: `passed` when every task passed, `failed` when any did not, `error` when checkout
//! or build failed, `timed_out` when `[worker] queue_timeout` hit, `aborted` on abort. On server
//! shutdown the queue goes back to `waiting` for the next start.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::Deps;
use super::allocate;
use super::checkout;
use super::mirror::Mirrors;
use super::site::Site;
use super::step::{StepCtx, StepError, command_env, repo_command};
use super::tasks;
use crate::config::{Environment, ExecutorKind};
use crate::exec::{Ending, Spec};
use crate::layout::{Layout, QueueDir};
use crate::logs::{LogWriter, marker};
use crate::model::{Queue, Status};

/// Runs `queue` (already claimed, `running`) to its end and records the outcome.
pub async fn run_queue(deps: &Deps, mirrors: &Mirrors, queue: Queue, cancel: CancellationToken) {
    let id = queue.id.clone();
    let log = match deps.logs.writer(&id) {
        Ok(log) => log,
        Err(e) => {
            finish(
                deps,
                &queue,
                Status::Error,
                Some(format!("cannot open the queue log: {e}")),
            )
            .await;
            return;
        }
    };
    log.line(&marker(
        "queue",
        id.as_str(),
        &format!(
            "started (attempt {}, environment {})",
            queue.attempt, queue.request.environment
        ),
    ));

    // The queue timeout cancels the run like an abort does; the flag tells them apart.
    let timed_out = Arc::new(AtomicBool::new(false));
    let run_token = cancel.child_token();
    let timer = {
        let (flag, token) = (timed_out.clone(), run_token.clone());
        let limit = deps.config.worker.queue_timeout;
        async move {
            tokio::time::sleep(limit).await;
            flag.store(true, Ordering::SeqCst);
            token.cancel();
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        r = steps(deps, mirrors, &queue, &log, &run_token) => r,
        _ = timer => unreachable!("the timer never completes"),
    };

    let (mut status, mut error) = match result {
        Ok(status) => (status, None),
        Err(StepError::Error(message)) => (Status::Error, Some(message)),
        // A user's abort wins over a timeout or a shutdown that came during its grace period.
        Err(StepError::Cancelled) if let Some(why) = deps.runs.abort_reason(&id) => {
            (Status::Aborted, Some(why))
        }
        Err(StepError::Cancelled) if timed_out.load(Ordering::SeqCst) => (
            Status::TimedOut,
            Some(format!(
                "queue timed out after {} ([worker] queue_timeout)",
                crate::model::format_duration(deps.config.worker.queue_timeout)
            )),
        ),
        Err(StepError::Cancelled) if deps.shutdown.is_cancelled() => (Status::Waiting, None),
        Err(StepError::Cancelled) => (Status::Aborted, Some("aborted".to_owned())),
    };
    let outcome = match &error {
        Some(e) => format!("{status}: {e}"),
        None => status.to_string(),
    };
    log.line(&marker("queue", id.as_str(), &outcome));
    if let Err(e) = log.close().await {
        tracing::error!(queue = %id, error = %e, "cannot write the queue log");
        // A queue whose log is cut never passes: what it shows is not all that happened.
        if status != Status::Waiting {
            status = Status::Error;
            let path = Layout::new(&deps.config.root).queue(&id).log();
            error = Some(format!("cannot write {}: {e}", path.display()));
        }
    }
    if status != Status::Waiting {
        // Before the end is recorded: once the final status shows, the checkout is gone.
        let dir = Layout::new(&deps.config.root).queue(&id);
        super::retention::remove_checkout(deps, &dir, &id).await;
    }
    if status == Status::Waiting {
        if let Err(e) = deps
            .store
            .requeue(&id, "server stopped during the run; re-queued")
            .await
        {
            tracing::error!(queue = %id, error = %e, "cannot re-queue on shutdown");
        }
        return;
    }
    finish(deps, &queue, status, error).await;
}

/// Ends the queue: reports first, then the final status (see `ending`).
async fn finish(deps: &Deps, queue: &Queue, status: Status, error: Option<String>) {
    if let Err(e) = super::ending::end_queue(deps, &queue.id, status, error).await {
        tracing::error!(queue = %queue.id, error = %e, "cannot record the outcome");
    }
}

async fn steps(
    deps: &Deps,
    mirrors: &Mirrors,
    queue: &Queue,
    log: &LogWriter,
    cancel: &CancellationToken,
) -> Result<Status, StepError> {
    let local = Site::Local;
    let ctx = StepCtx {
        deps,
        log,
        cancel,
        site: &local,
    };
    let env = deps
        .config
        .environment(&queue.request.environment)
        .ok_or_else(|| {
            StepError::Error(format!(
                "environment {:?} is no longer configured",
                queue.request.environment
            ))
        })?
        .clone();
    // Before the checkout: without its sandbox no repository code may run.
    if let Some(reason) = deps.sandbox.unavailable() {
        return Err(StepError::Error(reason.to_owned()));
    }
    let dir = Layout::new(&deps.config.root).queue(&queue.id);
    let repo_dir = dir.checkout();

    let commit = step(
        &ctx,
        "checkout",
        checkout::checkout(&ctx, mirrors, &queue.request, &repo_dir),
    )
    .await?;
    // What a re-run runs: the branch may have moved on by then.
    if let Err(e) = deps.store.set_resolved_commit(&queue.id, commit).await {
        tracing::warn!(queue = %queue.id, error = %e, "cannot record the resolved commit");
    }
    // Where builds and boards run: a Slurm allocation is asked for here, after the checkout;
    // waiting for it is not running (no build or boot timeout runs meanwhile).
    let site = match &env.executor {
        ExecutorKind::Local => Site::Local,
        ExecutorKind::Slurm(slurm) => allocate::allocate(&ctx, queue, slurm).await?,
    };
    let ctx = StepCtx { site: &site, ..ctx };
    let result = build_and_test(&ctx, queue, &env, &repo_dir, &dir).await;
    // Given back whatever ended the run.
    site.release(ctx.log).await;
    result
}

async fn build_and_test(
    ctx: &StepCtx<'_>,
    queue: &Queue,
    env: &Environment,
    repo_dir: &PathBuf,
    dir: &QueueDir,
) -> Result<Status, StepError> {
    step(ctx, "build", build(ctx, queue, env, repo_dir)).await?;

    let task_list = tasks::prepare(ctx.deps, queue, repo_dir, ctx.log).await?;
    let (all_passed, errored) = run_tasks(ctx, queue, env, repo_dir, dir, &task_list).await?;
    // A task that could not run its tests (an invalid scenario file, a board that did not
    // boot) is the infrastructure's failure, not a test's: the queue ends `error`.
    if !errored.is_empty() {
        return Err(StepError::Error(format!(
            "could not run every task: {} ended error",
            errored.join(", ")
        )));
    }
    Ok(if all_passed {
        Status::Passed
    } else {
        Status::Failed
    })
}

/// Runs the tasks, up to the environment's `boards` at once (in scenario order as boards come
/// free). Returns whether every task passed and the tasks that ended `error`. When one task
/// fails the run (its result cannot be recorded), the others are cancelled and awaited: no
/// board outlives the run.
async fn run_tasks(
    ctx: &StepCtx<'_>,
    queue: &Queue,
    env: &Environment,
    repo_dir: &Path,
    dir: &QueueDir,
    task_list: &[tasks::Prepared],
) -> Result<(bool, Vec<String>), StepError> {
    let group = ctx.cancel.child_token();
    let gctx = StepCtx {
        cancel: &group,
        ..*ctx
    };
    let mut next = task_list.iter();
    let mut running = FuturesUnordered::new();
    let (mut all_passed, mut errored, mut failure) = (true, Vec::new(), None);
    loop {
        while running.len() < env.boards.max(1) && failure.is_none() && !group.is_cancelled() {
            let Some(task) = next.next() else { break };
            let id = task.task.id.to_string();
            running.push(async {
                let status = tasks::run_task(&gctx, queue, env, repo_dir, dir, task).await;
                (id, status)
            });
        }
        match running.next().await {
            None => break,
            Some((id, Ok(status))) => {
                all_passed &= status == Status::Passed;
                if status == Status::Error {
                    errored.push(id);
                }
            }
            Some((_, Err(e))) => {
                all_passed = false;
                if failure.is_none() {
                    failure = Some(e);
                    group.cancel();
                }
            }
        }
    }
    if ctx.cancel.is_cancelled() {
        return Err(StepError::Cancelled);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok((all_passed, errored)),
    }
}

/// Wraps a step in its marker lines and syncs the log when it ends.
async fn step<T>(
    ctx: &StepCtx<'_>,
    name: &str,
    work: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    let started = Instant::now();
    ctx.log.line(&marker("step", name, "started"));
    let result = work.await;
    let took = started.elapsed().as_millis();
    let line = match &result {
        Ok(_) => marker("step", name, &format!("passed ({took} ms)")),
        Err(StepError::Error(e)) => marker("step", name, &format!("error: {e}")),
        Err(StepError::Cancelled) => marker("step", name, "cancelled"),
    };
    ctx.log.line(&line);
    if let Err(e) = ctx.log.sync().await {
        tracing::warn!(error = %e, "cannot sync the queue log");
    }
    result
}

async fn build(
    ctx: &StepCtx<'_>,
    queue: &Queue,
    env: &Environment,
    repo_dir: &PathBuf,
) -> Result<(), StepError> {
    let mut spec = Spec::new(env.build.clone(), repo_dir);
    spec.env = command_env(queue, env, repo_dir);
    let spec = repo_command(&*ctx.deps.sandbox, spec, repo_dir, env.build_network)
        .map_err(|e| StepError::Error(e.to_string()))?;
    let spec = ctx.site.place(spec, "build", Some(env.build_timeout));
    if let Some(place) = ctx.site.step_name("build") {
        ctx.log.line(&format!("the build {place}"));
    }
    // A build that ends because its executor failed (Slurm did not answer, ended the job)
    // says so instead of "build failed".
    let mut executor_failure = None;
    let ending = ctx
        .run(&spec, Some(env.build_timeout), |line| {
            if let Some(why) = ctx.site.failure(&line) {
                executor_failure.get_or_insert(why);
            }
        })
        .await?;
    match ending {
        Ending::Exited(exit) if exit.success() => Ok(()),
        Ending::Exited(_) if let Some(why) = executor_failure => Err(StepError::Error(why)),
        Ending::Exited(exit) => Err(StepError::Error(format!("build failed ({exit})"))),
        Ending::TimedOut(_) => Err(StepError::Error(format!(
            "build timed out after {} (build_timeout of environment {})",
            crate::model::format_duration(env.build_timeout),
            env.name
        ))),
        other => Err(StepError::from_ending(&other, "build")),
    }
}
