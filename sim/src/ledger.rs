//! The message ledger's vocabulary: a [`Message`] is admitted once, held by one component at
//! a time (a [`Holder`]), and leaves once by exactly one [`Exit`].
//!
//! ```text
//!  produce ──► admit(holder) ──► hand_over(from, to) ... ──► exit(from, completed |
//!     │                                                        dead-lettered | expired |
//!     └──► reject (never admitted)                             lost | rejected)
//! ```
//!
//! The accounts live in [`crate::model::meters::Meters`], which every component reports
//! to; no queue, store or pattern keeps its own count of what it holds for the ledger.
//! `in_flight` is the sum of what the holders hold, computed in one place
//! ([`Holdings::in_flight`]), and at the end of every run
//! `produced = rejected + completed + dead_lettered + expired + lost + in_flight`.

use crate::time::Nanos;

/// One message (a request, a job, an event) as the ledger knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sequence number, unique in the run, in production order.
    pub id: u64,
    /// Workload class (an index into the scenario's `[workload.classes]`, sorted by name).
    pub class: u8,
    /// When the system accepted it (its end-to-end latency starts here). Set when the
    /// message is admitted by a holder that accepts ([`Holder::accepts`]).
    pub accepted_at: Nanos,
    /// The handler work of the message itself, the same on every delivery (its class's
    /// `[workload.class_work]`); 0: drawn from `[consumer] work` on each delivery.
    pub work: Nanos,
}

impl Message {
    /// The handler work of this delivery: the message's own, or a fresh draw from `each`.
    pub fn work(&self, each: &crate::dist::Dist, rng: &mut crate::rng::Rng) -> Nanos {
        if self.work > 0 { self.work } else { each.sample(rng) }
    }
}

/// A component that holds messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    /// An API still accepting the request (not yet accepted: its latency has not started).
    Api,
    /// A broker queue (waiting, locked or delayed messages).
    Queue,
    /// A database table of pending work (stored jobs, outbox rows, saga state).
    Store,
    /// An event-stream partition.
    Partition,
    /// The memory of a web process (an in-process channel).
    Web,
    /// A handler that took the message out of every other holder.
    Handler,
}

impl Holder {
    /// Every holder, in a fixed order.
    pub const ALL: [Holder; 6] = [
        Holder::Api,
        Holder::Queue,
        Holder::Store,
        Holder::Partition,
        Holder::Web,
        Holder::Handler,
    ];

    /// The name used in traces and messages.
    pub fn name(self) -> &'static str {
        match self {
            Holder::Api => "api",
            Holder::Queue => "queue",
            Holder::Store => "store",
            Holder::Partition => "partition",
            Holder::Web => "web",
            Holder::Handler => "handler",
        }
    }

    /// Whether a message held here has been accepted by the system (counts in the
    /// time-averaged number in the system, for Little's law).
    pub fn accepts(self) -> bool {
        self != Holder::Api
    }
}

/// How a message leaves the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Handled and settled.
    Completed,
    /// Moved to the dead-letter (poison) queue.
    DeadLettered,
    /// Dropped by TTL expiry.
    Expired,
    /// Gone without a trace (in-memory work on a crash, an event skipped past).
    Lost,
    /// Refused (a full queue or channel).
    Rejected,
}

impl Exit {
    /// The name used in traces and in `summary.json` (`messages.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Exit::Completed => "completed",
            Exit::DeadLettered => "dead_lettered",
            Exit::Expired => "expired",
            Exit::Lost => "lost",
            Exit::Rejected => "rejected",
        }
    }
}

/// How many messages each holder holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    held: [u64; Holder::ALL.len()],
}

impl Holdings {
    /// Messages held by `holder`.
    pub fn of(&self, holder: Holder) -> u64 {
        self.held[holder as usize]
    }

    /// Messages in the system: admitted and not yet left, whoever holds them.
    pub fn in_flight(&self) -> u64 {
        self.held.iter().sum()
    }

    /// Messages accepted and not yet left (everything but what an API still holds).
    pub fn accepted(&self) -> u64 {
        self.in_flight() - self.of(Holder::Api)
    }

    pub(crate) fn add(&mut self, holder: Holder) {
        self.held[holder as usize] += 1;
    }

    /// # Panics
    /// If `holder` holds nothing: a component released a message it did not hold.
    pub(crate) fn remove(&mut self, holder: Holder) {
        let h = &mut self.held[holder as usize];
        *h = h.checked_sub(1).unwrap_or_else(|| {
            panic!("ledger: {} released a message it did not hold", holder.name())
        });
    }
}

/// One traced event: what happened to message `id` at `t` (recorded with tracing on, and
/// shown to the invariant checkers with checks on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// When.
    pub t: Nanos,
    /// The message sequence number ([`Message::id`]).
    pub id: u64,
    /// The message's class.
    pub class: u8,
    /// What happened.
    pub what: Event,
}

/// What happened to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The workload offered it.
    Produced,
    /// A holder took it in (the ledger's admission).
    Admitted(Holder),
    /// One holder passed it to another.
    HandedOver {
        /// The holder that let it go.
        from: Holder,
        /// The holder that took it.
        to: Holder,
    },
    /// It left the system.
    Left(Exit),
    /// Delivered to a handler; `count` is its delivery count (1 = first).
    Delivered {
        /// The delivery count, the first delivery included.
        count: u32,
    },
    /// Its handler failed and gave it back.
    Abandoned,
    /// Its lock (visibility) lapsed before it was settled.
    LockExpired,
    /// Given back unhandled (a prefetched message of an instance that scaled in).
    Released,
    /// A handler's settle found the lock already lost.
    LockLost,
    /// A handler succeeded after the message had already been completed (a duplicate
    /// effect), or had left unhandled (a late success).
    LateSuccess,
    /// A pattern-specific step (`attempt`, `retry_scheduled`, ...).
    Note(&'static str),
}

impl Event {
    /// The name written in `trace.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Event::Produced => "produced",
            Event::Admitted(h) => match h {
                Holder::Api => "requested",
                Holder::Queue => "enqueued",
                Holder::Store => "stored",
                Holder::Partition => "appended",
                Holder::Web => "queued_in_memory",
                Holder::Handler => "taken",
            },
            Event::HandedOver { to, .. } => match to {
                Holder::Queue => "enqueued",
                Holder::Store => "stored",
                Holder::Partition => "appended",
                Holder::Web => "queued_in_memory",
                Holder::Handler => "taken",
                Holder::Api => "requested",
            },
            Event::Left(exit) => exit.name(),
            Event::Delivered { .. } => "delivered",
            Event::Abandoned => "abandoned",
            Event::LockExpired => "lock_expired",
            Event::Released => "released",
            Event::LockLost => "lock_lost",
            Event::LateSuccess => "late_success",
            Event::Note(what) => what,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_sum_and_accepted() {
        let mut h = Holdings::default();
        h.add(Holder::Api);
        h.add(Holder::Queue);
        h.add(Holder::Queue);
        h.add(Holder::Store);
        assert_eq!(h.in_flight(), 4);
        assert_eq!(h.accepted(), 3);
        h.remove(Holder::Queue);
        assert_eq!(h.of(Holder::Queue), 1);
    }

    #[test]
    #[should_panic(expected = "released a message it did not hold")]
    fn releasing_what_is_not_held_is_a_bug() {
        Holdings::default().remove(Holder::Store);
    }
}
