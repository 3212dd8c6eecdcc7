//! Records of earlier file formats, read only by the migration (`init.rs`) and the golden
//! tests. Never written.

use serde::{Deserialize, Serialize};

use crate::model::{Millis, Origin, Queue, QueueId, QueueRequest, Status};

/// A queue as formats 1 and 2 stored it: without where it came from, the commit it resolved
/// and its re-runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct QueueV2 {
    pub id: QueueId,
    pub status: Status,
    pub request: QueueRequest,
    pub seq: u64,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub attempt: u32,
    pub error: Option<String>,
}

impl From<QueueV2> for Queue {
    /// Where an old queue came from is not known: it counts as enqueued through the API (so no
    /// later delivery supersedes it), and a re-run of it runs the commit its request named.
    fn from(q: QueueV2) -> Queue {
        Queue {
            id: q.id,
            status: q.status,
            request: q.request,
            seq: q.seq,
            created_at: q.created_at,
            started_at: q.started_at,
            finished_at: q.finished_at,
            attempt: q.attempt,
            error: q.error,
            origin: Origin::Api,
            resolved_commit: None,
            rerun_of: None,
            reruns: Vec::new(),
        }
    }
}

/// A queue as format 2 wrote it (tests write old files with it).
#[cfg(test)]
impl From<Queue> for QueueV2 {
    fn from(q: Queue) -> QueueV2 {
        QueueV2 {
            id: q.id,
            status: q.status,
            request: q.request,
            seq: q.seq,
            created_at: q.created_at,
            started_at: q.started_at,
            finished_at: q.finished_at,
            attempt: q.attempt,
            error: q.error,
        }
    }
}
