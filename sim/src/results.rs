//! What a run recorded: the only thing the `reports` crate sees of a run.
//!
//! Everything here is plain data, filled in by the meters during the run and frozen when it
//! ends. Histograms are HdrHistograms of nanoseconds with exact sums kept beside them, so
//! means are exact and quantiles are within the histogram's 3 significant digits.

use crate::spec::FaultKind;
use crate::time::Nanos;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// The message ledger. At the end of every run
/// `produced = rejected + completed + dead_lettered + expired + lost + in_flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Messages the workload produced (offered to the API or queue).
    pub produced: u64,
    /// Refused at the door (queue full).
    pub rejected: u64,
    /// Completed by a handler.
    pub completed: u64,
    /// Moved to the dead-letter / poison queue.
    pub dead_lettered: u64,
    /// Dropped by TTL expiry.
    pub expired: u64,
    /// Lost: accepted but gone without any of the above (e.g. in-memory work on a crash).
    pub lost: u64,
    /// Still in the system when the run ended (queued, locked or being accepted).
    pub in_flight: u64,
    /// Deliveries to handlers (first deliveries plus redeliveries).
    pub deliveries: u64,
    /// Handler executions that succeeded for a message that had already been handled
    /// successfully (an at-least-once duplicate effect).
    pub duplicates: u64,
    /// Handler executions that succeeded on a lapsed lock after their message had left the
    /// queue unhandled (dead-lettered or expired): effects the exits above do not show.
    pub late_successes: u64,
}

impl Ledger {
    /// Whether every produced message is accounted for.
    pub fn balances(&self) -> bool {
        self.produced
            == self.rejected
                + self.completed
                + self.dead_lettered
                + self.expired
                + self.lost
                + self.in_flight
    }
}

/// One workload class's share of a run: its own ledger and end-to-end latency (recorded
/// when the workload has more than one class; `classes.<name>.*` in `summary.json`).
#[derive(Clone, Debug)]
pub struct ClassResults {
    /// The class name (`[workload.classes]`).
    pub name: String,
    /// The class's messages; `deliveries` and `duplicates` are not kept per class.
    pub ledger: Ledger,
    /// Accepted -> completed, for this class's messages.
    pub end_to_end: Latency,
}

impl ClassResults {
    /// Empty accounts for class `name`, latencies up to `highest_ns`.
    pub fn new(name: &str, highest_ns: Nanos) -> ClassResults {
        ClassResults {
            name: name.to_string(),
            ledger: Ledger::default(),
            end_to_end: Latency::new(highest_ns),
        }
    }

    /// Counts one message of this class leaving by `exit`.
    pub fn count_exit(&mut self, exit: crate::ledger::Exit) {
        use crate::ledger::Exit;
        let l = &mut self.ledger;
        match exit {
            Exit::Completed => l.completed += 1,
            Exit::DeadLettered => l.dead_lettered += 1,
            Exit::Expired => l.expired += 1,
            Exit::Lost => l.lost += 1,
            Exit::Rejected => l.rejected += 1,
        }
    }
}

/// A latency distribution: an HDR histogram of nanoseconds plus the exact sum.
#[derive(Clone, Debug)]
pub struct Latency {
    /// Recorded values in nanoseconds (3 significant digits).
    pub hist: Histogram<u64>,
    /// Exact sum of the recorded values, for an exact mean.
    pub sum_ns: u128,
    /// How many recorded values were exactly zero (e.g. messages that never waited).
    pub zeros: u64,
}

impl Latency {
    /// An empty histogram able to hold values up to `highest_ns`.
    pub fn new(highest_ns: Nanos) -> Latency {
        let hist = Histogram::new_with_bounds(1_000, highest_ns.max(2_000_000_000), 3)
            .expect("histogram bounds are valid");
        Latency { hist, sum_ns: 0, zeros: 0 }
    }

    /// Records one value. Values above the histogram's range are an engine bug (the range
    /// comes from the scenario's horizon), so they panic.
    #[inline]
    pub fn record(&mut self, ns: Nanos) {
        self.hist.record(ns).expect("latency within the scenario's horizon");
        self.sum_ns += u128::from(ns);
        self.zeros += u64::from(ns == 0);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Exact mean in nanoseconds (0 when empty).
    pub fn mean_ns(&self) -> f64 {
        if self.count() == 0 { 0.0 } else { self.sum_ns as f64 / self.count() as f64 }
    }

    /// The value at quantile `q` (0..=1), in nanoseconds (0 when empty).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count() == 0 { 0 } else { self.hist.value_at_quantile(q) }
    }

    /// The largest value recorded (0 when empty).
    pub fn max_ns(&self) -> u64 {
        if self.count() == 0 { 0 } else { self.hist.max() }
    }

    /// Merges another histogram into this one (exact: HDR histograms merge losslessly).
    pub fn merge(&mut self, other: &Latency) {
        self.hist.add(&other.hist).expect("same bounds");
        self.sum_ns += other.sum_ns;
        self.zeros += other.zeros;
    }

    /// The share of values above zero (for `queue_wait`: P(wait > 0)).
    pub fn nonzero_share(&self) -> f64 {
        if self.count() == 0 { 0.0 } else { 1.0 - self.zeros as f64 / self.count() as f64 }
    }
}

pub use crate::model::series::IntervalRow;

/// Calls made to one downstream service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Calls started.
    pub calls: u64,
    /// Calls that failed (errors and timeouts).
    pub errors: u64,
    /// Of the errors, calls that hit the timeout.
    pub timeouts: u64,
    /// Of the errors, calls refused at `max_concurrency` (HTTP 429).
    pub throttled: u64,
    /// Calls that had to wait for a free slot at `max_concurrency`.
    pub queued: u64,
    /// Most calls waiting for a slot at once.
    pub waiting_peak: u64,
}

/// The bill of a run (see `sim::model::cost` for the rules).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostResults {
    /// The pricing table used.
    pub pricing: String,
    /// Instance, replica or GB-second charges.
    pub compute_usd: f64,
    /// Per-execution charges.
    pub executions_usd: f64,
    /// Broker operations.
    pub messaging_usd: f64,
    /// GPU-seconds (GPU workers).
    pub gpu_usd: f64,
    /// Everything.
    pub total_usd: f64,
    /// Handler executions counted.
    pub executions: u64,
    /// Instance (or replica) seconds allocated.
    pub instance_seconds: f64,
    /// vCPU-seconds billed (Premium, Container Apps).
    pub vcpu_seconds: f64,
    /// GB-seconds billed.
    pub gb_seconds: f64,
    /// The Service Bus broker's bill in parts (`None` for storage queues).
    pub service_bus: Option<ServiceBusBill>,
    /// Idle replica time of a Container Apps app (`None` on every other plan).
    pub idle: Option<IdleBill>,
}

/// The parts of a Service Bus bill; `messaging_usd = base_usd + operations_usd`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceBusBill {
    /// The tier (`basic`, `standard`, `premium`).
    pub tier: String,
    /// Standard: the hourly base charge; Premium: messaging-unit hours; Basic: 0.
    pub base_usd: f64,
    /// Operations beyond those included, at the tier's per-million rates (0 on Premium).
    pub operations_usd: f64,
    /// Operations included in the base charge, prorated to the run's length (Standard).
    pub included_operations: f64,
    /// Operations billed per million.
    pub billed_operations: f64,
}

/// A Container Apps app's idle replica time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IdleBill {
    /// Replica-seconds billed at the idle rate.
    pub replica_seconds: f64,
    /// What those seconds cost: vCPU at the idle rate, memory at the GiB-s rate.
    pub usd: f64,
}

/// What the autoscaler did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScalingResults {
    /// Highest number of instances allocated at once.
    pub instances_peak: u32,
    /// Time-averaged number of instances allocated.
    pub instances_mean: f64,
    /// Instances (or job replicas) added after the start.
    pub scale_outs: u64,
    /// Instances removed by scale-in.
    pub scale_ins: u64,
    /// Instances that paid a cold start.
    pub cold_starts: u64,
    /// Executions killed at the plan's execution-time limit.
    pub timeouts: u64,
    /// Executions cut off with a timed-out one: the other executions of its worker process
    /// (isolated) or host (in-process).
    pub timeout_collateral: u64,
    /// Executions still running when a draining instance's grace ran out (cut off).
    pub drain_cutoffs: u64,
}

impl ScalingResults {
    /// Adds another pool's scaling to this one (peaks and means add up: pools run side by
    /// side).
    pub fn add(&mut self, other: &ScalingResults) {
        self.instances_peak += other.instances_peak;
        self.instances_mean += other.instances_mean;
        self.scale_outs += other.scale_outs;
        self.scale_ins += other.scale_ins;
        self.cold_starts += other.cold_starts;
        self.timeouts += other.timeouts;
        self.timeout_collateral += other.timeout_collateral;
        self.drain_cutoffs += other.drain_cutoffs;
    }
}

/// The web tier sharing a WebJob's instances (see `sim::model::web`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WebResults {
    /// Mean web response time over the run, ms.
    pub latency_mean_ms: f64,
    /// Worst interval's mean web response time, ms.
    pub latency_peak_ms: f64,
    /// Web response time with no background work, ms.
    pub latency_alone_ms: f64,
    /// Highest CPU share taken by background handlers in an interval.
    pub background_cpu_peak: f64,
}

/// A fault as it happened, for the reports' timelines.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRecord {
    /// What was hit.
    pub target: String,
    /// What happened.
    pub kind: FaultKind,
}

/// Everything a run recorded.
#[derive(Clone, Debug)]
pub struct RunResults {
    /// Scenario name.
    pub scenario: String,
    /// Pattern name.
    pub pattern: String,
    /// The run seed.
    pub seed: u64,
    /// Simulated time when the run ended.
    pub sim_time: Nanos,
    /// Whether the system was empty when the run ended (false: stopped at the horizon).
    pub drained: bool,
    /// The message ledger.
    pub ledger: Ledger,
    /// Latency distributions by name: `end_to_end` (accepted -> completed), `queue_wait`
    /// (accepted -> first delivery), `handler` (each execution), and pattern-specific ones
    /// such as `accept` (request -> 202).
    pub latency: BTreeMap<String, Latency>,
    /// Per-class ledgers and latencies, in class order (empty when the workload has one
    /// class).
    pub classes: Vec<ClassResults>,
    /// Highest number of waiting messages.
    pub backlog_peak: u64,
    /// Time-averaged number of waiting messages.
    pub backlog_mean: f64,
    /// Time-averaged number of messages in the system (waiting or being handled).
    pub in_system_mean: f64,
    /// Downstream calls by service name.
    pub services: BTreeMap<String, ServiceStats>,
    /// Broker operations (sends, receives including empty polls, completes, abandons).
    pub queue_operations: u64,
    /// Pattern-specific counters (e.g. `retry.attempts_max`), by dotted name.
    pub extra: BTreeMap<String, f64>,
    /// The pattern's own summary section (`breaker.opened` ...): section -> field -> value.
    pub sections: BTreeMap<String, BTreeMap<String, f64>>,
    /// One row per interval, downsampled to a bounded number of rows when the run had more
    /// intervals than that (see [`crate::model::series`]); every row went to
    /// [`crate::RunOptions::series`] as it was closed.
    pub timeseries: crate::model::series::Series,
    /// The pattern's gauge columns (`breaker.open`, `stream.lag`, ...), in the order of each
    /// row's `state`.
    pub state_columns: Vec<String>,
    /// The most messages completed in one interval (of the rows before downsampling).
    pub completed_peak_interval: u64,
    /// Set when `[limits]` stopped the run early.
    pub limit_stop: Option<crate::limits::LimitStop>,
    /// The interval length.
    pub interval: Nanos,
    /// The fault schedule.
    pub faults: Vec<FaultRecord>,
    /// The hosting plan's name.
    pub hosting: String,
    /// The bill.
    pub cost: CostResults,
    /// What the autoscaler did.
    pub scaling: ScalingResults,
    /// The web tier (WebJob plans only).
    pub web: Option<WebResults>,
    /// Broken guarantees found by the invariant checkers (empty unless
    /// [`crate::RunOptions::checks`] was set).
    pub violations: Vec<Violation>,
}

/// A broken guarantee, found by a checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker that found it (`ledger`, `max-deliveries`, ...).
    pub checker: &'static str,
    /// Simulated time at which it was found.
    pub at: Nanos,
    /// What was broken, with the values that broke it.
    pub message: String,
}
