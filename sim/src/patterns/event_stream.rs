//! # Event stream: Event Hubs with the Functions trigger
//!
//! ```text
//!                 ┌ partition 0 ─┐   owned by   ┌──────── instance 0 (processor) ─────────┐
//!  producer ─key─►│ e0 e1 e2 ... │ ───────────► │ read ≤ max_batch ─► handler: each event │
//!                 ├ partition 1 ─┤              │  work + calls ─► effect                 │
//!                 │ ...          │ ──► inst 1   │ checkpoint after the batch, failed or   │
//!                 └──────────────┘              │ not (the default: a failure is skipped) │
//!                        ▲                      └─────────┬───────────────┬───────────────┘
//!            crash: replay from the checkpoint            │ retry policy: │ park: failed events
//!            (duplicates, order kept)                     │ the checkpoint│ ──► [parked queue]
//!                                                         │ waits, the    │      ──► parked pool
//!   [stream.breaker]: failures of every instance          │ partition     │
//!   in one window ─► every processor stops, resumes       │ stalls        │
//!   from its checkpoint after `pause`                     ▼               ▼
//! ```
//!
//! Demonstrates:
//! * partitions owned by instances (the SDK's greedy load balancing over claims in the
//!   checkpoint store): instances beyond the partition count idle, a crashed instance's
//!   partitions wait until its claims lapse (`ownership_expiry`), then others take them;
//! * the trigger's documented default: a checkpoint after every batch *whether or not the
//!   function succeeded*, so an exception silently loses the rest of the batch
//!   (`stream.skipped`, counted in `messages.lost`);
//! * a Functions retry policy (`fixed-delay`, `exponential-backoff`) re-runs the failed batch
//!   while the checkpoint waits: that partition stalls (`stream.lag` grows) and the events
//!   before the failure are applied again (`messages.duplicates`);
//! * `on_failure = "park"`: on the last attempt each failing event is caught and sent to a
//!   queue, processed later by a pool of its own; nothing is skipped;
//! * a crash replays from the last checkpoint: events read again (`stream.replayed`), effects
//!   applied twice (`messages.duplicates`), order within a partition kept
//!   (`stream.order_violations` = 0, and a checker asserts it);
//! * the cross-instance breaker: when failures of all instances reach `failures` within
//!   `window`, every processor stops (its batch in progress is not checkpointed), waits
//!   `pause`, and resumes from its checkpoint: nothing lost, order kept (`stream.paused_s`).
//!
//! How a batch is handled: the function gets up to `max_batch` events of one partition and
//! handles them in order, each with `[consumer] work` and then `[consumer] calls` (retried in
//! process as `[retry]` says). A failure is per event: the exception ends the invocation at
//! that event (the events before it have had their effect). On the last attempt under `park`
//! the function catches each failure instead, so the rest of the batch goes on. Each
//! invocation is one execution on its instance, billed like any consumer's.
//!
//! Settings, in `[stream]` (defaults: the Functions Event Hubs extension's and the Event
//! Hubs SDK's, see docs/sources.md):
//!
//! ```toml
//! [stream]
//! partitions = 32
//! max_batch = 100              # maxEventBatchSize
//! prefetch = 300               # prefetchCount (a batch never holds more)
//! checkpoint_every = 1         # batchCheckpointFrequency
//! retry = "none"               # none | fixed-delay | exponential-backoff
//! max_retries = 3              # maxRetryCount (-1: forever)
//! retry_delay = "5s"           # delayInterval / minimumInterval
//! max_retry_delay = "15m"      # maximumInterval (exponential-backoff)
//! on_failure = "skip"          # skip | park
//! park_instances = 1           # the pool that processes the parked queue
//! partitioning = "round-robin" # round-robin | key
//! keys = 1000                  # distinct partition keys (partitioning = "key")
//! ownership_expiry = "2m"      # PartitionOwnershipExpirationInterval
//! load_balancing_interval = "30s" # LoadBalancingUpdateInterval
//! [stream.breaker]             # absent: no breaker
//! failures = 100
//! window = "30s"
//! pause = "1m"
//! ```
//!
//! The parked queue has the `[queue]` settings and its pool (`parked`) runs the standard
//! worker with the `[consumer]` settings. A crash fault (`target = "consumer"`) hits the
//! stream processors.

use crate::check::Checker;
use crate::check::stream::{PartitionOrder, Settlement};
use crate::dist::Dist;
use crate::engine::Sim;
use crate::ledger::{Event, Exit, Holder};
use crate::model::host::{Host, Instance, SlotMain};
use crate::model::meters::{Lat, Meters};
use crate::model::queue::Queue;
use crate::model::series::Gauge;
use crate::model::service::Downstream;
use crate::model::stream::{
    Effect, EventHub, Partitioner, Read, RetryDelays, RetryPolicy, StreamBreaker,
};
use crate::model::worker::Worker;
use crate::patterns::{Pattern, SettingsTable};
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{PatternKind, Scenario};
use crate::time::{NS_PER_MIN, NS_PER_S, Nanos, SimTime};
use crate::topology::Topology;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("event-stream");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "Event Hubs partitions, a checkpoint after each batch, retry then park, a stream breaker",
    section: Some("stream"),
    processes: &[],
    hosted: false,
    table: Some(SettingsTable { name: "stream", read }),
    build,
    checkers,
};

/// What the last attempt of a batch does with the events that failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// The checkpoint moves past them: they are gone (the trigger's default).
    #[default]
    Skip,
    /// Each is sent to the parked queue, processed later by its own pool.
    Park,
}

const ON_FAILURE: [(OnFailure, &str); 2] = [(OnFailure::Skip, "skip"), (OnFailure::Park, "park")];

/// Which Functions retry policy re-runs a failed batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retry {
    /// No retry (the default).
    #[default]
    None,
    /// `fixedDelay`.
    FixedDelay,
    /// `exponentialBackoff`.
    ExponentialBackoff,
}

const RETRIES: [(Retry, &str); 3] = [
    (Retry::None, "none"),
    (Retry::FixedDelay, "fixed-delay"),
    (Retry::ExponentialBackoff, "exponential-backoff"),
];

/// How events are placed on partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Partitioning {
    /// In turn (no partition key).
    #[default]
    RoundRobin,
    /// By a partition key drawn per event from `keys` keys.
    Key,
}

const PARTITIONING: [(Partitioning, &str); 2] =
    [(Partitioning::RoundRobin, "round-robin"), (Partitioning::Key, "key")];

fn names<T>(table: &[(T, &'static str)]) -> Vec<&'static str> {
    table.iter().map(|(_, n)| *n).collect()
}

fn name_of<T: PartialEq>(table: &[(T, &'static str)], v: T) -> &'static str {
    table.iter().find(|(x, _)| *x == v).map(|(_, n)| *n).expect("every value is named")
}

/// `[stream.breaker]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Failures within `window` that open it.
    pub failures: Option<u32>,
    /// The sliding window.
    pub window: Option<Nanos>,
    /// How long every processor stops.
    pub pause: Option<Nanos>,
}

/// `[stream]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// Partitions of the event hub.
    pub partitions: Option<u32>,
    /// `maxEventBatchSize`.
    pub max_batch: Option<u32>,
    /// `prefetchCount`.
    pub prefetch: Option<u32>,
    /// `batchCheckpointFrequency`.
    pub checkpoint_every: Option<u32>,
    /// The retry policy.
    pub retry: Option<Retry>,
    /// `maxRetryCount` (-1: forever).
    pub max_retries: Option<i64>,
    /// `delayInterval` / `minimumInterval`.
    pub retry_delay: Option<Nanos>,
    /// `maximumInterval`.
    pub max_retry_delay: Option<Nanos>,
    /// What the last attempt does with failed events.
    pub on_failure: Option<OnFailure>,
    /// Instances of the pool processing the parked queue.
    pub park_instances: Option<u32>,
    /// How events are placed on partitions.
    pub partitioning: Option<Partitioning>,
    /// Distinct partition keys.
    pub keys: Option<u64>,
    /// How long a claim on a partition lasts without renewal.
    pub ownership_expiry: Option<Nanos>,
    /// How often each processor renews its claims and balances.
    pub load_balancing_interval: Option<Nanos>,
    /// The stream breaker, if `[stream.breaker]` is present.
    pub breaker: Option<BreakerSettings>,
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let int = |t: &mut dyn TableReader, key: &str, max: u64| -> Result<Option<u32>, TableError> {
        Ok(t.integer(key, 1, max)?.map(|v| v as u32))
    };
    let partitions = int(t, "partitions", 2048)?;
    let max_batch = int(t, "max_batch", 100_000)?;
    let prefetch = t.integer("prefetch", 0, 1_000_000)?.map(|v| v as u32);
    let checkpoint_every = int(t, "checkpoint_every", 1_000_000)?;
    let retry = t.choice("retry", &names(&RETRIES))?.map(|i| RETRIES[i].0);
    let max_retries = match t.number("max_retries", -1.0, 1e9)? {
        Some(x) if x.fract() != 0.0 => {
            let msg = format!(
                "`stream.max_retries` must be a whole number: -1 (forever) or 0 and more \
                 (found {x})"
            );
            return Err(t.invalid("max_retries", &msg));
        }
        other => other.map(|x| x as i64),
    };
    let retry_delay = t.duration("retry_delay")?;
    let max_retry_delay = t.duration("max_retry_delay")?;
    if let (Some(min), Some(max)) = (retry_delay, max_retry_delay)
        && min > max
    {
        let msg = "`stream.max_retry_delay` must not be shorter than `stream.retry_delay` \
                   (the minimumInterval)";
        return Err(t.invalid("max_retry_delay", msg));
    }
    let on_failure = t.choice("on_failure", &names(&ON_FAILURE))?.map(|i| ON_FAILURE[i].0);
    let park_instances = int(t, "park_instances", 10_000)?;
    let partitioning = t.choice("partitioning", &names(&PARTITIONING))?.map(|i| PARTITIONING[i].0);
    let keys = t.integer("keys", 1, u64::from(u32::MAX))?;
    let ownership_expiry = t.duration("ownership_expiry")?;
    let load_balancing_interval = t.duration("load_balancing_interval")?;
    for (key, v) in [
        ("ownership_expiry", ownership_expiry),
        ("load_balancing_interval", load_balancing_interval),
    ] {
        if v == Some(0) {
            return Err(t.invalid(key, &format!("`stream.{key}` must be longer than 0s")));
        }
    }
    let expiry = ownership_expiry.unwrap_or(OWNERSHIP_EXPIRY);
    if expiry <= load_balancing_interval.unwrap_or(LOAD_BALANCING_INTERVAL) {
        let key =
            if ownership_expiry.is_some() { "ownership_expiry" } else { "load_balancing_interval" };
        let msg = "`stream.ownership_expiry` must be longer than `stream.load_balancing_interval` \
                   (30s unless set): claims would lapse between two renewals";
        return Err(t.invalid(key, msg));
    }
    let mut breaker = None;
    t.table("breaker", &mut |b| {
        let failures = b.integer("failures", 1, u64::from(u32::MAX))?.map(|v| v as u32);
        let window = b.duration("window")?;
        let pause = b.duration("pause")?;
        for (key, v) in [("window", window), ("pause", pause)] {
            if v == Some(0) {
                return Err(
                    b.invalid(key, &format!("`stream.breaker.{key}` must be longer than 0s"))
                );
            }
        }
        breaker = Some(BreakerSettings { failures, window, pause });
        Ok(())
    })?;
    Ok(Arc::new(Settings {
        partitions,
        max_batch,
        prefetch,
        checkpoint_every,
        retry,
        max_retries,
        retry_delay,
        max_retry_delay,
        on_failure,
        park_instances,
        partitioning,
        keys,
        ownership_expiry,
        load_balancing_interval,
        breaker,
    }))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        let int = |out: &mut dyn TableWriter, key: &str, v: Option<u32>| {
            if let Some(v) = v {
                out.integer(key, u64::from(v));
            }
        };
        let dur = |out: &mut dyn TableWriter, key: &str, v: Option<Nanos>| {
            if let Some(v) = v {
                out.duration(key, v);
            }
        };
        int(out, "partitions", self.partitions);
        int(out, "max_batch", self.max_batch);
        int(out, "prefetch", self.prefetch);
        int(out, "checkpoint_every", self.checkpoint_every);
        if let Some(r) = self.retry {
            out.string("retry", name_of(&RETRIES, r));
        }
        match self.max_retries {
            Some(n) if n >= 0 => out.integer("max_retries", n as u64),
            Some(n) => out.number("max_retries", n as f64),
            None => {}
        }
        dur(out, "retry_delay", self.retry_delay);
        dur(out, "max_retry_delay", self.max_retry_delay);
        if let Some(f) = self.on_failure {
            out.string("on_failure", name_of(&ON_FAILURE, f));
        }
        int(out, "park_instances", self.park_instances);
        if let Some(p) = self.partitioning {
            out.string("partitioning", name_of(&PARTITIONING, p));
        }
        if let Some(k) = self.keys {
            out.integer("keys", k);
        }
        dur(out, "ownership_expiry", self.ownership_expiry);
        dur(out, "load_balancing_interval", self.load_balancing_interval);
        if let Some(b) = &self.breaker {
            int(out, "breaker.failures", b.failures);
            dur(out, "breaker.window", b.window);
            dur(out, "breaker.pause", b.pause);
        }
    }
}

/// The settings in force for one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// Partitions of the event hub.
    pub partitions: u32,
    /// Most events in one batch: `max_batch`, and no more than `prefetch` (when set).
    pub batch: u32,
    /// Batches between checkpoints.
    pub checkpoint_every: u32,
    /// The Functions retry policy.
    pub retry: RetryPolicy,
    /// What the last attempt does with failed events.
    pub on_failure: OnFailure,
    /// Instances of the parked pool.
    pub park_instances: u32,
    /// How events are placed on partitions.
    pub partitioning: Partitioning,
    /// Distinct partition keys.
    pub keys: u64,
    /// Claim lifetime without renewal.
    pub ownership_expiry: Nanos,
    /// Load-balancing cycle.
    pub load_balancing_interval: Nanos,
    /// The stream breaker: (failures, window, pause).
    pub breaker: Option<(u32, Nanos, Nanos)>,
}

impl Resolved {
    /// The settings for `s`: `[stream]` over the defaults.
    pub fn of(s: &Scenario) -> Resolved {
        let m = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        let max_batch = m.max_batch.unwrap_or(100);
        let prefetch = m.prefetch.unwrap_or(300);
        let max_retries = m.max_retries.unwrap_or(3);
        let delay = m.retry_delay.unwrap_or(5 * NS_PER_S);
        let retry = match m.retry.unwrap_or_default() {
            Retry::None => RetryPolicy::None,
            Retry::FixedDelay => RetryPolicy::FixedDelay { max_retries, delay },
            Retry::ExponentialBackoff => RetryPolicy::ExponentialBackoff {
                max_retries,
                min: delay,
                max: m.max_retry_delay.unwrap_or(15 * NS_PER_MIN).max(delay),
            },
        };
        Resolved {
            partitions: m.partitions.unwrap_or(32),
            batch: if prefetch > 0 { max_batch.min(prefetch) } else { max_batch },
            checkpoint_every: m.checkpoint_every.unwrap_or(1),
            retry,
            on_failure: m.on_failure.unwrap_or_default(),
            park_instances: m.park_instances.unwrap_or(1),
            partitioning: m.partitioning.unwrap_or_default(),
            keys: m.keys.unwrap_or(1000),
            ownership_expiry: m.ownership_expiry.unwrap_or(OWNERSHIP_EXPIRY),
            load_balancing_interval: m.load_balancing_interval.unwrap_or(LOAD_BALANCING_INTERVAL),
            breaker: m.breaker.map(|b| {
                (
                    b.failures.unwrap_or(100),
                    b.window.unwrap_or(30 * NS_PER_S),
                    b.pause.unwrap_or(NS_PER_MIN),
                )
            }),
        }
    }

    /// The partitioner of a run with `seed`.
    pub fn partitioner(&self, seed: u64) -> Partitioner {
        match self.partitioning {
            Partitioning::RoundRobin => Partitioner::round_robin(self.partitions),
            Partitioning::Key => Partitioner::keyed(seed, self.partitions, self.keys),
        }
    }
}

/// The Event Hubs SDK's `LoadBalancingUpdateInterval` (30 s since processor 5.7.0).
const LOAD_BALANCING_INTERVAL: Nanos = 30 * NS_PER_S;

/// The Event Hubs SDK's `PartitionOwnershipExpirationInterval` (2 min since 5.7.0).
const OWNERSHIP_EXPIRY: Nanos = 2 * NS_PER_MIN;

/// The stream's summary counters, all in the `stream` section.
const COUNTERS: [&str; 11] = [
    "events",
    "checkpoints",
    "replayed",
    "skipped",
    "parked",
    "order_violations",
    "lag_peak",
    "paused_s",
    "retries",
    "batches",
    "breaker_trips",
];

/// Everything the processors share: the hub, the settings, the breaker, the parked queue.
struct Stream {
    t: Rc<Topology>,
    sim: Sim,
    meters: Rc<Meters>,
    hub: Rc<EventHub>,
    /// 1 while the breaker holds every processor: the `stream.paused` column.
    paused_gauge: Gauge,
    cfg: Resolved,
    host: Rc<Host>,
    calls: Downstream,
    work: Dist,
    breaker: Option<RefCell<StreamBreaker>>,
    park: Option<Rc<Queue>>,
    retry_rng: RefCell<Rng>,
    lag_recorded: Cell<u64>,
}

/// How a batch ended.
enum Batch {
    /// Handled (successfully or not): the partition moves on to `next`.
    Done {
        /// The offset after the batch.
        next: u64,
    },
    /// Stopped by the breaker, or the partition changed hands during a retry wait: not
    /// checkpointed.
    Halted,
}

/// The event hub, the producer appending to it, the processors on the `consumer` pool, and
/// (with `on_failure = "park"`) the parked queue's pool.
fn build(t: &Rc<Topology>) {
    let cfg = Resolved::of(&t.scenario);
    for c in COUNTERS {
        t.count(&format!("stream.{c}"), 0.0); // in every summary, so `[expect]` can name them
    }
    let park = t.add_queue("parked", t.scenario.queue.clone());
    let consumer = t.scenario.consumer.clone();
    t.add_pool("consumer", park.clone(), &consumer);
    let host = t.pool("consumer").expect("just added").0;
    if cfg.on_failure == OnFailure::Park {
        let trigger = t.add_pool("parked", park.clone(), &consumer);
        let worker = Worker {
            sim: t.sim.clone(),
            queue: park.clone(),
            host: t.pool("parked").expect("just added").0,
            meters: t.meters.clone(),
            work: consumer.work.clone(),
            calls: t.downstream(&consumer.calls),
            poison: t
                .scenario
                .workload
                .classes
                .iter()
                .position(|(n, _)| n == "poison")
                .map(|i| i as u8),
        };
        t.start_pool(&trigger, cfg.park_instances, worker);
    }
    let hub = Rc::new(EventHub::new(t.sim.clone(), t.meters.clone(), cfg.partitions));
    let lag = hub.clone();
    t.probe("stream.lag", move || lag.lag() as f64);
    let stream = Rc::new(Stream {
        t: t.clone(),
        sim: t.sim.clone(),
        meters: t.meters.clone(),
        hub,
        paused_gauge: t.gauge("stream.paused"),
        breaker: cfg.breaker.map(|(f, w, p)| RefCell::new(StreamBreaker::new(f, w, p))),
        park: (cfg.on_failure == OnFailure::Park).then_some(park),
        calls: t.downstream(&consumer.calls),
        work: consumer.work.clone(),
        retry_rng: RefCell::new(t.rng("stream.retry")),
        lag_recorded: Cell::new(0),
        host: host.clone(),
        cfg,
    });
    let mut partitioner = stream.cfg.partitioner(t.scenario.seed);
    let producer = stream.clone();
    t.sim.spawn(t.clone().produce(move |msg| {
        producer.hub.append(partitioner.place(), msg);
        producer.t.count("stream.events", 1.0);
        producer.lag_changed();
    }));
    let s = stream.clone();
    let main: SlotMain =
        Rc::new(move |inst: Rc<Instance>, _slot| Box::pin(s.clone().processor(inst)));
    host.start(consumer.instances, false, 1, main);
}

impl Stream {
    /// One instance's event processor: every load-balancing cycle it renews its claims,
    /// claims its fair share, and runs a pump for each partition it owns.
    async fn processor(self: Rc<Self>, inst: Rc<Instance>) {
        let me = inst.group();
        let pumping: Rc<RefCell<BTreeSet<u32>>> = Rc::default();
        loop {
            self.hub.balance(me, self.cfg.ownership_expiry);
            for p in 0..self.hub.partitions() {
                if self.hub.owns(p, me) && pumping.borrow_mut().insert(p) {
                    let (s, i, live) = (self.clone(), inst.clone(), pumping.clone());
                    self.sim.spawn_in(me, async move {
                        s.pump(&i, p).await;
                        live.borrow_mut().remove(&p);
                    });
                }
            }
            self.sim.sleep(self.cfg.load_balancing_interval).await;
        }
    }

    /// One partition's pump on its owner: read a batch from where it is, handle it,
    /// checkpoint every `checkpoint_every` batches; after a breaker pause, start again from
    /// the checkpoint. Ends when the partition is no longer this processor's.
    async fn pump(&self, inst: &Rc<Instance>, p: u32) {
        let me = inst.group();
        let mut position = self.hub.checkpoint_of(p);
        let mut batches = 0;
        loop {
            if !self.hub.owns(p, me) {
                return;
            }
            if self.wait_out_pause().await {
                position = self.hub.checkpoint_of(p);
                batches = 0;
                continue;
            }
            position = position.max(self.hub.checkpoint_of(p));
            if self.hub.head(p) <= position {
                self.hub.wait_append(p).await;
                continue;
            }
            match self.batch(inst, p, position).await {
                Batch::Done { next } => {
                    if !self.hub.owns(p, me) {
                        return; // it changed hands meanwhile: the new owner checkpoints
                    }
                    position = next;
                    batches += 1;
                    if batches >= self.cfg.checkpoint_every {
                        self.checkpoint(p, position);
                        batches = 0;
                    }
                }
                Batch::Halted => {
                    position = self.hub.checkpoint_of(p);
                    batches = 0;
                }
            }
        }
    }

    /// Waits while the breaker holds every processor; returns whether it waited.
    async fn wait_out_pause(&self) -> bool {
        let Some(b) = &self.breaker else { return false };
        let mut waited = false;
        loop {
            let until = b.borrow().open_until();
            if self.sim.now_ns() >= until {
                return waited;
            }
            waited = true;
            self.sim.sleep_until(SimTime(until)).await;
        }
    }

    fn paused(&self) -> bool {
        self.breaker.as_ref().is_some_and(|b| b.borrow().is_open(self.sim.now_ns()))
    }

    /// Counts a failure in the breaker; true if the breaker holds the processors now.
    fn failure(&self) -> bool {
        let Some(b) = &self.breaker else { return false };
        let now = self.sim.now_ns();
        let (tripped, until, pause) = {
            let mut b = b.borrow_mut();
            let tripped = b.failure(now);
            (tripped, b.open_until(), b.open_until().saturating_sub(now))
        };
        if tripped {
            self.t.count("stream.breaker_trips", 1.0);
            self.t.count("stream.paused_s", pause as f64 / NS_PER_S as f64);
            self.paused_gauge.set(1.0);
            let (sim, gauge) = (self.sim.clone(), self.paused_gauge.clone());
            self.sim.spawn(async move {
                sim.sleep_until(SimTime(until)).await;
                gauge.set(0.0); // failures while open are not counted: it cannot reopen before
            });
        }
        self.paused()
    }

    /// One batch from `from`: the function runs on it, and again under the retry policy
    /// while it fails (the checkpoint waits meanwhile).
    async fn batch(&self, inst: &Rc<Instance>, p: u32, from: u64) -> Batch {
        let mut delays = RetryDelays::default();
        let mut size = self.cfg.batch;
        let mut first = true;
        loop {
            let batch = self.hub.read(p, from, size, first);
            let now = self.sim.now_ns();
            for r in batch.iter().filter(|r| r.delivery == 1) {
                self.meters.latency(Lat::QueueWait, r.msg.accepted_at, now - r.msg.accepted_at);
            }
            if first {
                size = batch.len() as u32; // a retry runs the same events
                self.t.count("stream.batches", 1.0);
                let replays = batch.iter().filter(|r| r.replay).count();
                if replays > 0 {
                    self.t.count("stream.replayed", replays as f64);
                }
                first = false;
            }
            let last = !self.cfg.retry.may_retry(delays.retries);
            let execution = self.host.begin_untimed(inst);
            let (mut failed, mut halted) = (false, false);
            for r in &batch {
                if self.paused() {
                    halted = true;
                    break;
                }
                if self.handle(inst, r).await {
                    self.effect(p, r);
                    continue;
                }
                self.meters.failed();
                if self.failure() {
                    halted = true;
                    break;
                }
                if last && self.park.is_some() {
                    self.give_up(p, r); // caught: parked at the checkpoint
                    continue;
                }
                failed = true; // the exception ends the invocation
                if last {
                    // skipped: this event and the rest of the batch
                    for rest in batch.iter().filter(|x| x.offset >= r.offset) {
                        self.give_up(p, rest);
                    }
                }
                break;
            }
            self.host.end_execution(inst, execution);
            if halted {
                return Batch::Halted;
            }
            let next = batch.last().map_or(from, |r| r.offset + 1);
            if !failed || last {
                return Batch::Done { next };
            }
            self.t.count("stream.retries", 1.0);
            let delay = self.cfg.retry.next_delay(&mut delays, &mut self.retry_rng.borrow_mut());
            self.sim.sleep(delay).await;
            if !self.hub.owns(p, inst.group()) {
                return Batch::Halted;
            }
        }
    }

    /// The function's work on one event: its own work, then the calls in order. True if
    /// it succeeded.
    async fn handle(&self, inst: &Rc<Instance>, r: &Read) -> bool {
        let started = self.sim.now_ns();
        let work = self.work.sample(&mut inst.rng.borrow_mut());
        self.sim.sleep(work).await;
        let ok = !self.t.is_poison(r.msg.class) && self.calls.call_all().await.is_ok();
        self.meters.latency(Lat::Handler, r.msg.accepted_at, self.sim.now_ns() - started);
        ok
    }

    /// The last attempt gave up on the event (skipped or parked).
    fn give_up(&self, p: u32, r: &Read) {
        self.hub.give_up(p, r.offset);
        self.meters.trace(&r.msg, Event::Note("given_up"));
    }

    /// The event's effect has been applied: first time (in order or not), or again.
    fn effect(&self, p: u32, r: &Read) {
        match self.hub.effect(p, r.offset) {
            Effect::First { in_order } => {
                self.meters.trace(&r.msg, Event::Note("effect"));
                if !in_order {
                    self.t.count("stream.order_violations", 1.0);
                }
            }
            Effect::Duplicate | Effect::Settled => {
                self.meters.duplicate();
                self.meters.trace(&r.msg, Event::Note("duplicate_effect"));
            }
        }
    }

    /// Moves the checkpoint of `p` to `to`: events with their effect complete; the others
    /// are skipped (lost) or parked.
    fn checkpoint(&self, p: u32, to: u64) {
        let (mut skipped, mut parked) = (0u64, 0u64);
        let passed = self.hub.checkpoint(p, to, |msg| match &self.park {
            Some(q) => {
                if q.send(msg, Some(Holder::Partition)) {
                    parked += 1;
                }
            }
            None => {
                self.meters.exit(&msg, Holder::Partition, Exit::Lost);
                skipped += 1;
            }
        });
        if passed == 0 {
            return;
        }
        self.t.count("stream.checkpoints", 1.0);
        if skipped > 0 {
            self.t.count("stream.skipped", skipped as f64);
        }
        if parked > 0 {
            self.t.count("stream.parked", parked as f64);
        }
        self.lag_changed();
    }

    /// The lag changed: its peak goes to the summary.
    fn lag_changed(&self) {
        let peak = self.hub.lag_peak();
        if peak > self.lag_recorded.get() {
            self.lag_recorded.set(peak);
            self.t.record_max("stream.lag_peak", peak as f64);
        }
    }
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let cfg = Resolved::of(s);
    vec![Box::new(PartitionOrder::new(cfg.partitioner(s.seed))), Box::new(Settlement::default())]
}
