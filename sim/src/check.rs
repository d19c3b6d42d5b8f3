//! Invariant checkers, written apart from the patterns they judge.
//!
//! A checker watches what a run does (typed [`crate::ledger::TraceEvent`]s and the
//! final [`crate::results::RunResults`]) and reports every guarantee that was broken as a
//! [`Violation`]. Tests and `sluice check` share them: a run started with
//! [`crate::RunOptions::checks`] carries its violations in
//! [`crate::results::RunResults::violations`].

pub mod priority;
pub mod stream;

pub use crate::results::Violation;

use crate::ledger::Exit;
use crate::ledger::{Event, TraceEvent};
use crate::results::RunResults;
use std::collections::BTreeMap;

/// An invariant checker: it watches every event of a run as it happens, then judges the
/// results. Checkers hold only what they need about messages still in flight, so they do
/// not grow with the run.
pub trait Checker {
    /// The checker's name, shown with its violations.
    fn name(&self) -> &'static str;
    /// Sees one event, in simulated-time order.
    fn observe(&mut self, event: &TraceEvent);
    /// Judges the run once it has ended, adding what it found to `out`.
    fn finish(&mut self, results: &RunResults, out: &mut Vec<Violation>);
}

/// The checkers every run gets: [`LedgerBalance`] and [`OneLife`].
pub fn common() -> Vec<Box<dyn Checker>> {
    vec![Box::new(LedgerBalance), Box::new(OneLife::default())]
}

/// `produced = rejected + completed + dead_lettered + expired + lost + in_flight`, for the
/// whole run and for every class, and the classes add up to the whole.
#[derive(Debug, Default)]
pub struct LedgerBalance;

impl Checker for LedgerBalance {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn observe(&mut self, _: &TraceEvent) {}

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        let l = &r.ledger;
        if !l.balances() {
            out.push(Violation {
                checker: self.name(),
                at: r.sim_time,
                message: format!(
                    "produced {} != rejected {} + completed {} + dead-lettered {} + expired {} \
                     + lost {} + in flight {}",
                    l.produced,
                    l.rejected,
                    l.completed,
                    l.dead_lettered,
                    l.expired,
                    l.lost,
                    l.in_flight
                ),
            });
        }
        if r.classes.is_empty() {
            return;
        }
        type Field = fn(&crate::results::Ledger) -> u64;
        let sum = |f: Field| -> u64 { r.classes.iter().map(|c| f(&c.ledger)).sum() };
        let fields: [(&str, Field); 6] = [
            ("produced", |l| l.produced),
            ("rejected", |l| l.rejected),
            ("completed", |l| l.completed),
            ("dead_lettered", |l| l.dead_lettered),
            ("expired", |l| l.expired),
            ("lost", |l| l.lost),
        ];
        for (name, f) in fields {
            if sum(f) != f(l) {
                out.push(Violation {
                    checker: self.name(),
                    at: r.sim_time,
                    message: format!("classes' {name} add up to {}, not {}", sum(f), f(l)),
                });
            }
        }
    }
}

/// Every message is admitted at most once, and leaves at most once by exactly one exit;
/// nothing happens to a message after it left except a handler on a lapsed lock finishing
/// (counted as a duplicate or a late success).
#[derive(Debug, Default)]
pub struct OneLife {
    /// Messages produced so far (ids are given in production order).
    produced: u64,
    /// Messages admitted and not yet left.
    live: BTreeMap<u64, ()>,
    found: Vec<Violation>,
}

impl OneLife {
    fn broken(&mut self, e: &TraceEvent, what: String) {
        if self.found.len() < 100 {
            self.found.push(Violation { checker: "one-life", at: e.t, message: what });
        }
    }
}

impl Checker for OneLife {
    fn name(&self) -> &'static str {
        "one-life"
    }

    fn observe(&mut self, e: &TraceEvent) {
        match e.what {
            Event::Produced => self.produced = self.produced.max(e.id + 1),
            Event::Admitted(h) => {
                if e.id >= self.produced {
                    self.broken(
                        e,
                        format!("message {} admitted by {} before it was produced", e.id, h.name()),
                    );
                } else if self.live.insert(e.id, ()).is_some() {
                    self.broken(
                        e,
                        format!("message {} admitted twice (again by {})", e.id, h.name()),
                    );
                }
            }
            Event::Left(Exit::Rejected) if !self.live.contains_key(&e.id) => {}
            Event::Left(exit) if self.live.remove(&e.id).is_none() => {
                self.broken(
                    e,
                    format!("message {} left ({}) but was not in the system", e.id, exit.name()),
                );
            }
            Event::HandedOver { .. } | Event::Delivered { .. } | Event::Abandoned
                if !self.live.contains_key(&e.id) =>
            {
                self.broken(
                    e,
                    format!("message {} {} after it left the system", e.id, e.what.name()),
                );
            }
            _ => {}
        }
    }

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
        if self.live.len() as u64 != r.ledger.in_flight {
            out.push(Violation {
                checker: self.name(),
                at: r.sim_time,
                message: format!(
                    "{} messages still in the system by their events, the ledger says {}",
                    self.live.len(),
                    r.ledger.in_flight
                ),
            });
        }
    }
}

/// No message is delivered more than `max_delivery_count` times (Service Bus
/// `MaxDeliveryCount`, storage queue `maxDequeueCount`).
#[derive(Debug)]
pub struct MaxDeliveries {
    /// The limit.
    pub max: u32,
    found: Vec<Violation>,
}

impl MaxDeliveries {
    /// A checker for at most `max` deliveries per message.
    pub fn new(max: u32) -> MaxDeliveries {
        MaxDeliveries { max, found: Vec::new() }
    }
}

impl Checker for MaxDeliveries {
    fn name(&self) -> &'static str {
        "max-deliveries"
    }

    fn observe(&mut self, e: &TraceEvent) {
        if let Event::Delivered { count } = e.what
            && count > self.max
            && self.found.len() < 100
        {
            self.found.push(Violation {
                checker: "max-deliveries",
                at: e.t,
                message: format!(
                    "message {} delivered {count} times, max_delivery_count is {}",
                    e.id, self.max
                ),
            });
        }
    }

    fn finish(&mut self, _: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
    }
}

/// Asks every checker for its verdict on `results`.
pub fn verdicts(checkers: &mut [Box<dyn Checker>], results: &RunResults) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in checkers {
        c.finish(results, &mut out);
    }
    out
}
