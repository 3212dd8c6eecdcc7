//! The checkout step: the git CLI with argv only. Clone or fetch into the repository's mirror,
//! resolve the branch or commit there, then a shared clone into `queues/<id>/repo` checked out
//! detached at that commit, with submodules when present.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::mirror::Mirrors;
use super::step::{StepCtx, StepError};
use crate::exec::{Ending, Spec, Stream};
use crate::model::QueueRequest;

/// The argv of each git call: pure, so the absence of shell strings is testable.
pub fn clone_mirror_argv(repo: &str, dest: &Path) -> Vec<String> {
    argv(&[
        "clone",
        "--mirror",
        "--quiet",
        "--",
        repo,
        &dest.to_string_lossy(),
    ])
}

pub fn fetch_argv(mirror: &Path) -> Vec<String> {
    argv(&[
        "-C",
        &mirror.to_string_lossy(),
        "fetch",
        "--prune",
        "--quiet",
        "origin",
    ])
}

pub fn resolve_argv(mirror: &Path, request: &QueueRequest) -> Vec<String> {
    let rev = match (&request.commit, &request.branch) {
        (Some(commit), _) => format!("{commit}^{{commit}}"),
        (None, Some(branch)) => format!("refs/heads/{branch}^{{commit}}"),
        (None, None) => "HEAD^{commit}".to_owned(),
    };
    argv(&[
        "-C",
        &mirror.to_string_lossy(),
        "rev-parse",
        "--verify",
        "--end-of-options",
        &rev,
    ])
}

fn argv(parts: &[&str]) -> Vec<String> {
    std::iter::once("git")
        .chain(parts.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// Checks out the request into `dest`; returns the commit checked out.
pub async fn checkout(
    ctx: &StepCtx<'_>,
    mirrors: &Mirrors,
    request: &QueueRequest,
    dest: &Path,
) -> Result<String, StepError> {
    let mirror = mirrors.path_for(&request.repo);
    // Another queue of the same repository may hold the mirror: an abort still stops us here.
    let _guard = tokio::select! {
        guard = mirrors.lock(&mirror) => guard,
        _ = ctx.cancel.cancelled() => return Err(StepError::Cancelled),
    };
    let cwd = ctx.state.config.root.clone();
    if mirror.join("HEAD").is_file() {
        ctx.log
            .line(&format!("fetching {} into the mirror cache", request.repo));
        git(ctx, &cwd, fetch_argv(&mirror)).await?;
    } else {
        ctx.log
            .line(&format!("cloning {} into the mirror cache", request.repo));
        let partial = mirror.with_extension("partial");
        remove_dir(&partial).await?;
        if let Some(parent) = mirror.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| StepError::Error(format!("cannot create the mirror cache: {e}")))?;
        }
        git(ctx, &cwd, clone_mirror_argv(&request.repo, &partial)).await?;
        // Only a complete clone becomes the mirror.
        tokio::fs::rename(&partial, &mirror)
            .await
            .map_err(|e| StepError::Error(format!("cannot move the mirror in place: {e}")))?;
    }
    if let Some(branch) = &request.branch {
        // Both given: the branch must exist too.
        if request.commit.is_some() {
            let only_branch = QueueRequest {
                commit: None,
                ..request.clone()
            };
            git(ctx, &cwd, resolve_argv(&mirror, &only_branch))
                .await
                .map_err(|e| {
                    e.or_error(format!("branch {branch:?} not found in {}", request.repo))
                })?;
        }
    }
    let commit = git(ctx, &cwd, resolve_argv(&mirror, request))
        .await
        .map_err(|e| e.or_error(not_found_message(request)))?
        .pop()
        .unwrap_or_default();
    remove_dir(dest).await?;
    let dest_s = dest.to_string_lossy().into_owned();
    let mirror_s = mirror.to_string_lossy().into_owned();
    git(
        ctx,
        &cwd,
        argv(&[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            "--",
            &mirror_s,
            &dest_s,
        ]),
    )
    .await?;
    git(
        ctx,
        &cwd,
        argv(&["-C", &dest_s, "checkout", "--quiet", "--detach", &commit]),
    )
    .await?;
    if dest.join(".gitmodules").is_file() {
        ctx.log.line("updating submodules");
        git(
            ctx,
            &cwd,
            argv(&[
                "-C",
                &dest_s,
                "-c",
                "protocol.file.allow=always",
                "submodule",
                "update",
                "--init",
                "--recursive",
            ]),
        )
        .await?;
    }
    ctx.log.line(&format!("checked out {commit}"));
    Ok(commit)
}

fn not_found_message(r: &QueueRequest) -> String {
    match (&r.commit, &r.branch) {
        (Some(c), _) => format!("commit {c:?} not found in {}", r.repo),
        (None, Some(b)) => format!("branch {b:?} not found in {}", r.repo),
        (None, None) => format!("{} has no default branch to check out", r.repo),
    }
}

async fn remove_dir(path: &Path) -> Result<(), StepError> {
    match tokio::fs::remove_dir_all(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StepError::Error(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Runs one git command; its output goes to the log. Returns its stdout lines, or an error
/// carrying git's last lines.
async fn git(
    ctx: &StepCtx<'_>,
    cwd: &PathBuf,
    argv: Vec<String>,
) -> Result<Vec<String>, StepError> {
    // A resolved commit id is an answer, not news: the log gets "checked out …" instead.
    let log_stdout = argv.get(3).is_none_or(|cmd| cmd != "rev-parse");
    let spec = Spec::new(argv, cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    let mut out = Vec::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let ending = ctx
        .run_logging(
            &spec,
            Some(ctx.state.config.worker.checkout_timeout),
            |l| log_stdout || l.stream == Stream::Stderr,
            |line| {
                if tail.len() == 8 {
                    tail.pop_front();
                }
                tail.push_back(line.text.clone());
                if line.stream == Stream::Stdout {
                    out.push(line.text);
                }
            },
        )
        .await?;
    match ending {
        Ending::Exited(exit) if exit.success() => Ok(out),
        Ending::Exited(exit) => {
            let detail: Vec<String> = tail.into_iter().collect();
            Err(StepError::Error(format!(
                "git {} failed ({exit}): {}",
                spec.argv.get(1).map_or("", String::as_str),
                detail.join(" / ")
            )))
        }
        other => Err(StepError::from_ending(&other, "git")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(branch: Option<&str>, commit: Option<&str>) -> QueueRequest {
        QueueRequest {
            repo: "https://example.org/fw.git".into(),
            branch: branch.map(Into::into),
            commit: commit.map(Into::into),
            environment: "esp32".into(),
            scenarios: vec![],
            priority: 0,
        }
    }

    #[test]
    fn argv_keeps_request_data_in_single_arguments() {
        let a = clone_mirror_argv("https://example.org/a b.git", Path::new("/m/x.git"));
        assert_eq!(
            a,
            [
                "git",
                "clone",
                "--mirror",
                "--quiet",
                "--",
                "https://example.org/a b.git",
                "/m/x.git"
            ]
        );
        let r = resolve_argv(Path::new("/m"), &req(Some("feature/x"), None));
        assert_eq!(r.last().unwrap(), "refs/heads/feature/x^{commit}");
        assert_eq!(r[r.len() - 2], "--end-of-options");
        let r = resolve_argv(Path::new("/m"), &req(Some("main"), Some("abc123")));
        assert_eq!(r.last().unwrap(), "abc123^{commit}");
        let r = resolve_argv(Path::new("/m"), &req(None, None));
        assert_eq!(r.last().unwrap(), "HEAD^{commit}");
    }
}
