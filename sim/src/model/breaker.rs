//! Circuit breakers with the state machines of the libraries people deploy. Sources in
//! `docs/sources.md`.
//!
//! ```text
//!            failures pass the threshold
//!  Closed ─────────────────────────────────► Open ──(break over; the next call is let
//!    ▲                                        ▲       through as a probe)──► HalfOpen
//!    │            probe fails (break again,   │                                │
//!    │            maybe longer) ──────────────┴────────────────────────────────┤
//!    └──────────────────────────── probe succeeds ─────────────────────────────┘
//! ```
//!
//! * [`Kind::Consecutive`]: Polly v7 `CircuitBreaker` (`ConsecutiveCountCircuitController`):
//!   `failure_threshold` handled failures in a row open it. While half-open, a probe is let
//!   through whenever the break has passed, and each probe pushes the break forward, so a
//!   probe that hangs lets another through one break later.
//! * [`Kind::Ratio`]: Polly v8 (`AdvancedCircuitBehavior`, `RollingHealthMetrics`,
//!   `CircuitStateController`): outcomes go into `sampling_duration` split in 10 windows; a
//!   handled failure while closed opens it when throughput ≥ `minimum_throughput` and
//!   failures / throughput ≥ `failure_ratio`. No timer: the first call after the break
//!   moves it to half-open and is the single probe; every other call is rejected while
//!   half-open. A failed probe opens it for `break_duration × break_growth^attempts`
//!   (`BreakDurationGenerator` with the half-open attempt count).
//! * [`Kind::CountWindow`] / [`Kind::TimeWindow`]: resilience4j (`CircuitBreakerStateMachine`,
//!   `FixedSizeSlidingWindowMetrics`, `SlidingTimeWindowMetrics`): the last `window_size`
//!   outcomes, or the last `window_size` one-second buckets. Once the window holds
//!   `minimum_throughput` calls (for a count window, at most `window_size`), it opens when
//!   the failure rate ≥ `failure_ratio` **or** the slow-call rate (calls slower than
//!   `slow_call_duration`) ≥ `slow_call_ratio`, checked after every outcome. The first call
//!   once the clock is strictly past the wait moves it to half-open, which lets
//!   `half_open_calls` calls through and decides once min(`minimum_throughput`,
//!   `half_open_calls`) of them have answered (a count window of that size). Each failed
//!   half-open grows the next wait (`waitIntervalFunctionInOpenState` with the attempts).
//!
//! In every kind, the state that judges an outcome is the state when the outcome arrives
//! (the libraries do the same): a call that started before the break and fails while the
//! breaker is open changes nothing, and any outcome that arrives while half-open decides.
//! Time is simulated (ns), and a breaker changes state only when it is called or told an
//! outcome: [`Breaker::before_call`] and [`Breaker::after_call`].

use crate::time::{NS_PER_S, Nanos};
use std::collections::VecDeque;

/// Which library's breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Polly v7 `CircuitBreaker`: consecutive failures.
    Consecutive,
    /// Polly v8 circuit breaker: failure ratio over a sampling duration.
    Ratio,
    /// resilience4j, `COUNT_BASED` sliding window.
    CountWindow,
    /// resilience4j, `TIME_BASED` sliding window (one-second buckets).
    TimeWindow,
}

impl Kind {
    /// Every kind, in the order scenario files list them.
    pub const ALL: [Kind; 4] =
        [Kind::Consecutive, Kind::Ratio, Kind::CountWindow, Kind::TimeWindow];

    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Consecutive => "consecutive",
            Kind::Ratio => "ratio",
            Kind::CountWindow => "count-window",
            Kind::TimeWindow => "time-window",
        }
    }

    /// Whether this is one of Polly's breakers (one probe at a time).
    pub fn is_polly(self) -> bool {
        matches!(self, Kind::Consecutive | Kind::Ratio)
    }
}

/// A breaker's settings (the scenario's `[breaker]`, defaults resolved).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Which state machine.
    pub kind: Kind,
    /// Consecutive: handled failures in a row that open it.
    pub failure_threshold: u32,
    /// How long it stays open.
    pub break_duration: Nanos,
    /// Ratio and windows: the failure rate that opens it (0..=1).
    pub failure_ratio: f64,
    /// Ratio: the sampling duration (10 windows).
    pub sampling_duration: Nanos,
    /// Ratio and windows: calls the window must hold before a rate counts.
    pub minimum_throughput: u32,
    /// Windows: outcomes (count) or seconds (time) in the window.
    pub window_size: u32,
    /// Windows: a call slower than this is slow.
    pub slow_call_duration: Nanos,
    /// Windows: the slow-call rate that opens it.
    pub slow_call_ratio: f64,
    /// Calls let through while half-open (1 for Polly).
    pub half_open_calls: u32,
    /// Each failed probe multiplies the break by this (1 = a fixed break).
    pub break_growth: f64,
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls go through; outcomes are sampled.
    Closed,
    /// Calls are rejected until the break is over.
    Open,
    /// Probes go through; their outcomes decide.
    HalfOpen,
}

/// What [`Breaker::before_call`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Make the call; `probe` when the breaker is half-open.
    Call {
        /// The call is a half-open probe.
        probe: bool,
    },
    /// Rejected (Polly `BrokenCircuitException`, resilience4j `CallNotPermittedException`).
    Rejected {
        /// Until the break is over, as the exception's `RetryAfter` (0 when unknown).
        retry_after: Nanos,
    },
}

/// A change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Opened (from closed or half-open) until `until`.
    Opened {
        /// When the break is over.
        until: Nanos,
    },
    /// Moved to half-open.
    HalfOpened,
    /// Closed again.
    Closed,
}

/// Successes, failures and slow calls in one part of a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    successes: u32,
    failures: u32,
    slow: u32,
}

impl Tally {
    fn add(&mut self, failed: bool, slow: bool) {
        if failed {
            self.failures += 1;
        } else {
            self.successes += 1;
        }
        self.slow += u32::from(slow);
    }

    fn total(&self) -> u32 {
        self.successes + self.failures
    }
}

/// Polly v8 `RollingHealthMetrics`: windows of `sampling / 10` opened by the first outcome
/// after the previous one has run out, dropped once they started `sampling` ago.
#[derive(Clone, Debug)]
struct Rolling {
    sampling: Nanos,
    window: Nanos,
    /// (started at, tally), oldest first; the last is the current window.
    windows: VecDeque<(Nanos, Tally)>,
}

impl Rolling {
    fn new(sampling: Nanos) -> Rolling {
        Rolling { sampling, window: sampling / 10, windows: VecDeque::new() }
    }

    /// `UpdateCurrentWindow`: the current window, opening one if needed, after dropping
    /// expired ones.
    fn current(&mut self, now: Nanos) -> &mut Tally {
        let open_new = self.windows.back().is_none_or(|(start, _)| now - start >= self.window);
        if open_new {
            self.windows.push_back((now, Tally::default()));
        }
        while self.windows.front().is_some_and(|(start, _)| now - start >= self.sampling) {
            self.windows.pop_front();
        }
        &mut self.windows.back_mut().expect("the current window is never dropped").1
    }

    /// `GetHealthInfo`: (throughput, failures).
    fn health(&mut self, now: Nanos) -> (u32, u32) {
        self.current(now);
        let sum = self.windows.iter().fold(Tally::default(), |mut s, (_, t)| {
            s.successes += t.successes;
            s.failures += t.failures;
            s
        });
        (sum.total(), sum.failures)
    }

    fn reset(&mut self) {
        self.windows.clear();
    }
}

/// resilience4j's sliding windows: a ring of the last `size` outcomes, or `size`
/// one-second buckets.
#[derive(Clone, Debug)]
enum Window {
    Count { size: u32, ring: VecDeque<Tally> },
    Time { seconds: u64, buckets: VecDeque<(u64, Tally)> },
}

impl Window {
    fn count(size: u32) -> Window {
        Window::Count { size, ring: VecDeque::new() }
    }

    fn time(seconds: u32) -> Window {
        Window::Time { seconds: u64::from(seconds), buckets: VecDeque::new() }
    }

    fn record(&mut self, now: Nanos, failed: bool, slow: bool) {
        match self {
            Window::Count { size, ring } => {
                let mut one = Tally::default();
                one.add(failed, slow);
                ring.push_back(one);
                if ring.len() > *size as usize {
                    ring.pop_front();
                }
            }
            Window::Time { buckets, .. } => {
                let second = now / NS_PER_S;
                if buckets.back().is_none_or(|(s, _)| *s != second) {
                    buckets.push_back((second, Tally::default()));
                }
                buckets.back_mut().expect("just pushed").1.add(failed, slow);
            }
        }
    }

    /// The totals of what is still in the window at `now`.
    fn totals(&mut self, now: Nanos) -> Tally {
        let sum = |it: &mut dyn Iterator<Item = Tally>| {
            it.fold(Tally::default(), |mut s, t| {
                s.successes += t.successes;
                s.failures += t.failures;
                s.slow += t.slow;
                s
            })
        };
        match self {
            Window::Count { ring, .. } => sum(&mut ring.iter().copied()),
            Window::Time { seconds, buckets } => {
                let second = now / NS_PER_S;
                while buckets.front().is_some_and(|(s, _)| s + *seconds <= second) {
                    buckets.pop_front();
                }
                sum(&mut buckets.iter().map(|(_, t)| *t))
            }
        }
    }
}

/// resilience4j: with at least `min` calls, the failure rate or the slow-call rate is at or
/// over its threshold.
fn over_thresholds(c: &Config, t: Tally, min: u32) -> bool {
    let total = t.total();
    if total == 0 || total < min {
        return false;
    }
    let failure_rate = f64::from(t.failures) / f64::from(total);
    let slow_rate = f64::from(t.slow) / f64::from(total);
    failure_rate >= c.failure_ratio || slow_rate >= c.slow_call_ratio
}

/// The kind-specific part of the state.
#[derive(Clone, Debug)]
enum Stats {
    Consecutive { failures: u32 },
    Ratio { metrics: Rolling },
    Windows { closed: Window, half_open: Window, permits: u32 },
}

/// One circuit breaker.
#[derive(Clone, Debug)]
pub struct Breaker {
    config: Config,
    state: State,
    /// Polly's `blockedUntil`, resilience4j's `retryAfterWaitDuration`.
    blocked_until: Nanos,
    /// Half-open attempts since the breaker last closed (the break grows with them).
    half_open_attempts: u32,
    stats: Stats,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: Config) -> Breaker {
        let stats = match config.kind {
            Kind::Consecutive => Stats::Consecutive { failures: 0 },
            Kind::Ratio => Stats::Ratio { metrics: Rolling::new(config.sampling_duration) },
            Kind::CountWindow | Kind::TimeWindow => Stats::Windows {
                closed: Breaker::closed_window(&config),
                half_open: Window::count(config.half_open_calls),
                permits: 0,
            },
        };
        Breaker { config, state: State::Closed, blocked_until: 0, half_open_attempts: 0, stats }
    }

    fn closed_window(c: &Config) -> Window {
        if c.kind == Kind::TimeWindow {
            Window::time(c.window_size)
        } else {
            Window::count(c.window_size)
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state as last changed (an open breaker whose break is over stays open until the
    /// next call, as in the libraries).
    pub fn state(&self) -> State {
        self.state
    }

    /// When the current break is over (meaningful while open or half-open).
    pub fn blocked_until(&self) -> Nanos {
        self.blocked_until
    }

    /// Asks to make a call at `now`. Returns the decision and the change of state it made
    /// (an open breaker whose break is over moves to half-open here).
    pub fn before_call(&mut self, now: Nanos) -> (Decision, Option<Change>) {
        let retry_after = self.blocked_until.saturating_sub(now);
        let rejected = Decision::Rejected { retry_after };
        match (self.config.kind, self.state) {
            (_, State::Closed) => (Decision::Call { probe: false }, None),
            (Kind::Consecutive, State::Open | State::HalfOpen) => {
                // Polly v7: reading the state moves Open to HalfOpen once the break is over;
                // then PermitHalfOpenCircuitTest lets one call through per break.
                let change = (self.state == State::Open && now >= self.blocked_until).then(|| {
                    self.state = State::HalfOpen;
                    Change::HalfOpened
                });
                if self.state == State::HalfOpen && now >= self.blocked_until {
                    self.blocked_until = now + self.config.break_duration;
                    (Decision::Call { probe: true }, change)
                } else {
                    (rejected, change)
                }
            }
            (Kind::Ratio, State::Open) if now >= self.blocked_until => {
                self.blocked_until = now + self.config.break_duration;
                self.half_open_attempts += 1;
                self.state = State::HalfOpen;
                (Decision::Call { probe: true }, Some(Change::HalfOpened))
            }
            (Kind::Ratio, _) => (rejected, None),
            // resilience4j: once the clock is strictly after the wait
            (Kind::CountWindow | Kind::TimeWindow, State::Open) if now > self.blocked_until => {
                self.state = State::HalfOpen;
                if let Stats::Windows { half_open, permits, .. } = &mut self.stats {
                    *half_open = Window::count(self.config.half_open_calls);
                    *permits = self.config.half_open_calls - 1; // this call takes one
                }
                (Decision::Call { probe: true }, Some(Change::HalfOpened))
            }
            (Kind::CountWindow | Kind::TimeWindow, State::HalfOpen) => match &mut self.stats {
                Stats::Windows { permits, .. } if *permits > 0 => {
                    *permits -= 1;
                    (Decision::Call { probe: true }, None)
                }
                _ => (Decision::Rejected { retry_after: 0 }, None),
            },
            (Kind::CountWindow | Kind::TimeWindow, State::Open) => (rejected, None),
        }
    }

    /// Tells the breaker how a call it let through went: `failed` (a handled failure: an
    /// error or a timeout) and how long it took. Returns the change of state it made.
    pub fn after_call(&mut self, now: Nanos, failed: bool, took: Nanos) -> Option<Change> {
        let slow = took > self.config.slow_call_duration;
        let c = &self.config;
        let state = self.state;
        let next = match &mut self.stats {
            Stats::Consecutive { failures } => match (state, failed) {
                (State::Closed, false) => {
                    *failures = 0;
                    None
                }
                (State::Closed, true) => {
                    *failures += 1;
                    (*failures >= c.failure_threshold).then_some(State::Open)
                }
                (State::HalfOpen, false) => Some(State::Closed),
                (State::HalfOpen, true) => Some(State::Open),
                (State::Open, _) => None,
            },
            Stats::Ratio { metrics } => match (state, failed) {
                // OnActionSuccess counts in every state; a half-open breaker closes.
                (_, false) => {
                    metrics.current(now).successes += 1;
                    (state == State::HalfOpen).then_some(State::Closed)
                }
                (State::Closed, true) => {
                    metrics.current(now).failures += 1;
                    let (throughput, failures) = metrics.health(now);
                    let ratio = f64::from(failures) / f64::from(throughput);
                    let trip = throughput >= c.minimum_throughput && ratio >= c.failure_ratio;
                    trip.then_some(State::Open)
                }
                // A call made before the break: counted, and the break is not extended.
                (State::Open, true) => {
                    metrics.current(now).failures += 1;
                    None
                }
                (State::HalfOpen, true) => Some(State::Open),
            },
            Stats::Windows { closed, half_open, .. } => match state {
                State::Closed => {
                    closed.record(now, failed, slow);
                    let min = match closed {
                        Window::Count { size, .. } => c.minimum_throughput.min(*size),
                        Window::Time { .. } => c.minimum_throughput,
                    };
                    over_thresholds(c, closed.totals(now), min).then_some(State::Open)
                }
                State::Open => None, // recorded by resilience4j, but replaced at half-open
                State::HalfOpen => {
                    // A count window of half_open_calls, whose minimum is at most its size.
                    half_open.record(now, failed, slow);
                    let t = half_open.totals(now);
                    let min = c.minimum_throughput.min(c.half_open_calls);
                    if t.total() < min {
                        None
                    } else if over_thresholds(c, t, min) {
                        Some(State::Open)
                    } else {
                        Some(State::Closed)
                    }
                }
            },
        };
        match next? {
            State::Open => {
                if state == State::HalfOpen && !self.config.kind.is_polly() {
                    self.half_open_attempts += 1; // resilience4j counts failed half-opens
                }
                Some(self.open(now))
            }
            State::Closed => Some(self.close()),
            State::HalfOpen => None,
        }
    }

    /// Opens for the break (grown by the half-open attempts so far).
    fn open(&mut self, now: Nanos) -> Change {
        let base = self.config.break_duration;
        let d = if self.config.break_growth == 1.0 {
            base
        } else {
            let grown = base as f64
                * libm::pow(self.config.break_growth, f64::from(self.half_open_attempts));
            if grown >= u64::MAX as f64 { u64::MAX } else { grown as Nanos }
        };
        self.blocked_until = now.saturating_add(d);
        self.state = State::Open;
        Change::Opened { until: self.blocked_until }
    }

    /// Closes and resets the statistics.
    fn close(&mut self) -> Change {
        self.state = State::Closed;
        self.blocked_until = 0;
        self.half_open_attempts = 0;
        let fresh = Breaker::closed_window(&self.config);
        match &mut self.stats {
            Stats::Consecutive { failures } => *failures = 0,
            Stats::Ratio { metrics } => metrics.reset(),
            Stats::Windows { closed, .. } => *closed = fresh,
        }
        Change::Closed
    }

    /// For a listener that pauses while the breaker rejects: how many messages it may take
    /// now (`None`: none; look again later). Closed: any number; when a probe would be let
    /// through: the probes the breaker would let through.
    pub fn admits(&self, now: Nanos) -> Option<u32> {
        match (self.config.kind, self.state) {
            (_, State::Closed) => Some(u32::MAX),
            (Kind::Consecutive, _) | (Kind::Ratio, State::Open) => {
                (now >= self.blocked_until).then_some(1)
            }
            (Kind::Ratio, _) => None,
            (_, State::Open) => (now > self.blocked_until).then_some(self.config.half_open_calls),
            (_, State::HalfOpen) => match self.stats {
                Stats::Windows { permits, .. } if permits > 0 => Some(permits),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NS_PER_MS;

    const S: Nanos = NS_PER_S;
    const MS: Nanos = NS_PER_MS;

    fn config(kind: Kind) -> Config {
        Config {
            kind,
            failure_threshold: 3,
            break_duration: 5 * S,
            failure_ratio: 0.5,
            sampling_duration: 10 * S,
            minimum_throughput: 4,
            window_size: 4,
            slow_call_duration: S,
            slow_call_ratio: 1.0,
            half_open_calls: 1,
            break_growth: 1.0,
        }
    }

    /// Makes a call at `now` that fails or not and takes `took`; returns what changed.
    fn call(b: &mut Breaker, now: Nanos, failed: bool) -> Vec<Change> {
        let (d, change) = b.before_call(now);
        assert!(matches!(d, Decision::Call { .. }), "at {now}: {d:?}");
        change.into_iter().chain(b.after_call(now, failed, MS)).collect()
    }

    #[test]
    fn consecutive_opens_on_the_threshold_and_a_success_resets_the_count() {
        let mut b = Breaker::new(config(Kind::Consecutive));
        assert!(call(&mut b, 0, true).is_empty());
        assert!(call(&mut b, 1, true).is_empty());
        assert!(call(&mut b, 2, false).is_empty()); // the run of failures starts again
        assert!(call(&mut b, 3, true).is_empty());
        assert!(call(&mut b, 4, true).is_empty());
        assert_eq!(call(&mut b, 5, true), [Change::Opened { until: 5 + 5 * S }]);
        assert_eq!(b.before_call(6).0, Decision::Rejected { retry_after: 5 * S - 1 });
    }

    #[test]
    fn ratio_needs_its_minimum_throughput() {
        let mut b = Breaker::new(config(Kind::Ratio));
        for t in 0..3 {
            assert!(call(&mut b, t * MS, true).is_empty(), "3 of 3 failed, below 4 calls");
        }
        assert_eq!(b.state(), State::Closed);
        assert_eq!(call(&mut b, 3 * MS, true), [Change::Opened { until: 3 * MS + 5 * S }]);
    }

    #[test]
    fn ratio_windows_expire_one_sampling_duration_after_they_opened() {
        let mut b = Breaker::new(config(Kind::Ratio)); // 10 s in 10 windows of 1 s
        for t in [0, 300 * MS, 600 * MS] {
            call(&mut b, t, true); // all in the window opened at 0
        }
        // At 10 s the window opened at 0 has expired: only this failure counts.
        assert!(call(&mut b, 10 * S, true).is_empty());
        assert_eq!(b.state(), State::Closed);
        // At 9.99 s it would still have counted: 4 failures of 4.
        let mut b = Breaker::new(config(Kind::Ratio));
        for t in [0, 300 * MS, 600 * MS] {
            call(&mut b, t, true);
        }
        assert_eq!(call(&mut b, 10 * S - 1, true).len(), 1);
    }

    #[test]
    fn ratio_trips_only_on_a_failure() {
        let mut b = Breaker::new(config(Kind::Ratio));
        for (t, failed) in [(0, true), (1, true), (2, true), (3, false)] {
            assert!(call(&mut b, t, failed).is_empty()); // 3 of 4 failed, but the 4th succeeded
        }
        assert_eq!(call(&mut b, 4, true).len(), 1); // 4 of 5 failed, on a failure
    }

    #[test]
    fn growth_multiplies_the_break_per_failed_probe_and_resets_on_close() {
        let mut b = Breaker::new(Config { break_growth: 2.0, ..config(Kind::Ratio) });
        for t in 0..4 {
            call(&mut b, t, true);
        }
        assert_eq!(b.blocked_until(), 3 + 5 * S);
        let t1 = 3 + 5 * S;
        assert_eq!(
            call(&mut b, t1, true),
            [Change::HalfOpened, Change::Opened { until: t1 + 10 * S }]
        );
        let t2 = t1 + 10 * S;
        assert_eq!(
            call(&mut b, t2, true),
            [Change::HalfOpened, Change::Opened { until: t2 + 20 * S }]
        );
        let t3 = t2 + 20 * S;
        assert_eq!(call(&mut b, t3, false), [Change::HalfOpened, Change::Closed]);
        for t in 0..4 {
            call(&mut b, t3 + 1 + t, true);
        }
        assert_eq!(b.blocked_until(), t3 + 4 + 5 * S, "back to the base break");
    }

    #[test]
    fn count_window_opens_on_slow_calls_alone() {
        let mut b = Breaker::new(config(Kind::CountWindow));
        for t in 0..3 {
            b.before_call(t);
            assert_eq!(b.after_call(t, false, 2 * S), None);
        }
        b.before_call(3);
        assert!(matches!(b.after_call(3, false, 2 * S), Some(Change::Opened { .. })));
    }

    #[test]
    fn time_window_forgets_old_seconds() {
        let mut b = Breaker::new(config(Kind::TimeWindow)); // 4 buckets of 1 s
        for t in [0, 1, 2] {
            call(&mut b, t * S, true);
        }
        assert!(call(&mut b, 4 * S, true).is_empty(), "the bucket of second 0 has gone");
        assert_eq!(call(&mut b, 4 * S + 1, true).len(), 1);
    }

    #[test]
    fn admits_tells_a_paused_listener_when_to_receive() {
        let mut b = Breaker::new(config(Kind::Ratio));
        assert_eq!(b.admits(0), Some(u32::MAX));
        for t in 0..4 {
            call(&mut b, t, true);
        }
        assert_eq!(b.admits(4), None);
        let over = 3 + 5 * S;
        assert_eq!(b.admits(over), Some(1));
        b.before_call(over);
        assert_eq!(b.admits(over + 1), None, "the probe is out");
    }
}
