//! # Transactional outbox
//!
//! ```text
//!  outbox (the pattern)
//!  request ──► producer ──one transaction──► [store: orders + outbox row] ──202──► client
//!                                                     │
//!              relay, every relay_interval: the oldest relay_batch rows
//!                                                     ├──publish──► [queue] ──► consumers
//!                                                     └──then delete the rows published
//!
//!  dual-write (the baseline)
//!  request ──► producer ──commit──► [store: orders] ──then publish──► [queue] ──► consumers
//!                                          a crash in between: the event is gone
//!
//!  idempotent consumer: one transaction per delivery in its own store
//!    insert processed(message id) (unique) + apply the effect   ── key taken: skip, complete
//! ```
//!
//! Demonstrates:
//! * `outbox`: the business change and the event are committed together, so every committed
//!   change is eventually published, whatever crashes (`outbox.lost_events == 0`);
//! * the relay publishes at least once: a relay that crashes after publishing a batch and
//!   before marking it publishes the batch again (`outbox.duplicate_publishes`), and a
//!   consumer that crashes after its effect and before completing gets the message again;
//! * an idempotent consumer (the processed-messages table with a unique key, checked in the
//!   same transaction as the effect) turns at-least-once delivery into exactly one effect
//!   per committed change (`outbox.duplicate_effects == 0`); without it every duplicate
//!   delivery is a duplicate effect;
//! * `dual-write` (save, then publish) loses the event of every change whose producer
//!   crashes between the commit and the publish (`outbox.lost_events`, `messages.lost`).
//!
//! The ledger's message is the committed change. A request is held by the API (`api`)
//! until its transaction commits (a crash before that fails the request: `rejected`, and
//! nothing is committed); then by the store (`store`: the outbox row), or under
//! `dual-write` by the producer's memory (`web`: the event it is about to publish); then by
//! the queue, from its first publish until a consumer completes it. `messages.lost` counts
//! the committed changes whose event was lost (`dual-write` only). Copies published again
//! are not new messages: they wait in the queue like any message (backlog, deliveries) but
//! only the outbox counters account for them.
//!
//! Settings, in `[outbox]`, and the database in `[store]`:
//!
//! ```toml
//! [outbox]
//! design = "outbox"              # outbox | dual-write
//! relay_interval = "1s"          # how often the relay polls the outbox table
//! relay_batch = 100              # rows per poll
//! idempotent_consumer = true     # processed-messages table, unique key, same transaction
//! broker_latency = "exp(mean=5ms)"  # a round trip to the broker: a send, a complete
//! broker = "servicebus"          # optional: a [services.X] each send calls instead (its
//!                                # latency, errors and outages: a broker outage)
//! [store]
//! latency = "exp(mean=5ms)"      # a statement's round trip
//! commit_latency = "exp(mean=5ms)"
//! ```
//!
//! The consumers are the `consumer` pool (`[consumer]`, hosting plan, crash faults as in
//! every pattern); each delivery does the `[consumer] work` and `calls`, then commits its
//! effect in the consumer's own database (another store with the `[store]` settings). Crash
//! faults may also name `producer` and `relay`.

use crate::check::{Checker, MaxDeliveries, Violation};
use crate::dist::Dist;
use crate::ledger::{Event, Exit, Holder, Message, TraceEvent};
use crate::model::host::Instance;
use crate::model::meters::Lat;
use crate::model::process::Process;
use crate::model::queue::{Delivery, Queue};
use crate::model::series::Gauge;
use crate::model::service::Downstream;
use crate::model::store::{Store, Table};
use crate::model::trigger::Handler;
use crate::patterns::{Pattern, SettingsTable};
use crate::results::RunResults;
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{PatternKind, Scenario};
use crate::time::{NS_PER_MS, NS_PER_S, Nanos};
use crate::topology::Topology;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("outbox");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "state and event in one transaction, a relay, an idempotent consumer; the dual write loses events",
    section: Some("outbox"),
    processes: &["producer", "relay"],
    hosted: true,
    table: Some(SettingsTable { name: "outbox", read }),
    build,
    checkers,
};

/// How the producer gets its event to the broker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Design {
    /// The change and an outbox row in one transaction; a relay publishes the rows.
    #[default]
    Outbox,
    /// Commit the change, then publish the event (the baseline).
    DualWrite,
}

const DESIGNS: [Design; 2] = [Design::Outbox, Design::DualWrite];

impl Design {
    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Design::Outbox => "outbox",
            Design::DualWrite => "dual-write",
        }
    }
}

/// `[outbox]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// How the event reaches the broker.
    pub design: Option<Design>,
    /// How often the relay polls the outbox table.
    pub relay_interval: Option<Nanos>,
    /// Rows the relay takes per poll.
    pub relay_batch: Option<u32>,
    /// Whether the consumer deduplicates by message id.
    pub idempotent_consumer: Option<bool>,
    /// A round trip to the broker: a send, a complete.
    pub broker_latency: Option<Dist>,
    /// A `[services.<name>]` that stands for the broker's send endpoint: each publish is a
    /// call to it (its latency, errors and fault windows), instead of `broker_latency`.
    pub broker: Option<String>,
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let names = DESIGNS.map(Design::name);
    let s = Settings {
        design: t.choice("design", &names)?.map(|i| DESIGNS[i]),
        relay_interval: t.duration("relay_interval")?,
        relay_batch: t.integer("relay_batch", 1, 1_000_000)?.map(|n| n as u32),
        idempotent_consumer: t.boolean("idempotent_consumer")?,
        broker_latency: t.dist("broker_latency")?,
        broker: t.string("broker")?,
    };
    if let (Some(name), Some(sc)) = (&s.broker, t.scenario())
        && !sc.services.contains_key(name)
    {
        let defined: Vec<&str> = sc.services.keys().map(String::as_str).collect();
        let msg = format!(
            "unknown service `{name}` in `outbox.broker` (defined: {})",
            if defined.is_empty() { "none".to_string() } else { defined.join(", ") }
        );
        return Err(t.invalid("broker", &msg));
    }
    if s.relay_interval == Some(0) {
        return Err(t.invalid("relay_interval", "`relay_interval` must be longer than 0"));
    }
    Ok(Arc::new(s))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(v) = self.design {
            out.string("design", v.name());
        }
        if let Some(v) = self.relay_interval {
            out.duration("relay_interval", v);
        }
        if let Some(v) = self.relay_batch {
            out.integer("relay_batch", u64::from(v));
        }
        if let Some(v) = self.idempotent_consumer {
            out.boolean("idempotent_consumer", v);
        }
        if let Some(v) = &self.broker_latency {
            out.dist("broker_latency", v);
        }
        if let Some(v) = &self.broker {
            out.string("broker", v);
        }
    }
}

/// The settings in force, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// How the event reaches the broker.
    pub design: Design,
    /// How often the relay polls.
    pub relay_interval: Nanos,
    /// Rows per poll.
    pub relay_batch: u32,
    /// Whether the consumer deduplicates.
    pub idempotent_consumer: bool,
    /// A round trip to the broker: a send, a complete.
    pub broker_latency: Dist,
    /// The service that stands for the broker's send endpoint, if any.
    pub broker: Option<String>,
}

impl Resolved {
    /// The settings of `s`, defaults filled in.
    pub fn of(s: &Scenario) -> Resolved {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        Resolved {
            design: mine.design.unwrap_or_default(),
            relay_interval: mine.relay_interval.unwrap_or(NS_PER_S),
            relay_batch: mine.relay_batch.unwrap_or(100),
            idempotent_consumer: mine.idempotent_consumer.unwrap_or(true),
            broker_latency: mine.broker_latency.unwrap_or(Dist::Exp { mean: 5 * NS_PER_MS }),
            broker: mine.broker,
        }
    }
}

/// A row of the outbox table: the event to publish (the ledger's message).
#[derive(Clone, Copy, Debug)]
struct OutboxRow {
    msg: Message,
}

/// The counters of the summary section, and the gauge.
const COUNTERS: [&str; 10] = [
    "outbox.committed",
    "outbox.published",
    "outbox.unpublished",
    "outbox.unpublished_peak",
    "outbox.duplicate_publishes",
    "outbox.duplicate_effects",
    "outbox.lost_events",
    "outbox.effects",
    "outbox.deduplicated",
    "outbox.requests_failed",
];

/// The producer's side: the API, its database and the relay.
struct Producer {
    t: Rc<Topology>,
    cfg: Resolved,
    queue: Rc<Queue>,
    /// The producer's database: the business table and the outbox table.
    store: Rc<Store>,
    orders: Rc<Table<u64>>,
    outbox: Rc<Table<OutboxRow>>,
    /// What the producer process holds in memory: requests not yet committed (`Api`) and,
    /// under `dual-write`, committed events not yet published (`Web`).
    held: RefCell<BTreeMap<u64, (Message, Holder)>>,
    /// Outbox rows published and not yet deleted: publishing one again is a duplicate. (The
    /// broker's view, not the relay's memory: it survives a relay crash.)
    published: RefCell<BTreeSet<u64>>,
    rng: RefCell<Rng>,
    /// The broker's send endpoint as a service, when `broker` names one.
    broker: Option<Downstream>,
    unpublished: Gauge,
    process: RefCell<Option<Rc<Process>>>,
}

/// The API, the relay and the consumer pool.
fn build(t: &Rc<Topology>) {
    let cfg = Resolved::of(&t.scenario);
    t.meters.track_accept(t.scenario.horizon());
    for c in COUNTERS {
        t.count(c, 0.0); // in every summary, so `[expect]` can name them
    }
    let queue = t.add_queue("queue", t.scenario.queue.clone());
    let p = Rc::new(Producer {
        t: t.clone(),
        cfg: cfg.clone(),
        queue: queue.clone(),
        store: Store::new(t.sim.clone(), &t.scenario.store, t.rng("store.producer")),
        orders: Table::new("orders"),
        outbox: Table::new("outbox"),
        held: RefCell::new(BTreeMap::new()),
        published: RefCell::new(BTreeSet::new()),
        rng: RefCell::new(t.rng("outbox.publish")),
        broker: cfg.broker.as_ref().map(|b| t.downstream(std::slice::from_ref(b))),
        unpublished: t.gauge("outbox.unpublished"),
        process: RefCell::new(None),
    });
    // The topology keeps the processes, so they hold the producer weakly (no cycle); a
    // process of the engine holds it for the whole run (its hooks must find it after the
    // workload has ended and every task of it has crashed).
    t.sim.spawn(keep(p.clone()));
    let crashed = Rc::downgrade(&p);
    let producer = t.add_process(
        "producer",
        |_| {}, // its tasks are the requests, spawned as they arrive
        move |_| crashed.upgrade().into_iter().for_each(|p| p.crashed()),
    );
    *p.process.borrow_mut() = Some(producer);
    let relay = Rc::downgrade(&p);
    t.add_process(
        "relay",
        move |process| {
            if let Some(r) = relay.upgrade().filter(|r| r.cfg.design == Design::Outbox) {
                process.spawn(r.relay());
            }
        },
        |_| {}, // the relay holds nothing the durable rows and the queue do not
    );
    let api = p.clone();
    t.sim.spawn(t.clone().produce(move |msg| api.request(msg)));
    let c = &t.scenario.consumer;
    let trigger = t.add_pool("consumer", queue.clone(), c);
    let host = t.pool("consumer").expect("just added").0;
    let consumer = Consumer {
        t: Rc::downgrade(t),
        queue,
        host,
        store: Store::new(t.sim.clone(), &t.scenario.store, t.rng("store.consumer")),
        processed: Table::new("processed_messages"),
        effects: Table::new("effects"),
        idempotent: cfg.idempotent_consumer,
        work: c.work.clone(),
        calls: t.downstream(&c.calls),
        settle: cfg.broker_latency.clone(),
    };
    t.start_pool(&trigger, c.instances, consumer);
}

impl Producer {
    fn process(&self) -> Rc<Process> {
        self.process.borrow().clone().expect("the producer process is added in build")
    }

    /// A request arrives at the API: the producer handles it, or fails it at once while
    /// it is down or shutting down.
    fn request(self: &Rc<Self>, mut msg: Message) {
        let t = &self.t;
        t.meters.admit(&mut msg, Holder::Api);
        let process = self.process();
        if !process.is_up() || process.is_stopping() {
            t.count("outbox.requests_failed", 1.0);
            t.meters.exit(&msg, Holder::Api, Exit::Rejected);
            return;
        }
        self.held.borrow_mut().insert(msg.id, (msg, Holder::Api));
        process.spawn(self.clone().handle(msg));
    }

    /// One request: the business change (and under `outbox` its event) in one
    /// transaction; under `dual-write`, then the publish.
    async fn handle(self: Rc<Self>, mut msg: Message) {
        let t = &self.t;
        let requested = t.sim.now_ns();
        let mut tx = self.store.begin();
        tx.insert(&self.orders, msg.id, msg.id);
        if self.cfg.design == Design::Outbox {
            // The row's event is accepted when the row is committed (its end-to-end latency
            // starts there, as it does when the ledger hands the message to the store).
            let sim = t.sim.clone();
            tx.upsert(&self.outbox, msg.id, move |_| OutboxRow {
                msg: Message { accepted_at: sim.now_ns(), ..msg },
            });
        }
        self.store.commit(tx).await.expect("a new order's keys are free");
        // Committed: the change is durable from here on, whatever happens to this process.
        t.count("outbox.committed", 1.0);
        t.count("outbox.unpublished", 1.0);
        self.unpublished.add(1.0);
        t.record_max("outbox.unpublished_peak", self.unpublished.get());
        t.meters.trace(&msg, Event::Note("committed"));
        match self.cfg.design {
            Design::Outbox => {
                self.held.borrow_mut().remove(&msg.id);
                t.meters.hand_over(&mut msg, Holder::Api, Holder::Store);
            }
            Design::DualWrite => {
                t.meters.hand_over(&mut msg, Holder::Api, Holder::Web);
                self.held.borrow_mut().insert(msg.id, (msg, Holder::Web));
                // A crash during the publish loses the event: the change is committed.
                let sent = self.send().await;
                self.held.borrow_mut().remove(&msg.id);
                if !sent || self.queue_full() {
                    // The broker failed or refused the send after the commit: the same loss
                    // (the request fails, but its change stays committed).
                    self.lose(&msg, Holder::Web);
                    return;
                } else {
                    self.queue.send(msg, Some(Holder::Web));
                    self.first_publish();
                }
            }
        }
        t.meters.latency(Lat::Accept, requested, t.sim.now_ns() - requested);
    }

    /// The producer crashed: requests not committed fail; events not yet published (under
    /// `dual-write`) are lost.
    fn crashed(&self) {
        let held = std::mem::take(&mut *self.held.borrow_mut());
        for (_, (msg, holder)) in held {
            match holder {
                Holder::Web => self.lose(&msg, holder),
                _ => {
                    self.t.count("outbox.requests_failed", 1.0);
                    self.t.meters.exit(&msg, holder, Exit::Rejected);
                }
            }
        }
    }

    /// A committed change's event is gone for good.
    fn lose(&self, msg: &Message, holder: Holder) {
        let t = &self.t;
        t.count("outbox.lost_events", 1.0);
        t.count("outbox.unpublished", -1.0);
        self.unpublished.add(-1.0);
        t.meters.exit(msg, holder, Exit::Lost);
    }

    fn first_publish(&self) {
        let t = &self.t;
        t.count("outbox.published", 1.0);
        t.count("outbox.unpublished", -1.0);
        self.unpublished.add(-1.0);
    }

    /// One send to the broker: `broker_latency`, or a call to the `broker` service
    /// (retried in process as `[retry]` says). Whether it succeeded.
    async fn send(&self) -> bool {
        match &self.broker {
            Some(b) => b.call_all().await.is_ok(),
            None => {
                let took = self.cfg.broker_latency.sample(&mut self.rng.borrow_mut());
                self.t.sim.sleep(took).await;
                true
            }
        }
    }

    /// Whether the broker refuses a send now (`[queue] capacity` reached).
    fn queue_full(&self) -> bool {
        let cap = self.queue.spec().capacity;
        cap > 0 && self.queue.held() >= cap
    }

    /// The relay: every `relay_interval`, publish the oldest `relay_batch` outbox rows in
    /// order, then delete the rows it published in one transaction; after a full batch it
    /// polls again at once (it is behind). A crash after a publish and before that commit
    /// publishes those rows again after the restart.
    async fn relay(self: Rc<Self>) {
        let t = &self.t;
        let limit = self.cfg.relay_batch as usize;
        let mut full = false;
        loop {
            if !full {
                t.sim.sleep(self.cfg.relay_interval).await;
            }
            let batch = self.store.query(&self.outbox, limit, |_| true).await;
            full = batch.len() == limit;
            let mut sent = Vec::with_capacity(batch.len());
            for (id, row) in batch {
                if self.queue_full() || !self.send().await {
                    full = false; // the broker refuses: the rest waits for the next poll
                    break;
                }
                if self.published.borrow_mut().insert(id) {
                    self.queue.send(row.msg, Some(Holder::Store));
                    self.first_publish();
                } else {
                    self.queue.send_copy(row.msg);
                    t.count("outbox.duplicate_publishes", 1.0);
                    t.meters.trace(&row.msg, Event::Note("published_again"));
                }
                sent.push(id);
            }
            if sent.is_empty() {
                continue;
            }
            let mut tx = self.store.begin();
            for id in &sent {
                tx.delete(&self.outbox, *id);
            }
            self.store.commit(tx).await.expect("deletes never conflict");
            let mut published = self.published.borrow_mut();
            for id in &sent {
                published.remove(id);
            }
        }
    }
}

/// The consumer's handler: the work, the calls, then the effect in one transaction with
/// (when idempotent) the processed-message row.
struct Consumer {
    /// Weak: the topology keeps the pool, which keeps the handler.
    t: Weak<Topology>,
    queue: Rc<Queue>,
    host: Rc<crate::model::host::Host>,
    /// The consumer's own database.
    store: Rc<Store>,
    processed: Rc<Table<()>>,
    /// The effect: how many times each change was applied (1 is right).
    effects: Rc<Table<u32>>,
    idempotent: bool,
    work: Dist,
    calls: Downstream,
    /// A complete's round trip to the broker.
    settle: Dist,
}

impl Handler for Consumer {
    async fn handle(&self, inst: &Rc<Instance>, delivery: Delivery) {
        let Some(t) = self.t.upgrade() else { return };
        let msg = delivery.msg;
        let started = t.sim.now_ns();
        if self.idempotent && self.store.get(&self.processed, msg.id).await.is_some() {
            // Seen before: settle it without doing anything again.
            t.count("outbox.deduplicated", 1.0);
            self.complete(inst, &delivery).await;
            return;
        }
        let work = self.work.sample(&mut inst.rng.borrow_mut());
        t.sim.sleep(work).await;
        self.host.cpu_work(work);
        let ok = !t.is_poison(msg.class) && self.calls.call_all().await.is_ok();
        if !ok {
            t.meters.latency(Lat::Handler, msg.accepted_at, t.sim.now_ns() - started);
            let _ = self.queue.abandon(&delivery);
            return;
        }
        let mut tx = self.store.begin();
        if self.idempotent {
            tx.insert(&self.processed, msg.id, ());
        }
        tx.upsert(&self.effects, msg.id, |n| n.map_or(1, |n| n + 1));
        match self.store.commit(tx).await {
            Ok(()) => {
                t.count("outbox.effects", 1.0);
                t.meters.trace(&msg, Event::Note("effect"));
                if self.effects.peek(msg.id).unwrap_or(0) > 1 {
                    t.count("outbox.duplicate_effects", 1.0);
                }
            }
            // Another delivery of the same change committed first: no effect here.
            Err(_) => t.count("outbox.deduplicated", 1.0),
        }
        t.meters.latency(Lat::Handler, msg.accepted_at, t.sim.now_ns() - started);
        // A crash from here until the complete reaches the broker: the effect is committed,
        // the message comes again, and only the processed-messages table stops a second
        // effect.
        self.complete(inst, &delivery).await;
    }
}

impl Consumer {
    /// Completes the message: one round trip to the broker. A settle that finds the lock
    /// lost is not an error: the message comes again.
    async fn complete(&self, inst: &Rc<Instance>, delivery: &Delivery) {
        let Some(t) = self.t.upgrade() else { return };
        let took = self.settle.sample(&mut inst.rng.borrow_mut());
        t.sim.sleep(took).await;
        let _ = self.queue.complete(delivery);
    }
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let cfg = Resolved::of(s);
    let mut c: Vec<Box<dyn Checker>> =
        vec![Box::new(MaxDeliveries::new(s.queue.max_delivery_count))];
    if cfg.design == Design::Outbox && cfg.idempotent_consumer {
        c.push(Box::new(ExactlyOnceEffect::default()));
    }
    c
}

/// Under `outbox` with an idempotent consumer: no change is applied twice, every change
/// that completed was applied exactly once, and no committed change was lost.
#[derive(Debug, Default)]
pub struct ExactlyOnceEffect {
    /// Changes committed and not yet judged complete.
    committed: BTreeSet<u64>,
    /// Changes applied (an effect is remembered: a copy may come much later).
    applied: BTreeSet<u64>,
    found: Vec<Violation>,
}

impl ExactlyOnceEffect {
    fn broken(&mut self, at: Nanos, message: String) {
        if self.found.len() < 100 {
            self.found.push(Violation { checker: "exactly-once-effect", at, message });
        }
    }
}

impl ExactlyOnceEffect {
    fn applied(&mut self, e: &TraceEvent) {
        if !self.applied.insert(e.id) {
            self.broken(e.t, format!("change {} applied twice", e.id));
        }
    }
}

impl Checker for ExactlyOnceEffect {
    fn name(&self) -> &'static str {
        "exactly-once-effect"
    }

    fn observe(&mut self, e: &TraceEvent) {
        match e.what {
            Event::Note("committed") => {
                self.committed.insert(e.id);
            }
            Event::Note("effect") => self.applied(e),
            Event::Left(Exit::Completed) => {
                if !self.applied.contains(&e.id) {
                    self.broken(e.t, format!("change {} completed without its effect", e.id));
                }
                self.committed.remove(&e.id);
            }
            Event::Left(Exit::Lost) if self.committed.remove(&e.id) => {
                self.broken(e.t, format!("committed change {} lost its event", e.id));
            }
            Event::Left(_) => {
                self.committed.remove(&e.id);
            }
            _ => {}
        }
    }

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
        let lost = r.sections.get("outbox").and_then(|s| s.get("lost_events")).copied();
        if lost.unwrap_or(0.0) != 0.0 {
            out.push(Violation {
                checker: self.name(),
                at: r.sim_time,
                message: format!("outbox.lost_events = {}", lost.unwrap_or(0.0)),
            });
        }
    }
}

/// Holds `state` until the engine shuts down and drops its processes.
async fn keep<T>(state: Rc<T>) {
    let _state = state;
    std::future::pending::<()>().await;
}
