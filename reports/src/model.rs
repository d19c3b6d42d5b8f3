//! The report data model: one [`RunReport`] per run, built once from the run's results and
//! read by every writer (JSON, CSV, HDR exports, text, charts, Markdown, HTML, comparisons).
//!
//! All derived numbers are rounded here, once, so every writer shows the same value and a
//! report read back from a run directory is identical to the one that was written.

use crate::expect::{self, ExpectationResult};
use crate::hist::LatencyHistogram;
use crate::num::{ns_to_ms, ns_to_s, round_dp};
use serde::{Deserialize, Serialize};
use sim::results::{Latency, RunResults};
use sim::spec::{FaultKind, Scenario};
use sim::time::format_duration;
use std::collections::BTreeMap;

/// The version of `summary.json` and `run.json`. Bumped only when a field changes meaning or is
/// removed; new fields may appear without a bump.
pub const SCHEMA: u32 = 1;

/// What the harness knows about a run that the engine does not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The command that replays this run, e.g. `sluice run scenarios/x.toml --seed 42`.
    pub command: String,
    /// The scenario file the run came from, as given on the command line.
    pub scenario_path: String,
    /// The resolved scenario parameters (TOML), as the harness prints them for replay.
    /// A run directory keeps it in `scenario.toml`.
    pub scenario_toml: String,
    /// The sluice build's git commit, when known.
    pub git_commit: Option<String>,
}

/// Everything the reports show about one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Replay command, scenario path and parameters, commit.
    pub meta: RunMeta,
    /// The scenario's free-text description.
    pub description: String,
    /// The time-series resolution in seconds.
    pub interval_s: f64,
    /// `summary.json`.
    pub summary: Summary,
    /// `timeseries.csv`, one row per interval.
    pub timeseries: Vec<TimeseriesRow>,
    /// The pattern-state columns of `timeseries.csv` (gauges such as `breaker.open`), in the
    /// order of each row's `state`.
    #[serde(default)]
    pub state_columns: Vec<String>,
    /// The fault timeline, in schedule order.
    pub faults: Vec<FaultWindow>,
    /// Latency histograms by name (nanoseconds), lossless.
    pub histograms: BTreeMap<String, LatencyHistogram>,
}

impl RunReport {
    /// Builds the report of a finished run. Evaluates the scenario's `[expect]` conditions
    /// against the summary.
    pub fn new(scenario: &Scenario, results: &RunResults, meta: RunMeta) -> RunReport {
        let mut summary = Summary::new(scenario, results);
        summary.expectations = expect::evaluate(&scenario.expect, &summary.to_value());
        RunReport {
            meta,
            description: scenario.description.clone(),
            interval_s: ns_to_s(results.interval),
            summary,
            timeseries: results.timeseries.iter().map(TimeseriesRow::from).collect(),
            state_columns: results.state_columns.clone(),
            faults: results.faults.iter().map(|f| FaultWindow::new(&f.target, &f.kind)).collect(),
            histograms: results
                .latency
                .iter()
                .map(|(k, v)| (k.clone(), LatencyHistogram(v.hist.clone())))
                .collect(),
        }
    }

    /// Whether every `[expect]` condition held.
    pub fn passed(&self) -> bool {
        self.summary.expectations.iter().all(|e| e.pass)
    }

    /// The end of the run in seconds (the right edge of every time chart).
    pub fn end_s(&self) -> f64 {
        let last = self.timeseries.last().map_or(0.0, |r| r.t_s);
        self.summary.sim_time_s.max(last)
    }
}

/// `summary.json`: the run's headline numbers. Field names are stable (design.md "Outputs").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// Scenario name.
    pub scenario: String,
    /// Pattern name (`competing-consumers`, ...).
    pub pattern: String,
    /// The run seed.
    pub seed: u64,
    /// Simulated time when the run ended \[s\].
    pub sim_time_s: f64,
    /// How long the workload produced (`duration`) \[s\].
    pub duration_s: f64,
    /// Time from the end of production to the end of the run, `sim_time_s - duration_s` \[s\]:
    /// the drain time when `drained`, otherwise how long the run drained before it was stopped.
    pub drain_s: f64,
    /// Whether the system was empty when the run ended.
    pub drained: bool,
    /// The message ledger.
    pub messages: Messages,
    /// Latency distributions by name (`end_to_end`, `queue_wait`, `handler`, ...).
    pub latency: BTreeMap<String, LatencySummary>,
    /// Rates.
    pub throughput: Throughput,
    /// Waiting messages.
    pub backlog: Backlog,
    /// Little's law check (L = λW).
    pub little: Little,
    /// Downstream calls by service name.
    pub services: BTreeMap<String, ServiceSummary>,
    /// Broker operations.
    pub queue: QueueSummary,
    /// The hosting plan and what its autoscaler did.
    pub hosting: HostingSummary,
    /// The bill (USD).
    pub cost: CostSummary,
    /// The web tier sharing a WebJob's instances (WebJob plans only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebSummary>,
    /// Per-class ledgers and end-to-end latency, when the workload has more than one class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub classes: BTreeMap<String, ClassSummary>,
    /// Pattern-specific counters by dotted name.
    pub extra: BTreeMap<String, f64>,
    /// The pattern's own section (`breaker`, `saga`, ...), at the top level of
    /// `summary.json` next to `messages` and `latency`.
    #[serde(flatten)]
    pub sections: BTreeMap<String, BTreeMap<String, f64>>,
    /// Present only when `[limits]` stopped the run early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSummary>,
    /// `[expect]` results, in file order.
    pub expectations: Vec<ExpectationResult>,
}

impl Summary {
    /// The summary without expectations (see [`RunReport::new`]).
    pub fn new(scenario: &Scenario, r: &RunResults) -> Summary {
        let sim_time_s = ns_to_s(r.sim_time);
        let duration_s = ns_to_s(scenario.duration);
        let l = &r.ledger;
        let interval_s = r.interval as f64 / 1e9;
        let peak_completed = r.completed_peak_interval;
        Summary {
            schema: SCHEMA,
            scenario: r.scenario.clone(),
            pattern: r.pattern.clone(),
            seed: r.seed,
            sim_time_s,
            duration_s,
            drain_s: round_dp((sim_time_s - duration_s).max(0.0), 6),
            drained: r.drained,
            messages: Messages {
                produced: l.produced,
                rejected: l.rejected,
                completed: l.completed,
                dead_lettered: l.dead_lettered,
                expired: l.expired,
                lost: l.lost,
                in_flight: l.in_flight,
                deliveries: l.deliveries,
                duplicates: l.duplicates,
                late_successes: l.late_successes,
            },
            latency: r.latency.iter().map(|(k, v)| (k.clone(), LatencySummary::new(v))).collect(),
            throughput: Throughput {
                completed_per_s: rate(l.completed, sim_time_s),
                produced_per_s: rate(l.produced, duration_s),
                peak_completed_per_s: rate(peak_completed, interval_s),
            },
            backlog: Backlog { peak: r.backlog_peak, mean: round_dp(r.backlog_mean, 3) },
            little: Little::new(r, sim_time_s),
            services: r
                .services
                .iter()
                .map(|(k, s)| {
                    let v = ServiceSummary {
                        calls: s.calls,
                        errors: s.errors,
                        timeouts: s.timeouts,
                        throttled: s.throttled,
                        queued: s.queued,
                        waiting_peak: s.waiting_peak,
                    };
                    (k.clone(), v)
                })
                .collect(),
            queue: QueueSummary { operations: r.queue_operations },
            hosting: HostingSummary {
                plan: r.hosting.clone(),
                instances_peak: r.scaling.instances_peak,
                instances_mean: round_dp(r.scaling.instances_mean, 3),
                scale_outs: r.scaling.scale_outs,
                scale_ins: r.scaling.scale_ins,
                cold_starts: r.scaling.cold_starts,
                timeouts: r.scaling.timeouts,
                timeout_collateral: r.scaling.timeout_collateral,
                drain_cutoffs: r.scaling.drain_cutoffs,
            },
            cost: CostSummary::new(&r.cost, l.completed),
            web: r.web.map(|w| WebSummary {
                latency_mean_ms: round_dp(w.latency_mean_ms, 3),
                latency_peak_ms: round_dp(w.latency_peak_ms, 3),
                latency_alone_ms: round_dp(w.latency_alone_ms, 3),
                added_mean_ms: round_dp(w.latency_mean_ms - w.latency_alone_ms, 3),
                background_cpu_peak: round_dp(w.background_cpu_peak, 4),
            }),
            classes: r.classes.iter().map(|c| (c.name.clone(), ClassSummary::new(c))).collect(),
            extra: r.extra.iter().map(|(k, v)| (k.clone(), round_dp(*v, 6))).collect(),
            sections: r
                .sections
                .iter()
                .map(|(s, fields)| {
                    (s.clone(), fields.iter().map(|(k, v)| (k.clone(), round_dp(*v, 6))).collect())
                })
                .collect(),
            limits: r.limit_stop.map(|l| LimitsSummary {
                stopped: true,
                at_s: ns_to_s(l.at),
                backlog: l.in_system,
                max_backlog: l.max_backlog,
                arrivals_per_s: round_dp(l.arrivals_per_s(), 3),
                completions_per_s: round_dp(l.completions_per_s(), 3),
            }),
            expectations: Vec::new(),
        }
    }

    /// The shape of the summary a run of `scenario` will have, with zero values: for checking
    /// `[expect]` paths before running ([`crate::expect::check_metric`]). `latency` and `extra`
    /// name the histograms and counters the pattern records (the engine decides them, e.g.
    /// `["end_to_end", "queue_wait", "handler"]`); services come from the scenario.
    pub fn skeleton(scenario: &Scenario, latency: &[&str], extra: &[&str]) -> Summary {
        let results = RunResults {
            scenario: scenario.name.clone(),
            pattern: scenario.pattern.name().to_string(),
            seed: scenario.seed,
            sim_time: 0,
            drained: true,
            ledger: sim::results::Ledger::default(),
            latency: latency.iter().map(|n| (n.to_string(), Latency::new(0))).collect(),
            backlog_peak: 0,
            backlog_mean: 0.0,
            in_system_mean: 0.0,
            services: scenario.services.keys().map(|k| (k.clone(), Default::default())).collect(),
            queue_operations: 0,
            extra: extra.iter().map(|k| (k.to_string(), 0.0)).collect(),
            sections: Default::default(),
            timeseries: Default::default(),
            state_columns: Vec::new(),
            completed_peak_interval: 0,
            limit_stop: None,
            interval: scenario.interval,
            faults: Vec::new(),
            hosting: scenario.hosting.plan.name().to_string(),
            cost: Default::default(),
            scaling: Default::default(),
            web: (scenario.hosting.plan == sim::spec::Plan::WebJob).then(Default::default),
            classes: if scenario.workload.classes.len() > 1 {
                let highest = scenario.horizon().saturating_mul(2).max(1);
                scenario
                    .workload
                    .classes
                    .iter()
                    .map(|(n, _)| sim::results::ClassResults::new(n, highest))
                    .collect()
            } else {
                Vec::new()
            },
            violations: Vec::new(),
        };
        Summary::new(scenario, &results)
    }

    /// The summary as a JSON value (what `[expect]` paths are looked up in).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a summary always serializes")
    }

    /// `summary.json`'s bytes: pretty-printed, with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a summary always serializes");
        out.push(b'\n');
        out
    }

    /// The latency summary named `name`, or an empty one.
    pub fn latency(&self, name: &str) -> LatencySummary {
        self.latency.get(name).cloned().unwrap_or_default()
    }

    /// Total calls to all downstream services.
    pub fn calls(&self) -> u64 {
        self.services.values().map(|s| s.calls).sum()
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { round_dp(n as f64 / secs, 3) } else { 0.0 }
}

/// The message ledger: `produced = rejected + completed + dead_lettered + expired + lost +
/// in_flight` \[messages\].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    /// Produced by the workload.
    pub produced: u64,
    /// Refused at the door (queue full).
    pub rejected: u64,
    /// Completed by a handler.
    pub completed: u64,
    /// Moved to the dead-letter / poison queue.
    pub dead_lettered: u64,
    /// Dropped by TTL expiry.
    pub expired: u64,
    /// Accepted but gone without any of the above.
    pub lost: u64,
    /// Still in the system at the end.
    pub in_flight: u64,
    /// Deliveries to handlers, redeliveries included.
    pub deliveries: u64,
    /// Successful handler executions for an already-handled message.
    pub duplicates: u64,
    /// Successful handler executions (on a lapsed lock) after their message had left the
    /// queue unhandled: dead-lettered or expired, yet its effect happened.
    #[serde(default)]
    pub late_successes: u64,
}

/// One latency distribution \[ms, 3 decimals\]. Quantiles are the HDR histogram's
/// (3 significant digits); the mean is exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Exact mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

/// One workload class's share of the run (`classes.<name>` in `summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// The class's messages.
    pub messages: ClassMessages,
    /// The class's latency (`end_to_end` only).
    pub latency: BTreeMap<String, LatencySummary>,
}

impl ClassSummary {
    fn new(c: &sim::results::ClassResults) -> ClassSummary {
        let l = &c.ledger;
        ClassSummary {
            messages: ClassMessages {
                produced: l.produced,
                rejected: l.rejected,
                completed: l.completed,
                dead_lettered: l.dead_lettered,
                expired: l.expired,
                lost: l.lost,
                in_flight: l.in_flight,
            },
            latency: BTreeMap::from([(
                "end_to_end".to_string(),
                LatencySummary::new(&c.end_to_end),
            )]),
        }
    }
}

/// A class's ledger: `produced = rejected + completed + dead_lettered + expired + lost +
/// in_flight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassMessages {
    /// Produced by the workload.
    pub produced: u64,
    /// Refused at the door.
    pub rejected: u64,
    /// Completed by a handler.
    pub completed: u64,
    /// Moved to the dead-letter / poison queue.
    pub dead_lettered: u64,
    /// Dropped by TTL expiry.
    pub expired: u64,
    /// Lost.
    pub lost: u64,
    /// Still in the system at the end.
    pub in_flight: u64,
}

impl LatencySummary {
    fn new(l: &Latency) -> LatencySummary {
        LatencySummary {
            count: l.count(),
            mean_ms: round_dp(l.mean_ns() / 1e6, 3),
            p50_ms: ns_to_ms(l.quantile_ns(0.5)),
            p90_ms: ns_to_ms(l.quantile_ns(0.9)),
            p99_ms: ns_to_ms(l.quantile_ns(0.99)),
            p999_ms: ns_to_ms(l.quantile_ns(0.999)),
            max_ms: ns_to_ms(l.max_ns()),
        }
    }
}

/// Why `[limits]` stopped the run (present only when it did).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsSummary {
    /// Always `true`: the run was stopped before its end.
    pub stopped: bool,
    /// When \[s\].
    pub at_s: f64,
    /// Messages in the system (waiting, locked, stored or being accepted) at that moment.
    pub backlog: u64,
    /// The limit passed (`limits.max_backlog`).
    pub max_backlog: u64,
    /// Messages produced per second until then (3 decimals).
    pub arrivals_per_s: f64,
    /// Messages completed per second until then (3 decimals).
    pub completions_per_s: f64,
}

/// Rates \[messages/s, 3 decimals\].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// `completed / sim_time_s`: completions over the whole run, production and drain.
    pub completed_per_s: f64,
    /// `produced / duration_s`: the offered load.
    pub produced_per_s: f64,
    /// The busiest interval's completions divided by the interval length.
    pub peak_completed_per_s: f64,
}

/// Waiting messages (visible or delayed, not locked) \[messages\].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    /// Highest number waiting at any moment.
    pub peak: u64,
    /// Time-averaged number waiting over the run (3 decimals).
    pub mean: f64,
}

/// Little's law check: the time-averaged number in the system `L` against `λ·W`, where
/// `λ = (produced - rejected) / sim_time_s` and `W` is the mean end-to-end latency. `ratio`
/// near 1 means the meters agree; it drifts when many messages are dead-lettered, expired or
/// still in flight (they are in `L` but not in `W`) or when a warm-up excludes messages.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Little {
    /// λ: accepted messages per second over the run (4 decimals).
    pub arrival_rate_per_s: f64,
    /// L: time-averaged number of messages in the system (4 decimals).
    pub mean_in_system: f64,
    /// W: mean end-to-end latency \[s\] (6 decimals).
    pub mean_sojourn_s: f64,
    /// λ·W (4 decimals).
    pub lambda_w: f64,
    /// L / (λ·W) (4 decimals); `null` when λ·W is 0.
    pub ratio: Option<f64>,
}

impl Little {
    fn new(r: &RunResults, sim_time_s: f64) -> Little {
        let accepted = r.ledger.produced.saturating_sub(r.ledger.rejected);
        let lambda = if sim_time_s > 0.0 { accepted as f64 / sim_time_s } else { 0.0 };
        let w = r.latency.get("end_to_end").map_or(0.0, |l| l.mean_ns() / 1e9);
        let lw = lambda * w;
        Little {
            arrival_rate_per_s: round_dp(lambda, 4),
            mean_in_system: round_dp(r.in_system_mean, 4),
            mean_sojourn_s: round_dp(w, 6),
            lambda_w: round_dp(lw, 4),
            ratio: (lw > 0.0).then(|| round_dp(r.in_system_mean / lw, 4)),
        }
    }
}

/// Calls to one downstream service \[calls\].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Calls started.
    pub calls: u64,
    /// Calls that failed (errors and timeouts).
    pub errors: u64,
    /// Of the errors, calls that hit the timeout.
    pub timeouts: u64,
    /// Of the errors, calls refused at the service's `max_concurrency` (HTTP 429).
    #[serde(default)]
    pub throttled: u64,
    /// Calls that waited for a free slot at the service's `max_concurrency`.
    #[serde(default)]
    pub queued: u64,
    /// Most calls waiting for a slot at once.
    #[serde(default)]
    pub waiting_peak: u64,
}

/// The broker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// Operations: sends, receives (empty polls included), completes, abandons.
    pub operations: u64,
}

/// The hosting plan and its autoscaler [instances, events].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostingSummary {
    /// `worker`, `functions-consumption`, `functions-flex`, `functions-premium`, `aca-job`
    /// or `webjob`.
    pub plan: String,
    /// Most instances (or job replicas) allocated at once.
    pub instances_peak: u32,
    /// Time-averaged instances allocated (3 decimals).
    pub instances_mean: f64,
    /// Instances added after the start (scale-outs; job executions started).
    pub scale_outs: u64,
    /// Instances removed by scale-in.
    pub scale_ins: u64,
    /// Instances that paid a cold start.
    pub cold_starts: u64,
    /// Executions killed at the plan's execution-time limit.
    pub timeouts: u64,
    /// Executions cut off along with a timed-out one (the rest of its worker process,
    /// isolated; of its host, in-process).
    #[serde(default)]
    pub timeout_collateral: u64,
    /// Executions still running when a scaled-in instance's drain grace ran out.
    #[serde(default)]
    pub drain_cutoffs: u64,
}

/// The bill [USD, 6 decimals], by the plan's billing rules (docs/output-format.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostSummary {
    /// The pricing table (`azure-payg`).
    pub pricing: String,
    /// Everything.
    pub total_usd: f64,
    /// Instance, replica or GB-second charges.
    pub compute_usd: f64,
    /// Per-execution charges.
    pub executions_usd: f64,
    /// Broker operations.
    pub messaging_usd: f64,
    /// GPU-seconds.
    pub gpu_usd: f64,
    /// `total_usd` per million completed messages; `null` when none completed.
    pub per_million_messages_usd: Option<f64>,
    /// Handler executions billed or counted.
    pub executions: u64,
    /// Instance (or replica) seconds allocated (3 decimals).
    pub instance_seconds: f64,
    /// vCPU-seconds billed (3 decimals).
    pub vcpu_seconds: f64,
    /// GB-seconds billed (3 decimals).
    pub gb_seconds: f64,
    /// Service Bus only: the tier (`basic`, `standard`, `premium`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_tier: Option<String>,
    /// Service Bus only: the Standard base charge or the Premium messaging-unit hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_base_usd: Option<f64>,
    /// Service Bus only: operations beyond the included ones at the per-million rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_operations_usd: Option<f64>,
    /// Service Bus only: operations included in the Standard base charge, prorated (0 dp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_included_operations: Option<f64>,
    /// `aca-app` only: replica-seconds billed at the idle rate (3 decimals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_replica_seconds: Option<f64>,
    /// `aca-app` only: what those seconds cost (in `compute_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_usd: Option<f64>,
}

impl CostSummary {
    fn new(c: &sim::results::CostResults, completed: u64) -> CostSummary {
        CostSummary {
            pricing: c.pricing.clone(),
            total_usd: round_dp(c.total_usd, 6),
            compute_usd: round_dp(c.compute_usd, 6),
            executions_usd: round_dp(c.executions_usd, 6),
            messaging_usd: round_dp(c.messaging_usd, 6),
            gpu_usd: round_dp(c.gpu_usd, 6),
            per_million_messages_usd: (completed > 0)
                .then(|| round_dp(c.total_usd / completed as f64 * 1e6, 4)),
            executions: c.executions,
            instance_seconds: round_dp(c.instance_seconds, 3),
            vcpu_seconds: round_dp(c.vcpu_seconds, 3),
            gb_seconds: round_dp(c.gb_seconds, 3),
            messaging_tier: c.service_bus.as_ref().map(|b| b.tier.clone()),
            messaging_base_usd: c.service_bus.as_ref().map(|b| round_dp(b.base_usd, 6)),
            messaging_operations_usd: c.service_bus.as_ref().map(|b| round_dp(b.operations_usd, 6)),
            messaging_included_operations: c
                .service_bus
                .as_ref()
                .map(|b| round_dp(b.included_operations, 0)),
            idle_replica_seconds: c.idle.as_ref().map(|i| round_dp(i.replica_seconds, 3)),
            idle_usd: c.idle.as_ref().map(|i| round_dp(i.usd, 6)),
        }
    }
}

/// The web tier sharing a WebJob's instances [ms] (an M/G/1 processor-sharing estimate).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WebSummary {
    /// Mean web response time over the run.
    pub latency_mean_ms: f64,
    /// The worst interval's mean web response time.
    pub latency_peak_ms: f64,
    /// Web response time with no background work.
    pub latency_alone_ms: f64,
    /// What background work added on average: `latency_mean_ms - latency_alone_ms`.
    pub added_mean_ms: f64,
    /// Highest share of the instances' CPU taken by background handlers in an interval.
    pub background_cpu_peak: f64,
}

/// One row of `timeseries.csv`: what happened in the interval that ends at `t_s`. Column order
/// is design.md's first, then the extras.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeseriesRow {
    /// End of the interval \[s\].
    pub t_s: f64,
    /// Messages produced in the interval.
    pub arrivals: u64,
    /// Messages completed.
    pub completed: u64,
    /// Handler executions that failed.
    pub failed: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Messages waiting at the end of the interval.
    pub backlog: u64,
    /// Messages in the system at the end of the interval (waiting or in progress).
    pub in_flight: u64,
    /// Consumer instances running at the end of the interval.
    pub instances: u32,
    /// Messages expired by TTL.
    pub expired: u64,
    /// Messages rejected at the door.
    pub rejected: u64,
    /// Median end-to-end latency of the messages completed in the interval \[ms\]; 0 if none.
    pub latency_p50_ms: f64,
    /// 99th percentile of the same \[ms\]; 0 if none.
    pub latency_p99_ms: f64,
    /// Cost accrued since the start of the run [USD, 6 decimals].
    #[serde(default)]
    pub cost_usd: f64,
    /// Mean web-tier response time in the interval (WebJob plans) \[ms\]; 0 otherwise.
    #[serde(default)]
    pub web_latency_ms: f64,
    /// Of `in_flight`, messages in progress (locked by a handler, held by an API, stored
    /// jobs): `in_flight - backlog`.
    #[serde(default)]
    pub in_progress: u64,
    /// The pattern's gauges at the end of the interval (the columns after the fixed ones,
    /// named by [`RunReport::state_columns`]).
    #[serde(skip)]
    pub state: Vec<f64>,
}

impl From<&sim::results::IntervalRow> for TimeseriesRow {
    fn from(r: &sim::results::IntervalRow) -> Self {
        TimeseriesRow {
            t_s: ns_to_s(r.t),
            arrivals: r.arrivals,
            completed: r.completed,
            failed: r.failed,
            dead_lettered: r.dead_lettered,
            backlog: r.backlog,
            in_flight: r.in_flight,
            in_progress: r.in_progress,
            instances: r.instances,
            expired: r.expired,
            rejected: r.rejected,
            latency_p50_ms: ns_to_ms(r.latency_p50_ns),
            latency_p99_ms: ns_to_ms(r.latency_p99_ns),
            cost_usd: round_dp(r.cost_usd, 6),
            web_latency_ms: ns_to_ms(r.web_latency_ns),
            state: r.state.clone(),
        }
    }
}

/// A fault on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// `outage`, `latency`, `error-rate` or `crash`.
    pub kind: String,
    /// What was hit: a service name or `consumer`.
    pub target: String,
    /// Start \[s\].
    pub from_s: f64,
    /// End \[s\]; `null` for a crash without restart (down until the end of the run).
    pub to_s: Option<f64>,
    /// The fault's parameters in words: `+400ms`, `error rate 0.5`, `2 instances, restart
    /// after 1m`; empty for an outage.
    pub detail: String,
}

impl FaultWindow {
    /// The window of a scheduled fault.
    pub fn new(target: &str, kind: &FaultKind) -> FaultWindow {
        let (from, to) = kind.window();
        let detail = match kind {
            FaultKind::Outage { .. } => String::new(),
            FaultKind::RenewalFailure { .. } => "lock renewals fail".into(),
            FaultKind::Latency { add, .. } => format!("+{}", format_duration(*add)),
            FaultKind::ErrorRate { error_rate, .. } => format!("error rate {error_rate}"),
            FaultKind::Restart { grace, restart_after, .. } => {
                format!(
                    "graceful, {} grace, back after {}",
                    format_duration(*grace),
                    format_duration(*restart_after)
                )
            }
            FaultKind::Crash { instances, restart_after, .. } => {
                let n = if *instances == 1 {
                    "1 instance".into()
                } else {
                    format!("{instances} instances")
                };
                match restart_after {
                    Some(r) => format!("{n}, restart after {}", format_duration(*r)),
                    None => format!("{n}, no restart"),
                }
            }
        };
        FaultWindow {
            kind: kind.name().to_string(),
            target: target.to_string(),
            from_s: ns_to_s(from),
            to_s: to.map(ns_to_s),
            detail,
        }
    }

    /// A short label for charts: `payments outage`, `consumer crash`.
    pub fn label(&self) -> String {
        format!("{} {}", self.target, self.kind)
    }

    /// The window's end, or `end_s` when the fault lasts until the end of the run.
    pub fn end_or(&self, end_s: f64) -> f64 {
        self.to_s.unwrap_or(end_s)
    }
}
