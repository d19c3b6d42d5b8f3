//! The circuit-breaker pattern: its state machines step by step on hand-built call
//! sequences (the reference semantics of Polly v7, Polly v8 and resilience4j), and its
//! guarantees end to end over many seeds.
//!
//! `SIM_SEEDS=N` sets how many seeds the swarm runs (default 100); `SIM_SEED=S` starts there.
//! Every failure names its seed.

mod common;

use sim::dist::Dist;
use sim::model::breaker::{Breaker, Change, Config, Decision, Kind, State};
use sim::patterns::circuit_breaker::{KIND, OnOpen, Scope, Settings};
use sim::rng::Rng;
use sim::spec::table::PatternTable;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::collections::BTreeMap;
use std::sync::Arc;

fn first_seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2000)
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

const S: Nanos = NS_PER_S;
const MS: Nanos = NS_PER_MS;

fn config(kind: Kind) -> Config {
    Config {
        kind,
        failure_threshold: 3,
        break_duration: 5 * S,
        failure_ratio: 0.5,
        sampling_duration: 10 * S,
        minimum_throughput: 10,
        window_size: 10,
        slow_call_duration: S,
        slow_call_ratio: 1.0,
        half_open_calls: 1,
        break_growth: 1.0,
    }
}

fn permitted(d: Decision) -> bool {
    matches!(d, Decision::Call { .. })
}

/// Opens `b` at `at` with failures 1 ms apart; returns when it opened.
fn open(b: &mut Breaker, at: Nanos) -> Nanos {
    let mut t = at;
    loop {
        assert!(permitted(b.before_call(t).0));
        if let Some(Change::Opened { .. }) = b.after_call(t, true, MS) {
            return t;
        }
        t += MS;
    }
}

/// A scenario whose queue, consumers, service, faults and breaker settings are drawn from
/// `seed` (the checkers swarm's generic scenario, with every breaker kind, scope and
/// `on_open`).
fn swarm(seed: u64) -> Scenario {
    let mut r = Rng::stream(seed, "swarm");
    let duration = 5 * NS_PER_MIN;
    let queue = if r.chance(0.5) { QueueSpec::storage_queue() } else { QueueSpec::service_bus() };
    let queue = QueueSpec {
        visibility_timeout: (5 + r.below(30)) * S,
        max_delivery_count: 1 + r.below(6) as u32,
        capacity: if r.chance(0.3) { 50 + r.below(200) } else { 0 },
        ttl: if r.chance(0.3) { Some((30 + r.below(120)) * S) } else { queue.ttl },
        ..queue
    };
    let mut services = BTreeMap::new();
    for name in ["api", "db"] {
        let spec = ServiceSpec {
            latency: Dist::Exp { mean: (5 + r.below(50)) * MS },
            error_rate: r.below(20) as f64 / 100.0,
            timeout: Some((200 + r.below(2000)) * MS),
            max_concurrency: r.chance(0.3).then(|| 1 + r.below(8) as u32),
            over_limit: if r.chance(0.5) {
                OverLimit::Wait
            } else {
                OverLimit::Reject { retry_after: r.chance(0.5).then_some(S) }
            },
        };
        services.insert(name.to_string(), spec);
    }
    let faults = common::swarm_faults(&mut r, duration);
    let kinds = [
        None,
        Some(Kind::Consecutive),
        Some(Kind::Ratio),
        Some(Kind::CountWindow),
        Some(Kind::TimeWindow),
    ];
    let kind = kinds[r.below(5) as usize];
    let polly = kind.is_none_or(Kind::is_polly);
    let settings = Settings {
        target: Some("api".into()),
        kind: Some(kind),
        failure_threshold: Some(1 + r.below(10) as u32),
        break_duration: Some((1 + r.below(30)) * S),
        failure_ratio: Some((1 + r.below(10)) as f64 / 10.0),
        sampling_duration: Some((1 + r.below(30)) * S),
        minimum_throughput: Some(2 + r.below(50) as u32),
        window_size: Some(1 + r.below(50) as u32),
        slow_call_duration: Some((10 + r.below(500)) * MS),
        slow_call_ratio: Some((1 + r.below(10)) as f64 / 10.0),
        half_open_calls: Some(if polly { 1 } else { 1 + r.below(5) as u32 }),
        break_growth: Some(if kind == Some(Kind::Consecutive) {
            1.0
        } else {
            1.0 + r.below(3) as f64
        }),
        scope: Some(if r.chance(0.5) { Scope::Instance } else { Scope::Shared }),
        on_open: Some([OnOpen::Abandon, OnOpen::Fallback, OnOpen::Pause][r.below(3) as usize]),
        fallback: Some(Dist::Exp { mean: (1 + r.below(10)) * MS }),
    };
    Scenario {
        seed,
        duration,
        drain: Some(10 * NS_PER_MIN),
        pattern: KIND,
        pattern_table: PatternTable(Some(Arc::new(settings))),
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
            work: Dist::Exp { mean: (10 + r.below(100)) * MS },
            calls: if r.chance(0.5) { vec!["api".into()] } else { vec!["db".into(), "api".into()] },
            ..Default::default()
        },
        services,
        retry: r.chance(0.5).then(RetrySpec::default),
        faults,
        ..Default::default()
    }
}

#[test]
fn every_breaker_keeps_the_invariants_under_random_faults() {
    for seed in first_seed()..first_seed() + seeds() {
        let s = swarm(seed);
        eprintln!("seed {seed}");
        let r = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
        assert!(r.violations.is_empty(), "seed {seed}: {:#?}\nscenario: {s:#?}", r.violations);
    }
}

// ---- Polly v8 (kind = "ratio") ----

#[test]
fn polly_v8_below_minimum_throughput_a_100_percent_failure_rate_does_not_open() {
    let mut b = Breaker::new(config(Kind::Ratio)); // minimum throughput 10 in 10 s
    for i in 0..9 {
        assert!(permitted(b.before_call(i * MS).0));
        assert_eq!(b.after_call(i * MS, true, MS), None, "failure {} of {}", i + 1, i + 1);
    }
    assert_eq!(b.state(), State::Closed);
    // The 10th failure reaches the minimum throughput: 100 % ≥ 50 %, it opens.
    b.before_call(9 * MS);
    assert_eq!(b.after_call(9 * MS, true, MS), Some(Change::Opened { until: 9 * MS + 5 * S }));
}

#[test]
fn polly_v8_failures_older_than_the_sampling_duration_no_longer_count() {
    let mut b = Breaker::new(config(Kind::Ratio)); // 10 sub-windows of 1 s
    for i in 0..9 {
        b.before_call(i * MS);
        b.after_call(i * MS, true, MS); // all in the sub-window opened at 0
    }
    // 10 s after that sub-window opened it is dropped: this failure is alone.
    b.before_call(10 * S);
    assert_eq!(b.after_call(10 * S, true, MS), None);
    assert_eq!(b.state(), State::Closed);
    // Many successes lower the ratio: 9 failures + 1 = 10 failures of 21 calls < 50 %.
    let mut b = Breaker::new(config(Kind::Ratio));
    for i in 0..11 {
        b.before_call(i * MS);
        b.after_call(i * MS, false, MS);
    }
    for i in 11..21 {
        b.before_call(i * MS);
        assert_eq!(b.after_call(i * MS, true, MS), None);
    }
    b.before_call(21 * MS);
    assert!(b.after_call(21 * MS, true, MS).is_some(), "11 failures of 22: 50 % opens it");
}

#[test]
fn polly_v8_half_open_lets_exactly_one_probe_through() {
    let mut b = Breaker::new(config(Kind::Ratio));
    let opened = open(&mut b, 0);
    let over = opened + 5 * S;
    // Open: every call is rejected, with the time left as RetryAfter.
    assert_eq!(b.before_call(opened + S).0, Decision::Rejected { retry_after: 4 * S });
    assert_eq!(b.before_call(over - 1).0, Decision::Rejected { retry_after: 1 });
    // No timer: still Open until a call comes; the first call after the break is the probe.
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.before_call(over), (Decision::Call { probe: true }, Some(Change::HalfOpened)));
    assert_eq!(b.state(), State::HalfOpen);
    // Every other call is rejected while the probe is out, even one break later (v8 lets no
    // second probe through; the break was pushed forward by one break duration).
    for t in [over, over + S, over + 5 * S, over + 60 * S] {
        assert!(matches!(b.before_call(t).0, Decision::Rejected { .. }), "at {t}");
    }
    assert_eq!(b.before_call(over + S).0, Decision::Rejected { retry_after: 4 * S });
    // The probe succeeds: closed, and the metrics start again.
    assert_eq!(b.after_call(over + 61 * S, false, MS), Some(Change::Closed));
    assert_eq!(b.before_call(over + 61 * S).0, Decision::Call { probe: false });
    for i in 0..9 {
        b.before_call(over + 61 * S + i);
        assert_eq!(b.after_call(over + 61 * S + i, true, MS), None, "metrics were reset");
    }
}

#[test]
fn polly_v8_a_failed_probe_opens_again_and_the_break_can_grow() {
    let mut b = Breaker::new(config(Kind::Ratio));
    let opened = open(&mut b, 0);
    let t1 = opened + 5 * S;
    assert!(permitted(b.before_call(t1).0));
    assert_eq!(b.after_call(t1 + MS, true, MS), Some(Change::Opened { until: t1 + MS + 5 * S }));
    // BreakDurationGenerator with the half-open attempts: 5 s, then 10 s, 20 s, 40 s.
    let mut b = Breaker::new(Config { break_growth: 2.0, ..config(Kind::Ratio) });
    let mut at = open(&mut b, 0) + 5 * S;
    for grown in [10, 20, 40] {
        assert_eq!(b.before_call(at).1, Some(Change::HalfOpened));
        assert_eq!(b.after_call(at, true, MS), Some(Change::Opened { until: at + grown * S }));
        at += grown * S;
    }
}

#[test]
fn polly_v8_outcomes_of_calls_made_before_the_break_change_nothing() {
    let mut b = Breaker::new(config(Kind::Ratio));
    // Three calls start while closed...
    for _ in 0..3 {
        assert!(permitted(b.before_call(0).0));
    }
    let opened = open(&mut b, MS);
    let until = b.blocked_until();
    // ...and end while open: a failure does not extend the break, a success does not close.
    assert_eq!(b.after_call(opened + S, true, MS), None);
    assert_eq!(b.after_call(opened + 2 * S, false, MS), None);
    assert_eq!((b.state(), b.blocked_until()), (State::Open, until));
    // One that ends while half-open decides, as the probe would.
    b.before_call(until);
    assert_eq!(b.after_call(until, false, MS), Some(Change::Closed));
}

#[test]
fn polly_v8_trips_only_when_a_failure_arrives() {
    let mut b = Breaker::new(config(Kind::Ratio));
    for i in 0..9 {
        b.before_call(i);
        b.after_call(i, true, MS);
    }
    b.before_call(9);
    assert_eq!(b.after_call(9, false, MS), None, "9 of 10 failed, but this one succeeded");
    b.before_call(10);
    assert!(b.after_call(10, true, MS).is_some());
}

// ---- Polly v7 (kind = "consecutive") ----

#[test]
fn polly_v7_opens_after_n_failures_in_a_row() {
    let mut b = Breaker::new(config(Kind::Consecutive)); // 3 in a row
    for (t, failed) in [(0, true), (1, true), (2, false), (3, true), (4, true)] {
        b.before_call(t);
        assert_eq!(b.after_call(t, failed, MS), None, "at {t}");
    }
    b.before_call(5);
    assert_eq!(b.after_call(5, true, MS), Some(Change::Opened { until: 5 + 5 * S }));
}

#[test]
fn polly_v7_half_open_lets_one_probe_through_per_break_so_a_hung_probe_allows_another() {
    let mut b = Breaker::new(config(Kind::Consecutive));
    let over = open(&mut b, 0) + 5 * S;
    assert!(matches!(b.before_call(over - 1).0, Decision::Rejected { .. }));
    assert_eq!(b.before_call(over), (Decision::Call { probe: true }, Some(Change::HalfOpened)));
    assert!(matches!(b.before_call(over).0, Decision::Rejected { .. }));
    assert!(matches!(b.before_call(over + 5 * S - 1).0, Decision::Rejected { .. }));
    // The first probe has not answered: one break later a second one goes through.
    assert_eq!(b.before_call(over + 5 * S), (Decision::Call { probe: true }, None));
    assert_eq!(b.after_call(over + 5 * S + 1, false, MS), Some(Change::Closed));
}

// ---- resilience4j (kind = "count-window" / "time-window") ----

#[test]
fn resilience4j_half_open_permits_its_calls_and_decides_once_all_have_answered() {
    let c = Config { half_open_calls: 3, ..config(Kind::CountWindow) };
    let mut b = Breaker::new(c.clone());
    let end = open(&mut b, 0) + 5 * S;
    // resilience4j moves to half-open once the clock is strictly after the wait.
    assert_eq!(b.before_call(end), (Decision::Rejected { retry_after: 0 }, None));
    let over = end + 1;
    assert_eq!(b.before_call(over), (Decision::Call { probe: true }, Some(Change::HalfOpened)));
    assert_eq!(b.before_call(over).0, Decision::Call { probe: true });
    assert_eq!(b.before_call(over).0, Decision::Call { probe: true });
    assert_eq!(
        b.before_call(over).0,
        Decision::Rejected { retry_after: 0 },
        "a 4th is not let through"
    );
    assert_eq!(b.after_call(over + 1, true, MS), None);
    assert_eq!(b.after_call(over + 2, false, MS), None);
    // 1 failure of 3 (33 %) is under 50 %: closed.
    assert_eq!(b.after_call(over + 3, false, MS), Some(Change::Closed));
    // 2 of 3 (67 %): open again.
    let mut b = Breaker::new(c);
    let over = open(&mut b, 0) + 5 * S + 1;
    for _ in 0..3 {
        b.before_call(over);
    }
    b.after_call(over, true, MS);
    b.after_call(over, false, MS);
    assert_eq!(b.after_call(over, true, MS), Some(Change::Opened { until: over + 5 * S }));
}

#[test]
fn resilience4j_half_open_decides_after_the_minimum_when_it_is_smaller() {
    // The half-open window's minimum is min(minimumNumberOfCalls, permitted calls).
    let c = Config { half_open_calls: 5, minimum_throughput: 2, ..config(Kind::CountWindow) };
    let mut b = Breaker::new(c);
    let opened = open(&mut b, 0);
    let over = opened + 5 * S + 1;
    for _ in 0..5 {
        assert!(permitted(b.before_call(over).0));
    }
    assert_eq!(b.after_call(over, false, MS), None);
    assert_eq!(b.after_call(over, false, MS), Some(Change::Closed), "2 answers decide");
}

#[test]
fn resilience4j_count_window_minimum_is_at_most_the_window_size() {
    let c = Config { minimum_throughput: 100, window_size: 5, ..config(Kind::CountWindow) };
    let mut b = Breaker::new(c);
    for t in 0..4 {
        b.before_call(t);
        assert_eq!(b.after_call(t, true, MS), None);
    }
    b.before_call(4);
    assert!(b.after_call(4, true, MS).is_some(), "min(100, 5) = 5 calls are enough");
}

#[test]
fn resilience4j_time_window_needs_its_full_minimum() {
    let c = Config { minimum_throughput: 20, window_size: 5, ..config(Kind::TimeWindow) };
    let mut b = Breaker::new(c);
    for i in 0..19 {
        b.before_call(i * MS);
        assert_eq!(b.after_call(i * MS, true, MS), None);
    }
    b.before_call(19 * MS);
    assert!(b.after_call(19 * MS, true, MS).is_some());
}

#[test]
fn resilience4j_slow_calls_open_it_even_when_they_succeed() {
    let c = Config { slow_call_ratio: 0.5, ..config(Kind::CountWindow) }; // slow: > 1 s
    let mut b = Breaker::new(c);
    for t in 0..5 {
        b.before_call(t);
        assert_eq!(b.after_call(t, false, S), None, "exactly 1 s is not slow");
    }
    for t in 5..9 {
        b.before_call(t);
        assert_eq!(b.after_call(t, false, S + 1), None, "{} slow of {}", t - 4, t + 1);
    }
    b.before_call(9);
    assert!(b.after_call(9, false, S + 1).is_some(), "5 slow of 10 = 50 %, on a success");
}

// ---- end to end ----

/// Orders through a Polly v8 breaker per instance; the payments API is down from 5 to
/// 5 + `outage_min` minutes.
fn outage(seed: u64, kind: Option<Kind>, on_open: OnOpen, outage_min: u64) -> Scenario {
    let mut services = BTreeMap::new();
    services.insert(
        "payments".to_string(),
        ServiceSpec {
            latency: Dist::Exp { mean: 50 * MS },
            error_rate: 0.01,
            timeout: Some(5 * S),
            ..Default::default()
        },
    );
    let settings = Settings {
        kind: Some(kind),
        on_open: Some(on_open),
        minimum_throughput: Some(20),
        ..Default::default()
    };
    Scenario {
        seed,
        duration: 20 * NS_PER_MIN,
        pattern: KIND,
        pattern_table: PatternTable(Some(Arc::new(settings))),
        workload: WorkloadSpec { rate_per_s: 20.0, ..Default::default() },
        queue: QueueSpec { max_delivery_count: 5, ..QueueSpec::service_bus() },
        consumer: ConsumerSpec {
            instances: 2,
            concurrency: 8,
            batch_size: 4,
            work: Dist::Exp { mean: 20 * MS },
            calls: vec!["payments".into()],
            ..Default::default()
        },
        services,
        faults: vec![FaultSpec {
            target: "payments".into(),
            kind: FaultKind::Outage { from: 5 * NS_PER_MIN, to: (5 + outage_min) * NS_PER_MIN },
        }],
        ..Default::default()
    }
}

fn checked(s: &Scenario) -> sim::results::RunResults {
    let r = run(s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(r.violations.is_empty(), "seed {}: {:#?}", s.seed, r.violations);
    r
}

fn breaker(r: &sim::results::RunResults, field: &str) -> f64 {
    r.sections["breaker"][field]
}

#[test]
fn abandoning_on_open_dead_letters_a_long_outage_and_pausing_does_not() {
    for seed in first_seed()..first_seed() + 5 {
        let abandon = checked(&outage(seed, Some(Kind::Ratio), OnOpen::Abandon, 5));
        let pause = checked(&outage(seed, Some(Kind::Ratio), OnOpen::Pause, 5));
        // Each rejected delivery is abandoned at once: 5 deliveries go in milliseconds.
        assert!(abandon.ledger.dead_lettered > 100, "seed {seed}: {:?}", abandon.ledger);
        assert!(breaker(&abandon, "abandoned") > 0.0);
        // Pausing the listener keeps the messages in the queue until a probe succeeds. What
        // it still dead-letters: messages that failed before the breaker opened, and each
        // probe message after max_delivery_count failed probes.
        let l = pause.ledger;
        assert_eq!(l.lost + l.in_flight, 0, "seed {seed}: {l:?}");
        assert_eq!(l.completed + l.dead_lettered, l.produced, "seed {seed}");
        let probe_dead = breaker(&pause, "probes") / 5.0; // max_delivery_count 5
        assert!((l.dead_lettered as f64) < probe_dead + 30.0, "seed {seed}: {l:?}");
        assert!(l.dead_lettered * 50 < abandon.ledger.dead_lettered, "seed {seed}");
        assert!(breaker(&pause, "short_circuited") < 10.0, "the listener took one probe at a time");
        assert!(breaker(&pause, "opened") > 0.0 && breaker(&pause, "closed") > 0.0);
        assert!(breaker(&pause, "recovery_s") <= 5.0 + 1.0, "seed {seed}: one break at most");
    }
}

#[test]
fn a_breaker_spares_calls_to_a_dead_service_and_a_fallback_completes_every_message() {
    let seed = first_seed();
    let none = checked(&outage(seed, None, OnOpen::Fallback, 5));
    let ratio = checked(&outage(seed, Some(Kind::Ratio), OnOpen::Fallback, 5));
    let calls = |r: &sim::results::RunResults| r.services["payments"].calls;
    assert!(calls(&ratio) * 10 < calls(&none) * 9, "{} vs {}", calls(&ratio), calls(&none));
    assert_eq!(breaker(&none, "opened") + breaker(&none, "short_circuited"), 0.0);
    // A failed call (before the breaker opens, or a failed probe) still gives the message
    // back; everything else completes.
    let l = ratio.ledger;
    assert_eq!(l.completed + l.dead_lettered, l.produced, "seed {seed}");
    assert!(l.dead_lettered * 100 < l.produced, "seed {seed}: {l:?}");
    assert_eq!(breaker(&ratio, "fallbacks"), breaker(&ratio, "short_circuited"));
    assert!(breaker(&ratio, "fallbacks") > 1000.0);
}

#[test]
fn one_shared_breaker_opens_less_often_than_one_per_instance() {
    let seed = first_seed();
    let mut per_instance = outage(seed, Some(Kind::Consecutive), OnOpen::Abandon, 5);
    per_instance.consumer.instances = 4;
    let mut shared = per_instance.clone();
    let settings = Settings {
        kind: Some(Some(Kind::Consecutive)),
        scope: Some(Scope::Shared),
        ..Default::default()
    };
    shared.pattern_table = PatternTable(Some(Arc::new(settings)));
    let a = checked(&per_instance);
    let b = checked(&shared);
    assert!(breaker(&b, "opened") < breaker(&a, "opened"), "{:?} vs {:?}", b.sections, a.sections);
    assert!(b.services["payments"].calls < a.services["payments"].calls);
}

#[test]
fn the_books_checker_catches_a_second_probe_and_a_call_that_skipped_the_breaker() {
    let s = outage(first_seed(), Some(Kind::Ratio), OnOpen::Fallback, 1);
    let r = checked(&s);
    let judge = |edit: &dyn Fn(&mut sim::results::RunResults)| {
        let mut r = r.clone();
        edit(&mut r);
        let mut c = (sim::patterns::circuit_breaker::PATTERN.checkers)(&s);
        sim::check::verdicts(&mut c, &r).into_iter().map(|v| v.message).collect::<Vec<_>>()
    };
    assert!(judge(&|_| {}).is_empty());
    let found =
        judge(&|r| *r.sections.get_mut("breaker").unwrap().get_mut("probes").unwrap() += 1.0);
    assert!(found.iter().any(|m| m.contains("probes for")), "{found:?}");
    let found = judge(&|r| r.services.get_mut("payments").unwrap().calls += 1);
    assert!(found.iter().any(|m| m.contains("through the breaker")), "{found:?}");
    let found =
        judge(&|r| *r.sections.get_mut("breaker").unwrap().get_mut("closed").unwrap() += 1e6);
    assert!(found.iter().any(|m| m.contains("closed")), "{found:?}");
}
