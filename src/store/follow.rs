//! Following the change feed without gaps: the one way every consumer reads it (the events
//! stream, a log stream's end detection, an abort waiting for its end, `/metrics`, commit
//! statuses). Live changes come from the broadcast; when a consumer falls behind it (or a change
//! is missing between two it got), the missed ones come from the event table. When the table no
//! longer reaches back that far, the consumer is told so ([`Feed::Reset`]) and reloads.

use std::collections::VecDeque;

use tokio::sync::broadcast::{self, error::RecvError};

use super::Store;
use crate::model::{Change, Queue, QueueId, Status};

/// What a [`Follower`] hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    /// The next change, in order, each once.
    Change(Change),
    /// Changes up to `seq` were missed and cannot be replayed (the event table no longer holds
    /// them, or cannot be read): reload what is needed from the store; changes after `seq`
    /// follow.
    Reset { seq: u64 },
}

/// A position in the change feed; [`Follower::next`] gives every later change in order.
pub struct Follower {
    store: Store,
    rx: broadcast::Receiver<Change>,
    /// The last sequence number handed out (or asked to start after).
    last: u64,
    /// Changes read from the table, not yet handed out.
    backlog: VecDeque<Change>,
    /// Read the table before taking live changes.
    from_table: bool,
}

impl Follower {
    /// Every change committed after `after`; `None`: from now on.
    pub(super) fn new(store: Store, after: Option<u64>) -> Follower {
        // Subscribe first: every change after `last` is then in the channel or the table.
        let rx = store.subscribe();
        let latest = store.latest_seq();
        Follower {
            store,
            rx,
            last: after.unwrap_or(latest),
            backlog: VecDeque::new(),
            from_table: after.is_some(),
        }
    }

    /// The next change (or a reset); `None` once the store is closed. Cancel-safe: dropping the
    /// future loses nothing, so it can sit in a `select!`.
    pub async fn next(&mut self) -> Option<Feed> {
        loop {
            if let Some(c) = self.backlog.pop_front() {
                if c.seq > self.last {
                    self.last = c.seq;
                    return Some(Feed::Change(c));
                }
                continue;
            }
            if self.from_table {
                if let Some(reset) = self.read_table().await {
                    return Some(reset);
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(c) if c.seq <= self.last => {}
                Ok(c) if c.seq == self.last + 1 => {
                    self.last = c.seq;
                    return Some(Feed::Change(c));
                }
                // A change between is missing: the table has it (it is committed before it is
                // published), and this one after it.
                Ok(_) | Err(RecvError::Lagged(_)) => self.from_table = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next change of `queue` itself (not of its tasks); a reset as it comes.
    pub async fn next_of(&mut self, queue: &QueueId) -> Option<Feed> {
        loop {
            match self.next().await? {
                Feed::Change(c) if &c.queue != queue || c.task.is_some() => {}
                feed => return Some(feed),
            }
        }
    }

    /// The queue of the next change of a queue's status that `wanted` accepts: as stored now,
    /// but in that change's status. Queues deleted meanwhile are passed over, and so are changes
    /// lost to a reset (logged). `None` once the store is closed.
    pub async fn next_queue(&mut self, wanted: impl Fn(Status) -> bool) -> Option<Queue> {
        loop {
            let change = match self.next().await? {
                Feed::Change(c) => c,
                Feed::Reset { seq } => {
                    tracing::warn!(
                        up_to = seq,
                        "change feed: changes older than the event table keeps were skipped"
                    );
                    continue;
                }
            };
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

    /// Fills the backlog from the table; a reset when the table does not reach back to `last`,
    /// `last` is ahead of the store (an id from before the data was reset), or the table cannot
    /// be read. Nothing changes before the read is done, so a cancelled read is retried.
    async fn read_table(&mut self) -> Option<Feed> {
        let latest = self.store.latest_seq();
        let read = self.store.events_after(self.last).await;
        self.from_table = false;
        match read {
            Ok(after) if after.complete && self.last <= latest => {
                // A full page: the next one once this one is handed out.
                self.from_table = after.changes.len() >= super::reads::EVENTS_PAGE;
                self.backlog = after.changes.into();
                None
            }
            Ok(after) => {
                let seq = after.changes.last().map_or(latest, |c| c.seq.max(latest));
                self.last = seq;
                Some(Feed::Reset { seq })
            }
            Err(e) => {
                tracing::warn!(error = %e, "change feed: cannot read the event table");
                self.last = latest;
                Some(Feed::Reset { seq: latest })
            }
        }
    }
}
