//! # Circuit breaker
//!
//! ```text
//!                        ┌──────────── instance 0 (its own breaker, or one shared) ────┐
//!  producer ──send──► [queue] ──receive──► handler ──► breaker ──call──► [target service]
//!                        ▲                   │  open: rejected at once (no call)
//!                        │                   ├─► abandon: back to the queue
//!                        └── redelivery ◄────┤   fallback: a cheap answer, completed
//!                                            └─► pause: the listener stops receiving
//!                                                until the breaker lets a probe through
//! ```
//!
//! Demonstrates:
//! * the breakers people deploy, with their own state machines
//!   ([`crate::model::breaker`]): Polly v7 consecutive failures, Polly v8 failure ratio
//!   (10 sub-windows, minimum throughput, one lazy probe, a break that can grow), and
//!   resilience4j's count and time windows with slow calls;
//! * what a breaker saves during an outage of the service it guards: calls spared
//!   (`services.<target>.calls`, `breaker.short_circuited`), and what it costs: messages
//!   given back and redelivered, and dead-lettered once a break outlasts
//!   `max_delivery_count` deliveries (`on_open = "abandon"`: a real trap);
//! * time to recover after the outage: to the first successful call
//!   (`breaker.recovery_s`) and to a backlog back at its level before the outage
//!   (`breaker.backlog_recovery_s`), measured with or without a breaker.
//!
//! Settings, in `[breaker]` (defaults by kind: the library's own where it has one):
//!
//! ```toml
//! [breaker]
//! target = "payments"          # the service it guards (default: the first of consumer.calls)
//! kind = "ratio"               # none | consecutive | ratio | count-window | time-window
//! failure_threshold = 5        # consecutive
//! break_duration = "5s"        # Polly 5 s; resilience4j 60 s
//! failure_ratio = 0.1          # Polly 0.1; resilience4j 0.5
//! sampling_duration = "30s"    # ratio
//! minimum_throughput = 100     # ratio; resilience4j minimumNumberOfCalls
//! window_size = 100            # count-window (calls) / time-window (seconds)
//! slow_call_duration = "60s"   # windows
//! slow_call_ratio = 1.0        # windows
//! half_open_calls = 1          # Polly: 1; resilience4j: 10
//! break_growth = 1.0           # each failed probe multiplies the break
//! scope = "instance"           # instance | shared
//! on_open = "abandon"          # abandon | fallback | pause
//! fallback = "exp(mean=5ms)"   # on_open = "fallback"
//! ```
//!
//! Each delivery runs the standard worker's steps (work, then the calls in order, then
//! complete or abandon); every attempt at the target (in-process retries of `[retry]`
//! included: the retry wraps the breaker) asks the breaker first. A rejected call is not
//! retried. `kind = "none"` is the baseline: no breaker.

use crate::check::{Checker, MaxDeliveries, Violation};
use crate::dist::Dist;
use crate::model::breaker::{Breaker, Change, Config, Decision, Kind};
use crate::model::host::{Host, Instance};
use crate::model::meters::Lat;
use crate::model::queue::{Delivery, Queue};
use crate::model::retry::RetryState;
use crate::model::service::{CallError, Downstream};
use crate::model::trigger::Handler;
use crate::patterns::{Pattern, SettingsTable};
use crate::results::RunResults;
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{FaultKind, PatternKind, Scenario};
use crate::time::{NS_PER_DAY, NS_PER_MS, NS_PER_S, Nanos};
use crate::topology::Topology;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("circuit-breaker");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "breakers (Polly v7/v8, resilience4j) in front of a failing service: calls spared, time to recover",
    section: Some("breaker"),
    processes: &[],
    hosted: true,
    table: Some(SettingsTable { name: "breaker", read }),
    build,
    checkers,
};

/// What a handler does with a message whose call the breaker rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOpen {
    /// Give the message back to the queue (it is delivered again, or dead-lettered).
    Abandon,
    /// Answer with the fallback instead of the call, and complete the message.
    Fallback,
    /// Give it back, and stop receiving until the breaker lets a call through.
    Pause,
}

const ON_OPEN: [(OnOpen, &str); 3] =
    [(OnOpen::Abandon, "abandon"), (OnOpen::Fallback, "fallback"), (OnOpen::Pause, "pause")];

/// One breaker per consumer instance, or one for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Each instance has its own (an in-process Polly pipeline); a restarted instance
    /// starts closed.
    Instance,
    /// One state for every instance (kept in a shared store).
    Shared,
}

const SCOPES: [(Scope, &str); 2] = [(Scope::Instance, "instance"), (Scope::Shared, "shared")];

/// `none`, then the breaker kinds.
const KINDS: [&str; 5] = ["none", "consecutive", "ratio", "count-window", "time-window"];

/// `[breaker]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The service it guards.
    pub target: Option<String>,
    /// Which breaker: `None` inside = no breaker (`kind = "none"`).
    pub kind: Option<Option<Kind>>,
    /// Consecutive failures that open it.
    pub failure_threshold: Option<u32>,
    /// How long it stays open.
    pub break_duration: Option<Nanos>,
    /// Failure rate that opens it.
    pub failure_ratio: Option<f64>,
    /// Polly v8 sampling duration.
    pub sampling_duration: Option<Nanos>,
    /// Calls in the window before a rate counts.
    pub minimum_throughput: Option<u32>,
    /// resilience4j window size (calls or seconds).
    pub window_size: Option<u32>,
    /// A call slower than this is slow.
    pub slow_call_duration: Option<Nanos>,
    /// Slow-call rate that opens it.
    pub slow_call_ratio: Option<f64>,
    /// Calls let through while half-open.
    pub half_open_calls: Option<u32>,
    /// Each failed probe multiplies the break.
    pub break_growth: Option<f64>,
    /// One breaker per instance or shared.
    pub scope: Option<Scope>,
    /// What happens to a message whose call was rejected.
    pub on_open: Option<OnOpen>,
    /// The fallback's duration.
    pub fallback: Option<Dist>,
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let count = |t: &mut dyn TableReader, key: &str| {
        t.integer(key, 1, u64::from(u32::MAX)).map(|v| v.map(|n| n as u32))
    };
    let s = Settings {
        target: t.string("target")?,
        kind: t.choice("kind", &KINDS)?.map(|i| i.checked_sub(1).map(|k| Kind::ALL[k])),
        failure_threshold: count(t, "failure_threshold")?,
        break_duration: t.duration("break_duration")?,
        failure_ratio: t.number("failure_ratio", 0.0, 1.0)?,
        sampling_duration: t.duration("sampling_duration")?,
        minimum_throughput: count(t, "minimum_throughput")?,
        window_size: count(t, "window_size")?,
        slow_call_duration: t.duration("slow_call_duration")?,
        slow_call_ratio: t.number("slow_call_ratio", 0.0, 1.0)?,
        half_open_calls: count(t, "half_open_calls")?,
        break_growth: t.number("break_growth", 1.0, 1000.0)?,
        scope: t.choice("scope", &SCOPES.map(|s| s.1))?.map(|i| SCOPES[i].0),
        on_open: t.choice("on_open", &ON_OPEN.map(|s| s.1))?.map(|i| ON_OPEN[i].0),
        fallback: t.dist("fallback")?,
    };
    check(&s, t)?;
    Ok(Arc::new(s))
}

/// Checks across keys, and against the rest of the scenario where the reader has it.
fn check(s: &Settings, t: &dyn TableReader) -> Result<(), TableError> {
    let kind = s.kind.unwrap_or(Some(Kind::Ratio));
    let name = kind.map_or("none", Kind::name);
    if s.failure_ratio == Some(0.0) {
        return Err(t.invalid("failure_ratio", "`failure_ratio` must be more than 0"));
    }
    if s.break_duration == Some(0) {
        return Err(t.invalid("break_duration", "`break_duration` must be longer than 0"));
    }
    if kind.is_some_and(Kind::is_polly) && s.half_open_calls.is_some_and(|n| n != 1) {
        let msg = format!(
            "`half_open_calls` must be 1 for kind = \"{name}\": Polly lets exactly one probe \
             through (resilience4j's count-window and time-window take more)"
        );
        return Err(t.invalid("half_open_calls", &msg));
    }
    if kind == Some(Kind::Consecutive) && s.break_growth.is_some_and(|g| g != 1.0) {
        let msg = "`break_growth` needs kind = \"ratio\", \"count-window\" or \"time-window\": \
                   Polly v7's consecutive breaker has no BreakDurationGenerator";
        return Err(t.invalid("break_growth", msg));
    }
    if kind == Some(Kind::Ratio) {
        // Polly v8's option validation
        let range = 500 * NS_PER_MS..=NS_PER_DAY;
        for key in ["sampling_duration", "break_duration"] {
            let v = if key == "break_duration" { s.break_duration } else { s.sampling_duration };
            if v.is_some_and(|v| !range.contains(&v)) {
                let msg = format!("`{key}` must be from 500ms to 1d (Polly v8's range)");
                return Err(t.invalid(key, &msg));
            }
        }
        if s.minimum_throughput == Some(1) {
            let msg = "`minimum_throughput` must be at least 2 (Polly v8's range)";
            return Err(t.invalid("minimum_throughput", msg));
        }
    }
    let Some(scenario) = t.scenario() else { return Ok(()) };
    if let Some(target) = &s.target {
        if !scenario.services.contains_key(target) {
            let known: Vec<&str> = scenario.services.keys().map(String::as_str).collect();
            let msg = format!(
                "`target` names no service: \"{target}\" (the services are: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            );
            return Err(t.invalid("target", &msg));
        }
        if !scenario.consumer.calls.contains(target) {
            let msg = format!(
                "the handlers never call \"{target}\": add it to `consumer.calls`, or guard \
                 one of {:?}",
                scenario.consumer.calls
            );
            return Err(t.invalid("target", &msg));
        }
    } else if scenario.consumer.calls.is_empty() {
        let msg = "the breaker guards nothing: set `consumer.calls` (and `target`)";
        return Err(t.invalid("target", msg));
    }
    Ok(())
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(v) = &self.target {
            out.string("target", v);
        }
        if let Some(v) = self.kind {
            out.string("kind", v.map_or("none", Kind::name));
        }
        let counts = [
            ("failure_threshold", self.failure_threshold),
            ("minimum_throughput", self.minimum_throughput),
            ("window_size", self.window_size),
            ("half_open_calls", self.half_open_calls),
        ];
        let durations = [
            ("break_duration", self.break_duration),
            ("sampling_duration", self.sampling_duration),
            ("slow_call_duration", self.slow_call_duration),
        ];
        let numbers = [
            ("failure_ratio", self.failure_ratio),
            ("slow_call_ratio", self.slow_call_ratio),
            ("break_growth", self.break_growth),
        ];
        for (key, v) in counts {
            if let Some(v) = v {
                out.integer(key, u64::from(v));
            }
        }
        for (key, v) in durations {
            if let Some(v) = v {
                out.duration(key, v);
            }
        }
        for (key, v) in numbers {
            if let Some(v) = v {
                out.number(key, v);
            }
        }
        if let Some(v) = self.scope {
            out.string("scope", SCOPES.iter().find(|s| s.0 == v).expect("listed").1);
        }
        if let Some(v) = self.on_open {
            out.string("on_open", ON_OPEN.iter().find(|s| s.0 == v).expect("listed").1);
        }
        if let Some(v) = &self.fallback {
            out.dist("fallback", v);
        }
    }
}

/// The settings in force, defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The guarded service (`None`: the handlers call nothing).
    pub target: Option<String>,
    /// The breaker (`None`: `kind = "none"`).
    pub breaker: Option<Config>,
    /// One per instance or shared.
    pub scope: Scope,
    /// What a rejected call does to its message.
    pub on_open: OnOpen,
    /// The fallback's duration.
    pub fallback: Dist,
}

impl Settings {
    /// The settings in force for `s`: `[breaker]`, then the defaults of its kind (Polly's
    /// for consecutive and ratio, resilience4j's for the windows).
    pub fn resolve(s: &Scenario) -> Resolved {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        let kind = mine.kind.unwrap_or(Some(Kind::Ratio));
        let polly = kind.is_none_or(Kind::is_polly);
        let breaker = kind.map(|kind| Config {
            kind,
            failure_threshold: mine.failure_threshold.unwrap_or(5),
            break_duration: mine.break_duration.unwrap_or(if polly { 5 } else { 60 } * NS_PER_S),
            failure_ratio: mine.failure_ratio.unwrap_or(if polly { 0.1 } else { 0.5 }),
            sampling_duration: mine.sampling_duration.unwrap_or(30 * NS_PER_S),
            minimum_throughput: mine.minimum_throughput.unwrap_or(100),
            window_size: mine.window_size.unwrap_or(100),
            slow_call_duration: mine.slow_call_duration.unwrap_or(60 * NS_PER_S),
            slow_call_ratio: mine.slow_call_ratio.unwrap_or(1.0),
            half_open_calls: mine.half_open_calls.unwrap_or(if polly { 1 } else { 10 }),
            break_growth: mine.break_growth.unwrap_or(1.0),
        });
        Resolved {
            target: mine.target.or_else(|| s.consumer.calls.first().cloned()),
            breaker,
            scope: mine.scope.unwrap_or(Scope::Instance),
            on_open: mine.on_open.unwrap_or(OnOpen::Abandon),
            fallback: mine.fallback.unwrap_or(Dist::Exp { mean: 5 * NS_PER_MS }),
        }
    }
}

/// A breaker and the time it has been open or half-open that is not yet counted.
struct Tracked {
    breaker: Breaker,
    /// The incarnation the breaker belongs to (scope = instance).
    group: u32,
    /// Open or half-open since (or last counted at).
    not_closed_since: Option<Nanos>,
    /// A paused listener took a message for a probe that has not called yet: take no
    /// more until it has (or its handler ended without calling).
    probe_taken: bool,
}

/// Every breaker of the run, by instance (or one, shared), and the counters of the
/// `breaker` section.
struct Breakers {
    t: Rc<Topology>,
    config: Config,
    scope: Scope,
    by_key: RefCell<BTreeMap<u32, Tracked>>,
}

impl Breakers {
    /// Breakers open or half-open now (the `breaker.open` column of the time series).
    fn open_now(&self) -> usize {
        self.by_key.borrow().values().filter(|t| t.not_closed_since.is_some()).count()
    }

    fn key(&self, inst: &Instance) -> u32 {
        match self.scope {
            Scope::Instance => inst.index,
            Scope::Shared => u32::MAX,
        }
    }

    /// The breaker of `inst` (a fresh one for a new incarnation).
    fn with<R>(&self, inst: &Instance, f: impl FnOnce(&mut Tracked) -> R) -> R {
        let mut all = self.by_key.borrow_mut();
        let group = if self.scope == Scope::Instance { inst.group() } else { 0 };
        let fresh = || Tracked {
            breaker: Breaker::new(self.config.clone()),
            group,
            not_closed_since: None,
            probe_taken: false,
        };
        let tracked = all.entry(self.key(inst)).or_insert_with(fresh);
        if tracked.group != group {
            self.count_open(tracked, self.t.sim.now_ns());
            *tracked = fresh();
        }
        f(tracked)
    }

    /// Counts the open time of `tracked` up to `now`.
    fn count_open(&self, tracked: &mut Tracked, now: Nanos) {
        if let Some(since) = tracked.not_closed_since.as_mut() {
            self.t.count("breaker.open_s", (now - *since) as f64 / NS_PER_S as f64);
            *since = now;
        }
    }

    fn changed(&self, tracked: &mut Tracked, change: Option<Change>, now: Nanos) {
        let Some(change) = change else { return };
        match change {
            Change::Opened { .. } => {
                self.t.count("breaker.opened", 1.0);
                tracked.not_closed_since.get_or_insert(now);
            }
            Change::HalfOpened => self.t.count("breaker.half_opened", 1.0),
            Change::Closed => {
                self.t.count("breaker.closed", 1.0);
                self.count_open(tracked, now);
                tracked.not_closed_since = None;
            }
        }
    }

    fn before_call(&self, inst: &Instance) -> Decision {
        let now = self.t.sim.now_ns();
        self.with(inst, |tr| {
            tr.probe_taken = false;
            let (decision, change) = tr.breaker.before_call(now);
            self.changed(tr, change, now);
            decision
        })
    }

    fn after_call(&self, inst: &Instance, failed: bool, took: Nanos) {
        let now = self.t.sim.now_ns();
        self.with(inst, |tr| {
            let change = tr.breaker.after_call(now, failed, took);
            self.changed(tr, change, now);
        });
    }

    /// The gate of a listener that pauses: any number of messages while closed; one at a
    /// time for the probes, each taken once the previous one has called.
    fn admits(&self, inst: &Instance) -> Option<u32> {
        let now = self.t.sim.now_ns();
        self.with(inst, |tr| match tr.breaker.admits(now)? {
            u32::MAX => Some(u32::MAX),
            _ if tr.probe_taken => None,
            _ => {
                tr.probe_taken = true;
                Some(1)
            }
        })
    }

    /// A handler of `inst` is done with a message (which may never have called).
    fn handled(&self, inst: &Instance) {
        self.with(inst, |tr| tr.probe_taken = false);
    }
}

/// Time to recover after the target's last outage: to the first successful call
/// (`breaker.recovery_s`), and to a backlog back at its level before the outage
/// (`breaker.backlog_recovery_s`, the level being the backlog's peak over the minute before
/// the outage, sampled every second). Measured with or without a breaker.
struct Recovery {
    t: Rc<Topology>,
    /// The outage: (from, to).
    outage: (Nanos, Nanos),
    recovered: Cell<bool>,
}

impl Recovery {
    /// A call to the target succeeded now.
    fn succeeded(&self) {
        let now = self.t.sim.now_ns();
        let end = self.outage.1;
        if now >= end && !self.recovered.replace(true) {
            self.t.record_max("breaker.recovery_s", (now - end) as f64 / NS_PER_S as f64);
        }
    }
}

/// Every second: counts the breakers' open time, and measures recovery after the
/// target's outage.
async fn watch(t: Rc<Topology>, b: Option<Rc<Breakers>>, r: Option<Rc<Recovery>>, q: Rc<Queue>) {
    let mut baseline = 0;
    let mut drained = false;
    loop {
        t.sim.sleep(NS_PER_S).await;
        let now = t.sim.now_ns();
        if let Some(b) = &b {
            for tracked in b.by_key.borrow_mut().values_mut() {
                b.count_open(tracked, now);
            }
        }
        let Some(r) = &r else { continue };
        let (from, to) = r.outage;
        if now + 60 * NS_PER_S >= from && now <= from {
            baseline = baseline.max(q.backlog());
        }
        if now >= to {
            let since = (now - to) as f64 / NS_PER_S as f64;
            if !r.recovered.get() {
                t.record_max("breaker.recovery_s", since);
            }
            if !drained {
                t.record_max("breaker.backlog_recovery_s", since);
                drained = q.backlog() <= baseline;
            }
        }
    }
}

/// The standard worker's steps, with the target's calls through the breaker.
struct Guarded {
    t: Rc<Topology>,
    queue: Rc<Queue>,
    host: Rc<Host>,
    work: Dist,
    calls: Vec<usize>,
    target: Option<usize>,
    others: Downstream,
    breakers: Option<Rc<Breakers>>,
    recovery: Option<Rc<Recovery>>,
    on_open: OnOpen,
    fallback: Dist,
    rng: RefCell<Rng>,
}

/// How a guarded call ended.
enum Guard {
    Done,
    Failed,
    Rejected,
}

impl Guarded {
    /// Calls the target, every attempt through the breaker; retried in process as
    /// `[retry]` says; a rejected attempt is not retried.
    async fn call_target(&self, inst: &Instance, idx: usize) -> Guard {
        let t = &self.t;
        let mut attempts = 0;
        let mut backoff = RetryState::default();
        loop {
            attempts += 1;
            if let Some(b) = &self.breakers {
                match b.before_call(inst) {
                    Decision::Rejected { .. } => {
                        t.count("breaker.short_circuited", 1.0);
                        return Guard::Rejected;
                    }
                    Decision::Call { probe } => {
                        t.count("breaker.probes", f64::from(u8::from(probe)));
                        t.count("breaker.calls", 1.0);
                    }
                }
            }
            let started = t.sim.now_ns();
            let outcome = t.services.call(&t.sim, idx).await;
            if let Some(b) = &self.breakers {
                b.after_call(inst, outcome.is_err(), t.sim.now_ns() - started);
            }
            if let Some(r) = self.recovery.as_ref().filter(|_| outcome.is_ok()) {
                r.succeeded();
            }
            if outcome.is_ok() {
                return Guard::Done;
            }
            match &t.scenario.retry {
                Some(spec) if RetryState::may_retry(spec, attempts) => {
                    let mut delay = backoff.next_delay(spec, &mut self.rng.borrow_mut());
                    if let Err(CallError::Throttled { retry_after: Some(after) }) = outcome {
                        delay = delay.max(after); // as Downstream: Retry-After is honoured
                    }
                    t.sim.sleep(delay).await;
                }
                _ => return Guard::Failed,
            }
        }
    }

    /// The calls in order; `Ok` when the message may be completed.
    async fn call_all(&self, inst: &Instance) -> Result<(), ()> {
        for &idx in &self.calls {
            if Some(idx) != self.target {
                self.others.call_with_retry(idx).await.map_err(|_| ())?;
                continue;
            }
            match self.call_target(inst, idx).await {
                Guard::Done => {}
                Guard::Failed => return Err(()),
                Guard::Rejected if self.on_open == OnOpen::Fallback => {
                    self.t.count("breaker.fallbacks", 1.0);
                    let d = self.fallback.sample(&mut self.rng.borrow_mut());
                    self.t.sim.sleep(d).await;
                }
                Guard::Rejected => {
                    self.t.count("breaker.abandoned", 1.0);
                    return Err(());
                }
            }
        }
        Ok(())
    }
}

impl Handler for Guarded {
    async fn handle(&self, inst: &Rc<Instance>, delivery: Delivery) {
        let t = &self.t;
        let started = t.sim.now_ns();
        let work = delivery.msg.work(&self.work, &mut inst.rng.borrow_mut());
        self.host.work(inst, work).await;
        let ok = !t.is_poison(delivery.msg.class) && self.call_all(inst).await.is_ok();
        if let Some(b) = self.breakers.as_ref().filter(|_| self.on_open == OnOpen::Pause) {
            b.handled(inst);
        }
        t.meters.latency(Lat::Handler, delivery.msg.accepted_at, t.sim.now_ns() - started);
        let _ = if ok { self.queue.complete(&delivery) } else { self.queue.abandon(&delivery) };
    }
}

const COUNTERS: [&str; 11] = [
    "opened",
    "half_opened",
    "closed",
    "short_circuited",
    "fallbacks",
    "probes",
    "open_s",
    "calls",
    "abandoned",
    "recovery_s",
    "backlog_recovery_s",
];

/// A producer sending to the queue, and the consumer pool running the guarded worker.
fn build(t: &Rc<Topology>) {
    let s = Settings::resolve(&t.scenario);
    for c in COUNTERS {
        t.count(&format!("breaker.{c}"), 0.0); // in every summary, so `[expect]` can name them
    }
    let queue = t.add_queue("queue", t.scenario.queue.clone());
    let q = queue.clone();
    t.sim.spawn(t.clone().produce(move |msg| {
        q.send(msg, None);
    }));
    let target = s.target.as_deref().and_then(|n| t.services.index(n));
    let outage = s.target.as_ref().and_then(|name| last_outage(&t.scenario, name));
    let breakers = s.breaker.clone().filter(|_| target.is_some()).map(|config| {
        Rc::new(Breakers {
            t: t.clone(),
            config,
            scope: s.scope,
            by_key: RefCell::new(BTreeMap::new()),
        })
    });
    if let Some(b) = &breakers {
        // Weak: the breakers hold the topology, which holds its columns.
        let b = Rc::downgrade(b);
        t.probe("breaker.open", move || b.upgrade().map_or(0.0, |b| b.open_now() as f64));
    }
    let recovery = outage
        .filter(|_| target.is_some())
        .map(|outage| Rc::new(Recovery { t: t.clone(), outage, recovered: Cell::new(false) }));
    let c = &t.scenario.consumer;
    let trigger = t.add_pool("consumer", queue.clone(), c);
    let host = t.pool("consumer").expect("just added").0;
    if breakers.is_some() || recovery.is_some() {
        t.sim.spawn(watch(t.clone(), breakers.clone(), recovery.clone(), queue.clone()));
    }
    if let Some(b) = &breakers
        && s.on_open == OnOpen::Pause
    {
        // Weak: the trigger belongs to the topology, which the breakers hold.
        let b = Rc::downgrade(b);
        trigger
            .set_gate(Rc::new(move |inst| b.upgrade().map_or(Some(u32::MAX), |b| b.admits(inst))));
    }
    let calls = c.calls.iter().map(|n| t.services.index(n).expect("checked by the loader"));
    let handler = Guarded {
        t: t.clone(),
        queue,
        host,
        work: c.work.clone(),
        calls: calls.collect(),
        target,
        others: t.downstream(&c.calls),
        breakers,
        recovery,
        on_open: s.on_open,
        fallback: s.fallback,
        rng: RefCell::new(t.rng("breaker")),
    };
    t.start_pool(&trigger, c.instances, handler);
}

/// The last outage of service `name`: (from, to).
fn last_outage(s: &Scenario, name: &str) -> Option<(Nanos, Nanos)> {
    s.faults
        .iter()
        .filter(|f| f.target == name)
        .filter_map(|f| match f.kind {
            FaultKind::Outage { from, to } => Some((from, to)),
            _ => None,
        })
        .max_by_key(|o| o.1)
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let r = Settings::resolve(s);
    vec![
        Box::new(MaxDeliveries::new(s.queue.max_delivery_count)),
        Box::new(BreakerBooks { target: r.target, breaker: r.breaker }),
    ]
}

/// The breaker's books agree with the service's and with its state machine: every call
/// to the target passed the breaker; a breaker half-opens only after it opened and closes
/// only from half-open; Polly v8 lets exactly one probe through per half-open,
/// resilience4j at most `half_open_calls`; with no breaker nothing is rejected.
#[derive(Debug)]
pub struct BreakerBooks {
    target: Option<String>,
    breaker: Option<Config>,
}

impl Checker for BreakerBooks {
    fn name(&self) -> &'static str {
        "breaker-books"
    }

    fn observe(&mut self, _: &crate::model::meters::TraceEvent) {}

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        let Some(section) = r.sections.get("breaker") else { return };
        let get = |k: &str| section.get(k).copied().unwrap_or(0.0);
        let mut broken = |message: String| {
            out.push(Violation { checker: "breaker-books", at: r.sim_time, message });
        };
        let (opened, half, closed, probes) =
            (get("opened"), get("half_opened"), get("closed"), get("probes"));
        let Some(c) = &self.breaker else {
            if opened + get("short_circuited") > 0.0 {
                broken(format!("no breaker, yet {opened} opened"));
            }
            return;
        };
        let target_calls = self.target.as_ref().and_then(|n| r.services.get(n)).map(|s| s.calls);
        if let Some(calls) = target_calls
            && calls as f64 != get("calls")
        {
            broken(format!("{calls} calls to the target, {} through the breaker", get("calls")));
        }
        if half > opened {
            broken(format!("half-opened {half} times but opened only {opened}"));
        }
        if closed > half {
            broken(format!("closed {closed} times but half-opened only {half}"));
        }
        let ok = match c.kind {
            Kind::Ratio => probes == half,
            Kind::Consecutive => probes >= half,
            Kind::CountWindow | Kind::TimeWindow => probes <= half * f64::from(c.half_open_calls),
        };
        if !ok {
            broken(format!(
                "{probes} probes for {half} half-opens of a {} breaker (half_open_calls {})",
                c.kind.name(),
                c.half_open_calls
            ));
        }
    }
}
