//! Checkers of the priority pattern's guarantees, written against message events.
//!
//! Both follow the messages waiting (visible) in the class queues: a message waits from its
//! admission to the queue, and again from an abandon, a lapsed lock or a release, until it
//! is delivered or leaves. Where a storage queue holds an abandoned message back for
//! `abandon_delay`, the events do not say when it becomes visible again, so such a message
//! is not followed until its next delivery (the checks stay sound, only less complete).

use crate::check::{Checker, Violation};
use crate::ledger::Holder;
use crate::model::meters::{Event, TraceEvent};
use crate::results::RunResults;
use crate::spec::{QueueKind, QueueSpec};
use std::collections::BTreeMap;

/// The messages waiting in each class queue, in the order they joined its back.
#[derive(Debug, Default)]
struct Waiting {
    /// By class: ticket → message id (the front is the lowest ticket).
    lines: BTreeMap<u8, BTreeMap<u64, u64>>,
    /// Message id → (class, ticket).
    of: BTreeMap<u64, (u8, u64)>,
    next_ticket: u64,
    /// Whether an abandoned message is held back before it is visible again.
    delayed_abandon: bool,
}

/// What an event did to the waiting line.
enum Change {
    /// Joined the back of its class queue.
    Joined,
    /// Delivered from the line: `(ticket, was it the front of its class)`.
    Delivered { front: bool },
    /// Anything else.
    Other,
}

impl Waiting {
    fn new(queue: &QueueSpec) -> Waiting {
        Waiting {
            delayed_abandon: queue.kind == QueueKind::StorageQueue && queue.abandon_delay > 0,
            ..Default::default()
        }
    }

    fn join(&mut self, e: &TraceEvent) {
        self.leave(e.id);
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.lines.entry(e.class).or_default().insert(ticket, e.id);
        self.of.insert(e.id, (e.class, ticket));
    }

    fn leave(&mut self, id: u64) -> Option<(u8, u64)> {
        let (class, ticket) = self.of.remove(&id)?;
        if let Some(line) = self.lines.get_mut(&class) {
            line.remove(&ticket);
        }
        Some((class, ticket))
    }

    fn observe(&mut self, e: &TraceEvent) -> Change {
        match e.what {
            Event::Admitted(Holder::Queue)
            | Event::HandedOver { to: Holder::Queue, .. }
            | Event::LockExpired
            | Event::Released => {
                self.join(e);
                Change::Joined
            }
            Event::Abandoned if !self.delayed_abandon => {
                self.join(e);
                Change::Joined
            }
            Event::Abandoned => {
                self.leave(e.id);
                Change::Other
            }
            Event::Delivered { .. } => {
                let Some((class, ticket)) = self.of.get(&e.id).copied() else {
                    return Change::Other;
                };
                let front = self
                    .lines
                    .get(&class)
                    .and_then(|l| l.keys().next())
                    .is_none_or(|t| *t == ticket);
                self.leave(e.id);
                Change::Delivered { front }
            }
            Event::Left(_) => {
                self.leave(e.id);
                Change::Other
            }
            _ => Change::Other,
        }
    }

    /// Whether a message of a class ranked above `rank` waits.
    fn higher_waits(&self, rank: &[usize], below: usize) -> Option<u8> {
        self.lines
            .iter()
            .find(|(c, line)| {
                !line.is_empty() && rank.get(**c as usize).is_some_and(|r| *r < below)
            })
            .map(|(c, _)| *c)
    }
}

fn push(found: &mut Vec<Violation>, checker: &'static str, e: &TraceEvent, message: String) {
    if found.len() < 100 {
        found.push(Violation { checker, at: e.t, message });
    }
}

/// Each class queue is first in, first out, and a message given back (abandoned, its lock
/// lapsed, released unhandled) joins the back of its own class queue: a delivered message
/// is always the oldest waiting of its class.
#[derive(Debug)]
pub struct ClassFifo {
    waiting: Waiting,
    found: Vec<Violation>,
}

impl ClassFifo {
    /// A checker for class queues with the `queue` settings.
    pub fn new(queue: &QueueSpec) -> ClassFifo {
        ClassFifo { waiting: Waiting::new(queue), found: Vec::new() }
    }
}

impl Checker for ClassFifo {
    fn name(&self) -> &'static str {
        "class-fifo"
    }

    fn observe(&mut self, e: &TraceEvent) {
        if let Change::Delivered { front: false } = self.waiting.observe(e) {
            let message = format!(
                "message {} of class {} delivered while older messages of its class waited \
                 (a given-back message must join the back of its class queue)",
                e.id, e.class
            );
            push(&mut self.found, "class-fifo", e, message);
        }
    }

    fn finish(&mut self, _: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
    }
}

/// Strict priority: no message is delivered while a message of a higher class waits.
#[derive(Debug)]
pub struct StrictOrder {
    waiting: Waiting,
    /// Each class's rank (0 = highest), by class index.
    rank: Vec<usize>,
    found: Vec<Violation>,
}

impl StrictOrder {
    /// A checker for class queues with the `queue` settings, ranked by `rank`.
    pub fn new(queue: &QueueSpec, rank: Vec<usize>) -> StrictOrder {
        StrictOrder { waiting: Waiting::new(queue), rank, found: Vec::new() }
    }
}

impl Checker for StrictOrder {
    fn name(&self) -> &'static str {
        "strict-priority"
    }

    fn observe(&mut self, e: &TraceEvent) {
        let delivered = matches!(e.what, Event::Delivered { .. });
        self.waiting.observe(e);
        if !delivered {
            return;
        }
        let mine = self.rank.get(e.class as usize).copied().unwrap_or(usize::MAX);
        if let Some(higher) = self.waiting.higher_waits(&self.rank, mine) {
            let message = format!(
                "message {} of class {} delivered while a message of the higher class {higher} \
                 waited",
                e.id, e.class
            );
            push(&mut self.found, "strict-priority", e, message);
        }
    }

    fn finish(&mut self, _: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
    }
}
