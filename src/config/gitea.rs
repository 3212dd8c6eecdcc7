//! The `[gitea]` section: what a Gitea webhook delivery turns into.

use std::fmt;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// How webhook deliveries become queues.
#[derive(Debug, Clone)]
pub struct GiteaConfig {
    /// Shared with the webhook; `None` (empty) refuses every delivery.
    pub secret: Option<Secret>,
    pub environment: String,
    /// Empty: every scenario the checkout has.
    pub scenarios: Vec<String>,
    /// Branches whose pushes are queued; empty: every branch.
    pub branches: Vec<String>,
    pub priority: i32,
}

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GiteaLayer {
    pub secret: Option<String>,
    pub environment: Option<String>,
    pub scenarios: Option<Vec<String>>,
    pub branches: Option<Vec<String>>,
    pub priority: Option<i32>,
}

impl GiteaLayer {
    pub fn apply(&mut self, other: GiteaLayer) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(secret, environment, scenarios, branches, priority);
    }

    /// Validates against the configured environments.
    pub fn finish(self, origin: &str, environments: &[&str]) -> Result<GiteaConfig, ConfigError> {
        let environment = self.environment.unwrap_or_default();
        if !environments.contains(&environment.as_str()) {
            return Err(invalid(
                origin,
                format!(
                    "gitea.environment: unknown environment {environment:?}: use one of {}",
                    environments.join(", ")
                ),
            ));
        }
        let scenarios = self.scenarios.unwrap_or_default();
        if let Some(bad) = scenarios
            .iter()
            .find(|s| s.is_empty() || s.starts_with('/') || s.split('/').any(|part| part == ".."))
        {
            return Err(invalid(
                origin,
                format!(
                    "gitea.scenarios: {bad:?}: use paths relative to the repository, without '..'"
                ),
            ));
        }
        let branches = self.branches.unwrap_or_default();
        if branches.iter().any(String::is_empty) {
            return Err(invalid(
                origin,
                "gitea.branches: a branch name must not be empty",
            ));
        }
        Ok(GiteaConfig {
            secret: self.secret.filter(|s| !s.is_empty()).map(Secret),
            environment,
            scenarios,
            branches,
            priority: self.priority.unwrap_or(0),
        })
    }
}
