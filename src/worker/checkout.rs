//! The checkout step: the git CLI with argv only. Clone or fetch into the repository's mirror,
//! resolve the branch or commit there, then a shared clone into `queues/<id>/repo` checked out
//! detached at that commit, with submodules when present.
//!
//! git fetches only from `[worker] allowed_repos`: the request's repository is checked again
//! (the list may have changed since the enqueue), every git call may use only the transports the
//! list needs (`GIT_ALLOW_PROTOCOL`: no `file` unless a directory is listed, never `ext`), and
//! submodules are set up one level at a time, each level's URLs checked before they are fetched.

use std::collections::VecDeque;
use std::path::Path;

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
    let allowed = &ctx.deps.config.worker.allowed_repos;
    allowed.check(&request.repo).map_err(StepError::Error)?;
    let mirror = mirrors.path_for(&request.repo);
    // Another queue of the same repository may hold the mirror: an abort still stops us here.
    let _guard = tokio::select! {
        guard = mirrors.lock(&mirror) => guard,
        _ = ctx.cancel.cancelled() => return Err(StepError::Cancelled),
    };
    let cwd = ctx.deps.config.root.clone();
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
    // Its last use, for retention (which removes it only under the lock we hold).
    if let Err(e) = super::mirror::touch(&mirror) {
        tracing::warn!(mirror = %mirror.display(), error = %e, "cannot record the mirror's use");
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
    // From our own mirror: a local clone, whatever the allowed transports.
    git_with(
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
        "file",
        false,
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
        // Relative submodule URLs are relative to the repository, not to our mirror.
        git(
            ctx,
            &cwd,
            argv(&["-C", &dest_s, "remote", "set-url", "origin", &request.repo]),
        )
        .await?;
        submodules(ctx, &cwd, dest).await?;
    }
    ctx.log.line(&format!("checked out {commit}"));
    Ok(commit)
}

/// Submodules nested deeper than this are refused.
const MAX_SUBMODULE_DEPTH: usize = 8;

/// Sets up the submodules of the checkout at `top`, one level at a time: `submodule init`
/// resolves each URL (relative ones against the repository), the URLs are checked against
/// `[worker] allowed_repos`, and only then `submodule update` fetches them.
async fn submodules(ctx: &StepCtx<'_>, cwd: &Path, top: &Path) -> Result<(), StepError> {
    let allowed = &ctx.deps.config.worker.allowed_repos;
    let mut pending = vec![(top.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        if !dir.join(".gitmodules").is_file() {
            continue;
        }
        let rel = match dir.strip_prefix(top) {
            Ok(p) if p.as_os_str().is_empty() => "the repository".to_owned(),
            Ok(p) => format!("submodule {}", p.display()),
            Err(_) => dir.display().to_string(),
        };
        if depth == MAX_SUBMODULE_DEPTH {
            return Err(StepError::Error(format!(
                "{rel}: submodules nested more than {MAX_SUBMODULE_DEPTH} deep are not checked out"
            )));
        }
        let dir_s = dir.to_string_lossy().into_owned();
        git(ctx, cwd, argv(&["-C", &dir_s, "submodule", "init"])).await?;
        let urls = config_values(ctx, cwd, &dir_s, &["--local"], r"^submodule\..*\.url$").await?;
        for url in urls {
            allowed
                .check(&url)
                .map_err(|m| StepError::Error(format!("a submodule of {rel} is refused: {m}")))?;
        }
        git(ctx, cwd, argv(&["-C", &dir_s, "submodule", "update"])).await?;
        let paths = config_values(
            ctx,
            cwd,
            &dir_s,
            &["--file", ".gitmodules"],
            r"^submodule\..*\.path$",
        )
        .await?;
        let base = dir
            .canonicalize()
            .map_err(|e| StepError::Error(format!("cannot resolve {}: {e}", dir.display())))?;
        for path in paths {
            // Only what `submodule update` checked out: a relative path inside `dir`, with no
            // symbolic link on the way, holding its own `.git`.
            let path = Path::new(&path);
            let inside = path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            let sub = dir.join(path);
            if inside
                && sub.canonicalize().is_ok_and(|real| real == base.join(path))
                && sub.join(".git").exists()
            {
                pending.push((sub, depth + 1));
            }
        }
    }
    Ok(())
}

/// The values of the git config keys that match `pattern` (`-z`: any value, whole).
async fn config_values(
    ctx: &StepCtx<'_>,
    cwd: &Path,
    dir: &str,
    source: &[&str],
    pattern: &str,
) -> Result<Vec<String>, StepError> {
    let mut parts = vec!["-C", dir, "config"];
    parts.extend_from_slice(source);
    parts.extend_from_slice(&["-z", "--get-regexp", pattern]);
    let protocols = ctx.deps.config.worker.allowed_repos.git_protocols();
    // Exit status 1: no key matches.
    let out = git_with(ctx, cwd, argv(&parts), &protocols, true).await?;
    // Records are `key\nvalue\0`; the line reader split them at the newlines.
    Ok(out
        .join("\n")
        .split('\0')
        .filter_map(|record| record.split_once('\n').map(|(_, value)| value.to_owned()))
        .collect())
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

/// Runs one git command limited to the transports `[worker] allowed_repos` needs; its output
/// goes to the log. Returns its stdout lines, or an error carrying git's last lines.
async fn git(ctx: &StepCtx<'_>, cwd: &Path, argv: Vec<String>) -> Result<Vec<String>, StepError> {
    let protocols = ctx.deps.config.worker.allowed_repos.git_protocols();
    git_with(ctx, cwd, argv, &protocols, false).await
}

/// `git` with `protocols` as `GIT_ALLOW_PROTOCOL`; with `none_found_ok`, exit status 1 (`git
/// config`: no key matches) is no output rather than an error.
async fn git_with(
    ctx: &StepCtx<'_>,
    cwd: &Path,
    argv: Vec<String>,
    protocols: &str,
    none_found_ok: bool,
) -> Result<Vec<String>, StepError> {
    // A resolved commit id or a config value is an answer, not news: the log gets "checked
    // out …" instead.
    let log_stdout = argv
        .get(3)
        .is_none_or(|cmd| cmd != "rev-parse" && cmd != "config");
    let spec = Spec::new(argv, cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", protocols)
        .env("LC_ALL", "C");
    let mut out = Vec::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let ending = ctx
        .run_logging(
            &spec,
            Some(ctx.deps.config.worker.checkout_timeout),
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
        Ending::Exited(exit) if none_found_ok && exit.code == Some(1) && !exit.stopped => {
            Ok(Vec::new())
        }
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
