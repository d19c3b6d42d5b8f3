//! # Queue-based load leveling
//!
//! ```text
//!  client ──request──► API ──store+enqueue──► [queue] ──► consumers (competing) ──► services
//!            ◄──202 Accepted── (after `api.accept`)
//! ```
//!
//! Demonstrates:
//! * the API answers fast (the `accept` latency) however large the burst, because it only
//!   enqueues; the queue absorbs the burst as backlog, and the consumers drain it at their
//!   own pace (end-to-end latency and drain time grow instead);
//! * with a `capacity`, a full queue makes the API refuse requests (counted as rejected);
//! * with a `ttl`, messages that wait too long expire instead of being processed.

use crate::check::{Checker, MaxDeliveries};
use crate::ledger::{Holder, Message};
use crate::model::meters::Lat;
use crate::model::queue::Queue;
use crate::patterns::Pattern;
use crate::rng::Rng;
use crate::spec::{PatternKind, Scenario};
use crate::topology::Topology;
use std::cell::RefCell;
use std::rc::Rc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("load-leveling");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "an API answers at once while the queue absorbs a burst",
    section: None,
    processes: &[],
    hosted: true,
    table: None,
    build,
    checkers,
};

/// The API (fed by the workload) in front of the queue, and the consumers behind it.
fn build(t: &Rc<Topology>) {
    t.meters.track_accept(t.scenario.horizon());
    let queue = t.add_queue("queue", t.scenario.queue.clone());
    let api = Rc::new(Api { t: t.clone(), queue: queue.clone(), rng: RefCell::new(t.rng("api")) });
    t.sim.spawn(t.clone().produce(move |mut msg| {
        // The request is at the API from the moment it arrives, before its handler runs:
        // a run never ends with a request that nobody holds.
        api.t.meters.admit(&mut msg, Holder::Api);
        api.t.sim.spawn(api.clone().accept(msg));
    }));
    t.start_workers(queue);
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    vec![Box::new(MaxDeliveries::new(s.queue.max_delivery_count))]
}

/// The API in front of the queue.
struct Api {
    t: Rc<Topology>,
    queue: Rc<Queue>,
    rng: RefCell<Rng>,
}

impl Api {
    /// One request: store and enqueue the message, then answer 202 Accepted.
    async fn accept(self: Rc<Self>, msg: Message) {
        let t = &self.t;
        let requested = t.sim.now_ns();
        let took = t.scenario.api.accept.sample(&mut self.rng.borrow_mut());
        t.sim.sleep(took).await;
        if self.queue.send(msg, Some(Holder::Api)) {
            t.meters.latency(Lat::Accept, requested, t.sim.now_ns() - requested);
        }
    }
}
