//! What the API may know of the worker: which queues run (to abort them) and how busy the
//! slots are (to say why a queue waits). Shared by the scheduler and the HTTP handlers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::model::{Queue, QueueId};

#[derive(Clone, Default)]
pub struct WorkerHandle {
    // std::sync::Mutex: short critical sections (map updates), never held across an await.
    inner: Arc<Mutex<Occupancy>>,
}

#[derive(Default)]
struct Occupancy {
    /// Cancellation of each running queue; an abort that arrives before the run registered
    /// leaves a cancelled token that the run picks up.
    tokens: HashMap<QueueId, CancellationToken>,
    running: HashMap<QueueId, String>,
    /// Queues a user asked to abort: their run ends `aborted`, whatever else cancels it too.
    aborted: std::collections::HashSet<QueueId>,
}

impl WorkerHandle {
    /// Registers a claimed queue; returns its token (already cancelled if an abort came first).
    pub fn start(
        &self,
        id: &QueueId,
        environment: &str,
        parent: &CancellationToken,
    ) -> CancellationToken {
        let mut o = self.inner.lock().expect("occupancy lock");
        o.running.insert(id.clone(), environment.to_owned());
        let token = parent.child_token();
        if o.tokens.get(id).is_some_and(|t| t.is_cancelled()) {
            token.cancel();
        }
        o.tokens.insert(id.clone(), token.clone());
        token
    }

    /// Unregisters a finished run.
    pub fn finish(&self, id: &QueueId) {
        let mut o = self.inner.lock().expect("occupancy lock");
        o.running.remove(id);
        o.tokens.remove(id);
        o.aborted.remove(id);
    }

    /// Whether a user asked to abort this run.
    pub fn was_aborted(&self, id: &QueueId) -> bool {
        self.inner
            .lock()
            .expect("occupancy lock")
            .aborted
            .contains(id)
    }

    /// Asks a running queue to stop.
    pub fn abort(&self, id: &QueueId) {
        let mut o = self.inner.lock().expect("occupancy lock");
        o.aborted.insert(id.clone());
        o.tokens.entry(id.clone()).or_default().cancel();
    }

    /// Forgets an abort request that no run picked up (the queue finished meanwhile).
    pub fn forget(&self, id: &QueueId) {
        let mut o = self.inner.lock().expect("occupancy lock");
        if !o.running.contains_key(id) {
            o.tokens.remove(id);
            o.aborted.remove(id);
        }
    }

    /// The queues running now.
    pub fn running(&self) -> Vec<QueueId> {
        let o = self.inner.lock().expect("occupancy lock");
        o.running.keys().cloned().collect()
    }

    pub fn busy(&self) -> usize {
        self.inner.lock().expect("occupancy lock").running.len()
    }

    pub fn busy_in(&self, environment: &str) -> usize {
        let o = self.inner.lock().expect("occupancy lock");
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
