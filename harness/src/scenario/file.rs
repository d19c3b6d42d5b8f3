//! [`ScenarioFile`]: the scenario file as written, before units are parsed and values
//! checked.
//!
//! Every table rejects unknown keys (`deny_unknown_fields`), and every value keeps its span so
//! that `resolve` can point at it. Leaf values are [`Raw`]: whatever TOML scalar was written,
//! so that a wrong type gets the same clear message as a wrong unit.
//!
//! The Rust field names are the TOML keys: serde's list of fields is the list of keys shown
//! in "expected one of".

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

/// A value with its span in the document.
pub(crate) type S<T> = Spanned<T>;
/// An optional scalar key.
pub(crate) type Field = Option<S<Raw>>;
/// A table of named entries (`[services]`, `[workload.classes]`, `[expect]`).
pub(crate) type Named<T> = Option<S<BTreeMap<S<String>, S<T>>>>;
/// An array of tables (`[[faults]]`, `[[workload.phases]]`).
pub(crate) type List<T> = Option<S<Vec<S<T>>>>;

/// The whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScenarioFile {
    pub name: Field,
    pub description: Field,
    pub seed: Field,
    pub duration: Field,
    pub drain: Field,
    pub warmup: Field,
    pub interval: Field,
    pub pattern: Field,
    pub workload: Option<S<WorkloadFile>>,
    pub api: Option<S<ApiFile>>,
    pub queue: Option<S<QueueFile>>,
    pub store: Option<S<StoreFile>>,
    pub consumer: Option<S<ConsumerFile>>,
    pub services: Named<ServiceFile>,
    pub retry: Option<S<RetryFile>>,
    pub faults: List<FaultFile>,
    pub scaling: Option<S<ScalingFile>>,
    pub web: Option<S<WebFile>>,
    pub cost: Option<S<CostFile>>,
    pub limits: Option<S<LimitsFile>>,
    pub expect: Named<Raw>,
    pub expect_failure: Field,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    pub max_backlog: Field,
}

/// `[workload]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkloadFile {
    pub arrivals: Field,
    pub rate: Field,
    pub trace: Field,
    pub phases: List<PhaseFile>,
    pub classes: Named<Raw>,
    pub class_work: Named<Raw>,
}

/// `[[workload.phases]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PhaseFile {
    pub from: Field,
    pub to: Field,
    pub rate: Field,
}

/// `[api]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiFile {
    pub accept: Field,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreFile {
    pub latency: Field,
    pub commit_latency: Field,
}

/// `[queue]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueFile {
    pub kind: Field,
    pub tier: Field,
    pub messaging_units: Field,
    pub visibility_timeout: Field,
    pub max_delivery_count: Field,
    pub ttl: Field,
    pub capacity: Field,
    pub abandon_delay: Field,
    pub max_polling_interval: Field,
    pub new_batch_threshold: Field,
    pub lock_renewal: Field,
    pub prefetch: Field,
}

/// `[consumer]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsumerFile {
    pub instances: Field,
    pub concurrency: Field,
    pub batch_size: Field,
    pub work: Field,
    pub calls: List<Raw>,
    pub poll_interval: Field,
    pub hosting: Field,
    pub memory: Field,
    pub cpu: Field,
    pub execution_timeout: Field,
    pub worker_model: Field,
    pub cpu_bound: Field,
}

/// `[scaling]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScalingFile {
    pub min_instances: Field,
    pub max_instances: Field,
    pub target_per_instance: Field,
    pub polling_interval: Field,
    pub cooldown: Field,
    pub scale_out_step: Field,
    pub scale_out_max: Field,
    pub drain_grace: Field,
    pub cold_start: Field,
    pub prewarmed: Field,
    pub parallelism: Field,
    pub completion_count: Field,
    pub messages_per_replica: Field,
}

/// `[web]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebFile {
    pub rate: Field,
    pub cpu_per_request: Field,
    pub handler_cpu_share: Field,
}

/// `[cost]`: the table to use, the free grant, and any rate overridden by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CostFile {
    pub pricing: Field,
    pub free_grant: Field,
    pub consumption_gb_s_usd: Field,
    pub consumption_per_million_executions_usd: Field,
    pub gb_second_usd: Field,
    pub per_million_executions_usd: Field,
    pub flex_on_demand_gb_s_usd: Field,
    pub flex_per_million_executions_usd: Field,
    pub flex_always_ready_baseline_gb_s_usd: Field,
    pub flex_always_ready_execution_gb_s_usd: Field,
    pub premium_vcpu_s_usd: Field,
    pub premium_gb_s_usd: Field,
    pub aca_vcpu_s_usd: Field,
    pub aca_gib_s_usd: Field,
    pub worker_instance_hour_usd: Field,
    pub service_bus_per_million_operations_usd: Field,
    pub storage_queue_per_10k_operations_usd: Field,
    pub gpu_t4_s_usd: Field,
    pub gpu_a100_s_usd: Field,
    pub free_consumption_executions: Field,
    pub free_consumption_gb_s: Field,
    pub free_aca_vcpu_s: Field,
    pub free_aca_gib_s: Field,
    pub aca_idle_vcpu_s_usd: Field,
    pub service_bus_standard_base_hour_usd: Field,
    pub service_bus_standard_included_operations: Field,
    pub service_bus_100m_2500m_per_million_operations_usd: Field,
    pub service_bus_over_2500m_per_million_operations_usd: Field,
    pub service_bus_basic_per_million_operations_usd: Field,
    pub service_bus_premium_messaging_unit_hour_usd: Field,
}

impl CostFile {
    /// The rate overrides, by rate name (`gb_second_usd` and `per_million_executions_usd`
    /// are design.md's names for the Consumption rates).
    pub(crate) fn overrides(&self) -> [(&'static str, &Field); 28] {
        [
            ("consumption_gb_s_usd", &self.consumption_gb_s_usd),
            (
                "consumption_per_million_executions_usd",
                &self.consumption_per_million_executions_usd,
            ),
            ("gb_second_usd", &self.gb_second_usd),
            ("per_million_executions_usd", &self.per_million_executions_usd),
            ("flex_on_demand_gb_s_usd", &self.flex_on_demand_gb_s_usd),
            ("flex_per_million_executions_usd", &self.flex_per_million_executions_usd),
            ("flex_always_ready_baseline_gb_s_usd", &self.flex_always_ready_baseline_gb_s_usd),
            ("flex_always_ready_execution_gb_s_usd", &self.flex_always_ready_execution_gb_s_usd),
            ("premium_vcpu_s_usd", &self.premium_vcpu_s_usd),
            ("premium_gb_s_usd", &self.premium_gb_s_usd),
            ("aca_vcpu_s_usd", &self.aca_vcpu_s_usd),
            ("aca_gib_s_usd", &self.aca_gib_s_usd),
            ("worker_instance_hour_usd", &self.worker_instance_hour_usd),
            (
                "service_bus_per_million_operations_usd",
                &self.service_bus_per_million_operations_usd,
            ),
            ("storage_queue_per_10k_operations_usd", &self.storage_queue_per_10k_operations_usd),
            ("gpu_t4_s_usd", &self.gpu_t4_s_usd),
            ("gpu_a100_s_usd", &self.gpu_a100_s_usd),
            ("free_consumption_executions", &self.free_consumption_executions),
            ("free_consumption_gb_s", &self.free_consumption_gb_s),
            ("free_aca_vcpu_s", &self.free_aca_vcpu_s),
            ("free_aca_gib_s", &self.free_aca_gib_s),
            ("aca_idle_vcpu_s_usd", &self.aca_idle_vcpu_s_usd),
            ("service_bus_standard_base_hour_usd", &self.service_bus_standard_base_hour_usd),
            (
                "service_bus_standard_included_operations",
                &self.service_bus_standard_included_operations,
            ),
            (
                "service_bus_100m_2500m_per_million_operations_usd",
                &self.service_bus_100m_2500m_per_million_operations_usd,
            ),
            (
                "service_bus_over_2500m_per_million_operations_usd",
                &self.service_bus_over_2500m_per_million_operations_usd,
            ),
            (
                "service_bus_basic_per_million_operations_usd",
                &self.service_bus_basic_per_million_operations_usd,
            ),
            (
                "service_bus_premium_messaging_unit_hour_usd",
                &self.service_bus_premium_messaging_unit_hour_usd,
            ),
        ]
    }
}

/// `[services.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceFile {
    pub latency: Field,
    pub error_rate: Field,
    pub timeout: Field,
    pub max_concurrency: Field,
    pub over_limit: Field,
    pub retry_after: Field,
}

/// `[retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryFile {
    pub backoff: Field,
    pub base: Field,
    pub max_delay: Field,
    pub max_attempts: Field,
    pub jitter: Field,
}

/// `[[faults]]`: the keys of every fault kind; `resolve` checks which apply to `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultFile {
    pub kind: Field,
    pub target: Field,
    pub from: Field,
    pub to: Field,
    pub add: Field,
    pub error_rate: Field,
    pub at: Field,
    pub instances: Field,
    pub restart_after: Field,
    pub grace: Field,
}

/// A TOML scalar as written; `resolve` decides which types a key accepts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Raw {
    /// A string.
    Str(String),
    /// An integer (wider than TOML's i64 so that no literal overflows here).
    Int(i128),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date/time, as written.
    Datetime(String),
}

impl Raw {
    /// The value with its type, for messages: `string "8"`, `integer 8`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Raw::Str(s) => format!("string {s:?}"),
            Raw::Int(i) => format!("integer {i}"),
            Raw::Float(x) => format!("float {x}"),
            Raw::Bool(b) => format!("boolean {b}"),
            Raw::Datetime(d) => format!("date-time {d}"),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (a string, number or boolean)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        Ok(Raw::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }

    /// TOML date-times arrive as a one-entry map with a private key; any other map is a
    /// table where a scalar belongs.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        match map.next_key::<String>()? {
            Some(k) if k == "$__toml_private_datetime" => Ok(Raw::Datetime(map.next_value()?)),
            _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
}
