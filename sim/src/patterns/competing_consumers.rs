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
//! What is left here is the consumer itself: receive, handle, complete or abandon.

use crate::check::{Checker, MaxDeliveries};
use crate::model::host::{Host, Instance};
use crate::model::meters::Lat;
use crate::model::queue::{Delivery, Queue};
use crate::model::service::Downstream;
use crate::model::trigger::Handler;
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
    hosted: true,
    table: None,
    build,
    checkers,
};

/// A producer sending straight to the queue, and the consumer pool.
fn build(t: &Rc<Topology>) {
    let queue = t.add_queue("queue", t.scenario.queue.clone());
    let q = queue.clone();
    t.sim.spawn(t.clone().produce(move |msg| {
        q.send(msg, None);
    }));
    start_consumers(t, queue);
}

/// Adds the `consumer` pool on `queue` and starts it with the competing consumer's
/// handler. Patterns that put something in front of the queue reuse it.
pub fn start_consumers(t: &Rc<Topology>, queue: Rc<Queue>) {
    let c = &t.scenario.consumer;
    let trigger = t.add_pool("consumer", queue.clone(), c);
    let host = t.pool("consumer").expect("just added").0;
    let consumer = Consumer { t: t.clone(), queue, host, calls: t.downstream(&c.calls) };
    t.start_pool(&trigger, c.instances, consumer);
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    vec![Box::new(MaxDeliveries::new(s.queue.max_delivery_count))]
}

/// The consumer's handler.
pub struct Consumer {
    t: Rc<Topology>,
    queue: Rc<Queue>,
    host: Rc<Host>,
    calls: Downstream,
}

impl Handler for Consumer {
    /// Do the work, call the downstream services, then complete the message; on any
    /// failure abandon it so the broker can deliver it again (or dead-letter it).
    async fn handle(&self, inst: &Rc<Instance>, delivery: Delivery) {
        let t = &self.t;
        let started = t.sim.now_ns();
        let work = t.scenario.consumer.work.sample(&mut inst.rng.borrow_mut());
        t.sim.sleep(work).await;
        self.host.cpu_work(work);
        let ok = !t.is_poison(delivery.msg.class) && self.calls.call_all().await.is_ok();
        t.meters.latency(Lat::Handler, delivery.msg.accepted_at, t.sim.now_ns() - started);
        // A settle that finds the lock lost is not an error here: the broker has already
        // made the message visible again, and the ledger counts the duplicate effect.
        let _ = if ok { self.queue.complete(&delivery) } else { self.queue.abandon(&delivery) };
    }
}
