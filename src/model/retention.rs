//! The retention rule: which finished queues are beyond `[retention]`'s limits. Pure.
//!
//! Queues are judged oldest first (by arrival). A finished queue is beyond the limits while
//! more finished queues are stored than `max_queues`, or when it finished more than `max_age`
//! ago; waiting and running queues are never beyond them. The judging stops at the first queue
//! that arrived after the age cutoff once the count is satisfied: a queue finishes after it
//! arrives, so no later one can be too old.

use std::time::Duration;

use super::{Millis, Queue};

/// What to do with one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Remove,
    Keep,
    /// Neither this queue nor any later one is beyond the limits.
    Stop,
}

/// The judge of one pass over the queues, oldest first.
#[derive(Debug, Clone)]
pub struct Beyond {
    /// Finished queues still to remove to get down to `max_queues`.
    excess: u64,
    /// Queues that finished before this are too old.
    cutoff: Option<Millis>,
}

impl Beyond {
    /// `finished` is how many finished queues are stored, `now` the clock.
    pub fn new(
        max_queues: Option<u64>,
        max_age: Option<Duration>,
        finished: u64,
        now: Millis,
    ) -> Beyond {
        let age_ms = |d: Duration| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX);
        Beyond {
            excess: max_queues.map_or(0, |max| finished.saturating_sub(max)),
            cutoff: max_age.map(|d| now.saturating_sub(age_ms(d))),
        }
    }

    /// Whether nothing at all can be beyond the limits (no need to read a queue).
    pub fn is_done(&self) -> bool {
        self.excess == 0 && self.cutoff.is_none()
    }

    /// Judges the next queue, oldest first.
    pub fn judge(&mut self, q: &Queue) -> Verdict {
        let young = self.cutoff.is_none_or(|c| q.created_at >= c);
        if self.excess == 0 && young {
            return Verdict::Stop;
        }
        if !q.status.is_terminal() {
            return Verdict::Keep;
        }
        let finished = q.finished_at.unwrap_or(q.created_at);
        let old = self.cutoff.is_some_and(|c| finished < c);
        if self.excess > 0 || old {
            // Either way one finished queue fewer counts against `max_queues`.
            self.excess = self.excess.saturating_sub(1);
            Verdict::Remove
        } else {
            Verdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{QueueId, QueueRequest, Status};

    const DAY: Millis = 86_400_000;

    /// A queue that arrived `created` and finished `finished` (days), `None`: not finished.
    fn q(n: u64, created: Millis, finished: Option<Millis>, status: Status) -> Queue {
        Queue {
            id: QueueId::parse(&format!("q{n}")).unwrap(),
            status,
            request: QueueRequest {
                repo: "https://git.example/fw.git".into(),
                branch: None,
                commit: None,
                environment: "esp32".into(),
                scenarios: vec![],
                priority: 0,
            },
            seq: n,
            created_at: created * DAY,
            started_at: None,
            finished_at: finished.map(|f| f * DAY),
            attempt: 1,
            error: None,
            origin: crate::model::Origin::Api,
            resolved_commit: None,
            rerun_of: None,
            reruns: Vec::new(),
        }
    }

    /// The verdicts of a whole pass, up to and including the first `Stop`.
    fn judge_all(mut b: Beyond, queues: &[Queue]) -> Vec<Verdict> {
        let mut out = Vec::new();
        for queue in queues {
            let v = b.judge(queue);
            out.push(v);
            if v == Verdict::Stop {
                break;
            }
        }
        out
    }

    use Status::{Passed, Running, Waiting};
    use Verdict::{Keep, Remove, Stop};

    #[test]
    fn by_count_the_oldest_finished_go_and_unfinished_stay() {
        let queues = [
            q(1, 1, None, Waiting),
            q(2, 2, Some(2), Passed),
            q(3, 3, None, Running),
            q(4, 4, Some(4), Passed),
            q(5, 5, Some(5), Passed),
        ];
        // 3 finished, 1 kept: the two oldest finished go.
        let b = Beyond::new(Some(1), None, 3, 10 * DAY);
        assert_eq!(judge_all(b, &queues), [Keep, Remove, Keep, Remove, Stop]);
        let b = Beyond::new(Some(3), None, 3, 10 * DAY);
        assert!(b.is_done());
        assert_eq!(judge_all(b, &queues), [Stop]);
        assert!(Beyond::new(None, None, 1000, 0).is_done());
    }

    #[test]
    fn by_age_from_the_end_and_stopping_at_the_first_young_arrival() {
        let queues = [
            q(1, 1, Some(2), Passed),
            q(2, 2, Some(9), Passed), // arrived long ago, finished recently
            q(3, 3, None, Waiting),
            q(4, 4, Some(5), Passed),
            q(5, 8, Some(8), Passed),
            q(6, 9, Some(9), Passed),
        ];
        // Ten days in, with a week kept: the cutoff is day 3.
        let b = Beyond::new(
            None,
            Some(Duration::from_millis(7 * DAY as u64)),
            6,
            10 * DAY,
        );
        assert_eq!(judge_all(b, &queues), [Remove, Keep, Stop]);
        // The cutoff on day 6: queue 4 arrived before it and finished before it.
        let b = Beyond::new(
            None,
            Some(Duration::from_millis(4 * DAY as u64)),
            6,
            10 * DAY,
        );
        assert_eq!(judge_all(b, &queues), [Remove, Keep, Keep, Remove, Stop]);
    }

    #[test]
    fn a_removal_by_age_counts_against_the_excess_too() {
        let queues = [
            q(1, 1, Some(1), Passed),
            q(2, 2, Some(2), Passed),
            q(3, 8, Some(8), Passed),
            q(4, 9, Some(9), Passed),
        ];
        // 4 finished, 3 kept, and queue 1 and 2 are too old: the old ones go, and that is all.
        let week = Duration::from_millis(7 * DAY as u64);
        let b = Beyond::new(Some(3), Some(week), 4, 10 * DAY);
        assert_eq!(judge_all(b, &queues), [Remove, Remove, Stop]);
        // 2 kept: one more, the oldest of the young ones.
        let b = Beyond::new(Some(1), Some(week), 4, 10 * DAY);
        assert_eq!(judge_all(b, &queues), [Remove, Remove, Remove, Stop]);
    }

    #[test]
    fn huge_ages_and_early_clocks_do_not_overflow() {
        let b = Beyond::new(None, Some(Duration::MAX), 1, 5);
        assert_eq!(judge_all(b, &[q(1, 0, Some(0), Passed)]), [Stop]);
    }
}
