//! The queue trigger: how a consumer instance gets its messages, the way the Functions
//! Service Bus and Storage Queue triggers (and a worker's receive loop) do it.
//!
//! Each instance runs handler slots, long-lived processes that each take a message, run the
//! pattern's [`Handler`] on it and take the next: `concurrency` slots on Service Bus
//! (`maxConcurrentCalls`), `batch_size + newBatchThreshold` for the storage-queue trigger.
//! One slot at a time receives for the whole instance, like the trigger's single receive
//! loop:
//!
//! * Service Bus receives up to `batch_size` messages (no more than the idle slots) and
//!   waits for messages when the queue is empty; a job replica looks once per finished
//!   handler instead, and exits when the queue is empty and nothing is in flight, or once
//!   it has handled its `messages_per_replica`.
//! * With `prefetch` (Service Bus `PrefetchCount`), a long-running instance instead keeps a
//!   receiver in the background that tops the instance's unsettled messages (waiting in the
//!   client buffer or in a handler) up to `prefetch`, and slots take from the buffer. The
//!   locks of buffered messages run unrenewed until a slot takes them.
//! * A storage-queue instance fetches `batch_size` messages whenever its executions in
//!   progress have fallen to `newBatchThreshold`, and backs its polling off while the queue
//!   is empty (100 ms, doubling up to `max_polling_interval`).
//!
//! A pattern written on the trigger reads receive, handle, complete or abandon: it supplies
//! only the handler. A pattern may also give the trigger a [`Gate`], asked before each
//! receive: a listener that pauses (while a circuit breaker is open, say).

use crate::engine::Sim;
use crate::model::host::{Host, Instance};
use crate::model::queue::{Delivery, Queue};
use crate::spec::{ConsumerSpec, QueueKind};
use crate::time::{NS_PER_MS, Nanos};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

/// Asked before each receive of an instance: how many messages it may take now, or `None`
/// to pause (the listener asks again every [`GATE_POLL`]).
pub type Gate = Rc<dyn Fn(&Instance) -> Option<u32>>;

/// How often a paused listener asks its [`Gate`] again.
pub const GATE_POLL: Nanos = 100 * NS_PER_MS;

/// What a pattern does with one delivered message. The trigger has already counted the
/// execution; the handler settles the message (complete or abandon).
pub trait Handler: 'static {
    /// Handles `delivery` on instance `inst`.
    fn handle(&self, inst: &Rc<Instance>, delivery: Delivery) -> impl Future<Output = ()>;
}

/// A queue trigger feeding a consumer pool.
pub struct QueueTrigger {
    sim: Sim,
    queue: Rc<Queue>,
    host: Rc<Host>,
    batch_size: u32,
    concurrency: u32,
    /// Service Bus `PrefetchCount` (0: off).
    prefetch: u32,
    gate: RefCell<Option<Gate>>,
}

impl QueueTrigger {
    /// The trigger of `host`'s instances on `queue`, with the pool's `consumer` settings.
    pub fn new(sim: Sim, queue: Rc<Queue>, host: Rc<Host>, consumer: &ConsumerSpec) -> Self {
        QueueTrigger {
            sim,
            host,
            batch_size: consumer.batch_size,
            concurrency: consumer.concurrency,
            prefetch: match queue.spec().kind {
                QueueKind::ServiceBus => queue.spec().prefetch,
                QueueKind::StorageQueue => 0,
            },
            queue,
            gate: RefCell::new(None),
        }
    }

    /// Asks `gate` before each receive from now on.
    pub fn set_gate(&self, gate: Gate) {
        *self.gate.borrow_mut() = Some(gate);
    }

    /// Waits until the gate lets the instance receive; returns how many messages it may
    /// take, or `None` if the instance stopped meanwhile.
    async fn through_gate(&self, inst: &Rc<Instance>) -> Option<u32> {
        let gate = self.gate.borrow().clone();
        let Some(gate) = gate else { return Some(u32::MAX) };
        loop {
            if !inst.running() {
                return None;
            }
            if let Some(n) = gate(inst) {
                return Some(n.max(1));
            }
            self.sim.sleep(GATE_POLL).await;
        }
    }

    /// The queue this trigger receives from.
    pub fn queue(&self) -> &Rc<Queue> {
        &self.queue
    }

    /// Messages an instance handles at once: `concurrency` on Service Bus
    /// (`maxConcurrentCalls`); `batch_size + newBatchThreshold` for the storage-queue
    /// trigger.
    pub fn slots(&self) -> u32 {
        match self.queue.spec().kind {
            QueueKind::ServiceBus => self.concurrency,
            QueueKind::StorageQueue => self.batch_size + self.new_batch_threshold(),
        }
    }

    /// The storage-queue trigger's `newBatchThreshold` (default `batch_size / 2`).
    pub fn new_batch_threshold(&self) -> u32 {
        self.queue.spec().new_batch_threshold.unwrap_or(self.batch_size / 2)
    }

    /// The scaler's default target per instance: the trigger's own (`batchSize` for
    /// storage queues, `maxConcurrentCalls` for Service Bus).
    pub fn scale_target(&self) -> u32 {
        match self.queue.spec().kind {
            QueueKind::StorageQueue => self.batch_size,
            QueueKind::ServiceBus => self.concurrency,
        }
    }

    /// Starts `count` instances (always-ready ones on an elastic plan), each running
    /// [`QueueTrigger::slots`] handler slots that feed `handler`.
    pub fn start<H: Handler>(self: &Rc<Self>, handler: Rc<H>, count: u32, always_ready: bool) {
        let trigger = Rc::clone(self);
        self.host.start(
            count,
            always_ready,
            self.slots(),
            Rc::new(move |inst: Rc<Instance>, slot| {
                Box::pin(trigger.clone().slot(handler.clone(), inst, slot))
            }),
        );
    }

    /// A handler slot: take the next message, handle it, repeat.
    async fn slot<H: Handler>(self: Rc<Self>, handler: Rc<H>, inst: Rc<Instance>, slot: u32) {
        let prefetching = self.prefetches(&inst);
        let mut received = Vec::with_capacity(self.batch_size as usize);
        loop {
            let next = if prefetching {
                self.next_prefetched(&inst).await
            } else {
                self.next_message(&inst, &mut received).await
            };
            let Some(delivery) = next else { return };
            if prefetching {
                self.queue.handler_started(&delivery); // its lock renewal starts now
            }
            let execution = self.host.begin_execution(&inst, slot, delivery);
            handler.handle(&inst, delivery).await;
            self.host.end_execution(&inst, execution);
        }
    }

    /// Whether `inst` receives through a prefetch buffer: a long-running Service Bus
    /// instance with `prefetch` set (a job replica receives as its own loop does).
    fn prefetches(&self, inst: &Instance) -> bool {
        self.prefetch > 0 && !inst.exit_when_idle
    }

    /// The next message for a slot of a prefetching instance: from the buffer, which the
    /// instance's background receiver fills (started by the first slot that asks).
    async fn next_prefetched(self: &Rc<Self>, inst: &Rc<Instance>) -> Option<Delivery> {
        loop {
            if !inst.running() {
                return None;
            }
            if let Some(d) = inst.take_buffered() {
                return Some(d);
            }
            inst.set_receiver(|| {
                let (me, inst) = (Rc::clone(self), Rc::clone(inst));
                self.sim.spawn_in(inst.group(), async move { me.prefetch_loop(inst).await })
            });
            inst.wait_for_messages(&self.sim).await;
        }
    }

    /// The background receiver of a prefetching instance (`PrefetchCount`): whenever the
    /// instance holds fewer than `prefetch` unsettled messages (buffered or in a handler),
    /// receives the difference, waiting for messages when the queue is empty.
    async fn prefetch_loop(self: Rc<Self>, inst: Rc<Instance>) {
        let mut fetched = Vec::with_capacity(self.prefetch as usize);
        loop {
            if !inst.running() {
                inst.receiver_ended();
                return;
            }
            let unsettled = inst.busy() + inst.buffered();
            if unsettled >= self.prefetch {
                // A slot taking a buffered message moves it into a handler: only an
                // execution that ends (settles its message) makes room.
                inst.wait_execution_end(&self.sim).await;
                continue;
            }
            let Some(limit) = self.through_gate(&inst).await else {
                inst.receiver_ended();
                return;
            };
            let max = (self.prefetch - unsettled).min(limit).max(1);
            self.queue.prefetch(max, inst.group(), &mut fetched).await;
            inst.prefetched(&self.sim, &mut fetched);
        }
    }

    /// The next message for a slot: one the instance already received, or this slot
    /// receives for the whole instance while the others wait. `None` once the instance
    /// takes no more messages (scale-in, or a job replica that found the queue empty).
    async fn next_message(
        &self,
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
            if !inst.begin_fetch(&self.sim) {
                inst.wait_for_messages(&self.sim).await;
                continue;
            }
            let Some(limit) = self.through_gate(inst).await else {
                inst.end_fetch(&self.sim, fetched);
                return None;
            };
            let keep_going = self.receive(inst, limit, fetched).await;
            let mine = (!fetched.is_empty()).then(|| fetched.remove(0));
            inst.end_fetch(&self.sim, fetched);
            if !keep_going {
                self.host.exit(inst);
                return None;
            }
            if mine.is_some() {
                return mine;
            }
        }
    }

    /// Receives for the instance the way its trigger does. Returns false when a job
    /// replica finds the queue empty with nothing in flight: it exits.
    /// At most `limit` messages (the gate's).
    async fn receive(&self, inst: &Rc<Instance>, limit: u32, out: &mut Vec<Delivery>) -> bool {
        let q = &self.queue;
        match q.spec().kind {
            QueueKind::ServiceBus => {
                let idle = inst.slots() - inst.busy();
                let max = idle.min(self.batch_size).min(limit).max(1);
                if !inst.exit_when_idle {
                    q.receive(max, inst.group(), out).await;
                    return true;
                }
                loop {
                    // A replica with a message quota takes no more than what is left of it.
                    let left = inst.quota_left();
                    if left > 0 {
                        q.try_receive(max.min(left), inst.group(), out);
                        inst.took(out.len());
                    }
                    if !out.is_empty() {
                        return true;
                    }
                    if inst.busy() == 0 {
                        return false;
                    }
                    inst.wait_busy_at_most(&self.sim, inst.busy() - 1).await;
                }
            }
            QueueKind::StorageQueue => {
                let mut empty_polls = 0;
                loop {
                    inst.wait_busy_at_most(&self.sim, self.new_batch_threshold()).await;
                    let left = inst.quota_left();
                    if left > 0 {
                        q.try_receive(self.batch_size.min(limit).min(left), inst.group(), out);
                        inst.took(out.len());
                    }
                    if !out.is_empty() {
                        return true;
                    }
                    if inst.exit_when_idle && inst.busy() == 0 {
                        return false;
                    }
                    if left == 0 {
                        // its quota taken: it exits once what it runs has ended
                        inst.wait_busy_at_most(&self.sim, inst.busy() - 1).await;
                        continue;
                    }
                    let wait = poll_backoff(empty_polls, q.spec().max_polling_interval);
                    self.sim.sleep(wait).await;
                    empty_polls += 1;
                }
            }
        }
    }
}

/// The wait after the `n`-th consecutive empty poll (0-based): 100 ms, doubling, capped.
pub fn poll_backoff(n: u32, max: Nanos) -> Nanos {
    (100 * NS_PER_MS).saturating_mul(1 << n.min(40)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NS_PER_MIN;

    #[test]
    fn polling_backs_off_from_100ms_doubling_to_the_cap() {
        let waits: Vec<Nanos> = (0..12).map(|n| poll_backoff(n, NS_PER_MIN) / NS_PER_MS).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
    }
}
