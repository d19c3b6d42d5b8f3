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
//! The receive loop follows the Functions triggers: a Service Bus instance keeps up to
//! `concurrency` handlers busy, receiving up to `batch_size` messages at a time and waiting
//! for messages when the queue is empty; a storage-queue instance fetches `batch_size`
//! messages whenever its in-flight count falls to `newBatchThreshold`, and backs its polling
//! off (100 ms, doubling up to `max_polling_interval`) while the queue is empty.

use crate::model::host::Instance;
use crate::model::meters::Lat;
use crate::model::queue::Delivery;
use crate::spec::QueueKind;
use crate::time::{NS_PER_MS, Nanos};
use crate::world::World;
use std::rc::Rc;

/// Starts the producer (sending straight to the queue) and the consumer instances.
pub fn start(world: &Rc<World>) {
    world.sim.spawn(world.clone().produce(|w, class| {
        w.queue.send(class);
    }));
    start_consumers(world);
}

/// Starts the consumer instances, each running [`consume`]: `consumer.instances` of them
/// on a fixed plan, the always-ready `min_instances` on an elastic one (the autoscaler adds
/// the rest).
pub fn start_consumers(world: &Rc<World>) {
    let w = world.clone();
    let h = &world.scenario.hosting;
    let (count, always_ready) = if h.plan.elastic() {
        (h.scaling.min_instances, true)
    } else {
        (world.scenario.consumer.instances, false)
    };
    world.host.start(
        count,
        always_ready,
        Rc::new(move |inst: Rc<Instance>| {
            w.host.spawn_pump(&inst, consume(w.clone(), inst.clone()));
        }),
    );
}

/// One instance's receive loop: keep the handlers busy with messages from the queue.
pub async fn consume(w: Rc<World>, inst: Rc<Instance>) {
    let c = &w.scenario.consumer;
    let mut batch: Vec<Delivery> = Vec::with_capacity(c.batch_size as usize);
    match w.queue.spec().kind {
        QueueKind::ServiceBus => loop {
            inst.wait_busy_at_most(&w.sim, c.concurrency - 1).await;
            let free = c.concurrency - inst.busy();
            if inst.exit_when_idle {
                // A job replica takes what is there, and exits once the queue is empty and
                // its own handlers are done.
                w.queue.try_receive(free.min(c.batch_size), inst.group(), &mut batch);
                if batch.is_empty() {
                    if inst.busy() == 0 {
                        return w.host.exit(&inst);
                    }
                    inst.wait_busy_at_most(&w.sim, inst.busy() - 1).await;
                    continue;
                }
            } else {
                w.queue.receive(free.min(c.batch_size), inst.group(), &mut batch).await;
            }
            dispatch(&w, &inst, &mut batch);
        },
        QueueKind::StorageQueue => {
            let threshold = w.queue.spec().new_batch_threshold.unwrap_or(c.batch_size / 2);
            let mut empty_polls = 0;
            loop {
                inst.wait_busy_at_most(&w.sim, threshold).await;
                w.queue.try_receive(c.batch_size, inst.group(), &mut batch);
                if batch.is_empty() {
                    if inst.exit_when_idle && inst.busy() == 0 {
                        return w.host.exit(&inst);
                    }
                    let wait = poll_backoff(empty_polls, w.queue.spec().max_polling_interval);
                    w.sim.sleep(wait).await;
                    empty_polls += 1;
                    continue;
                }
                empty_polls = 0;
                dispatch(&w, &inst, &mut batch);
            }
        }
    }
}

/// Starts a handler on `inst` for each received message.
fn dispatch(w: &Rc<World>, inst: &Rc<Instance>, batch: &mut Vec<Delivery>) {
    for delivery in batch.drain(..) {
        w.host.run_handler(inst, Some(delivery), handle(w.clone(), inst.clone(), delivery));
    }
}

/// The wait after the `n`-th consecutive empty poll (0-based): 100 ms, doubling, capped.
pub fn poll_backoff(n: u32, max: Nanos) -> Nanos {
    (100 * NS_PER_MS).saturating_mul(1 << n.min(40)).min(max)
}

/// The handler: do the work, call the downstream services, then complete the message; on
/// any failure abandon it so the broker can deliver it again (or dead-letter it).
pub async fn handle(w: Rc<World>, inst: Rc<Instance>, delivery: Delivery) {
    let started = w.sim.now_ns();
    let work = w.scenario.consumer.work.sample(&mut inst.rng.borrow_mut());
    w.sim.sleep(work).await;
    w.host.cpu_work(work);
    let ok = !w.is_poison(delivery.class) && w.call_all().await.is_ok();
    w.meters.latency(Lat::Handler, delivery.accepted_at, w.sim.now_ns() - started);
    // A settle that finds the lock lost is not an error here: the broker has already made
    // the message visible again, and the ledger counts the duplicate effect.
    let _ = if ok { w.queue.complete(&delivery) } else { w.queue.abandon(&delivery) };
}
