//! The standard queue worker: the handler most queue-consuming patterns run on each
//! delivered message.
//!
//! ```text
//!  delivery ──► work (consumer.work) ──► call each service in order ──► complete
//!                                              │ any failure, or a poison message
//!                                              └──────────────────────────► abandon
//! ```
//!
//! An abandoned message goes back to the queue, which delivers it again or dead-letters it
//! at `max_delivery_count`.

use crate::dist::Dist;
use crate::engine::Sim;
use crate::model::host::{Host, Instance};
use crate::model::meters::{Lat, Meters};
use crate::model::queue::{Delivery, Queue};
use crate::model::service::Downstream;
use crate::model::trigger::Handler;
use std::rc::Rc;

/// The standard worker's handler.
pub struct Worker {
    /// The engine.
    pub sim: Sim,
    /// Where its messages come from and are settled.
    pub queue: Rc<Queue>,
    /// The pool it runs in (CPU accounting for a WebJob's web tier).
    pub host: Rc<Host>,
    /// Latency statistics.
    pub meters: Rc<Meters>,
    /// The handler's own work per message, drawn from the instance's stream.
    pub work: Dist,
    /// The downstream calls it makes.
    pub calls: Downstream,
    /// The class whose messages always fail (`poison`), if any.
    pub poison: Option<u8>,
}

impl Handler for Worker {
    /// Do the work, call the downstream services, then complete the message; on any
    /// failure abandon it so the broker can deliver it again (or dead-letter it).
    async fn handle(&self, inst: &Rc<Instance>, delivery: Delivery) {
        let started = self.sim.now_ns();
        let work = delivery.msg.work(&self.work, &mut inst.rng.borrow_mut());
        self.host.work(inst, work).await;
        let poison = self.poison == Some(delivery.msg.class);
        let ok = !poison && self.calls.call_all().await.is_ok();
        let took = self.sim.now_ns() - started;
        self.meters.latency(Lat::Handler, delivery.msg.accepted_at, took);
        // A settle that finds the lock lost is not an error here: the broker has already
        // made the message visible again, and the ledger counts the duplicate effect.
        let _ = if ok { self.queue.complete(&delivery) } else { self.queue.abandon(&delivery) };
    }
}
