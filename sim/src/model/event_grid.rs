//! Event Grid push delivery: what an endpoint's answer means, the retry schedule, and the
//! probation that delays deliveries to an endpoint that keeps failing.
//!
//! ```text
//!  attempt ──► 200-204 ────────────────────────► delivered
//!     │    ──► 400, 413, 401, 403 (never good) ──► dead-letter, or drop without one
//!     │    ──► anything else, no answer in 30 s ──► retry after the schedule's next
//!     │                                             step (503: at least 30 s)
//!     └── given up at max_attempts, or when a due retry finds the event past its TTL
//! ```
//!
//! The schedule is Event Grid's documented one: 10 s, 30 s, 1 min, 5 min, 10 min, 30 min,
//! 1 h, 3 h, 6 h, then every 12 h, each step with a small randomisation (Azure documents
//! none: sluice draws ±10 %). After [`PROBATION_AFTER`] failed attempts in a row the
//! subscription is on probation for [`PROBATION`]: no delivery, first or retry, is attempted
//! until it ends (Event Grid's "delayed delivery"; 10 s is the probation it documents for a
//! busy or timed-out endpoint).

use crate::rng::Rng;
use crate::time::{NS_PER_H, NS_PER_MIN, NS_PER_S, Nanos};

/// The waits before the 1st, 2nd, ... retry; every later retry waits the last step.
pub const SCHEDULE: [Nanos; 10] = [
    10 * NS_PER_S,
    30 * NS_PER_S,
    NS_PER_MIN,
    5 * NS_PER_MIN,
    10 * NS_PER_MIN,
    30 * NS_PER_MIN,
    NS_PER_H,
    3 * NS_PER_H,
    6 * NS_PER_H,
    12 * NS_PER_H,
];

/// How far each step is randomised, either way (Azure: "a small randomization").
pub const JITTER: f64 = 0.1;

/// How long Event Grid waits for an answer before it queues the event for retry.
pub const RESPONSE_TIMEOUT: Nanos = 30 * NS_PER_S;

/// A late answer that comes within this long of its attempt takes the event out of the
/// retry queue (Event Grid: "on a best effort basis"; sluice models the best case).
pub const LATE_ANSWER_WINDOW: Nanos = 3 * NS_PER_MIN;

/// A 503 is retried after at least this long.
pub const UNAVAILABLE_MIN_DELAY: Nanos = 30 * NS_PER_S;

/// Failed attempts in a row that put a subscription on probation.
pub const PROBATION_AFTER: u32 = 10;

/// How long a probation lasts (Event Grid's for a busy or timed-out endpoint).
pub const PROBATION: Nanos = 10 * NS_PER_S;

/// Event Grid's default and highest `maxDeliveryAttempts`.
pub const MAX_ATTEMPTS: u32 = 30;

/// Event Grid's default and longest event time-to-live (1440 minutes).
pub const MAX_TTL: Nanos = 24 * NS_PER_H;

/// The shortest event time-to-live Event Grid takes (1 minute).
pub const MIN_TTL: Nanos = NS_PER_MIN;

/// How one delivery attempt went, as Event Grid sees the endpoint's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200-204: delivered.
    Ok,
    /// 400 Bad Request (and 413, 401, 403): retrying cannot help.
    BadRequest,
    /// 503 Service Unavailable (the endpoint is down).
    Unavailable,
    /// 429 Too Many Requests (the endpoint is at its capacity).
    Throttled,
    /// No answer within [`RESPONSE_TIMEOUT`] (or the endpoint's own timeout).
    TimedOut,
    /// Any other error (500).
    Failed,
}

/// What Event Grid does next with the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Delivered: done.
    Done,
    /// Dead-letter it at once (or drop it without a dead-letter destination).
    GiveUp,
    /// Retry, after the schedule's next step but no sooner than this.
    Retry {
        /// The least wait this answer asks for.
        at_least: Nanos,
    },
}

impl Answer {
    /// What Event Grid does after this answer.
    pub fn next(self) -> Next {
        match self {
            Answer::Ok => Next::Done,
            Answer::BadRequest => Next::GiveUp,
            Answer::Unavailable => Next::Retry { at_least: UNAVAILABLE_MIN_DELAY },
            Answer::Throttled | Answer::TimedOut | Answer::Failed => Next::Retry { at_least: 0 },
        }
    }
}

/// The wait before the retry that follows the `failed`-th failed attempt (1 = the first
/// delivery failed): the schedule's step, randomised by up to ±[`JITTER`].
pub fn retry_delay(failed: u32, rng: &mut Rng) -> Nanos {
    let i = (failed.max(1) as usize - 1).min(SCHEDULE.len() - 1);
    let factor = 1.0 - JITTER + 2.0 * JITTER * rng.unit();
    (SCHEDULE[i] as f64 * factor).round() as Nanos
}

/// A subscription's health as Event Grid tracks it: failed attempts in a row, and the
/// probation they put it on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probation {
    failures_in_a_row: u32,
    until: Nanos,
    /// Time spent on probation so far.
    pub total: Nanos,
}

impl Probation {
    /// An attempt that ended at `now` failed: after [`PROBATION_AFTER`] in a row the
    /// subscription is on probation for [`PROBATION`] from now (a failure while on
    /// probation extends it).
    pub fn failed(&mut self, now: Nanos) {
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= PROBATION_AFTER {
            let until = now + PROBATION;
            let counted_from = self.until.max(now);
            self.total += until.saturating_sub(counted_from);
            self.until = self.until.max(until);
        }
    }

    /// An attempt succeeded: the endpoint is healthy again.
    pub fn succeeded(&mut self) {
        self.failures_in_a_row = 0;
    }

    /// When the probation in force at `now` ends, if one is.
    pub fn until(&self, now: Nanos) -> Option<Nanos> {
        (self.until > now).then_some(self.until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_event_grids_with_small_randomisation() {
        let mut rng = Rng::stream(1, "t");
        let expected = [10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200, 43_200, 43_200];
        for (i, s) in expected.iter().enumerate() {
            for _ in 0..50 {
                let d = retry_delay(i as u32 + 1, &mut rng) as f64 / NS_PER_S as f64;
                let s = *s as f64;
                assert!(d >= s * 0.9 - 1e-6 && d <= s * 1.1 + 1e-6, "step {}: {d} s", i + 1);
            }
        }
        // the draws spread over the band, not one value
        let draws: Vec<Nanos> = (0..20).map(|_| retry_delay(1, &mut rng)).collect();
        assert!(draws.iter().any(|&d| d < 10 * NS_PER_S));
        assert!(draws.iter().any(|&d| d > 10 * NS_PER_S));
    }

    #[test]
    fn what_each_answer_leads_to() {
        assert_eq!(Answer::Ok.next(), Next::Done);
        assert_eq!(Answer::BadRequest.next(), Next::GiveUp);
        assert_eq!(Answer::Unavailable.next(), Next::Retry { at_least: 30 * NS_PER_S });
        for a in [Answer::Throttled, Answer::TimedOut, Answer::Failed] {
            assert_eq!(a.next(), Next::Retry { at_least: 0 });
        }
    }

    #[test]
    fn ten_failures_in_a_row_put_the_subscription_on_probation() {
        let mut p = Probation::default();
        for i in 0..9 {
            p.failed(i * NS_PER_S);
            assert_eq!(p.until(i * NS_PER_S), None);
        }
        p.failed(9 * NS_PER_S);
        assert_eq!(p.until(9 * NS_PER_S), Some(19 * NS_PER_S));
        assert_eq!(p.until(19 * NS_PER_S), None);
        // a failure while on probation extends it, counted once
        p.failed(15 * NS_PER_S);
        assert_eq!(p.until(16 * NS_PER_S), Some(25 * NS_PER_S));
        assert_eq!(p.total, 16 * NS_PER_S);
        // a success resets the count: the next failure does not start a probation
        p.succeeded();
        p.failed(30 * NS_PER_S);
        assert_eq!(p.until(30 * NS_PER_S), None);
    }
}
