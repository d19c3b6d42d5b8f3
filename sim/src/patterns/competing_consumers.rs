//! # Competing consumers
//!
//! ```text
//!                        ┌──────────── instance 0 ────────────┐
//!  producer ──send──► [queue] ──receive(batch)──► handler × concurrency ──► services
//!                        │  ▲                └──────────── instance 1 ... N-1 ─┘
//!                        │  └── abandon / lock expiry (crash) ── redelivery
//!                        └──► dead-letter queue after max_delivery_count deliveries
//! ```
//!
//! Demonstrates:
//! * throughput that scales with instances × concurrency until the queue runs dry;
//! * a crash drops in-flight work, and the broker redelivers it when the locks expire: nothing
//!   is lost, and the redeliveries (and any duplicate effects) are counted;
//! * poison messages are delivered exactly `max_delivery_count` times, then dead-lettered.
//!
//! The instances receive through the queue trigger ([`crate::model::trigger`]): batches,
//! `newBatchThreshold`, polling back-off, job replicas that exit when the queue is empty.
//! Each delivery runs the standard worker ([`crate::model::worker`]): the handler's work,
//! the downstream calls in order, then complete, or abandon on any failure.

use crate::check::{Checker, MaxDeliveries};
use crate::patterns::Pattern;
use crate::spec::{PatternKind, Scenario};
use crate::topology::Topology;
use std::rc::Rc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("competing-consumers");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "N instances, batch receive, redelivery after a crash, poison to the DLQ",
    section: None,
    processes: &[],
    hosted: true,
    table: None,
    build,
    checkers,
};

/// A producer sending straight to the queue, and the consumer pool running the standard
/// worker ([`crate::model::worker`]): receive, work, call, complete or abandon.
fn build(t: &Rc<Topology>) {
    let queue = t.add_queue("queue", t.scenario.queue.clone());
    let q = queue.clone();
    t.sim.spawn(t.clone().produce(move |msg| {
        q.send(msg, None);
    }));
    t.start_workers(queue);
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    vec![Box::new(MaxDeliveries::new(s.queue.max_delivery_count))]
}
