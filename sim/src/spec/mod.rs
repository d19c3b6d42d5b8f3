//! The validated, resolved run specification.
//!
//! The harness parses a scenario file (TOML, human units) into these types; the simulator
//! only ever sees them, never a file. Every field here is already checked: a `Scenario` that
//! exists can be run. Defaults are documented on each field and in `Scenario::default()`.

mod hosting;
pub mod table;

pub use hosting::{
    CostSpec, ExecutionLimit, HostingSpec, Plan, Pricing, ScalingSpec, ServiceBusTier, WebTierSpec,
    WorkerModel,
};

use crate::dist::Dist;
use crate::time::{NS_PER_H, NS_PER_MIN, NS_PER_MS, NS_PER_S, Nanos};
use std::collections::BTreeMap;

/// One run's full specification.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Required: the scenario's name, used in output paths and reports.
    pub name: String,
    /// Free text shown in reports.
    pub description: String,
    /// The run seed (default 1; `--seed` overrides).
    pub seed: u64,
    /// How long the workload produces.
    pub duration: Nanos,
    /// Extra time to finish in-flight work after `duration`. `None`: until the system is
    /// empty, capped at [`Scenario::DRAIN_CAP`].
    pub drain: Option<Nanos>,
    /// Statistics ignore messages produced before this (default 0).
    pub warmup: Nanos,
    /// Time-series resolution (default 10 s).
    pub interval: Nanos,
    /// Which pattern's reference implementation runs.
    pub pattern: PatternKind,
    /// The pattern's own settings table (`[retry_backoff]`, ...), read by the pattern.
    pub pattern_table: table::PatternTable,
    /// The arrival process and message classes.
    pub workload: WorkloadSpec,
    /// The API in front of the queue (`load-leveling`, `retry-backoff`).
    pub api: ApiSpec,
    /// The broker.
    pub queue: QueueSpec,
    /// `[store]`: the database of patterns that keep state in one (`outbox`).
    pub store: StoreSpec,
    /// The consumer host.
    pub consumer: ConsumerSpec,
    /// Where the consumers run, how they scale (`[consumer] hosting/memory/cpu`,
    /// `[scaling]`, `[web]`).
    pub hosting: HostingSpec,
    /// `[cost]`: the pricing table in force.
    pub cost: CostSpec,
    /// Downstream dependencies, by name (ordered, so iteration is deterministic).
    pub services: BTreeMap<String, ServiceSpec>,
    /// `[retry]`: in-process retries of a failed downstream call (none when absent). A
    /// pattern may read it as the legacy place of its own schedule (see its table).
    pub retry: Option<RetrySpec>,
    /// Fault injections, in file order.
    pub faults: Vec<FaultSpec>,
    /// `[expect]`: conditions on summary fields, in file order.
    pub expect: Vec<Expectation>,
    /// `[limits]`: when the run stops on its own.
    pub limits: LimitsSpec,
    /// `expect_failure = true`: the broken half of a chaos pair. Its `[expect]` states the
    /// guarantee the design breaks; `sluice check` passes it when an expectation fails.
    pub expect_failure: bool,
}

impl Scenario {
    /// The longest a run drains when `drain` is not given: 24 h.
    pub const DRAIN_CAP: Nanos = 24 * NS_PER_H;

    /// The simulated time at which the run stops at the latest.
    pub fn horizon(&self) -> Nanos {
        self.duration.saturating_add(self.drain.unwrap_or(Self::DRAIN_CAP))
    }
}

impl Default for Scenario {
    /// A small competing-consumers run: 1 minute of Poisson arrivals at 10/s on a Service Bus
    /// queue with one consumer. Useful as a base for tests and builders.
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            description: String::new(),
            seed: 1,
            duration: NS_PER_MIN,
            drain: None,
            warmup: 0,
            interval: 10 * NS_PER_S,
            pattern: PatternKind::named("competing-consumers"),
            pattern_table: table::PatternTable::default(),
            workload: WorkloadSpec::default(),
            api: ApiSpec::default(),
            queue: QueueSpec::service_bus(),
            store: StoreSpec::default(),
            consumer: ConsumerSpec::default(),
            hosting: HostingSpec::default(),
            cost: CostSpec::default(),
            services: BTreeMap::new(),
            retry: None,
            faults: Vec::new(),
            expect: Vec::new(),
            limits: LimitsSpec::default(),
            expect_failure: false,
        }
    }
}

/// Which pattern a scenario runs: its name in scenario files. The list of patterns and
/// what each does live in the registry, `crate::patterns::REGISTRY`; each pattern module
/// defines its own kind (e.g. `crate::patterns::competing_consumers::KIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatternKind(&'static str);

impl PatternKind {
    /// The kind named `name` (a pattern module's constant).
    pub const fn named(name: &'static str) -> PatternKind {
        PatternKind(name)
    }

    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        self.0
    }
}

/// The arrival process.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    /// How arrivals are spaced.
    pub arrivals: Arrivals,
    /// Base rate in messages per second (ignored by `Trace`).
    pub rate_per_s: f64,
    /// Piecewise overrides of the rate, `[from, to)`, non-overlapping, sorted by `from`.
    pub phases: Vec<Phase>,
    /// Message classes and their weights, sorted by name. A class named `poison` always
    /// fails in the handler. Default: `normal = 1`.
    pub classes: Vec<(String, f64)>,
    /// `[workload.class_work]`: a class's own handler work, drawn once per message and the
    /// same on every delivery (a slow message is slow every time). Classes not named here
    /// draw `[consumer] work` afresh on each delivery.
    pub class_work: Vec<(String, Dist)>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            arrivals: Arrivals::Poisson,
            rate_per_s: 10.0,
            phases: Vec::new(),
            classes: vec![("normal".into(), 1.0)],
            class_work: Vec::new(),
        }
    }
}

impl WorkloadSpec {
    /// The share of poison messages (0 when there is no `poison` class).
    pub fn poison_share(&self) -> f64 {
        let total: f64 = self.classes.iter().map(|(_, w)| w).sum();
        self.classes.iter().filter(|(n, _)| n == "poison").map(|(_, w)| w / total).sum()
    }

    /// The rate in force at time `t` (messages per second).
    pub fn rate_at(&self, t: Nanos) -> f64 {
        self.phases
            .iter()
            .find(|p| p.from <= t && t < p.to)
            .map_or(self.rate_per_s, |p| p.rate_per_s)
    }
}

/// How arrivals are spaced in time.
#[derive(Clone, Debug, PartialEq)]
pub enum Arrivals {
    /// Evenly spaced at the rate in force.
    Constant,
    /// A Poisson process at the rate in force (piecewise constant across phases).
    Poisson,
    /// Replay of recorded arrival times (nanoseconds since the start, sorted), with the file
    /// they came from.
    Trace {
        /// The file the values came from.
        source: String,
        /// Arrival times, sorted.
        times: Vec<Nanos>,
    },
}

/// A window in which the arrival rate differs from the base rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// Start of the window (inclusive).
    pub from: Nanos,
    /// End of the window (exclusive).
    pub to: Nanos,
    /// The rate inside the window, messages per second.
    pub rate_per_s: f64,
}

/// The API that accepts requests in front of the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiSpec {
    /// Time the API takes to store/enqueue a request and answer 202 (default `const(5ms)`).
    pub accept: Dist,
}

impl Default for ApiSpec {
    fn default() -> Self {
        ApiSpec { accept: Dist::Const(5 * NS_PER_MS) }
    }
}

/// `[store]`: a database (Azure SQL Database, say) with transactions and unique
/// constraints, as [`crate::model::store`] models it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreSpec {
    /// One statement's round trip (a read, a query, a write inside a transaction); default
    /// `exp(mean=5ms)`.
    pub latency: Dist,
    /// A commit: the log flush that makes a transaction durable; default `exp(mean=5ms)`.
    pub commit_latency: Dist,
}

impl Default for StoreSpec {
    fn default() -> Self {
        StoreSpec {
            latency: Dist::Exp { mean: 5 * NS_PER_MS },
            commit_latency: Dist::Exp { mean: 5 * NS_PER_MS },
        }
    }
}

/// Which broker semantics the queue follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueueKind {
    /// Azure Storage Queue with the Functions queue trigger: visibility timeout, dequeue
    /// count, `-poison` queue, batch receive with `newBatchThreshold`, polling with back-off.
    StorageQueue,
    /// Azure Service Bus queue in peek-lock mode: lock duration, delivery count, dead-letter
    /// queue; receivers wait for a message instead of polling.
    ServiceBus,
}

impl QueueKind {
    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            QueueKind::StorageQueue => "storage-queue",
            QueueKind::ServiceBus => "service-bus",
        }
    }
}

/// The broker's settings. Defaults follow Azure (sources in `docs/sources.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSpec {
    /// Broker semantics.
    pub kind: QueueKind,
    /// Service Bus pricing tier (`[queue] tier`, default Standard): how the broker is billed.
    /// Not used for storage queues.
    pub tier: ServiceBusTier,
    /// Service Bus Premium: messaging units billed per hour (`[queue] messaging_units`,
    /// default 1).
    pub messaging_units: u32,
    /// How long a received message stays invisible/locked. Service Bus lock duration
    /// (default 60 s, at most 5 min); storage queue visibility timeout set by the Functions
    /// host on receive (default 10 min, which is what a crashed host's messages wait).
    pub visibility_timeout: Nanos,
    /// How long the receiver keeps renewing a live handler's lock, counted from the start
    /// of the handler; 0 = no renewal, [`QueueSpec::RENEW_UNLIMITED`] = for as long as the
    /// handler runs. Service Bus: `maxAutoLockRenewalDuration` (default 5 min), renewed
    /// `min(lock / 2, 10 s)` before it expires. Storage queue: the Functions listener renews
    /// the visibility halfway, for as long as the function runs (the default).
    pub lock_renewal: Nanos,
    /// Deliveries before the message goes to the dead-letter / poison queue. The first
    /// delivery counts. Service Bus default 10, storage queue (`maxDequeueCount`) 5.
    pub max_delivery_count: u32,
    /// Time to live from enqueue; `None` = never expires (Service Bus default). Storage
    /// queue default 7 days.
    pub ttl: Option<Nanos>,
    /// Most messages held (visible or locked); 0 = unbounded. A producer that finds the
    /// queue full is rejected.
    pub capacity: u64,
    /// Storage queue: delay before a failed message becomes visible again (Functions
    /// `visibilityTimeout`, default 0). Service Bus abandons make the message available at once.
    pub abandon_delay: Nanos,
    /// Storage queue: longest wait between polls of an empty queue (Functions
    /// `maxPollingInterval`, default 1 min). Polling starts at 100 ms and doubles while empty.
    pub max_polling_interval: Nanos,
    /// Storage queue: fetch the next batch when the in-flight count falls to this (Functions
    /// `newBatchThreshold`, default `batch_size / 2`). `None` = the default.
    pub new_batch_threshold: Option<u32>,
    /// Service Bus: the receiver's `PrefetchCount` (default 0, off). Each instance keeps up
    /// to this many messages unsettled, handled or waiting in its client buffer with their
    /// locks running and not renewed until a handler takes them; at most this many are
    /// handled at once.
    pub prefetch: u32,
}

impl QueueSpec {
    /// `lock_renewal` that never stops while the handler runs (`"unlimited"` in files).
    pub const RENEW_UNLIMITED: Nanos = Nanos::MAX;

    /// Service Bus defaults.
    pub fn service_bus() -> QueueSpec {
        QueueSpec {
            kind: QueueKind::ServiceBus,
            tier: ServiceBusTier::Standard,
            messaging_units: 1,
            visibility_timeout: 60 * NS_PER_S,
            lock_renewal: 5 * NS_PER_MIN,
            max_delivery_count: 10,
            ttl: None,
            capacity: 0,
            abandon_delay: 0,
            max_polling_interval: NS_PER_MIN,
            new_batch_threshold: None,
            prefetch: 0,
        }
    }

    /// Storage Queue + Functions queue trigger defaults.
    pub fn storage_queue() -> QueueSpec {
        QueueSpec {
            kind: QueueKind::StorageQueue,
            visibility_timeout: 10 * NS_PER_MIN,
            lock_renewal: QueueSpec::RENEW_UNLIMITED,
            max_delivery_count: 5,
            ttl: Some(7 * 24 * NS_PER_H),
            ..QueueSpec::service_bus()
        }
    }
}

/// The consumer host: instances running handlers.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerSpec {
    /// Instances running at the start (default 1).
    pub instances: u32,
    /// Handlers running at once per instance (Service Bus `maxConcurrentCalls`; default 16).
    /// For storage queues the Functions host runs up to `batch_size + new_batch_threshold`.
    pub concurrency: u32,
    /// Messages fetched per receive (default 1 for Service Bus, 16 for storage queues).
    pub batch_size: u32,
    /// Handler's own work per message, before its downstream calls.
    pub work: Dist,
    /// Downstream services called per message, in order (names in `services`).
    pub calls: Vec<String>,
    /// The legacy place of a polling pattern's poll interval (default 5 s); patterns read
    /// their own table first.
    pub poll_interval: Nanos,
    /// Handler work is CPU time (default false: it only takes time, as waiting on I/O does):
    /// an instance's `cpu` vCPUs run at most `cpu` pieces at full speed and share themselves
    /// beyond that.
    pub cpu_bound: bool,
}

impl Default for ConsumerSpec {
    fn default() -> Self {
        ConsumerSpec {
            instances: 1,
            concurrency: 16,
            batch_size: 1,
            work: Dist::Exp { mean: 50 * NS_PER_MS },
            calls: Vec::new(),
            poll_interval: 5 * NS_PER_S,
            cpu_bound: false,
        }
    }
}

/// A downstream dependency.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// Latency of a successful call.
    pub latency: Dist,
    /// Probability that a call fails (after its latency), 0..=1.
    pub error_rate: f64,
    /// Calls slower than this fail with a timeout at this time; `None` = no timeout.
    pub timeout: Option<Nanos>,
    /// Calls in progress at once (a database's connection pool, a partner's concurrency
    /// quota); `None` = unlimited.
    pub max_concurrency: Option<u32>,
    /// What a call beyond `max_concurrency` gets.
    pub over_limit: OverLimit,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            latency: Dist::Exp { mean: 50 * NS_PER_MS },
            error_rate: 0.0,
            timeout: None,
            max_concurrency: None,
            over_limit: OverLimit::Wait,
        }
    }
}

/// What a service does with a call beyond its `max_concurrency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// The call waits (first come, first served) until a call in progress ends: latency
    /// grows with the queue at the service.
    Wait,
    /// The call fails at once as throttled (HTTP 429), with a `Retry-After` hint when given
    /// (an in-process retry then waits at least that long).
    Reject {
        /// The `Retry-After` the service answers with, if any.
        retry_after: Option<Nanos>,
    },
}

/// How delays between retries grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Always `base` (Polly `Constant`).
    Constant,
    /// `k · base` for the k-th retry (Polly `Linear`).
    Linear,
    /// `base · 2^(k-1)` for the k-th retry (Polly `Exponential`); with `jitter`, Polly's
    /// `DecorrelatedJitterBackoffV2`.
    Exponential,
    /// AWS "decorrelated jitter": `min(cap, U(base, 3 · previous))`.
    DecorrelatedJitter,
}

impl Backoff {
    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Backoff::Constant => "constant",
            Backoff::Linear => "linear",
            Backoff::Exponential => "exponential",
            Backoff::DecorrelatedJitter => "decorrelated-jitter",
        }
    }
}

/// A retry schedule: `[retry]` (in-process retries of a failed downstream call), and the
/// schedules patterns build from their own tables.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySpec {
    /// Delay growth.
    pub backoff: Backoff,
    /// First delay (default 2 s).
    pub base: Nanos,
    /// Cap on any delay (default 5 min).
    pub max_delay: Nanos,
    /// Attempts in all, the first included; 0 = no limit (the default).
    pub max_attempts: u32,
    /// Randomise delays (see [`Backoff`]).
    pub jitter: bool,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            backoff: Backoff::Exponential,
            base: 2 * NS_PER_S,
            max_delay: 5 * NS_PER_MIN,
            max_attempts: 0,
            jitter: false,
        }
    }
}

/// One fault injection (`[[faults]]`). Windows are `[from, to)`.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    /// What is hit: a service name, or `consumer`.
    pub target: String,
    /// What happens.
    pub kind: FaultKind,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// The service fails every call at once (like a 503).
    Outage {
        /// Start of the window (inclusive).
        from: Nanos,
        /// End of the window (exclusive).
        to: Nanos,
    },
    /// Calls take `add` longer.
    Latency {
        /// Start of the window (inclusive).
        from: Nanos,
        /// End of the window (exclusive).
        to: Nanos,
        /// Added latency.
        add: Nanos,
    },
    /// Calls fail with this probability instead of the service's own.
    ErrorRate {
        /// Start of the window (inclusive).
        from: Nanos,
        /// End of the window (exclusive).
        to: Nanos,
        /// Failure probability in the window.
        error_rate: f64,
    },
    /// The consumer's lock renewals attempted in the window fail (the Service Bus SDK then
    /// stops renewing that lock): locks run out at their current expiry under handlers that
    /// keep running, and those handlers' settles find the lock lost.
    RenewalFailure {
        /// Start of the window (inclusive).
        from: Nanos,
        /// End of the window (exclusive).
        to: Nanos,
    },
    /// `instances` consumer instances die at `at`; their in-flight work is dropped. They come
    /// back after `restart_after` (`None`: never).
    Crash {
        /// When the instances die.
        at: Nanos,
        /// How many instances die.
        instances: u32,
        /// Downtime before they come back (`None`: never).
        restart_after: Option<Nanos>,
    },
    /// A graceful restart of a pattern's process (a deploy, a scale-in of the web app): at
    /// `at` the process is told to stop (it stops taking work), after `grace` whatever still
    /// runs in it is cut off as by a crash, and it starts again `restart_after` later.
    Restart {
        /// When the process is told to stop.
        at: Nanos,
        /// How long it may finish what it holds (ASP.NET Core's `HostOptions.ShutdownTimeout`,
        /// Kubernetes' `terminationGracePeriodSeconds`).
        grace: Nanos,
        /// Downtime between the cut-off and the new start.
        restart_after: Nanos,
    },
}

impl FaultKind {
    /// The name used in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Outage { .. } => "outage",
            FaultKind::Latency { .. } => "latency",
            FaultKind::ErrorRate { .. } => "error-rate",
            FaultKind::Crash { .. } => "crash",
            FaultKind::Restart { .. } => "restart",
            FaultKind::RenewalFailure { .. } => "renewal-failure",
        }
    }

    /// The window in which the fault is active, for reports (a crash spans its downtime).
    pub fn window(&self) -> (Nanos, Option<Nanos>) {
        match *self {
            FaultKind::Outage { from, to }
            | FaultKind::Latency { from, to, .. }
            | FaultKind::ErrorRate { from, to, .. }
            | FaultKind::RenewalFailure { from, to } => (from, Some(to)),
            FaultKind::Crash { at, restart_after, .. } => (at, restart_after.map(|r| at + r)),
            FaultKind::Restart { at, grace, restart_after } => {
                (at, Some(at + grace + restart_after))
            }
        }
    }
}

/// A comparison in an `[expect]` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }

    /// Whether `actual <op> threshold` holds.
    pub fn holds(self, actual: f64, threshold: f64) -> bool {
        match self {
            CmpOp::Lt => actual < threshold,
            CmpOp::Le => actual <= threshold,
            CmpOp::Gt => actual > threshold,
            CmpOp::Ge => actual >= threshold,
            CmpOp::Eq => actual == threshold,
            CmpOp::Ne => actual != threshold,
        }
    }
}

/// One `[expect]` condition: `"latency.end_to_end.p99_ms" = "< 30s"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// A dotted path into `summary.json`.
    pub metric: String,
    /// The comparison.
    pub op: CmpOp,
    /// The threshold in the metric's own unit (a duration is converted to ms for `_ms`
    /// metrics and to seconds for `_s` metrics).
    pub threshold: f64,
    /// The condition as written in the file, for messages.
    pub condition: String,
}

/// `[limits]`: when a run stops on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsSpec {
    /// The run stops when more messages than this are in the system at once (default
    /// 5 000 000).
    pub max_backlog: u64,
}

impl LimitsSpec {
    /// The default `max_backlog`.
    pub const DEFAULT_MAX_BACKLOG: u64 = 5_000_000;
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec { max_backlog: Self::DEFAULT_MAX_BACKLOG }
    }
}
