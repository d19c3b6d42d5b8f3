//! The fan-out pattern: Event Grid's retry schedule step by step on one event, what each
//! answer leads to (400 never retried, 503 after 30 s, no answer in 30 s), the TTL and
//! `max_attempts` limits, dead-letter vs drop, probation, isolation of one subscriber's outage
//! from the others, and the checkers over many seeds with random faults and settings.
//! `SIM_SEED=N` replays one seed; `SIM_SEEDS=N` sets how many.

mod common;

use sim::check::Checker;
use sim::dist::Dist;
use sim::ledger::{Exit, Holder};
use sim::model::meters::{Event, TraceEvent};
use sim::patterns::fan_out::{DeliveryPolicy, Settings, SubscriptionSettings, subscriptions};
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

fn sub(name: &str, endpoint: &str, types: &[&str]) -> SubscriptionSettings {
    SubscriptionSettings {
        name: name.into(),
        endpoint: endpoint.into(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

fn table(subs: Vec<SubscriptionSettings>) -> PatternTable {
    PatternTable(Some(Arc::new(Settings { subscriptions: Some(subs) })))
}

/// An endpoint with no timeout of its own (Event Grid's 30 s applies).
fn service(latency: Dist, error_rate: f64) -> ServiceSpec {
    ServiceSpec { latency, error_rate, ..Default::default() }
}

/// One event of class `created` at t = 0, to one subscription `s` on endpoint `api`.
fn one_event(s: SubscriptionSettings, api: ServiceSpec, faults: Vec<FaultSpec>) -> Scenario {
    Scenario {
        seed: 5,
        duration: NS_PER_S,
        pattern: sim::patterns::fan_out::KIND,
        pattern_table: table(vec![s]),
        workload: WorkloadSpec {
            arrivals: Arrivals::Trace { source: "test".into(), times: vec![0] },
            classes: vec![("created".into(), 1.0)],
            ..Default::default()
        },
        services: BTreeMap::from([("api".to_string(), api)]),
        faults,
        ..Default::default()
    }
}

fn outage(target: &str, from: Nanos, to: Nanos) -> FaultSpec {
    FaultSpec { target: target.into(), kind: FaultKind::Outage { from, to } }
}

fn traced(s: &Scenario) -> (RunResults, Vec<TraceEvent>) {
    let r = run(s, RunOptions { trace: true, checks: true, ..Default::default() }, &mut |_| {});
    assert!(r.results.violations.is_empty(), "{:?}", r.results.violations);
    (r.results, r.trace)
}

/// When each attempt of message `id` started.
fn attempts(trace: &[TraceEvent], id: u64) -> Vec<Nanos> {
    trace
        .iter()
        .filter(|e| e.id == id && matches!(e.what, Event::Delivered { .. }))
        .map(|e| e.t)
        .collect()
}

fn field(r: &RunResults, name: &str) -> f64 {
    r.sections["fan_out"].get(name).copied().unwrap_or_else(|| panic!("no field {name}"))
}

fn exit_of(trace: &[TraceEvent], id: u64) -> Option<Exit> {
    trace.iter().find_map(|e| match e.what {
        Event::Left(x) if e.id == id => Some(x),
        _ => None,
    })
}

/// The gaps between attempts, each within ±10 % of the expected step (in seconds).
fn assert_steps(times: &[Nanos], steps: &[u64]) {
    assert!(times.len() > steps.len(), "{} attempts: {times:?}", times.len());
    for (i, (w, step)) in times.windows(2).zip(steps).enumerate() {
        let gap = (w[1] - w[0]) as f64 / NS_PER_S as f64;
        let s = *step as f64;
        // the previous attempt's answer takes its latency (<= 1 ms here)
        assert!(
            gap >= s * 0.9 && gap <= s * 1.1 + 0.01,
            "retry {}: {gap} s, expected {s} s ±10 %",
            i + 1
        );
    }
}

#[test]
fn a_failing_endpoint_is_retried_on_event_grids_schedule() {
    // error_rate 1: every answer is a 500, retried after 10 s, 30 s, 1 min, 5 min, ...
    let api = service(Dist::Const(NS_PER_MS), 1.0);
    let s = SubscriptionSettings { max_attempts: Some(8), ..sub("s", "api", &[]) };
    let (r, trace) = traced(&one_event(s, api.clone(), vec![]));
    let times = attempts(&trace, 0);
    assert_eq!(times.len(), 8, "max_attempts 8");
    assert_steps(&times, &[10, 30, 60, 300, 600, 1800, 3600]);
    // given up after the 8th attempt; no dead-letter destination: dropped (lost)
    assert_eq!(exit_of(&trace, 0), Some(Exit::Lost));
    assert_eq!((field(&r, "s.dropped"), field(&r, "s.retried")), (1.0, 7.0));
    assert_eq!(r.ledger.lost, 1);
    // Event Grid's defaults: 30 attempts "or" 24 h: the schedule reaches its 11th attempt
    // after ~22.8 h, and the 12th would be due after the TTL: the TTL ends it first
    let mut sc = one_event(sub("s", "api", &[]), api, vec![]);
    sc.drain = Some(2 * NS_PER_DAY);
    let (r, trace) = traced(&sc);
    let times = attempts(&trace, 0);
    assert_eq!(times.len(), 11);
    assert_steps(&times, &[10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200]);
    assert_eq!(exit_of(&trace, 0), Some(Exit::Expired));
    assert_eq!(r.ledger.expired, 1);
}

#[test]
fn a_503_waits_at_least_30_seconds() {
    // an outage answers 503: the first two retries wait 30 s (not 10 s), then the schedule
    let api = service(Dist::Const(NS_PER_MS), 0.0);
    let s = sub("s", "api", &[]);
    let (r, trace) = traced(&one_event(s, api, vec![outage("api", 0, 200 * NS_PER_S)]));
    let times = attempts(&trace, 0);
    assert_steps(&times, &[30, 30, 60, 300]);
    // the fifth attempt (after ~7 min) finds the endpoint back
    assert_eq!(times.len(), 5);
    assert_eq!(exit_of(&trace, 0), Some(Exit::Completed));
    assert_eq!(field(&r, "s.delivered"), 1.0);
    let e2e = r.latency["end_to_end"].max_ns() as f64 / NS_PER_S as f64;
    assert!((380.0..460.0).contains(&e2e), "{e2e}");
}

#[test]
fn a_bad_request_is_never_retried() {
    let api = service(Dist::Const(NS_PER_MS), 0.0);
    for dead_letter in [false, true] {
        let s = SubscriptionSettings { dead_letter: Some(dead_letter), ..sub("s", "api", &[]) };
        let mut sc = one_event(s, api.clone(), vec![]);
        sc.workload.classes = vec![("poison".into(), 1.0)];
        let (r, trace) = traced(&sc);
        assert_eq!(attempts(&trace, 0).len(), 1);
        let (exit, field_name) = if dead_letter {
            (Exit::DeadLettered, "s.dead_lettered")
        } else {
            (Exit::Lost, "s.dropped")
        };
        assert_eq!(exit_of(&trace, 0), Some(exit));
        assert_eq!(field(&r, field_name), 1.0);
        assert_eq!(field(&r, "s.retried"), 0.0);
    }
}

#[test]
fn the_ttl_is_checked_when_a_retry_comes_due() {
    // TTL 20 min, the endpoint down for an hour: attempts at 0, 30 s, 1 min, 2 min, 7 min,
    // 17 min fail; the next is due at ~47 min, past the TTL: the event is expired then, not
    // at 20 min, and never attempted after its TTL.
    let api = service(Dist::Const(NS_PER_MS), 0.0);
    for dead_letter in [false, true] {
        let s = SubscriptionSettings {
            event_ttl: Some(20 * NS_PER_MIN),
            dead_letter: Some(dead_letter),
            ..sub("s", "api", &[])
        };
        let (r, trace) = traced(&one_event(s, api.clone(), vec![outage("api", 0, NS_PER_H)]));
        let times = attempts(&trace, 0);
        assert_eq!(times.len(), 6, "{times:?}");
        assert!(times.iter().all(|&t| t < 20 * NS_PER_MIN));
        let left = trace.iter().find(|e| matches!(e.what, Event::Left(_))).expect("left").t;
        assert!(left > 40 * NS_PER_MIN && left < 55 * NS_PER_MIN, "left at {left}");
        let expected = if dead_letter { Exit::DeadLettered } else { Exit::Expired };
        assert_eq!(exit_of(&trace, 0), Some(expected));
        assert_eq!(r.ledger.expired, u64::from(!dead_letter));
    }
}

#[test]
fn an_answer_after_30_seconds_is_a_timeout_and_may_still_count() {
    // 35 s to answer: Event Grid stops waiting at 30 s and queues a retry (due ~40 s);
    // the late success at 35 s takes the event out of the retry queue.
    let api = service(Dist::Const(35 * NS_PER_S), 0.0);
    let s = sub("s", "api", &[]);
    let (r, trace) = traced(&one_event(s.clone(), api, vec![]));
    assert_eq!(attempts(&trace, 0).len(), 1);
    assert_eq!(exit_of(&trace, 0), Some(Exit::Completed));
    assert_eq!(
        r.latency["end_to_end"].max_ns(),
        r.latency["end_to_end"].hist.highest_equivalent(35 * NS_PER_S)
    );
    assert_eq!(field(&r, "s.duplicates"), 0.0);
    // 200 s to answer: past the 3 minutes in which a late answer still counts; Event Grid
    // keeps retrying (each attempt times out) and every late success is a duplicate effect
    let api = service(Dist::Const(200 * NS_PER_S), 0.0);
    let s = SubscriptionSettings { max_attempts: Some(4), ..s };
    let (r, trace) = traced(&one_event(s, api, vec![]));
    assert_eq!(attempts(&trace, 0).len(), 4);
    assert_eq!(exit_of(&trace, 0), Some(Exit::Lost));
    assert_eq!(field(&r, "s.duplicates"), 4.0);
    assert_eq!(r.ledger.duplicates, 4);
}

/// An orders topic: billing takes both types, email only `created`, audit only
/// `cancelled`; email's endpoint may be down.
fn topic(seed: u64, email_down: bool) -> Scenario {
    let api = |mean| service(Dist::Exp { mean: mean * NS_PER_MS }, 0.01);
    Scenario {
        seed,
        duration: 30 * NS_PER_MIN,
        pattern: sim::patterns::fan_out::KIND,
        pattern_table: table(vec![
            sub("billing", "billing-api", &[]),
            SubscriptionSettings {
                dead_letter: Some(true),
                ..sub("email", "email-api", &["created"])
            },
            sub("audit", "audit-api", &["cancelled"]),
        ]),
        workload: WorkloadSpec {
            rate_per_s: 20.0,
            classes: vec![("created".into(), 0.8), ("cancelled".into(), 0.2)],
            ..Default::default()
        },
        services: BTreeMap::from([
            ("billing-api".to_string(), api(50)),
            ("email-api".to_string(), api(200)),
            ("audit-api".to_string(), api(20)),
        ]),
        faults: if email_down {
            vec![outage("email-api", 5 * NS_PER_MIN, 15 * NS_PER_MIN)]
        } else {
            vec![]
        },
        ..Default::default()
    }
}

#[test]
fn an_outage_of_one_subscriber_delays_nobody_else() {
    let calm = run(&topic(3, false), RunOptions::default(), &mut |_| {}).results;
    let storm = run(&topic(3, true), RunOptions::default(), &mut |_| {}).results;
    let (c, s) = (&calm.sections["fan_out"], &storm.sections["fan_out"]);
    for name in ["billing", "audit"] {
        for (k, v) in c.iter().filter(|(k, _)| k.starts_with(&format!("{name}."))) {
            assert_eq!(s[k], *v, "{k}: {} with email down, {v} without", s[k]);
        }
    }
    // email itself paid for its outage
    let p99 = |x: &BTreeMap<String, f64>| x["email.latency.p99_ms"];
    assert!(p99(s) > 60_000.0 && p99(c) < 5_000.0, "{} vs {}", p99(s), p99(c));
    assert!(s["email.retried"] > 10.0 * c["email.retried"]);
    assert_eq!(s["email.delivered"], s["email.matched"], "all delivered after the outage");
    // while it failed, the subscription was on probation (about the outage's 10 minutes)
    assert!((550.0..=620.0).contains(&s["email.probation_s"]), "{}", s["email.probation_s"]);
}

#[test]
fn each_event_becomes_one_copy_per_matching_subscription() {
    let mut s = topic(4, false);
    // a class no subscription takes but billing's, then one nobody takes
    s.pattern_table = table(vec![sub("email", "email-api", &["created"])]);
    let r = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let f = &r.sections["fan_out"];
    assert_eq!(f["published"], f["email.matched"] + f["unmatched"]);
    assert!(f["unmatched"] > 0.0);
    assert_eq!(r.ledger.produced as f64, f["email.matched"]);
    let r = run(&topic(4, false), RunOptions::default(), &mut |_| {}).results;
    let f = &r.sections["fan_out"];
    // billing takes all, email the created, audit the cancelled: two copies per event
    assert_eq!(f["billing.matched"], f["published"]);
    assert_eq!(f["email.matched"] + f["audit.matched"], f["published"]);
    assert_eq!(r.ledger.produced as f64, 2.0 * f["published"]);
    assert_eq!(f["unmatched"], 0.0);
}

#[test]
fn without_the_table_every_called_service_is_a_subscription() {
    let mut s = topic(5, false);
    s.pattern_table = PatternTable(None);
    s.consumer.calls = vec!["billing-api".into(), "audit-api".into()];
    let subs = subscriptions(&s);
    assert_eq!(subs.len(), 2);
    assert!(subs.iter().all(|x| x.name == x.endpoint && x.receives.iter().all(|&r| r)));
    assert!(subs.iter().all(|x| x.max_attempts == 30 && x.ttl == NS_PER_DAY && !x.dead_letter));
    let r = run(&s, RunOptions::default(), &mut |_| {}).results;
    assert_eq!(r.ledger.produced as f64, 2.0 * r.sections["fan_out"]["published"]);
    // no calls either: one subscription `consumer` pushing to a function that does
    // `[consumer] work`, instances × concurrency at once and 429 beyond
    s.consumer.calls = vec![];
    s.consumer.work = Dist::Const(300 * NS_PER_MS);
    (s.consumer.instances, s.consumer.concurrency) = (1, 4); // ~13/s against 20/s
    s.duration = 2 * NS_PER_MIN;
    let subs = subscriptions(&s);
    assert_eq!(
        (subs.len(), subs[0].name.as_str(), subs[0].endpoint.as_str()),
        (1, "consumer", "consumer")
    );
    let r = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let f = &r.sections["fan_out"];
    assert_eq!(f["consumer.matched"], f["published"]);
    assert!(f["consumer.retried"] > 100.0, "429s are retried: {f:?}");
    assert_eq!(f["consumer.delivered"], f["consumer.matched"], "all delivered in the drain");
    assert!(!r.services.contains_key("consumer"), "not one of the scenario's services");
}

#[test]
fn the_delivery_policy_checker_catches_attempts_out_of_policy() {
    let subs = subscriptions(&one_event(
        SubscriptionSettings {
            max_attempts: Some(3),
            event_ttl: Some(NS_PER_H),
            ..sub("s", "api", &[])
        },
        ServiceSpec::default(),
        vec![],
    ));
    let ev = |t, id, class, what| TraceEvent { t, id, class, what };
    let cases: [(Vec<TraceEvent>, bool); 5] = [
        (
            vec![
                ev(0, 0, 0, Event::Admitted(Holder::Queue)),
                ev(10, 0, 0, Event::Delivered { count: 3 }),
            ],
            true,
        ),
        (
            vec![
                ev(0, 0, 0, Event::Admitted(Holder::Queue)),
                ev(1, 0, 0, Event::Delivered { count: 4 }),
            ],
            false,
        ),
        (
            vec![
                ev(0, 0, 0, Event::Admitted(Holder::Queue)),
                ev(1, 0, 0, Event::Note("bad_request")),
            ],
            false,
        ),
        (
            vec![
                ev(0, 0, 0, Event::Admitted(Holder::Queue)),
                ev(NS_PER_H, 0, 0, Event::Delivered { count: 2 }),
            ],
            false,
        ),
        (
            vec![
                ev(0, 0, 1, Event::Admitted(Holder::Queue)),
                ev(9, 0, 1, Event::Note("bad_request")),
                ev(9, 0, 1, Event::Delivered { count: 2 }),
            ],
            false,
        ),
    ];
    for (events, ok) in cases {
        let mut c = DeliveryPolicy::new(&subs, Some(1));
        for e in &events {
            c.observe(e);
        }
        let mut out = Vec::new();
        c.finish(&run(&topic(1, false), RunOptions::default(), &mut |_| {}).results, &mut out);
        assert_eq!(out.is_empty(), ok, "{events:?}: {out:?}");
    }
}

/// Subscriptions, their settings, the endpoints' behaviour and the faults, all drawn from
/// the seed.
fn swarm(seed: u64) -> Scenario {
    let mut r = Rng::stream(seed, "fan-out-swarm");
    let duration = 5 * NS_PER_MIN;
    let mut services = BTreeMap::new();
    let mut faults = Vec::new();
    let mut subs = Vec::new();
    for i in 0..1 + r.below(3) {
        let name = format!("api{i}");
        let mut svc = common::swarm_service(&mut r);
        if r.chance(0.2) {
            svc.latency = Dist::Exp { mean: 20 * NS_PER_S }; // answers after 30 s now and then
            svc.timeout = None;
        }
        services.insert(name.clone(), svc);
        for mut f in common::swarm_faults(&mut r, duration) {
            if f.target == "api" {
                f.target = name.clone();
                faults.push(f);
            }
        }
        let types: &[&str] = match r.below(3) {
            0 => &[],
            1 => &["normal"],
            _ => &["normal", "poison"],
        };
        subs.push(SubscriptionSettings {
            max_attempts: r.chance(0.5).then(|| 1 + r.below(30) as u32),
            event_ttl: r.chance(0.5).then(|| (1 + r.below(20)) * NS_PER_MIN),
            dead_letter: r.chance(0.5).then(|| r.chance(0.5)),
            ..sub(&format!("s{i}"), &name, types)
        });
    }
    Scenario {
        seed,
        duration,
        drain: Some(if r.chance(0.5) { 30 * NS_PER_MIN } else { 5 * NS_PER_MIN }),
        pattern: sim::patterns::fan_out::KIND,
        pattern_table: table(subs),
        workload: WorkloadSpec {
            rate_per_s: 5.0 + r.below(40) as f64,
            classes: vec![("normal".into(), 0.95), ("poison".into(), 0.05)],
            ..Default::default()
        },
        services,
        faults,
        ..Default::default()
    }
}

#[test]
fn the_checkers_hold_over_many_seeds_with_random_faults_and_settings() {
    for seed in seed()..seed() + seeds() {
        let s = swarm(seed);
        let r = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
        assert!(
            r.violations.is_empty(),
            "fan-out, seed {seed} (SIM_SEED={seed} to replay): {:?}",
            r.violations
        );
        // every copy left or is still pending: nothing is lost without a reason
        let f = &r.sections["fan_out"];
        let settled: f64 = subscriptions(&s)
            .iter()
            .map(|x| {
                ["delivered", "dead_lettered", "dropped"]
                    .map(|k| f[&format!("{}.{k}", x.name)])
                    .iter()
                    .sum::<f64>()
            })
            .sum();
        assert_eq!(settled + r.ledger.in_flight as f64, r.ledger.produced as f64, "seed {seed}");
    }
}
