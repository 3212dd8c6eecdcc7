//! The `[gitea]` section: what a Gitea webhook delivery turns into.

use std::fmt;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// How webhook deliveries become queues.
#[derive(Debug, Clone)]
pub struct GiteaConfig {
    /// Shared with the webhook; `None` (empty) refuses every delivery.
    pub secret: Option<Secret>,
    /// A delivery makes one queue per environment, in this order; never empty.
    pub environments: Vec<String>,
    /// A newer delivery for a branch or pull request aborts the older webhook queues of the same
    /// repository, line and environment that still wait or run.
    pub cancel_superseded: bool,
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
    pub environments: Option<Vec<String>>,
    pub cancel_superseded: Option<bool>,
    pub scenarios: Option<Vec<String>>,
    pub branches: Option<Vec<String>>,
    pub priority: Option<i32>,
    pub url: Option<String>,
    pub token: Option<String>,
    pub dashboard_url: Option<String>,
}

impl GiteaLayer {
    pub fn apply(&mut self, other: GiteaLayer) {
        // `environment` is a shorthand for `environments`: the layer above that sets either
        // replaces both.
        if other.environment.is_some() {
            self.environments = None;
        }
        if other.environments.is_some() {
            self.environment = None;
        }
        take!(
            self,
            other,
            secret,
            environment,
            environments,
            cancel_superseded,
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
        let (key, wanted) = match (self.environments, self.environment) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    origin,
                    "gitea.environments and gitea.environment are both set: keep one (environment = \"x\" is short for environments = [\"x\"])",
                ));
            }
            (Some(list), None) => ("environments", list),
            (None, one) => ("environment", vec![one.unwrap_or_default()]),
        };
        if wanted.is_empty() {
            return Err(invalid(
                origin,
                "gitea.environments: name at least one environment for webhook queues",
            ));
        }
        let mut chosen: Vec<String> = Vec::with_capacity(wanted.len());
        for environment in wanted {
            if !environments.contains(&environment.as_str()) {
                return Err(invalid(
                    origin,
                    format!(
                        "gitea.{key}: unknown environment {environment:?}: use one of {}",
                        environments.join(", ")
                    ),
                ));
            }
            if chosen.contains(&environment) {
                return Err(invalid(
                    origin,
                    format!("gitea.{key}: {environment:?} is listed twice"),
                ));
            }
            chosen.push(environment);
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
            environments: chosen,
            cancel_superseded: self.cancel_superseded.unwrap_or(true),
            scenarios,
            branches,
            priority: self.priority.unwrap_or(0),
        })
    }
}
