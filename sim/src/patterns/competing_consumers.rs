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
//! Each instance runs handler slots, long-lived processes that each take a message, handle
//! it and take the next: `concurrency` slots on Service Bus (`maxConcurrentCalls`),
//! `batch_size + newBatchThreshold` for the storage-queue trigger. One slot at a time
//! receives for the instance, the way the Functions triggers do: Service Bus receives up to
//! `batch_size` messages and waits for messages when the queue is empty; a storage-queue
//! instance fetches `batch_size` messages whenever its in-flight count falls to
//! `newBatchThreshold`, and backs its polling off (100 ms, doubling up to
//! `max_polling_interval`) while the queue is empty.

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

/// Starts the consumer instances: `consumer.instances` of them on a fixed plan, the
/// always-ready `min_instances` on an elastic one (the autoscaler adds the rest). Each runs
/// [`handler_slots`] copies of [`handler_slot`].
pub fn start_consumers(world: &Rc<World>) {
    let w = world.clone();
    let h = &world.scenario.hosting;
    let (count, always_ready) = if h.plan.elastic() {
        (h.scaling.min_instances, true)
    } else {
        (world.scenario.consumer.instances, false)
    };
    let slots = handler_slots(world);
    world.host.start(
        count,
        always_ready,
        slots,
        Rc::new(move |inst: Rc<Instance>, slot| Box::pin(handler_slot(w.clone(), inst, slot))),
    );
}

/// Messages an instance handles at once: `concurrency` on Service Bus (`maxConcurrentCalls`);
/// `batch_size + newBatchThreshold` for the storage-queue trigger.
pub fn handler_slots(w: &World) -> u32 {
    let c = &w.scenario.consumer;
    match w.queue.spec().kind {
        QueueKind::ServiceBus => c.concurrency,
        QueueKind::StorageQueue => c.batch_size + new_batch_threshold(w),
    }
}

fn new_batch_threshold(w: &World) -> u32 {
    w.queue.spec().new_batch_threshold.unwrap_or(w.scenario.consumer.batch_size / 2)
}

/// A handler slot: the competing consumer's loop. Take the next message, handle it, repeat.
pub async fn handler_slot(w: Rc<World>, inst: Rc<Instance>, slot: u32) {
    let mut received = Vec::with_capacity(w.scenario.consumer.batch_size as usize);
    while let Some(delivery) = next_message(&w, &inst, &mut received).await {
        let execution = w.host.begin_execution(&inst, slot, delivery);
        handle(&w, &inst, delivery).await;
        w.host.end_execution(&inst, execution);
    }
}

/// The next message for a slot: one the instance already received, or this slot receives
/// for the whole instance (one slot at a time, like the trigger's single receive loop) while
/// the others wait. `None` once the instance takes no more messages (scale-in, or a job
/// replica that found the queue empty).
async fn next_message(
    w: &Rc<World>,
    inst: &Rc<Instance>,
    fetched: &mut Vec<Delivery>,
) -> Option<Delivery> {
    loop {
        if !inst.running() {
            return None;
        }
        if let Some(d) = inst.take_buffered() {
            return Some(d);
        }
        if !inst.begin_fetch(&w.sim) {
            inst.wait_for_messages(&w.sim).await;
            continue;
        }
        let keep_going = receive(w, inst, fetched).await;
        let mine = (!fetched.is_empty()).then(|| fetched.remove(0));
        inst.end_fetch(&w.sim, fetched);
        if !keep_going {
            w.host.exit(inst);
            return None;
        }
        if mine.is_some() {
            return mine;
        }
    }
}

/// Receives for the instance the way its trigger does. Returns false when a job replica
/// finds the queue empty with nothing in flight: it exits.
///
/// * Service Bus: up to `batch_size` messages, no more than the idle slots, waiting for the
///   first if the queue is empty (a job replica looks once per finished handler instead).
/// * Storage queue: `batch_size` messages once the executions in progress have fallen to
///   `newBatchThreshold`; while the queue is empty, poll again after 100 ms, doubling up to
///   `max_polling_interval`.
async fn receive(w: &Rc<World>, inst: &Rc<Instance>, out: &mut Vec<Delivery>) -> bool {
    let c = &w.scenario.consumer;
    match w.queue.spec().kind {
        QueueKind::ServiceBus => {
            let idle = inst.slots() - inst.busy();
            let max = idle.min(c.batch_size).max(1);
            if !inst.exit_when_idle {
                w.queue.receive(max, inst.group(), out).await;
                return true;
            }
            loop {
                w.queue.try_receive(max, inst.group(), out);
                if !out.is_empty() {
                    return true;
                }
                if inst.busy() == 0 {
                    return false;
                }
                inst.wait_busy_at_most(&w.sim, inst.busy() - 1).await;
            }
        }
        QueueKind::StorageQueue => {
            let mut empty_polls = 0;
            loop {
                inst.wait_busy_at_most(&w.sim, new_batch_threshold(w)).await;
                w.queue.try_receive(c.batch_size, inst.group(), out);
                if !out.is_empty() {
                    return true;
                }
                if inst.exit_when_idle && inst.busy() == 0 {
                    return false;
                }
                let wait = poll_backoff(empty_polls, w.queue.spec().max_polling_interval);
                w.sim.sleep(wait).await;
                empty_polls += 1;
            }
        }
    }
}

/// The wait after the `n`-th consecutive empty poll (0-based): 100 ms, doubling, capped.
pub fn poll_backoff(n: u32, max: Nanos) -> Nanos {
    (100 * NS_PER_MS).saturating_mul(1 << n.min(40)).min(max)
}

/// The handler: do the work, call the downstream services, then complete the message; on
/// any failure abandon it so the broker can deliver it again (or dead-letter it).
pub async fn handle(w: &World, inst: &Instance, delivery: Delivery) {
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
