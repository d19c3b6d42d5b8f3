//! The transactional outbox: its guarantees over many seeds with crashes of the producer, the
//! relay and the consumers at random times (to the nanosecond, so between any two steps), and
//! the losses and duplicates of the designs that lack them.
//!
//! `SIM_SEEDS=N` sets how many seeds each test runs (default 100); `SIM_SEED=S` starts there.

use sim::check::Checker;
use sim::dist::Dist;
use sim::ledger::{Event, Exit, Holder, TraceEvent};
use sim::patterns::outbox::{self, Design, ExactlyOnceEffect, Settings};
use sim::results::RunResults;
use sim::rng::Rng;
use sim::spec::table::PatternTable;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::sync::Arc;

fn first_seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2000)
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

/// A five-minute outbox run at 20 to 60 requests a second, with the given design and
/// consumer, and crashes drawn from `seed`: each of the producer, the relay and the consumer
/// pool crashes 0 to 3 times at a random nanosecond and comes back 1 to 30 s later.
fn scenario(seed: u64, design: Design, idempotent: bool, publish: Dist) -> Scenario {
    let mut r = Rng::stream(seed, "outbox-test");
    let duration = 5 * NS_PER_MIN;
    let mut faults = Vec::new();
    for target in ["producer", "relay", "consumer"] {
        for _ in 0..r.below(4) {
            let at = r.below(duration);
            let restart_after = Some((1 + r.below(30)) * NS_PER_S);
            faults.push(FaultSpec {
                target: target.into(),
                kind: FaultKind::Crash { at, instances: 1, restart_after },
            });
        }
    }
    let settings = Settings {
        design: Some(design),
        relay_interval: Some((100 + r.below(2000)) * NS_PER_MS),
        relay_batch: Some(1 + r.below(200) as u32),
        idempotent_consumer: Some(idempotent),
        broker_latency: Some(publish),
        broker: None,
    };
    Scenario {
        seed,
        duration,
        drain: Some(NS_PER_H),
        pattern: outbox::KIND,
        pattern_table: PatternTable(Some(Arc::new(settings))),
        workload: WorkloadSpec { rate_per_s: 20.0 + r.below(40) as f64, ..Default::default() },
        queue: QueueSpec {
            visibility_timeout: (5 + r.below(30)) * NS_PER_S,
            max_delivery_count: 100,
            ..QueueSpec::service_bus()
        },
        consumer: ConsumerSpec {
            instances: 1 + r.below(3) as u32,
            concurrency: 1 + r.below(8) as u32,
            work: Dist::Exp { mean: (5 + r.below(50)) * NS_PER_MS },
            ..Default::default()
        },
        faults,
        ..Default::default()
    }
}

fn counter(r: &RunResults, name: &str) -> u64 {
    r.sections["outbox"][name] as u64
}

fn run_checked(s: &Scenario) -> RunResults {
    run(s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results
}

#[test]
fn the_outbox_with_an_idempotent_consumer_applies_every_committed_change_exactly_once() {
    let (mut duplicate_publishes, mut deduplicated, mut failed_requests) = (0, 0, 0);
    for seed in first_seed()..first_seed() + seeds() {
        let s = scenario(seed, Design::Outbox, true, Dist::Exp { mean: 5 * NS_PER_MS });
        let r = run_checked(&s);
        let at = format!("seed {seed} (SIM_SEED={seed} SIM_SEEDS=1 replays it)");
        assert!(r.violations.is_empty(), "{at}: {:#?}", r.violations);
        assert_eq!(counter(&r, "lost_events"), 0, "{at}");
        assert_eq!(counter(&r, "duplicate_effects"), 0, "{at}");
        assert_eq!(r.ledger.lost, 0, "{at}");
        // drained: every committed change was published and applied exactly once
        let committed = counter(&r, "committed");
        assert_eq!(r.ledger.in_flight, 0, "{at}");
        assert_eq!(counter(&r, "published"), committed, "{at}");
        assert_eq!(counter(&r, "effects"), committed, "{at}");
        assert_eq!(r.ledger.completed, committed, "{at}");
        assert_eq!(counter(&r, "unpublished"), 0, "{at}");
        // every request either committed or failed (a producer crash before its commit)
        assert_eq!(r.ledger.produced, committed + r.ledger.rejected, "{at}");
        assert_eq!(r.ledger.rejected, counter(&r, "requests_failed"), "{at}");
        duplicate_publishes += counter(&r, "duplicate_publishes");
        deduplicated += counter(&r, "deduplicated");
        failed_requests += r.ledger.rejected;
    }
    // the crashes did fall between publish and mark, and between effect and complete
    assert!(duplicate_publishes > 0, "no relay crash fell between a publish and its mark");
    assert!(
        deduplicated > duplicate_publishes,
        "no consumer crash fell between effect and complete"
    );
    assert!(failed_requests > 0);
}

#[test]
fn the_dual_write_loses_the_event_of_every_crash_between_commit_and_publish() {
    let mut lost = 0;
    for seed in first_seed()..first_seed() + seeds() {
        // a slow publish (50 ms) widens the window between the commit and the publish
        let s = scenario(seed, Design::DualWrite, true, Dist::Exp { mean: 50 * NS_PER_MS });
        let r = run_checked(&s);
        let at = format!("seed {seed}");
        assert!(r.violations.is_empty(), "{at}: {:#?}", r.violations);
        let committed = counter(&r, "committed");
        assert_eq!(counter(&r, "lost_events"), r.ledger.lost, "{at}");
        assert_eq!(counter(&r, "published") + r.ledger.lost, committed, "{at}");
        assert_eq!(counter(&r, "duplicate_publishes"), 0, "{at}: no relay, no second publish");
        assert_eq!(counter(&r, "effects"), counter(&r, "published"), "{at}");
        lost += r.ledger.lost;
    }
    assert!(lost > 0, "no crash fell between a commit and its publish in {} seeds", seeds());
}

#[test]
fn a_consumer_that_is_not_idempotent_applies_duplicates() {
    let mut duplicates = 0;
    for seed in first_seed()..first_seed() + seeds() {
        let s = scenario(seed, Design::Outbox, false, Dist::Exp { mean: 5 * NS_PER_MS });
        let r = run_checked(&s);
        let at = format!("seed {seed}");
        assert!(r.violations.is_empty(), "{at}: {:#?}", r.violations);
        let committed = counter(&r, "committed");
        let dup = counter(&r, "duplicate_effects");
        assert_eq!(counter(&r, "lost_events"), 0, "{at}");
        assert_eq!(counter(&r, "effects"), committed + dup, "{at}");
        assert!(dup >= counter(&r, "duplicate_publishes"), "{at}: every copy is applied again");
        duplicates += dup;
    }
    assert!(duplicates > 0);
}

/// A relay crash at a known moment inside a batch: the rows it published before the crash
/// are published again after the restart, and the idempotent consumer skips them.
#[test]
fn a_relay_crash_between_publish_and_mark_publishes_the_batch_again() {
    let mut s = scenario(1, Design::Outbox, true, Dist::Const(10 * NS_PER_MS));
    s.workload = WorkloadSpec { arrivals: Arrivals::Constant, rate_per_s: 10.0, ..s.workload };
    s.store = StoreSpec { latency: Dist::Const(NS_PER_MS), commit_latency: Dist::Const(NS_PER_MS) };
    s.pattern_table = PatternTable(Some(Arc::new(Settings {
        design: Some(Design::Outbox),
        relay_interval: Some(5 * NS_PER_S),
        relay_batch: Some(1000),
        idempotent_consumer: Some(true),
        broker_latency: Some(Dist::Const(10 * NS_PER_MS)),
        broker: None,
    })));
    // Find a batch in a run without the crash: the first publishes (outbox row -> queue)
    // after a pause of more than a second, past the first minute.
    let traced = run(&s, RunOptions { trace: true, ..Default::default() }, &mut |_| {});
    let published: Vec<Nanos> = traced
        .trace
        .iter()
        .filter(|e| e.what == Event::HandedOver { from: Holder::Store, to: Holder::Queue })
        .map(|e| e.t)
        .collect();
    let start = (1..published.len())
        .find(|&i| published[i] > 60 * NS_PER_S && published[i] - published[i - 1] > NS_PER_S)
        .expect("a batch after the first minute");
    assert!(published[start + 30] - published[start] < NS_PER_S, "a batch of more than 30 rows");
    // Crash just after its 25th publish, before the 26th and before the rows are deleted.
    s.faults = vec![FaultSpec {
        target: "relay".into(),
        kind: FaultKind::Crash {
            at: published[start + 24] + 1,
            instances: 1,
            restart_after: Some(NS_PER_S),
        },
    }];
    let r = run_checked(&s);
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert_eq!(counter(&r, "duplicate_publishes"), 25);
    assert_eq!(counter(&r, "deduplicated"), 25);
    assert_eq!(counter(&r, "duplicate_effects"), 0);
    assert_eq!(counter(&r, "effects"), counter(&r, "committed"));
}

/// A producer that is down fails its requests at once; nothing it failed is committed.
#[test]
fn a_crashed_producer_fails_requests_and_commits_nothing_of_them() {
    let mut s = scenario(2, Design::Outbox, true, Dist::Const(NS_PER_MS));
    s.workload = WorkloadSpec { arrivals: Arrivals::Constant, rate_per_s: 10.0, ..s.workload };
    s.faults = vec![FaultSpec {
        target: "producer".into(),
        kind: FaultKind::Crash {
            at: 60 * NS_PER_S,
            instances: 1,
            restart_after: Some(10 * NS_PER_S),
        },
    }];
    let r = run_checked(&s);
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    // 10 s down at 10/s, plus whatever was in its transaction at the crash
    let failed = counter(&r, "requests_failed");
    assert!((100..=102).contains(&failed), "{failed}");
    assert_eq!(counter(&r, "committed") + failed, r.ledger.produced);
    assert_eq!(r.ledger.rejected, failed);
}

fn ev(t: Nanos, id: u64, what: Event) -> TraceEvent {
    TraceEvent { t, id, class: 0, what }
}

fn judge(events: &[TraceEvent]) -> Vec<String> {
    let mut c = ExactlyOnceEffect::default();
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
fn the_exactly_once_checker_catches_a_second_effect_a_missing_one_and_a_lost_event() {
    let committed = |id| ev(0, id, Event::Note("committed"));
    let ok = [
        committed(1),
        ev(1, 1, Event::HandedOver { from: Holder::Api, to: Holder::Store }),
        ev(2, 1, Event::Note("effect")),
        ev(3, 1, Event::Left(Exit::Completed)),
    ];
    assert!(judge(&ok).is_empty());
    let twice = [committed(1), ev(2, 1, Event::Note("effect")), ev(3, 1, Event::Note("effect"))];
    assert_eq!(judge(&twice), ["change 1 applied twice"]);
    let missing = [committed(2), ev(3, 2, Event::Left(Exit::Completed))];
    assert_eq!(judge(&missing), ["change 2 completed without its effect"]);
    let lost = [committed(3), ev(3, 3, Event::Left(Exit::Lost))];
    assert_eq!(judge(&lost), ["committed change 3 lost its event"]);
    // a request that failed before its commit is not a lost event
    assert!(judge(&[ev(0, 4, Event::Left(Exit::Lost))]).is_empty());
}
