//! The time series of a run, bounded: every interval row goes to an optional sink as it is
//! closed (the harness writes `timeseries.csv` from it, row by row), and a deterministic
//! downsample of at most [`Downsampled::DEFAULT_CAP`] rows stays in memory for charts and
//! reports.
//!
//! # How rows are merged
//!
//! The downsample keeps one row per `step` raw intervals; `step` starts at 1 and doubles each
//! time the kept rows reach the cap (neighbouring pairs are merged). A run of up to the cap's
//! intervals is therefore kept exactly; a longer one is kept at a coarser, uniform resolution
//! (the last row may cover fewer intervals). The merge of an earlier row `a` with the next row
//! `b` ([`Merge`]) is, column by column:
//!
//! | column | merged as |
//! | --- | --- |
//! | `t` | `b.t` (the end of the merged span) |
//! | `arrivals`, `completed`, `failed`, `dead_lettered`, `expired`, `rejected` | sum |
//! | `backlog`, `in_flight`, `in_progress`, `instances` | max (the peak level at an interval end) |
//! | `cost_usd` | `b`'s (cost accrued since the start) |
//! | `web_latency_ns` | max (the worst interval) |
//! | `latency_p50_ns`, `latency_p99_ns` | max (the worst interval's quantile) |
//! | `state` (pattern gauges) | max, column by column |
//!
//! Rates stay right: a chart divides a row's counts by its span (`t` minus the previous
//! row's `t`). The group boundaries depend only on row positions, so the same rows always give
//! the same downsample, whether they are merged as [`IntervalRow`]s in the simulator or read
//! back from `timeseries.csv` (every merge above commutes with the reports' rounding).

use crate::time::Nanos;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

/// A row that can absorb the row of the interval that follows it.
pub trait Merge {
    /// Merges `later`, the row right after `self`, into `self` (see the module docs).
    fn merge(&mut self, later: &Self);
}

impl Merge for IntervalRow {
    fn merge(&mut self, b: &IntervalRow) {
        self.t = b.t;
        self.arrivals += b.arrivals;
        self.completed += b.completed;
        self.failed += b.failed;
        self.dead_lettered += b.dead_lettered;
        self.expired += b.expired;
        self.rejected += b.rejected;
        self.backlog = self.backlog.max(b.backlog);
        self.in_flight = self.in_flight.max(b.in_flight);
        self.in_progress = self.in_progress.max(b.in_progress);
        self.instances = self.instances.max(b.instances);
        self.cost_usd = b.cost_usd;
        self.web_latency_ns = self.web_latency_ns.max(b.web_latency_ns);
        self.latency_p50_ns = self.latency_p50_ns.max(b.latency_p50_ns);
        self.latency_p99_ns = self.latency_p99_ns.max(b.latency_p99_ns);
        merge_state(&mut self.state, &b.state);
    }
}

/// Pattern state columns merge as levels do: the higher value at an interval end.
pub fn merge_state(a: &mut [f64], b: &[f64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.max(*y);
    }
}

/// A number a pattern keeps up to date (a breaker's state, a stream's lag, the sagas in
/// progress): its value at the end of each interval becomes a column of `timeseries.csv`
/// and a line on the report's pattern-state chart ([`crate::topology::Topology::gauge`]).
/// Clones share the value.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Rc<Cell<f64>>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }

    /// Adds `dv` to the value.
    pub fn add(&self, dv: f64) {
        self.0.set(self.0.get() + dv);
    }

    /// The value now.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A bounded, deterministic downsample of a time series (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Downsampled<R> {
    rows: Vec<R>,
    cap: usize,
    step: u64,
    pending: Option<(R, u64)>,
    seen: u64,
}

impl<R> Default for Downsampled<R> {
    fn default() -> Self {
        Downsampled::new(Self::DEFAULT_CAP)
    }
}

impl<R> Downsampled<R> {
    /// Rows kept by default: 4096 (11.4 hours at a 10 s interval are kept exactly).
    pub const DEFAULT_CAP: usize = 4096;

    /// An empty series that keeps at most `cap` rows (`cap` is rounded up to an even number,
    /// at least 2).
    pub fn new(cap: usize) -> Self {
        let cap = (cap.max(2) + 1) & !1;
        Downsampled { rows: Vec::new(), cap, step: 1, pending: None, seen: 0 }
    }

    /// Raw intervals per kept row (a power of two; 1 while nothing was merged).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Raw rows pushed so far.
    pub fn rows_seen(&self) -> u64 {
        self.seen
    }

    /// The kept rows (without a group still being filled; see [`Downsampled::finish`]).
    pub fn rows(&self) -> &[R] {
        &self.rows
    }
}

impl<R: Merge + Clone> Downsampled<R> {
    /// Adds the next raw row.
    pub fn push(&mut self, row: R) {
        self.seen += 1;
        let (acc, n) = match self.pending.take() {
            None => (row, 1),
            Some((mut acc, n)) => {
                acc.merge(&row);
                (acc, n + 1)
            }
        };
        if n < self.step {
            self.pending = Some((acc, n));
            return;
        }
        self.rows.push(acc);
        if self.rows.len() >= self.cap {
            self.halve();
        }
    }

    fn halve(&mut self) {
        let old = std::mem::take(&mut self.rows);
        let mut it = old.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                a.merge(&b);
            }
            self.rows.push(a);
        }
        self.step *= 2;
    }

    /// Flushes a partly filled last group as a row of its own (the last row may span fewer
    /// intervals than the others).
    pub fn finish(&mut self) {
        if let Some((acc, _)) = self.pending.take() {
            self.rows.push(acc);
        }
    }

    /// Builds the downsample of `rows`, finished.
    pub fn from_rows(rows: impl IntoIterator<Item = R>, cap: usize) -> Self {
        let mut d = Downsampled::new(cap);
        for r in rows {
            d.push(r);
        }
        d.finish();
        d
    }
}

impl<R> Deref for Downsampled<R> {
    type Target = [R];

    fn deref(&self) -> &[R] {
        &self.rows
    }
}

/// The time series a run keeps in memory.
pub type Series = Downsampled<IntervalRow>;

/// Where every interval row goes as it is closed, in order (the harness writes
/// `timeseries.csv` from it). Cloning shares the same sink.
#[derive(Clone)]
pub struct SeriesSink(Rc<RefCell<RowFn>>);

/// What a [`SeriesSink`] calls with each row.
type RowFn = dyn FnMut(&IntervalRow);

impl SeriesSink {
    /// A sink that calls `f` with each row.
    pub fn new(f: impl FnMut(&IntervalRow) + 'static) -> SeriesSink {
        SeriesSink(Rc::new(RefCell::new(f)))
    }

    /// Hands `row` to the sink.
    pub fn send(&self, row: &IntervalRow) {
        (self.0.borrow_mut())(row);
    }
}

impl fmt::Debug for SeriesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeriesSink")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u64) -> IntervalRow {
        IntervalRow {
            t: (i + 1) * 10,
            arrivals: i,
            completed: 1,
            backlog: i % 7,
            cost_usd: i as f64,
            latency_p99_ns: 100 - i % 5,
            ..IntervalRow::default()
        }
    }

    #[test]
    fn short_series_are_kept_exactly() {
        let d = Downsampled::from_rows((0..100).map(row), 128);
        assert_eq!(d.step(), 1);
        assert_eq!(&d[..], &(0..100).map(row).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn long_series_stay_bounded_and_keep_totals_and_peaks() {
        let n = 10_001;
        let d = Downsampled::from_rows((0..n).map(row), 64);
        assert!(d.len() <= 64, "{} rows", d.len());
        assert_eq!(d.rows_seen(), n);
        assert_eq!(d.iter().map(|r| r.completed).sum::<u64>(), n);
        assert_eq!(d.iter().map(|r| r.arrivals).sum::<u64>(), (0..n).sum::<u64>());
        assert_eq!(d.iter().map(|r| r.backlog).max(), Some(6));
        assert_eq!(d.last().unwrap().t, n * 10, "the last row ends where the run ended");
        assert_eq!(d.last().unwrap().cost_usd, (n - 1) as f64);
        // uniform groups: every row but the last spans `step` intervals
        let step = d.step();
        assert!(d[..d.len() - 1].iter().all(|r| r.completed == step));
        let t: Vec<u64> = d.iter().map(|r| r.t).collect();
        assert!(t.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn pushing_one_by_one_equals_building_at_once() {
        let mut a = Downsampled::new(16);
        for i in 0..1000 {
            a.push(row(i));
        }
        a.finish();
        assert_eq!(a, Downsampled::from_rows((0..1000).map(row), 16));
    }
}

/// One row of the time series: what happened in the interval ending at `t`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntervalRow {
    /// End of the interval.
    pub t: Nanos,
    /// Messages produced in the interval.
    pub arrivals: u64,
    /// Messages completed.
    pub completed: u64,
    /// Handler executions that failed (the message was abandoned or its call failed).
    pub failed: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Messages expired by TTL.
    pub expired: u64,
    /// Messages rejected at the door.
    pub rejected: u64,
    /// Messages waiting (visible or delayed, not locked) at the end of the interval.
    pub backlog: u64,
    /// Messages in the system at the end of the interval: waiting or in progress (what
    /// `messages.in_flight` counts at the end of a run).
    pub in_flight: u64,
    /// Of those, messages in progress: locked by a handler, held by an API still accepting
    /// them, stored jobs, ... (`in_flight - backlog`).
    pub in_progress: u64,
    /// Consumer instances running at the end of the interval.
    pub instances: u32,
    /// Cost accrued since the start of the run, USD.
    pub cost_usd: f64,
    /// Mean web-tier response time in the interval (WebJob plans; ns, 0 otherwise).
    pub web_latency_ns: u64,
    /// Median end-to-end latency of the messages completed in the interval (ns; 0 if none).
    pub latency_p50_ns: u64,
    /// 99th percentile of the same (ns; 0 if none).
    pub latency_p99_ns: u64,
    /// The pattern's gauges at the end of the interval, in the order of `state_columns`.
    pub state: Vec<f64>,
    /// The gauges' column names (`breaker.open`, `stream.lag`, ...), shared by every row.
    pub state_columns: Rc<[String]>,
}
