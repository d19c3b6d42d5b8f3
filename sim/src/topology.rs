//! The components of one run, composed by its pattern.
//!
//! A pattern declares what it needs (the way NeXosim's `SimInit::add_model` composes
//! models): queues ([`Topology::add_queue`]), consumer pools fed by a queue trigger
//! ([`Topology::add_pool`]), the downstream calls its handlers make
//! ([`Topology::downstream`]), random streams, and counters for its summary section. The
//! run loop ([`crate::runner`]) samples, bills and injects faults over whatever was added;
//! no component reads the whole topology.

use crate::engine::Sim;
use crate::ledger::Message;
use crate::model::cost::CostMeter;
use crate::model::host::{Host, OnTimeout};
use crate::model::meters::Meters;
use crate::model::process::Process;
use crate::model::queue::Queue;
use crate::model::series::Gauge;
use crate::model::service::{Downstream, Services};
use crate::model::trigger::{Handler, QueueTrigger};
use crate::model::worker::Worker;
use crate::model::workload::Workload;
use crate::rng::Rng;
use crate::spec::{ConsumerSpec, Plan, QueueSpec, Scenario, WorkerModel};
use crate::time::SimTime;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A consumer pool: instances on a host, fed by a queue trigger.
pub struct Pool {
    /// The pool's name (`consumer` for a pattern's main pool: crash faults name it).
    pub name: String,
    /// Its instances.
    pub host: Rc<Host>,
    /// How its instances receive.
    pub trigger: Rc<QueueTrigger>,
}

/// Where a pattern-state column's values come from.
enum Column {
    /// A gauge the pattern sets.
    Gauge(Gauge),
    /// A level read at each interval's end.
    Probe(Box<dyn Fn() -> f64>),
}

impl Column {
    fn value(&self) -> f64 {
        match self {
            Column::Gauge(g) => g.get(),
            Column::Probe(f) => f(),
        }
    }
}

/// The components of one run.
pub struct Topology {
    /// The engine.
    pub sim: Sim,
    /// The scenario being run.
    pub scenario: Scenario,
    /// The ledger and statistics every component reports to.
    pub meters: Rc<Meters>,
    /// The bill.
    pub cost: Rc<CostMeter>,
    /// Downstream services, shared by every caller.
    pub services: Rc<Services>,
    queues: RefCell<Vec<(String, Rc<Queue>)>>,
    pools: RefCell<Vec<Pool>>,
    counters: RefCell<BTreeMap<String, f64>>,
    gauges: RefCell<Vec<(String, Column)>>,
    processes: RefCell<Vec<Rc<Process>>>,
    workload: RefCell<Workload>,
    /// Each class's own work (`[workload.class_work]`), by class index.
    class_work: Vec<Option<crate::dist::Dist>>,
    work_rng: RefCell<Rng>,
    poison: Option<u8>,
}

impl Topology {
    /// An empty topology for `scenario`: the engine, meters, bill and services, and no
    /// queue or pool yet.
    pub fn new(sim: Sim, scenario: &Scenario, meters: Rc<Meters>) -> Topology {
        let seed = scenario.seed;
        let cost = CostMeter::new(&scenario.hosting, &scenario.cost, scenario.queue.kind)
            .with_service_bus(scenario.queue.tier, scenario.queue.messaging_units);
        let workload = Workload::new(&scenario.workload, scenario.duration, seed);
        Topology {
            poison: workload.class_index("poison"),
            services: Rc::new(Services::new(seed, &scenario.services, &scenario.faults)),
            sim,
            scenario: scenario.clone(),
            meters,
            cost: Rc::new(cost),
            queues: RefCell::new(Vec::new()),
            pools: RefCell::new(Vec::new()),
            counters: RefCell::new(BTreeMap::new()),
            gauges: RefCell::new(Vec::new()),
            processes: RefCell::new(Vec::new()),
            workload: RefCell::new(workload),
            class_work: scenario
                .workload
                .classes
                .iter()
                .map(|(name, _)| {
                    scenario
                        .workload
                        .class_work
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, d)| d.clone())
                })
                .collect(),
            work_rng: RefCell::new(Rng::stream(seed, "class_work")),
        }
    }

    /// Adds a queue named `name` and starts its lock keeper.
    pub fn add_queue(&self, name: &str, spec: QueueSpec) -> Rc<Queue> {
        let queue = Queue::new(spec, self.sim.clone(), self.meters.clone());
        self.cost.queue_added();
        for f in &self.scenario.faults {
            if let crate::spec::FaultKind::RenewalFailure { from, to } = f.kind {
                queue.fail_renewals(from, to);
            }
        }
        queue.start();
        self.queues.borrow_mut().push((name.to_string(), queue.clone()));
        queue
    }

    /// Adds a consumer pool named `name` on the scenario's hosting plan, receiving from
    /// `queue` with the `consumer` settings. Start it with [`Topology::start_pool`]. On an
    /// elastic plan the run loop autoscales it on `queue`'s length.
    pub fn add_pool(
        &self,
        name: &str,
        queue: Rc<Queue>,
        consumer: &ConsumerSpec,
    ) -> Rc<QueueTrigger> {
        let h = &self.scenario.hosting;
        let prewarmed = if h.plan == Plan::FunctionsPremium { h.scaling.prewarmed } else { 0 };
        let host = Host::new(
            self.sim.clone(),
            self.scenario.seed,
            queue.clone(),
            self.meters.clone(),
            self.cost.clone(),
            h.timeout(),
            prewarmed,
        )
        .with_drain_grace(h.scaling.drain_grace.or(h.plan.default_drain_grace()))
        .with_on_timeout(match (h.plan, h.worker_model) {
            (Plan::AcaJob, _) => OnTimeout::EndReplica,
            (_, WorkerModel::Isolated) => OnTimeout::RestartWorker,
            (_, WorkerModel::InProcess) => OnTimeout::RestartHost(h.scaling.cold_start.clone()),
        })
        .with_messages_per_replica(
            h.scaling.messages_per_replica.filter(|_| h.plan == Plan::AcaJob),
        )
        .named(name)
        .with_idle_floor(
            (h.plan == Plan::AcaApp && h.scaling.min_instances > 0)
                .then_some(h.scaling.min_instances),
        );
        let host = Rc::new(if consumer.cpu_bound { host.with_cpu_bound_work(h.cpu) } else { host });
        let trigger = Rc::new(QueueTrigger::new(self.sim.clone(), queue, host.clone(), consumer));
        self.pools.borrow_mut().push(Pool {
            name: name.to_string(),
            host,
            trigger: trigger.clone(),
        });
        trigger
    }

    /// Starts a pool's instances, every handler slot running `handler`: `instances` of
    /// them on a fixed plan, the always-ready `min_instances` on an elastic one (the
    /// autoscaler adds the rest).
    pub fn start_pool<H: Handler>(&self, trigger: &Rc<QueueTrigger>, instances: u32, handler: H) {
        let h = &self.scenario.hosting;
        let (count, always_ready) =
            if h.plan.elastic() { (h.scaling.min_instances, true) } else { (instances, false) };
        trigger.start(Rc::new(handler), count, always_ready);
    }

    /// Adds the `consumer` pool on `queue`, running the standard [`Worker`] with the
    /// scenario's `[consumer]` settings, and starts it: the consumers of every pattern whose
    /// handler is "work, call the services, complete or abandon".
    pub fn start_workers(&self, queue: Rc<Queue>) {
        let c = &self.scenario.consumer;
        let trigger = self.add_pool("consumer", queue.clone(), c);
        let host = self.pool("consumer").expect("just added").0;
        let worker = Worker {
            sim: self.sim.clone(),
            queue,
            host,
            meters: self.meters.clone(),
            work: c.work.clone(),
            calls: self.downstream(&c.calls),
            poison: self.poison,
        };
        self.start_pool(&trigger, c.instances, worker);
    }

    /// The downstream calls to `calls`, retried in process as `[retry]` says.
    pub fn downstream(&self, calls: &[String]) -> Downstream {
        let rng = self.rng("retry");
        Downstream::new(
            self.sim.clone(),
            self.services.clone(),
            calls,
            self.scenario.retry.clone(),
            rng,
        )
    }

    /// The random stream named `name`, derived from the run seed.
    pub fn rng(&self, name: &str) -> Rng {
        Rng::stream(self.scenario.seed, name)
    }

    /// Whether messages of `class` always fail in the handler (the `poison` class).
    pub fn is_poison(&self, class: u8) -> bool {
        self.poison == Some(class)
    }

    /// The producer process: hands each arriving message to `accept`, then tells the meters
    /// that production has ended.
    /// A class with its own work (`[workload.class_work]`) draws it here, once per message.
    pub async fn produce(self: Rc<Self>, mut accept: impl FnMut(Message)) {
        let t = self.clone();
        self.publish(move |class| {
            let mut msg = t.meters.produce(class);
            if let Some(Some(work)) = t.class_work.get(class as usize) {
                msg.work = work.sample(&mut t.work_rng.borrow_mut()).max(1);
            }
            accept(msg);
        })
        .await;
    }

    /// The producer process of a pattern that decides itself what an arrival becomes in the
    /// ledger (`fan-out`: one message per matching subscription, or none): hands each
    /// arrival's class to `accept`, then tells the meters that production has ended.
    pub async fn publish(self: Rc<Self>, mut accept: impl FnMut(u8)) {
        loop {
            let next = self.workload.borrow_mut().next_arrival();
            let Some(t) = next else { break };
            self.sim.sleep_until(SimTime(t)).await;
            let class = self.workload.borrow_mut().class();
            accept(class);
        }
        self.meters.production_ended();
    }

    /// Adds `by` to the pattern counter `name` (a field of the summary's pattern section).
    pub fn count(&self, name: &str, by: f64) {
        *self.counters.borrow_mut().entry(name.to_string()).or_default() += by;
    }

    /// Sets the pattern field `name` to `value` (a figure computed from the pattern's own
    /// statistics, such as a percentile).
    pub fn set(&self, name: &str, value: f64) {
        self.counters.borrow_mut().insert(name.to_string(), value);
    }

    /// Raises the pattern counter `name` to `value` if it is higher.
    pub fn record_max(&self, name: &str, value: f64) {
        let mut c = self.counters.borrow_mut();
        let e = c.entry(name.to_string()).or_insert(value);
        *e = e.max(value);
    }

    /// A gauge whose value at each interval's end becomes the `timeseries.csv` column
    /// `column` (name it `<section>.<what>`: `stream.lag`, `saga.open`) and a line on the
    /// report's pattern-state chart. Create gauges while building; asking twice for a column
    /// gives the same gauge.
    pub fn gauge(&self, column: &str) -> Gauge {
        let mut g = self.gauges.borrow_mut();
        if let Some((_, Column::Gauge(gauge))) = g.iter().find(|(c, _)| c == column) {
            return gauge.clone();
        }
        let gauge = Gauge::default();
        g.push((column.to_string(), Column::Gauge(gauge.clone())));
        gauge
    }

    /// A pattern-state column, as [`Topology::gauge`], whose value is read at each interval's
    /// end with `level` (a level some component already keeps, such as a class's messages
    /// waiting).
    pub fn probe(&self, column: &str, level: impl Fn() -> f64 + 'static) {
        self.gauges.borrow_mut().push((column.to_string(), Column::Probe(Box::new(level))));
    }

    /// The gauges' columns, in the order they were created.
    pub fn gauge_columns(&self) -> Vec<String> {
        self.gauges.borrow().iter().map(|(c, _)| c.clone()).collect()
    }

    /// The gauges' values now, in column order.
    pub fn gauge_values(&self) -> Vec<f64> {
        self.gauges.borrow().iter().map(|(_, g)| g.value()).collect()
    }

    /// Adds the pattern's process `name` (one of its `Pattern::processes`, which crash and
    /// restart faults may target) and starts it now: `start` spawns its tasks with
    /// [`Process::spawn`] at this and every later start; `on_crash` settles, right after a
    /// crash, what the process held in memory (see [`crate::model::process`]).
    pub fn add_process(
        &self,
        name: &str,
        start: impl Fn(&Rc<Process>) + 'static,
        on_crash: impl Fn(&Rc<Process>) + 'static,
    ) -> Rc<Process> {
        let p = Process::new(self.sim.clone(), name, start, on_crash);
        self.processes.borrow_mut().push(p.clone());
        p.boot();
        p
    }

    /// The process named `name`, if the pattern added one.
    pub fn process(&self, name: &str) -> Option<Rc<Process>> {
        self.processes.borrow().iter().find(|p| p.name() == name).cloned()
    }

    /// The queues, in the order they were added.
    pub fn queues(&self) -> Vec<Rc<Queue>> {
        self.queues.borrow().iter().map(|(_, q)| q.clone()).collect()
    }

    /// Runs `f` on every queue, in the order they were added.
    pub fn for_each_queue(&self, mut f: impl FnMut(&Queue)) {
        for (_, q) in self.queues.borrow().iter() {
            f(q);
        }
    }

    /// Runs `f` on every pool's host, in the order they were added.
    pub fn for_each_host(&self, mut f: impl FnMut(&Host)) {
        for p in self.pools.borrow().iter() {
            f(&p.host);
        }
    }

    /// The pool named `name`, if the pattern added one.
    pub fn pool(&self, name: &str) -> Option<(Rc<Host>, Rc<QueueTrigger>)> {
        self.pools
            .borrow()
            .iter()
            .find(|p| p.name == name)
            .map(|p| (p.host.clone(), p.trigger.clone()))
    }

    /// Every pool's host, in the order they were added.
    pub fn hosts(&self) -> Vec<Rc<Host>> {
        self.pools.borrow().iter().map(|p| p.host.clone()).collect()
    }

    /// Every pool, as (host, trigger), in the order they were added.
    pub fn pools(&self) -> Vec<(Rc<Host>, Rc<QueueTrigger>)> {
        self.pools.borrow().iter().map(|p| (p.host.clone(), p.trigger.clone())).collect()
    }

    /// Ends the topology: every component is dropped, and the meters and the scenario are
    /// handed back (the meters are no longer shared once the engine has shut down).
    pub fn into_parts(self) -> (Rc<Meters>, Scenario) {
        (self.meters, self.scenario)
    }

    /// The pattern counters.
    pub fn counters(&self) -> BTreeMap<String, f64> {
        self.counters.borrow().clone()
    }
}
