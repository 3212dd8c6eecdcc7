//! Every redb table, in one place, with a versioned name. Never change an encoding in place:
//! add a `-v2` table, raise [`FORMAT`] and migrate (`init.rs`).
//!
//! Keys are chosen so that the common writes append and the common reads are range scans:
//! - `QUEUES`      arrival seq → encoded [`crate::model::Queue`] (newest-first listing and
//!   cursor pagination; a new queue is appended, whatever its id). The id → seq index is kept
//!   in memory ([`super::ids::Ids`]), rebuilt from this table at start-up.
//! - `WAITING`     (−priority, arrival seq) → queue id (claiming: highest priority, then oldest)
//! - `TASKS`       (queue arrival seq, index) → encoded [`crate::model::Task`] (scenario order;
//!   keyed by arrival so that a new queue's tasks are appended, not scattered)
//! - `EVENTS`      change seq → encoded [`crate::model::Change`] (SSE resume; the commit-status
//!   outbox: see `outbox.rs`)
//! - `META`        name → number (the sequence counter, the schema version, the commit-status
//!   sender's position in `EVENTS`)

use redb::TableDefinition;

pub(super) const QUEUES: TableDefinition<u64, &[u8]> = TableDefinition::new("queues-v3");
pub(super) const WAITING: TableDefinition<(i64, u64), &str> = TableDefinition::new("waiting-v1");
pub(super) const TASKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("tasks-v1");
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events-v1");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta-v1");

/// `META` key of the last sequence number handed out (changes and arrivals share it).
pub(super) const META_SEQ: &str = "seq";
/// `META` key of the commit-status outbox's position: every change up to this sequence number
/// has had its commit status posted or passed over (see `outbox.rs`). Absent: no sender ran yet.
pub(super) const META_STATUSES: &str = "statuses";
/// `META` key of the file format (which tables, keyed how) the file was written with.
pub(super) const META_SCHEMA: &str = "schema";
/// The file format this build writes. 1: queues keyed by id (`queues-v1`, `arrivals-v1`);
/// 2: queues keyed by arrival (`queues-v2`); 3: queues with their origin, resolved commit and
/// re-runs (`queues-v3`). A build refuses a file of a newer format.
pub(super) const FORMAT: u64 = 3;

/// Tables of earlier versions, read only by the migration.
pub(super) mod v2 {
    use redb::TableDefinition;

    /// Arrival seq → encoded [`super::super::legacy::QueueV2`].
    pub(in super::super) const QUEUES: TableDefinition<u64, &[u8]> =
        TableDefinition::new("queues-v2");
}

/// Tables of earlier versions, read only by the migration.
pub(super) mod v1 {
    use redb::TableDefinition;

    /// Queue id → encoded [`super::super::legacy::QueueV2`]. Keyed by the client's id, every enqueue rewrote a page chosen
    /// by that id; `queues-v2` appends instead.
    pub(in super::super) const QUEUES: TableDefinition<&str, &[u8]> =
        TableDefinition::new("queues-v1");
    /// Arrival seq → queue id; `queues-v2` is keyed by arrival itself.
    pub(in super::super) const ARRIVALS: TableDefinition<u64, &str> =
        TableDefinition::new("arrivals-v1");
}
