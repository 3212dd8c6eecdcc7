//! The environment-variable layer: `TESTARENA_<SECTION>_<KEY>` sets a key of the file, laid
//! over the file and under the flags. Every other `TESTARENA_*` variable is a mistake (a typo
//! would otherwise be silently ignored) unless it is one the binary or its users set for
//! something else: the command-line client's, those a queue's commands get, the test suite's.

use std::path::PathBuf;

use super::values::{Dur, Size};
use super::{Builder, ConfigError, invalid, parse_size, secret_file};
use crate::model::parse_duration;

/// The variables the configuration reads, one per key (and the secrets' `_FILE` forms).
pub const CONFIG_VARIABLES: &[&str] = &[
    "TESTARENA_LISTEN",
    "TESTARENA_ROOT",
    "TESTARENA_API_MAX_BODY",
    "TESTARENA_API_HOSTS",
    "TESTARENA_API_PUBLIC_URL",
    "TESTARENA_API_MAX_SSE_CLIENTS",
    "TESTARENA_API_MAX_SSE_PER_QUEUE",
    "TESTARENA_API_SSE_SEND_TIMEOUT",
    "TESTARENA_AUTH_ANONYMOUS",
    "TESTARENA_AUTH_SESSION_TTL",
    "TESTARENA_WORKER_SLOTS",
    "TESTARENA_WORKER_QUEUE_TIMEOUT",
    "TESTARENA_WORKER_CHECKOUT_TIMEOUT",
    "TESTARENA_WORKER_KILL_GRACE",
    "TESTARENA_WORKER_SILENCE_TIMEOUT",
    "TESTARENA_WORKER_MAX_ATTEMPTS",
    "TESTARENA_WORKER_MIN_FREE_SPACE",
    "TESTARENA_WORKER_ALLOWED_REPOS",
    "TESTARENA_SANDBOX_MODE",
    "TESTARENA_GITEA_SECRET",
    "TESTARENA_GITEA_SECRET_FILE",
    "TESTARENA_GITEA_TOKEN",
    "TESTARENA_GITEA_TOKEN_FILE",
    "TESTARENA_GITEA_ENVIRONMENT",
    "TESTARENA_GITEA_ENVIRONMENTS",
    "TESTARENA_GITEA_URL",
    "TESTARENA_GITEA_DASHBOARD_URL",
    "TESTARENA_RETENTION_MAX_AGE",
    "TESTARENA_RETENTION_MAX_QUEUES",
    "TESTARENA_RETENTION_CHECKOUTS",
];

/// `TESTARENA_*` variables that are not configuration but belong here: the command-line
/// client's (`--server`, the token), those every command of a queue gets (so a server started
/// from a queue's `<run>` step still starts), the test suite's and the demo script's.
pub const OTHER_VARIABLES: &[&str] = &[
    "TESTARENA_SERVER",
    "TESTARENA_TOKEN",
    "TESTARENA_TOKEN_FILE",
    // `serve --log-format`'s: the log is set up before the configuration is read.
    "TESTARENA_LOG_FORMAT",
    "TESTARENA_QUEUE_ID",
    "TESTARENA_ENVIRONMENT",
    "TESTARENA_REPO_DIR",
    "TESTARENA_BLESS",
    "TESTARENA_URL",
];

/// A `TESTARENA_*` variable the configuration does not read: an error naming it and the ones
/// that exist, unless it is one of [`OTHER_VARIABLES`]. Other variables are not ours.
fn check_unknown(name: &str) -> Result<(), ConfigError> {
    if !name.starts_with("TESTARENA_") || OTHER_VARIABLES.contains(&name) {
        return Ok(());
    }
    Err(invalid(
        &format!("environment variable {name}"),
        format!(
            "unknown variable: the configuration reads {}; the command line {}",
            CONFIG_VARIABLES.join(", "),
            OTHER_VARIABLES[..4].join(", "),
        ),
    ))
}

impl Builder {
    /// Lays the `TESTARENA_*` variables of `env` over the layers so far.
    pub(super) fn apply_env(
        mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Builder, ConfigError> {
        for (key, value) in env {
            let origin = format!("environment variable {key}");
            let dur = |v: &str| parse_duration(v).map(Dur).map_err(|m| invalid(&origin, m));
            let num = |v: &str| {
                v.trim().parse::<u64>().map_err(|_| {
                    invalid(&origin, format!("invalid number {v:?}: use a whole number"))
                })
            };
            match key.as_str() {
                "TESTARENA_LISTEN" => self.listen = Some(value),
                "TESTARENA_ROOT" => self.root = Some(PathBuf::from(value)),
                "TESTARENA_API_MAX_BODY" => {
                    self.api.max_body =
                        Some(Size(parse_size(&value).map_err(|m| invalid(&origin, m))?))
                }
                "TESTARENA_API_HOSTS" => {
                    let list = value.split(',').map(|e| e.trim().to_owned());
                    self.api.hosts = Some(list.filter(|e| !e.is_empty()).collect())
                }
                "TESTARENA_API_PUBLIC_URL" => self.api.public_url = Some(value),
                "TESTARENA_API_MAX_SSE_CLIENTS" => {
                    self.api.max_sse_clients = Some(num(&value)? as usize)
                }
                "TESTARENA_API_MAX_SSE_PER_QUEUE" => {
                    self.api.max_sse_per_queue = Some(num(&value)? as usize)
                }
                "TESTARENA_API_SSE_SEND_TIMEOUT" => self.api.sse_send_timeout = Some(dur(&value)?),
                "TESTARENA_AUTH_ANONYMOUS" => {
                    let anonymous = value.trim().parse();
                    self.auth.anonymous = Some(anonymous.map_err(|m| invalid(&origin, m))?)
                }
                "TESTARENA_AUTH_SESSION_TTL" => self.auth.session_ttl = Some(dur(&value)?),
                "TESTARENA_WORKER_SLOTS" => self.worker.slots = Some(num(&value)? as usize),
                "TESTARENA_WORKER_QUEUE_TIMEOUT" => self.worker.queue_timeout = Some(dur(&value)?),
                "TESTARENA_WORKER_CHECKOUT_TIMEOUT" => {
                    self.worker.checkout_timeout = Some(dur(&value)?)
                }
                "TESTARENA_WORKER_KILL_GRACE" => self.worker.kill_grace = Some(dur(&value)?),
                "TESTARENA_WORKER_SILENCE_TIMEOUT" => {
                    self.worker.silence_timeout = Some(dur(&value)?)
                }
                "TESTARENA_WORKER_MAX_ATTEMPTS" => {
                    self.worker.max_attempts = Some(num(&value)? as u32)
                }
                "TESTARENA_WORKER_MIN_FREE_SPACE" => {
                    self.worker.min_free_space =
                        Some(Size(parse_size(&value).map_err(|m| invalid(&origin, m))?))
                }
                "TESTARENA_WORKER_ALLOWED_REPOS" => {
                    let list = value.split(',').map(|e| e.trim().to_owned());
                    self.worker.allowed_repos = Some(list.filter(|e| !e.is_empty()).collect())
                }
                "TESTARENA_SANDBOX_MODE" => self.sandbox.mode = Some(value),
                "TESTARENA_GITEA_SECRET" => self.gitea.secret = Some(value),
                "TESTARENA_GITEA_SECRET_FILE" => {
                    self.gitea.secret = Some(secret_file(&origin, &value)?)
                }
                "TESTARENA_GITEA_TOKEN_FILE" => {
                    self.gitea.token = Some(secret_file(&origin, &value)?)
                }
                "TESTARENA_GITEA_ENVIRONMENT" => {
                    self.gitea.environments = None;
                    self.gitea.environment = Some(value);
                }
                "TESTARENA_GITEA_ENVIRONMENTS" => {
                    self.gitea.environment = None;
                    self.gitea.environments = Some(
                        value
                            .split(',')
                            .map(|e| e.trim().to_owned())
                            .filter(|e| !e.is_empty())
                            .collect(),
                    );
                }
                "TESTARENA_GITEA_URL" => self.gitea.url = Some(value),
                "TESTARENA_GITEA_TOKEN" => self.gitea.token = Some(value),
                "TESTARENA_GITEA_DASHBOARD_URL" => self.gitea.dashboard_url = Some(value),
                other => {
                    if !self.retention.apply_env(&origin, other, &value)? {
                        check_unknown(other)?;
                    }
                }
            }
        }
        Ok(self)
    }
}
