//! The event-stream pattern: the trigger's default loses a failed batch, a retry policy holds
//! the checkpoint, park sends failures to a queue, a crash replays from the checkpoint
//! (duplicates, order kept), a crashed instance's partitions wait for its claims to lapse, the
//! stream breaker stops every processor and loses nothing; and its checkers over many seeds
//! with random settings and random crash times (the generic swarm of `checkers.rs` only runs
//! the defaults). `SIM_SEED=N` replays one seed; `SIM_SEEDS=N` sets how many.

mod common;

use sim::check::Checker;
use sim::check::stream::{PartitionOrder, Settlement};
use sim::dist::Dist;
use sim::ledger::{Exit, Holder};
use sim::model::meters::{Event, TraceEvent};
use sim::model::stream::Partitioner;
use sim::patterns::event_stream::{
    BreakerSettings, OnFailure, Partitioning, Resolved, Retry, Settings,
};
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

fn table(s: Settings) -> PatternTable {
    PatternTable(Some(Arc::new(s)))
}

/// 50 events/s over 8 partitions, 2 instances, each event ~5 ms of work and a ~20 ms call
/// to `db`, which is down from 2m to 4m.
fn outage(settings: Settings, seed: u64) -> Scenario {
    let mut services = BTreeMap::new();
    services.insert(
        "db".to_string(),
        ServiceSpec {
            latency: Dist::Exp { mean: 20 * NS_PER_MS },
            error_rate: 0.0,
            timeout: Some(5 * NS_PER_S),
            ..Default::default()
        },
    );
    Scenario {
        seed,
        duration: 8 * NS_PER_MIN,
        pattern: sim::patterns::event_stream::KIND,
        pattern_table: table(Settings { partitions: Some(8), ..settings }),
        workload: WorkloadSpec { rate_per_s: 50.0, ..Default::default() },
        consumer: ConsumerSpec {
            instances: 2,
            work: Dist::Exp { mean: 5 * NS_PER_MS },
            calls: vec!["db".into()],
            ..Default::default()
        },
        services,
        faults: vec![FaultSpec {
            target: "db".into(),
            kind: FaultKind::Outage { from: 2 * NS_PER_MIN, to: 4 * NS_PER_MIN },
        }],
        ..Default::default()
    }
}

fn checked(s: &Scenario) -> RunResults {
    let r = run(s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(r.violations.is_empty(), "seed {}: {:#?}", s.seed, r.violations);
    assert!(r.ledger.balances());
    r
}

fn field(r: &RunResults, name: &str) -> f64 {
    r.sections["stream"][name]
}

#[test]
fn the_default_checkpoints_a_failed_batch_and_loses_it() {
    let r = checked(&outage(Settings::default(), seed()));
    let skipped = field(&r, "skipped");
    // two minutes of 50/s hit the outage: nearly all of them are skipped
    assert!(skipped > 5_000.0, "skipped {skipped}");
    assert_eq!(r.ledger.lost as f64, skipped, "skipped events are messages.lost");
    assert_eq!(field(&r, "retries"), 0.0);
    assert_eq!(r.ledger.in_flight, 0);
    assert_eq!(field(&r, "order_violations"), 0.0);
}

#[test]
fn a_retry_policy_holds_the_checkpoint_and_the_partition_stalls() {
    let forever = Settings {
        retry: Some(Retry::FixedDelay),
        max_retries: Some(-1),
        retry_delay: Some(5 * NS_PER_S),
        ..Default::default()
    };
    let r = checked(&outage(forever, seed()));
    assert_eq!((r.ledger.lost, field(&r, "skipped")), (0, 0.0), "nothing skipped");
    assert_eq!(r.ledger.completed, r.ledger.produced);
    // every partition waits out the outage: about 2 min × 50/s behind at the peak
    let lag = field(&r, "lag_peak");
    assert!((5_000.0..=6_500.0).contains(&lag), "lag peak {lag}");
    // each partition retries every 5 s for 2 min
    let retries = field(&r, "retries");
    assert!((8.0 * 20.0..=8.0 * 26.0).contains(&retries), "retries {retries}");
    let p99 = r.latency["end_to_end"].quantile_ns(0.99) as f64 / NS_PER_S as f64;
    assert!(p99 > 60.0, "events wait out the stall: p99 {p99} s");
}

#[test]
fn the_last_attempt_parks_what_still_fails_and_the_pool_completes_it() {
    let park = Settings {
        retry: Some(Retry::ExponentialBackoff),
        max_retries: Some(3),
        retry_delay: Some(2 * NS_PER_S),
        max_retry_delay: Some(10 * NS_PER_S),
        on_failure: Some(OnFailure::Park),
        ..Default::default()
    };
    let mut s = outage(park, seed());
    // the parked queue keeps a failed message out of sight for a minute, 20 deliveries
    s.queue = QueueSpec {
        abandon_delay: NS_PER_MIN,
        max_delivery_count: 20,
        ..QueueSpec::storage_queue()
    };
    let r = checked(&s);
    let parked = field(&r, "parked");
    assert!(parked > 1_000.0, "parked {parked}");
    assert_eq!((r.ledger.lost, r.ledger.dead_lettered, r.ledger.in_flight), (0, 0, 0));
    assert_eq!(r.ledger.completed, r.ledger.produced, "the parked pool completed them");
    assert_eq!(field(&r, "skipped"), 0.0);
}

#[test]
fn a_crash_replays_from_the_checkpoint_with_duplicates_in_order() {
    // a checkpoint every 20 batches: a crash leaves a long stretch to replay
    let every = Settings { checkpoint_every: Some(20), ..Default::default() };
    let mut s = outage(every, seed());
    s.drain = Some(2 * NS_PER_MIN);
    s.faults = vec![FaultSpec {
        target: "consumer".into(),
        kind: FaultKind::Crash {
            at: 3 * NS_PER_MIN,
            instances: 1,
            restart_after: Some(30 * NS_PER_S),
        },
    }];
    let r = checked(&s);
    assert!(field(&r, "replayed") > 0.0, "replayed {}", field(&r, "replayed"));
    assert!(r.ledger.duplicates > 0, "effects applied again");
    assert_eq!(field(&r, "order_violations"), 0.0);
    // nothing lost; the batches after the last checkpoint stay in the partition (nothing
    // comes to push the checkpoint on)
    assert_eq!(r.ledger.lost, 0);
    assert!(r.ledger.in_flight < 8 * 20, "in flight {}", r.ledger.in_flight);
    // the same run without the crash replays nothing
    s.faults.clear();
    let calm = checked(&s);
    assert_eq!((field(&calm, "replayed"), calm.ledger.duplicates), (0.0, 0));
}

#[test]
fn a_dead_instances_partitions_wait_for_its_claims_to_lapse() {
    let expiry = |e| Settings {
        ownership_expiry: Some(e),
        load_balancing_interval: Some(5 * NS_PER_S),
        ..Default::default()
    };
    let crash = |s: &mut Scenario| {
        s.faults = vec![FaultSpec {
            target: "consumer".into(),
            kind: FaultKind::Crash { at: 5 * NS_PER_MIN, instances: 1, restart_after: None },
        }];
    };
    let mut long = outage(expiry(2 * NS_PER_MIN), seed());
    crash(&mut long);
    let mut short = outage(expiry(20 * NS_PER_S), seed());
    crash(&mut short);
    let (long, short) = (checked(&long), checked(&short));
    let max_s = |r: &RunResults| r.latency["end_to_end"].max_ns() as f64 / NS_PER_S as f64;
    // the survivor takes the partitions over once the claims lapse: up to the expiry and one
    // 5 s cycle after the crash
    assert!((115.0..=127.0).contains(&max_s(&long)), "{}", max_s(&long));
    assert!((15.0..=27.0).contains(&max_s(&short)), "{}", max_s(&short));
    assert_eq!(long.ledger.completed, long.ledger.produced - long.ledger.lost);
}

#[test]
fn instances_beyond_the_partition_count_idle() {
    // 2 partitions, 6 instances: only 2 ever run a batch, the others own nothing. All six
    // are billed.
    let mut s = outage(Settings::default(), seed());
    s.pattern_table = table(Settings { partitions: Some(2), ..Default::default() });
    s.faults.clear();
    s.consumer.instances = 6;
    let r = checked(&s);
    assert_eq!(r.scaling.instances_peak, 6);
    assert_eq!(r.ledger.completed, r.ledger.produced);
    let mut two = s.clone();
    two.consumer.instances = 2;
    let r2 = checked(&two);
    assert_eq!(field(&r, "batches"), field(&r2, "batches"), "the extra four did nothing");
    let (six, two) = (r.scaling.instances_mean, r2.scaling.instances_mean);
    assert!(six > 2.9 * two, "but they are allocated (and billed): {six} vs {two}");
}

#[test]
fn the_stream_breaker_stops_every_processor_and_loses_nothing() {
    // skip on failure, but the first failure opens the breaker: the failing batch is not
    // checkpointed, every processor waits, and resumes from its checkpoint after the pause
    let breaker = Settings {
        breaker: Some(BreakerSettings {
            failures: Some(1),
            window: Some(30 * NS_PER_S),
            pause: Some(30 * NS_PER_S),
        }),
        ..Default::default()
    };
    let r = checked(&outage(breaker, seed()));
    assert_eq!((r.ledger.lost, field(&r, "skipped")), (0, 0.0), "nothing lost");
    let trips = field(&r, "breaker_trips");
    // a 2-minute outage, 30 s pauses: about 4 trips (one probe batch after each pause)
    assert!((3.0..=6.0).contains(&trips), "trips {trips}");
    assert_eq!(field(&r, "paused_s"), trips * 30.0);
    assert_eq!(field(&r, "order_violations"), 0.0);
    assert_eq!(r.ledger.completed, r.ledger.produced);
}

#[test]
fn keyed_events_keep_their_partition_and_a_hot_key_is_one_partition() {
    let keyed = |keys| Settings {
        partitioning: Some(Partitioning::Key),
        keys: Some(keys),
        ..Default::default()
    };
    let mut s = outage(keyed(1), seed());
    s.faults.clear();
    let hot = checked(&s);
    // one key: every event in one partition, handled one at a time by one instance
    let mut spread = s.clone();
    spread.pattern_table = table(Settings { partitions: Some(8), ..keyed(1000) });
    let spread = checked(&spread);
    assert!(field(&hot, "lag_peak") > field(&spread, "lag_peak"));
    assert_eq!(hot.ledger.completed, hot.ledger.produced);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let s = outage(
        Settings {
            retry: Some(Retry::ExponentialBackoff),
            on_failure: Some(OnFailure::Park),
            partitioning: Some(Partitioning::Key),
            ..Default::default()
        },
        seed(),
    );
    let a = checked(&s);
    let b = checked(&s);
    assert_eq!(a.sections, b.sections);
    assert_eq!(a.ledger, b.ledger);
}

/// Random settings, a random service and random faults (crashes at random times among
/// them) for many seeds: every checker holds.
#[test]
fn the_checkers_hold_over_many_seeds_with_random_settings_and_crashes() {
    for seed in seed()..seed() + seeds() {
        let mut r = Rng::stream(seed, "stream-swarm");
        let duration = 5 * NS_PER_MIN;
        let retry = match r.below(3) {
            0 => Retry::None,
            1 => Retry::FixedDelay,
            _ => Retry::ExponentialBackoff,
        };
        let settings = Settings {
            partitions: Some(1 + r.below(12) as u32),
            max_batch: Some(1 + r.below(50) as u32),
            checkpoint_every: Some(1 + r.below(4) as u32),
            retry: Some(retry),
            max_retries: Some(r.below(5) as i64 - 1),
            retry_delay: Some((1 + r.below(5)) * NS_PER_S),
            on_failure: Some(if r.chance(0.5) { OnFailure::Park } else { OnFailure::Skip }),
            partitioning: Some(if r.chance(0.5) {
                Partitioning::Key
            } else {
                Partitioning::RoundRobin
            }),
            keys: Some(1 + r.below(100)),
            ownership_expiry: Some((10 + r.below(120)) * NS_PER_S),
            load_balancing_interval: Some((1 + r.below(9)) * NS_PER_S),
            breaker: r.chance(0.4).then(|| BreakerSettings {
                failures: Some(1 + r.below(20) as u32),
                window: Some((5 + r.below(30)) * NS_PER_S),
                pause: Some((5 + r.below(60)) * NS_PER_S),
            }),
            ..Default::default()
        };
        let mut services = BTreeMap::new();
        services.insert("api".to_string(), common::swarm_service(&mut r));
        let mut faults = common::swarm_faults(&mut r, duration);
        faults.push(FaultSpec {
            target: "consumer".into(),
            kind: FaultKind::Crash {
                at: r.below(duration),
                instances: 1,
                restart_after: r.chance(0.7).then(|| (5 + r.below(60)) * NS_PER_S),
            },
        });
        let s = Scenario {
            seed,
            duration,
            drain: Some(15 * NS_PER_MIN),
            pattern: sim::patterns::event_stream::KIND,
            pattern_table: table(settings),
            workload: WorkloadSpec {
                rate_per_s: 10.0 + r.below(40) as f64,
                classes: vec![("normal".into(), 0.98), ("poison".into(), 0.02)],
                ..Default::default()
            },
            queue: QueueSpec {
                max_delivery_count: 1 + r.below(6) as u32,
                ..QueueSpec::service_bus()
            },
            consumer: ConsumerSpec {
                instances: 1 + r.below(4) as u32,
                work: Dist::Exp { mean: (1 + r.below(30)) * NS_PER_MS },
                calls: vec!["api".into()],
                ..Default::default()
            },
            services,
            retry: r.chance(0.5).then(RetrySpec::default),
            faults,
            ..Default::default()
        };
        let options = RunOptions { checks: true, ..Default::default() };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&s, options, &mut |_| {}).results
        }));
        let res = outcome.unwrap_or_else(|_| panic!("seed {seed}: the run panicked"));
        assert!(res.violations.is_empty(), "seed {seed}: {:#?}\n{s:#?}", &res.violations[..1]);
        assert!(res.ledger.balances(), "seed {seed}");
        let cfg = Resolved::of(&s);
        assert_eq!(res.sections["stream"]["order_violations"], 0.0, "seed {seed}");
        if cfg.on_failure == OnFailure::Park {
            assert_eq!(res.ledger.lost, 0, "seed {seed}: park loses nothing");
        }
    }
}

fn ev(t: Nanos, id: u64, what: Event) -> TraceEvent {
    TraceEvent { t, id, class: 0, what }
}

fn judge(
    mut c: Box<dyn Checker>,
    events: &[TraceEvent],
    lost: u64,
    section: &[(&str, f64)],
) -> Vec<String> {
    for e in events {
        c.observe(e);
    }
    let mut r = run(
        &Scenario { duration: 0, drain: Some(0), ..Default::default() },
        RunOptions::default(),
        &mut |_| {},
    )
    .results;
    r.ledger.lost = lost;
    let fields = section.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    r.sections.insert("stream".into(), fields);
    sim::check::verdicts(&mut [c], &r).into_iter().map(|v| v.message).collect()
}

#[test]
fn partition_order_catches_a_first_effect_out_of_order() {
    // round-robin over 2 partitions: ids 0, 2 in partition 0; 1, 3 in partition 1
    let mut events: Vec<TraceEvent> = (0..4).map(|id| ev(0, id, Event::Produced)).collect();
    let good = [2, 1, 3].map(|id| ev(1, id, Event::Note("effect")));
    let order = || Box::new(PartitionOrder::new(Partitioner::round_robin(2)));
    let mut ok = events.clone();
    ok.insert(4, ev(1, 0, Event::Note("effect")));
    ok.extend(good);
    assert!(judge(order(), &ok, 0, &[]).is_empty(), "other partitions interleave freely");
    events.extend([ev(1, 2, Event::Note("effect")), ev(2, 0, Event::Note("effect"))]);
    let found = judge(order(), &events, 0, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("event 0 of partition 0 had its first effect after event 2"));
    // an event given up on (skipped or parked) may come later
    let mut given_up = events.clone();
    given_up.insert(4, ev(1, 0, Event::Note("given_up")));
    assert!(judge(order(), &given_up, 0, &[]).is_empty());
}

#[test]
fn settlement_catches_a_completion_without_effect_and_miscounts() {
    let p = Holder::Partition;
    let base = [ev(0, 0, Event::Produced), ev(0, 0, Event::Admitted(p))];
    let mut done = base.to_vec();
    done.extend([ev(1, 0, Event::Note("effect")), ev(2, 0, Event::Left(Exit::Completed))]);
    let fields = [("skipped", 0.0), ("parked", 0.0)];
    assert!(judge(Box::new(Settlement::default()), &done, 0, &fields).is_empty());
    let mut bare = base.to_vec();
    bare.push(ev(2, 0, Event::Left(Exit::Completed)));
    let found = judge(Box::new(Settlement::default()), &bare, 0, &fields);
    assert!(found.iter().any(|m| m.contains("no handler applied its effect")), "{found:?}");
    let mut skipped = base.to_vec();
    skipped.push(ev(2, 0, Event::Left(Exit::Lost)));
    let found = judge(Box::new(Settlement::default()), &skipped, 1, &fields);
    assert_eq!(found, ["stream.skipped is 0, but 1 events were skipped at a checkpoint"]);
    let found =
        judge(Box::new(Settlement::default()), &skipped, 0, &[("skipped", 1.0), ("parked", 0.0)]);
    assert_eq!(found, ["messages.lost is 0, but 1 events were skipped"]);
}
