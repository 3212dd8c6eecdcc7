//! The configuration as it is now: replaced whole when a valid edit of the file is loaded.
//! Readers take a snapshot (`get`) and keep it for as long as one piece of work lasts (a request,
//! a run), so a reload never changes a setting half-way through.

use std::sync::{Arc, RwLock};

use super::Config;

/// A shared, replaceable configuration. Cheap to clone.
#[derive(Clone)]
pub struct LiveConfig(Arc<RwLock<Arc<Config>>>);

impl LiveConfig {
    pub fn new(config: Config) -> LiveConfig {
        LiveConfig(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The configuration now.
    pub fn get(&self) -> Arc<Config> {
        // A panic cannot leave a half-written `Arc` behind: the guard is safe to reuse.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `config` the configuration from now on.
    pub fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}
