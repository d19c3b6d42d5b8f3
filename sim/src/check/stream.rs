//! Checkers of the event-stream pattern's guarantees, written against message events.
//!
//! The stream's handlers mark each event's first effect with a `effect` note (and every
//! later one with `duplicate_effect`); an event leaves the stream at a checkpoint: completed,
//! lost (skipped) or handed over to the parked queue.

use crate::check::{Checker, Violation};
use crate::ledger::{Event, Exit, Holder, TraceEvent};
use crate::model::stream::Partitioner;
use crate::results::RunResults;
use std::collections::BTreeMap;

fn push(found: &mut Vec<Violation>, checker: &'static str, e: &TraceEvent, message: String) {
    if found.len() < 100 {
        found.push(Violation { checker, at: e.t, message });
    }
}

/// Order within a partition: the first effects of a partition's events come in the order
/// the events were appended (a replay may apply an event again, never an earlier event
/// after a later one), except for events a last attempt gave up on (`given_up`: skipped or
/// parked, which lets later events go first by design). The partition of each event is
/// worked out again from the same partitioner, fed every produced event in production
/// order.
#[derive(Debug)]
pub struct PartitionOrder {
    partitioner: Partitioner,
    /// Events in the stream: id → (partition, given up).
    live: BTreeMap<u64, (u32, bool)>,
    /// Per partition: the highest id that has had its first effect.
    last: BTreeMap<u32, u64>,
    found: Vec<Violation>,
}

impl PartitionOrder {
    /// A checker for events placed by `partitioner` (a fresh one: the run's own draws).
    pub fn new(partitioner: Partitioner) -> PartitionOrder {
        PartitionOrder {
            partitioner,
            live: BTreeMap::new(),
            last: BTreeMap::new(),
            found: Vec::new(),
        }
    }
}

impl Checker for PartitionOrder {
    fn name(&self) -> &'static str {
        "partition-order"
    }

    fn observe(&mut self, e: &TraceEvent) {
        match e.what {
            Event::Produced => {
                let p = self.partitioner.place();
                self.live.insert(e.id, (p, false));
            }
            Event::Note("given_up") => {
                if let Some(entry) = self.live.get_mut(&e.id) {
                    entry.1 = true;
                }
            }
            Event::Note("effect") => {
                let Some(&(p, given_up)) = self.live.get(&e.id) else { return };
                if given_up {
                    return;
                }
                let last = self.last.entry(p).or_insert(e.id);
                if *last > e.id {
                    let message = format!(
                        "event {} of partition {p} had its first effect after event {} of the \
                         same partition (appended later)",
                        e.id, *last
                    );
                    push(&mut self.found, "partition-order", e, message);
                }
                *last = (*last).max(e.id);
            }
            Event::Left(_) | Event::HandedOver { from: Holder::Partition, .. } => {
                self.live.remove(&e.id);
            }
            _ => {}
        }
    }

    fn finish(&mut self, _: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
    }
}

/// What a checkpoint passes is settled honestly: an event leaves the stream completed only
/// if a handler applied its effect; every other event passed is either parked (handed to
/// the parked queue) or lost, and the summary's `stream.skipped` and `stream.parked` count
/// exactly those (`messages.lost` is the skipped events: nothing else loses a message in
/// this pattern).
#[derive(Debug, Default)]
pub struct Settlement {
    /// Events appended and not yet settled: id → whether it had its effect.
    stream: BTreeMap<u64, bool>,
    parked: u64,
    skipped: u64,
    found: Vec<Violation>,
}

impl Checker for Settlement {
    fn name(&self) -> &'static str {
        "stream-settlement"
    }

    fn observe(&mut self, e: &TraceEvent) {
        match e.what {
            Event::Admitted(Holder::Partition) => {
                self.stream.insert(e.id, false);
            }
            Event::Note("effect") => {
                if let Some(done) = self.stream.get_mut(&e.id) {
                    *done = true;
                }
            }
            Event::HandedOver { from: Holder::Partition, to } => {
                self.stream.remove(&e.id);
                if to == Holder::Queue {
                    self.parked += 1;
                }
            }
            Event::Left(exit) => {
                let Some(done) = self.stream.remove(&e.id) else { return };
                match exit {
                    Exit::Completed if !done => {
                        let message = format!(
                            "event {} left the stream completed, but no handler applied its \
                             effect",
                            e.id
                        );
                        push(&mut self.found, "stream-settlement", e, message);
                    }
                    Exit::Lost => self.skipped += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
        let section = r.sections.get("stream");
        let field = |name: &str| section.and_then(|s| s.get(name)).copied().unwrap_or(0.0) as u64;
        for (name, seen) in [("skipped", self.skipped), ("parked", self.parked)] {
            if field(name) != seen {
                out.push(Violation {
                    checker: "stream-settlement",
                    at: r.sim_time,
                    message: format!(
                        "stream.{name} is {}, but {seen} events were {name} at a checkpoint",
                        field(name)
                    ),
                });
            }
        }
        if r.ledger.lost != self.skipped {
            out.push(Violation {
                checker: "stream-settlement",
                at: r.sim_time,
                message: format!(
                    "messages.lost is {}, but {} events were skipped",
                    r.ledger.lost, self.skipped
                ),
            });
        }
    }
}
