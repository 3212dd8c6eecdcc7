//! Following the change feed without gaps, for in-process consumers that must see every change
//! (metrics, commit statuses): live from the broadcast, and from the event table when the
//! broadcast ran ahead of a slow consumer.

use std::collections::VecDeque;

use tokio::sync::broadcast::{self, error::RecvError};

use super::Store;
use crate::model::{Change, Queue, Status};

/// Every change committed after [`Store::follow`] was called, in order, each once.
pub struct Follower {
    store: Store,
    rx: broadcast::Receiver<Change>,
    /// The last sequence number handed out.
    last: u64,
    backlog: VecDeque<Change>,
}

impl Follower {
    pub(super) fn new(store: Store) -> Follower {
        // Subscribe first: every change after `last` is then in the channel or the table.
        let rx = store.subscribe();
        let last = store.latest_seq();
        Follower {
            store,
            rx,
            last,
            backlog: VecDeque::new(),
        }
    }

    /// The next change; `None` once the store is closed.
    pub async fn next(&mut self) -> Option<Change> {
        loop {
            if let Some(c) = self.backlog.pop_front() {
                if c.seq > self.last {
                    self.last = c.seq;
                    return Some(c);
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(c) if c.seq <= self.last => {}
                Ok(c) if c.seq == self.last + 1 => {
                    self.last = c.seq;
                    return Some(c);
                }
                // A gap: what is missing is in the table; this one comes after it.
                Ok(c) => {
                    self.catch_up().await;
                    self.backlog.push_back(c);
                }
                Err(RecvError::Lagged(_)) => self.catch_up().await,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The queue of the next change of a queue's status that `wanted` accepts: as stored now,
    /// but in that change's status. Queues deleted meanwhile are passed over. `None` once the
    /// store is closed.
    pub async fn next_queue(&mut self, wanted: impl Fn(Status) -> bool) -> Option<Queue> {
        loop {
            let change = self.next().await?;
            let Some(to) = change.to.filter(|to| change.task.is_none() && wanted(*to)) else {
                continue;
            };
            if let Ok(Some(view)) = self.store.get(&change.queue).await {
                let mut queue = view.queue;
                queue.status = to;
                return Some(queue);
            }
        }
    }

    async fn catch_up(&mut self) {
        match self.store.events_after(self.last).await {
            Ok(after) => {
                if !after.complete {
                    tracing::warn!(
                        after = self.last,
                        "change feed: changes older than the event table keeps were skipped"
                    );
                }
                self.backlog.extend(after.changes);
            }
            Err(e) => tracing::warn!(error = %e, "change feed: cannot read the event table"),
        }
    }
}
