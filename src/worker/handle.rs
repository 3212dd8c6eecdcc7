//! What the API may know of the worker: which queues run (to abort them) and how busy the
//! slots are (to say why a queue waits). Shared by the scheduler and the HTTP handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::{Queue, QueueId};

#[derive(Clone, Default)]
pub struct WorkerHandle {
    // std::sync::Mutex: short critical sections (map updates), never held across an await.
    inner: Arc<Mutex<Occupancy>>,
    /// Signalled when a board is given back.
    board_freed: Arc<Notify>,
}

/// A board taken from `[worker] max_boards`; given back when dropped.
pub struct BoardPermit {
    handle: WorkerHandle,
}

impl Drop for BoardPermit {
    fn drop(&mut self) {
        self.handle.lock().boards -= 1;
        self.handle.board_freed.notify_waiters();
    }
}

#[derive(Default)]
struct Occupancy {
    /// Cancellation of each running queue; an abort that arrives before the run registered
    /// leaves a cancelled token that the run picks up.
    tokens: HashMap<QueueId, CancellationToken>,
    running: HashMap<QueueId, String>,
    /// Queues a user (or a newer delivery) asked to abort, with the error they end with: their
    /// run ends `aborted`, whatever else cancels it too.
    aborted: HashMap<QueueId, String>,
    /// Boards running now, in every queue.
    boards: usize,
    /// What a running queue waits for before its build or boards can start (its executor has
    /// not granted it resources yet), in words.
    notes: HashMap<QueueId, String>,
}

impl WorkerHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Occupancy> {
        self.inner.lock().expect("occupancy lock")
    }

    /// Takes a board once fewer than `max` run (`None`: at once). Cancel-safe: dropping the
    /// future takes nothing.
    pub async fn board(&self, max: Option<usize>) -> BoardPermit {
        loop {
            // Registered before the count is looked at: a board given back in between wakes it.
            let freed = self.board_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut o = self.lock();
                if max.is_none_or(|max| o.boards < max) {
                    o.boards += 1;
                    return BoardPermit {
                        handle: self.clone(),
                    };
                }
            }
            freed.await;
        }
    }

    /// Boards running now, in every queue.
    pub fn boards(&self) -> usize {
        self.lock().boards
    }

    /// Registers a claimed queue; returns its token (already cancelled if an abort came first).
    pub fn start(
        &self,
        id: &QueueId,
        environment: &str,
        parent: &CancellationToken,
    ) -> CancellationToken {
        let mut o = self.lock();
        o.running.insert(id.clone(), environment.to_owned());
        let token = parent.child_token();
        if o.tokens.get(id).is_some_and(|t| t.is_cancelled()) {
            token.cancel();
        }
        o.tokens.insert(id.clone(), token.clone());
        token
    }

    /// Says what a running queue waits for (`None`: nothing any more).
    pub fn note(&self, id: &QueueId, note: Option<String>) {
        let mut o = self.lock();
        match note {
            Some(note) if o.running.contains_key(id) => o.notes.insert(id.clone(), note),
            _ => o.notes.remove(id),
        };
    }

    /// What a running queue waits for, if anything.
    pub fn noted(&self, id: &QueueId) -> Option<String> {
        self.lock().notes.get(id).cloned()
    }

    /// Unregisters a finished run.
    pub fn finish(&self, id: &QueueId) {
        let mut o = self.lock();
        o.notes.remove(id);
        o.running.remove(id);
        o.tokens.remove(id);
        o.aborted.remove(id);
    }

    /// Why this run was aborted, if a user (or a newer delivery) asked.
    pub fn abort_reason(&self, id: &QueueId) -> Option<String> {
        self.inner
            .lock()
            .expect("occupancy lock")
            .aborted
            .get(id)
            .cloned()
    }

    /// Asks a running queue to stop; it ends `aborted` with `reason` as its error (the first
    /// reason given, if asked twice).
    pub fn abort(&self, id: &QueueId, reason: &str) {
        let mut o = self.lock();
        o.aborted
            .entry(id.clone())
            .or_insert_with(|| reason.to_owned());
        o.tokens.entry(id.clone()).or_default().cancel();
    }

    /// The queues running now.
    pub fn running(&self) -> Vec<QueueId> {
        let o = self.lock();
        o.running.keys().cloned().collect()
    }

    /// Forgets an abort request that no run picked up (the queue finished meanwhile).
    pub fn forget(&self, id: &QueueId) {
        let mut o = self.lock();
        if !o.running.contains_key(id) {
            o.tokens.remove(id);
            o.aborted.remove(id);
        }
    }

    pub fn busy(&self) -> usize {
        self.lock().running.len()
    }

    pub fn busy_in(&self, environment: &str) -> usize {
        let o = self.lock();
        o.running.values().filter(|e| *e == environment).count()
    }

    /// Why a waiting queue has not started, in words for the dashboard and the API.
    pub fn waiting_reason(&self, queue: &Queue, config: &Config) -> String {
        let slots = config.worker.slots;
        if slots == 0 {
            return "worker paused ([worker] slots = 0)".into();
        }
        let busy = self.busy();
        if busy >= slots {
            return format!("waiting for a free slot ({busy}/{slots} busy)");
        }
        if let Some(why) = super::space::too_little(config) {
            return why;
        }
        let env = &queue.request.environment;
        if let Some(max) = config.environment(env).and_then(|e| e.max_parallel) {
            let n = self.busy_in(env);
            if n >= max {
                return format!("environment {env} busy ({n}/{max})");
            }
        }
        "starting".into()
    }
}
