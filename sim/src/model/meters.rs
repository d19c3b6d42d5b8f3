//! Meters: the message ledger, latency histograms, interval counters and time averages.
//!
//! Every model reports what happens to a message here, and nowhere else, so the ledger is
//! complete by construction and checked at the end of every run.

use crate::check::Checker;
use crate::engine::Sim;
use crate::ledger::{Exit, Holder, Holdings, Message};
use crate::limits::LimitStop;
use crate::model::series::{Series, SeriesSink};
use crate::results::{ClassResults, IntervalRow, Latency, Ledger};
use crate::time::Nanos;
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Which latency a value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lat {
    /// Accepted -> completed.
    EndToEnd,
    /// Accepted -> first delivery to a handler.
    QueueWait,
    /// One handler execution.
    Handler,
    /// Request -> accepted (the API's answer).
    Accept,
}

impl Lat {
    const ALL: [Lat; 4] = [Lat::EndToEnd, Lat::QueueWait, Lat::Handler, Lat::Accept];

    /// The name used in `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            Lat::EndToEnd => "end_to_end",
            Lat::QueueWait => "queue_wait",
            Lat::Handler => "handler",
            Lat::Accept => "accept",
        }
    }
}

/// A time-weighted average of an integer level (messages waiting, messages in the system).
#[derive(Clone, Copy, Debug, Default)]
pub struct Level {
    /// The level now.
    pub value: u64,
    /// The highest level seen.
    pub peak: u64,
    area: u128,
    since: Nanos,
}

impl Level {
    /// Changes the level at time `now` by `delta`.
    #[inline]
    pub fn add(&mut self, now: Nanos, delta: i64) {
        self.area += u128::from(self.value) * u128::from(now - self.since);
        self.since = now;
        self.value = self.value.checked_add_signed(delta).expect("level stays non-negative");
        self.peak = self.peak.max(self.value);
    }

    /// The time average over [0, now].
    pub fn mean(&self, now: Nanos) -> f64 {
        let area = self.area + u128::from(self.value) * u128::from(now - self.since);
        if now == 0 { 0.0 } else { area as f64 / now as f64 }
    }
}

#[derive(Default, Clone, Copy)]
struct IntervalCounts {
    arrivals: u64,
    completed: u64,
    failed: u64,
    dead_lettered: u64,
    expired: u64,
    rejected: u64,
}

/// The end-to-end latencies of the messages completed in the open interval, for its p50 and
/// p99. Closing an interval must be cheap (a run may have millions), so the values are kept
/// in a small buffer and the two quantiles found by selection; only an interval with more
/// than [`IntervalQuantiles::BUFFER`] completions spills into an HDR histogram (whose reset
/// then costs little per value). Both ways give the value the HDR histogram of the interval
/// would give: the highest value equivalent to the `ceil(q * n)`-th smallest one.
struct IntervalQuantiles {
    values: Vec<u64>,
    /// The spill histogram, allocated once; empty unless `spilled`.
    spill: Option<Histogram<u64>>,
    spilled: bool,
    highest: Nanos,
}

impl IntervalQuantiles {
    const BUFFER: usize = 4096;

    fn new(highest: Nanos) -> IntervalQuantiles {
        IntervalQuantiles { values: Vec::new(), spill: None, spilled: false, highest }
    }

    #[inline]
    fn record(&mut self, ns: Nanos) {
        if self.spilled {
            let h = self.spill.as_mut().expect("spilled into a histogram");
            h.record(ns).expect("latency within the scenario's horizon");
        } else if self.values.len() < Self::BUFFER {
            self.values.push(ns);
        } else {
            let highest = self.highest;
            let h = self.spill.get_or_insert_with(|| Latency::new(highest).hist);
            for &v in self.values.iter().chain([&ns]) {
                h.record(v).expect("latency within the scenario's horizon");
            }
            self.values.clear();
            self.spilled = true;
        }
    }

    /// p50 and p99 of the interval (0 when nothing completed), and a reset for the next one.
    /// `like` is any histogram with the same precision (its bucket edges are used).
    fn take(&mut self, like: &Histogram<u64>) -> (u64, u64) {
        if self.spilled {
            let h = self.spill.as_mut().expect("spilled into a histogram");
            let q = (h.value_at_quantile(0.5), h.value_at_quantile(0.99));
            h.reset();
            self.spilled = false;
            return q;
        }
        let n = self.values.len();
        if n == 0 {
            return (0, 0);
        }
        let mut at = |q: f64| {
            // the rank hdrhistogram's `value_at_quantile` looks for (1-based)
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            let (_, v, _) = self.values.select_nth_unstable(rank - 1);
            like.highest_equivalent(*v)
        };
        let q = (at(0.5), at(0.99));
        self.values.clear();
        q
    }
}

struct Inner {
    ledger: Ledger,
    holdings: Holdings,
    next_id: u64,
    /// Per-class accounts, when the workload has more than one class.
    classes: Vec<ClassResults>,
    latency: [Option<Latency>; 4],
    interval_e2e: IntervalQuantiles,
    counts: IntervalCounts,
    in_system: Level,
    backlog: Level,
    rows: Series,
    last_close: Nanos,
    peak_completed: u64,
}

/// Levels sampled at the end of an interval.
#[derive(Clone, Debug, Default)]
pub struct Levels {
    /// Messages waiting.
    pub backlog: u64,
    /// Messages in the system (waiting or in progress).
    pub in_flight: u64,
    /// Messages in progress: held, not waiting (locked by a handler, held by an API, stored
    /// jobs).
    pub in_progress: u64,
    /// Instances allocated.
    pub instances: u32,
    /// Cost accrued since the start, USD.
    pub cost_usd: f64,
    /// Web-tier response time over the interval (WebJob), ns.
    pub web_latency_ns: u64,
    /// The pattern's gauges, in the order of the columns set with
    /// [`Meters::set_state_columns`].
    pub state: Vec<f64>,
}

pub use crate::ledger::{Event, TraceEvent};

/// The meters of one run.
pub struct Meters {
    sim: Sim,
    trace: Option<RefCell<Vec<TraceEvent>>>,
    checkers: Option<RefCell<Vec<Box<dyn Checker>>>>,
    observed: bool,
    warmup: Nanos,
    inner: RefCell<Inner>,
    producing: Cell<bool>,
    executions: Cell<u64>,
    sink: Option<SeriesSink>,
    state_columns: RefCell<Rc<[String]>>,
    max_backlog: u64,
    stopped: Cell<Option<LimitStop>>,
}

impl Meters {
    /// Meters for a run whose latencies never exceed `horizon`; messages accepted before
    /// `warmup` are counted in the ledger but not in latency statistics.
    ///
    /// `classes` names the workload's classes (by index); with more than one, every exit
    /// and end-to-end latency is also counted per class. `checkers` (when given) see every
    /// event as it happens.
    pub fn new(
        sim: Sim,
        horizon: Nanos,
        warmup: Nanos,
        trace: bool,
        classes: &[String],
        checkers: Option<Vec<Box<dyn Checker>>>,
    ) -> Meters {
        let highest = horizon.saturating_mul(2);
        let classes = if classes.len() > 1 {
            classes.iter().map(|name| ClassResults::new(name, highest)).collect()
        } else {
            Vec::new()
        };
        Meters {
            sink: None,
            state_columns: RefCell::default(),
            max_backlog: u64::MAX,
            stopped: Cell::new(None),
            sim,
            observed: trace || checkers.is_some(),
            trace: trace.then(|| RefCell::new(Vec::new())),
            checkers: checkers.map(RefCell::new),
            warmup,
            inner: RefCell::new(Inner {
                ledger: Ledger::default(),
                holdings: Holdings::default(),
                next_id: 0,
                classes,
                latency: [
                    Some(Latency::new(highest)),
                    Some(Latency::new(highest)),
                    Some(Latency::new(highest)),
                    None,
                ],
                interval_e2e: IntervalQuantiles::new(highest),
                counts: IntervalCounts::default(),
                in_system: Level::default(),
                backlog: Level::default(),
                rows: Series::default(),
                last_close: 0,
                peak_completed: 0,
            }),
            producing: Cell::new(true),
            executions: Cell::new(0),
        }
    }

    /// Sends every closed interval's row to `sink` as well, as it is closed.
    pub fn with_sink(mut self, sink: Option<SeriesSink>) -> Meters {
        self.sink = sink;
        self
    }

    /// Stops the run when more than `max_backlog` messages are in the system at once (see
    /// [`crate::limits`]).
    pub fn with_max_backlog(mut self, max_backlog: u64) -> Meters {
        self.max_backlog = max_backlog;
        self
    }

    /// Why the run was stopped early, if a limit stopped it.
    pub fn limit_stop(&self) -> Option<LimitStop> {
        self.stopped.get()
    }

    /// Enables the `accept` histogram (patterns with an API in front).
    pub fn track_accept(&self, horizon: Nanos) {
        self.inner.borrow_mut().latency[3] = Some(Latency::new(horizon.saturating_mul(2)));
    }

    /// Shows an event of message `msg` to the trace and the checkers (a no-op unless
    /// tracing or checks are on).
    #[inline]
    pub fn trace(&self, msg: &Message, what: Event) {
        if self.observed {
            self.observe(TraceEvent { t: self.sim.now_ns(), id: msg.id, class: msg.class, what });
        }
    }

    #[cold]
    fn observe(&self, event: TraceEvent) {
        if let Some(t) = &self.trace {
            t.borrow_mut().push(event);
        }
        if let Some(c) = &self.checkers {
            for checker in c.borrow_mut().iter_mut() {
                checker.observe(&event);
            }
        }
    }

    fn counted(&self, accepted_at: Nanos) -> bool {
        accepted_at >= self.warmup
    }

    /// The workload offers a message of `class` now: it gets its id. It is in nobody's
    /// hands until a holder [admits](Meters::admit) it, or it is [rejected](Meters::reject).
    #[inline]
    pub fn produce(&self, class: u8) -> Message {
        let msg = {
            let mut m = self.inner.borrow_mut();
            m.ledger.produced += 1;
            m.counts.arrivals += 1;
            if let Some(c) = m.classes.get_mut(class as usize) {
                c.ledger.produced += 1;
            }
            let id = m.next_id;
            m.next_id += 1;
            Message { id, class, accepted_at: self.sim.now_ns(), work: 0 }
        };
        self.trace(&msg, Event::Produced);
        msg
    }

    /// `holder` takes in a message that nobody held. A holder that accepts starts the
    /// message's end-to-end clock ([`Message::accepted_at`]).
    #[inline]
    pub fn admit(&self, msg: &mut Message, holder: Holder) {
        let now = self.sim.now_ns();
        if holder.accepts() {
            msg.accepted_at = now;
        }
        {
            let mut m = self.inner.borrow_mut();
            m.holdings.add(holder);
            if holder.accepts() {
                m.in_system.add(now, 1);
            }
            self.check_limit(now, &m);
        }
        self.trace(msg, Event::Admitted(holder));
    }

    /// Stops the run (once) when more than `max_backlog` messages are in the system, an
    /// API's hands included.
    #[inline]
    fn check_limit(&self, now: Nanos, m: &Inner) {
        let held = m.holdings.in_flight();
        if held > self.max_backlog && self.stopped.get().is_none() {
            self.stopped.set(Some(LimitStop {
                at: now,
                in_system: held,
                max_backlog: self.max_backlog,
                produced: m.ledger.produced,
                completed: m.ledger.completed,
            }));
            self.sim.stop();
        }
    }

    /// `from` passes a message to `to`. Leaving the API for an accepting holder starts the
    /// message's end-to-end clock.
    #[inline]
    pub fn hand_over(&self, msg: &mut Message, from: Holder, to: Holder) {
        let now = self.sim.now_ns();
        {
            let mut m = self.inner.borrow_mut();
            m.holdings.remove(from);
            m.holdings.add(to);
            if !from.accepts() && to.accepts() {
                m.in_system.add(now, 1);
                msg.accepted_at = now;
            }
        }
        self.trace(msg, Event::HandedOver { from, to });
    }

    /// A message nobody held was refused at the door.
    pub fn reject(&self, msg: &Message) {
        {
            let mut m = self.inner.borrow_mut();
            m.ledger.rejected += 1;
            m.counts.rejected += 1;
            if let Some(c) = m.classes.get_mut(msg.class as usize) {
                c.ledger.rejected += 1;
            }
        }
        self.trace(msg, Event::Left(Exit::Rejected));
    }

    /// The message held by `from` leaves the system by `exit`. A completion records its
    /// end-to-end latency.
    #[inline]
    pub fn exit(&self, msg: &Message, from: Holder, exit: Exit) {
        let now = self.sim.now_ns();
        let empty = {
            let mut m = self.inner.borrow_mut();
            m.holdings.remove(from);
            let counted = msg.accepted_at >= self.warmup;
            let e2e = now - msg.accepted_at;
            let m = &mut *m;
            let class = m.classes.get_mut(msg.class as usize);
            match exit {
                Exit::Completed => {
                    m.ledger.completed += 1;
                    m.counts.completed += 1;
                    if counted {
                        m.latency[Lat::EndToEnd as usize].as_mut().expect("e2e").record(e2e);
                        m.interval_e2e.record(e2e);
                    }
                }
                Exit::DeadLettered => {
                    m.ledger.dead_lettered += 1;
                    m.counts.dead_lettered += 1;
                }
                Exit::Expired => {
                    m.ledger.expired += 1;
                    m.counts.expired += 1;
                }
                Exit::Lost => m.ledger.lost += 1,
                Exit::Rejected => {
                    m.ledger.rejected += 1;
                    m.counts.rejected += 1;
                }
            }
            if let Some(c) = class {
                c.count_exit(exit);
                if exit == Exit::Completed && counted {
                    c.end_to_end.record(e2e);
                }
            }
            if from.accepts() {
                m.in_system.add(now, -1);
            }
            m.holdings.in_flight() == 0
        };
        self.trace(msg, Event::Left(exit));
        if empty {
            self.check_done();
        }
    }

    /// A latency sample of a message accepted at `accepted_at`.
    #[inline]
    pub fn latency(&self, which: Lat, accepted_at: Nanos, value: Nanos) {
        if self.counted(accepted_at) {
            let mut m = self.inner.borrow_mut();
            if let Some(h) = &mut m.latency[which as usize] {
                h.record(value);
            }
        }
    }

    /// A message was delivered to a handler.
    #[inline]
    pub fn delivered(&self) {
        self.inner.borrow_mut().ledger.deliveries += 1;
    }

    /// A handler succeeded on a message that had already been handled successfully.
    pub fn duplicate(&self) {
        self.inner.borrow_mut().ledger.duplicates += 1;
    }

    /// A handler succeeded after its message had left the queue unhandled.
    pub fn late_success(&self) {
        self.inner.borrow_mut().ledger.late_successes += 1;
    }

    /// A handler execution failed.
    #[inline]
    pub fn failed(&self) {
        self.inner.borrow_mut().counts.failed += 1;
    }

    /// Stops the run if production has ended and nothing is left anywhere.
    fn check_done(&self) {
        if !self.producing.get()
            && self.executions.get() == 0
            && self.inner.borrow().holdings.in_flight() == 0
        {
            self.sim.stop();
        }
    }

    /// A handler execution started. The run does not end while one runs, even when its
    /// message has already left the queue (a handler on a lapsed lock may still succeed).
    #[inline]
    pub fn execution_started(&self) {
        self.executions.set(self.executions.get() + 1);
    }

    /// `n` handler executions ended (finished, killed, or dropped by a crash).
    #[inline]
    pub fn executions_ended(&self, n: u64) {
        self.executions.set(self.executions.get() - n);
        if n > 0 {
            self.check_done();
        }
    }

    /// The workload has produced its last message: the run stops once the system is empty.
    pub fn production_ended(&self) {
        self.producing.set(false);
        self.check_done();
    }

    /// Whether the workload is still producing.
    pub fn producing(&self) -> bool {
        self.producing.get()
    }

    /// The messages waiting in all queues changed by `delta` at `now`.
    #[inline]
    pub fn backlog_changed(&self, now: Nanos, delta: i64) {
        self.inner.borrow_mut().backlog.add(now, delta);
    }

    /// Highest number of messages waiting in all queues together, and its time average up
    /// to now.
    pub fn backlog_stats(&self) -> (u64, f64) {
        let m = self.inner.borrow();
        (m.backlog.peak, m.backlog.mean(self.sim.now_ns()))
    }

    /// What each holder holds now.
    pub fn holdings(&self) -> Holdings {
        self.inner.borrow().holdings
    }

    /// Closes the interval ending now with the given levels.
    pub fn close_interval(&self, levels: Levels) {
        let now = self.sim.now_ns();
        let mut m = self.inner.borrow_mut();
        let m = &mut *m;
        let c = std::mem::take(&mut m.counts);
        let like = &m.latency[Lat::EndToEnd as usize].as_ref().expect("e2e").hist;
        let (p50, p99) = m.interval_e2e.take(like);
        m.last_close = now;
        m.peak_completed = m.peak_completed.max(c.completed);
        let row = IntervalRow {
            t: now,
            arrivals: c.arrivals,
            completed: c.completed,
            failed: c.failed,
            dead_lettered: c.dead_lettered,
            expired: c.expired,
            rejected: c.rejected,
            backlog: levels.backlog,
            in_flight: levels.in_flight,
            in_progress: levels.in_progress,
            instances: levels.instances,
            cost_usd: levels.cost_usd,
            web_latency_ns: levels.web_latency_ns,
            latency_p50_ns: p50,
            latency_p99_ns: p99,
            state: levels.state,
            state_columns: self.state_columns.borrow().clone(),
        };
        if let Some(sink) = &self.sink {
            sink.send(&row);
        }
        m.rows.push(row);
    }

    /// Names the pattern's gauge columns (once, before the first interval closes).
    pub fn set_state_columns(&self, columns: Vec<String>) {
        *self.state_columns.borrow_mut() = columns.into();
    }

    /// The pattern's gauge columns.
    pub fn state_columns(&self) -> Vec<String> {
        self.state_columns.borrow().to_vec()
    }

    /// The time at which the interval that is open now began.
    pub fn interval_start(&self) -> Nanos {
        self.inner.borrow().last_close
    }

    /// Freezes the meters.
    pub fn finish(self) -> Finished {
        let now = self.sim.now_ns();
        let trace = self.trace.map(RefCell::into_inner).unwrap_or_default();
        let checkers = self.checkers.map(RefCell::into_inner);
        let mut m = self.inner.into_inner();
        m.rows.finish();
        let mut lat = Vec::new();
        for (which, h) in Lat::ALL.into_iter().zip(m.latency) {
            if let Some(h) = h {
                lat.push((which.name(), h));
            }
        }
        let mut ledger = m.ledger;
        ledger.in_flight = m.holdings.in_flight();
        let mut classes = m.classes;
        for c in &mut classes {
            let l = &mut c.ledger;
            l.in_flight =
                l.produced - l.rejected - l.completed - l.dead_lettered - l.expired - l.lost;
        }
        Finished {
            ledger,
            latency: lat,
            classes,
            rows: m.rows,
            state_columns: self.state_columns.into_inner().to_vec(),
            peak_completed: m.peak_completed,
            limit_stop: self.stopped.get(),
            in_system_mean: m.in_system.mean(now),
            trace,
            checkers,
        }
    }
}

/// What the meters hold at the end of a run.
pub struct Finished {
    /// The ledger; `in_flight` is what the holders still hold.
    pub ledger: Ledger,
    /// Per-class accounts (empty with a single class).
    pub classes: Vec<ClassResults>,
    /// The checkers, to be asked for their verdicts (`None` unless checks were on).
    pub checkers: Option<Vec<Box<dyn Checker>>>,
    /// Latency histograms by summary name.
    pub latency: Vec<(&'static str, Latency)>,
    /// The time series, downsampled to a bounded number of rows.
    pub rows: Series,
    /// The pattern's gauge columns in the time series.
    pub state_columns: Vec<String>,
    /// The most messages completed in one interval.
    pub peak_completed: u64,
    /// Why the run was stopped early, if a limit stopped it.
    pub limit_stop: Option<LimitStop>,
    /// Time-averaged number of messages in the system.
    pub in_system_mean: f64,
    /// Traced events (empty unless tracing was on).
    pub trace: Vec<TraceEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_time_average() {
        let mut l = Level::default();
        l.add(0, 2); // 2 for 10 ns
        l.add(10, -1); // 1 for 30 ns
        assert_eq!(l.peak, 2);
        assert!((l.mean(40) - (20.0 + 30.0) / 40.0).abs() < 1e-12);
    }

    /// The cheap per-interval quantiles give exactly what a full HDR histogram of the
    /// interval gave (the numbers in timeseries.csv must not change), buffered or spilled.
    #[test]
    fn interval_quantiles_equal_the_hdr_histograms() {
        let highest = 3_600 * crate::time::NS_PER_S;
        let like = Latency::new(highest).hist;
        let mut rng = crate::rng::Rng::stream(7, "test");
        let mut q = IntervalQuantiles::new(highest);
        let sizes = [0, 1, 2, 3, 99, 100, 101, 1000, 4095, 4096, 4097, 10_000, 5, 0, 7];
        for (i, &n) in sizes.iter().cycle().take(45).enumerate() {
            let mut reference = Latency::new(highest);
            for _ in 0..n {
                // spread over magnitudes: 0, sub-microsecond, ms, s
                let v = match rng.next_u64() % 4 {
                    0 => rng.next_u64() % 1_000,
                    1 => rng.next_u64() % 10_000_000,
                    2 => rng.next_u64() % 2_000_000_000,
                    _ => {
                        if i % 2 == 0 {
                            0
                        } else {
                            123_456_789
                        }
                    }
                };
                reference.record(v);
                q.record(v);
            }
            let expected = (reference.quantile_ns(0.5), reference.quantile_ns(0.99));
            assert_eq!(q.take(&like), expected, "interval {i} with {n} values");
        }
    }
}
