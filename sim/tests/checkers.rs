//! The invariant checkers over many seeds with random faults, and the checkers themselves on
//! hand-built event sequences (a checker that cannot fail proves nothing).
//!
//! `SIM_SEEDS=N` sets how many seeds the swarm runs (default 100); `SIM_SEED=S` starts there.
//! Every failure names the seed and the pattern, which replay it.

mod common;

use sim::check::{Checker, MaxDeliveries, OneLife, verdicts};
use sim::dist::Dist;
use sim::ledger::{Exit, Holder};
use sim::model::meters::{Event, TraceEvent};
use sim::rng::Rng;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::collections::BTreeMap;

fn first_seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

/// A scenario of `pattern` whose queue kind, classes, faults and their times are drawn
/// from `seed` (the swarm: fault kinds, times, sizes and counts from the seed).
fn swarm(pattern: PatternKind, seed: u64) -> Scenario {
    let mut r = Rng::stream(seed, "swarm");
    let duration = 5 * NS_PER_MIN;
    let storage = r.chance(0.5);
    let queue = if storage { QueueSpec::storage_queue() } else { QueueSpec::service_bus() };
    let queue = QueueSpec {
        visibility_timeout: (5 + r.below(30)) * NS_PER_S,
        max_delivery_count: 1 + r.below(6) as u32,
        capacity: if r.chance(0.3) { 50 + r.below(200) } else { 0 },
        ttl: if r.chance(0.3) { Some((30 + r.below(120)) * NS_PER_S) } else { queue.ttl },
        ..queue
    };
    let mut services = BTreeMap::new();
    services.insert("api".to_string(), common::swarm_service(&mut r));
    let mut faults = common::swarm_faults(&mut r, duration);
    let processes = sim::patterns::lookup(pattern).processes;
    faults.extend(common::swarm_process_faults(&mut r, duration, processes));
    let mut s = Scenario {
        seed,
        duration,
        drain: Some(10 * NS_PER_MIN),
        pattern,
        workload: WorkloadSpec {
            rate_per_s: 10.0 + r.below(40) as f64,
            classes: vec![("normal".into(), 0.97), ("poison".into(), 0.03)],
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
    };
    // Drawn last, so the draws above stay those of earlier swarms.
    if !storage && r.chance(0.3) {
        s.queue.prefetch = 1 + r.below(64) as u32;
    }
    s
}

#[test]
fn every_pattern_keeps_its_invariants_under_random_faults() {
    let mut runs = 0;
    for p in sim::patterns::REGISTRY {
        for seed in first_seed()..first_seed() + seeds() {
            let s = swarm(p.kind, seed);
            let options = RunOptions { checks: true, ..Default::default() };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&s, options, &mut |_| {}).results
            }));
            let r = outcome.unwrap_or_else(|_| {
                panic!("{} seed {seed}: the run panicked (message above)", p.kind.name())
            });
            assert!(
                r.violations.is_empty(),
                "{} seed {seed}: {:#?}\nscenario: {s:#?}",
                p.kind.name(),
                r.violations
            );
            assert!(r.ledger.balances());
            if !r.classes.is_empty() {
                let produced: u64 = r.classes.iter().map(|c| c.ledger.produced).sum();
                assert_eq!(produced, r.ledger.produced, "{} seed {seed}", p.kind.name());
            }
            runs += 1;
        }
    }
    assert_eq!(runs, sim::patterns::REGISTRY.len() as u64 * seeds());
}

fn ev(t: Nanos, id: u64, what: Event) -> TraceEvent {
    TraceEvent { t, id, class: 0, what }
}

fn judge(mut c: Box<dyn Checker>, events: &[TraceEvent], in_flight: u64) -> Vec<String> {
    for e in events {
        c.observe(e);
    }
    let mut r = run(
        &Scenario { duration: 0, drain: Some(0), ..Default::default() },
        RunOptions::default(),
        &mut |_| {},
    )
    .results;
    r.ledger.in_flight = in_flight;
    verdicts(&mut [c], &r).into_iter().map(|v| v.message).collect()
}

#[test]
fn one_life_catches_a_second_admission_a_second_exit_and_events_after_the_exit() {
    let q = Holder::Queue;
    let ok = [
        ev(0, 0, Event::Produced),
        ev(0, 0, Event::Admitted(q)),
        ev(1, 0, Event::Delivered { count: 1 }),
        ev(2, 0, Event::Left(Exit::Completed)),
        ev(3, 0, Event::LateSuccess), // a handler on a lapsed lock may finish later
    ];
    assert!(judge(Box::new(OneLife::default()), &ok, 0).is_empty());
    let twice =
        [ev(0, 0, Event::Produced), ev(0, 0, Event::Admitted(q)), ev(1, 0, Event::Admitted(q))];
    let found = judge(Box::new(OneLife::default()), &twice, 1);
    assert!(found.iter().any(|m| m.contains("admitted twice")), "{found:?}");
    let exit_twice = [
        ev(0, 0, Event::Produced),
        ev(0, 0, Event::Admitted(q)),
        ev(1, 0, Event::Left(Exit::Completed)),
        ev(2, 0, Event::Left(Exit::DeadLettered)),
    ];
    let found = judge(Box::new(OneLife::default()), &exit_twice, 0);
    assert!(found.iter().any(|m| m.contains("was not in the system")), "{found:?}");
    let after = [
        ev(0, 0, Event::Produced),
        ev(0, 0, Event::Admitted(q)),
        ev(1, 0, Event::Left(Exit::Expired)),
        ev(2, 0, Event::Delivered { count: 2 }),
    ];
    let found = judge(Box::new(OneLife::default()), &after, 0);
    assert!(found.iter().any(|m| m.contains("after it left")), "{found:?}");
    let miscount = [ev(0, 0, Event::Produced), ev(0, 0, Event::Admitted(q))];
    let found = judge(Box::new(OneLife::default()), &miscount, 0);
    assert!(found.iter().any(|m| m.contains("the ledger says 0")), "{found:?}");
}

#[test]
fn max_deliveries_catches_one_delivery_too_many() {
    let at_most =
        |n| (1..=n).map(|c| ev(c as u64, 7, Event::Delivered { count: c })).collect::<Vec<_>>();
    assert!(judge(Box::new(MaxDeliveries::new(5)), &at_most(5), 0).is_empty());
    let found = judge(Box::new(MaxDeliveries::new(5)), &at_most(6), 0);
    assert_eq!(found, ["message 7 delivered 6 times, max_delivery_count is 5"]);
}
