//! # Fan-out: one event, many subscribers (Event Grid)
//!
//! ```text
//!                        ┌─ billing (order-created) ───push──► [billing-api]
//!  publisher ──event──► [topic] ─ email (all types) ──────push──► [email-api]
//!                        └─ analytics ...            ───push──► ...
//!  each copy on its own: attempt ──► 2xx: delivered
//!                           ├──► 400 (poison): dead-letter, or drop
//!                           └──► error / 503 / 429 / no answer in 30 s: retry after
//!                                10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h,
//!                                then every 12 h (±10 %), until max_attempts or the
//!                                event's TTL: dead-letter, or drop
//! ```
//!
//! Demonstrates:
//! * push delivery with Event Grid's documented retry policy ([`crate::model::event_grid`]):
//!   the schedule, 30 attempts within a 24 h time-to-live by default, the TTL checked only
//!   when a retry comes due, 400 never retried, a 503 retried after 30 s at least, a
//!   subscription that keeps failing put on probation (its new events wait too);
//! * isolation: every subscription keeps its own copies, schedule and probation, so an outage
//!   of one subscriber delays nobody else (same seed, same latency for the others);
//! * what an outage longer than the TTL costs: without a dead-letter destination the copies
//!   are dropped (`fan_out.<name>.dropped`), with one they are kept (`dead_lettered`).
//!
//! The ledger counts copies: an event published to the topic becomes one message per
//! subscription whose filter matches it (`messages.produced` = copies, the sum of
//! `fan_out.<name>.matched`), and each copy leaves by its own exit: `completed` when
//! delivered, `dead_lettered`, `expired` (dropped at its TTL) or `lost` (dropped after its
//! last attempt or a 400). Events are `fan_out.published`; those no subscription matched are
//! `fan_out.unmatched` (Event Grid accepts and discards them). End-to-end latency is publish
//! to delivery of a copy; `fan_out.<name>.latency.*` is the same per subscription.
//!
//! Settings, in `[[fan_out.subscriptions]]` (one table per subscription):
//!
//! ```toml
//! [[fan_out.subscriptions]]
//! name = "billing"                 # required: letters, digits, `-`, `_`
//! event_types = ["order-created"]  # workload classes it receives; [] or absent = all
//! endpoint = "billing-api"         # required: the [services.X] it pushes to
//! max_attempts = 30                # 1..=30, Event Grid's default 30
//! event_ttl = "24h"                # 1m..=24h, Event Grid's default 1440 minutes
//! dead_letter = false              # a dead-letter destination (Event Grid: none by default)
//! ```
//!
//! Without the table, every service in `consumer.calls` gets a subscription of its own name
//! that takes every event type; without those either, one subscription `consumer` pushes to
//! an Event Grid-triggered function doing `[consumer] work`, `instances × concurrency` events
//! at once (429 beyond). Events of the `poison` class are answered 400 Bad Request by
//! every endpoint (a payload it can never take).

use crate::check::{Checker, Violation};
use crate::engine::TaskId;
use crate::ledger::{Event, Exit, Holder, Message};
use crate::model::event_grid::{
    self, Answer, LATE_ANSWER_WINDOW, Next, Probation, RESPONSE_TIMEOUT, retry_delay,
};
use crate::model::meters::{Lat, TraceEvent};
use crate::model::series::Gauge;
use crate::model::service::{CallError, Services};
use crate::patterns::{Pattern, SettingsTable};
use crate::results::{Latency, RunResults};
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{OverLimit, PatternKind, Scenario, ServiceSpec};
use crate::time::{NS_PER_S, Nanos, SimTime};
use crate::topology::Topology;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("fan-out");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "one event to every matching subscription (Event Grid): retry schedule, TTL, dead-letter, isolation",
    section: Some("fan_out"),
    hosted: false,
    processes: &[],
    table: Some(SettingsTable { name: "fan_out", read }),
    build,
    checkers,
};

/// `[[fan_out.subscriptions]]`: one subscription.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubscriptionSettings {
    /// Its name (summary fields `fan_out.<name>.*`).
    pub name: String,
    /// The classes it receives; empty = every class.
    pub event_types: Vec<String>,
    /// The service it pushes to.
    pub endpoint: String,
    /// Delivery attempts at most.
    pub max_attempts: Option<u32>,
    /// How long an event may wait for delivery.
    pub event_ttl: Option<Nanos>,
    /// Whether undeliverable events go to a dead-letter destination (else they are dropped).
    pub dead_letter: Option<bool>,
}

/// `[fan_out]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The subscriptions, in file order (`None`: one per service in `consumer.calls`).
    pub subscriptions: Option<Vec<SubscriptionSettings>>,
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let (classes, services): (Vec<String>, Vec<String>) = t.scenario().map_or_else(
        || (Vec::new(), Vec::new()),
        |s| {
            let classes = s.workload.classes.iter().map(|(n, _)| n.clone()).collect();
            (classes, s.services.keys().cloned().collect())
        },
    );
    let checked = t.scenario().is_some();
    let mut subs: Vec<SubscriptionSettings> = Vec::new();
    // A missing key is reported after the table's unknown keys (a misspelt `name` is
    // better told as such).
    let mut missing: Option<TableError> = None;
    let present = t.array_of_tables("subscriptions", &mut |_, r| {
        // every key is asked before any check, so that unknown keys and the schema see them
        let name = r.string("name")?;
        let event_types = r.strings("event_types")?;
        let endpoint = r.string("endpoint")?;
        let max_attempts = r.integer("max_attempts", 1, u64::from(event_grid::MAX_ATTEMPTS))?;
        let event_ttl = r.duration("event_ttl")?;
        let dead_letter = r.boolean("dead_letter")?;
        let Some(name) = name else {
            missing.get_or_insert_with(|| r.invalid("name", "a subscription needs a `name`"));
            return Ok(());
        };
        let good = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if name.is_empty() || !name.chars().all(good) {
            let msg = format!(
                "subscription name `{name}`: expected letters, digits, `-` and `_` (it names \
                 summary fields: fan_out.<name>.delivered)"
            );
            return Err(r.invalid("name", &msg));
        }
        if subs.iter().any(|s| s.name == name) {
            return Err(r.invalid("name", &format!("two subscriptions are named `{name}`")));
        }
        let Some(endpoint) = endpoint else {
            let msg = format!("subscription `{name}` needs an `endpoint` (a [services.X])");
            missing.get_or_insert_with(|| r.invalid("endpoint", &msg));
            return Ok(());
        };
        if checked && !services.contains(&endpoint) {
            let msg = format!(
                "`endpoint` names no service: \"{endpoint}\" (the services are: {})",
                if services.is_empty() { "none".to_string() } else { services.join(", ") }
            );
            return Err(r.invalid("endpoint", &msg));
        }
        let event_types = event_types.unwrap_or_default();
        for ty in &event_types {
            if checked && !classes.contains(ty) {
                let msg = format!(
                    "`event_types` names `{ty}`, which is not a class of [workload.classes] \
                     (expected one of: {})",
                    classes.join(", ")
                );
                return Err(r.invalid("event_types", &msg));
            }
        }
        if let Some(ttl) = event_ttl
            && !(event_grid::MIN_TTL..=event_grid::MAX_TTL).contains(&ttl)
        {
            let msg = "`event_ttl` must be from 1m to 24h (Event Grid takes 1 to 1440 minutes)";
            return Err(r.invalid("event_ttl", msg));
        }
        subs.push(SubscriptionSettings {
            name,
            event_types,
            endpoint,
            max_attempts: max_attempts.map(|n| n as u32),
            event_ttl,
            dead_letter,
        });
        Ok(())
    })?;
    if let Some(e) = missing {
        return Err(e);
    }
    if present && subs.is_empty() {
        return Err(t.invalid("subscriptions", "`fan_out.subscriptions` has no subscription"));
    }
    Ok(Arc::new(Settings { subscriptions: present.then_some(subs) }))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        let Some(subs) = &self.subscriptions else { return };
        out.array_of_tables("subscriptions", subs.len(), &mut |i, w| {
            let s = &subs[i];
            w.string("name", &s.name);
            w.strings("event_types", &s.event_types);
            w.string("endpoint", &s.endpoint);
            if let Some(v) = s.max_attempts {
                w.integer("max_attempts", u64::from(v));
            }
            if let Some(v) = s.event_ttl {
                w.duration("event_ttl", v);
            }
            if let Some(v) = s.dead_letter {
                w.boolean("dead_letter", v);
            }
        });
    }
}

/// One subscription, defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// Its name.
    pub name: String,
    /// Whether it receives each class, by class index.
    pub receives: Vec<bool>,
    /// The service it pushes to.
    pub endpoint: String,
    /// Delivery attempts at most.
    pub max_attempts: u32,
    /// Event time-to-live.
    pub ttl: Nanos,
    /// Whether a dead-letter destination is configured.
    pub dead_letter: bool,
}

/// The subscriptions in force for `s`: `[[fan_out.subscriptions]]`, or one per service in
/// `consumer.calls`; Event Grid's defaults for the keys left out.
pub fn subscriptions(s: &Scenario) -> Vec<Subscription> {
    let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
    let classes: Vec<&str> = s.workload.classes.iter().map(|(n, _)| n.as_str()).collect();
    let listed = mine.subscriptions.unwrap_or_else(|| {
        let mut calls = s.consumer.calls.clone();
        if calls.is_empty() {
            calls.push(CONSUMER.to_string());
        }
        calls
            .into_iter()
            .map(|c| SubscriptionSettings { name: c.clone(), endpoint: c, ..Default::default() })
            .collect()
    });
    listed
        .into_iter()
        .map(|sub| Subscription {
            receives: classes
                .iter()
                .map(|c| sub.event_types.is_empty() || sub.event_types.iter().any(|t| t == c))
                .collect(),
            name: sub.name,
            endpoint: sub.endpoint,
            max_attempts: sub.max_attempts.unwrap_or(event_grid::MAX_ATTEMPTS),
            ttl: sub.event_ttl.unwrap_or(event_grid::MAX_TTL),
            dead_letter: sub.dead_letter.unwrap_or(false),
        })
        .collect()
}

/// The endpoint of the default subscription when `consumer.calls` names no service: an
/// Event Grid-triggered function doing `[consumer] work`.
const CONSUMER: &str = "consumer";

/// The `consumer` endpoint: answers after `consumer.work`, `instances × concurrency`
/// events at once, 429 beyond; the service faults that target `consumer` hit it.
fn consumer_endpoint(s: &Scenario) -> Rc<Services> {
    let c = &s.consumer;
    let spec = ServiceSpec {
        latency: c.work.clone(),
        error_rate: 0.0,
        timeout: None,
        max_concurrency: Some(c.instances.saturating_mul(c.concurrency).max(1)),
        over_limit: OverLimit::Reject { retry_after: None },
    };
    let specs = BTreeMap::from([(CONSUMER.to_string(), spec)]);
    Rc::new(Services::new(s.seed, &specs, &s.faults))
}

/// The section fields of one subscription, named once.
struct Fields {
    matched: String,
    delivered: String,
    retried: String,
    dead_lettered: String,
    dropped: String,
    attempts: String,
    duplicates: String,
    pending_peak: String,
    probation_s: String,
    latency: [String; 5],
}

impl Fields {
    fn of(name: &str) -> Fields {
        let f = |what: &str| format!("fan_out.{name}.{what}");
        Fields {
            matched: f("matched"),
            delivered: f("delivered"),
            retried: f("retried"),
            dead_lettered: f("dead_lettered"),
            dropped: f("dropped"),
            attempts: f("attempts"),
            duplicates: f("duplicates"),
            pending_peak: f("pending_peak"),
            probation_s: f("probation_s"),
            latency: ["count", "mean_ms", "p50_ms", "p99_ms", "max_ms"]
                .map(|q| format!("fan_out.{name}.latency.{q}")),
        }
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        [
            &self.matched,
            &self.delivered,
            &self.retried,
            &self.dead_lettered,
            &self.dropped,
            &self.attempts,
            &self.duplicates,
            &self.pending_peak,
            &self.probation_s,
        ]
        .into_iter()
        .chain(self.latency.iter())
    }
}

/// A subscription at run time: its copies in flight, its endpoint's health, its statistics.
struct Sub {
    t: Rc<Topology>,
    spec: Subscription,
    endpoint: usize,
    fields: Fields,
    rng: RefCell<Rng>,
    probation: Cell<Probation>,
    /// Copies published to it and not yet settled (the `fan_out.<name>.pending` column).
    pending: Gauge,
    /// Publish -> delivery of its copies.
    latency: RefCell<Latency>,
    poison: Option<u8>,
    /// Where its endpoint lives: the scenario's services, or the consumer endpoint's own.
    services: Rc<Services>,
}

/// One delivery attempt's HTTP call, which may answer after Event Grid stopped waiting.
struct Call {
    started: Nanos,
    answer: Cell<Option<Result<(), CallError>>>,
    /// Event Grid stopped waiting for this call (no answer within 30 s).
    abandoned: Cell<bool>,
    /// The copy waits for its retry; a success before this time takes it out of the retry
    /// queue.
    removable_until: Cell<Option<Nanos>>,
    /// A late success took the copy out of the retry queue.
    late_success: Cell<bool>,
    /// The copy's delivery process, woken by the answer.
    waiter: TaskId,
}

impl Sub {
    fn now(&self) -> Nanos {
        self.t.sim.now_ns()
    }

    /// A copy of an event, accepted by the topic for this subscription.
    fn publish(self: &Rc<Self>, class: u8) {
        let t = &self.t;
        let mut copy = t.meters.produce(class);
        t.meters.admit(&mut copy, Holder::Queue);
        t.meters.backlog_changed(self.now(), 1);
        t.count(&self.fields.matched, 1.0);
        self.pending.add(1.0);
        t.record_max(&self.fields.pending_peak, self.pending.get());
        t.sim.spawn(deliver(self.clone(), copy));
    }

    /// One attempt: push the copy to the endpoint and wait for its answer, 30 s at most.
    /// The call goes on after that (its late answer may still take the copy out of the retry
    /// queue, or be a duplicate).
    async fn attempt(self: &Rc<Self>, copy: &Message, count: u32) -> (Answer, Rc<Call>) {
        let t = &self.t;
        let started = self.now();
        t.meters.backlog_changed(started, -1);
        t.meters.delivered();
        t.meters.trace(copy, Event::Delivered { count });
        t.count(&self.fields.attempts, 1.0);
        if count == 1 {
            t.meters.latency(Lat::QueueWait, copy.accepted_at, started - copy.accepted_at);
        }
        let call = Rc::new(Call {
            started,
            answer: Cell::new(None),
            abandoned: Cell::new(false),
            removable_until: Cell::new(None),
            late_success: Cell::new(false),
            waiter: t.sim.current(),
        });
        let poison = self.poison == Some(copy.class);
        t.meters.execution_started(); // the run lasts until the endpoint has answered
        t.sim.spawn(http_call(self.clone(), call.clone(), poison));
        let deadline = started + RESPONSE_TIMEOUT;
        t.sim.wake_at(SimTime(deadline));
        while call.answer.get().is_none() && self.now() < deadline {
            t.sim.suspend().await;
        }
        let now = self.now();
        t.meters.latency(Lat::Handler, copy.accepted_at, now - started);
        let answer = match call.answer.get() {
            None => {
                call.abandoned.set(true);
                Answer::TimedOut
            }
            Some(Ok(())) if poison => Answer::BadRequest,
            Some(Ok(())) => Answer::Ok,
            Some(Err(CallError::Failed)) if self.services.in_outage(self.endpoint, started) => {
                Answer::Unavailable
            }
            Some(Err(CallError::Failed)) => Answer::Failed,
            Some(Err(CallError::Timeout)) => Answer::TimedOut,
            Some(Err(CallError::Throttled { .. })) => Answer::Throttled,
        };
        // An endpoint that answers, even 400 to a bad event, is healthy: only errors and
        // silence count towards probation.
        let mut p = self.probation.get();
        let before = p.total;
        match answer {
            Answer::Ok => p.succeeded(),
            Answer::BadRequest => {
                p.succeeded();
                t.meters.failed();
            }
            _ => {
                p.failed(now);
                t.meters.failed();
            }
        }
        t.count(&self.fields.probation_s, (p.total - before) as f64 / NS_PER_S as f64);
        self.probation.set(p);
        (answer, call)
    }

    /// Waits `delay` for the copy's next attempt; `true` if a late success of `call` took
    /// the copy out of the retry queue meanwhile.
    async fn wait_for_retry(&self, delay: Nanos, call: &Call) -> bool {
        let t = &self.t;
        t.meters.backlog_changed(self.now(), 1);
        t.count(&self.fields.retried, 1.0);
        let due = self.now() + delay;
        if !call.abandoned.get() {
            t.sim.sleep_until(SimTime(due)).await;
            return false;
        }
        call.removable_until.set(Some(call.started + LATE_ANSWER_WINDOW));
        t.sim.wake_at(SimTime(due));
        while !call.late_success.get() && self.now() < due {
            t.sim.suspend().await;
        }
        call.removable_until.set(None);
        if call.late_success.get() {
            t.meters.backlog_changed(self.now(), -1);
        }
        call.late_success.get()
    }

    /// The copy was delivered.
    fn delivered(&self, copy: &Message) {
        let t = &self.t;
        let now = self.now();
        if copy.accepted_at >= t.scenario.warmup {
            self.latency.borrow_mut().record(now - copy.accepted_at);
        }
        t.count(&self.fields.delivered, 1.0);
        t.meters.exit(copy, Holder::Queue, Exit::Completed);
        self.settled();
    }

    /// Event Grid gives up on the copy: dead-lettered if the subscription has a dead-letter
    /// destination, else dropped (`dropped_as`: expired at its TTL, lost otherwise).
    fn give_up(&self, copy: &Message, dropped_as: Exit, waiting: bool) {
        let t = &self.t;
        if waiting {
            t.meters.backlog_changed(self.now(), -1);
        }
        if self.spec.dead_letter {
            t.count(&self.fields.dead_lettered, 1.0);
            t.meters.exit(copy, Holder::Queue, Exit::DeadLettered);
        } else {
            t.count(&self.fields.dropped, 1.0);
            t.meters.exit(copy, Holder::Queue, dropped_as);
        }
        self.settled();
    }

    fn settled(&self) {
        self.pending.add(-1.0);
        if self.pending.get() == 0.0 && !self.t.meters.producing() {
            self.write_latency();
        }
    }

    /// Writes the subscription's latency fields from its histogram.
    fn write_latency(&self) {
        let l = self.latency.borrow();
        let ms = |ns: f64| (ns / 1e3).round() / 1e3;
        let values = [
            l.count() as f64,
            ms(l.mean_ns()),
            ms(l.quantile_ns(0.5) as f64),
            ms(l.quantile_ns(0.99) as f64),
            ms(l.max_ns() as f64),
        ];
        for (field, v) in self.fields.latency.iter().zip(values) {
            self.t.set(field, v);
        }
    }
}

/// The HTTP call of one attempt, in a process of its own so that Event Grid can stop
/// waiting for it.
async fn http_call(sub: Rc<Sub>, call: Rc<Call>, poison: bool) {
    let t = &sub.t;
    let answer = sub.services.call(&t.sim, sub.endpoint).await;
    call.answer.set(Some(answer));
    t.meters.executions_ended(1);
    if !call.abandoned.get() {
        t.sim.wake(call.waiter);
        return;
    }
    // Event Grid stopped waiting at 30 s; the endpoint handled the event anyway.
    if answer.is_err() || poison {
        return;
    }
    let now = t.sim.now_ns();
    if call.removable_until.get().is_some_and(|until| now <= until) {
        call.late_success.set(true); // taken out of the retry queue
        t.sim.wake(call.waiter);
    } else {
        t.count(&sub.fields.duplicates, 1.0); // the copy is (or was) delivered again
        t.meters.duplicate();
    }
}

/// One copy's life: attempts on Event Grid's schedule until it is delivered, or given up at
/// `max_attempts`, at its TTL, or at a 400.
async fn deliver(sub: Rc<Sub>, copy: Message) {
    let t = sub.t.clone();
    let mut failed = 0;
    loop {
        // Delayed delivery: nothing is attempted while the subscription is on probation.
        while let Some(until) = sub.probation.get().until(t.sim.now_ns()) {
            t.sim.sleep_until(SimTime(until)).await;
        }
        // The time-to-live is checked only when an attempt comes due.
        if t.sim.now_ns() - copy.accepted_at >= sub.spec.ttl {
            return sub.give_up(&copy, Exit::Expired, true);
        }
        let (answer, call) = sub.attempt(&copy, failed + 1).await;
        match answer.next() {
            Next::Done => return sub.delivered(&copy),
            Next::GiveUp => {
                t.meters.trace(&copy, Event::Note("bad_request"));
                return sub.give_up(&copy, Exit::Lost, false);
            }
            Next::Retry { at_least } => {
                t.meters.trace(&copy, Event::Abandoned);
                failed += 1;
                if failed >= sub.spec.max_attempts {
                    return sub.give_up(&copy, Exit::Lost, false);
                }
                let delay = retry_delay(failed, &mut sub.rng.borrow_mut()).max(at_least);
                if sub.wait_for_retry(delay, &call).await {
                    return sub.delivered(&copy);
                }
            }
        }
    }
}

/// The topic: each published event goes to every subscription whose filter matches.
fn build(t: &Rc<Topology>) {
    let specs = subscriptions(&t.scenario);
    for f in ["published", "unmatched"] {
        t.count(&format!("fan_out.{f}"), 0.0); // in every summary, so `[expect]` can name them
    }
    let poison = t.scenario.workload.classes.iter().position(|(n, _)| n == "poison");
    let subs: Vec<Rc<Sub>> = specs
        .into_iter()
        .filter_map(|spec| {
            let (services, endpoint) = match t.services.index(&spec.endpoint) {
                Some(i) => (t.services.clone(), i),
                None if spec.endpoint == CONSUMER => (consumer_endpoint(&t.scenario), 0),
                None => return None,
            };
            let fields = Fields::of(&spec.name);
            for f in fields.all() {
                t.count(f, 0.0);
            }
            Some(Rc::new(Sub {
                t: t.clone(),
                rng: RefCell::new(t.rng(&format!("fan_out.{}", spec.name))),
                pending: t.gauge(&format!("fan_out.{}.pending", spec.name)),
                spec,
                endpoint,
                fields,
                probation: Cell::new(Probation::default()),
                latency: RefCell::new(Latency::new(t.scenario.horizon().saturating_mul(2))),
                poison: poison.map(|i| i as u8),
                services,
            }))
        })
        .collect();
    let (publisher, topic) = (t.clone(), subs.clone());
    t.sim.spawn(async move {
        let t = publisher.clone();
        publisher
            .publish(|class| {
                t.count("fan_out.published", 1.0);
                let mut matched = false;
                for sub in topic.iter().filter(|s| s.spec.receives[class as usize]) {
                    sub.publish(class);
                    matched = true;
                }
                if !matched {
                    t.count("fan_out.unmatched", 1.0);
                }
            })
            .await;
        for sub in topic.iter().filter(|s| s.pending.get() == 0.0) {
            sub.write_latency();
        }
    });
    // A run that reaches its horizon with copies in flight reports what was delivered.
    let sim = t.sim.clone();
    let horizon = t.scenario.horizon();
    t.sim.spawn(async move {
        sim.sleep_until(SimTime(horizon)).await;
        for sub in &subs {
            sub.write_latency();
        }
    });
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let subs = subscriptions(s);
    let poison = s.workload.classes.iter().position(|(n, _)| n == "poison").map(|i| i as u8);
    vec![Box::new(FanOutBooks { subs: subs.clone() }), Box::new(DeliveryPolicy::new(&subs, poison))]
}

/// The subscriptions' books agree with the ledger: every copy is one message
/// (`messages.produced` = the copies matched), and each subscription's delivered,
/// dead-lettered and dropped copies add up to the ledger's exits; a subscription without a
/// dead-letter destination dead-letters nothing, one with it drops nothing.
#[derive(Debug)]
pub struct FanOutBooks {
    subs: Vec<Subscription>,
}

impl Checker for FanOutBooks {
    fn name(&self) -> &'static str {
        "fan-out-books"
    }

    fn observe(&mut self, _: &TraceEvent) {}

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        let Some(section) = r.sections.get("fan_out") else { return };
        let get = |k: String| section.get(&k).copied().unwrap_or(0.0);
        let mut broken = |message: String| {
            out.push(Violation { checker: "fan-out-books", at: r.sim_time, message });
        };
        let mut sums = [0.0; 4];
        for s in &self.subs {
            let n = &s.name;
            let v = ["matched", "delivered", "dead_lettered", "dropped"]
                .map(|f| get(format!("{n}.{f}")));
            for (sum, x) in sums.iter_mut().zip(v) {
                *sum += x;
            }
            if v[1] + v[2] + v[3] > v[0] {
                broken(format!(
                    "subscription {n}: {} copies settled of {} matched",
                    v[1] + v[2] + v[3],
                    v[0]
                ));
            }
            if s.dead_letter && v[3] > 0.0 {
                broken(format!(
                    "subscription {n} has a dead-letter destination, yet dropped {}",
                    v[3]
                ));
            }
            if !s.dead_letter && v[2] > 0.0 {
                broken(format!(
                    "subscription {n} has no dead-letter destination, yet dead-lettered {}",
                    v[2]
                ));
            }
        }
        let l = &r.ledger;
        let expected = [
            ("produced", l.produced),
            ("completed", l.completed),
            ("dead_lettered", l.dead_lettered),
            ("lost + expired", l.lost + l.expired),
        ];
        for ((what, ledger), sum) in expected.into_iter().zip(sums) {
            if ledger as f64 != sum {
                broken(format!("messages.{what} is {ledger}, the subscriptions' books say {sum}"));
            }
        }
    }
}

/// Every attempt follows the retry policy: no copy is attempted more than `max_attempts`
/// times, no attempt starts once the copy is older than its TTL, a copy the endpoint answered
/// 400 is never attempted again, and only the `poison` class is answered 400. (Checked
/// against the most lenient subscription: a trace event does not say which subscription a
/// copy belongs to.)
#[derive(Debug)]
pub struct DeliveryPolicy {
    max_attempts: u32,
    ttl: Nanos,
    poison: Option<u8>,
    admitted: BTreeMap<u64, Nanos>,
    /// Copies answered 400 (they must leave at once).
    refused: BTreeMap<u64, ()>,
    found: Vec<Violation>,
}

impl DeliveryPolicy {
    /// The policy of `subs`; copies of class `poison` are never retried.
    pub fn new(subs: &[Subscription], poison: Option<u8>) -> DeliveryPolicy {
        DeliveryPolicy {
            max_attempts: subs.iter().map(|s| s.max_attempts).max().unwrap_or(0),
            ttl: subs.iter().map(|s| s.ttl).max().unwrap_or(0),
            poison,
            admitted: BTreeMap::new(),
            refused: BTreeMap::new(),
            found: Vec::new(),
        }
    }
}

impl Checker for DeliveryPolicy {
    fn name(&self) -> &'static str {
        "delivery-policy"
    }

    fn observe(&mut self, e: &TraceEvent) {
        match e.what {
            Event::Admitted(_) => {
                self.admitted.insert(e.id, e.t);
            }
            Event::Left(_) => {
                self.admitted.remove(&e.id);
                self.refused.remove(&e.id);
            }
            Event::Note("bad_request") => {
                self.refused.insert(e.id, ());
                if Some(e.class) != self.poison && self.found.len() < 100 {
                    let message = format!("copy {} was answered 400, yet is no poison", e.id);
                    self.found.push(Violation { checker: "delivery-policy", at: e.t, message });
                }
            }
            Event::Delivered { count } => {
                let age = self.admitted.get(&e.id).map_or(0, |at| e.t - at);
                let problem = if count > self.max_attempts {
                    Some(format!(
                        "copy {} attempted {count} times (max_attempts {})",
                        e.id, self.max_attempts
                    ))
                } else if age >= self.ttl {
                    Some(format!(
                        "copy {} attempted {age} ns after it was published (TTL {})",
                        e.id, self.ttl
                    ))
                } else if self.refused.contains_key(&e.id) {
                    Some(format!("copy {} was answered 400, yet attempted again", e.id))
                } else {
                    None
                };
                if let Some(message) = problem.filter(|_| self.found.len() < 100) {
                    self.found.push(Violation { checker: "delivery-policy", at: e.t, message });
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, _: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
    }
}
