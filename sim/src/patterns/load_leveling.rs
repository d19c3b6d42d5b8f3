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

use crate::model::meters::Lat;
use crate::patterns::competing_consumers;
use crate::world::World;
use std::rc::Rc;

/// Starts the API (fed by the workload) and the consumers.
pub fn start(world: &Rc<World>) {
    world.meters.track_accept(world.scenario.horizon());
    world.sim.spawn(world.clone().produce(|w, class| {
        w.sim.spawn(accept(w.clone(), class));
    }));
    competing_consumers::start_consumers(world);
}

/// One request to the API: store and enqueue the message, then answer 202 Accepted.
async fn accept(w: Rc<World>, class: u8) {
    let requested = w.sim.now_ns();
    w.meters.hold_outside();
    let took = w.scenario.api.accept.sample(&mut w.api_rng.borrow_mut());
    w.sim.sleep(took).await;
    let accepted = w.queue.send(class);
    w.meters.release_outside();
    if accepted {
        w.meters.latency(Lat::Accept, requested, w.sim.now_ns() - requested);
    }
}
