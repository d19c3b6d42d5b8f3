//! An event stream (Azure Event Hubs): partitions, checkpoints, partition ownership, and the
//! pieces of the Functions Event Hubs trigger that decide what a failure costs.
//!
//! ```text
//!  producer ──key / round-robin──► partition 0: [e0 e1 e2 e3 e4 e5 ...]
//!                                                  ▲        ▲           ▲
//!                                             checkpoint  read      head
//!                                  partition 1: [...]        (owned by one processor)
//! ```
//!
//! * [`EventHub`]: each partition is an append-only log. An event is held by the partition
//!   (the ledger's [`Holder::Partition`]) from its append until a checkpoint passes it: then
//!   it leaves as completed if a handler has had its effect, and otherwise is handed to
//!   whoever settles it (skipped: lost; parked: to a queue). Reading never removes anything,
//!   so a processor that starts from the checkpoint reads again what an earlier one read
//!   (replays) and may apply it again (duplicates).
//! * Ownership: a processor claims partitions in the checkpoint store and renews its claims
//!   every load-balancing cycle; a claim not renewed within the ownership expiry lapses, and
//!   others may take the partition (the Event Hubs SDK's greedy load balancing, which the
//!   Functions trigger uses). A crashed processor's partitions wait for their claims to lapse.
//! * [`Partitioner`]: which partition an event goes to: a partition-key draw hashed onto the
//!   partitions, or round-robin.
//! * [`StreamBreaker`]: the cross-instance breaker of the reliable-processing design: failures
//!   of every processor in one sliding window; at the threshold every processor stops for a
//!   pause, then resumes from its checkpoint.
//! * [`RetryPolicy`]: the Functions runtime retry policies (`fixedDelay`,
//!   `exponentialBackoff`) that re-run a failed batch while the checkpoint waits.

use crate::engine::{Sim, WaitList};
use crate::ledger::{Event, Exit, Holder, Message};
use crate::model::meters::Meters;
use crate::rng::{Rng, stable_hash};
use crate::time::Nanos;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// One event in a partition's log.
#[derive(Clone, Copy, Debug)]
struct Entry {
    msg: Message,
    /// Times handed to a handler (every attempt and every replay).
    deliveries: u32,
    /// Times a handler applied its effect.
    effects: u32,
    /// Whether a last attempt gave up on it (it failed and was skipped or parked, or an
    /// earlier failure ended its batch): the order of its effect is no longer promised.
    given_up: bool,
}

/// A claim on a partition in the checkpoint store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    owner: u32,
    expires: Nanos,
}

struct Partition {
    /// The events from the checkpoint on (those before it are settled and dropped).
    log: VecDeque<Entry>,
    /// The checkpoint: offset of `log[0]`.
    checkpoint: u64,
    /// Offset of the next event appended.
    head: u64,
    /// One past the highest offset ever delivered (reads below it are replays).
    delivered: u64,
    /// One past the highest offset that has had its first effect (order within the
    /// partition).
    effected: u64,
    claim: Option<Claim>,
}

/// An event handed to a handler by [`EventHub::read`].
#[derive(Clone, Copy, Debug)]
pub struct Read {
    /// Its offset in the partition.
    pub offset: u64,
    /// The event.
    pub msg: Message,
    /// Which delivery this is (1 = first).
    pub delivery: u32,
    /// Whether it had been delivered before by a read from an earlier position (a replay
    /// from the checkpoint, not a retry of the same batch).
    pub replay: bool,
}

/// What applying an event's effect was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Its first effect; `in_order` is false when a later event of its partition had its
    /// first effect before it (never for an event given up on: see [`EventHub::give_up`]).
    First {
        /// Whether every earlier event of the partition had its first effect before.
        in_order: bool,
    },
    /// It had had its effect before: a duplicate.
    Duplicate,
    /// It had already been checkpointed (by another owner): a late duplicate or a late
    /// success of a skipped event.
    Settled,
}

/// The event hub of a run: its partitions, their checkpoints and their owners.
pub struct EventHub {
    sim: Sim,
    meters: Rc<Meters>,
    parts: RefCell<Vec<Partition>>,
    arrived: Vec<WaitList>,
    lag: Cell<u64>,
    lag_peak: Cell<u64>,
}

impl EventHub {
    /// A hub of `partitions` empty partitions (at least one).
    pub fn new(sim: Sim, meters: Rc<Meters>, partitions: u32) -> EventHub {
        let n = partitions.max(1) as usize;
        let parts = (0..n)
            .map(|_| Partition {
                log: VecDeque::new(),
                checkpoint: 0,
                head: 0,
                delivered: 0,
                effected: 0,
                claim: None,
            })
            .collect();
        EventHub {
            sim,
            meters,
            parts: RefCell::new(parts),
            arrived: (0..n).map(|_| WaitList::new()).collect(),
            lag: Cell::new(0),
            lag_peak: Cell::new(0),
        }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.arrived.len() as u32
    }

    /// Appends `msg` to partition `p` (the partition admits it). Returns its offset.
    pub fn append(&self, p: u32, mut msg: Message) -> u64 {
        self.meters.admit(&mut msg, Holder::Partition);
        let offset = {
            let mut parts = self.parts.borrow_mut();
            let part = &mut parts[p as usize];
            part.log.push_back(Entry { msg, deliveries: 0, effects: 0, given_up: false });
            part.head += 1;
            part.head - 1
        };
        let lag = self.lag.get() + 1;
        self.lag.set(lag);
        self.lag_peak.set(self.lag_peak.get().max(lag));
        self.arrived[p as usize].notify_all(&self.sim);
        offset
    }

    /// Offset of the next event appended to `p`.
    pub fn head(&self, p: u32) -> u64 {
        self.parts.borrow()[p as usize].head
    }

    /// The checkpoint of `p`: the offset a new owner starts reading from.
    pub fn checkpoint_of(&self, p: u32) -> u64 {
        self.parts.borrow()[p as usize].checkpoint
    }

    /// Events behind the head, summed over the partitions (appended, not yet passed by a
    /// checkpoint).
    pub fn lag(&self) -> u64 {
        self.lag.get()
    }

    /// The highest [`EventHub::lag`] so far.
    pub fn lag_peak(&self) -> u64 {
        self.lag_peak.get()
    }

    /// Waits until an event is appended to `p` (a hint: check [`EventHub::head`] again).
    pub async fn wait_append(&self, p: u32) {
        self.arrived[p as usize].wait(&self.sim).await;
    }

    /// Hands up to `max` events of `p` from offset `from` (or from the checkpoint, if that
    /// is further on) to a handler, in order. `first_attempt` is false when a retry policy
    /// re-runs the same batch (its events are not replays).
    pub fn read(&self, p: u32, from: u64, max: u32, first_attempt: bool) -> Vec<Read> {
        let mut parts = self.parts.borrow_mut();
        let part = &mut parts[p as usize];
        let from = from.max(part.checkpoint);
        let end = part.head.min(from + u64::from(max));
        let mut out = Vec::with_capacity((end - from) as usize);
        for offset in from..end {
            let e = &mut part.log[(offset - part.checkpoint) as usize];
            e.deliveries += 1;
            out.push(Read {
                offset,
                msg: e.msg,
                delivery: e.deliveries,
                replay: first_attempt && offset < part.delivered,
            });
        }
        part.delivered = part.delivered.max(end);
        drop(parts);
        for r in &out {
            self.meters.delivered();
            self.meters.trace(&r.msg, Event::Delivered { count: r.delivery });
        }
        out
    }

    /// A handler applied the effect of the event at `offset` of `p`.
    pub fn effect(&self, p: u32, offset: u64) -> Effect {
        let mut parts = self.parts.borrow_mut();
        let part = &mut parts[p as usize];
        if offset < part.checkpoint {
            return Effect::Settled;
        }
        let e = &mut part.log[(offset - part.checkpoint) as usize];
        e.effects += 1;
        if e.effects > 1 {
            return Effect::Duplicate;
        }
        let in_order = e.given_up || offset + 1 >= part.effected;
        part.effected = part.effected.max(offset + 1);
        Effect::First { in_order }
    }

    /// The last attempt of a batch gave up on the event at `offset` of `p`: it failed and is
    /// skipped or parked, or an earlier failure ended its batch. Later events go on before
    /// it, so if it is read again (a replay before its checkpoint) its effect comes out of
    /// order, by design of the skip and the park.
    pub fn give_up(&self, p: u32, offset: u64) {
        let mut parts = self.parts.borrow_mut();
        let part = &mut parts[p as usize];
        if offset >= part.checkpoint {
            part.log[(offset - part.checkpoint) as usize].given_up = true;
        }
    }

    /// Moves the checkpoint of `p` to `to`: every event passed leaves the partition, as
    /// completed if it has had its effect, and otherwise through `unfinished`, which must
    /// take it out of the partition (an exit, or a hand-over to another holder). Returns
    /// how many events were passed.
    pub fn checkpoint(&self, p: u32, to: u64, mut unfinished: impl FnMut(Message)) -> u64 {
        let passed: Vec<Entry> = {
            let mut parts = self.parts.borrow_mut();
            let part = &mut parts[p as usize];
            let to = to.min(part.head);
            if to <= part.checkpoint {
                return 0;
            }
            let n = (to - part.checkpoint) as usize;
            part.checkpoint = to;
            part.log.drain(..n).collect()
        };
        self.lag.set(self.lag.get() - passed.len() as u64);
        for e in &passed {
            if e.effects > 0 {
                self.meters.exit(&e.msg, Holder::Partition, Exit::Completed);
            } else {
                unfinished(e.msg);
            }
        }
        passed.len() as u64
    }

    /// The processor that owns `p` now (`None`: nobody, or a claim that lapsed).
    pub fn owner(&self, p: u32) -> Option<u32> {
        let now = self.sim.now_ns();
        self.parts.borrow()[p as usize].claim.filter(|c| c.expires > now).map(|c| c.owner)
    }

    /// Whether `processor` owns `p` now.
    pub fn owns(&self, p: u32, processor: u32) -> bool {
        self.owner(p) == Some(processor)
    }

    /// Gives up `processor`'s claim on `p` (a processor that stops cleanly).
    pub fn release(&self, p: u32, processor: u32) {
        let mut parts = self.parts.borrow_mut();
        let c = &mut parts[p as usize].claim;
        if c.is_some_and(|c| c.owner == processor) {
            *c = None;
        }
    }

    /// One load-balancing cycle of `processor` (greedy, as the Event Hubs SDK): renews its
    /// claims for `expiry`, works out its fair share among the processors that own
    /// partitions now (itself included), and claims up to it at once: lapsed or unowned
    /// partitions first (lowest first), then partitions of the processor that owns the most,
    /// when that one owns more than its share. Returns the partitions it newly claimed.
    ///
    /// With `n` processors, each should own `partitions / n`, and `partitions % n` of them
    /// one more; processors beyond the partition count own nothing.
    pub fn balance(&self, processor: u32, expiry: Nanos) -> Vec<u32> {
        let now = self.sim.now_ns();
        let mut parts = self.parts.borrow_mut();
        let total = parts.len();
        let mut owned: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        owned.insert(processor, Vec::new());
        for (i, part) in parts.iter_mut().enumerate() {
            match &mut part.claim {
                Some(c) if c.owner == processor => {
                    c.expires = now + expiry;
                    owned.entry(processor).or_default().push(i);
                }
                Some(c) if c.expires > now => owned.entry(c.owner).or_default().push(i),
                _ => {}
            }
        }
        let n = owned.len();
        let (min, extra) = (total / n, total % n);
        let others_above = owned.iter().filter(|(o, v)| **o != processor && v.len() > min).count();
        let mine = owned[&processor].len();
        let target = if extra > 0 && (mine > min || others_above < extra) { min + 1 } else { min };
        let mut claimed = Vec::new();
        let mut have = mine;
        while have < target {
            let free = parts.iter().position(|part| part.claim.is_none_or(|c| c.expires <= now));
            let pick = match free {
                Some(i) => Some(i),
                None => {
                    // steal from the processor owning the most, if it owns more than a share
                    let victim = owned
                        .iter()
                        .filter(|(o, _)| **o != processor)
                        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
                        .map(|(o, v)| (*o, v.len()));
                    match victim {
                        Some((o, len)) if len > min + 1 || (len > min && have < min) => {
                            let list = owned.get_mut(&o).expect("victim");
                            list.pop()
                        }
                        _ => None,
                    }
                }
            };
            let Some(i) = pick else { break };
            parts[i].claim = Some(Claim { owner: processor, expires: now + expiry });
            claimed.push(i as u32);
            have += 1;
        }
        claimed
    }
}

/// Which partition each event goes to.
#[derive(Clone, Debug)]
pub enum Partitioner {
    /// Events in turn over the partitions (a producer that sets no partition key).
    RoundRobin {
        /// The partition count.
        partitions: u32,
        /// Events placed so far.
        next: u64,
    },
    /// Each event carries a partition key drawn uniformly from `keys` keys; the key's hash
    /// picks the partition (a hot key makes a hot partition).
    Key {
        /// The partition count.
        partitions: u32,
        /// Distinct keys.
        keys: u64,
        /// The key draws (the `stream.keys` stream).
        rng: Rng,
    },
}

impl Partitioner {
    /// Round-robin over `partitions`.
    pub fn round_robin(partitions: u32) -> Partitioner {
        Partitioner::RoundRobin { partitions: partitions.max(1), next: 0 }
    }

    /// Keys drawn from `keys` keys on the `stream.keys` stream of `seed`.
    pub fn keyed(seed: u64, partitions: u32, keys: u64) -> Partitioner {
        Partitioner::Key {
            partitions: partitions.max(1),
            keys: keys.max(1),
            rng: Rng::stream(seed, "stream.keys"),
        }
    }

    /// The partition of the next event (call once per event, in production order).
    pub fn place(&mut self) -> u32 {
        match self {
            Partitioner::RoundRobin { partitions, next } => {
                let p = (*next % u64::from(*partitions)) as u32;
                *next += 1;
                p
            }
            Partitioner::Key { partitions, keys, rng } => {
                let key = rng.below(*keys);
                (stable_hash(&key.to_le_bytes()) % u64::from(*partitions)) as u32
            }
        }
    }
}

/// The cross-instance stream breaker: failures of every processor counted in one sliding
/// window; when `failures` fall within `window`, it opens for `pause`.
#[derive(Clone, Debug)]
pub struct StreamBreaker {
    failures: u32,
    window: Nanos,
    pause: Nanos,
    recent: VecDeque<Nanos>,
    open_until: Nanos,
    trips: u64,
}

impl StreamBreaker {
    /// A closed breaker.
    pub fn new(failures: u32, window: Nanos, pause: Nanos) -> StreamBreaker {
        StreamBreaker {
            failures: failures.max(1),
            window,
            pause,
            recent: VecDeque::new(),
            open_until: 0,
            trips: 0,
        }
    }

    /// Whether it is open at `now`.
    pub fn is_open(&self, now: Nanos) -> bool {
        now < self.open_until
    }

    /// When the current (or last) pause ends.
    pub fn open_until(&self) -> Nanos {
        self.open_until
    }

    /// Times it opened.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Records a failure at `now`; returns true if this one opened the breaker. Failures
    /// while it is open are not counted (the processors are stopping).
    pub fn failure(&mut self, now: Nanos) -> bool {
        if self.is_open(now) {
            return false;
        }
        while self.recent.front().is_some_and(|t| *t + self.window <= now) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() as u32 >= self.failures {
            self.recent.clear();
            self.open_until = now + self.pause;
            self.trips += 1;
            return true;
        }
        false
    }
}

/// A Functions runtime retry policy (`host.json`/attribute `retry`), for triggers that take
/// one (Event Hubs): the failed invocation runs again after a delay while the checkpoint
/// waits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RetryPolicy {
    /// No retry: a failed batch is done (the default).
    None,
    /// `fixedDelay`: `max_retries` retries (-1: forever), `delay` apart.
    FixedDelay {
        /// Retries after the first attempt; negative for no limit.
        max_retries: i64,
        /// `delayInterval`.
        delay: Nanos,
    },
    /// `exponentialBackoff`: `max_retries` retries (-1: forever), from `min` growing
    /// towards `max` with ±20 % jitter (the WebJobs SDK's randomized exponential backoff).
    ExponentialBackoff {
        /// Retries after the first attempt; negative for no limit.
        max_retries: i64,
        /// `minimumInterval`.
        min: Nanos,
        /// `maximumInterval`.
        max: Nanos,
    },
}

/// The delay state of one batch under a [`RetryPolicy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryDelays {
    /// Retries made so far.
    pub retries: u32,
    current: Nanos,
    exponent: u32,
}

impl RetryPolicy {
    /// Whether another attempt is allowed after `retries` retries.
    pub fn may_retry(&self, retries: u32) -> bool {
        match *self {
            RetryPolicy::None => false,
            RetryPolicy::FixedDelay { max_retries, .. }
            | RetryPolicy::ExponentialBackoff { max_retries, .. } => {
                max_retries < 0 || i64::from(retries) < max_retries
            }
        }
    }

    /// The delay before the next retry, advancing `state`. Exponential: the first retry
    /// waits `min`, the k-th `min + U(0.8, 1.2) * 2^(k-2) * min` while that stays below
    /// `max`, then `max` from there on.
    pub fn next_delay(&self, state: &mut RetryDelays, rng: &mut Rng) -> Nanos {
        state.retries += 1;
        match *self {
            RetryPolicy::None => 0,
            RetryPolicy::FixedDelay { delay, .. } => delay,
            RetryPolicy::ExponentialBackoff { min, max, .. } => {
                if state.retries > 1 && state.current == max {
                    return max;
                }
                let mut next = min;
                if state.exponent > 0 {
                    let factor = 0.8 + rng.unit() * 0.4;
                    let add = factor * libm::pow(2.0, f64::from(state.exponent - 1)) * min as f64;
                    next = min.saturating_add(add as Nanos);
                }
                if next < max {
                    state.current = next;
                    state.exponent += 1;
                } else {
                    state.current = max;
                }
                state.current
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{NS_PER_H, NS_PER_MIN, NS_PER_S, SimTime};

    fn hub(partitions: u32) -> (Sim, Rc<Meters>, EventHub) {
        let sim = Sim::new();
        let meters = Rc::new(Meters::new(sim.clone(), NS_PER_H, 0, false, &[], None));
        let hub = EventHub::new(sim.clone(), meters.clone(), partitions);
        (sim, meters, hub)
    }

    fn at(sim: &Sim, t: Nanos) {
        let clock = sim.clone();
        sim.spawn(async move { clock.sleep_until(SimTime(t)).await });
        sim.run_until(SimTime(t));
    }

    #[test]
    fn a_checkpoint_completes_what_had_its_effect_and_hands_over_the_rest() {
        let (_sim, meters, hub) = hub(2);
        for _ in 0..5 {
            hub.append(0, meters.produce(0));
        }
        hub.append(1, meters.produce(0));
        assert_eq!((hub.lag(), hub.head(0)), (6, 5));
        let batch = hub.read(0, 0, 3, true);
        assert_eq!(batch.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(batch.iter().all(|r| r.delivery == 1 && !r.replay));
        assert_eq!(hub.effect(0, 0), Effect::First { in_order: true });
        assert_eq!(hub.effect(0, 1), Effect::First { in_order: true });
        assert_eq!(hub.effect(0, 1), Effect::Duplicate);
        let mut lost = Vec::new();
        assert_eq!(hub.checkpoint(0, 3, |m| lost.push(m)), 3);
        assert_eq!(lost.len(), 1, "offset 2 never had its effect");
        for m in &lost {
            meters.exit(m, Holder::Partition, Exit::Lost);
        }
        assert_eq!((hub.checkpoint_of(0), hub.lag(), hub.lag_peak()), (3, 3, 6));
        assert_eq!(meters.holdings().of(Holder::Partition), 3);
        assert_eq!(hub.effect(0, 1), Effect::Settled, "behind the checkpoint");
    }

    #[test]
    fn reading_again_from_the_checkpoint_is_a_replay_a_retry_is_not() {
        let (_sim, meters, hub) = hub(1);
        for _ in 0..4 {
            hub.append(0, meters.produce(0));
        }
        hub.read(0, 0, 4, true);
        let retry = hub.read(0, 0, 4, false);
        assert!(retry.iter().all(|r| !r.replay && r.delivery == 2));
        hub.checkpoint(0, 2, |_| {});
        let replay = hub.read(0, 0, 10, true);
        assert_eq!(replay.iter().map(|r| r.offset).collect::<Vec<_>>(), [2, 3], "from checkpoint");
        assert!(replay.iter().all(|r| r.replay && r.delivery == 3));
    }

    #[test]
    fn first_effects_out_of_order_are_seen() {
        let (_sim, meters, hub) = hub(1);
        for _ in 0..3 {
            hub.append(0, meters.produce(0));
        }
        assert_eq!(hub.effect(0, 2), Effect::First { in_order: true });
        assert_eq!(hub.effect(0, 0), Effect::First { in_order: false });
        hub.give_up(0, 1);
        assert_eq!(hub.effect(0, 1), Effect::First { in_order: true }, "given up: no promise");
    }

    #[test]
    fn partitions_are_shared_fairly_and_a_lapsed_claim_is_taken_over() {
        let (sim, _meters, hub) = hub(8);
        let expiry = 2 * NS_PER_MIN;
        assert_eq!(hub.balance(1, expiry).len(), 8, "alone: greedy takes everything");
        assert_eq!(hub.balance(2, expiry).len(), 4, "steals down to a fair share");
        assert_eq!(hub.balance(3, expiry).len(), 2, "8 over 3: 3, 3, 2");
        assert_eq!(hub.balance(1, expiry), Vec::<u32>::new());
        let count = |o| (0..8).filter(|p| hub.owns(*p, o)).count();
        assert_eq!((count(1), count(2), count(3)), (3, 3, 2));
        // 3 dies (stops renewing); 1 and 2 keep renewing
        at(&sim, NS_PER_MIN);
        hub.balance(1, expiry);
        hub.balance(2, expiry);
        at(&sim, 2 * NS_PER_MIN + NS_PER_S);
        assert_eq!(count(3), 0, "lapsed");
        let took = hub.balance(1, expiry).len() + hub.balance(2, expiry).len();
        assert_eq!(took, 2);
        assert_eq!(count(1) + count(2), 8);
        // more processors than partitions: the extra ones idle
        let (_s, _m, small) = self::hub(2);
        small.balance(1, expiry);
        small.balance(2, expiry);
        assert!(small.balance(3, expiry).is_empty());
    }

    #[test]
    fn keys_hash_onto_partitions_and_round_robin_cycles() {
        let mut rr = Partitioner::round_robin(3);
        assert_eq!((0..5).map(|_| rr.place()).collect::<Vec<_>>(), [0, 1, 2, 0, 1]);
        let mut one_key = Partitioner::keyed(1, 32, 1);
        let first = one_key.place();
        assert!((0..100).all(|_| one_key.place() == first), "one key, one partition");
        let mut many = Partitioner::keyed(1, 4, 10_000);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[many.place() as usize] += 1;
        }
        assert!(counts.iter().all(|c| (9_000..11_000).contains(c)), "{counts:?}");
    }

    #[test]
    fn the_breaker_opens_at_the_threshold_within_the_window() {
        let mut b = StreamBreaker::new(3, 10 * NS_PER_S, NS_PER_MIN);
        assert!(!b.failure(0));
        assert!(!b.failure(5 * NS_PER_S));
        assert!(!b.failure(11 * NS_PER_S), "the first fell out of the window");
        assert!(b.failure(12 * NS_PER_S));
        assert!(b.is_open(12 * NS_PER_S + NS_PER_MIN - 1));
        assert!(!b.failure(20 * NS_PER_S), "not counted while open");
        assert!(!b.is_open(12 * NS_PER_S + NS_PER_MIN));
        assert_eq!(b.trips(), 1);
    }

    #[test]
    fn retry_policies_follow_the_functions_runtime() {
        let mut rng = Rng::stream(1, "t");
        let fixed = RetryPolicy::FixedDelay { max_retries: 2, delay: 5 * NS_PER_S };
        assert!(fixed.may_retry(0) && fixed.may_retry(1) && !fixed.may_retry(2));
        assert_eq!(fixed.next_delay(&mut RetryDelays::default(), &mut rng), 5 * NS_PER_S);
        assert!(!RetryPolicy::None.may_retry(0));
        let forever = RetryPolicy::FixedDelay { max_retries: -1, delay: 1 };
        assert!(forever.may_retry(1_000_000));
        let (min, max) = (4 * NS_PER_S, 60 * NS_PER_S);
        let exp = RetryPolicy::ExponentialBackoff { max_retries: -1, min, max };
        let mut st = RetryDelays::default();
        let d: Vec<Nanos> = (0..8).map(|_| exp.next_delay(&mut st, &mut rng)).collect();
        assert_eq!(d[0], min, "the first retry waits the minimum");
        // min + ~2^(k-2) * min: about 8 s, 12 s, 20 s, 36 s, then capped
        for (k, lo, hi) in [(1, 7.2, 8.8), (2, 10.4, 13.6), (3, 16.8, 23.2), (4, 29.6, 42.4)] {
            let s = d[k] as f64 / NS_PER_S as f64;
            assert!((lo..=hi).contains(&s), "retry {k}: {s} s, {d:?}");
        }
        assert!(d[5..].iter().all(|x| *x == max), "{d:?}");
    }
}
