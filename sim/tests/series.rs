//! The time series streams every row to its sink and keeps a bounded downsample; the runaway
//! guard stops a run whose backlog passes `limits.max_backlog`.

use sim::dist::Dist;
use sim::model::series::{Series, SeriesSink};
use sim::results::IntervalRow;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::cell::RefCell;
use std::rc::Rc;

/// Five simulated hours at a 1 s interval: 18 000 intervals, well past the downsample's cap.
fn long() -> Scenario {
    Scenario {
        duration: 5 * NS_PER_H,
        interval: NS_PER_S,
        workload: WorkloadSpec { rate_per_s: 2.0, ..Default::default() },
        consumer: ConsumerSpec {
            instances: 1,
            concurrency: 2,
            work: Dist::Exp { mean: 300 * NS_PER_MS },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn collecting() -> (SeriesSink, Rc<RefCell<Vec<IntervalRow>>>) {
    let rows: Rc<RefCell<Vec<IntervalRow>>> = Rc::default();
    let r = rows.clone();
    (SeriesSink::new(move |row| r.borrow_mut().push(row.clone())), rows)
}

#[test]
fn every_row_goes_to_the_sink_and_memory_keeps_a_bounded_downsample() {
    let s = long();
    let (sink, rows) = collecting();
    let with = run(&s, RunOptions { series: Some(sink), ..Default::default() }, &mut |_| {});
    let r = with.results;
    let rows = rows.borrow();
    let intervals = r.sim_time.div_ceil(s.interval);
    assert_eq!(rows.len() as u64, intervals, "one row per interval, the last one partial");
    assert!(rows.windows(2).all(|w| w[1].t - w[0].t == s.interval || w[1].t == r.sim_time));
    assert_eq!(rows.iter().map(|x| x.completed).sum::<u64>(), r.ledger.completed);
    assert_eq!(rows.iter().map(|x| x.arrivals).sum::<u64>(), r.ledger.produced);
    assert!(r.timeseries.len() <= Series::DEFAULT_CAP, "{} rows kept", r.timeseries.len());
    assert!(r.timeseries.step() > 1);
    assert_eq!(r.timeseries.rows_seen(), intervals);
    assert_eq!(r.timeseries, Series::from_rows(rows.iter().cloned(), Series::DEFAULT_CAP));
    assert_eq!(r.completed_peak_interval, rows.iter().map(|x| x.completed).max().unwrap());
    assert_eq!(r.timeseries.iter().map(|x| x.completed).sum::<u64>(), r.ledger.completed);
    assert_eq!(r.timeseries.last().map(|x| x.t), Some(r.sim_time));
    // A sink only observes: the run without one records the same downsample.
    let without = run(&s, RunOptions::default(), &mut |_| {}).results;
    assert_eq!(without.timeseries, r.timeseries);
    assert_eq!(without.ledger, r.ledger);
}

#[test]
fn a_short_run_keeps_every_row() {
    let s = Scenario { duration: 10 * NS_PER_MIN, ..long() };
    let (sink, rows) = collecting();
    let r = run(&s, RunOptions { series: Some(sink), ..Default::default() }, &mut |_| {}).results;
    assert_eq!(r.timeseries.step(), 1);
    assert_eq!(&r.timeseries[..], &rows.borrow()[..]);
}

/// A rate typo: a million messages a second against one slow consumer.
fn runaway(max_backlog: u64) -> Scenario {
    Scenario {
        duration: NS_PER_H,
        workload: WorkloadSpec { rate_per_s: 1e6, ..Default::default() },
        consumer: ConsumerSpec {
            instances: 1,
            concurrency: 1,
            work: Dist::Const(50 * NS_PER_MS),
            ..Default::default()
        },
        limits: LimitsSpec { max_backlog },
        ..Default::default()
    }
}

#[test]
fn a_runaway_backlog_stops_the_run_with_what_it_recorded() {
    // Not `scheduled`, which produces its ticks, not the workload's arrivals; nor `saga`, whose
    // orchestrator has no concurrency limit: with no steps (this scenario calls nothing) each
    // saga ends after one history write, and it keeps up with a million a second.
    let runs_away = |k: &sim::spec::PatternKind| !matches!(k.name(), "scheduled" | "saga");
    let patterns = sim::patterns::REGISTRY.iter().map(|p| p.kind).filter(runs_away);
    for pattern in patterns {
        let mut s = Scenario { pattern, ..runaway(20_000) };
        if pattern == sim::patterns::fire_and_forget::KIND {
            // A bounded in-memory channel refuses what it cannot hold, so nothing piles up
            // (the run would go on for its hour): the runaway needs an unbounded one.
            let unbounded = sim::patterns::fire_and_forget::Settings {
                channel_capacity: Some(u64::from(u32::MAX)),
                ..Default::default()
            };
            s.pattern_table = sim::spec::table::PatternTable(Some(std::sync::Arc::new(unbounded)));
        }
        let r = run(&s, RunOptions::default(), &mut |_| {}).results;
        let stop = r.limit_stop.unwrap_or_else(|| panic!("{pattern:?}: the limit stopped it"));
        assert_eq!(stop.in_system, 20_001, "{pattern:?}");
        assert_eq!(stop.max_backlog, 20_000);
        assert!(stop.at < NS_PER_S, "{pattern:?}: stopped at {} ns", stop.at);
        assert!(stop.arrivals_per_s() > 100.0 * stop.completions_per_s().max(1.0));
        assert!(r.ledger.balances());
        assert!(!r.drained, "{pattern:?}: a stopped run is not drained");
        assert!(r.sim_time < NS_PER_S);
        assert_eq!(
            r.ledger.produced, stop.produced,
            "{pattern:?}: nothing produced after the stop"
        );
    }
}

#[test]
fn the_limit_does_not_touch_a_run_that_keeps_up() {
    let s = Scenario { limits: LimitsSpec { max_backlog: 1_000 }, ..long() };
    let s = Scenario { duration: 10 * NS_PER_MIN, ..s };
    let r = run(&s, RunOptions::default(), &mut |_| {}).results;
    assert_eq!(r.limit_stop, None);
    assert!(r.drained);
}
