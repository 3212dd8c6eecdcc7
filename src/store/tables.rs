//! Every redb table, in one place, with a versioned name. Never change an encoding in place:
//! add a `-v2` table, raise [`FORMAT`] and migrate (`init.rs`).
//!
//! Keys are chosen so that the common writes append and the common reads are range scans:
//! - `QUEUES`      arrival seq → encoded [`crate::model::Queue`] (newest-first listing and
//!   cursor pagination; a new queue is appended, whatever its id)
//! - `IDS`         queue id → arrival seq (a read by id: one lookup, then `QUEUES`)
//! - `STATUSES`    (status code, arrival seq) → () (a listing filtered by status, newest first;
//!   the queues start-up recovery looks for: a range of the index, never a scan of `QUEUES`)
//! - `WAITING`     (−priority, arrival seq) → queue id (claiming: highest priority, then oldest)
//! - `TASKS`       (queue arrival seq, index) → encoded [`crate::model::Task`] (scenario order;
//!   keyed by arrival so that a new queue's tasks are appended, not scattered)
//! - `EVENTS`      change seq → encoded [`crate::model::Change`] (SSE resume; the commit-status
//!   outbox: see `outbox.rs`)
//! - `BRANCHES`    (repository, branch, environment) → arrival seq of its newest queue that
//!   finished with an outcome (a badge: one lookup; written when a queue finishes, not at
//!   enqueue; see `branches.rs`)
//! - `META`        name → number (the sequence counter, the schema version, the commit-status
//!   sender's position in `EVENTS`, and the number of queues per status: the dashboard's, the
//!   metrics' and retention's counts, in the table every commit writes anyway)

use redb::TableDefinition;

use crate::model::Status;

pub(super) const QUEUES: TableDefinition<u64, &[u8]> = TableDefinition::new("queues-v3");
pub(super) const WAITING: TableDefinition<(i64, u64), &str> = TableDefinition::new("waiting-v1");
pub(super) const TASKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("tasks-v1");
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events-v1");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta-v1");
pub(super) const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids-v1");
pub(super) const STATUSES: TableDefinition<(u8, u64), ()> = TableDefinition::new("statuses-v1");
pub(super) const BRANCHES: TableDefinition<(&str, &str, &str), u64> =
    TableDefinition::new("branches-v1");

/// `META` key of the last sequence number handed out (changes and arrivals share it).
pub(super) const META_SEQ: &str = "seq";
/// `META` key of the commit-status outbox's position: every change up to this sequence number
/// has had its commit status posted or passed over (see `outbox.rs`). Absent: no sender ran yet.
pub(super) const META_STATUSES: &str = "statuses";
/// `META` key of the file format (which tables, keyed how) the file was written with.
pub(super) const META_SCHEMA: &str = "schema";
/// The file format this build writes. 1: queues keyed by id (`queues-v1`, `arrivals-v1`);
/// 2: queues keyed by arrival (`queues-v2`); 3: queues with their origin, resolved commit and
/// re-runs (`queues-v3`); 4: the id index, the status index and the counts in the file
/// (`ids-v1`, `statuses-v1`, [`meta_count`]) instead of rebuilt in memory at every start; 5: the
/// branch index (`branches-v1`) instead of a scan for a badge. A build refuses a file of a newer
/// format.
pub const FORMAT: u64 = 5;

/// The `META` key of the number of queues in `status`. Spelled out: these names are in files.
pub(super) fn meta_count(status: Status) -> &'static str {
    match status {
        Status::Waiting => "queues.waiting",
        Status::Running => "queues.running",
        Status::Passed => "queues.passed",
        Status::Failed => "queues.failed",
        Status::Error => "queues.error",
        Status::TimedOut => "queues.timed_out",
        Status::Aborted => "queues.aborted",
        Status::Skipped => "queues.skipped",
    }
}

/// A status's key in `STATUSES`. Spelled out, never derived from the enum's order: these
/// numbers are in files.
pub(super) fn status_code(status: Status) -> u8 {
    match status {
        Status::Waiting => 0,
        Status::Running => 1,
        Status::Passed => 2,
        Status::Failed => 3,
        Status::Error => 4,
        Status::TimedOut => 5,
        Status::Aborted => 6,
        Status::Skipped => 7,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes and the count keys are in files: a change here is a change of the file format.
    #[test]
    fn status_codes_and_count_keys_are_fixed_and_distinct() {
        let codes: Vec<u8> = Status::ALL.into_iter().map(status_code).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7]);
        for status in Status::ALL {
            assert_eq!(meta_count(status), format!("queues.{status}"));
        }
        let keys = [META_SEQ, META_STATUSES, META_SCHEMA];
        assert!(keys.iter().all(|k| !k.starts_with("queues.")));
    }
}
