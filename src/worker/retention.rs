//! Retention: finished queues beyond `[retention]`'s limits are removed, oldest first, record
//! and directory together, and so are git mirrors no queue used for `max_age`; with
//! `checkouts = "delete"` a queue's checkout goes when the queue ends.
//!
//! A background task runs a pass at start-up, every minute, after queues end and after a
//! reload; each pass reads the configuration as it is then. Requests never wait for it: the
//! store reads and the batch delete are ordinary store operations, and every file operation
//! runs on a blocking thread.
//!
//! Order of a queue's removal: its directory is moved whole into the trash (one rename), then
//! its record is deleted (one commit for the whole batch), then the trash is emptied. So a
//! record that can be read has its whole directory or none of it, never a part, and the id is
//! not free for a new queue until its old files are out of the way. A crash in between leaves
//! a record without files, which the next pass removes (it is still beyond the limits), and
//! trash, which the next pass empties.
//!
//! A mirror is removed under its lock (the one every checkout takes), after its age is read
//! again under that lock, and never while a waiting or running queue names its repository.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::handle::WorkerHandle;
use super::mirror::{Mirrors, mirror_of};
use super::trash;
use crate::config::LiveConfig;
use crate::layout::{Layout, QueueDir};
use crate::metrics::{Metrics, Removed};
use crate::model::{Change, Millis, Queue, QueueId, now_millis};
use crate::store::{Feed, Store};

/// How often a pass runs when nothing else asks for one.
pub const PERIOD: Duration = Duration::from_secs(60);
/// The most queues one store read and one commit take; a pass takes batches until done.
/// Small commits let other writes in between: removing 10,000 queues in commits of 1,000 held
/// an enqueue up to about 4 s, in commits of 100 about 0.1 s (a loaded 2-core machine).
const BATCH: usize = 100;

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub queues: u64,
    pub mirrors: u64,
    /// Disk space freed (the trash emptied).
    pub freed_bytes: u64,
}

/// The retention task and its passes. Cheap to clone.
#[derive(Clone)]
pub struct Retention {
    live: LiveConfig,
    store: Store,
    mirrors: Mirrors,
    runs: WorkerHandle,
    metrics: Metrics,
    /// One pass at a time (the task's, or one called directly).
    one: Arc<tokio::sync::Mutex<()>>,
}

impl Retention {
    pub fn new(
        live: LiveConfig,
        store: Store,
        mirrors: Mirrors,
        runs: WorkerHandle,
        metrics: Metrics,
    ) -> Retention {
        Retention {
            live,
            store,
            mirrors,
            runs,
            metrics,
            one: Arc::default(),
        }
    }

    /// Passes until `shutdown`: at once, every [`PERIOD`], after a queue ends, after a reload.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.store.follow();
        let mut reloaded = self.live.subscribe();
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                Ok(()) = reloaded.changed() => {}
                feed = changes.next() => match feed {
                    None => return,
                    Some(Feed::Change(c)) if !ends_a_queue(&c) => continue,
                    Some(_) => {}
                },
            }
            // The changes already there are covered by this pass.
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, changes.next()).await {}
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = self.pass(now_millis()) => {}
            }
        }
    }

    /// One pass as if the time were `now` (tests pass a later time instead of waiting).
    pub async fn pass(&self, now: Millis) -> Pass {
        let _one = self.one.lock().await;
        let config = self.live.get();
        let limits = &config.retention;
        let layout = Layout::new(&config.root);
        let mut pass = Pass::default();
        loop {
            let beyond = self
                .store
                .beyond_limits(limits.max_queues, limits.max_age, now, BATCH)
                .await;
            let beyond = match beyond {
                Ok(beyond) if beyond.is_empty() => break,
                Ok(beyond) => beyond,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: cannot read the queues; trying at the next pass");
                    break;
                }
            };
            let full = beyond.len() == BATCH;
            let removed = self.remove_queues(&layout, beyond).await;
            pass.queues += removed;
            if !full || removed == 0 {
                break;
            }
        }
        if let Some(max_age) = limits.max_age {
            pass.mirrors = self.remove_unused_mirrors(&layout, now, max_age).await;
        }
        let trash_dir = layout.trash();
        pass.freed_bytes = blocking(move || trash::empty(&trash_dir).bytes)
            .await
            .unwrap_or(0);
        self.metrics.removed(Removed::Queue, pass.queues);
        self.metrics.removed(Removed::Mirror, pass.mirrors);
        self.metrics.freed(pass.freed_bytes);
        if pass == Pass::default() {
            tracing::debug!("retention: nothing to remove");
        } else {
            tracing::info!(
                queues = pass.queues,
                mirrors = pass.mirrors,
                freed_bytes = pass.freed_bytes,
                "retention: removed finished queues beyond the limits and unused mirrors"
            );
        }
        pass
    }

    /// Moves the directories of `queues` to the trash, then deletes the records of those whose
    /// directory moved (or had none). Returns how many records were deleted.
    async fn remove_queues(&self, layout: &Layout, queues: Vec<Queue>) -> u64 {
        let layout = layout.clone();
        let moved = blocking(move || {
            let trash_dir = layout.trash();
            let mut moved = Vec::new();
            for q in queues {
                let dir = layout.queue(&q.id);
                match trash::move_to_trash(dir.path(), &trash_dir, &format!("queue-{}", q.seq)) {
                    Ok(_) => moved.push(q.id),
                    Err(e) => {
                        tracing::warn!(queue = %q.id, error = %e, "retention: cannot move the queue's directory away; the queue stays");
                    }
                }
            }
            moved
        })
        .await
        .unwrap_or_default();
        if moved.is_empty() {
            return 0;
        }
        match self.store.delete_finished(moved).await {
            Ok(removed) => removed.len() as u64,
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot delete queues; trying at the next pass");
                0
            }
        }
    }

    /// Moves to the trash the mirrors (and abandoned partial clones) not used since
    /// `now - max_age`, except those of waiting and running queues; returns how many mirrors.
    async fn remove_unused_mirrors(&self, layout: &Layout, now: Millis, max_age: Duration) -> u64 {
        let cutoff =
            now.saturating_sub(Millis::try_from(max_age.as_millis()).unwrap_or(Millis::MAX));
        let dir = self.mirrors.dir().to_owned();
        let stale = blocking(move || unused_since(&dir, cutoff))
            .await
            .unwrap_or_default();
        if stale.is_empty() {
            return 0;
        }
        let Some(in_use) = self.mirrors_in_use().await else {
            return 0;
        };
        let mut removed = 0;
        for entry in stale {
            let Some(mirror) = mirror_of(&entry) else {
                continue;
            };
            if in_use.contains(&mirror) {
                continue;
            }
            // A checkout holds it now: it is in use.
            let Some(guard) = self.mirrors.try_lock(&mirror) else {
                continue;
            };
            let trash_dir = layout.trash();
            let moved = blocking(move || {
                // Read again under the lock: a checkout may have used it since the listing.
                if last_use(&entry).is_none_or(|t| t >= cutoff) {
                    return false;
                }
                let name = entry.file_name().unwrap_or_default().to_string_lossy();
                let name = format!("mirror-{name}-{now}");
                match trash::move_to_trash(&entry, &trash_dir, &name) {
                    Ok(moved) => moved.is_some() && entry == mirror,
                    Err(e) => {
                        tracing::warn!(mirror = %entry.display(), error = %e, "retention: cannot move the mirror away");
                        false
                    }
                }
            })
            .await
            .unwrap_or(false);
            drop(guard);
            removed += u64::from(moved);
        }
        removed
    }

    /// The mirrors of the repositories of waiting and running queues; `None` when the store
    /// cannot say (then no mirror is removed).
    async fn mirrors_in_use(&self) -> Option<HashSet<PathBuf>> {
        let mut repos: Vec<String> = match self.store.waiting().await {
            Ok(waiting) => waiting.into_iter().map(|q| q.request.repo).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot read the waiting queues; no mirror removed");
                return None;
            }
        };
        for id in self.runs.running() {
            match self.store.get(&id).await {
                Ok(Some(view)) => repos.push(view.queue.request.repo),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "retention: cannot read a running queue; no mirror removed");
                    return None;
                }
            }
        }
        Some(repos.iter().map(|r| self.mirrors.path_for(r)).collect())
    }
}

/// Whether `c` is a queue reaching its final status.
fn ends_a_queue(c: &Change) -> bool {
    c.task.is_none() && c.to.is_some_and(|s| s.is_terminal())
}

/// The entries of the mirror directory last used before `cutoff`.
fn unused_since(dir: &Path, cutoff: Millis) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| mirror_of(p).is_some() && last_use(p).is_some_and(|t| t < cutoff))
        .collect()
}

/// When the mirror at `path` was last used (its modification time).
fn last_use(path: &Path) -> Option<Millis> {
    let modified = std::fs::symlink_metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(UNIX_EPOCH).ok()?;
    Millis::try_from(since.as_millis()).ok()
}

/// With `checkouts = "delete"`: removes the checkout (and the build in it) of a queue that is
/// ending, on a blocking thread; its log and reports stay. Counted in the metrics.
pub(super) async fn remove_checkout(deps: &super::Deps, dir: &QueueDir, id: &QueueId) {
    if deps.config.retention.checkouts != crate::config::Checkouts::Delete {
        return;
    }
    let checkout = dir.checkout();
    let removed = blocking(move || {
        if std::fs::symlink_metadata(&checkout).is_err() {
            return Ok(None);
        }
        trash::remove_tree(&checkout).map(Some)
    });
    match removed.await {
        Some(Ok(None)) | None => {}
        Some(Ok(Some(freed))) => {
            deps.metrics.removed(Removed::Checkout, 1);
            deps.metrics.freed(freed.bytes);
            tracing::debug!(queue = %id, freed_bytes = freed.bytes, "checkout removed");
        }
        Some(Err(e)) => {
            tracing::warn!(queue = %id, error = %e, "cannot remove the checkout");
        }
    }
}

/// Runs `f` on a blocking thread; `None` (logged) if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "retention: a file operation failed");
            None
        }
    }
}
