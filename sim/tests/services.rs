//! Downstream capacity: a service with `max_concurrency` queues or refuses the calls beyond
//! it, and scaling consumers out past it does not speed anything up.

use sim::dist::Dist;
use sim::engine::Sim;
use sim::model::service::{Downstream, Services};
use sim::rng::Rng;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

fn db(max_concurrency: Option<u32>, over_limit: OverLimit) -> BTreeMap<String, ServiceSpec> {
    let spec = ServiceSpec {
        latency: Dist::Const(100 * NS_PER_MS),
        max_concurrency,
        over_limit,
        ..Default::default()
    };
    BTreeMap::from([("db".to_string(), spec)])
}

/// 20 messages/s, each one call to `db` (100 ms), on `instances` × 4 handlers.
fn flood(instances: u32, services: BTreeMap<String, ServiceSpec>) -> Scenario {
    Scenario {
        duration: 2 * NS_PER_MIN,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 20.0,
            ..Default::default()
        },
        consumer: ConsumerSpec {
            instances,
            concurrency: 4,
            batch_size: 4,
            work: Dist::Const(NS_PER_MS),
            calls: vec!["db".into()],
            ..Default::default()
        },
        services,
        ..Default::default()
    }
}

#[test]
fn calls_beyond_the_limit_wait_and_more_consumers_do_not_help() {
    // Capacity 1 / 100 ms = 10 calls/s against 20 offered: a backlog grows either way.
    let go = |instances| {
        run(&flood(instances, db(Some(1), OverLimit::Wait)), RunOptions::default(), &mut |_| {})
            .results
    };
    let (few, many) = (go(1), go(8));
    for r in [&few, &many] {
        let s = r.services["db"];
        assert_eq!(r.ledger.completed, r.ledger.produced, "waiting loses nothing");
        assert_eq!(s.throttled, 0);
        assert!(s.queued > 0 && s.waiting_peak > 0, "{s:?}");
        // Busy the whole time at one call per 100 ms: the run lasts about produced / 10 s.
        let expected = r.ledger.produced as f64 / 10.0;
        let took = r.sim_time as f64 / NS_PER_S as f64;
        assert!((took - expected).abs() < 1.0, "took {took} s, expected {expected} s");
    }
    let p99 = |r: &sim::results::RunResults| r.latency["end_to_end"].quantile_ns(0.99);
    assert!(p99(&many) as f64 >= 0.95 * p99(&few) as f64, "eight times the consumers, no faster");
    assert!(
        many.services["db"].waiting_peak > few.services["db"].waiting_peak,
        "the queue moved to the db"
    );
    // Without the limit the same 20/s are handled as they come.
    let free =
        run(&flood(1, db(None, OverLimit::Wait)), RunOptions::default(), &mut |_| {}).results;
    assert!(p99(&free) < 200 * NS_PER_MS, "{}", p99(&free));
    assert_eq!(free.services["db"].queued, 0);
}

#[test]
fn calls_beyond_the_limit_are_refused_as_throttled_and_redelivered() {
    let s = flood(4, db(Some(1), OverLimit::Reject { retry_after: None }));
    let r = run(&s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    let db = r.services["db"];
    assert!(db.throttled > 0, "{db:?}");
    assert!(db.errors >= db.throttled);
    assert_eq!(db.queued, 0);
    assert!(r.ledger.deliveries > r.ledger.produced, "refused messages come back");
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

#[test]
fn an_in_process_retry_honours_retry_after() {
    let sim = Sim::new();
    let specs = db(Some(1), OverLimit::Reject { retry_after: Some(5 * NS_PER_S) });
    let services = Rc::new(Services::new(1, &specs, &[]));
    let retry = RetrySpec { base: 100 * NS_PER_MS, max_attempts: 2, ..Default::default() };
    let done = Rc::new(RefCell::new(Vec::new()));
    for caller in 0..2 {
        let d = Downstream::new(
            sim.clone(),
            services.clone(),
            &["db".into()],
            Some(retry.clone()),
            Rng::stream(1, "retry"),
        );
        let (sim2, done) = (sim.clone(), done.clone());
        sim.spawn(async move {
            let outcome = d.call_all().await;
            done.borrow_mut().push((caller, sim2.now_ns(), outcome));
        });
    }
    sim.run_until(SimTime(NS_PER_MIN));
    let done = done.borrow();
    // The first caller takes the only slot (0 - 100 ms); the second is refused at 0, waits
    // the 5 s Retry-After (not the 100 ms backoff), and is served 5.0 - 5.1 s.
    assert_eq!(done[0], (0, 100 * NS_PER_MS, Ok(())));
    assert_eq!(done[1], (1, 5 * NS_PER_S + 100 * NS_PER_MS, Ok(())));
    assert_eq!(services.stats()["db"].throttled, 1);
}
