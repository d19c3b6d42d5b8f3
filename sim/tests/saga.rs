//! The saga pattern: compensation, retries, replay after a crash, and its invariant over
//! many seeds: with durable state every saga ends completed or fully compensated, whatever
//! the orchestrator's crashes; in memory, a crash leaves sagas stuck.
//!
//! `SIM_SEEDS=N` sets how many seeds the swarm runs (default 100); `SIM_SEED=S` starts there.
//! Every failure names its seed.

use sim::dist::Dist;
use sim::patterns::saga::{KIND, Settings, State};
use sim::rng::Rng;
use sim::spec::table::PatternTable;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::collections::BTreeMap;
use std::sync::Arc;

fn first_seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(3000)
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

const S: Nanos = NS_PER_S;
const MS: Nanos = NS_PER_MS;

fn service(mean_ms: u64, error_rate: f64) -> ServiceSpec {
    ServiceSpec {
        latency: Dist::Exp { mean: mean_ms * MS },
        error_rate,
        timeout: Some(5 * S),
        ..Default::default()
    }
}

/// The order saga: reserve stock, charge payment, ship; release and refund to undo.
fn order_saga(seed: u64, state: State, faults: Vec<FaultSpec>) -> Scenario {
    let mut services = BTreeMap::new();
    services.insert("reserve-stock".to_string(), service(20, 0.01));
    services.insert("charge-payment".to_string(), service(80, 0.05));
    services.insert("ship".to_string(), service(40, 0.02));
    services.insert("release-stock".to_string(), service(20, 0.01));
    services.insert("refund-payment".to_string(), service(80, 0.05));
    let settings = Settings {
        steps: Some(vec!["reserve-stock".into(), "charge-payment".into(), "ship".into()]),
        compensations: Some(vec![
            ("reserve-stock".into(), "release-stock".into()),
            ("charge-payment".into(), "refund-payment".into()),
        ]),
        state: Some(state),
        ..Default::default()
    };
    Scenario {
        seed,
        duration: 5 * NS_PER_MIN,
        drain: Some(2 * NS_PER_H),
        pattern: KIND,
        pattern_table: PatternTable(Some(Arc::new(settings))),
        workload: WorkloadSpec {
            rate_per_s: 5.0,
            classes: vec![("normal".into(), 0.95), ("poison".into(), 0.05)],
            ..Default::default()
        },
        services,
        faults,
        ..Default::default()
    }
}

fn crash(at: Nanos, restart_after: Option<Nanos>) -> FaultSpec {
    FaultSpec {
        target: "orchestrator".into(),
        kind: FaultKind::Crash { at, instances: 1, restart_after },
    }
}

fn section(r: &sim::results::RunResults) -> BTreeMap<String, f64> {
    r.sections["saga"].clone()
}

#[test]
fn durable_sagas_all_end_completed_or_compensated_across_random_crashes() {
    let (mut duplicates, mut replays) = (0.0, 0.0);
    for seed in first_seed()..first_seed() + seeds() {
        let mut r = Rng::stream(seed, "crashes");
        let faults = (0..1 + r.below(3))
            .map(|_| crash(r.below(5 * NS_PER_MIN), Some((1 + r.below(120)) * S)))
            .collect();
        let s = order_saga(seed, State::Durable, faults);
        let res = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
        let g = section(&res);
        assert!(res.violations.is_empty(), "seed {seed}: {:#?}", res.violations);
        assert_eq!(g["stuck"], 0.0, "seed {seed}: {g:?}");
        assert_eq!(g["lost"], 0.0, "seed {seed}");
        assert_eq!(res.ledger.lost, 0, "seed {seed}");
        assert_eq!(res.ledger.in_flight, 0, "seed {seed}");
        assert_eq!(
            g["started"],
            g["completed"] + g["compensated"] + g["failed"],
            "seed {seed}: {g:?}"
        );
        assert!(g["compensated"] > 0.0, "seed {seed}: the poison orders compensate");
        duplicates += g["step_duplicates"];
        replays += g["replays"];
    }
    // Crashes land between an activity's effect and its checkpoint often enough to show
    // at-least-once activities, and sagas replay from their history.
    assert!(duplicates > 0.0 && replays > 0.0, "{duplicates} duplicates, {replays} replays");
}

#[test]
fn in_memory_sagas_are_stuck_after_a_crash_and_rejected_while_down() {
    let s = order_saga(7, State::InMemory, vec![crash(2 * NS_PER_MIN, Some(30 * S))]);
    let res = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    let g = section(&res);
    assert!(res.violations.is_empty(), "{:#?}", res.violations);
    assert!(g["stuck"] > 0.0, "{g:?}");
    assert_eq!(g["stuck"], g["lost"], "everything stuck was lost in the crash");
    assert_eq!(res.ledger.lost as f64, g["lost"]);
    // About 30 s at 5/s found the orchestrator down.
    assert!((100.0..200.0).contains(&g["rejected"]), "{g:?}");
    assert_eq!(res.ledger.rejected as f64, g["rejected"]);
    assert_eq!(g["step_duplicates"], 0.0, "nothing replays in memory");
    // The same crash with durable state: nothing stuck, nothing rejected.
    let s = order_saga(7, State::Durable, vec![crash(2 * NS_PER_MIN, Some(30 * S))]);
    let g = section(&run(&s, RunOptions::default(), &mut |_| {}).results);
    assert_eq!((g["stuck"], g["rejected"]), (0.0, 0.0), "{g:?}");
}

#[test]
fn a_failing_step_compensates_every_completed_step_and_gives_up_after_the_attempts() {
    let mut s = order_saga(11, State::Durable, Vec::new());
    s.workload.classes = vec![("normal".into(), 1.0)];
    for spec in s.services.values_mut() {
        spec.error_rate = 0.0;
    }
    s.services.get_mut("ship").unwrap().error_rate = 1.0;
    s.services.get_mut("refund-payment").unwrap().error_rate = 1.0;
    s.retry = Some(RetrySpec { base: 100 * MS, max_attempts: 3, ..Default::default() });
    s.pattern_table = PatternTable(Some(Arc::new(Settings {
        compensation_attempts: Some(4),
        ..s.pattern_table.get::<Settings>().unwrap().clone()
    })));
    let res = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(res.violations.is_empty(), "{:#?}", res.violations);
    let g = section(&res);
    let n = g["started"];
    assert!(n > 1000.0);
    let calls = |name: &str| res.services[name].calls as f64;
    assert_eq!(calls("ship"), 3.0 * n, "three attempts per saga at the failing step");
    assert_eq!(calls("refund-payment"), 4.0 * n, "compensation_attempts tries, then given up");
    // The refund gave up, and the stock was still released: every compensation is tried.
    assert_eq!(g["failed_compensation"], n);
    assert_eq!(calls("release-stock"), n);
    assert_eq!((g["failed"], g["completed"], g["compensated"]), (n, 0.0, 0.0));
    assert_eq!(res.ledger.dead_lettered as f64, n);
    // Without step retries, one attempt at the failing step.
    s.pattern_table = PatternTable(Some(Arc::new(Settings {
        step_retry: Some(false),
        ..s.pattern_table.get::<Settings>().unwrap().clone()
    })));
    let res = run(&s, RunOptions::default(), &mut |_| {}).results;
    let n = section(&res)["started"];
    assert_eq!(res.services["ship"].calls as f64, n);
}

#[test]
fn a_crash_after_an_effect_and_before_its_checkpoint_runs_the_activity_again() {
    // Slow history writes (30 s) open a wide window between an activity's effect at its
    // service and the record of its result: a crash in it replays the activity.
    let mut s = order_saga(5, State::Durable, vec![crash(3 * NS_PER_MIN, Some(10 * S))]);
    s.workload.classes = vec![("normal".into(), 1.0)];
    s.pattern_table = PatternTable(Some(Arc::new(Settings {
        checkpoint: Some(Dist::Const(30 * S)),
        visibility_timeout: Some(NS_PER_MIN),
        ..s.pattern_table.get::<Settings>().unwrap().clone()
    })));
    let res = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(res.violations.is_empty(), "{:#?}", res.violations);
    let g = section(&res);
    assert!(g["step_duplicates"] > 10.0, "{g:?}");
    assert!(g["replays"] > 100.0, "{g:?}");
    assert_eq!(g["stuck"], 0.0);
    // Every step of every saga took effect at least once; the duplicates on top.
    let effects: u64 = ["reserve-stock", "charge-payment", "ship"]
        .iter()
        .map(|n| res.services[*n].calls - res.services[*n].errors)
        .sum();
    assert!(effects as f64 >= 3.0 * g["completed"] + g["step_duplicates"], "{effects} {g:?}");
}

#[test]
fn durable_sagas_wait_in_the_hub_while_the_orchestrator_is_down_for_good() {
    let s = order_saga(9, State::Durable, vec![crash(NS_PER_MIN, None)]);
    let s = Scenario { drain: Some(10 * NS_PER_MIN), ..s };
    let res = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(res.violations.is_empty(), "{:#?}", res.violations);
    let g = section(&res);
    assert_eq!(g["lost"], 0.0);
    assert!(g["stuck"] > 1000.0, "open at the end: {g:?}");
    assert_eq!(res.ledger.in_flight as f64, g["stuck"], "still in the hub, resumable");
}
