//! The configuration as it is now: replaced whole when a valid edit of the file is loaded.
//! Readers take a snapshot (`get`) and keep it for as long as one piece of work lasts (a request,
//! a run), so a reload never changes a setting half-way through.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::Config;

/// A shared, replaceable configuration. Cheap to clone.
#[derive(Clone)]
pub struct LiveConfig {
    current: Arc<RwLock<Arc<Config>>>,
    /// How many times it was replaced: for those that act on a change (the scheduler, when
    /// `slots` grow).
    replaced: Arc<watch::Sender<u64>>,
}

impl LiveConfig {
    pub fn new(config: Config) -> LiveConfig {
        LiveConfig {
            current: Arc::new(RwLock::new(Arc::new(config))),
            replaced: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<Config> {
        // A panic cannot leave a half-written `Arc` behind: the guard is safe to reuse.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `config` the configuration from now on.
    pub fn set(&self, config: Config) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.replaced.send_modify(|n| *n += 1);
    }

    /// Changes when the configuration is replaced.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.replaced.subscribe()
    }
}
