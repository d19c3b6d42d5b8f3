//! # Priority: separate lanes vs one queue
//!
//! ```text
//!  separate-queues (the "separate triggers" design: a queue and a pool per class)
//!  producer ──high──► [queue-high] ──► pool consumer-high ──┐
//!           ──low───► [queue-low]  ──► pool consumer-low  ──┴──► services
//!
//!  one-queue (the FIFO baseline)
//!  producer ──all───► [queue] ──► pool consumer ──► services
//!
//!  strict (one pool, always the highest non-empty class queue)
//!  producer ──high──► [high] ──┐
//!           ──low───► [low]  ──┴─ receive from the highest non-empty ──► pool consumer
//!
//!  every design: a failed (abandoned) or lapsed message goes to the BACK of its own
//!  class queue
//! ```
//!
//! Demonstrates:
//! * `separate-queues` keeps the high class fast whatever the low class does: each class
//!   has its own queue and its own consumers, sized for it (the Functions answer: one queue
//!   trigger per priority, each with its own `maxConcurrentCalls` and scale);
//! * `one-queue` serves the classes in arrival order: a flood of low messages puts every
//!   high message behind it (`classes.high.latency.end_to_end.p99_ms` grows with the low
//!   backlog);
//! * `strict` serves high first from one pool, so the low class waits for as long as high
//!   messages keep coming: `priority.starved_s` is the longest time a class had messages
//!   waiting and none of them was received.
//!
//! Per-class counts and latency are the core's `classes.<name>.*`; this pattern's section
//! adds `priority.starved_s` (the longest over all classes) and `priority.<class>.starved_s`.
//!
//! Settings, in `[priority]`:
//!
//! ```toml
//! [priority]
//! design = "separate-queues"   # separate-queues | one-queue | strict
//! order = ["high", "low"]      # highest first; classes left out rank below, by name
//! [priority.pools.high]        # separate-queues: a consumer pool per class; keys as in
//! instances = 2                # [consumer] (instances, concurrency, batch_size, work,
//! [priority.pools.low]         # calls); a class without a pool gets [consumer]'s
//! instances = 2
//! ```
//!
//! Each class queue has the `[queue]` settings. A crash fault (`target = "consumer"`) hits
//! every pool: `instances` of each. Pools are named `consumer-<class>` under
//! `separate-queues`, `consumer` otherwise.

use crate::check::priority::{ClassFifo, StrictOrder};
use crate::check::{Checker, MaxDeliveries};
use crate::dist::Dist;
use crate::model::lanes::{Lanes, Requeue, Starvation};
use crate::model::queue::Queue;
use crate::model::worker::Worker;
use crate::patterns::{Pattern, SettingsTable};
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{ConsumerSpec, FaultKind, PatternKind, Scenario};
use crate::time::{NS_PER_S, Nanos, SimTime};
use crate::topology::Topology;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("priority");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "separate queues per class vs one queue vs strict priority: per-class latency, starvation",
    section: Some("priority"),
    processes: &[],
    hosted: true,
    table: Some(SettingsTable { name: "priority", read }),
    build,
    checkers,
};

/// How the classes are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Design {
    /// A queue and a consumer pool per class.
    #[default]
    SeparateQueues,
    /// One FIFO queue and one pool for every class.
    OneQueue,
    /// One pool that always receives from the highest non-empty class queue.
    Strict,
}

const DESIGNS: [Design; 3] = [Design::SeparateQueues, Design::OneQueue, Design::Strict];

impl Design {
    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Design::SeparateQueues => "separate-queues",
            Design::OneQueue => "one-queue",
            Design::Strict => "strict",
        }
    }
}

/// `[priority.pools.<class>]`: the class's pool, each key defaulting to `[consumer]`'s.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolSettings {
    /// Instances running at the start.
    pub instances: Option<u32>,
    /// Handlers at once per instance.
    pub concurrency: Option<u32>,
    /// Messages fetched per receive.
    pub batch_size: Option<u32>,
    /// The handler's own work per message.
    pub work: Option<Dist>,
    /// Downstream services called per message.
    pub calls: Option<Vec<String>>,
}

/// `[priority]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// How the classes are served.
    pub design: Option<Design>,
    /// Class names, highest priority first.
    pub order: Option<Vec<String>>,
    /// The pools of `separate-queues`, by class name.
    pub pools: BTreeMap<String, PoolSettings>,
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let classes: Vec<String> = t
        .scenario()
        .map(|s| s.workload.classes.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let services: Vec<String> =
        t.scenario().map(|s| s.services.keys().cloned().collect()).unwrap_or_default();
    let storage =
        t.scenario().is_some_and(|s| s.queue.kind == crate::spec::QueueKind::StorageQueue);
    let names = DESIGNS.map(Design::name);
    let design = t.choice("design", &names)?.map(|i| DESIGNS[i]);
    let order = t.strings("order")?;
    if let Some(order) = &order {
        for (i, name) in order.iter().enumerate() {
            if !classes.is_empty() && !classes.contains(name) {
                let msg = format!(
                    "`priority.order` names `{name}`, which is not a class of \
                     [workload.classes] (expected one of: {})",
                    classes.join(", ")
                );
                return Err(t.invalid("order", &msg));
            }
            if order[..i].contains(name) {
                return Err(t.invalid("order", &format!("`priority.order` names `{name}` twice")));
            }
        }
    }
    let mut pools = BTreeMap::new();
    t.tables("pools", &mut |class, p| {
        if !classes.is_empty() && !classes.contains(&class.to_string()) {
            let msg = format!(
                "[priority.pools.{class}]: `{class}` is not a class of [workload.classes] \
                 (expected one of: {})",
                classes.join(", ")
            );
            return Err(p.invalid("", &msg));
        }
        let max_batch = if storage { 32 } else { u64::from(u32::MAX) };
        let pool = PoolSettings {
            instances: p.integer("instances", 1, u64::from(u32::MAX))?.map(|n| n as u32),
            concurrency: p.integer("concurrency", 1, u64::from(u32::MAX))?.map(|n| n as u32),
            batch_size: p.integer("batch_size", 1, max_batch)?.map(|n| n as u32),
            work: p.dist("work")?,
            calls: p.strings("calls")?,
        };
        for name in pool.calls.iter().flatten() {
            if !services.contains(name) {
                let msg = format!(
                    "unknown service `{name}` in `priority.pools.{class}.calls` (defined: {})",
                    if services.is_empty() { "none".to_string() } else { services.join(", ") }
                );
                return Err(p.invalid("calls", &msg));
            }
        }
        pools.insert(class.to_string(), pool);
        Ok(())
    })?;
    Ok(Arc::new(Settings { design, order, pools }))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(d) = self.design {
            out.string("design", d.name());
        }
        if let Some(order) = &self.order {
            out.strings("order", order);
        }
        for (class, p) in &self.pools {
            let key = |k: &str| format!("pools.{class}.{k}");
            if let Some(v) = p.instances {
                out.integer(&key("instances"), u64::from(v));
            }
            if let Some(v) = p.concurrency {
                out.integer(&key("concurrency"), u64::from(v));
            }
            if let Some(v) = p.batch_size {
                out.integer(&key("batch_size"), u64::from(v));
            }
            if let Some(v) = &p.work {
                out.dist(&key("work"), v);
            }
            if let Some(v) = &p.calls {
                out.strings(&key("calls"), v);
            }
        }
    }
}

/// The settings in force for one run.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// How the classes are served.
    pub design: Design,
    /// Class indexes, highest priority first (every class once).
    pub order: Vec<u8>,
    /// Each class's rank (0 = highest), by class index.
    pub rank: Vec<usize>,
    /// Each class's pool under `separate-queues`, by class index.
    pub pools: Vec<ConsumerSpec>,
}

impl Resolved {
    /// The settings for `s`: `[priority]` over the defaults (separate queues; the classes
    /// named in `order` first, the others after them by name; pools as `[consumer]`).
    pub fn of(s: &Scenario) -> Resolved {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        let names: Vec<&str> = s.workload.classes.iter().map(|(n, _)| n.as_str()).collect();
        let index = |name: &str| names.iter().position(|n| *n == name).map(|i| i as u8);
        let mut order: Vec<u8> = Vec::new();
        for name in mine.order.iter().flatten() {
            if let Some(i) = index(name).filter(|i| !order.contains(i)) {
                order.push(i);
            }
        }
        for i in 0..names.len() as u8 {
            if !order.contains(&i) {
                order.push(i);
            }
        }
        let mut rank = vec![0; names.len()];
        for (r, &c) in order.iter().enumerate() {
            rank[c as usize] = r;
        }
        let c = &s.consumer;
        let pools = names
            .iter()
            .map(|name| {
                let p = mine.pools.get(*name).cloned().unwrap_or_default();
                ConsumerSpec {
                    instances: p.instances.unwrap_or(c.instances),
                    concurrency: p.concurrency.unwrap_or(c.concurrency),
                    batch_size: p.batch_size.unwrap_or(c.batch_size),
                    work: p.work.unwrap_or_else(|| c.work.clone()),
                    calls: p.calls.unwrap_or_else(|| c.calls.clone()),
                    ..c.clone()
                }
            })
            .collect();
        Resolved { design: mine.design.unwrap_or_default(), order, rank, pools }
    }
}

/// The class queues (one under `one-queue`), the pools reading them, and the producer that
/// sends each message to its class's queue.
fn build(t: &Rc<Topology>) {
    let plan = Resolved::of(&t.scenario);
    let names: Vec<String> = t.scenario.workload.classes.iter().map(|(n, _)| n.clone()).collect();
    t.count("priority.starved_s", 0.0); // in every summary, so `[expect]` can name them
    for name in &names {
        t.count(&format!("priority.{name}.starved_s"), 0.0);
    }
    // A released message goes to the back of its own class queue, in every design.
    let line = match plan.design {
        Design::Strict => Lanes::by_class(plan.rank.clone()),
        Design::SeparateQueues | Design::OneQueue => Lanes::one(),
    }
    .with_requeue(Requeue::Back);
    let queues: Vec<Rc<Queue>> = match plan.design {
        Design::OneQueue | Design::Strict => {
            let queue = t.add_queue("queue", t.scenario.queue.clone());
            queue.set_lanes(line);
            queue.watch_starvation(watch(t, &names));
            t.start_workers(queue.clone());
            vec![queue; names.len()]
        }
        Design::SeparateQueues => {
            let mut queues = vec![];
            for (class, name) in names.iter().enumerate() {
                let queue = t.add_queue(&format!("queue-{name}"), t.scenario.queue.clone());
                queue.set_lanes(line.clone());
                queue.watch_starvation(watch(t, &names));
                start_class_pool(t, name, queue.clone(), &plan.pools[class]);
                queues.push(queue);
            }
            crash_every_pool(t, &names);
            queues
        }
    };
    for (class, name) in names.iter().enumerate() {
        let q = queues[class].clone();
        t.probe(&format!("priority.{name}.waiting"), move || q.class_waiting(class as u8).0 as f64);
    }
    let by_class = queues.clone();
    t.sim.spawn(t.clone().produce(move |msg| {
        by_class[msg.class as usize].send(msg, None);
    }));
    // Stretches still open when the run reaches its horizon count too.
    let horizon = t.scenario.horizon();
    let sim = t.sim.clone();
    t.sim.spawn(async move {
        sim.sleep_until(SimTime(horizon)).await;
        for q in &queues {
            q.close_starvation();
        }
    });
}

/// A starvation watch that records each stretch in the pattern's section (seconds).
fn watch(t: &Rc<Topology>, names: &[String]) -> Starvation {
    let topology: Weak<Topology> = Rc::downgrade(t);
    let fields: Vec<String> = names.iter().map(|n| format!("priority.{n}.starved_s")).collect();
    Starvation::new(
        names.len(),
        Box::new(move |class, stretch: Nanos| {
            let Some(t) = topology.upgrade() else { return };
            let s = stretch as f64 / NS_PER_S as f64;
            t.record_max("priority.starved_s", s);
            if let Some(field) = fields.get(class as usize) {
                t.record_max(field, s);
            }
        }),
    )
}

/// The pool `consumer-<name>` on its class's queue, running the standard worker with the
/// class's pool settings.
fn start_class_pool(t: &Rc<Topology>, name: &str, queue: Rc<Queue>, spec: &ConsumerSpec) {
    let pool = format!("consumer-{name}");
    let trigger = t.add_pool(&pool, queue.clone(), spec);
    let host = t.pool(&pool).expect("just added").0;
    let poison = t.scenario.workload.classes.iter().position(|(n, _)| n == "poison");
    let worker = Worker {
        sim: t.sim.clone(),
        queue,
        host,
        meters: t.meters.clone(),
        work: spec.work.clone(),
        calls: t.downstream(&spec.calls),
        poison: poison.map(|i| i as u8),
    };
    t.start_pool(&trigger, spec.instances, worker);
}

/// Crash faults name `consumer`: under `separate-queues` they hit every class pool.
fn crash_every_pool(t: &Rc<Topology>, names: &[String]) {
    for f in &t.scenario.faults {
        let FaultKind::Crash { at, instances, restart_after } = f.kind else { continue };
        if f.target != "consumer" {
            continue;
        }
        for name in names {
            let Some((host, _)) = t.pool(&format!("consumer-{name}")) else { continue };
            let sim = t.sim.clone();
            t.sim.spawn(async move {
                sim.sleep_until(SimTime(at)).await;
                let victims = host.crash(instances);
                if let Some(after) = restart_after {
                    sim.sleep(after).await;
                    host.restart(&victims);
                }
            });
        }
    }
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let plan = Resolved::of(s);
    let mut out: Vec<Box<dyn Checker>> = vec![
        Box::new(MaxDeliveries::new(s.queue.max_delivery_count)),
        Box::new(ClassFifo::new(&s.queue)),
    ];
    if plan.design == Design::Strict {
        out.push(Box::new(StrictOrder::new(&s.queue, plan.rank)));
    }
    out
}
