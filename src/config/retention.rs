//! The `[retention]` section: how long finished queues, checkouts and git mirrors are kept.

use std::time::Duration;

use serde::Deserialize;

use super::values::Dur;
use super::{ConfigError, invalid};

/// What is kept of finished queues; applied by `worker::retention`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Finished queues older than this (since they finished), and git mirrors not used for
    /// this long, are removed; `None`: kept whatever their age.
    pub max_age: Option<Duration>,
    /// At most this many finished queues are kept (the newest); `None`: no limit.
    pub max_queues: Option<u64>,
    /// What happens to a queue's checkout (and the build in it) when the queue ends.
    pub checkouts: Checkouts,
}

/// `[retention] checkouts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkouts {
    /// Removed when the queue ends; its log and reports stay.
    Delete,
    /// Kept until the queue is removed.
    Keep,
}

impl std::str::FromStr for Checkouts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "delete" => Ok(Checkouts::Delete),
            "keep" => Ok(Checkouts::Keep),
            other => Err(format!(
                "unknown value {other:?}: use \"delete\" or \"keep\""
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RetentionLayer {
    pub max_age: Option<Dur>,
    pub max_queues: Option<u64>,
    pub checkouts: Option<String>,
}

impl RetentionLayer {
    pub fn apply(&mut self, other: RetentionLayer) {
        take!(self, other, max_age, max_queues, checkouts);
    }

    /// Sets the key `TESTARENA_RETENTION_<KEY>` names; `Ok(false)` when `name` is not one.
    pub fn apply_env(
        &mut self,
        origin: &str,
        name: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        match name {
            "TESTARENA_RETENTION_MAX_AGE" => {
                let d = crate::model::parse_duration(value).map_err(|m| invalid(origin, m))?;
                self.max_age = Some(Dur(d));
            }
            "TESTARENA_RETENTION_MAX_QUEUES" => {
                let n = value.trim().parse::<u64>().map_err(|_| {
                    invalid(
                        origin,
                        format!("invalid number {value:?}: use a whole number"),
                    )
                })?;
                self.max_queues = Some(n);
            }
            "TESTARENA_RETENTION_CHECKOUTS" => {
                let value = value.trim();
                value.parse::<Checkouts>().map_err(|m| invalid(origin, m))?;
                self.checkouts = Some(value.to_owned());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn finish(self, origin: &str) -> Result<RetentionConfig, ConfigError> {
        let checkouts = self
            .checkouts
            .as_deref()
            .unwrap_or("delete")
            .parse()
            .map_err(|m: String| invalid(origin, format!("retention.checkouts: {m}")))?;
        Ok(RetentionConfig {
            max_age: self.max_age.map(|d| d.0).filter(|d| !d.is_zero()),
            max_queues: self.max_queues.filter(|n| *n > 0),
            checkouts,
        })
    }
}
