//! Billing: what the consumers and the broker cost, accrued as the run goes, by the rules of
//! each hosting plan (design.md, "Hosting, scaling and cost").
//!
//! | plan | meter |
//! | --- | --- |
//! | Consumption | per execution + GB-s of each execution: memory rounded up to 128 MB (at most 1,536 MB), duration at least 100 ms, in 1 ms steps |
//! | Flex | per execution + GB-s of instance memory per execution period (an instance busy with at least one execution): at least 1 s, then 100 ms steps; always-ready instances pay the always-ready execution rate for those billed periods and a baseline GB-s for the rest of their time |
//! | Premium | vCPU-s + GB-s of every allocated instance (running, starting, pre-warmed) |
//! | Container Apps job | vCPU-s + GiB-s of every running replica, cold start included |
//! | Worker, WebJob | instance-hours |
//! | GPU workers | GPU-seconds of every replica (on top of its plan's meters), at the GPU kind's rate |
//! | broker | Service Bus per million operations, Storage Queue per 10,000 |
//!
//! Free grants (monthly) are subtracted only with `free_grant = true`, prorated to the
//! simulated time (a 2-hour run gets 2/720 of a month's grant).

use crate::results::CostResults;
use crate::spec::{CostSpec, HostingSpec, Plan, QueueKind};
use crate::time::{NS_PER_DAY, NS_PER_H, NS_PER_MS, NS_PER_S, Nanos};
use std::cell::RefCell;

const MB_PER_GB: f64 = 1024.0;
/// A month of simulated time, for prorating free grants.
const MONTH: Nanos = 30 * NS_PER_DAY;

/// Consumption bills memory in 128 MB steps, at most 1,536 MB.
pub fn consumption_billed_gb(memory_mb: u32) -> f64 {
    let mb = memory_mb.div_ceil(128) * 128;
    f64::from(mb.min(1536)) / MB_PER_GB
}

/// Consumption bills an execution for at least 100 ms, rounded up to the millisecond.
pub fn consumption_billed_s(duration: Nanos) -> f64 {
    let ms = duration.div_ceil(NS_PER_MS).max(100);
    ms as f64 / 1000.0
}

/// Flex bills an execution period for at least 1 s, then in 100 ms steps.
pub fn flex_billed_s(period: Nanos) -> f64 {
    let step = 100 * NS_PER_MS;
    let steps = period.div_ceil(step).max(10);
    (steps * step) as f64 / NS_PER_S as f64
}

#[derive(Default)]
struct Totals {
    executions: u64,
    execution_gb_s: f64,
    compute_usd: f64,
    executions_usd: f64,
    instance_s: f64,
    vcpu_s: f64,
    gb_s: f64,
    gpu_s: f64,
    gpu_usd: f64,
}

/// The cost meter of one run.
pub struct CostMeter {
    hosting: HostingSpec,
    spec: CostSpec,
    queue: QueueKind,
    totals: RefCell<Totals>,
    /// USD per GPU-second of every instance, when the pool's instances have a GPU.
    gpu_rate: std::cell::Cell<Option<f64>>,
}

impl CostMeter {
    /// A meter for these plan and prices.
    pub fn new(hosting: &HostingSpec, spec: &CostSpec, queue: QueueKind) -> CostMeter {
        CostMeter {
            hosting: hosting.clone(),
            spec: spec.clone(),
            queue,
            totals: RefCell::new(Totals::default()),
            gpu_rate: std::cell::Cell::new(None),
        }
    }

    /// Every instance has one GPU billed at `usd_per_s` per second it is allocated (a GPU
    /// worker's replicas: Container Apps bills GPU-seconds as a meter of their own).
    pub fn set_gpu_rate(&self, usd_per_s: f64) {
        self.gpu_rate.set(Some(usd_per_s));
    }

    /// GPU-seconds billed so far.
    pub fn gpu_seconds(&self) -> f64 {
        self.totals.borrow().gpu_s
    }

    fn gb(&self) -> f64 {
        f64::from(self.hosting.memory_mb) / MB_PER_GB
    }

    /// An execution of `duration` ended (Consumption bills it here; every plan counts it).
    pub fn execution(&self, duration: Nanos) {
        let p = &self.spec.pricing;
        let mut t = self.totals.borrow_mut();
        t.executions += 1;
        match self.hosting.plan {
            Plan::FunctionsConsumption => {
                let gb_s =
                    consumption_billed_gb(self.hosting.memory_mb) * consumption_billed_s(duration);
                t.execution_gb_s += gb_s;
                t.gb_s += gb_s;
                t.compute_usd += gb_s * p.consumption_gb_s;
                t.executions_usd += p.consumption_per_million / 1e6;
            }
            Plan::FunctionsFlex => t.executions_usd += p.flex_per_million / 1e6,
            _ => {}
        }
    }

    /// A Flex instance's execution period (time with at least one execution) ended.
    /// Returns the time billed as execution (for Flex the rounded period, else the period),
    /// which an always-ready instance's idle baseline then leaves out, so no moment is
    /// billed twice.
    pub fn flex_period(&self, period: Nanos, always_ready: bool) -> Nanos {
        if self.hosting.plan != Plan::FunctionsFlex {
            return period;
        }
        let p = &self.spec.pricing;
        let billed_s = flex_billed_s(period);
        let gb_s = self.gb() * billed_s;
        let rate =
            if always_ready { p.flex_always_ready_execution_gb_s } else { p.flex_on_demand_gb_s };
        let mut t = self.totals.borrow_mut();
        t.execution_gb_s += gb_s;
        t.gb_s += gb_s;
        t.compute_usd += gb_s * rate;
        (billed_s * NS_PER_S as f64).round() as Nanos
    }

    /// An instance (or replica, or always-ready Flex instance) was allocated for `time`;
    /// `busy` of it was spent in execution periods (Flex baseline excludes those).
    pub fn instance_time(&self, time: Nanos, busy: Nanos, always_ready: bool) {
        let p = &self.spec.pricing;
        let s = time as f64 / NS_PER_S as f64;
        let mut t = self.totals.borrow_mut();
        t.instance_s += s;
        if let Some(rate) = self.gpu_rate.get() {
            t.gpu_s += s;
            t.gpu_usd += s * rate;
        }
        match self.hosting.plan {
            Plan::Worker | Plan::WebJob => {
                t.compute_usd += time as f64 / NS_PER_H as f64 * p.worker_instance_hour;
            }
            Plan::FunctionsPremium => {
                t.vcpu_s += s * self.hosting.cpu;
                t.gb_s += s * self.gb();
                t.compute_usd +=
                    s * (self.hosting.cpu * p.premium_vcpu_s + self.gb() * p.premium_gb_s);
            }
            Plan::AcaJob => {
                t.vcpu_s += s * self.hosting.cpu;
                t.gb_s += s * self.gb();
                t.compute_usd += s * (self.hosting.cpu * p.aca_vcpu_s + self.gb() * p.aca_gib_s);
            }
            Plan::FunctionsFlex if always_ready => {
                let idle = time.saturating_sub(busy) as f64 / NS_PER_S as f64;
                t.gb_s += idle * self.gb();
                t.compute_usd += idle * self.gb() * p.flex_always_ready_baseline_gb_s;
            }
            Plan::FunctionsFlex | Plan::FunctionsConsumption => {}
        }
    }

    /// The bill so far: `operations` broker operations over `sim_time`.
    pub fn bill(&self, operations: u64, sim_time: Nanos) -> CostResults {
        let p = &self.spec.pricing;
        let t = self.totals.borrow();
        let messaging_usd = match self.queue {
            QueueKind::ServiceBus => operations as f64 / 1e6 * p.service_bus_per_million_ops,
            QueueKind::StorageQueue => operations as f64 / 1e4 * p.storage_queue_per_10k_ops,
        };
        let (mut compute_usd, mut executions_usd) = (t.compute_usd, t.executions_usd);
        if self.spec.free_grant {
            let share = sim_time as f64 / MONTH as f64;
            match self.hosting.plan {
                Plan::FunctionsConsumption => {
                    let free_exec =
                        (p.free_consumption_executions * share).min(t.executions as f64);
                    executions_usd -= free_exec * p.consumption_per_million / 1e6;
                    let free_gb_s = (p.free_consumption_gb_s * share).min(t.execution_gb_s);
                    compute_usd -= free_gb_s * p.consumption_gb_s;
                }
                Plan::AcaJob => {
                    let free_vcpu = (p.free_aca_vcpu_s * share).min(t.vcpu_s);
                    let free_gib = (p.free_aca_gib_s * share).min(t.gb_s);
                    compute_usd -= free_vcpu * p.aca_vcpu_s + free_gib * p.aca_gib_s;
                }
                _ => {}
            }
        }
        CostResults {
            pricing: p.name.clone(),
            compute_usd,
            executions_usd,
            messaging_usd,
            gpu_usd: t.gpu_usd,
            total_usd: compute_usd + executions_usd + messaging_usd + t.gpu_usd,
            executions: t.executions,
            instance_seconds: t.instance_s,
            vcpu_seconds: t.vcpu_s,
            gb_seconds: t.gb_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumption_rounding_rules() {
        assert_eq!(consumption_billed_gb(100), 0.125);
        assert_eq!(consumption_billed_gb(129), 0.25);
        assert_eq!(consumption_billed_gb(4096), 1.5);
        assert_eq!(consumption_billed_s(20 * NS_PER_MS), 0.1);
        assert_eq!(consumption_billed_s(1_234_500_000), 1.235);
    }

    #[test]
    fn flex_rounding_rules() {
        assert_eq!(flex_billed_s(1), 1.0);
        assert_eq!(flex_billed_s(1_050 * NS_PER_MS), 1.1);
        assert_eq!(flex_billed_s(3 * NS_PER_S), 3.0);
    }
}
