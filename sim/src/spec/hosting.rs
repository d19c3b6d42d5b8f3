//! Hosting plans, autoscaling and pricing: what runs the consumers, how many of them, and
//! what that costs. Defaults and limits: `docs/sources.md`.

use crate::dist::Dist;
use crate::time::{NS_PER_MIN, NS_PER_MS, NS_PER_S, Nanos};

/// Where the consumer handlers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plan {
    /// A fixed pool of always-on workers (VMs, App Service instances), billed per
    /// instance-hour whether busy or idle.
    Worker,
    /// Azure Functions Consumption: scale from zero, cold starts, a 5-minute default (10
    /// maximum) execution limit, billed per execution and GB-second.
    FunctionsConsumption,
    /// Azure Functions Flex Consumption: always-ready instances, per-instance concurrency,
    /// billed per GB-second of instance memory while executing (1 s minimum per execution
    /// period, then 100 ms steps) plus executions; always-ready instances pay a baseline.
    FunctionsFlex,
    /// Azure Functions Premium: at least one instance always allocated, pre-warmed instances
    /// hide cold starts, billed per vCPU-second and GB-second of allocated instances.
    FunctionsPremium,
    /// Azure Container Apps job, event-driven by a KEDA queue-length scaler: each execution is
    /// a replica that drains the queue and exits, billed per vCPU-second and GiB-second while
    /// it runs.
    AcaJob,
    /// An Azure WebJob on the web app's App Service plan: the plan's instances, billed per
    /// instance-hour, with the web tier sharing their CPU.
    WebJob,
    /// An Azure Container Apps app on the consumption plan: long-running replicas fed by the
    /// queue trigger, scaled by KEDA and the HPA on the queue length, billed per vCPU-second
    /// and GiB-second while they run; a replica at the minimum replica count with no execution
    /// in progress pays the idle vCPU rate.
    AcaApp,
}

impl Plan {
    /// Every plan, in the order the docs list them.
    pub const ALL: [Plan; 7] = [
        Plan::Worker,
        Plan::FunctionsConsumption,
        Plan::FunctionsFlex,
        Plan::FunctionsPremium,
        Plan::AcaJob,
        Plan::AcaApp,
        Plan::WebJob,
    ];

    /// The name used in scenario files (`[consumer] hosting`).
    pub fn name(self) -> &'static str {
        match self {
            Plan::Worker => "worker",
            Plan::FunctionsConsumption => "functions-consumption",
            Plan::FunctionsFlex => "functions-flex",
            Plan::FunctionsPremium => "functions-premium",
            Plan::AcaJob => "aca-job",
            Plan::WebJob => "webjob",
            Plan::AcaApp => "aca-app",
        }
    }

    /// Looks a plan up by its scenario-file name.
    pub fn from_name(name: &str) -> Option<Plan> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether an autoscaler decides the instance count (else `consumer.instances` is fixed).
    pub fn elastic(self) -> bool {
        !matches!(self, Plan::Worker | Plan::WebJob)
    }

    /// The plan's default execution-time limit (`functionTimeout`; the replica timeout of a
    /// Container Apps job), `None` for no limit.
    pub fn default_execution_timeout(self) -> Option<Nanos> {
        match self {
            Plan::FunctionsConsumption => Some(5 * NS_PER_MIN),
            Plan::FunctionsFlex | Plan::FunctionsPremium => Some(30 * NS_PER_MIN),
            Plan::AcaJob => Some(30 * NS_PER_MIN),
            Plan::Worker | Plan::WebJob | Plan::AcaApp => None,
        }
    }

    /// How long a Functions instance that is scaled in may finish its running executions:
    /// 10 minutes on Consumption, 60 on Flex Consumption and Premium; a Container Apps app
    /// replica gets the termination grace period (`terminationGracePeriodSeconds`, default
    /// 30 s); `None` where the scaler never drains (jobs, fixed plans).
    pub fn default_drain_grace(self) -> Option<Nanos> {
        match self {
            Plan::AcaApp => Some(30 * NS_PER_S),
            Plan::FunctionsConsumption => Some(10 * NS_PER_MIN),
            Plan::FunctionsFlex | Plan::FunctionsPremium => Some(60 * NS_PER_MIN),
            Plan::AcaJob | Plan::Worker | Plan::WebJob => None,
        }
    }

    /// The largest execution-time limit the plan allows, `None` for unbounded.
    pub fn max_execution_timeout(self) -> Option<Nanos> {
        match self {
            Plan::FunctionsConsumption => Some(10 * NS_PER_MIN),
            _ => None,
        }
    }

    /// The plan's default instance cap.
    pub fn default_max_instances(self) -> u32 {
        match self {
            Plan::FunctionsConsumption => 200,
            Plan::FunctionsFlex | Plan::FunctionsPremium | Plan::AcaJob => 100,
            Plan::AcaApp => 10,
            Plan::Worker | Plan::WebJob => u32::MAX,
        }
    }

    /// The plan's lowest allowed (and default) instance floor.
    pub fn default_min_instances(self) -> u32 {
        match self {
            Plan::FunctionsPremium => 1,
            _ => 0,
        }
    }
}

/// `[consumer] hosting`, `memory`, `cpu` and the `[scaling]` table, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct HostingSpec {
    /// The plan (default `worker`).
    pub plan: Plan,
    /// Memory per instance (Flex, Premium, containers) or per execution (Consumption), MB
    /// (default 512; Flex 2048).
    pub memory_mb: u32,
    /// vCPUs per instance (default 1).
    pub cpu: f64,
    /// When an execution is killed: `functionTimeout` on Functions plans (what the host
    /// does then depends on `worker_model`), the replica timeout of a Container Apps job
    /// (the replica's whole run).
    pub execution_timeout: ExecutionLimit,
    /// How a Functions app runs its code: what a timeout recycles.
    pub worker_model: WorkerModel,
    /// Autoscaling (elastic plans only).
    pub scaling: ScalingSpec,
    /// The web tier sharing a WebJob's instances.
    pub web: WebTierSpec,
}

impl Default for HostingSpec {
    fn default() -> Self {
        HostingSpec {
            plan: Plan::Worker,
            memory_mb: 512,
            cpu: 1.0,
            execution_timeout: ExecutionLimit::PlanDefault,
            worker_model: WorkerModel::Isolated,
            scaling: ScalingSpec::default(),
            web: WebTierSpec::default(),
        }
    }
}

impl HostingSpec {
    /// The processors the Functions trigger extensions see, which scale their concurrency
    /// defaults: 1 on Consumption (the extensions count one effective core there), the
    /// instance's vCPUs rounded up on Flex, Premium and a WebJob's App Service plan, and 1
    /// where sluice runs its own receive loop (a worker, a Container Apps job or app).
    pub fn trigger_cores(&self) -> u32 {
        match self.plan {
            Plan::FunctionsFlex | Plan::FunctionsPremium | Plan::WebJob => {
                (self.cpu.ceil() as u32).max(1)
            }
            Plan::FunctionsConsumption | Plan::Worker | Plan::AcaJob | Plan::AcaApp => 1,
        }
    }

    /// The execution-time limit in force.
    pub fn timeout(&self) -> Option<Nanos> {
        match self.execution_timeout {
            ExecutionLimit::PlanDefault => self.plan.default_execution_timeout(),
            ExecutionLimit::Unlimited => None,
            ExecutionLimit::After(t) => Some(t),
        }
    }
}

/// `[consumer] execution_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionLimit {
    /// The plan's default ([`Plan::default_execution_timeout`]).
    PlanDefault,
    /// No limit (`"never"`; not on Consumption, whose maximum is 10 minutes).
    Unlimited,
    /// Kill executions after this long.
    After(Nanos),
}

/// `[consumer] worker_model`: how a Functions app runs its code, which decides what a
/// `functionTimeout` takes down with the execution that ran over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerModel {
    /// The isolated worker (and every non-.NET language): the host restarts the worker
    /// process; every execution in it fails and is settled as failed (abandoned, released).
    Isolated,
    /// The in-process .NET model: the whole host shuts down and restarts; executions are cut
    /// off unsettled, their messages return when their locks or visibility lapse.
    InProcess,
}

impl WorkerModel {
    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            WorkerModel::Isolated => "isolated",
            WorkerModel::InProcess => "in-process",
        }
    }
}

/// `[queue] tier`: the Service Bus pricing tier, which decides how the broker is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceBusTier {
    /// Per million operations, nothing else.
    Basic,
    /// An hourly base charge, the first 13 million operations a month included, then
    /// per million operations in volume tiers (13-100 M, 100-2,500 M, over 2,500 M a month).
    Standard,
    /// Per messaging unit and hour; no per-operation charge.
    Premium,
}

impl ServiceBusTier {
    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ServiceBusTier::Basic => "basic",
            ServiceBusTier::Standard => "standard",
            ServiceBusTier::Premium => "premium",
        }
    }

    /// Looks a tier up by its scenario-file name.
    pub fn from_name(name: &str) -> Option<ServiceBusTier> {
        [ServiceBusTier::Basic, ServiceBusTier::Standard, ServiceBusTier::Premium]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// `[scaling]`: target-based autoscaling on the queue length (Functions scale controller,
/// KEDA for Container Apps jobs).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingSpec {
    /// Fewest instances (default: 0; Premium 1). Flex/Premium: these are always ready.
    pub min_instances: u32,
    /// Most instances (default: the plan's cap, e.g. 200 on Consumption, 100 on Flex).
    pub max_instances: u32,
    /// Target messages per instance: instances = ceil(queue length / target). `None`:
    /// the trigger's own (`batch_size` for storage queues, `concurrency` for Service Bus).
    pub target_per_instance: Option<u32>,
    /// How often the scaler looks at the queue (default 30 s, the KEDA default; the
    /// Functions scale controller also decides on this cadence here).
    pub polling_interval: Nanos,
    /// How long the queue must have been over-provisioned before an instance is removed
    /// (default 5 min).
    pub cooldown: Nanos,
    /// The shortest time between two scale-out decisions (default 30 s).
    pub scale_out_step: Nanos,
    /// The most instances one scale-out decision adds (default 4: target-based scaling
    /// "allows scale up of four instances at a time"; 1 is incremental scaling, one
    /// instance per `scale_out_step`). Not used by Container Apps jobs.
    pub scale_out_max: u32,
    /// How long a scaled-in instance may finish its running executions before it is removed
    /// and they are cut off (`None`: the plan's, [`Plan::default_drain_grace`]).
    pub drain_grace: Option<Nanos>,
    /// Time from the decision to add an instance to its first receive.
    pub cold_start: Dist,
    /// Premium: instances kept warm beyond the running ones; a scale-out takes one of these
    /// without a cold start (default 1).
    pub prewarmed: u32,
    /// Container Apps job: replicas each execution starts at once (`parallelism`, default 1).
    /// The scaler counts executions, not replicas.
    pub parallelism: u32,
    /// Container Apps job: replicas of an execution that must exit successfully for it to
    /// succeed (`replicaCompletionCount`, default 1, at most `parallelism`); its other
    /// replicas are then ended.
    pub completion_count: u32,
    /// Container Apps job: messages a replica handles before it exits (`None`: it drains the
    /// queue, exiting when it finds the queue empty with nothing in flight; the default).
    pub messages_per_replica: Option<u32>,
}

impl Default for ScalingSpec {
    fn default() -> Self {
        ScalingSpec {
            min_instances: 0,
            max_instances: 200,
            target_per_instance: None,
            polling_interval: 30 * NS_PER_S,
            cooldown: 5 * NS_PER_MIN,
            scale_out_step: 30 * NS_PER_S,
            scale_out_max: 4,
            drain_grace: None,
            cold_start: Dist::lognormal(2 * NS_PER_S, 8 * NS_PER_S).expect("valid"),
            prewarmed: 1,
            parallelism: 1,
            completion_count: 1,
            messages_per_replica: None,
        }
    }
}

/// `[web]`: the web tier that shares a WebJob's App Service instances.
#[derive(Clone, Debug, PartialEq)]
pub struct WebTierSpec {
    /// Web requests per second across the plan (default 50/s).
    pub rate_per_s: f64,
    /// CPU time one web request needs (default 20 ms).
    pub cpu_per_request: Nanos,
    /// Share of a handler's own work (`consumer.work`) that uses CPU (default 1.0: the work
    /// is CPU-bound; downstream calls never use CPU).
    pub handler_cpu_share: f64,
}

impl Default for WebTierSpec {
    fn default() -> Self {
        WebTierSpec { rate_per_s: 50.0, cpu_per_request: 20 * NS_PER_MS, handler_cpu_share: 1.0 }
    }
}

/// A pricing table, resolved: every rate the billing rules use, in USD.
///
/// The shipped tables live in `pricing/*.toml` with their source and the date the prices
/// were seen; `[cost]` in a scenario selects one and may override any rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Pricing {
    /// The table's name (`azure-payg`).
    pub name: String,
    /// Functions Consumption: USD per GB-second.
    pub consumption_gb_s: f64,
    /// Functions Consumption: USD per million executions.
    pub consumption_per_million: f64,
    /// Flex Consumption on-demand: USD per GB-second while executing.
    pub flex_on_demand_gb_s: f64,
    /// Flex Consumption: USD per million executions.
    pub flex_per_million: f64,
    /// Flex Consumption always-ready: USD per GB-second of baseline (idle) memory.
    pub flex_always_ready_baseline_gb_s: f64,
    /// Flex Consumption always-ready: USD per GB-second while executing.
    pub flex_always_ready_execution_gb_s: f64,
    /// Premium: USD per vCPU-second of an allocated instance.
    pub premium_vcpu_s: f64,
    /// Premium: USD per GB-second of an allocated instance.
    pub premium_gb_s: f64,
    /// Container Apps: USD per vCPU-second of a running replica.
    pub aca_vcpu_s: f64,
    /// Container Apps: USD per GiB-second of a running replica.
    pub aca_gib_s: f64,
    /// Container Apps apps: USD per vCPU-second of an idle replica (memory keeps `aca_gib_s`).
    pub aca_idle_vcpu_s: f64,
    /// A fixed worker instance (or the App Service plan instance of a WebJob): USD per hour.
    pub worker_instance_hour: f64,
    /// Service Bus Standard: USD per million operations (13-100 M a month).
    pub service_bus_per_million_ops: f64,
    /// Service Bus Standard: USD per million operations (100-2,500 M a month).
    pub service_bus_100m_per_million_ops: f64,
    /// Service Bus Standard: USD per million operations (over 2,500 M a month).
    pub service_bus_2500m_per_million_ops: f64,
    /// Service Bus Standard: USD per hour of the base charge.
    pub service_bus_base_hour: f64,
    /// Service Bus Standard: operations a month included in the base charge.
    pub service_bus_included_ops: f64,
    /// Service Bus Basic: USD per million operations.
    pub service_bus_basic_per_million_ops: f64,
    /// Service Bus Premium: USD per messaging unit and hour.
    pub service_bus_premium_mu_hour: f64,
    /// Storage Queue: USD per 10,000 operations.
    pub storage_queue_per_10k_ops: f64,
    /// Container Apps serverless GPU, NVIDIA T4: USD per GPU-second of a running replica.
    pub gpu_t4_s: f64,
    /// Container Apps serverless GPU, NVIDIA A100: USD per GPU-second of a running replica.
    pub gpu_a100_s: f64,
    /// Monthly free grants, applied only with `free_grant = true`: Consumption executions,
    /// Consumption GB-seconds, Container Apps vCPU-seconds and GiB-seconds.
    pub free_consumption_executions: f64,
    /// See `free_consumption_executions`.
    pub free_consumption_gb_s: f64,
    /// See `free_consumption_executions`.
    pub free_aca_vcpu_s: f64,
    /// See `free_consumption_executions`.
    pub free_aca_gib_s: f64,
}

impl Pricing {
    /// The names of the rates, as written in pricing files and `[cost]` overrides.
    pub const RATES: [&'static str; 26] = [
        "consumption_gb_s_usd",
        "consumption_per_million_executions_usd",
        "flex_on_demand_gb_s_usd",
        "flex_per_million_executions_usd",
        "flex_always_ready_baseline_gb_s_usd",
        "flex_always_ready_execution_gb_s_usd",
        "premium_vcpu_s_usd",
        "premium_gb_s_usd",
        "aca_vcpu_s_usd",
        "aca_gib_s_usd",
        "worker_instance_hour_usd",
        "service_bus_per_million_operations_usd",
        "storage_queue_per_10k_operations_usd",
        "gpu_t4_s_usd",
        "gpu_a100_s_usd",
        "free_consumption_executions",
        "free_consumption_gb_s",
        "free_aca_vcpu_s",
        "free_aca_gib_s",
        "aca_idle_vcpu_s_usd",
        "service_bus_standard_base_hour_usd",
        "service_bus_standard_included_operations",
        "service_bus_100m_2500m_per_million_operations_usd",
        "service_bus_over_2500m_per_million_operations_usd",
        "service_bus_basic_per_million_operations_usd",
        "service_bus_premium_messaging_unit_hour_usd",
    ];

    /// A table with every rate zero (the base for tests and for tables built rate by rate).
    pub fn zero(name: &str) -> Pricing {
        Pricing {
            name: name.to_string(),
            consumption_gb_s: 0.0,
            consumption_per_million: 0.0,
            flex_on_demand_gb_s: 0.0,
            flex_per_million: 0.0,
            flex_always_ready_baseline_gb_s: 0.0,
            flex_always_ready_execution_gb_s: 0.0,
            premium_vcpu_s: 0.0,
            premium_gb_s: 0.0,
            aca_vcpu_s: 0.0,
            aca_gib_s: 0.0,
            aca_idle_vcpu_s: 0.0,
            worker_instance_hour: 0.0,
            service_bus_per_million_ops: 0.0,
            service_bus_100m_per_million_ops: 0.0,
            service_bus_2500m_per_million_ops: 0.0,
            service_bus_base_hour: 0.0,
            service_bus_included_ops: 0.0,
            service_bus_basic_per_million_ops: 0.0,
            service_bus_premium_mu_hour: 0.0,
            storage_queue_per_10k_ops: 0.0,
            gpu_t4_s: 0.0,
            gpu_a100_s: 0.0,
            free_consumption_executions: 0.0,
            free_consumption_gb_s: 0.0,
            free_aca_vcpu_s: 0.0,
            free_aca_gib_s: 0.0,
        }
    }

    /// Sets a rate by its file name; false if there is no such rate.
    pub fn set(&mut self, rate: &str, value: f64) -> bool {
        match self.rate_mut(rate) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// A rate by its file name.
    pub fn get(&self, rate: &str) -> Option<f64> {
        self.clone().rate_mut(rate).map(|v| *v)
    }

    fn rate_mut(&mut self, rate: &str) -> Option<&mut f64> {
        Some(match rate {
            "consumption_gb_s_usd" | "gb_second_usd" => &mut self.consumption_gb_s,
            "consumption_per_million_executions_usd" | "per_million_executions_usd" => {
                &mut self.consumption_per_million
            }
            "flex_on_demand_gb_s_usd" => &mut self.flex_on_demand_gb_s,
            "flex_per_million_executions_usd" => &mut self.flex_per_million,
            "flex_always_ready_baseline_gb_s_usd" => &mut self.flex_always_ready_baseline_gb_s,
            "flex_always_ready_execution_gb_s_usd" => &mut self.flex_always_ready_execution_gb_s,
            "premium_vcpu_s_usd" => &mut self.premium_vcpu_s,
            "premium_gb_s_usd" => &mut self.premium_gb_s,
            "aca_vcpu_s_usd" => &mut self.aca_vcpu_s,
            "aca_gib_s_usd" => &mut self.aca_gib_s,
            "worker_instance_hour_usd" => &mut self.worker_instance_hour,
            "service_bus_per_million_operations_usd" => &mut self.service_bus_per_million_ops,
            "storage_queue_per_10k_operations_usd" => &mut self.storage_queue_per_10k_ops,
            "gpu_t4_s_usd" => &mut self.gpu_t4_s,
            "gpu_a100_s_usd" => &mut self.gpu_a100_s,
            "free_consumption_executions" => &mut self.free_consumption_executions,
            "free_consumption_gb_s" => &mut self.free_consumption_gb_s,
            "free_aca_vcpu_s" => &mut self.free_aca_vcpu_s,
            "free_aca_gib_s" => &mut self.free_aca_gib_s,
            "aca_idle_vcpu_s_usd" => &mut self.aca_idle_vcpu_s,
            "service_bus_standard_base_hour_usd" => &mut self.service_bus_base_hour,
            "service_bus_standard_included_operations" => &mut self.service_bus_included_ops,
            "service_bus_100m_2500m_per_million_operations_usd" => {
                &mut self.service_bus_100m_per_million_ops
            }
            "service_bus_over_2500m_per_million_operations_usd" => {
                &mut self.service_bus_2500m_per_million_ops
            }
            "service_bus_basic_per_million_operations_usd" => {
                &mut self.service_bus_basic_per_million_ops
            }
            "service_bus_premium_messaging_unit_hour_usd" => &mut self.service_bus_premium_mu_hour,
            _ => return None,
        })
    }
}

/// `[cost]`, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct CostSpec {
    /// The rates in force (the selected table with the scenario's overrides applied).
    pub pricing: Pricing,
    /// Subtract the monthly free grants (default false).
    pub free_grant: bool,
}

impl Default for CostSpec {
    fn default() -> Self {
        CostSpec { pricing: Pricing::zero("none"), free_grant: false }
    }
}
