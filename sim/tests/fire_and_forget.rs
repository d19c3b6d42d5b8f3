//! Fire and forget: what a crash and a graceful restart of the web process lose, what a full
//! channel refuses, and that the ledger accounts for all of it, on hand-built runs whose
//! numbers can be worked out.

use sim::dist::Dist;
use sim::patterns::fire_and_forget::{self, Settings};
use sim::results::RunResults;
use sim::spec::table::PatternTable;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::sync::Arc;

/// 10 requests a second, evenly spaced, for `minutes`; each item takes exactly `work`; the
/// channel holds `capacity`; one background loop unless `workers` says otherwise.
fn scenario(
    minutes: u64,
    work: Nanos,
    capacity: u64,
    workers: u32,
    faults: Vec<FaultSpec>,
) -> Scenario {
    let settings = Settings {
        channel_capacity: Some(capacity),
        workers: Some(workers),
        drain_on_stop: Some(true),
    };
    Scenario {
        seed: 1,
        duration: minutes * NS_PER_MIN,
        drain: Some(NS_PER_H),
        pattern: fire_and_forget::KIND,
        pattern_table: PatternTable(Some(Arc::new(settings))),
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 10.0,
            ..Default::default()
        },
        api: ApiSpec { accept: Dist::Const(NS_PER_MS) },
        consumer: ConsumerSpec { work: Dist::Const(work), ..Default::default() },
        faults,
        ..Default::default()
    }
}

fn web(at: Nanos, kind: impl Fn(Nanos) -> FaultKind) -> Vec<FaultSpec> {
    vec![FaultSpec { target: "web".into(), kind: kind(at) }]
}

fn counter(r: &RunResults, name: &str) -> u64 {
    r.sections["fire_and_forget"][name] as u64
}

fn run_checked(s: &Scenario) -> RunResults {
    let r = run(s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.ledger.balances());
    r
}

#[test]
fn without_faults_everything_is_done_and_the_api_answers_in_its_accept_time() {
    let r = run_checked(&scenario(2, 50 * NS_PER_MS, 1000, 1, vec![]));
    assert_eq!(r.ledger.completed, r.ledger.produced);
    assert_eq!(r.ledger.lost + r.ledger.rejected, 0);
    let accept = &r.latency["accept"];
    assert_eq!(accept.quantile_ns(0.99), accept.hist.highest_equivalent(NS_PER_MS));
}

#[test]
fn a_crash_loses_everything_queued_and_running() {
    // 10/s in, 5/s out (200 ms each): the channel grows by 5 a second; at 60 s it holds
    // about 300, one item runs
    let faults = web(60 * NS_PER_S, |at| FaultKind::Crash {
        at,
        instances: 1,
        restart_after: Some(10 * NS_PER_S),
    });
    let r = run_checked(&scenario(2, 200 * NS_PER_MS, 10_000, 1, faults));
    let (queued, running) = (counter(&r, "lost_queued"), counter(&r, "lost_running"));
    assert_eq!(running, 1);
    assert!((295..=305).contains(&queued), "{queued}");
    assert_eq!(r.ledger.lost, queued + running);
    // down for 10 s: its requests are refused
    assert!((100..=101).contains(&r.ledger.rejected), "{}", r.ledger.rejected);
    assert_eq!(r.ledger.produced, r.ledger.completed + r.ledger.lost + r.ledger.rejected);
}

#[test]
fn a_graceful_restart_loses_only_what_the_grace_period_cannot_finish() {
    let restart = |grace| {
        web(60 * NS_PER_S, move |at| FaultKind::Restart { at, grace, restart_after: NS_PER_S })
    };
    // ~300 queued at 60 s, 5 a second done: 30 s of grace finishes ~150, the rest is lost
    let r = run_checked(&scenario(2, 200 * NS_PER_MS, 10_000, 1, restart(30 * NS_PER_S)));
    let lost = r.ledger.lost;
    assert!((140..=160).contains(&lost), "{lost}");
    // a grace long enough to drain the channel loses nothing
    let r = run_checked(&scenario(2, 200 * NS_PER_MS, 10_000, 1, restart(5 * NS_PER_MIN)));
    assert_eq!(r.ledger.lost, 0);
    // no grace: everything queued and running
    let r = run_checked(&scenario(2, 200 * NS_PER_MS, 10_000, 1, restart(0)));
    assert!((295..=306).contains(&r.ledger.lost), "{}", r.ledger.lost);
    // more loops drain faster: 4 loops keep up, so only what runs or waits at the cut-off
    let r = run_checked(&scenario(2, 200 * NS_PER_MS, 10_000, 4, restart(0)));
    assert!(r.ledger.lost <= 4, "{}", r.ledger.lost);
}

#[test]
fn a_loop_that_stops_reading_at_the_stop_signal_loses_the_channel_despite_the_grace() {
    let mut s = scenario(
        2,
        200 * NS_PER_MS,
        10_000,
        1,
        web(60 * NS_PER_S, |at| FaultKind::Restart {
            at,
            grace: 5 * NS_PER_MIN,
            restart_after: NS_PER_S,
        }),
    );
    s.pattern_table = PatternTable(Some(Arc::new(Settings {
        channel_capacity: Some(10_000),
        workers: Some(1),
        drain_on_stop: Some(false),
    })));
    let r = run_checked(&s);
    assert_eq!(counter(&r, "lost_running"), 0, "the item in hand finishes");
    assert!((295..=305).contains(&r.ledger.lost), "{}", r.ledger.lost);
}

#[test]
fn a_full_channel_refuses_requests() {
    // 5/s more than the loop does: full (100) after ~20 s; the rest of the 2 minutes is
    // refused at 5/s
    let r = run_checked(&scenario(2, 200 * NS_PER_MS, 100, 1, vec![]));
    assert_eq!(counter(&r, "queued_peak"), 100);
    let rejected = r.ledger.rejected;
    assert!((480..=510).contains(&rejected), "{rejected}");
    assert_eq!(counter(&r, "rejected"), rejected);
    assert_eq!(r.ledger.lost, 0);
    assert_eq!(r.ledger.completed + rejected, r.ledger.produced);
}
