//! The scheduler: reacts to the store's change feed (enqueue, abort, delete) and to finished
//! runs; never polls. `try_run_next` is one step — claim one queue if a slot and its
//! environment allow — so tests can drive it directly.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the free space is checked again while queues wait for it.
const SPACE_RECHECK: Duration = Duration::from_secs(5);

use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::task::TaskTracker;

use super::Deps;
use super::mirror::Mirrors;
use super::pipeline;
use crate::config::{Config, LiveConfig};
use crate::model::{QueueId, Status};
use crate::store::{ClaimFilter, StoreError};

#[derive(Clone)]
pub struct Scheduler {
    /// `deps.config` is the configuration at start; each claim reads `config` anew.
    deps: Deps,
    config: LiveConfig,
    tracker: TaskTracker,
    mirrors: Mirrors,
    /// Signalled when a run ends and its slot is free again.
    freed: Arc<Notify>,
    /// The data root had too little free space at the last try: try again after a while
    /// (nothing announces freed space).
    low_space: Arc<AtomicBool>,
}

impl Scheduler {
    pub fn new(deps: Deps, config: LiveConfig, tracker: TaskTracker) -> Scheduler {
        Scheduler {
            mirrors: deps.mirrors.clone(),
            deps,
            config,
            tracker,
            freed: Arc::new(Notify::new()),
            low_space: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Environments whose `max_parallel` is reached.
    fn blocked_environments(&self, config: &Config) -> HashSet<String> {
        config
            .environments
            .values()
            .filter(|e| {
                e.max_parallel
                    .is_some_and(|max| self.deps.runs.busy_in(&e.name) >= max)
            })
            .map(|e| e.name.clone())
            .collect()
    }

    /// Claims and starts one queue if a slot is free. Returns the queue started, if any.
    pub async fn try_run_next(&self) -> Result<Option<QueueId>, StoreError> {
        let config = self.config.get();
        if self.deps.shutdown.is_cancelled() || self.deps.runs.busy() >= config.worker.slots {
            return Ok(None);
        }
        if let Some(why) = super::space::too_little(&config) {
            if !self.low_space.swap(true, Ordering::Relaxed) {
                tracing::warn!(reason = %why, "queues wait");
            }
            return Ok(None);
        }
        self.low_space.store(false, Ordering::Relaxed);
        let filter = ClaimFilter {
            blocked_environments: self.blocked_environments(&config),
        };
        let Some(queue) = self.deps.store.claim_next(filter).await? else {
            return Ok(None);
        };
        self.deps.metrics.claimed(&queue);
        let id = queue.id.clone();
        let cancel =
            self.deps
                .runs
                .start(&queue.id, &queue.request.environment, &self.deps.shutdown);
        // The run keeps the configuration it was claimed under.
        let deps = Deps {
            config,
            ..self.deps.clone()
        };
        let this = self.clone();
        self.tracker.spawn(async move {
            let id = queue.id.clone();
            // The run in a task of its own: should it panic, the slot is still freed and the
            // queue still ends (instead of staying `running`).
            let (run_deps, mirrors) = (deps.clone(), this.mirrors.clone());
            let run = tokio::spawn(async move {
                pipeline::run_queue(&run_deps, &mirrors, queue, cancel).await;
            });
            if let Err(e) = run.await {
                tracing::error!(queue = %id, error = %e, "a run stopped unexpectedly");
                let why =
                    "internal error: the run stopped unexpectedly; the server log has the cause";
                // Its tasks closed and its report written like any other end.
                if let Err(e) =
                    super::ending::end_queue(&deps, &id, Status::Error, Some(why.into()))
                        .await
                {
                    tracing::error!(queue = %id, error = %e, "cannot end a queue whose run stopped");
                }
            }
            this.deps.runs.finish(&id);
            this.freed.notify_one();
        });
        Ok(Some(id))
    }

    /// Starts queues while slots are free.
    async fn fill(&self) {
        loop {
            match self.try_run_next().await {
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(e) => {
                    // Waiting queues must not sit behind free slots until the next change:
                    // try again after a pause.
                    tracing::error!(error = %e, "scheduler: cannot claim a queue; retrying");
                    tokio::select! {
                        _ = self.deps.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// The loop: a thin `select!` over shutdown, the change feed, freed slots and reloads.
    pub async fn run(self) {
        let mut changes = self.deps.store.subscribe();
        let mut reloaded = self.config.subscribe();
        let shutdown = self.deps.shutdown.clone();
        loop {
            self.fill().await;
            // Wait for something that can make a queue claimable: a queue became waiting
            // (enqueue, re-queue) or a run ended and freed its slot. Other changes are ignored.
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.freed.notified() => break,
                    // More slots, an environment's limit raised: queues may be claimable now.
                    Ok(()) = reloaded.changed() => break,
                    // Space may have been freed: nothing tells, so look again now and then.
                    () = tokio::time::sleep(SPACE_RECHECK), if self.low_space.load(Ordering::Relaxed) => break,
                    change = changes.recv() => match change {
                        Ok(c) if c.task.is_none() && c.to == Some(Status::Waiting) => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        }
    }
}
