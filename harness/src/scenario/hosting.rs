//! `[consumer] hosting/memory/cpu/execution_timeout`, `[scaling]`, `[web]` and `[cost]` →
//! [`HostingSpec`] and [`CostSpec`], with the plan's defaults and limits
//! (see `docs/sources.md`) and the pricing tables shipped in `pricing/`.

use super::error::{ScenarioError, Source};
use super::file::{ConsumerFile, CostFile, Raw, S, ScalingFile, WebFile};
use super::values::*;
use serde::Deserialize;
use sim::spec::{
    CostSpec, ExecutionLimit, HostingSpec, Plan, Pricing, ScalingSpec, WebTierSpec, WorkerModel,
};
use sim::time::{NS_PER_MIN, NS_PER_MS};
use std::collections::BTreeMap;

/// The pricing tables compiled into the binary, by name.
pub(crate) const TABLES: [(&str, &str); 1] =
    [("azure-payg", include_str!("../../../pricing/azure-payg.toml"))];

/// A pricing file: `pricing/*.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct PricingFile {
    pub name: String,
    pub currency: String,
    pub seen: String,
    pub rates: BTreeMap<String, RateEntry>,
}

/// One rate of a pricing file, with where it came from. `source` and `confirmed` are
/// required provenance for people reading the file; the arithmetic uses only `value`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateEntry {
    pub value: f64,
    pub source: String,
    pub confirmed: bool,
}

/// Parses a pricing file's text into the rates the simulator uses.
pub(crate) fn parse_pricing(name: &str, text: &str) -> Result<Pricing, String> {
    let file: PricingFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut p = Pricing::zero(name);
    for rate in Pricing::RATES {
        let entry = file.rates.get(rate).ok_or_else(|| format!("missing rate `{rate}`"))?;
        if !(entry.value.is_finite() && entry.value >= 0.0) {
            return Err(format!("rate `{rate}` must be a non-negative number"));
        }
        p.set(rate, entry.value);
    }
    if let Some(extra) = file.rates.keys().find(|k| !Pricing::RATES.contains(&k.as_str())) {
        return Err(format!("unknown rate `{extra}`"));
    }
    Ok(p)
}

/// The plan names, in docs order.
fn plan_names() -> Vec<&'static str> {
    Plan::ALL.iter().map(|p| p.name()).collect()
}

/// `[consumer] hosting`, `memory`, `cpu`, `execution_timeout` and `[scaling]`, `[web]`.
pub(crate) fn hosting(
    src: &Source<'_>,
    c: Option<&S<ConsumerFile>>,
    scaling: Option<&S<ScalingFile>>,
    web: Option<&S<WebFile>>,
) -> Res<HostingSpec> {
    let d = HostingSpec::default();
    let c = c.map(S::get_ref);
    let field = |f: fn(&ConsumerFile) -> &Option<S<Raw>>| c.and_then(|c| f(c).as_ref());
    let names = plan_names();
    let plan = match field(|c| &c.hosting) {
        Some(v) => Plan::from_name(choice(src, v, "consumer.hosting", &names)?).unwrap_or(d.plan),
        None => d.plan,
    };
    let memory_mb = match field(|c| &c.memory) {
        Some(v) => memory(src, v, plan)?,
        None if plan == Plan::FunctionsFlex => 2048,
        None if plan == Plan::FunctionsPremium => 3584, // EP1: 1 vCPU, 3.5 GB
        None => d.memory_mb,
    };
    let cpu = match field(|c| &c.cpu) {
        Some(v) => number(src, v, "consumer.cpu", 0.05, 64.0)?,
        // Flex instance sizes: 512 MB with 0.25 vCPU, 2,048 MB with 1, 4,096 MB with 2.
        None if plan == Plan::FunctionsFlex => f64::from(memory_mb) / 2048.0,
        None => d.cpu,
    };
    let execution_timeout = match field(|c| &c.execution_timeout) {
        Some(v) => execution_timeout(src, v, plan)?,
        None => ExecutionLimit::PlanDefault,
    };
    let worker_model = match field(|c| &c.worker_model) {
        Some(v) => {
            let names = ["isolated", "in-process"];
            let name = choice(src, v, "consumer.worker_model", &names)?;
            if !matches!(
                plan,
                Plan::FunctionsConsumption | Plan::FunctionsFlex | Plan::FunctionsPremium
            ) {
                let msg = format!(
                    "`consumer.worker_model` does not apply to hosting = \"{}\"",
                    plan.name()
                );
                return Err(src
                    .at(v.span(), msg)
                    .note("it says what a Functions timeout recycles: use a functions-* plan"));
            }
            if name == "in-process" { WorkerModel::InProcess } else { WorkerModel::Isolated }
        }
        None => d.worker_model,
    };
    if plan.elastic()
        && let Some(v) = field(|c| &c.instances)
    {
        return Err(src
            .at(
                v.span(),
                format!("`consumer.instances` does not apply to hosting = \"{}\"", plan.name()),
            )
            .note(
                "the autoscaler decides the instance count: set [scaling] min_instances and \
                   max_instances",
            ));
    }
    Ok(HostingSpec {
        plan,
        memory_mb,
        cpu,
        execution_timeout,
        worker_model,
        scaling: scaling_spec(src, plan, scaling)?,
        web: web_spec(src, plan, web)?,
    })
}

/// `memory = "512MB"`: megabytes (or `GB`), at least 128; Flex offers three sizes.
fn memory(src: &Source<'_>, v: &S<Raw>, plan: Plan) -> Res<u32> {
    let text = string(src, v, "consumer.memory")?;
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("GB").or_else(|| t.strip_suffix("GiB")) {
        (n, 1024.0)
    } else if let Some(n) = t.strip_suffix("MB").or_else(|| t.strip_suffix("MiB")) {
        (n, 1.0)
    } else {
        (t, f64::NAN)
    };
    let mb = num.trim().parse::<f64>().map(|x| x * mult).unwrap_or(f64::NAN);
    if !(mb.is_finite() && (128.0..=1_048_576.0).contains(&mb)) {
        return Err(src
            .at(v.span(), format!("bad memory size {text:?}"))
            .note("expected megabytes or gigabytes of at least 128MB, e.g. \"512MB\" or \"2GB\""));
    }
    let mb = mb.round() as u32;
    if plan == Plan::FunctionsFlex && ![512, 2048, 4096].contains(&mb) {
        return Err(src
            .at(v.span(), format!("Flex Consumption has no {mb} MB instance size"))
            .note("expected one of: \"512MB\", \"2048MB\", \"4096MB\""));
    }
    Ok(mb)
}

fn execution_timeout(src: &Source<'_>, v: &S<Raw>, plan: Plan) -> Res<ExecutionLimit> {
    let key = "consumer.execution_timeout";
    let t = duration_or_never(src, v, key)?;
    match (t, plan.max_execution_timeout()) {
        (None, Some(max)) | (Some(_), Some(max)) if t.is_none_or(|t| t > max) => Err(src
            .at(v.span(), format!("`{key}` is at most {} on {}", fmt(max), plan.name()))
            .note("Functions Consumption stops an execution after 10 minutes at most")),
        (Some(0), _) => Err(src.at(v.span(), format!("`{key}` must be positive"))),
        (Some(t), _) => Ok(ExecutionLimit::After(t)),
        (None, _) => Ok(ExecutionLimit::Unlimited),
    }
}

fn fmt(ns: u64) -> String {
    sim::time::format_duration(ns)
}

/// `[scaling]`: elastic plans only; the plan's defaults for what is not given.
fn scaling_spec(src: &Source<'_>, plan: Plan, f: Option<&S<ScalingFile>>) -> Res<ScalingSpec> {
    let mut s = ScalingSpec {
        min_instances: plan.default_min_instances(),
        max_instances: plan.default_max_instances().min(1000),
        ..ScalingSpec::default()
    };
    let Some(table) = f else { return Ok(s) };
    if !plan.elastic() {
        return Err(src
            .at(table.span(), format!("[scaling] does not apply to hosting = \"{}\"", plan.name()))
            .note(
                "its instance count is fixed by `consumer.instances`; [scaling] is for \
                   functions-consumption, functions-flex, functions-premium, aca-job and aca-app",
            ));
    }
    let f = table.get_ref();
    if let Some(v) = &f.min_instances {
        s.min_instances = count(src, v, "scaling.min_instances", plan.default_min_instances())
            .map_err(|e| match plan {
                Plan::FunctionsPremium => e.note("Premium always keeps at least one instance"),
                _ => e,
            })?;
        if plan == Plan::FunctionsConsumption && s.min_instances > 0 {
            return Err(src
                .at(v.span(), "Consumption has no always-ready instances: min_instances must be 0")
                .note("use functions-flex or functions-premium for always-ready instances"));
        }
    }
    if let Some(v) = &f.max_instances {
        let cap = plan.default_max_instances().max(1000);
        let cap = if plan == Plan::FunctionsConsumption { 200 } else { cap };
        let n = count(src, v, "scaling.max_instances", 1)?;
        if n > cap {
            return Err(src.at(
                v.span(),
                format!("`scaling.max_instances` is at most {cap} on {} (found {n})", plan.name()),
            ));
        }
        s.max_instances = n;
    }
    if s.min_instances > s.max_instances {
        let span = f.min_instances.as_ref().map_or(table.span(), S::span);
        return Err(src.at(
            span,
            format!(
                "`scaling.min_instances` ({}) is above `scaling.max_instances` ({})",
                s.min_instances, s.max_instances
            ),
        ));
    }
    s.target_per_instance =
        opt(&f.target_per_instance, |v| count(src, v, "scaling.target_per_instance", 1))?;
    let polling = opt(&f.polling_interval, |v| {
        let why = "the scaler looks at the queue between every millisecond and once a day";
        duration_within(src, v, "scaling.polling_interval", (NS_PER_MS, 24 * 60 * NS_PER_MIN), why)
    })?;
    s.polling_interval = polling.unwrap_or(s.polling_interval);
    s.cooldown = opt(&f.cooldown, |v| duration(src, v, "scaling.cooldown"))?.unwrap_or(s.cooldown);
    s.scale_out_step = opt(&f.scale_out_step, |v| duration(src, v, "scaling.scale_out_step"))?
        .unwrap_or(s.scale_out_step);
    s.scale_out_max = opt(&f.scale_out_max, |v| count(src, v, "scaling.scale_out_max", 1))?
        .unwrap_or(s.scale_out_max);
    if let Some(v) = &f.drain_grace {
        if plan.default_drain_grace().is_none() {
            let msg =
                format!("`scaling.drain_grace` does not apply to hosting = \"{}\"", plan.name());
            return Err(src
                .at(v.span(), msg)
                .note("only the Functions scale controller drains instances it scales in"));
        }
        s.drain_grace = Some(duration(src, v, "scaling.drain_grace")?);
    }
    s.cold_start =
        opt(&f.cold_start, |v| dist(src, v, "scaling.cold_start"))?.unwrap_or(s.cold_start);
    if let Some(v) = &f.prewarmed {
        if plan != Plan::FunctionsPremium {
            let msg =
                format!("`scaling.prewarmed` does not apply to hosting = \"{}\"", plan.name());
            return Err(src
                .at(v.span(), msg)
                .note("pre-warmed instances are a functions-premium feature"));
        }
        s.prewarmed = count(src, v, "scaling.prewarmed", 0)?;
    }
    job_keys(src, plan, f, &mut s)?;
    Ok(s)
}

/// The most replicas one Container Apps job execution may start here (the platform's own
/// limit is not published).
const MAX_PARALLELISM: u32 = 1000;

/// `[scaling] parallelism`, `completion_count` and `messages_per_replica`: Container Apps
/// jobs only; the completion count is at most the parallelism.
fn job_keys(src: &Source<'_>, plan: Plan, f: &ScalingFile, s: &mut ScalingSpec) -> Res<()> {
    let keys = [
        ("parallelism", &f.parallelism),
        ("completion_count", &f.completion_count),
        ("messages_per_replica", &f.messages_per_replica),
    ];
    for (key, v) in keys {
        if let Some(v) = v
            && plan != Plan::AcaJob
        {
            let msg = format!("`scaling.{key}` does not apply to hosting = \"{}\"", plan.name());
            return Err(src
                .at(v.span(), msg)
                .note("it is a Container Apps job setting: use hosting = \"aca-job\""));
        }
    }
    if let Some(v) = &f.parallelism {
        let n = count(src, v, "scaling.parallelism", 1)?;
        if n > MAX_PARALLELISM {
            return Err(src.at(
                v.span(),
                format!("`scaling.parallelism` is at most {MAX_PARALLELISM} (found {n})"),
            ));
        }
        s.parallelism = n;
    }
    if let Some(v) = &f.completion_count {
        let n = count(src, v, "scaling.completion_count", 1)?;
        if n > s.parallelism {
            return Err(src
                .at(
                    v.span(),
                    format!(
                        "`scaling.completion_count` ({n}) is above `scaling.parallelism` ({})",
                        s.parallelism
                    ),
                )
                .note(
                    "an execution succeeds once this many of its replicas have completed: \
                     at most the replicas it starts",
                ));
        }
        s.completion_count = n;
    }
    if let Some(v) = &f.messages_per_replica {
        s.messages_per_replica = match v.get_ref() {
            Raw::Str(t) if t.trim() == "drain" => None,
            Raw::Int(0) => None,
            Raw::Int(_) => Some(count(src, v, "scaling.messages_per_replica", 1)?),
            _ => {
                return Err(wrong_type(
                    src,
                    v,
                    "scaling.messages_per_replica",
                    "a count of messages or \"drain\"",
                ));
            }
        };
    }
    Ok(())
}

/// `[web]`: the web tier of a WebJob's App Service plan.
fn web_spec(src: &Source<'_>, plan: Plan, f: Option<&S<WebFile>>) -> Res<WebTierSpec> {
    let d = WebTierSpec::default();
    let Some(table) = f else { return Ok(d) };
    if plan != Plan::WebJob {
        return Err(src
            .at(table.span(), format!("[web] does not apply to hosting = \"{}\"", plan.name()))
            .note(
                "the web tier shares CPU only with a WebJob: set consumer.hosting = \"webjob\"",
            ));
    }
    let f = table.get_ref();
    Ok(WebTierSpec {
        rate_per_s: opt(&f.rate, |v| rate(src, v, "web.rate"))?.unwrap_or(d.rate_per_s),
        cpu_per_request: opt(&f.cpu_per_request, |v| {
            positive_duration(src, v, "web.cpu_per_request")
        })?
        .unwrap_or(d.cpu_per_request),
        handler_cpu_share: opt(&f.handler_cpu_share, |v| {
            probability(src, v, "web.handler_cpu_share")
        })?
        .unwrap_or(d.handler_cpu_share),
    })
}

/// `[cost]`: a shipped table (or a pricing file next to the scenario), then overrides. A
/// table is only read for the rates the scenario does not set itself, so a resolved scenario
/// (which writes every rate) replays without its pricing file.
pub(crate) fn cost(src: &Source<'_>, f: Option<&S<CostFile>>) -> Res<CostSpec> {
    let Some(table) = f else {
        return Ok(CostSpec { pricing: builtin("azure-payg"), free_grant: false });
    };
    let f = table.get_ref();
    let overrides = f.overrides();
    // design.md's names for the Consumption rates are aliases: one or the other.
    for (alias, canonical) in [
        ("gb_second_usd", "consumption_gb_s_usd"),
        ("per_million_executions_usd", "consumption_per_million_executions_usd"),
    ] {
        let given =
            |name: &str| overrides.iter().find(|(n, _)| *n == name).and_then(|(_, v)| v.as_ref());
        if let (Some(v), Some(_)) = (given(alias), given(canonical)) {
            return Err(src
                .at(v.span(), format!("`cost.{alias}` and `cost.{canonical}` set the same rate"))
                .note(format!("keep one of them (`{alias}` is another name for `{canonical}`)")));
        }
    }
    let every_rate_set = Pricing::RATES.iter().all(|rate| {
        overrides.iter().any(|(n, v)| v.is_some() && (n == rate || alias_of(n) == Some(rate)))
    });
    let mut pricing = match (&f.pricing, every_rate_set) {
        (None, _) => builtin("azure-payg"),
        (Some(v), true) => Pricing::zero(&string(src, v, "cost.pricing")?),
        (Some(v), false) => pricing_table(src, v)?,
    };
    for (rate, value) in overrides {
        if let Some(v) = value {
            let x = number(src, v, &format!("cost.{rate}"), 0.0, f64::MAX)?;
            pricing.set(rate, x);
        }
    }
    let free_grant = opt(&f.free_grant, |v| boolean(src, v, "cost.free_grant"))?.unwrap_or(false);
    Ok(CostSpec { pricing, free_grant })
}

/// The canonical rate an alias stands for.
fn alias_of(name: &str) -> Option<&'static &'static str> {
    match name {
        "gb_second_usd" => Some(&Pricing::RATES[0]),
        "per_million_executions_usd" => Some(&Pricing::RATES[1]),
        _ => None,
    }
}

fn builtin(name: &str) -> Pricing {
    let (_, text) = TABLES.iter().find(|(n, _)| *n == name).expect("shipped table");
    parse_pricing(name, text).expect("the shipped pricing tables are valid")
}

fn pricing_table(src: &Source<'_>, v: &S<Raw>) -> Res<Pricing> {
    let name = string(src, v, "cost.pricing")?;
    if let Some((_, text)) = TABLES.iter().find(|(n, _)| *n == name) {
        return Ok(parse_pricing(&name, text).expect("the shipped pricing tables are valid"));
    }
    if name.ends_with(".toml") {
        let path = src.relative(&name);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            src.at(v.span(), format!("cannot read pricing file {}: {e}", path.display()))
        })?;
        return parse_pricing(&name, &text).map_err(|e| {
            src.at(v.span(), format!("bad pricing file {}: {e}", path.display()))
                .note("see pricing/azure-payg.toml for the format")
        });
    }
    let names: Vec<&str> = TABLES.iter().map(|(n, _)| *n).collect();
    Err(err_unknown_table(src, v, &name, &names))
}

fn err_unknown_table(src: &Source<'_>, v: &S<Raw>, name: &str, names: &[&str]) -> ScenarioError {
    src.at(v.span(), format!("unknown pricing table {name:?}"))
        .note(format!(
            "expected one of: {}, or a path to a pricing file ending in .toml",
            names.join(", ")
        ))
        .did_you_mean(name, names)
}
