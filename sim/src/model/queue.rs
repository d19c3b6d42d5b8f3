//! The broker: an Azure Storage Queue or Service Bus queue.
//!
//! ```text
//!  send ──► [ visible ] ──receive──► locked ──complete──► gone (completed)
//!              ▲   ▲                   │
//!              │   └──── abandon ──────┤ (storage queue: after `abandon_delay`)
//!              └────── lock expiry ────┘ (a crashed handler never settles)
//!  each delivery counts; at `max_delivery_count` an abandon or expiry dead-letters instead
//! ```
//!
//! Semantics (sources in `docs/sources.md`):
//! * Peek-lock / visibility timeout: a received message is invisible for
//!   `visibility_timeout`; if it is not settled by then it becomes visible again.
//! * The delivery (dequeue) count rises with every delivery; a message that fails its
//!   `max_delivery_count`-th delivery goes to the dead-letter (`-poison`) queue, so it is
//!   delivered exactly `max_delivery_count` times at most.
//! * Lock renewal: while its receiver lives, a handler's lock is renewed before it runs out
//!   (Service Bus: `min(remaining / 2, 10 s)` before) until `lock_renewal` (Functions
//!   `maxAutoLockRenewalDuration`, 5 min) after the handler started; a crashed receiver
//!   renews nothing, so its locks lapse after `visibility_timeout`.
//! * Prefetch (Service Bus): a message received into a client's buffer is locked from the
//!   receive, but its lock is not renewed until a handler takes it ([`Queue::prefetch`],
//!   [`Queue::handler_started`]); one that runs out in the buffer comes back like any.
//! * TTL: a message older than `ttl` is never delivered; it expires.
//! * Service Bus delivers in sequence order, so a message that becomes visible again goes
//!   to the front; a storage queue makes no order promise and it goes to the back.
//! * `capacity` bounds the messages held (visible + locked + delayed); a send to a full
//!   queue is rejected.
//!
//! Lock expiries are not one timer per message: locks are kept in a FIFO (every lock has
//! the same duration, so expiry order is lock order) and one keeper process sleeps until
//! the oldest unsettled lock, skipping the settled ones.

use crate::engine::{Sim, TaskId, WaitList};
use crate::ledger::{Exit, Holder, Message};
use crate::model::lanes::{Lanes, Requeue, Starvation};
use crate::model::meters::{Event, Lat, Meters};
use crate::spec::{QueueKind, QueueSpec};
use crate::time::{Nanos, SimTime};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Visible,
    Locked,
    Delayed,
}

#[derive(Clone, Copy, Debug)]
struct Msg {
    msg: Message,
    deliveries: u32,
    /// Changes with every delivery, so a settle with an old lock is recognised.
    token: u32,
    state: State,
    /// Successful handler executions so far.
    handled: u32,
    /// Since when the receiver renews the current lock (and counts `lock_renewal` from):
    /// the receive, or for a prefetched delivery the start of its handler ([`Queue::
    /// handler_started`]); `Nanos::MAX` while a prefetched delivery waits in the buffer.
    renew_from: Nanos,
    /// When the current lock of a prefetched delivery runs out unless renewed.
    lock_until: Nanos,
    /// Changes when a prefetched delivery's handler starts, so the lock events scheduled
    /// while it waited in the buffer are recognised as stale.
    epoch: u32,
    /// Who holds the current lock (a consumer instance's executor group): its receiver
    /// renews the lock while it lives.
    holder: u32,
    /// A lock of this message lapsed while its handler lived: that handler may still
    /// succeed after the message has left the queue.
    late: bool,
    /// A copy of a message the ledger has already accounted for ([`Queue::send_copy`]).
    copy: bool,
}

/// What is due at a prefetched delivery's lock event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LockEvent {
    /// The lock runs out (it was not renewed).
    Lapse,
    /// The receiver decides whether to renew: the first renewal after the handler started.
    Renew,
}

/// A prefetched delivery's lock event: `(due, cell, token, epoch, what)`.
type PrefetchedLock = (Nanos, u32, u32, u32, LockEvent);

/// A message handed to a handler: the lock on one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    cell: u32,
    token: u32,
    /// The message.
    pub msg: Message,
    /// Which delivery this is (1 = first).
    pub delivery_count: u32,
    /// A delivery of a copy ([`Queue::send_copy`]): settling it touches no ledger account.
    pub copy: bool,
}

/// Why a settle failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The lock had expired (the message was or will be delivered again).
    LockLost,
}

/// Counters and levels of the queue.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueStats {
    /// Broker operations: sends, receives (empty ones too), completes, abandons.
    pub operations: u64,
}

struct Inner {
    msgs: Vec<Msg>,
    free: Vec<u32>,
    /// The visible messages (one FIFO lane unless [`Queue::set_lanes`] split them).
    visible: Lanes,
    /// How long each class waits unreceived, when watched ([`Queue::watch_starvation`]).
    watch: Option<Starvation>,
    /// Locks by the time of their next renewal decision (`renewal_lead` before expiry).
    locks: VecDeque<(Nanos, u32, u32)>,
    /// Locks that will not be renewed, by expiry.
    lapsing: VecDeque<(Nanos, u32, u32)>,
    /// Lock events of prefetched deliveries, whose times do not follow receive order:
    /// `(due, cell, token, epoch, what)`, earliest first.
    prefetched: BinaryHeap<Reverse<PrefetchedLock>>,
    delayed: VecDeque<(Nanos, u32, u32)>,
    held: u64,
    locked: u64,
    /// Messages waiting (visible or delayed); its peak and time average are kept, for all
    /// queues together, by the meters.
    backlog: u64,
    operations: u64,
    keeper: Option<TaskId>,
    keeper_armed: Nanos,
    /// Lock holders that are gone (crashed instances): their locks are not renewed.
    gone: std::collections::BTreeSet<u32>,
    /// Messages that left the queue while a handler whose lock had lapsed may still finish,
    /// with whether they had been handled successfully (see [`Queue::complete`]).
    late: std::collections::BTreeMap<u64, bool>,
}

impl Inner {
    /// A message leaves the queue (completed, dead-lettered or expired): its cell is free.
    fn free_cell(&mut self, cell: u32) {
        let m = self.msgs[cell as usize];
        if m.late && !m.copy {
            self.late.insert(m.msg.id, m.handled > 0);
        }
        self.msgs[cell as usize].state = State::Free;
        self.free.push(cell);
    }
}

/// A queue with Azure semantics.
pub struct Queue {
    spec: QueueSpec,
    sim: Sim,
    meters: Rc<Meters>,
    inner: RefCell<Inner>,
    /// Receivers waiting for a message (Service Bus receive).
    arrivals: WaitList,
    /// Windows in which lock renewals fail.
    renewal_failures: RefCell<Vec<(Nanos, Nanos)>>,
}

impl Queue {
    /// An empty queue. Call [`Queue::start`] to run its lock keeper.
    pub fn new(spec: QueueSpec, sim: Sim, meters: Rc<Meters>) -> Rc<Queue> {
        Rc::new(Queue {
            spec,
            sim,
            meters,
            inner: RefCell::new(Inner {
                msgs: Vec::new(),
                free: Vec::new(),
                visible: Lanes::one(),
                watch: None,
                locks: VecDeque::new(),
                lapsing: VecDeque::new(),
                prefetched: BinaryHeap::new(),
                delayed: VecDeque::new(),
                held: 0,
                locked: 0,
                backlog: 0,
                operations: 0,
                keeper: None,
                keeper_armed: 0,
                gone: Default::default(),
                late: Default::default(),
            }),
            arrivals: WaitList::new(),
            renewal_failures: RefCell::new(Vec::new()),
        })
    }

    /// The queue's settings.
    pub fn spec(&self) -> &QueueSpec {
        &self.spec
    }

    /// Splits the visible messages into `lanes` (by class, highest first), and says where
    /// a released message goes. Call before the first send.
    pub fn set_lanes(&self, lanes: Lanes) {
        let mut q = self.inner.borrow_mut();
        debug_assert!(q.visible.is_empty(), "lanes are set before the first send");
        q.visible = lanes;
    }

    /// Watches how long each class waits with messages visible and none received.
    pub fn watch_starvation(&self, watch: Starvation) {
        self.inner.borrow_mut().watch = Some(watch);
    }

    /// Messages of `class` visible now, and how long the class has waited without a
    /// receive (0 and 0 when not watched): the levels a per-class time-series column needs.
    pub fn class_waiting(&self, class: u8) -> (u64, Nanos) {
        let q = self.inner.borrow();
        q.watch.as_ref().map_or((0, 0), |w| (w.waiting(class), w.open(class, self.sim.now_ns())))
    }

    /// Reports the watched stretches still open now (at the end of a run) as ended.
    pub fn close_starvation(&self) {
        let now = self.sim.now_ns();
        if let Some(w) = self.inner.borrow_mut().watch.as_mut() {
            w.close_open(now);
        }
    }

    /// Starts the keeper process that expires locks and releases delayed messages.
    pub fn start(self: &Rc<Self>) {
        let q = Rc::clone(self);
        let id = self.sim.spawn(async move { q.keeper().await });
        self.inner.borrow_mut().keeper = Some(id);
    }

    /// Sends `msg` now, taking it from `from` (`None`: a producer sending straight to the
    /// queue, the queue admits it). Returns false when the queue is full: the message is
    /// rejected (and leaves `from`).
    pub fn send(&self, msg: Message, from: Option<Holder>) -> bool {
        self.put(msg, from, false)
    }

    /// Sends another copy of `msg`, a message the ledger has already accounted for (a relay
    /// that publishes the same event twice). The copy waits, is delivered, locked,
    /// abandoned and dead-lettered like any message and counts in the backlog and the
    /// deliveries, but admits nothing and leaves by no ledger exit: whoever sends copies
    /// counts what becomes of them. Returns false when the queue is full (the copy is
    /// dropped).
    pub fn send_copy(&self, msg: Message) -> bool {
        self.put(msg, None, true)
    }

    fn put(&self, mut msg: Message, from: Option<Holder>, copy: bool) -> bool {
        let now = self.sim.now_ns();
        let full = {
            let mut q = self.inner.borrow_mut();
            q.operations += 1;
            self.spec.capacity > 0 && q.held >= self.spec.capacity
        };
        if full {
            match from {
                _ if copy => {}
                None => self.meters.reject(&msg),
                Some(h) => self.meters.exit(&msg, h, Exit::Rejected),
            }
            return false;
        }
        match from {
            _ if copy => self.meters.trace(&msg, Event::Note("copy_sent")),
            None => self.meters.admit(&mut msg, Holder::Queue),
            Some(h) => self.meters.hand_over(&mut msg, h, Holder::Queue),
        }
        {
            let mut q = self.inner.borrow_mut();
            let class = msg.class;
            let m = Msg {
                msg,
                deliveries: 0,
                token: 0,
                state: State::Visible,
                handled: 0,
                renew_from: 0,
                lock_until: 0,
                epoch: 0,
                holder: 0,
                late: false,
                copy,
            };
            let index = match q.free.pop() {
                Some(i) => {
                    // Tokens keep counting across reuses of a cell, so a stale lock entry
                    // of the cell's previous message can never match the new one.
                    let token = q.msgs[i as usize].token;
                    q.msgs[i as usize] = Msg { token, ..m };
                    i
                }
                None => {
                    q.msgs.push(m);
                    (q.msgs.len() - 1) as u32
                }
            };
            q.visible.push_back(index, class);
            if let Some(w) = q.watch.as_mut() {
                w.visible(class, now);
            }
            q.held += 1;
            q.backlog += 1;
            self.meters.backlog_changed(now, 1);
        }
        self.arrivals.notify_one_live(&self.sim);
        true
    }

    /// Receives up to `max` messages now, without waiting. Expired messages met on the way
    /// are dropped (TTL). Counts one broker operation, even when nothing is received.
    pub fn try_receive(&self, max: u32, holder: u32, out: &mut Vec<Delivery>) {
        self.try_receive_as(max, holder, out, false);
    }

    /// [`Queue::try_receive`], into a client's prefetch buffer when `prefetched`: the locks
    /// run from now, but the receiver renews none of them before its handler starts
    /// ([`Queue::handler_started`]).
    fn try_receive_as(&self, max: u32, holder: u32, out: &mut Vec<Delivery>, prefetched: bool) {
        let now = self.sim.now_ns();
        let mut guard = self.inner.borrow_mut();
        let q = &mut *guard;
        q.operations += 1;
        let mut expired = Vec::new();
        let mut deepest = 0;
        while out.len() < max as usize {
            let Some((cell, lane)) = q.visible.pop_front() else {
                break;
            };
            deepest = deepest.max(lane);
            let vt = self.spec.visibility_timeout;
            let m = &mut q.msgs[cell as usize];
            debug_assert_eq!(m.state, State::Visible);
            let expires =
                self.spec.ttl.is_some_and(|ttl| now >= m.msg.accepted_at.saturating_add(ttl));
            if let Some(w) = q.watch.as_mut() {
                w.gone(m.msg.class, now, !expires);
            }
            if expires {
                if !m.copy {
                    expired.push(m.msg);
                }
                q.free_cell(cell);
                q.held -= 1;
                q.backlog -= 1;
                self.meters.backlog_changed(now, -1);
                continue;
            }
            m.deliveries += 1;
            m.token = m.token.wrapping_add(1);
            m.state = State::Locked;
            m.renew_from = if prefetched { Nanos::MAX } else { now };
            m.lock_until = now + vt;
            m.epoch = 0;
            m.holder = holder;
            let d = Delivery {
                cell,
                token: m.token,
                msg: m.msg,
                delivery_count: m.deliveries,
                copy: m.copy,
            };
            if prefetched {
                q.prefetched.push(Reverse((now + vt, cell, d.token, 0, LockEvent::Lapse)));
            } else {
                q.locks.push_back((now + vt - self.renewal_lead(), cell, d.token));
            }
            q.locked += 1;
            q.backlog -= 1;
            self.meters.backlog_changed(now, -1);
            out.push(d);
        }
        // A receiver of several class queues asks each in turn, highest first, down to the
        // one that filled its batch (or all of them).
        let asked = if out.len() < max as usize { q.visible.count() } else { deepest + 1 };
        q.operations += asked as u64 - 1;
        // Every new lock event is due after those already scheduled, unless prefetched.
        let wake_keeper = !out.is_empty() && (q.keeper_armed <= now || prefetched);
        drop(guard);
        for msg in &expired {
            self.meters.exit(msg, Holder::Queue, Exit::Expired);
        }
        for d in out.iter() {
            self.meters.delivered();
            if d.copy {
                self.meters.trace(&d.msg, Event::Note("copy_delivered"));
                continue;
            }
            self.meters.trace(&d.msg, Event::Delivered { count: d.delivery_count });
            if d.delivery_count == 1 {
                let accepted = d.msg.accepted_at;
                self.meters.latency(Lat::QueueWait, accepted, now - accepted);
            }
        }
        if wake_keeper {
            self.wake_keeper();
        }
    }

    /// Receives up to `max` messages, waiting for the first if the queue is empty (a
    /// Service Bus receiver's long poll).
    pub async fn receive(&self, max: u32, holder: u32, out: &mut Vec<Delivery>) {
        loop {
            self.try_receive(max, holder, out);
            if !out.is_empty() {
                return;
            }
            self.arrivals.wait(&self.sim).await;
        }
    }

    /// Receives up to `max` messages into a client's prefetch buffer, waiting for the first
    /// if the queue is empty: the Service Bus receiver of a processor with `PrefetchCount`
    /// topping its buffer up. Each lock runs from now and is not renewed until the
    /// message's handler starts ([`Queue::handler_started`]).
    pub async fn prefetch(&self, max: u32, holder: u32, out: &mut Vec<Delivery>) {
        loop {
            self.try_receive_as(max, holder, out, true);
            if !out.is_empty() {
                return;
            }
            self.arrivals.wait(&self.sim).await;
        }
    }

    /// A handler took the prefetched delivery `d` from the buffer: its receiver starts
    /// renewing the lock now (for `lock_renewal` from now), the first time
    /// `min(remaining / 2, 10 s)` before it runs out. A lock that ran out in the buffer is
    /// not renewed: the handler runs on a lost lock and its settle fails.
    pub fn handler_started(&self, d: &Delivery) {
        let now = self.sim.now_ns();
        let mut q = self.inner.borrow_mut();
        let Some(m) = Self::lookup(&mut q, d) else { return };
        if !(m.state == State::Locked && m.token == d.token && m.renew_from == Nanos::MAX) {
            return;
        }
        m.renew_from = now;
        m.epoch = m.epoch.wrapping_add(1);
        let (until, epoch) = (m.lock_until, m.epoch);
        let remaining = until.saturating_sub(now);
        let lead = (remaining / 2).min(10 * crate::time::NS_PER_S);
        let event = if self.renewal_lead() > 0 && remaining > 0 {
            (until - lead, d.cell, d.token, epoch, LockEvent::Renew)
        } else {
            (until, d.cell, d.token, epoch, LockEvent::Lapse)
        };
        q.prefetched.push(Reverse(event));
        let wake = q.keeper_armed <= now || event.0 < q.keeper_armed;
        drop(q);
        if wake {
            self.wake_keeper();
        }
    }

    /// Receives up to `max` messages, waiting for the first until `until` at the latest
    /// (`None`: as long as it takes): a receive with a server wait time, as Service Bus's
    /// `ReceiveMessagesAsync(maxMessages, maxWaitTime)`. Returns with `out` empty when the
    /// wait ran out.
    pub async fn receive_within(
        &self,
        max: u32,
        holder: u32,
        out: &mut Vec<Delivery>,
        until: Option<Nanos>,
    ) {
        loop {
            self.try_receive(max, holder, out);
            if !out.is_empty() || until.is_some_and(|u| self.sim.now_ns() >= u) {
                return;
            }
            if let Some(u) = until {
                self.sim.wake_at(SimTime(u));
            }
            self.arrivals.wait(&self.sim).await;
            self.arrivals.cancel(&self.sim);
        }
    }

    fn lookup<'a>(q: &'a mut Inner, d: &Delivery) -> Option<&'a mut Msg> {
        let m = q.msgs.get_mut(d.cell as usize)?;
        (m.state != State::Free && m.msg.id == d.msg.id).then_some(m)
    }

    /// The handler succeeded: settle the message as completed. Counts a duplicate if the
    /// message had already been handled successfully. Fails if the lock was lost (the
    /// message will be delivered again, and its next success will count as a duplicate).
    pub fn complete(&self, d: &Delivery) -> Result<(), Settle> {
        let mut q = self.inner.borrow_mut();
        q.operations += 1;
        let Some(m) = Self::lookup(&mut q, d) else {
            if d.copy {
                return Err(Settle::LockLost);
            }
            // The message left while this handler ran on a lapsed lock. If it had been
            // handled, this is a duplicate effect; if it left unhandled (dead-lettered or
            // expired), an effect the ledger's exits do not show.
            let handled_before = q.late.remove(&d.msg.id).unwrap_or(true);
            drop(q);
            if handled_before {
                self.meters.duplicate();
            } else {
                self.meters.late_success();
            }
            self.meters.trace(&d.msg, Event::LateSuccess);
            return Err(Settle::LockLost);
        };
        m.handled += 1;
        let duplicate = m.handled > 1 && !d.copy;
        let ok = m.state == State::Locked && m.token == d.token;
        if ok {
            q.free_cell(d.cell);
            q.held -= 1;
            q.locked -= 1;
        }
        drop(q);
        if duplicate {
            self.meters.duplicate();
        }
        match (ok, d.copy) {
            (true, false) => {
                self.meters.exit(&d.msg, Holder::Queue, Exit::Completed);
                Ok(())
            }
            (true, true) => Ok(()),
            (false, copy) => {
                self.meters.trace(
                    &d.msg,
                    if copy { Event::Note("copy_lock_lost") } else { Event::LockLost },
                );
                Err(Settle::LockLost)
            }
        }
    }

    /// The handler failed: release the message for another delivery, or dead-letter it if
    /// this was its last allowed delivery.
    pub fn abandon(&self, d: &Delivery) -> Result<(), Settle> {
        self.meters.failed();
        let mut q = self.inner.borrow_mut();
        q.operations += 1;
        match Self::lookup(&mut q, d) {
            Some(m) if m.state == State::Locked && m.token == d.token => {
                q.locked -= 1;
                drop(q);
                let event = if d.copy { Event::Note("copy_abandoned") } else { Event::Abandoned };
                self.meters.trace(&d.msg, event);
                self.release(d.cell, self.spec.abandon_delay);
                Ok(())
            }
            _ => Err(Settle::LockLost),
        }
    }

    /// Gives back a message that was received (prefetched) but never handled, e.g. by an
    /// instance that is scaled in: like an abandon, but not a failed execution.
    pub fn release_unprocessed(&self, d: &Delivery) {
        let mut q = self.inner.borrow_mut();
        q.operations += 1;
        if let Some(m) = Self::lookup(&mut q, d)
            && m.state == State::Locked
            && m.token == d.token
        {
            q.locked -= 1;
            drop(q);
            self.meters.trace(&d.msg, Event::Released);
            self.release(d.cell, 0);
        }
    }

    /// Makes a message that just stopped being locked visible again (after `delay`), or
    /// dead-letters it at its last delivery.
    fn release(&self, cell: u32, delay: Nanos) {
        let now = self.sim.now_ns();
        let mut q = self.inner.borrow_mut();
        let m = q.msgs[cell as usize];
        if m.deliveries >= self.spec.max_delivery_count {
            q.free_cell(cell);
            q.held -= 1;
            drop(q);
            if m.copy {
                self.meters.trace(&m.msg, Event::Note("copy_dead_lettered"));
            } else {
                self.meters.exit(&m.msg, Holder::Queue, Exit::DeadLettered);
            }
            return;
        }
        q.backlog += 1;
        self.meters.backlog_changed(now, 1);
        if delay > 0 && self.spec.kind == QueueKind::StorageQueue {
            q.msgs[cell as usize].state = State::Delayed;
            let due = now + delay;
            q.delayed.push_back((due, cell, m.token));
            let wake = q.keeper_armed <= now || due < q.keeper_armed;
            drop(q);
            if wake {
                self.wake_keeper();
            }
            return;
        }
        q.msgs[cell as usize].state = State::Visible;
        let requeue = q.visible.requeue().unwrap_or(match self.spec.kind {
            QueueKind::ServiceBus => Requeue::Front,
            QueueKind::StorageQueue => Requeue::Back,
        });
        let class = m.msg.class;
        match requeue {
            Requeue::Front => q.visible.push_front(cell, class),
            Requeue::Back => q.visible.push_back(cell, class),
        }
        if let Some(w) = q.watch.as_mut() {
            w.visible(class, now);
        }
        drop(q);
        self.arrivals.notify_one_live(&self.sim);
    }

    fn wake_keeper(&self) {
        if let Some(k) = self.inner.borrow().keeper {
            self.sim.wake(k);
        }
    }

    /// Expires due locks and releases due delayed messages; returns the next due time.
    fn expire_due(&self) -> Option<Nanos> {
        let now = self.sim.now_ns();
        let mut next = None;
        loop {
            let mut q = self.inner.borrow_mut();
            let Some(&(due, cell, token)) = q.locks.front() else {
                break;
            };
            let m = q.msgs[cell as usize];
            if !(m.state == State::Locked && m.token == token) {
                q.locks.pop_front(); // settled already
                continue;
            }
            if due > now {
                next = Some(due);
                break;
            }
            q.locks.pop_front();
            // The receiver's renewal is due now, `lead` before the lock expires.
            let lead = self.renewal_lead();
            let renewing = lead > 0 && self.renews(&q, &m, now);
            if renewing {
                // Every lock is decided the same `lead` before its expiry, so the next
                // decision (expiry now + lock duration) keeps the FIFO in time order.
                q.locks.push_back((now + self.spec.visibility_timeout - lead, cell, token));
                continue;
            }
            if lead > 0 {
                // Not renewed: the lock runs out at its expiry, `lead` from now.
                q.lapsing.push_back((now + lead, cell, token));
                continue;
            }
            self.lapse(q, cell);
        }
        loop {
            let q = self.inner.borrow_mut();
            let Some(&(due, cell, token)) = q.lapsing.front() else {
                break;
            };
            let m = q.msgs[cell as usize];
            let mut q = q;
            if !(m.state == State::Locked && m.token == token) {
                q.lapsing.pop_front(); // settled before its lock ran out
                continue;
            }
            if due > now {
                next = Some(next.map_or(due, |n: Nanos| n.min(due)));
                break;
            }
            q.lapsing.pop_front();
            self.lapse(q, cell);
        }
        loop {
            let mut q = self.inner.borrow_mut();
            let Some(&Reverse((due, cell, token, epoch, what))) = q.prefetched.peek() else {
                break;
            };
            let m = q.msgs[cell as usize];
            if !(m.state == State::Locked && m.token == token && m.epoch == epoch) {
                q.prefetched.pop(); // settled, lapsed, or superseded when its handler started
                continue;
            }
            if due > now {
                next = Some(next.map_or(due, |n: Nanos| n.min(due)));
                break;
            }
            q.prefetched.pop();
            let renewing = what == LockEvent::Renew && self.renews(&q, &m, now);
            match what {
                LockEvent::Renew if renewing => {
                    // Renewed: from here on like any renewed lock (decided `lead` before
                    // each expiry), and later than every lock already in the FIFO.
                    let lead = self.renewal_lead();
                    q.locks.push_back((now + self.spec.visibility_timeout - lead, cell, token));
                }
                LockEvent::Renew => {
                    q.prefetched.push(Reverse((
                        m.lock_until,
                        cell,
                        token,
                        epoch,
                        LockEvent::Lapse,
                    )));
                }
                LockEvent::Lapse => self.lapse(q, cell),
            }
        }
        loop {
            let mut q = self.inner.borrow_mut();
            let Some(&(due, cell, token)) = q.delayed.front() else {
                break;
            };
            let m = q.msgs[cell as usize];
            if !(m.state == State::Delayed && m.token == token) {
                q.delayed.pop_front();
                continue;
            }
            if due > now {
                next = Some(next.map_or(due, |n: Nanos| n.min(due)));
                break;
            }
            q.delayed.pop_front();
            q.msgs[cell as usize].state = State::Visible;
            q.visible.push_back(cell, m.msg.class);
            if let Some(w) = q.watch.as_mut() {
                w.visible(m.msg.class, now);
            }
            drop(q);
            self.arrivals.notify_one_live(&self.sim);
        }
        next
    }

    /// How long before a lock's expiry its receiver renews it; 0 = no renewal. Service Bus
    /// (the SDK's `CalculateRenewDelay`): `min(lock / 2, 10 s)` before it; the storage-queue
    /// listener: halfway, every `visibility_timeout / 2`.
    fn renewal_lead(&self) -> Nanos {
        let lock = self.spec.visibility_timeout;
        match (self.spec.lock_renewal, self.spec.kind) {
            (0, _) => 0,
            (_, QueueKind::ServiceBus) => (lock / 2).min(10 * crate::time::NS_PER_S),
            (_, QueueKind::StorageQueue) => lock / 2,
        }
    }

    /// Whether the receiver of `m` renews its lock at `now`: it is alive, less than
    /// `lock_renewal` has passed since the handler started, and no fault fails the renewal.
    fn renews(&self, q: &Inner, m: &Msg, now: Nanos) -> bool {
        now < m.renew_from.saturating_add(self.spec.lock_renewal)
            && !q.gone.contains(&m.holder)
            && !self.renewal_fails(now)
    }

    /// Whether a renewal attempted now fails (a `renewal-failure` fault window).
    fn renewal_fails(&self, now: Nanos) -> bool {
        self.renewal_failures.borrow().iter().any(|&(from, to)| from <= now && now < to)
    }

    /// Renewals attempted in `[from, to)` fail: the locks they would have extended run out at
    /// their current expiry, under handlers that keep running (their settle finds the lock
    /// lost).
    pub fn fail_renewals(&self, from: Nanos, to: Nanos) {
        self.renewal_failures.borrow_mut().push((from, to));
    }

    /// The lock on `cell` has run out: the message becomes visible again (or is
    /// dead-lettered at its last delivery).
    fn lapse(&self, mut q: std::cell::RefMut<'_, Inner>, cell: u32) {
        let m = q.msgs[cell as usize];
        q.locked -= 1;
        if !q.gone.contains(&m.holder) {
            q.msgs[cell as usize].late = true; // its handler lives on and may still finish
        }
        drop(q);
        self.meters.trace(&m.msg, Event::LockExpired);
        self.release(cell, 0);
    }

    /// The keeper process: wakes at the next lock expiry or delayed release (or when told
    /// that there is a new one) and processes what is due.
    async fn keeper(&self) {
        loop {
            let next = self.expire_due();
            let now = self.sim.now_ns();
            {
                let mut q = self.inner.borrow_mut();
                match next {
                    Some(t) if q.keeper_armed <= now || t < q.keeper_armed => {
                        q.keeper_armed = t;
                        drop(q);
                        self.sim.wake_at(SimTime(t));
                    }
                    Some(_) => {}
                    None => q.keeper_armed = 0,
                }
            }
            self.sim.suspend().await;
        }
    }

    /// Drops expired messages from the front of the queue (called once per interval, so
    /// the backlog does not carry messages that can no longer be delivered).
    pub fn sweep_expired(&self, all: bool) {
        let Some(ttl) = self.spec.ttl else { return };
        let now = self.sim.now_ns();
        let mut expired = Vec::new();
        {
            let mut q = self.inner.borrow_mut();
            for lane in 0..q.visible.count() {
                let mut keep = VecDeque::new();
                while let Some(cell) = q.visible.front_of(lane) {
                    let m = q.msgs[cell as usize];
                    if now >= m.msg.accepted_at.saturating_add(ttl) {
                        q.visible.pop_front_of(lane);
                        q.free_cell(cell);
                        q.held -= 1;
                        q.backlog -= 1;
                        if let Some(w) = q.watch.as_mut() {
                            w.gone(m.msg.class, now, false);
                        }
                        self.meters.backlog_changed(now, -1);
                        if !m.copy {
                            expired.push(m.msg);
                        }
                    } else if all {
                        keep.push_back(q.visible.pop_front_of(lane).expect("front"));
                    } else {
                        break;
                    }
                }
                if all {
                    q.visible.replace_lane(lane, keep);
                }
            }
        }
        for msg in &expired {
            self.meters.exit(msg, Holder::Queue, Exit::Expired);
        }
    }

    /// The lock holder `holder` is gone (its instance crashed): its locks lapse.
    pub fn holder_gone(&self, holder: u32) {
        self.inner.borrow_mut().gone.insert(holder);
    }

    /// Messages waiting to be delivered (visible or delayed).
    pub fn backlog(&self) -> u64 {
        self.inner.borrow().backlog
    }

    /// Messages locked by a handler.
    pub fn locked(&self) -> u64 {
        self.inner.borrow().locked
    }

    /// Messages held (waiting or locked).
    pub fn held(&self) -> u64 {
        self.inner.borrow().held
    }

    /// Broker operations so far.
    pub fn operations(&self) -> u64 {
        self.inner.borrow().operations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Message;
    use crate::spec::QueueSpec;
    use crate::time::{NS_PER_H, NS_PER_S};

    /// A queue on a fresh engine, its meters, and a producer of messages of class 0.
    fn setup(spec: QueueSpec) -> (Sim, Rc<Meters>, Rc<Queue>) {
        let sim = Sim::new();
        let meters = Rc::new(Meters::new(sim.clone(), NS_PER_H, 0, true, &[], None));
        let queue = Queue::new(spec, sim.clone(), meters.clone());
        queue.start();
        (sim, meters, queue)
    }

    fn send(meters: &Meters, queue: &Queue) -> Message {
        let msg = meters.produce(0);
        assert!(queue.send(msg, None));
        msg
    }

    fn receive(queue: &Queue, max: u32) -> Vec<Delivery> {
        let mut out = Vec::new();
        queue.try_receive(max, 1, &mut out);
        out
    }

    #[test]
    fn send_receive_complete_leaves_nothing_behind() {
        let (_sim, meters, q) = setup(QueueSpec::service_bus());
        let m = send(&meters, &q);
        assert_eq!((q.backlog(), q.held()), (1, 1));
        let d = receive(&q, 10);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].msg.id, d[0].delivery_count), (m.id, 1));
        assert_eq!((q.backlog(), q.locked()), (0, 1));
        assert_eq!(q.complete(&d[0]), Ok(()));
        assert_eq!((q.held(), q.locked()), (0, 0));
        assert_eq!(meters.holdings().in_flight(), 0);
        assert_eq!(q.complete(&d[0]), Err(Settle::LockLost), "a second settle finds no lock");
    }

    #[test]
    fn a_copy_is_delivered_like_any_message_and_touches_no_ledger_account() {
        let spec = QueueSpec { max_delivery_count: 2, ..QueueSpec::service_bus() };
        let (sim, meters, q) = setup(spec);
        let m = send(&meters, &q);
        assert!(q.send_copy(m));
        assert!(q.send_copy(m));
        assert_eq!((q.backlog(), q.held()), (3, 3));
        assert_eq!(meters.holdings().in_flight(), 1, "the ledger holds the message once");
        let d = receive(&q, 10);
        assert_eq!(
            d.iter().map(|d| (d.msg.id, d.copy)).collect::<Vec<_>>(),
            [(m.id, false), (m.id, true), (m.id, true)]
        );
        assert_eq!(q.complete(&d[0]), Ok(()));
        assert_eq!(meters.holdings().in_flight(), 0, "the original completes the message");
        assert_eq!(q.complete(&d[1]), Ok(()), "a copy completes after the original");
        // the other copy is abandoned until it is dead-lettered: no ledger exit either
        assert_eq!(q.abandon(&d[2]), Ok(()));
        let again = receive(&q, 10);
        assert_eq!((again.len(), again[0].copy, again[0].delivery_count), (1, true, 2));
        assert_eq!(q.abandon(&again[0]), Ok(()));
        assert_eq!((q.held(), q.backlog()), (0, 0));
        sim.shutdown();
        drop(q);
        let l = Rc::try_unwrap(meters).ok().expect("one owner").finish().ledger;
        assert_eq!((l.produced, l.completed, l.dead_lettered, l.duplicates), (1, 1, 0, 0));
        assert_eq!(l.deliveries, 4);
    }

    #[test]
    fn abandon_redelivers_until_the_last_delivery_then_dead_letters() {
        let spec = QueueSpec { max_delivery_count: 3, ..QueueSpec::service_bus() };
        let (_sim, meters, q) = setup(spec);
        send(&meters, &q);
        for count in 1..=3 {
            let d = receive(&q, 1);
            assert_eq!(d[0].delivery_count, count);
            assert_eq!(q.abandon(&d[0]), Ok(()));
        }
        assert_eq!((q.held(), q.backlog()), (0, 0), "dead-lettered after the third delivery");
        assert!(receive(&q, 1).is_empty());
        assert_eq!(meters.holdings().in_flight(), 0);
    }

    #[test]
    fn a_full_queue_rejects_and_the_ledger_never_admits() {
        let spec = QueueSpec { capacity: 1, ..QueueSpec::service_bus() };
        let (_sim, meters, q) = setup(spec);
        send(&meters, &q);
        let second = meters.produce(0);
        assert!(!q.send(second, None));
        assert_eq!(q.held(), 1);
        assert_eq!(meters.holdings().in_flight(), 1);
    }

    #[test]
    fn an_unsettled_lock_lapses_after_the_visibility_timeout() {
        let vt = 30 * NS_PER_S;
        let spec =
            QueueSpec { visibility_timeout: vt, lock_renewal: 0, ..QueueSpec::storage_queue() };
        let (sim, meters, q) = setup(spec);
        send(&meters, &q);
        let first = receive(&q, 1);
        assert_eq!(first.len(), 1);
        sim.run_until(SimTime(vt - 1));
        assert_eq!(q.backlog(), 0, "still locked just before the timeout");
        sim.run_until(SimTime(vt));
        assert_eq!(q.backlog(), 1, "visible again at the timeout");
        let again = receive(&q, 1);
        assert_eq!(again[0].delivery_count, 2);
        assert_eq!(q.complete(&first[0]), Err(Settle::LockLost), "the old lock is gone");
        assert_eq!(q.complete(&again[0]), Ok(()));
        sim.shutdown();
    }

    /// When a live handler's lock runs out, for a lock duration and renewal limit.
    fn lapse_of_a_live_lock(spec: QueueSpec) -> Nanos {
        let (sim, meters, q) = setup(spec);
        send(&meters, &q);
        let _held = receive(&q, 1);
        let mut t = 0;
        while q.backlog() == 0 {
            t += NS_PER_S;
            at(&sim, t);
        }
        sim.shutdown();
        t
    }

    fn at(sim: &Sim, t: Nanos) {
        let clock = sim.clone();
        sim.spawn(async move { clock.sleep_until(SimTime(t)).await });
        sim.run_until(SimTime(t));
    }

    #[test]
    fn service_bus_renews_ten_seconds_before_expiry_until_the_renewal_limit() {
        // The SDK renews min(lock/2, 10 s) before expiry while less than
        // maxAutoLockRenewalDuration has passed: renewals at 50, 100 ... 250 s for a 60 s
        // lock, so a live handler loses it at 310 s, not 300 s.
        let s = NS_PER_S;
        let sb = |lock: Nanos, limit: Nanos| QueueSpec {
            visibility_timeout: lock,
            lock_renewal: limit,
            ..QueueSpec::service_bus()
        };
        assert_eq!(lapse_of_a_live_lock(sb(60 * s, 300 * s)), 310 * s);
        assert_eq!(lapse_of_a_live_lock(sb(30 * s, 300 * s)), 310 * s);
        assert_eq!(lapse_of_a_live_lock(sb(300 * s, 300 * s)), 590 * s);
        assert_eq!(lapse_of_a_live_lock(sb(60 * s, 90 * s)), 110 * s);
        assert_eq!(lapse_of_a_live_lock(sb(60 * s, 0)), 60 * s);
    }

    #[test]
    fn the_storage_queue_listener_renews_visibility_for_as_long_as_the_handler_runs() {
        let (sim, meters, q) = setup(QueueSpec::storage_queue());
        send(&meters, &q);
        let held = receive(&q, 1);
        at(&sim, 3 * NS_PER_H / 2);
        assert_eq!(q.backlog(), 0, "still invisible after 90 minutes of a live handler");
        assert_eq!(q.complete(&held[0]), Ok(()), "and completes on its first delivery");
        sim.shutdown();
    }

    #[test]
    fn a_crashed_receivers_storage_queue_message_reappears_ten_minutes_after_the_last_renewal() {
        let (sim, meters, q) = setup(QueueSpec::storage_queue());
        send(&meters, &q);
        let _held = receive(&q, 1);
        at(&sim, 7 * 60 * NS_PER_S);
        q.holder_gone(1); // renewed at 5 min, so visible at 15 min
        at(&sim, 15 * 60 * NS_PER_S - 1);
        assert_eq!(q.backlog(), 0);
        at(&sim, 15 * 60 * NS_PER_S);
        assert_eq!(q.backlog(), 1);
        sim.shutdown();
    }

    #[test]
    fn a_failed_renewal_loses_the_lock_under_a_live_handler() {
        let s = NS_PER_S;
        let spec = QueueSpec { visibility_timeout: 60 * s, ..QueueSpec::service_bus() };
        let (sim, meters, q) = setup(spec);
        q.fail_renewals(90 * s, 110 * s); // the renewal due at 100 s fails
        send(&meters, &q);
        let held = receive(&q, 1);
        at(&sim, 109 * s);
        assert_eq!(q.backlog(), 0, "renewed at 50 s: locked until 110 s");
        at(&sim, 110 * s);
        assert_eq!(q.backlog(), 1, "the 100 s renewal failed: lapsed at 110 s");
        assert_eq!(q.complete(&held[0]), Err(Settle::LockLost));
        sim.shutdown();
    }

    /// Prefetches one message at time 0 and starts its handler at `start` (`None`: never);
    /// returns when its lock runs out.
    fn lapse_of_a_prefetched_lock(start: Option<Nanos>) -> Nanos {
        let spec = QueueSpec { visibility_timeout: 60 * NS_PER_S, ..QueueSpec::service_bus() };
        let (sim, meters, q) = setup(spec);
        send(&meters, &q);
        let mut held = Vec::new();
        q.try_receive_as(1, 1, &mut held, true);
        let mut t = 0;
        while q.backlog() == 0 {
            t += NS_PER_S;
            at(&sim, t);
            if start == Some(t) {
                q.handler_started(&held[0]);
            }
        }
        sim.shutdown();
        t
    }

    #[test]
    fn a_prefetched_lock_runs_unrenewed_in_the_buffer_and_is_renewed_from_the_handler_start() {
        let s = NS_PER_S;
        // Never taken from the buffer: the 60 s lock simply runs out.
        assert_eq!(lapse_of_a_prefetched_lock(None), 60 * s);
        // Taken at 30 s: renewed 10 s before expiry (at 50 s) and every 50 s after, while
        // less than maxAutoLockRenewalDuration (5 min) has passed since the handler started:
        // the last renewal at 300 s, so the lock of the live handler lapses at 360 s, not at
        // the 310 s it would without prefetch.
        assert_eq!(lapse_of_a_prefetched_lock(Some(30 * s)), 360 * s);
        // Taken 5 s before it runs out: renewed min(5 s / 2, 10 s) before expiry, at 57.5 s,
        // then at 107.5 ... 307.5 s; the one due at 357.5 s is past 55 s + 5 min, so the
        // lock lapses at 367.5 s (seen at the next whole second).
        assert_eq!(lapse_of_a_prefetched_lock(Some(55 * s)), 368 * s);
    }

    #[test]
    fn a_message_whose_lock_ran_out_in_the_buffer_is_delivered_again_and_its_stale_copy_fails() {
        let spec = QueueSpec {
            visibility_timeout: 60 * NS_PER_S,
            max_delivery_count: 2,
            ..QueueSpec::service_bus()
        };
        let (sim, meters, q) = setup(spec);
        send(&meters, &q);
        let mut buffer = Vec::new();
        q.try_receive_as(1, 1, &mut buffer, true);
        at(&sim, 60 * NS_PER_S);
        assert_eq!(q.backlog(), 1, "the lock ran out in the buffer: the message is back");
        let mut again = Vec::new();
        q.try_receive_as(1, 1, &mut again, true);
        assert_eq!(again[0].delivery_count, 2, "the lapse counts as a delivery");
        q.handler_started(&buffer[0]); // the stale copy: nothing to renew
        assert_eq!(q.complete(&buffer[0]), Err(Settle::LockLost));
        at(&sim, 120 * NS_PER_S);
        assert_eq!(q.held(), 0, "dead-lettered at its last delivery without ever failing");
        sim.shutdown();
        drop(q);
        let l = Rc::try_unwrap(meters).ok().expect("one owner").finish().ledger;
        assert_eq!((l.dead_lettered, l.completed), (1, 0));
    }

    #[test]
    fn a_send_wakes_a_live_receiver_not_one_whose_instance_is_gone() {
        // Two receivers wait on an empty queue; the first one's instance is scaled in (its
        // process aborted while it waits). The next message goes to the live one at once.
        let (sim, meters, q) = setup(QueueSpec::service_bus());
        let got = Rc::new(std::cell::Cell::new(None));
        let receiver = |got: Option<Rc<std::cell::Cell<Option<Nanos>>>>| {
            let (q, clock) = (Rc::clone(&q), sim.clone());
            async move {
                let mut out = Vec::new();
                q.receive(1, 1, &mut out).await;
                if let Some(got) = got {
                    got.set(Some(clock.now_ns()));
                }
            }
        };
        let gone = sim.spawn(receiver(None));
        sim.spawn(receiver(Some(got.clone())));
        at(&sim, NS_PER_S);
        sim.abort(gone);
        at(&sim, 2 * NS_PER_S);
        send(&meters, &q);
        at(&sim, 3 * NS_PER_S);
        assert_eq!(got.get(), Some(2 * NS_PER_S), "received when sent, not at a later send");
        sim.shutdown();
    }

    #[test]
    fn messages_past_their_ttl_expire_instead_of_being_delivered() {
        let spec = QueueSpec { ttl: Some(10 * NS_PER_S), ..QueueSpec::service_bus() };
        let (sim, meters, q) = setup(spec);
        send(&meters, &q);
        let clock = sim.clone();
        sim.spawn(async move { clock.sleep(10 * NS_PER_S).await });
        sim.run_until(SimTime(10 * NS_PER_S));
        assert_eq!(sim.now_ns(), 10 * NS_PER_S);
        assert!(receive(&q, 1).is_empty());
        assert_eq!((q.held(), meters.holdings().in_flight()), (0, 0));
        sim.shutdown();
    }
}
