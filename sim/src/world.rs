//! The world of one run: the engine plus every model, shared by the pattern's processes,
//! and [`run`], which builds it, runs it and collects the results.

use crate::engine::{RunOutcome, Sim};
use crate::model::cost::CostMeter;
use crate::model::host::Host;
use crate::model::meters::{Meters, TraceEvent};
use crate::model::queue::Queue;
use crate::model::retry::RetryState;
use crate::model::service::{CallError, Services};
use crate::model::workload::Workload;
use crate::patterns;
use crate::results::{FaultRecord, RunResults, WebResults};
use crate::rng::Rng;
use crate::spec::{FaultKind, PatternKind, Plan, Scenario};
use crate::time::{Nanos, SimTime};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Everything a pattern's processes share.
pub struct World {
    /// The engine.
    pub sim: Sim,
    /// The scenario being run.
    pub scenario: Scenario,
    /// The ledger and statistics.
    pub meters: Rc<Meters>,
    /// The broker.
    pub queue: Rc<Queue>,
    /// Downstream services.
    pub services: Services,
    /// Consumer instances.
    pub host: Rc<Host>,
    /// The bill.
    pub cost: Rc<CostMeter>,
    /// The autoscaler's random stream (cold starts).
    pub scaler_rng: RefCell<Rng>,
    /// The class index of poison messages, if the workload has any.
    pub poison: Option<u8>,
    /// Service indexes of `consumer.calls`, in order.
    pub calls: Vec<usize>,
    /// Messages in the system but outside the queue (stored jobs of `retry-backoff`).
    pub held_elsewhere: Cell<u64>,
    /// Pattern-specific counters for the summary's `extra` section.
    pub extra: RefCell<BTreeMap<String, f64>>,
    /// The API's random stream (accept latency).
    pub api_rng: RefCell<Rng>,
    workload: RefCell<Workload>,
    retry_rng: RefCell<Rng>,
    web: RefCell<WebAccumulator>,
}

#[derive(Default)]
struct WebAccumulator {
    weighted_ns: f64,
    time: f64,
    peak_ns: u64,
    background_peak: f64,
}

/// Options that change what a run records, never what it simulates.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Record every message event (see [`TraceEvent`]); memory grows with the run.
    pub trace: bool,
    /// Run the invariant checkers of [`crate::check`]; their findings land in
    /// [`RunResults::violations`].
    pub checks: bool,
    /// Receives every time-series row as its interval closes (the harness streams
    /// `timeseries.csv` from it); [`RunResults::timeseries`] keeps a bounded downsample.
    pub series: Option<crate::model::series::SeriesSink>,
}

/// A finished run: the results, and the trace if it was asked for.
pub struct Run {
    /// What the run recorded.
    pub results: RunResults,
    /// Message events, when [`RunOptions::trace`] was set.
    pub trace: Vec<TraceEvent>,
}

impl World {
    fn new(sim: Sim, scenario: &Scenario, options: RunOptions) -> Rc<World> {
        let seed = scenario.seed;
        let meters = Meters::new(sim.clone(), scenario.horizon(), scenario.warmup, options.trace)
            .with_sink(options.series)
            .with_max_backlog(scenario.limits.max_backlog);
        let meters = Rc::new(meters);
        let queue = Queue::new(scenario.queue.clone(), sim.clone(), meters.clone());
        let h = &scenario.hosting;
        let cost = Rc::new(CostMeter::new(h, &scenario.cost, scenario.queue.kind));
        let prewarmed = if h.plan == Plan::FunctionsPremium { h.scaling.prewarmed } else { 0 };
        let host = Host::new(
            sim.clone(),
            seed,
            queue.clone(),
            meters.clone(),
            cost.clone(),
            h.timeout(),
            prewarmed,
        );
        let services = Services::new(seed, &scenario.services, &scenario.faults);
        let workload = Workload::new(&scenario.workload, scenario.duration, seed);
        let calls = scenario
            .consumer
            .calls
            .iter()
            .map(|c| services.index(c).expect("the loader checked that called services exist"))
            .collect();
        Rc::new(World {
            poison: workload.class_index("poison"),
            host: Rc::new(host),
            cost,
            scaler_rng: RefCell::new(Rng::stream(seed, "scaler")),
            web: RefCell::new(WebAccumulator::default()),
            sim,
            scenario: scenario.clone(),
            meters,
            queue,
            services,
            calls,
            held_elsewhere: Cell::new(0),
            extra: RefCell::new(BTreeMap::new()),
            workload: RefCell::new(workload),
            retry_rng: RefCell::new(Rng::stream(seed, "retry")),
            api_rng: RefCell::new(Rng::stream(seed, "api")),
        })
    }

    /// Whether messages of `class` always fail in the handler.
    pub fn is_poison(&self, class: u8) -> bool {
        self.poison == Some(class)
    }

    /// The producer process: offers each arriving message to `accept`, then tells the
    /// meters that production has ended.
    pub async fn produce(self: Rc<Self>, accept: impl Fn(&Rc<World>, u8)) {
        loop {
            let next = self.workload.borrow_mut().next_arrival();
            let Some(t) = next else { break };
            self.sim.sleep_until(SimTime(t)).await;
            let class = self.workload.borrow_mut().class();
            self.meters.produced();
            accept(&self, class);
        }
        self.meters.production_ended();
    }

    /// Calls service `idx`, retrying in process as `[retry]` says (no retries without a
    /// `[retry]` table).
    pub async fn call_with_retry(&self, idx: usize) -> Result<(), CallError> {
        let mut attempts = 0;
        let mut state = RetryState::default();
        loop {
            attempts += 1;
            let outcome = self.services.call(&self.sim, idx).await;
            let Some(spec) = &self.scenario.retry else {
                return outcome;
            };
            if outcome.is_ok() || !RetryState::may_retry(spec, attempts) {
                return outcome;
            }
            let delay = state.next_delay(spec, &mut self.retry_rng.borrow_mut());
            self.sim.sleep(delay).await;
        }
    }

    /// Calls every service in `consumer.calls`, in order, each retried in process as
    /// `[retry]` says; stops at the first failure.
    pub async fn call_all(&self) -> Result<(), CallError> {
        for &idx in &self.calls {
            self.call_with_retry(idx).await?;
        }
        Ok(())
    }

    /// Calls every service in `consumer.calls` once, in order; stops at the first failure.
    pub async fn call_all_once(&self) -> Result<(), CallError> {
        for &idx in &self.calls {
            self.services.call(&self.sim, idx).await?;
        }
        Ok(())
    }

    /// Adds to a pattern-specific counter.
    pub fn count(&self, name: &str, by: f64) {
        *self.extra.borrow_mut().entry(name.to_string()).or_default() += by;
    }

    /// Raises a pattern-specific maximum.
    pub fn record_max(&self, name: &str, value: f64) {
        let mut extra = self.extra.borrow_mut();
        let e = extra.entry(name.to_string()).or_insert(value);
        *e = e.max(value);
    }

    /// Closes the open time-series interval with the levels now.
    fn close_interval(&self) {
        self.queue.sweep_expired(false);
        self.host.bill_all();
        let now = self.sim.now_ns();
        let cost = self.cost.bill(self.queue.operations(), now).total_usd;
        let web_ns = self.web_interval(now - self.meters.interval_start());
        self.meters.close_interval(crate::model::meters::Levels {
            backlog: self.queue.backlog(),
            in_flight: self.queue.locked() + self.held_elsewhere.get() + self.meters.outside(),
            instances: self.host.allocated(),
            cost_usd: cost,
            web_latency_ns: web_ns,
        });
    }

    /// The web tier's response time over the interval just ended (WebJob plans), or 0.
    fn web_interval(&self, length: Nanos) -> u64 {
        let h = &self.scenario.hosting;
        let work = self.host.take_cpu_work();
        if h.plan != Plan::WebJob || length == 0 {
            return 0;
        }
        let instances = self.host.allocated();
        let (r, u_bg) = crate::model::web::response_time(&h.web, instances, h.cpu, length, work);
        let mut acc = self.web.borrow_mut();
        acc.weighted_ns += r as f64 * length as f64;
        acc.time += length as f64;
        acc.peak_ns = acc.peak_ns.max(r);
        acc.background_peak = acc.background_peak.max(u_bg);
        r
    }

    fn web_results(&self) -> Option<WebResults> {
        let h = &self.scenario.hosting;
        if h.plan != Plan::WebJob {
            return None;
        }
        let acc = self.web.borrow();
        let (alone, _) =
            crate::model::web::response_time(&h.web, self.scenario.consumer.instances, h.cpu, 1, 0);
        let ms = |ns: f64| ns / 1e6;
        Some(WebResults {
            latency_mean_ms: if acc.time > 0.0 { ms(acc.weighted_ns / acc.time) } else { 0.0 },
            latency_peak_ms: ms(acc.peak_ns as f64),
            latency_alone_ms: ms(alone as f64),
            background_cpu_peak: acc.background_peak,
        })
    }
}

/// The sampler process: closes a time-series interval every `interval`.
async fn sample(world: Rc<World>) {
    let interval = world.scenario.interval;
    let mut next = interval;
    loop {
        world.sim.sleep_until(SimTime(next)).await;
        world.close_interval();
        next += interval;
    }
}

/// The fault process of one consumer crash.
async fn crash(world: Rc<World>, at: Nanos, instances: u32, restart_after: Option<Nanos>) {
    world.sim.sleep_until(SimTime(at)).await;
    let victims = world.host.crash(instances);
    if let Some(after) = restart_after {
        world.sim.sleep(after).await;
        world.host.restart(&victims);
    }
}

/// Runs a scenario to the end and returns what it recorded.
///
/// `progress(now)` is called now and then with the simulated time (for progress bars).
///
/// # Panics
/// If the message ledger does not balance at the end: that is a bug in sluice, never in the
/// scenario, and the harness reports it with the seed that replays it.
pub fn run(scenario: &Scenario, options: RunOptions, progress: &mut dyn FnMut(SimTime)) -> Run {
    let sim = Sim::new();
    let world = World::new(sim.clone(), scenario, options);
    world.queue.start();
    sim.spawn(sample(world.clone()));
    for f in &scenario.faults {
        if let FaultKind::Crash { at, instances, restart_after } = f.kind {
            sim.spawn(crash(world.clone(), at, instances, restart_after));
        }
    }
    patterns::start(scenario.pattern, &world);
    if scenario.hosting.plan.elastic() && scenario.pattern != PatternKind::RetryBackoff {
        sim.spawn(crate::model::scaler::autoscale(world.clone()));
    }
    let outcome = sim.run_until_with(SimTime(scenario.horizon()), progress);
    if world.meters.interval_start() < sim.now_ns() {
        world.close_interval();
    }
    world.queue.sweep_expired(true);
    let scaling = world.host.shutdown();
    sim.shutdown();
    let world = Rc::try_unwrap(world).unwrap_or_else(|_| panic!("processes still hold the world"));
    collect(world, outcome, scaling)
}

fn collect(world: World, outcome: RunOutcome, scaling: crate::results::ScalingResults) -> Run {
    let (backlog_peak, backlog_mean) = world.queue.backlog_stats();
    let queue_operations = world.queue.operations();
    let in_flight = world.queue.held() + world.held_elsewhere.get() + world.meters.outside();
    let sim_time = world.sim.now_ns();
    let services = world.services.stats();
    let cost = world.cost.bill(queue_operations, sim_time);
    let web = world.web_results();
    let World { meters, queue, host, scenario, extra, .. } = world;
    drop(host);
    drop(queue);
    let meters = Rc::try_unwrap(meters).unwrap_or_else(|_| panic!("meters still shared"));
    let finished = meters.finish();
    let mut ledger = finished.ledger;
    ledger.in_flight = in_flight;
    assert!(
        ledger.balances(),
        "ledger does not balance: produced {} != rejected {} + completed {} + dead-lettered {} \
         + expired {} + lost {} + in flight {}",
        ledger.produced,
        ledger.rejected,
        ledger.completed,
        ledger.dead_lettered,
        ledger.expired,
        ledger.lost,
        ledger.in_flight
    );
    let results = RunResults {
        scenario: scenario.name.clone(),
        pattern: scenario.pattern.name().to_string(),
        seed: scenario.seed,
        sim_time,
        drained: (outcome == RunOutcome::Stopped && finished.limit_stop.is_none())
            || in_flight == 0,
        ledger,
        latency: finished.latency.into_iter().map(|(n, h)| (n.to_string(), h)).collect(),
        backlog_peak,
        backlog_mean,
        in_system_mean: finished.in_system_mean,
        services,
        queue_operations,
        extra: extra.into_inner(),
        timeseries: finished.rows,
        completed_peak_interval: finished.peak_completed,
        limit_stop: finished.limit_stop,
        interval: scenario.interval,
        faults: scenario
            .faults
            .iter()
            .map(|f| FaultRecord { target: f.target.clone(), kind: f.kind.clone() })
            .collect(),
        hosting: scenario.hosting.plan.name().to_string(),
        cost,
        scaling,
        web,
        violations: Vec::new(),
    };
    Run { results, trace: finished.trace }
}
