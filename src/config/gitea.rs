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
    /// Commit statuses go to this Gitea (no trailing `/`) for queues of its repositories;
    /// `None` (no url or no token): no statuses.
    pub statuses: Option<StatusConfig>,
}

/// Where commit statuses go.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// The Gitea base URL, e.g. `https://gitea.example.org`.
    pub url: String,
    pub token: Secret,
    /// This server's address as users reach it, for the status's link to the queue page.
    pub dashboard_url: Option<String>,
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
    pub url: Option<String>,
    pub token: Option<String>,
    pub dashboard_url: Option<String>,
}

impl GiteaLayer {
    pub fn apply(&mut self, other: GiteaLayer) {
        take!(
            self,
            other,
            secret,
            environment,
            scenarios,
            branches,
            priority,
            url,
            token,
            dashboard_url
        );
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
        for s in &scenarios {
            crate::model::check_scenario_path(s)
                .map_err(|m| invalid(origin, format!("gitea.scenarios: {s:?}: {m}")))?;
        }
        let branches = self.branches.unwrap_or_default();
        if branches.iter().any(String::is_empty) {
            return Err(invalid(
                origin,
                "gitea.branches: a branch name must not be empty",
            ));
        }
        let http_url = |key: &str, v: Option<String>| -> Result<Option<String>, ConfigError> {
            let v = v.unwrap_or_default();
            let v = v.trim().trim_end_matches('/');
            if v.is_empty() {
                return Ok(None);
            }
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(invalid(
                    origin,
                    format!("gitea.{key}: {v:?}: use an http:// or https:// URL"),
                ));
            }
            Ok(Some(v.to_owned()))
        };
        let url = http_url("url", self.url)?;
        let dashboard_url = http_url("dashboard_url", self.dashboard_url)?;
        let token = self
            .token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(Secret);
        if let Some(t) = &token
            && !t.0.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(invalid(
                origin,
                "gitea.token: an access token is printable ASCII without spaces",
            ));
        }
        let statuses = match (url, token) {
            (Some(url), Some(token)) => Some(StatusConfig {
                url,
                token,
                dashboard_url,
            }),
            (Some(_), None) => {
                return Err(invalid(
                    origin,
                    "gitea.token: commit statuses need an access token (TESTARENA_GITEA_TOKEN) with write access to the repositories, or leave gitea.url empty",
                ));
            }
            (None, _) => None,
        };
        Ok(GiteaConfig {
            statuses,
            secret: self.secret.filter(|s| !s.is_empty()).map(Secret),
            environment,
            scenarios,
            branches,
            priority: self.priority.unwrap_or(0),
        })
    }
}
