//! The priority pattern: its three designs over the same workload, starvation under
//! `strict`, a given-back message at the back of its own class queue, and its checkers over
//! many seeds with random faults in every design (the generic swarm of `checkers.rs` only
//! runs the default design). `SIM_SEED=N` replays one seed; `SIM_SEEDS=N` sets how many.

mod common;

use sim::check::Checker;
use sim::check::priority::{ClassFifo, StrictOrder};
use sim::dist::Dist;
use sim::ledger::{Exit, Holder};
use sim::model::meters::{Event, TraceEvent};
use sim::patterns::priority::{Design, PoolSettings, Resolved, Settings};
use sim::results::RunResults;
use sim::rng::Rng;
use sim::spec::table::PatternTable;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::collections::BTreeMap;
use std::sync::Arc;

fn seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

fn settings(design: Design, pools: &[(&str, u32)]) -> PatternTable {
    let pools = pools
        .iter()
        .map(|(c, n)| (c.to_string(), PoolSettings { instances: Some(*n), ..Default::default() }))
        .collect();
    PatternTable(Some(Arc::new(Settings {
        design: Some(design),
        order: Some(vec!["high".into(), "low".into()]),
        pools,
    })))
}

/// High (25 %) and low (75 %) messages at 40/s, 4 instances × 4 handlers of ~100 ms work
/// (about 160/s), and from 2m to 4m twice that load.
fn overload(design: Design, seed: u64) -> Scenario {
    Scenario {
        seed,
        duration: 8 * NS_PER_MIN,
        pattern: sim::patterns::priority::KIND,
        pattern_table: settings(design, &[("high", 2), ("low", 2)]),
        workload: WorkloadSpec {
            rate_per_s: 40.0,
            phases: vec![Phase { from: 2 * NS_PER_MIN, to: 4 * NS_PER_MIN, rate_per_s: 320.0 }],
            classes: vec![("high".into(), 0.25), ("low".into(), 0.75)],
            ..Default::default()
        },
        consumer: ConsumerSpec {
            instances: 4,
            concurrency: 4,
            batch_size: 4,
            work: Dist::Exp { mean: 100 * NS_PER_MS },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn checked(s: &Scenario) -> RunResults {
    let r = run(s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(r.violations.is_empty(), "seed {}: {:#?}", s.seed, r.violations);
    r
}

fn p99_ms(r: &RunResults, class: &str) -> f64 {
    let c = r.classes.iter().find(|c| c.name == class).expect("class");
    c.end_to_end.quantile_ns(0.99) as f64 / 1e6
}

fn field(r: &RunResults, name: &str) -> f64 {
    r.sections["priority"][name]
}

#[test]
fn separate_queues_keep_the_high_class_fast_where_one_queue_puts_it_behind_the_backlog() {
    let seed = seed();
    let separate = checked(&overload(Design::SeparateQueues, seed));
    let fifo = checked(&overload(Design::OneQueue, seed));
    for r in [&separate, &fifo] {
        assert_eq!(r.ledger.completed, r.ledger.produced, "seed {seed}: {:?}", r.ledger);
    }
    let (fast, slow) = (p99_ms(&separate, "high"), p99_ms(&fifo, "high"));
    assert!(fast < 2_000.0, "seed {seed}: separate high p99 {fast} ms");
    assert!(slow > 30.0 * fast, "seed {seed}: one-queue high p99 {slow} ms vs {fast} ms");
    // In one FIFO queue both classes wait alike.
    let (hi, lo) = (p99_ms(&fifo, "high"), p99_ms(&fifo, "low"));
    assert!((hi / lo - 1.0).abs() < 0.2, "seed {seed}: one-queue p99 high {hi} low {lo}");
}

#[test]
fn strict_serves_high_first_and_starves_low_while_high_fills_the_pool() {
    let seed = seed();
    // High alone at 1.5 times what the pool can do from 2m to 4m: under strict, nothing of
    // low is received until the high backlog is gone.
    let mut s = overload(Design::Strict, seed);
    s.workload.classes = vec![("high".into(), 0.75), ("low".into(), 0.25)];
    let strict = checked(&s);
    assert!(p99_ms(&strict, "high") < p99_ms(&strict, "low"), "seed {seed}");
    let starved = field(&strict, "low.starved_s");
    assert!(starved > 100.0, "seed {seed}: low starved {starved} s under strict");
    assert_eq!(field(&strict, "starved_s"), starved.max(field(&strict, "high.starved_s")));
    assert!(field(&strict, "high.starved_s") < 5.0, "seed {seed}");
    // Separate pools keep receiving low messages all along.
    s.pattern_table = settings(Design::SeparateQueues, &[("high", 2), ("low", 2)]);
    let separate = checked(&s);
    let low = field(&separate, "low.starved_s");
    assert!(low < 5.0, "seed {seed}: low starved {low} s with its own pool");
}

#[test]
fn separate_pools_scale_and_drain_on_an_elastic_plan() {
    // Two autoscaled pools side by side: an instance of one pool that scales in must not
    // take the other pool's processes with it (their process groups once collided, leaving
    // handlers dead with renewed locks: the run never drained).
    let mut scale_ins = 0;
    for seed in seed()..seed() + 20 {
        let mut s = overload(Design::SeparateQueues, seed);
        s.duration = 20 * NS_PER_MIN; // a quiet tail after the overload: the pools scale in
        s.queue = QueueSpec::storage_queue();
        s.consumer.batch_size = 16;
        s.hosting = HostingSpec {
            plan: Plan::FunctionsConsumption,
            scaling: ScalingSpec { cold_start: Dist::Const(NS_PER_S), ..Default::default() },
            ..Default::default()
        };
        let r = checked(&s);
        assert!(r.drained, "seed {seed}: {:?}", r.ledger);
        assert_eq!(r.ledger.completed, r.ledger.produced, "seed {seed}: {:?}", r.ledger);
        scale_ins += r.scaling.scale_ins;
    }
    assert!(scale_ins > 0, "the pools scaled in");
}

#[test]
fn starvation_is_zero_in_every_summary_before_anything_waits() {
    let mut s = overload(Design::Strict, seed());
    s.duration = 0;
    s.drain = Some(0);
    let r = checked(&s);
    let section = &r.sections["priority"];
    assert_eq!(
        section.keys().map(String::as_str).collect::<Vec<_>>(),
        ["high.starved_s", "low.starved_s", "starved_s"]
    );
    assert!(section.values().all(|v| *v == 0.0));
}

#[test]
fn a_retried_message_goes_to_the_back_of_its_own_class_queue() {
    let seed = seed();
    // One handler, a service that fails half the calls: abandons while others wait.
    let mut services = BTreeMap::new();
    services.insert(
        "flaky".to_string(),
        ServiceSpec { latency: Dist::Const(10 * NS_PER_MS), error_rate: 0.5, ..Default::default() },
    );
    for design in [Design::SeparateQueues, Design::OneQueue, Design::Strict] {
        let mut s = overload(design, seed);
        s.duration = 2 * NS_PER_MIN;
        s.workload.phases.clear();
        s.consumer = ConsumerSpec {
            instances: 1,
            concurrency: 1,
            batch_size: 1,
            work: Dist::Const(20 * NS_PER_MS),
            calls: vec!["flaky".into()],
            ..Default::default()
        };
        s.pattern_table = settings(design, &[]);
        s.services = services.clone();
        s.queue = QueueSpec { max_delivery_count: 10, ..QueueSpec::service_bus() };
        let r =
            run(&s, RunOptions { trace: true, checks: true, ..Default::default() }, &mut |_| {});
        assert!(
            r.results.violations.is_empty(),
            "seed {seed} {design:?}: {:#?}",
            r.results.violations
        );
        // Not vacuous: an abandoned message was followed by deliveries of older waiting
        // messages of its class before its own redelivery.
        let trace = &r.trace;
        let mut overtaken = 0;
        for (i, e) in trace.iter().enumerate() {
            if e.what != Event::Abandoned {
                continue;
            }
            let next = trace[i + 1..]
                .iter()
                .find(|x| x.class == e.class && matches!(x.what, Event::Delivered { .. }));
            if next.is_some_and(|x| x.id != e.id) {
                overtaken += 1;
            }
        }
        assert!(overtaken > 10, "seed {seed} {design:?}: {overtaken} abandons went to the back");
    }
}

#[test]
fn the_service_bus_default_redelivers_at_the_front_and_class_fifo_notices() {
    // The same retry on a plain competing-consumers queue (Service Bus puts an abandoned
    // message back at the front): the checker must find it.
    let seed = seed();
    let mut services = BTreeMap::new();
    services.insert(
        "flaky".to_string(),
        ServiceSpec { latency: Dist::Const(10 * NS_PER_MS), error_rate: 0.5, ..Default::default() },
    );
    let s = Scenario {
        seed,
        duration: NS_PER_MIN,
        pattern: sim::patterns::competing_consumers::KIND,
        workload: WorkloadSpec { rate_per_s: 60.0, ..Default::default() },
        consumer: ConsumerSpec {
            concurrency: 1,
            work: Dist::Const(20 * NS_PER_MS),
            calls: vec!["flaky".into()],
            ..Default::default()
        },
        services,
        queue: QueueSpec { max_delivery_count: 10, ..QueueSpec::service_bus() },
        ..Default::default()
    };
    let r = run(&s, RunOptions { trace: true, ..Default::default() }, &mut |_| {});
    let mut fifo = ClassFifo::new(&s.queue);
    for e in &r.trace {
        fifo.observe(e);
    }
    let mut found = Vec::new();
    fifo.finish(&r.results, &mut found);
    assert!(!found.is_empty(), "seed {seed}: front redelivery went unnoticed");
}

fn ev(t: Nanos, id: u64, class: u8, what: Event) -> TraceEvent {
    TraceEvent { t, id, class, what }
}

fn verdict(mut c: impl Checker, events: &[TraceEvent]) -> Vec<String> {
    for e in events {
        c.observe(e);
    }
    let r = run(
        &Scenario { duration: 0, drain: Some(0), ..Default::default() },
        RunOptions::default(),
        &mut |_| {},
    )
    .results;
    let mut out = Vec::new();
    c.finish(&r, &mut out);
    out.into_iter().map(|v| v.message).collect()
}

#[test]
fn class_fifo_catches_a_message_served_before_older_ones_of_its_class() {
    let q = Holder::Queue;
    let sb = QueueSpec::service_bus();
    // 1 and 2 of class 0 wait; 1 is abandoned and must go behind 2.
    let good = [
        ev(0, 1, 0, Event::Admitted(q)),
        ev(0, 2, 0, Event::Admitted(q)),
        ev(0, 3, 1, Event::Admitted(q)),
        ev(1, 3, 1, Event::Delivered { count: 1 }), // another class: no order between them
        ev(1, 1, 0, Event::Delivered { count: 1 }),
        ev(2, 1, 0, Event::Abandoned),
        ev(3, 2, 0, Event::Delivered { count: 1 }),
        ev(4, 1, 0, Event::Delivered { count: 2 }),
        ev(5, 1, 0, Event::Left(Exit::Completed)),
    ];
    assert!(verdict(ClassFifo::new(&sb), &good).is_empty());
    let mut front = good.to_vec();
    front.swap(6, 7); // the abandoned message comes back first
    let found = verdict(ClassFifo::new(&sb), &front);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("message 1 of class 0 delivered while older"), "{found:?}");
    // A lapsed lock joins the back too; a message that left no longer waits.
    let lapsed = [
        ev(0, 1, 0, Event::Admitted(q)),
        ev(0, 2, 0, Event::Admitted(q)),
        ev(0, 3, 0, Event::Admitted(q)),
        ev(1, 1, 0, Event::Delivered { count: 1 }),
        ev(2, 1, 0, Event::LockExpired),
        ev(2, 2, 0, Event::Left(Exit::Expired)),
        ev(3, 1, 0, Event::Delivered { count: 2 }),
    ];
    let found = verdict(ClassFifo::new(&sb), &lapsed);
    assert_eq!(found.len(), 1, "3 was older than the lapsed 1: {found:?}");
}

#[test]
fn strict_order_catches_a_low_message_served_while_a_high_one_waits() {
    let q = Holder::Queue;
    let sb = QueueSpec::service_bus();
    let rank = vec![0, 1]; // class 0 high, class 1 low
    let good = [
        ev(0, 1, 1, Event::Admitted(q)),
        ev(0, 2, 0, Event::Admitted(q)),
        ev(1, 2, 0, Event::Delivered { count: 1 }),
        ev(1, 1, 1, Event::Delivered { count: 1 }),
    ];
    assert!(verdict(StrictOrder::new(&sb, rank.clone()), &good).is_empty());
    let bad = [
        ev(0, 1, 1, Event::Admitted(q)),
        ev(0, 2, 0, Event::Admitted(q)),
        ev(1, 1, 1, Event::Delivered { count: 1 }),
    ];
    let found = verdict(StrictOrder::new(&sb, rank.clone()), &bad);
    assert_eq!(
        found,
        ["message 1 of class 1 delivered while a message of the higher class 0 waited"]
    );
    // An abandoned high message waits again: low may not pass it.
    let again = [
        ev(0, 2, 0, Event::Admitted(q)),
        ev(1, 2, 0, Event::Delivered { count: 1 }),
        ev(1, 1, 1, Event::Admitted(q)),
        ev(2, 2, 0, Event::Abandoned),
        ev(3, 1, 1, Event::Delivered { count: 1 }),
    ];
    assert_eq!(verdict(StrictOrder::new(&sb, rank), &again).len(), 1);
}

#[test]
fn order_defaults_to_the_named_classes_first_then_the_rest_by_name() {
    let mut s = overload(Design::Strict, 1);
    s.workload.classes = vec![("a".into(), 1.0), ("b".into(), 1.0), ("c".into(), 1.0)];
    s.pattern_table = PatternTable(Some(Arc::new(Settings {
        order: Some(vec!["c".into()]),
        ..Default::default()
    })));
    let plan = Resolved::of(&s);
    assert_eq!(plan.design, Design::SeparateQueues, "the default design");
    assert_eq!(plan.order, [2, 0, 1]);
    assert_eq!(plan.rank, [1, 2, 0]);
    assert!(plan.pools.iter().all(|p| p.instances == 4), "pools default to [consumer]");
}

/// A scenario of `design` whose queue kind, classes, faults and their times are drawn from
/// `seed`.
fn swarm(design: Design, seed: u64) -> Scenario {
    let mut r = Rng::stream(seed, "priority-swarm");
    let duration = 5 * NS_PER_MIN;
    let storage = r.chance(0.5);
    let queue = if storage { QueueSpec::storage_queue() } else { QueueSpec::service_bus() };
    let queue = QueueSpec {
        visibility_timeout: (5 + r.below(30)) * NS_PER_S,
        max_delivery_count: 1 + r.below(6) as u32,
        capacity: if r.chance(0.3) { 50 + r.below(200) } else { 0 },
        ttl: if r.chance(0.3) { Some((30 + r.below(120)) * NS_PER_S) } else { queue.ttl },
        abandon_delay: if storage && r.chance(0.3) { r.below(10) * NS_PER_S } else { 0 },
        ..queue
    };
    let mut services = BTreeMap::new();
    services.insert("api".to_string(), common::swarm_service(&mut r));
    let faults = common::swarm_faults(&mut r, duration);
    let pools = [("high", 1 + r.below(3) as u32), ("low", 1 + r.below(3) as u32)];
    Scenario {
        seed,
        duration,
        drain: Some(10 * NS_PER_MIN),
        pattern: sim::patterns::priority::KIND,
        pattern_table: settings(design, &pools),
        workload: WorkloadSpec {
            rate_per_s: 10.0 + r.below(60) as f64,
            classes: vec![("high".into(), 0.3), ("low".into(), 0.67), ("poison".into(), 0.03)],
            ..Default::default()
        },
        queue,
        consumer: ConsumerSpec {
            instances: 1 + r.below(4) as u32,
            concurrency: 1 + r.below(8) as u32,
            batch_size: 1 + r.below(8) as u32,
            work: Dist::Exp { mean: (10 + r.below(100)) * NS_PER_MS },
            calls: vec!["api".into()],
            ..Default::default()
        },
        services,
        retry: r.chance(0.5).then(RetrySpec::default),
        faults,
        ..Default::default()
    }
}

#[test]
fn every_design_keeps_its_invariants_under_random_faults() {
    let mut starved = 0;
    for design in [Design::SeparateQueues, Design::OneQueue, Design::Strict] {
        for seed in seed()..seed() + seeds() {
            let s = swarm(design, seed);
            let r = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
            assert!(
                r.violations.is_empty(),
                "{design:?} seed {seed}: {:#?}\nscenario: {s:#?}",
                r.violations
            );
            assert!(r.ledger.balances(), "{design:?} seed {seed}");
            let produced: u64 = r.classes.iter().map(|c| c.ledger.produced).sum();
            assert_eq!(produced, r.ledger.produced, "{design:?} seed {seed}");
            let section = &r.sections["priority"];
            let longest = ["high", "low", "poison"]
                .map(|c| section[&format!("{c}.starved_s")])
                .into_iter()
                .fold(0.0, f64::max);
            assert_eq!(section["starved_s"], longest, "{design:?} seed {seed}");
            assert!(longest <= r.sim_time as f64 / 1e9, "{design:?} seed {seed}");
            if longest > 0.0 {
                starved += 1;
            }
        }
    }
    assert!(starved > 0, "some run measured a wait");
}
