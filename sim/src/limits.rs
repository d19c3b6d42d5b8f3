//! Guards against runaway runs, and the up-front check of offered load against capacity.
//!
//! A design that cannot keep up with its load grows its backlog without end, and every
//! waiting message costs memory. `[limits] max_backlog` caps it: when more messages than that
//! are in the system at once (waiting, locked, stored for a retry, or being accepted by an
//! API), the run stops, keeps what it recorded, and says why ([`LimitStop`]). The default,
//! [`LimitsSpec::DEFAULT_MAX_BACKLOG`], keeps such a run well under 1 GB (about 100 bytes per
//! waiting message, measured in `benches/README.md`).

use crate::spec::{QueueKind, Scenario};
use crate::time::{NS_PER_S, Nanos};

pub use crate::spec::LimitsSpec;

/// Why and when a run was stopped by `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitStop {
    /// When the limit was passed.
    pub at: Nanos,
    /// Messages in the system at that moment.
    pub in_system: u64,
    /// The limit in force (`limits.max_backlog`).
    pub max_backlog: u64,
    /// Messages produced until then.
    pub produced: u64,
    /// Messages completed until then.
    pub completed: u64,
}

impl LimitStop {
    /// Messages produced per second until the stop.
    pub fn arrivals_per_s(&self) -> f64 {
        per_s(self.produced, self.at)
    }

    /// Messages completed per second until the stop.
    pub fn completions_per_s(&self) -> f64 {
        per_s(self.completed, self.at)
    }
}

fn per_s(n: u64, at: Nanos) -> f64 {
    if at == 0 { 0.0 } else { n as f64 * NS_PER_S as f64 / at as f64 }
}

/// The offered load against what the consumers can handle at most.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadCheck {
    /// The highest arrival rate of the workload (base rate or a phase), messages/s.
    pub offered_per_s: f64,
    /// Consumer instances counted (`consumer.instances`, or `scaling.max_instances` on an
    /// elastic plan).
    pub instances: u32,
    /// Messages handled at once per instance.
    pub concurrency: u32,
    /// Mean time a handler spends on one message: `consumer.work` plus the called services'
    /// mean latencies, seconds.
    pub mean_handle_s: f64,
}

impl LoadCheck {
    /// The offered load and the capacity of `s`.
    pub fn of(s: &Scenario) -> LoadCheck {
        let w = &s.workload;
        let offered_per_s = match &w.arrivals {
            crate::spec::Arrivals::Trace { times, .. } => {
                if s.duration == 0 {
                    0.0
                } else {
                    times.len() as f64 * NS_PER_S as f64 / s.duration as f64
                }
            }
            _ => w.phases.iter().map(|p| p.rate_per_s).fold(w.rate_per_s, f64::max),
        };
        let c = &s.consumer;
        let h = &s.hosting;
        let instances =
            if h.plan.elastic() { h.scaling.max_instances.max(c.instances) } else { c.instances };
        let concurrency = match s.queue.kind {
            QueueKind::ServiceBus => c.concurrency,
            QueueKind::StorageQueue => {
                c.batch_size + s.queue.new_batch_threshold.unwrap_or(c.batch_size / 2)
            }
        };
        let services: f64 = c
            .calls
            .iter()
            .filter_map(|name| s.services.get(name))
            .map(|svc| svc.latency.mean())
            .sum();
        let mean_handle_s = (c.work.mean() + services) / NS_PER_S as f64;
        LoadCheck { offered_per_s, instances, concurrency, mean_handle_s }
    }

    /// Messages per second the consumers can handle at most:
    /// `instances × concurrency / mean_handle_s`.
    pub fn capacity_per_s(&self) -> f64 {
        if self.mean_handle_s <= 0.0 {
            f64::INFINITY
        } else {
            f64::from(self.instances) * f64::from(self.concurrency) / self.mean_handle_s
        }
    }

    /// Whether the offered load exceeds the capacity.
    pub fn overloaded(&self) -> bool {
        self.offered_per_s > self.capacity_per_s()
    }

    /// A warning for the user when the offered load exceeds the capacity, else `None`.
    pub fn warning(&self) -> Option<String> {
        if !self.overloaded() {
            return None;
        }
        Some(format!(
            "offered load {} messages/s exceeds the consumers' capacity of about {} messages/s \
             ({} instances x {} at a time / {:.3} s per message): the backlog will grow while \
             the load lasts",
            fmt_rate(self.offered_per_s),
            fmt_rate(self.capacity_per_s()),
            self.instances,
            self.concurrency,
            self.mean_handle_s
        ))
    }
}

/// A rate with few significant digits: `1000000000`, `20`, `2.5`.
pub fn fmt_rate(r: f64) -> String {
    if r >= 100.0 || r == r.trunc() { format!("{r:.0}") } else { format!("{r:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Dist;
    use crate::spec::{ConsumerSpec, Phase, WorkloadSpec};
    use crate::time::NS_PER_MS;

    fn scenario(rate: f64, phase: Option<f64>) -> Scenario {
        Scenario {
            workload: WorkloadSpec {
                rate_per_s: rate,
                phases: phase
                    .map(|r| vec![Phase { from: 0, to: NS_PER_S, rate_per_s: r }])
                    .unwrap_or_default(),
                ..Default::default()
            },
            consumer: ConsumerSpec {
                instances: 2,
                concurrency: 1,
                work: Dist::Const(100 * NS_PER_MS),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn capacity_is_instances_times_concurrency_over_mean_time() {
        let c = LoadCheck::of(&scenario(10.0, None));
        assert!((c.capacity_per_s() - 20.0).abs() < 1e-9);
        assert!(!c.overloaded());
        assert!(c.warning().is_none());
    }

    #[test]
    fn a_peak_phase_above_capacity_warns() {
        let c = LoadCheck::of(&scenario(10.0, Some(25.0)));
        assert_eq!(c.offered_per_s, 25.0);
        let w = c.warning().expect("overloaded");
        assert!(w.contains("offered load 25 messages/s"), "{w}");
        assert!(w.contains("capacity of about 20 messages/s"), "{w}");
    }

    #[test]
    fn rates_of_a_stop() {
        let s = LimitStop {
            at: 2 * NS_PER_S,
            in_system: 10,
            max_backlog: 9,
            produced: 100,
            completed: 40,
        };
        assert_eq!(s.arrivals_per_s(), 50.0);
        assert_eq!(s.completions_per_s(), 20.0);
    }
}
