//! The run loop: build a run's topology through its pattern, then drive it: sample an
//! interval every `interval`, inject the fault schedule, autoscale the elastic pools, and
//! collect the results when the system is empty or the horizon is reached.

use crate::check::Checker;
use crate::engine::{RunOutcome, Sim};
use crate::model::meters::{Levels, Meters, TraceEvent};
use crate::model::scaler::Autoscaler;
use crate::patterns;
use crate::results::{FaultRecord, RunResults, ScalingResults, WebResults};
use crate::spec::{FaultKind, Plan, Scenario};
use crate::time::{Nanos, SimTime};
use crate::topology::Topology;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Options that change what a run records, never what it simulates.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Record every message event (see [`TraceEvent`]); memory grows with the run.
    pub trace: bool,
    /// Run the invariant checkers of [`crate::check`] (the common ones and the pattern's);
    /// their findings land in [`RunResults::violations`].
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

/// The web tier's response time, averaged over the run (WebJob plans).
#[derive(Default)]
struct WebAccumulator {
    weighted_ns: f64,
    time: f64,
    peak_ns: u64,
    background_peak: f64,
}

/// What the run loop samples and collects from.
struct Loop {
    topology: Rc<Topology>,
    web: RefCell<WebAccumulator>,
}

impl Loop {
    fn sim(&self) -> &Sim {
        &self.topology.sim
    }

    /// Closes the open time-series interval with the levels now.
    fn close_interval(&self) {
        let t = &self.topology;
        // Runs once per interval (a long run has millions): no list is copied.
        let (mut operations, mut backlog) = (0, 0);
        t.for_each_queue(|q| {
            q.sweep_expired(false);
            operations += q.operations();
            backlog += q.backlog();
        });
        let mut instances = 0;
        t.for_each_host(|h| {
            h.bill_all();
            instances += h.allocated();
        });
        let now = self.sim().now_ns();
        let cost = t.cost.bill(operations, now).total_usd;
        let web_ns = self.web_interval(now - t.meters.interval_start());
        let in_flight = t.meters.holdings().in_flight();
        t.meters.close_interval(Levels {
            backlog,
            in_flight,
            // copies of messages the ledger already counts ([`crate::model::queue::Queue::send_copy`])
            // wait in the backlog too
            in_progress: in_flight.saturating_sub(backlog),
            instances,
            cost_usd: cost,
            web_latency_ns: web_ns,
            state: t.gauge_values(),
        });
    }

    /// The web tier's response time over the interval just ended (WebJob plans), or 0.
    fn web_interval(&self, length: Nanos) -> u64 {
        let s = &self.topology.scenario;
        let Some((host, _)) = self.topology.pool("consumer") else { return 0 };
        let work = host.take_cpu_work();
        if s.hosting.plan != Plan::WebJob || length == 0 {
            return 0;
        }
        let instances = host.allocated();
        let h = &s.hosting;
        let (r, u_bg) = crate::model::web::response_time(&h.web, instances, h.cpu, length, work);
        let mut acc = self.web.borrow_mut();
        acc.weighted_ns += r as f64 * length as f64;
        acc.time += length as f64;
        acc.peak_ns = acc.peak_ns.max(r);
        acc.background_peak = acc.background_peak.max(u_bg);
        r
    }

    fn web_results(&self) -> Option<WebResults> {
        let s = &self.topology.scenario;
        let h = &s.hosting;
        if h.plan != Plan::WebJob {
            return None;
        }
        let acc = self.web.borrow();
        let (alone, _) =
            crate::model::web::response_time(&h.web, s.consumer.instances, h.cpu, 1, 0);
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
async fn sample(run: Rc<Loop>) {
    let interval = run.topology.scenario.interval;
    let mut next = interval;
    loop {
        run.sim().sleep_until(SimTime(next)).await;
        run.close_interval();
        next += interval;
    }
}

/// The fault process of one crash of the pool named `target` (or, when no pool has that
/// name, of the pattern's process of that name).
async fn crash(t: Rc<Topology>, target: String, at: Nanos, instances: u32, restart: Option<Nanos>) {
    t.sim.sleep_until(SimTime(at)).await;
    let Some((host, _)) = t.pool(&target) else {
        if let Some(p) = t.process(&target) {
            p.crash_at(restart).await;
        }
        return;
    };
    let victims = host.crash(instances);
    if let Some(after) = restart {
        t.sim.sleep(after).await;
        host.restart(&victims);
    }
}

/// The fault process of a graceful restart of the pattern's process `target`.
async fn restart(t: Rc<Topology>, target: String, at: Nanos, grace: Nanos, after: Nanos) {
    t.sim.sleep_until(SimTime(at)).await;
    if let Some(p) = t.process(&target) {
        p.restart(grace, after).await;
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
    let pattern = patterns::lookup(scenario.pattern);
    let checkers = options.checks.then(|| {
        let mut c: Vec<Box<dyn Checker>> = crate::check::common();
        c.extend((pattern.checkers)(scenario));
        c
    });
    let classes: Vec<String> = scenario.workload.classes.iter().map(|(n, _)| n.clone()).collect();
    let meters = Meters::new(
        sim.clone(),
        scenario.horizon(),
        scenario.warmup,
        options.trace,
        &classes,
        checkers,
    )
    .with_sink(options.series)
    .with_max_backlog(scenario.limits.max_backlog);
    let meters = Rc::new(meters);
    let topology = Rc::new(Topology::new(sim.clone(), scenario, meters));
    let lp = Rc::new(Loop { topology: topology.clone(), web: RefCell::default() });
    sim.spawn(sample(lp.clone()));
    for f in &scenario.faults {
        let target = f.target.clone();
        match f.kind {
            FaultKind::Crash { at, instances, restart_after } => {
                sim.spawn(crash(topology.clone(), target, at, instances, restart_after));
            }
            FaultKind::Restart { at, grace, restart_after } => {
                sim.spawn(restart(topology.clone(), target, at, grace, restart_after));
            }
            _ => {}
        }
    }
    (pattern.build)(&topology);
    topology.meters.set_state_columns(topology.gauge_columns());
    if scenario.hosting.plan.elastic() {
        for (host, trigger) in topology.pools() {
            sim.spawn(
                Autoscaler {
                    sim: sim.clone(),
                    host,
                    // KEDA's queue scalers aim at 5 messages per replica by default
                    // (`queueLength`, `messageCount`); the Functions scale controller at the
                    // trigger's own target.
                    target: scenario.hosting.scaling.target_per_instance.unwrap_or(
                        if matches!(scenario.hosting.plan, Plan::AcaJob | Plan::AcaApp) {
                            5
                        } else {
                            trigger.scale_target()
                        },
                    ),
                    queue: trigger.queue().clone(),
                    hosting: scenario.hosting.clone(),
                    rng: topology.rng("scaler"),
                }
                .run(),
            );
        }
    }
    let outcome = sim.run_until_with(SimTime(scenario.horizon()), progress);
    if topology.meters.interval_start() < sim.now_ns() {
        lp.close_interval();
    }
    for q in topology.queues() {
        q.sweep_expired(true);
    }
    let mut scaling = ScalingResults::default();
    for host in topology.hosts() {
        scaling.add(&host.shutdown());
    }
    sim.shutdown();
    drop(topology);
    collect(lp, outcome, scaling)
}

fn collect(lp: Rc<Loop>, outcome: RunOutcome, scaling: ScalingResults) -> Run {
    let lp = Rc::try_unwrap(lp).unwrap_or_else(|_| panic!("processes still hold the run loop"));
    let web = lp.web_results();
    let t =
        Rc::try_unwrap(lp.topology).unwrap_or_else(|_| panic!("processes still hold the topology"));
    let queues = t.queues();
    let queue_operations = queues.iter().map(|q| q.operations()).sum();
    let (backlog_peak, backlog_mean) = t.meters.backlog_stats();
    let sim_time = t.sim.now_ns();
    let services = t.services.stats();
    let cost = t.cost.bill(queue_operations, sim_time);
    let section = patterns::lookup(t.scenario.pattern).section;
    let mut extra = t.counters();
    let mut sections: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    if let Some(name) = section {
        let prefix = format!("{name}.");
        let (mine, rest): (BTreeMap<_, _>, BTreeMap<_, _>) =
            extra.into_iter().partition(|(k, _)| k.starts_with(&prefix));
        let fields = mine.into_iter().map(|(k, v)| (k[prefix.len()..].to_string(), v)).collect();
        sections.insert(name.to_string(), fields);
        extra = rest;
    }
    drop(queues);
    let (meters, scenario) = t.into_parts();
    let meters = Rc::try_unwrap(meters).unwrap_or_else(|_| panic!("meters still shared"));
    let finished = meters.finish();
    let ledger = finished.ledger;
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
    let mut results = RunResults {
        scenario: scenario.name.clone(),
        pattern: scenario.pattern.name().to_string(),
        seed: scenario.seed,
        sim_time,
        drained: (outcome == RunOutcome::Stopped && finished.limit_stop.is_none())
            || ledger.in_flight == 0,
        ledger,
        latency: finished.latency.into_iter().map(|(n, h)| (n.to_string(), h)).collect(),
        classes: finished.classes,
        backlog_peak,
        backlog_mean,
        in_system_mean: finished.in_system_mean,
        services,
        queue_operations,
        extra,
        sections,
        timeseries: finished.rows,
        state_columns: finished.state_columns,
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
    if let Some(mut checkers) = finished.checkers {
        results.violations = crate::check::verdicts(&mut checkers, &results);
    }
    Run { results, trace: finished.trace }
}
