//! Every redb table, in one place, with a versioned name. Never change an encoding in place:
//! add a `-v2` table and migrate.
//!
//! Keys are chosen so that the common reads are range scans:
//! - `QUEUES`      queue id → encoded [`crate::model::Queue`]
//! - `ARRIVALS`    arrival seq → queue id (newest-first listing, cursor pagination)
//! - `WAITING`     (−priority, arrival seq) → queue id (claiming: highest priority, then oldest)
//! - `TASKS`       (queue arrival seq, index) → encoded [`crate::model::Task`] (scenario order;
//!   keyed by arrival so that a new queue's tasks are appended, not scattered)
//! - `EVENTS`      change seq → encoded [`crate::model::Change`] (SSE resume)
//! - `META`        name → number (the sequence counter, the schema version)

use redb::TableDefinition;

pub(super) const QUEUES: TableDefinition<&str, &[u8]> = TableDefinition::new("queues-v1");
pub(super) const ARRIVALS: TableDefinition<u64, &str> = TableDefinition::new("arrivals-v1");
pub(super) const WAITING: TableDefinition<(i64, u64), &str> = TableDefinition::new("waiting-v1");
pub(super) const TASKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("tasks-v1");
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events-v1");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta-v1");

/// `META` key of the last sequence number handed out (changes and arrivals share it).
pub(super) const META_SEQ: &str = "seq";
/// `META` key of the codec schema the file was written with.
pub(super) const META_SCHEMA: &str = "schema";
