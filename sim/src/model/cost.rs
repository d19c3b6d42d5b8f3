//! Billing: what the consumers and the broker cost, accrued as the run goes, by the rules of
//! each hosting plan (design.md, "Hosting, scaling and cost").
//!
//! | plan | meter |
//! | --- | --- |
//! | Consumption | per execution + GB-s of each execution: memory rounded up to 128 MB (at most 1,536 MB), duration at least 100 ms, in 1 ms steps |
//! | Flex | per execution + GB-s of instance memory per execution period (an instance busy with at least one execution): at least 1 s, then 100 ms steps; always-ready instances pay the always-ready execution rate for those billed periods and a baseline GB-s for the rest of their time |
//! | Premium | vCPU-s + GB-s of every allocated instance (running, starting, pre-warmed) |
//! | Container Apps job | vCPU-s + GiB-s of every running replica, cold start included |
//! | Container Apps app | vCPU-s + GiB-s of every running replica; a replica idle at the minimum replica count pays the idle vCPU rate (memory at the same GiB-s rate) |
//! | Worker, WebJob | instance-hours |
//! | GPU workers | GPU-seconds of every replica (on top of its plan's meters), at the GPU kind's rate |
//! | broker | Service Bus by tier (below), Storage Queue per 10,000 operations |
//!
//! Service Bus tiers ([`service_bus_bill`]): Basic, per million operations; Standard, an
//! hourly base charge for the simulated time, the month's included operations prorated to
//! the run's length, then per million in the volume tiers (13-100 M, 100-2,500 M, over
//! 2,500 M a month, boundaries prorated the same way); Premium, messaging units × hours.
//!
//! Free grants (monthly) are subtracted only with `free_grant = true`, prorated to the
//! simulated time (a 2-hour run gets 2/720 of a month's grant).

use crate::results::{CostResults, IdleBill, ServiceBusBill};
use crate::spec::{CostSpec, HostingSpec, Plan, Pricing, QueueKind, ServiceBusTier};
use crate::time::{NS_PER_DAY, NS_PER_H, NS_PER_MS, NS_PER_S, Nanos};
use std::cell::RefCell;

const MB_PER_GB: f64 = 1024.0;
/// A month of simulated time, for prorating free grants and Service Bus's monthly included
/// operations and volume tiers (30 days, 720 hours).
pub const MONTH: Nanos = 30 * NS_PER_DAY;
/// Service Bus Standard: where the second and third volume tiers start (operations a month).
const SERVICE_BUS_TIERS: [f64; 2] = [100e6, 2_500e6];

/// The Service Bus bill of `operations` over `sim_time` on `tier` (`units` messaging units on
/// Premium).
pub fn service_bus_bill(
    p: &Pricing,
    tier: ServiceBusTier,
    units: u32,
    operations: u64,
    sim_time: Nanos,
) -> ServiceBusBill {
    let hours = sim_time as f64 / NS_PER_H as f64;
    let share = sim_time as f64 / MONTH as f64;
    let ops = operations as f64;
    let bill = |base_usd, operations_usd, included_operations, billed_operations| ServiceBusBill {
        tier: tier.name().to_string(),
        base_usd,
        operations_usd,
        included_operations,
        billed_operations,
    };
    match tier {
        ServiceBusTier::Basic => {
            bill(0.0, ops / 1e6 * p.service_bus_basic_per_million_ops, 0.0, ops)
        }
        ServiceBusTier::Premium => {
            bill(f64::from(units) * hours * p.service_bus_premium_mu_hour, 0.0, 0.0, 0.0)
        }
        ServiceBusTier::Standard => {
            let included = p.service_bus_included_ops * share;
            let billed = (ops - included).max(0.0);
            // Operations past the included ones fall in the 13-100 M tier up to the prorated
            // 100 M mark, then the 100-2,500 M tier, then the last.
            let edges = SERVICE_BUS_TIERS.map(|m| (m * share).max(included));
            let rates = [
                p.service_bus_per_million_ops,
                p.service_bus_100m_per_million_ops,
                p.service_bus_2500m_per_million_ops,
            ];
            let bounds = [included, edges[0], edges[1], f64::INFINITY];
            let usd = (0..3)
                .map(|i| (ops.min(bounds[i + 1]) - bounds[i]).max(0.0) / 1e6 * rates[i])
                .sum();
            bill(hours * p.service_bus_base_hour, usd, included, billed)
        }
    }
}

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
    idle_s: f64,
}

/// The cost meter of one run.
pub struct CostMeter {
    hosting: HostingSpec,
    spec: CostSpec,
    queue: QueueKind,
    totals: RefCell<Totals>,
    /// USD per GPU-second of every instance, when the pool's instances have a GPU.
    gpu_rate: std::cell::Cell<Option<f64>>,
    /// The Service Bus tier and Premium messaging units.
    tier: ServiceBusTier,
    messaging_units: u32,
    /// Whether the run has a broker queue at all (patterns without one pay no base charge).
    has_queue: std::cell::Cell<bool>,
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
            tier: ServiceBusTier::Standard,
            messaging_units: 1,
            has_queue: std::cell::Cell::new(false),
        }
    }

    /// The run has a broker queue: its namespace is billed once an operation was made (a
    /// Service Bus namespace pays its base charge or messaging units once, however many
    /// queues it holds).
    pub fn queue_added(&self) {
        self.has_queue.set(true);
    }

    /// The same meter, billing a Service Bus broker on `tier` (`units` messaging units on
    /// Premium; default Standard).
    pub fn with_service_bus(mut self, tier: ServiceBusTier, units: u32) -> CostMeter {
        self.tier = tier;
        self.messaging_units = units;
        self
    }

    /// A Container Apps app's replicas were idle for `idle` in all (at the minimum replica
    /// count, no execution in progress): that time, already billed at the active rate by
    /// [`CostMeter::instance_time`], moves to the idle vCPU rate. No-op on other plans.
    pub fn idle_time(&self, idle: Nanos) {
        if self.hosting.plan != Plan::AcaApp || idle == 0 {
            return;
        }
        let p = &self.spec.pricing;
        let s = idle as f64 / NS_PER_S as f64;
        let mut t = self.totals.borrow_mut();
        t.idle_s += s;
        t.compute_usd -= s * self.hosting.cpu * (p.aca_vcpu_s - p.aca_idle_vcpu_s);
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
            Plan::AcaJob | Plan::AcaApp => {
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
        // A namespace is billed once the run's queues saw an operation (the event-stream
        // pattern's park queue, unused unless `on_failure = "park"`, is no namespace).
        let used = self.has_queue.get() && operations > 0;
        let service_bus = (self.queue == QueueKind::ServiceBus && used)
            .then(|| service_bus_bill(p, self.tier, self.messaging_units, operations, sim_time));
        let messaging_usd = match &service_bus {
            Some(b) => b.base_usd + b.operations_usd,
            None => operations as f64 / 1e4 * p.storage_queue_per_10k_ops,
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
                Plan::AcaApp => {
                    // The grant's vCPU-seconds go to active time first, then to idle time.
                    let idle_vcpu = t.idle_s * self.hosting.cpu;
                    let grant = p.free_aca_vcpu_s * share;
                    let free_active = grant.min(t.vcpu_s - idle_vcpu);
                    let free_idle = (grant - free_active).min(idle_vcpu);
                    let free_gib = (p.free_aca_gib_s * share).min(t.gb_s);
                    compute_usd -= free_active * p.aca_vcpu_s
                        + free_idle * p.aca_idle_vcpu_s
                        + free_gib * p.aca_gib_s;
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
            service_bus,
            idle: (self.hosting.plan == Plan::AcaApp).then(|| IdleBill {
                replica_seconds: t.idle_s,
                usd: t.idle_s * (self.hosting.cpu * p.aca_idle_vcpu_s + self.gb() * p.aca_gib_s),
            }),
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

    fn sb_pricing() -> Pricing {
        let mut p = Pricing::zero("test");
        p.service_bus_basic_per_million_ops = 0.05;
        p.service_bus_base_hour = 0.0135;
        p.service_bus_included_ops = 13e6;
        p.service_bus_per_million_ops = 0.80;
        p.service_bus_100m_per_million_ops = 0.50;
        p.service_bus_2500m_per_million_ops = 0.20;
        p.service_bus_premium_mu_hour = 0.928;
        p
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn service_bus_basic_bills_every_operation_and_nothing_else() {
        let b = service_bus_bill(&sb_pricing(), ServiceBusTier::Basic, 1, 2_000_000, NS_PER_H);
        assert!(close(b.operations_usd, 0.10), "{b:?}");
        assert_eq!((b.base_usd, b.included_operations, b.billed_operations), (0.0, 0.0, 2e6));
    }

    #[test]
    fn service_bus_standard_base_charge_and_included_operations_are_prorated() {
        let p = sb_pricing();
        // A 720-hour month: 13 M included, 20 M used, 7 M at the 13-100 M rate.
        let month = service_bus_bill(&p, ServiceBusTier::Standard, 1, 20_000_000, MONTH);
        assert!(close(month.base_usd, 720.0 * 0.0135), "{month:?}");
        assert!(close(month.included_operations, 13e6));
        assert!(close(month.operations_usd, 7.0 * 0.80), "{month:?}");
        // One hour: 13 M / 720 = 18,055.6 included; fewer operations cost only the base.
        let quiet = service_bus_bill(&p, ServiceBusTier::Standard, 1, 18_000, NS_PER_H);
        assert!(close(quiet.base_usd, 0.0135));
        assert_eq!((quiet.operations_usd, quiet.billed_operations), (0.0, 0.0));
        let busy = service_bus_bill(&p, ServiceBusTier::Standard, 1, 100_000, NS_PER_H);
        let billed = 100_000.0 - 13e6 / 720.0;
        assert!(close(busy.billed_operations, billed), "{busy:?}");
        assert!(close(busy.operations_usd, billed / 1e6 * 0.80), "{busy:?}");
    }

    #[test]
    fn service_bus_standard_volume_tiers_are_prorated_to_the_run() {
        let p = sb_pricing();
        // One hour is 1/720 month: the 100 M and 2,500 M marks fall at 138,889 and 3,472,222.
        let ops = 5_000_000;
        let b = service_bus_bill(&p, ServiceBusTier::Standard, 1, ops, NS_PER_H);
        let (inc, t2, t3) = (13e6 / 720.0, 100e6 / 720.0, 2_500e6 / 720.0);
        let want = (t2 - inc) / 1e6 * 0.80 + (t3 - t2) / 1e6 * 0.50 + (5e6 - t3) / 1e6 * 0.20;
        assert!(close(b.operations_usd, want), "{} != {want}", b.operations_usd);
        // A month at the flat 13-100 M rate would have cost more.
        assert!(b.operations_usd < (5e6 - inc) / 1e6 * 0.80);
    }

    #[test]
    fn service_bus_premium_bills_messaging_unit_hours_only() {
        let p = sb_pricing();
        let b = service_bus_bill(&p, ServiceBusTier::Premium, 2, 50_000_000, 3 * NS_PER_H);
        assert!(close(b.base_usd, 2.0 * 3.0 * 0.928), "{b:?}");
        assert_eq!((b.operations_usd, b.billed_operations), (0.0, 0.0));
    }

    #[test]
    fn the_meter_bills_the_broker_by_its_tier() {
        let spec = CostSpec { pricing: sb_pricing(), free_grant: false };
        let hosting = HostingSpec::default();
        let standard = CostMeter::new(&hosting, &spec, QueueKind::ServiceBus);
        assert_eq!(standard.bill(1, NS_PER_H).service_bus, None, "no queue, no namespace");
        standard.queue_added();
        assert_eq!(standard.bill(0, NS_PER_H).service_bus, None, "an unused queue");
        let c = standard.bill(1_000_000, 2 * NS_PER_H);
        let sb = c.service_bus.clone().expect("a Service Bus bill");
        assert_eq!(sb.tier, "standard");
        assert!(close(c.messaging_usd, sb.base_usd + sb.operations_usd));
        assert!(close(sb.base_usd, 2.0 * 0.0135));
        let premium = CostMeter::new(&hosting, &spec, QueueKind::ServiceBus)
            .with_service_bus(ServiceBusTier::Premium, 4);
        premium.queue_added();
        assert!(close(premium.bill(1_000_000, 2 * NS_PER_H).messaging_usd, 4.0 * 2.0 * 0.928));
        let storage = CostMeter::new(&hosting, &spec, QueueKind::StorageQueue);
        assert_eq!(storage.bill(1_000_000, 2 * NS_PER_H).service_bus, None);
    }

    fn aca(plan: Plan, free_grant: bool) -> CostMeter {
        let mut p = Pricing::zero("test");
        p.aca_vcpu_s = 0.000024;
        p.aca_idle_vcpu_s = 0.000003;
        p.aca_gib_s = 0.000003;
        p.free_aca_vcpu_s = 180_000.0;
        p.free_aca_gib_s = 360_000.0;
        let hosting = HostingSpec { plan, cpu: 0.5, memory_mb: 1024, ..HostingSpec::default() };
        CostMeter::new(&hosting, &CostSpec { pricing: p, free_grant }, QueueKind::StorageQueue)
    }

    #[test]
    fn an_idle_app_replica_pays_the_idle_vcpu_rate_and_the_same_memory_rate() {
        let m = aca(Plan::AcaApp, false);
        m.instance_time(1000 * NS_PER_S, 0, false);
        m.idle_time(600 * NS_PER_S);
        let c = m.bill(0, 1000 * NS_PER_S);
        let active = 400.0 * (0.5 * 0.000024 + 0.000003);
        let idle = 600.0 * (0.5 * 0.000003 + 0.000003);
        assert!(close(c.compute_usd, active + idle), "{} != {}", c.compute_usd, active + idle);
        let i = c.idle.expect("an idle bill on aca-app");
        assert!(close(i.replica_seconds, 600.0) && close(i.usd, idle), "{i:?}");
        assert!(close(c.vcpu_seconds, 500.0), "vCPU-seconds stay gross");
    }

    #[test]
    fn jobs_never_pay_the_idle_rate() {
        let m = aca(Plan::AcaJob, false);
        m.instance_time(1000 * NS_PER_S, 0, false);
        m.idle_time(600 * NS_PER_S);
        let c = m.bill(0, 1000 * NS_PER_S);
        assert!(close(c.compute_usd, 1000.0 * (0.5 * 0.000024 + 0.000003)));
        assert_eq!(c.idle, None);
    }

    #[test]
    fn the_free_grant_covers_active_vcpu_seconds_first_then_idle_ones() {
        // A month: 180,000 vCPU-s free; 200,000 active and 100,000 idle vCPU-s used.
        let m = aca(Plan::AcaApp, true);
        m.instance_time(600_000 * NS_PER_S, 0, false);
        m.idle_time(200_000 * NS_PER_S);
        let c = m.bill(0, MONTH);
        let vcpu = 20_000.0 * 0.000024 + 100_000.0 * 0.000003;
        let gib = (600_000.0 - 360_000.0) * 0.000003;
        assert!(close(c.compute_usd, vcpu + gib), "{} != {}", c.compute_usd, vcpu + gib);
    }

    #[test]
    fn flex_rounding_rules() {
        assert_eq!(flex_billed_s(1), 1.0);
        assert_eq!(flex_billed_s(1_050 * NS_PER_MS), 1.1);
        assert_eq!(flex_billed_s(3 * NS_PER_S), 3.0);
    }
}
