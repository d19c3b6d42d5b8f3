//! The scheduled pattern: NCRONTAB parsing as the Functions timer trigger reads it, the
//! lease lock between instances, missed ticks and the catch-up run, and the invariant over
//! many seeds: with a renewed lease, exactly one run per tick, whatever the crashes.
//!
//! `SIM_SEEDS=N` sets how many seeds the swarm runs (default 100); `SIM_SEED=S` starts there.
//! Every failure names its seed.

use sim::dist::Dist;
use sim::patterns::scheduled::{KIND, Lock, Settings, next_tick, parse_cron, previous_tick};
use sim::rng::Rng;
use sim::spec::table::PatternTable;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::collections::BTreeMap;
use std::sync::Arc;

fn first_seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(4000)
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

const S: Nanos = NS_PER_S;
const MIN: Nanos = NS_PER_MIN;

fn every_5_minutes(
    seed: u64,
    settings: Settings,
    instances: u32,
    faults: Vec<FaultSpec>,
) -> Scenario {
    Scenario {
        seed,
        duration: 2 * NS_PER_H,
        drain: Some(NS_PER_H),
        pattern: KIND,
        pattern_table: PatternTable(Some(Arc::new(settings))),
        consumer: ConsumerSpec { instances, ..Default::default() },
        faults,
        ..Default::default()
    }
}

fn crash(at: Nanos, restart_after: Option<Nanos>) -> FaultSpec {
    FaultSpec {
        target: "scheduler".into(),
        kind: FaultKind::Crash { at, instances: 1, restart_after },
    }
}

fn section(r: &sim::results::RunResults) -> BTreeMap<String, f64> {
    r.sections["schedule"].clone()
}

#[test]
fn ncrontab_has_six_fields_seconds_first_and_sunday_is_zero() {
    assert!(parse_cron("*/5 * * * *").unwrap_err().contains("6"), "five fields are refused");
    assert!(parse_cron("0 */5 * * * * 2024").is_err());
    assert!(parse_cron("0 61 * * * *").is_err());
    let every5 = parse_cron("0 */5 * * * *").unwrap();
    assert_eq!(next_tick(&every5, 0), Some(5 * MIN), "strictly after: not at time 0");
    assert_eq!(next_tick(&every5, 5 * MIN), Some(10 * MIN));
    assert_eq!(next_tick(&every5, 5 * MIN + 1), Some(10 * MIN));
    assert_eq!(previous_tick(&every5, 12 * MIN), Some(10 * MIN));
    // Time 0 is Monday 2024-01-01 00:00 UTC; "1-5" is Monday to Friday (0 = Sunday).
    let weekdays = parse_cron("0 30 9 * * 1-5").unwrap();
    let day = NS_PER_DAY;
    let ticks: Vec<Nanos> =
        std::iter::successors(next_tick(&weekdays, 0), |&t| next_tick(&weekdays, t))
            .take(6)
            .map(|t| t / day)
            .collect();
    assert_eq!(ticks, [0, 1, 2, 3, 4, 7], "Mon..Fri, then the next Monday");
    let sunday = parse_cron("0 0 12 * * Sun").unwrap();
    assert_eq!(next_tick(&sunday, 0), Some(6 * day + 12 * NS_PER_H));
    // NCrontab: a day must match both the day of the month and the day of the week.
    let both = parse_cron("0 0 0 13 * Fri").unwrap();
    let first = next_tick(&both, 0).unwrap() / day;
    assert_eq!(first, 256, "Friday 13 September 2024 (Vixie cron would say 5 January)");
}

#[test]
fn use_monitor_default_follows_the_interval() {
    let catch_up = |cron: &str| {
        let s = Scenario {
            pattern: KIND,
            pattern_table: PatternTable(Some(Arc::new(Settings {
                cron: Some(cron.into()),
                ..Default::default()
            }))),
            ..Default::default()
        };
        Settings::resolve(&s).catch_up
    };
    assert!(catch_up("0 */5 * * * *"));
    assert!(catch_up("0 * * * * *"), "once a minute: monitored");
    assert!(!catch_up("*/30 * * * * *"), "more than once a minute: not monitored");
}

#[test]
fn a_renewed_lease_runs_each_tick_exactly_once_across_random_crashes() {
    let mut totals = [0.0; 4];
    for seed in first_seed()..first_seed() + seeds() {
        let mut r = Rng::stream(seed, "crashes");
        let faults = (0..1 + r.below(3))
            .map(|_| crash(r.below(2 * NS_PER_H), r.chance(0.9).then(|| (10 + r.below(900)) * S)))
            .collect();
        let settings = Settings {
            job: Some(Dist::lognormal(2 * MIN, 8 * MIN).unwrap()),
            lock: Some(Lock::Lease),
            lease: Some(60 * S),
            renew_lease: Some(true),
            ..Default::default()
        };
        let s = every_5_minutes(seed, settings, 1 + r.below(4) as u32, faults);
        let res = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
        let g = section(&res);
        assert!(res.violations.is_empty(), "seed {seed}: {:#?}", res.violations);
        assert_eq!(g["duplicate_runs"], 0.0, "seed {seed}: {g:?}");
        assert_eq!(g["overlapping"], 0.0, "seed {seed}: {g:?}");
        assert_eq!(res.ledger.duplicates, 0, "seed {seed}");
        assert_eq!(g["ticks"], 23.0, "seed {seed}: two hours of 5-minute ticks, after time 0");
        assert_eq!(res.ledger.produced as f64, g["ticks"], "a message per tick");
        assert!(res.ledger.balances(), "seed {seed}");
        totals[0] += g["missed"];
        totals[1] += g["catch_up_runs"];
        totals[2] += g["crashed_runs"];
        totals[3] += g["lease_takeovers"];
    }
    // The crashes did hit: ticks missed while down, runs killed mid-job, caught up later,
    // and leases left by a dead holder taken over once they expired.
    assert!(totals.iter().all(|&n| n > 0.0), "{totals:?}");
}

#[test]
fn a_job_longer_than_an_unrenewed_lease_runs_twice() {
    let job = Some(Dist::Const(3 * MIN));
    let renewed = Settings { job: job.clone(), lease: Some(60 * S), ..Default::default() };
    let unrenewed = Settings { renew_lease: Some(false), ..renewed.clone() };
    let g = section(
        &run(&every_5_minutes(1, renewed, 3, vec![]), RunOptions::default(), &mut |_| {}).results,
    );
    assert_eq!((g["runs"], g["duplicate_runs"], g["overlapping"]), (23.0, 0.0, 0.0), "{g:?}");
    let s = every_5_minutes(1, unrenewed, 3, vec![]);
    let res = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(res.violations.is_empty(), "{:#?}", res.violations);
    let g = section(&res);
    // Each tick: the first run's lease lapses after 60 s; a waiting instance polls it (every
    // 5 s), finds the tick not marked done, and runs it again; 60 s later the third.
    assert_eq!(g["duplicate_runs"], 46.0, "{g:?}");
    assert_eq!(g["overlapping"], 46.0);
    assert_eq!(res.ledger.duplicates, 46, "each duplicate run succeeds: a duplicate effect");
    assert_eq!(res.ledger.completed, 23, "still one message per tick");
    // With lock = "none", all three instances run every tick at once.
    let none = Settings { job, lock: Some(Lock::None), ..Default::default() };
    let g = section(
        &run(&every_5_minutes(1, none, 3, vec![]), RunOptions::default(), &mut |_| {}).results,
    );
    assert_eq!((g["runs"], g["duplicate_runs"]), (69.0, 46.0), "{g:?}");
}

#[test]
fn ticks_missed_while_down_are_counted_and_caught_up_once() {
    let job = Some(Dist::Const(30 * S));
    // Down from 21:00 to 38:00: the ticks at 25, 30 and 35 minutes are missed.
    let faults = vec![crash(21 * MIN, Some(17 * MIN))];
    let with = Settings { job: job.clone(), ..Default::default() };
    let res = run(
        &every_5_minutes(3, with, 2, faults.clone()),
        RunOptions { checks: true, ..Default::default() },
        &mut |_| {},
    )
    .results;
    assert!(res.violations.is_empty(), "{:#?}", res.violations);
    let g = section(&res);
    assert_eq!((g["missed"], g["catch_up_runs"], g["skipped"]), (3.0, 1.0, 2.0), "{g:?}");
    assert_eq!(g["runs"], 23.0 - 3.0 + 1.0);
    assert_eq!(res.ledger.lost, 2, "the missed ticks the catch-up did not cover");
    let without = Settings { job, run_on_startup_if_missed: Some(false), ..Default::default() };
    let g = section(
        &run(&every_5_minutes(3, without, 2, faults), RunOptions::default(), &mut |_| {}).results,
    );
    assert_eq!((g["missed"], g["catch_up_runs"], g["skipped"]), (3.0, 0.0, 3.0), "{g:?}");
}

#[test]
fn a_crash_mid_job_holds_the_lease_until_it_expires_then_the_tick_is_caught_up() {
    // The 10-minute tick's 3-minute job dies at 11:00; the process is back at 11:10, but the
    // dead holder's lease (renewed at 10:30 for 60 s) holds until 11:30.
    let settings = Settings { job: Some(Dist::Const(3 * MIN)), ..Default::default() };
    let s = every_5_minutes(4, settings, 2, vec![crash(11 * MIN, Some(10 * S))]);
    let res = run(&s, RunOptions { checks: true, trace: true, ..Default::default() }, &mut |_| {})
        .results;
    assert!(res.violations.is_empty(), "{:#?}", res.violations);
    let g = section(&res);
    assert_eq!(
        (g["crashed_runs"], g["catch_up_runs"], g["duplicate_runs"]),
        (1.0, 1.0, 0.0),
        "{g:?}"
    );
    assert_eq!(g["lease_takeovers"], 1.0);
    assert_eq!(res.ledger.completed, 23, "the killed tick completed on its catch-up");
}
