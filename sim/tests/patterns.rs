//! End-to-end checks of the three foundation patterns' guarantees, run through the library.
//! Each prints the seed it used; `SIM_SEED=N` replays one seed.

use sim::dist::Dist;
use sim::model::meters::TraceEvent;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::collections::BTreeMap;

fn seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7)
}

fn consumers(instances: u32, concurrency: u32, batch: u32, work: Dist) -> ConsumerSpec {
    ConsumerSpec { instances, concurrency, batch_size: batch, work, ..Default::default() }
}

fn traced(s: &Scenario) -> (sim::results::RunResults, Vec<TraceEvent>) {
    let r = run(s, RunOptions { trace: true, ..Default::default() }, &mut |_| {});
    (r.results, r.trace)
}

#[test]
fn same_seed_same_results_other_seed_other_results() {
    let mut s = Scenario { seed: seed(), duration: 10 * NS_PER_MIN, ..Default::default() };
    s.workload.classes = vec![("normal".into(), 0.99), ("poison".into(), 0.01)];
    s.faults.push(FaultSpec {
        target: "consumer".into(),
        kind: FaultKind::Crash {
            at: 3 * NS_PER_MIN,
            instances: 1,
            restart_after: Some(NS_PER_MIN),
        },
    });
    let a = run(&s, RunOptions::default(), &mut |_| {}).results;
    let b = run(&s, RunOptions::default(), &mut |_| {}).results;
    assert_eq!(a.ledger, b.ledger);
    assert_eq!(a.timeseries, b.timeseries);
    assert_eq!(a.latency["end_to_end"].sum_ns, b.latency["end_to_end"].sum_ns);
    s.seed += 1;
    let c = run(&s, RunOptions::default(), &mut |_| {}).results;
    assert_ne!(a.latency["end_to_end"].sum_ns, c.latency["end_to_end"].sum_ns, "seed {}", s.seed);
}

#[test]
fn crash_under_service_bus_loses_nothing() {
    let seed = seed();
    let lock = 30 * NS_PER_S;
    let s = Scenario {
        seed,
        duration: 10 * NS_PER_MIN,
        pattern: sim::patterns::competing_consumers::KIND,
        workload: WorkloadSpec { rate_per_s: 50.0, ..Default::default() },
        queue: QueueSpec { visibility_timeout: lock, ..QueueSpec::service_bus() },
        consumer: consumers(4, 8, 4, Dist::Exp { mean: 200 * NS_PER_MS }),
        faults: vec![FaultSpec {
            target: "consumer".into(),
            kind: FaultKind::Crash {
                at: 5 * NS_PER_MIN,
                instances: 2,
                restart_after: Some(NS_PER_MIN),
            },
        }],
        ..Default::default()
    };
    let (r, trace) = traced(&s);
    let l = r.ledger;
    assert!(r.drained, "seed {seed}: the run drained");
    assert_eq!(l.completed, l.produced, "seed {seed}: every message completed: {l:?}");
    assert_eq!(l.lost + l.dead_lettered + l.expired + l.in_flight, 0, "seed {seed}: {l:?}");
    assert!(l.deliveries > l.produced, "seed {seed}: the crash caused redeliveries: {l:?}");
    // Every redelivery after the crash came from a lock that expired `lock` after delivery.
    let expired: Vec<&TraceEvent> =
        trace.iter().filter(|e| e.what.name() == "lock_expired").collect();
    assert!(!expired.is_empty());
    for e in &expired {
        assert!((5 * NS_PER_MIN..=5 * NS_PER_MIN + lock).contains(&e.t), "{e:?}");
    }
    assert_eq!(l.deliveries - l.produced, expired.len() as u64, "seed {seed}");
}

#[test]
fn poison_is_dead_lettered_after_exactly_max_delivery_count_deliveries() {
    let seed = seed();
    for (queue, max) in [(QueueSpec::service_bus(), 5), (QueueSpec::storage_queue(), 3)] {
        let s = Scenario {
            seed,
            duration: 5 * NS_PER_MIN,
            workload: WorkloadSpec {
                rate_per_s: 20.0,
                classes: vec![("normal".into(), 0.95), ("poison".into(), 0.05)],
                ..Default::default()
            },
            queue: QueueSpec { max_delivery_count: max, ..queue },
            consumer: consumers(2, 8, 8, Dist::Exp { mean: 20 * NS_PER_MS }),
            ..Default::default()
        };
        let (r, trace) = traced(&s);
        let mut deliveries: BTreeMap<u64, u32> = BTreeMap::new();
        for e in trace.iter().filter(|e| e.what.name() == "delivered") {
            *deliveries.entry(e.id).or_default() += 1;
        }
        let dead: Vec<u64> =
            trace.iter().filter(|e| e.what.name() == "dead_lettered").map(|e| e.id).collect();
        assert_eq!(dead.len() as u64, r.ledger.dead_lettered);
        assert!(r.ledger.dead_lettered > 0, "seed {seed}: some poison was produced");
        for id in &dead {
            assert_eq!(deliveries[id], max, "seed {seed}: message {id} on {:?}", s.queue.kind);
        }
        assert_eq!(r.ledger.completed + r.ledger.dead_lettered, r.ledger.produced);
    }
}

#[test]
fn retry_backoff_follows_the_exponential_schedule_and_counts_calls() {
    let seed = seed();
    let poll = NS_PER_S;
    let mut services = BTreeMap::new();
    services.insert(
        "flaky".to_string(),
        ServiceSpec { latency: Dist::Const(10 * NS_PER_MS), ..Default::default() },
    );
    let s = Scenario {
        seed,
        duration: NS_PER_S, // one job at t = 0
        pattern: sim::patterns::retry_backoff::KIND,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 1.0,
            ..Default::default()
        },
        consumer: ConsumerSpec {
            calls: vec!["flaky".into()],
            poll_interval: poll,
            ..Default::default()
        },
        services,
        retry: Some(RetrySpec::default()), // exponential, base 2 s, cap 5 min
        faults: vec![FaultSpec {
            target: "flaky".into(),
            kind: FaultKind::Outage { from: 0, to: 20 * NS_PER_MIN },
        }],
        ..Default::default()
    };
    let (r, trace) = traced(&s);
    let attempts: Vec<Nanos> =
        trace.iter().filter(|e| e.what.name() == "attempt").map(|e| e.t).collect();
    let gaps: Vec<Nanos> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    let schedule = [2, 4, 8, 16, 32, 64, 128, 256, 300, 300];
    // Each gap is the backoff delay after the failed call (1 ms to fail), rounded up to the
    // next poll: delay <= gap < delay + call + poll.
    for (gap, want) in gaps.iter().zip(schedule) {
        let want = want * NS_PER_S;
        assert!(*gap >= want && *gap < want + poll + NS_PER_S / 100, "seed {seed}: gaps {gaps:?}");
    }
    // The outage ends at 20 min: the job succeeds on the first try after it.
    let last = *attempts.last().unwrap();
    assert!((20 * NS_PER_MIN..20 * NS_PER_MIN + 301 * NS_PER_S).contains(&last), "{attempts:?}");
    assert_eq!(r.ledger.completed, 1);
    assert_eq!(r.services["flaky"].calls, attempts.len() as u64);
    assert_eq!(r.services["flaky"].errors, attempts.len() as u64 - 1);
}

#[test]
fn handlers_outliving_their_lock_count_duplicates_and_late_successes_apart() {
    // Storage queue with renewal off: a 15 s handler on a 10 s visibility timeout.
    let one = |max_delivery_count| Scenario {
        seed: seed(),
        duration: NS_PER_S, // one message at t = 0
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 1.0,
            ..Default::default()
        },
        queue: QueueSpec {
            visibility_timeout: 10 * NS_PER_S,
            lock_renewal: 0,
            max_delivery_count,
            ..QueueSpec::storage_queue()
        },
        consumer: consumers(1, 1, 4, Dist::Const(15 * NS_PER_S)),
        ..Default::default()
    };
    // Two deliveries: the first handler succeeds at 15 s on a lapsed lock (the message is
    // being handled again), the second at 25 s after the message was dead-lettered at 20 s:
    // the second success repeats the first one's effect.
    let r = run(&one(2), RunOptions::default(), &mut |_| {}).results;
    assert_eq!((r.ledger.deliveries, r.ledger.dead_lettered), (2, 1), "{:?}", r.ledger);
    assert_eq!((r.ledger.duplicates, r.ledger.late_successes), (1, 0), "{:?}", r.ledger);
    // One delivery: the message is dead-lettered when its lock lapses at 10 s, unhandled;
    // the handler then succeeds at 15 s: an effect the ledger's exits do not show.
    let r = run(&one(1), RunOptions::default(), &mut |_| {}).results;
    assert_eq!((r.ledger.deliveries, r.ledger.dead_lettered), (1, 1), "{:?}", r.ledger);
    assert_eq!((r.ledger.duplicates, r.ledger.late_successes), (0, 1), "{:?}", r.ledger);
}

#[test]
fn prefetched_messages_whose_locks_run_out_in_the_buffer_are_dead_lettered_unfailed() {
    // Four messages in the first second; one handler of 40 s; 60 s locks; one delivery
    // allowed. Without prefetch each message is received when the handler is free, so all
    // four complete. With PrefetchCount = 3 the receiver holds three at once: the third
    // waits in the buffer from 0.5 s, its lock runs out unrenewed at 60.5 s while the
    // second is still being handled, and it is dead-lettered with its one delivery spent;
    // the handler then runs the stale copy anyway (a late success the ledger's exits do not
    // show).
    let one = |prefetch| Scenario {
        seed: seed(),
        duration: NS_PER_S,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 4.0,
            ..Default::default()
        },
        queue: QueueSpec {
            visibility_timeout: 60 * NS_PER_S,
            max_delivery_count: 1,
            prefetch,
            ..QueueSpec::service_bus()
        },
        consumer: consumers(1, 1, 1, Dist::Const(40 * NS_PER_S)),
        ..Default::default()
    };
    let r = run(&one(0), RunOptions::default(), &mut |_| {}).results;
    assert_eq!((r.ledger.completed, r.ledger.dead_lettered), (4, 0), "{:?}", r.ledger);
    let r = run(&one(3), RunOptions::default(), &mut |_| {}).results;
    let failed: u64 = r.timeseries.iter().map(|row| row.failed).sum();
    assert_eq!(failed, 0, "no handler failed: {:?}", r.ledger);
    assert!(r.ledger.dead_lettered >= 1, "{:?}", r.ledger);
    assert_eq!(r.ledger.completed + r.ledger.dead_lettered, 4, "{:?}", r.ledger);
    assert!(r.ledger.late_successes >= 1, "{:?}", r.ledger);
}
