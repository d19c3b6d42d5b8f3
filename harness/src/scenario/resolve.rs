//! [`ScenarioFile`] → [`Scenario`]: parse units, fill in defaults, check every value and
//! every reference. The first problem found is the error, at the offending value.

use super::error::Source;
use super::faults;
use super::file::{
    ApiFile, ConsumerFile, LimitsFile, Named, QueueFile, RetryFile, S, ScenarioFile, ServiceFile,
    StoreFile,
};
use super::file::{Field, Raw, WorkloadFile};
use super::values::*;
use super::workload;
use sim::dist::Dist;
use sim::spec::{
    ApiSpec, Backoff, ConsumerSpec, Expectation, LimitsSpec, OverLimit, QueueKind, QueueSpec,
    RetrySpec, Scenario, ServiceBusTier, ServiceSpec, StoreSpec, WorkloadSpec,
};
use sim::time::{NS_PER_DAY, NS_PER_MIN, NS_PER_MS, NS_PER_S, format_duration};
use std::collections::BTreeMap;
use std::ops::Range;

/// Services by name.
pub(crate) type Services = BTreeMap<String, ServiceSpec>;

/// The span that errors about the top level point at: line 1, column 1.
const TOP: Range<usize> = 0..0;

/// Checks and resolves a whole scenario.
pub(crate) fn scenario(src: &Source<'_>, f: &ScenarioFile) -> Res<Scenario> {
    let mut s = top_level(src, f)?;
    let services = services(src, &f.services)?;
    s.workload = workload_spec(src, f.workload.as_ref())?;
    s.api = api(src, f.api.as_ref())?;
    s.queue = queue(src, f.queue.as_ref())?;
    s.store = store(src, f.store.as_ref())?;
    s.consumer = consumer(src, f.consumer.as_ref(), s.queue.kind, &services)?;
    s.hosting =
        super::hosting::hosting(src, f.consumer.as_ref(), f.scaling.as_ref(), f.web.as_ref())?;
    s.cost = super::hosting::cost(src, f.cost.as_ref())?;
    trigger_defaults_per_core(f, &mut s);
    if s.queue.prefetch > 0 && s.hosting.plan == sim::spec::Plan::AcaJob {
        let at = f.queue.as_ref().and_then(|q| q.get_ref().prefetch.as_ref()).map_or(TOP, S::span);
        return Err(src
            .at(at, "`queue.prefetch` does not apply to hosting = \"aca-job\"")
            .note("a job replica receives as its own code does; prefetch is modelled for the Functions trigger and long-running workers"));
    }
    let pattern = sim::patterns::lookup(s.pattern);
    if !pattern.hosted && s.hosting.plan != sim::spec::Plan::Worker {
        let at =
            f.consumer.as_ref().and_then(|c| c.get_ref().hosting.as_ref()).map_or(TOP, S::span);
        let msg = format!(
            "{} runs on a fixed worker: hosting plans apply to queue consumers",
            s.pattern.name()
        );
        return Err(src.at(at, msg).note("remove `consumer.hosting` (or set it to \"worker\")"));
    }
    // gpu-worker runs its own replica loop (batches, `[gpu] idle_timeout`): no message quota
    // (`"drain"`, which the printed scenario writes, is accepted).
    if s.pattern == sim::patterns::gpu_worker::KIND
        && s.hosting.scaling.messages_per_replica.is_some()
        && let Some(v) = f.scaling.as_ref().and_then(|t| t.get_ref().messages_per_replica.as_ref())
    {
        return Err(src
            .at(v.span(), "`scaling.messages_per_replica` does not apply to gpu-worker")
            .note(
                "a GPU replica takes batches until the queue stays empty for `[gpu] \
                 idle_timeout`: set max_batch and idle_timeout instead",
            ));
    }
    s.services = services;
    s.retry = f.retry.as_ref().map(|r| retry(src, r)).transpose()?;
    s.faults = faults::faults(src, &f.faults, &s)?;
    s.limits = limits(src, f.limits.as_ref())?;
    s.expect = expect(src, &f.expect)?;
    if s.expect_failure && s.expect.is_empty() {
        let at = f.expect_failure.as_ref().map_or(TOP, S::span);
        return Err(src
            .at(
                at,
                "`expect_failure = true` needs an [expect] table: the guarantee this design breaks",
            )
            .note("e.g. [expect] \"messages.lost\" = \"== 0\""));
    }
    Ok(s)
}

/// The Functions triggers' concurrency defaults that grow with the instance's cores, where the
/// file leaves them unset: Service Bus `maxConcurrentCalls` is `16 × cores` and the storage
/// queue's `newBatchThreshold` is `batchSize / 2 × cores`, where the extensions count one core
/// on Consumption and the instance's processors elsewhere (Flex, Premium, the App Service plan
/// of a WebJob). A worker or a Container Apps job runs the scenario's own receive loop: its
/// defaults stay fixed.
fn trigger_defaults_per_core(f: &ScenarioFile, s: &mut Scenario) {
    let cores = s.hosting.trigger_cores();
    let given =
        |pick: fn(&ConsumerFile) -> bool| f.consumer.as_ref().is_some_and(|c| pick(c.get_ref()));
    match s.queue.kind {
        QueueKind::ServiceBus if !given(|c| c.concurrency.is_some()) => {
            s.consumer.concurrency = ConsumerSpec::default().concurrency * cores;
        }
        QueueKind::StorageQueue if cores > 1 && s.queue.new_batch_threshold.is_none() => {
            s.queue.new_batch_threshold = Some(s.consumer.batch_size / 2 * cores);
        }
        _ => {}
    }
}

/// `[limits]`: `max_backlog` is a count of at least 1.
fn limits(src: &Source<'_>, l: Option<&S<LimitsFile>>) -> Res<LimitsSpec> {
    let d = LimitsSpec::default();
    let Some(l) = l.map(S::get_ref) else { return Ok(d) };
    let max_backlog = opt(&l.max_backlog, |v| {
        integer(src, v, "limits.max_backlog", 1..=u64::MAX.into()).map(|n| n as u64)
    })?;
    Ok(LimitsSpec { max_backlog: max_backlog.unwrap_or(d.max_backlog) })
}

/// The top-level keys; the tables are left at their defaults.
fn top_level(src: &Source<'_>, f: &ScenarioFile) -> Res<Scenario> {
    let at_top = || (TOP, "at the top level");
    let d = Scenario::default();
    let name = string(src, require(src, &f.name, "name", at_top(), "\"orders-burst\"")?, "name")?;
    if name.trim().is_empty() {
        return Err(src.at(f.name.as_ref().map_or(TOP, S::span), "`name` must not be empty"));
    }
    let duration_v = require(src, &f.duration, "duration", at_top(), "\"1h\"")?;
    let length = positive_duration(src, duration_v, "duration")?;
    let pattern_v = require(src, &f.pattern, "pattern", at_top(), "\"competing-consumers\"")?;
    let names: Vec<&str> = sim::patterns::REGISTRY.iter().map(|p| p.kind.name()).collect();
    let pattern = sim::patterns::find(choice(src, pattern_v, "pattern", &names)?).map(|p| p.kind);
    let warmup = opt(&f.warmup, |v| duration(src, v, "warmup"))?.unwrap_or(d.warmup);
    if warmup >= length {
        let span = f.warmup.as_ref().map_or(TOP, S::span);
        let msg = format!(
            "`warmup` ({}) must be shorter than `duration` ({})",
            format_duration(warmup),
            format_duration(length)
        );
        return Err(src.at(span, msg).note("no message would be counted"));
    }
    Ok(Scenario {
        name,
        description: opt(&f.description, |v| string(src, v, "description"))?.unwrap_or_default(),
        seed: opt(&f.seed, |v| seed(src, v))?.unwrap_or(d.seed),
        duration: length,
        drain: opt(&f.drain, |v| duration(src, v, "drain"))?,
        warmup,
        interval: opt(&f.interval, |v| positive_duration(src, v, "interval"))?
            .unwrap_or(d.interval),
        pattern: pattern.unwrap_or(d.pattern),
        expect_failure: opt(&f.expect_failure, |v| boolean(src, v, "expect_failure"))?
            .unwrap_or(false),
        ..d
    })
}

/// The seed: an integer from 0 to 2^64-1 (a string of digits is also taken).
fn seed(src: &Source<'_>, v: &S<Raw>) -> Res<u64> {
    match v.get_ref() {
        Raw::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| {
                src.at(v.span(), format!("`seed` must be at most {} (found {s})", u64::MAX))
            })
        }
        _ => integer(src, v, "seed", 0..=u64::MAX.into()).map(|i| i as u64),
    }
}

/// `[workload]`.
fn workload_spec(src: &Source<'_>, w: Option<&S<WorkloadFile>>) -> Res<WorkloadSpec> {
    match w {
        None => Ok(WorkloadSpec::default()),
        Some(w) => workload::workload(src, w),
    }
}

/// `[api]`.
fn api(src: &Source<'_>, a: Option<&S<ApiFile>>) -> Res<ApiSpec> {
    let accept = a.and_then(|a| a.get_ref().accept.as_ref());
    let accept = accept.map(|v| dist(src, v, "api.accept")).transpose()?;
    Ok(ApiSpec { accept: accept.unwrap_or(ApiSpec::default().accept) })
}

/// `[store]`.
fn store(src: &Source<'_>, t: Option<&S<StoreFile>>) -> Res<StoreSpec> {
    let d = StoreSpec::default();
    let Some(t) = t.map(S::get_ref) else { return Ok(d) };
    let get = |v: &Field, key: &str, default: Dist| -> Res<Dist> {
        v.as_ref().map(|v| dist(src, v, key)).transpose().map(|x| x.unwrap_or(default))
    };
    Ok(StoreSpec {
        latency: get(&t.latency, "store.latency", d.latency.clone())?,
        commit_latency: get(&t.commit_latency, "store.commit_latency", d.commit_latency.clone())?,
    })
}

/// The queue kinds, by scenario-file name.
const QUEUE_KINDS: [&str; 2] = ["storage-queue", "service-bus"];

/// `[queue]`: the kind's defaults, then the keys given.
fn queue(src: &Source<'_>, q: Option<&S<QueueFile>>) -> Res<QueueSpec> {
    let Some(q) = q.map(S::get_ref) else {
        return Ok(QueueSpec::service_bus());
    };
    let mut spec = match opt(&q.kind, |v| choice(src, v, "queue.kind", &QUEUE_KINDS))? {
        Some("storage-queue") => QueueSpec::storage_queue(),
        _ => QueueSpec::service_bus(),
    };
    broker_tier(src, q, &mut spec)?;
    let (max_lock, why) = match spec.kind {
        QueueKind::ServiceBus => (5 * NS_PER_MIN, "Service Bus locks last at most 5 minutes"),
        QueueKind::StorageQueue => {
            (7 * NS_PER_DAY, "storage queue visibility timeouts are 1s to 7d")
        }
    };
    let lock_min = if spec.kind == QueueKind::ServiceBus { 1 } else { NS_PER_S };
    if let Some(v) = &q.visibility_timeout {
        spec.visibility_timeout =
            duration_within(src, v, "queue.visibility_timeout", (lock_min, max_lock), why)?;
    }
    if let Some(v) = &q.max_delivery_count {
        spec.max_delivery_count = count(src, v, "queue.max_delivery_count", 1)?;
    }
    if let Some(v) = &q.ttl {
        spec.ttl = duration_or_never(src, v, "queue.ttl")?;
    }
    if let Some(v) = &q.capacity {
        spec.capacity = integer(src, v, "queue.capacity", 0..=u64::MAX.into())? as u64;
    }
    if let Some(v) = &q.abandon_delay {
        spec.abandon_delay = duration(src, v, "queue.abandon_delay")?;
    }
    if let Some(v) = &q.max_polling_interval {
        let why = "the Functions host polls at least every 100ms";
        let key = "queue.max_polling_interval";
        spec.max_polling_interval = duration_within(src, v, key, (100 * NS_PER_MS, u64::MAX), why)?;
    }
    if let Some(v) = &q.lock_renewal {
        spec.lock_renewal = match v.get_ref() {
            Raw::Str(s) if s == "unlimited" => QueueSpec::RENEW_UNLIMITED,
            _ => duration(src, v, "queue.lock_renewal")
                .map_err(|e| e.note("or \"unlimited\": renewed for as long as the handler runs"))?,
        };
    }
    spec.new_batch_threshold =
        opt(&q.new_batch_threshold, |v| count(src, v, "queue.new_batch_threshold", 0))?;
    if let Some(v) = &q.prefetch {
        if spec.kind == QueueKind::StorageQueue {
            return Err(src.at(v.span(), "`queue.prefetch` applies to Service Bus only").note(
                "the storage-queue trigger's batch is its read-ahead: set `consumer.batch_size`",
            ));
        }
        spec.prefetch = count(src, v, "queue.prefetch", 0)?;
    }
    Ok(spec)
}

/// `[queue] tier` and `messaging_units`: how a Service Bus broker is billed.
fn broker_tier(src: &Source<'_>, q: &QueueFile, spec: &mut QueueSpec) -> Res<()> {
    if spec.kind == QueueKind::StorageQueue {
        let given = [("queue.tier", &q.tier), ("queue.messaging_units", &q.messaging_units)];
        if let Some((key, Some(v))) = given.into_iter().find(|(_, v)| v.is_some()) {
            return Err(src
                .at(v.span(), format!("`{key}` does not apply to kind = \"storage-queue\""))
                .note("Service Bus tiers (basic, standard, premium) bill a service-bus queue"));
        }
        return Ok(());
    }
    const TIERS: [&str; 3] = ["basic", "standard", "premium"];
    if let Some(v) = &q.tier {
        let name = choice(src, v, "queue.tier", &TIERS)?;
        spec.tier = ServiceBusTier::from_name(name).unwrap_or(spec.tier);
    }
    if let Some(v) = &q.messaging_units {
        if spec.tier != ServiceBusTier::Premium {
            let msg = format!(
                "`queue.messaging_units` does not apply to tier = \"{}\"",
                spec.tier.name()
            );
            return Err(src.at(v.span(), msg).note("messaging units bill the premium tier"));
        }
        spec.messaging_units = count(src, v, "queue.messaging_units", 1)?;
    }
    Ok(())
}

/// `[consumer]`; `batch_size` defaults by queue kind; `calls` must name services.
fn consumer(
    src: &Source<'_>,
    c: Option<&S<ConsumerFile>>,
    kind: QueueKind,
    services: &Services,
) -> Res<ConsumerSpec> {
    let d = ConsumerSpec::default();
    let batch_default = if kind == QueueKind::StorageQueue { 16 } else { d.batch_size };
    let Some(c) = c.map(S::get_ref) else {
        return Ok(ConsumerSpec { batch_size: batch_default, ..d });
    };
    let batch_size = opt(&c.batch_size, |v| {
        let max = if kind == QueueKind::StorageQueue { 32 } else { u32::MAX.into() };
        let n = integer(src, v, "consumer.batch_size", 1..=max).map_err(|e| {
            if max == 32 {
                e.note("a storage queue receive returns at most 32 messages")
            } else {
                e
            }
        })?;
        Ok(n as u32)
    })?;
    Ok(ConsumerSpec {
        instances: opt(&c.instances, |v| count(src, v, "consumer.instances", 1))?
            .unwrap_or(d.instances),
        concurrency: opt(&c.concurrency, |v| count(src, v, "consumer.concurrency", 1))?
            .unwrap_or(d.concurrency),
        batch_size: batch_size.unwrap_or(batch_default),
        work: opt(&c.work, |v| dist(src, v, "consumer.work"))?.unwrap_or(d.work),
        calls: calls(src, c, services)?,
        poll_interval: opt(&c.poll_interval, |v| {
            positive_duration(src, v, "consumer.poll_interval")
        })?
        .unwrap_or(d.poll_interval),
        cpu_bound: opt(&c.cpu_bound, |v| boolean(src, v, "consumer.cpu_bound"))?
            .unwrap_or(d.cpu_bound),
    })
}

/// `consumer.calls`: names of services, each defined in `[services]`.
fn calls(src: &Source<'_>, c: &ConsumerFile, services: &Services) -> Res<Vec<String>> {
    let Some(list) = &c.calls else {
        return Ok(Vec::new());
    };
    let known: Vec<&str> = services.keys().map(String::as_str).collect();
    let mut out = Vec::new();
    for (i, v) in list.get_ref().iter().enumerate() {
        let key = format!("consumer.calls[{i}]");
        out.push(service_name(src, v, &key, &known)?);
    }
    Ok(out)
}

/// A reference to a service: a string naming one of `known`.
pub(crate) fn service_name(src: &Source<'_>, v: &S<Raw>, key: &str, known: &[&str]) -> Res<String> {
    let name = string(src, v, key)?;
    if known.contains(&name.as_str()) {
        return Ok(name);
    }
    let e = src.at(v.span(), format!("unknown service `{name}` in `{key}`"));
    if known.is_empty() {
        return Err(e.note(format!("no services are defined: add a [services.{name}] table")));
    }
    Err(e.expected_one_of(known).did_you_mean(&name, known))
}

/// `[services.<name>]`.
fn services(src: &Source<'_>, named: &Named<ServiceFile>) -> Res<Services> {
    let mut out = Services::new();
    let Some(table) = named else { return Ok(out) };
    for (name, sf) in table.get_ref() {
        if name.get_ref() == "consumer" || name.get_ref().is_empty() {
            let why = "`consumer` names the consumer in fault targets; choose another service name";
            return Err(src
                .at(name.span(), format!("bad service name {:?}", name.get_ref()))
                .note(why));
        }
        out.insert(name.get_ref().clone(), service(src, name.get_ref(), sf.get_ref())?);
    }
    Ok(out)
}

fn service(src: &Source<'_>, name: &str, sf: &ServiceFile) -> Res<ServiceSpec> {
    let d = ServiceSpec::default();
    let key = |k: &str| format!("services.{}.{k}", super::diagnose::key_text(name));
    Ok(ServiceSpec {
        latency: opt(&sf.latency, |v| dist(src, v, &key("latency")))?.unwrap_or(d.latency),
        error_rate: opt(&sf.error_rate, |v| probability(src, v, &key("error_rate")))?
            .unwrap_or(d.error_rate),
        timeout: opt(&sf.timeout, |v| duration_or_never(src, v, &key("timeout")))?
            .unwrap_or(d.timeout),
        max_concurrency: opt(&sf.max_concurrency, |v| count(src, v, &key("max_concurrency"), 1))?,
        over_limit: over_limit(src, sf, &key)?,
    })
}

/// `over_limit` ("wait" or "reject") and `retry_after` (only with "reject"); both only with
/// `max_concurrency`, which they would otherwise be ignored without.
fn over_limit(src: &Source<'_>, sf: &ServiceFile, key: &dyn Fn(&str) -> String) -> Res<OverLimit> {
    let names = ["wait", "reject"];
    let mode = opt(&sf.over_limit, |v| choice(src, v, &key("over_limit"), &names))?;
    let retry_after = opt(&sf.retry_after, |v| positive_duration(src, v, &key("retry_after")))?;
    if sf.max_concurrency.is_none()
        && let Some(v) = sf.over_limit.as_ref().or(sf.retry_after.as_ref())
    {
        return Err(src
            .at(v.span(), format!("`{}` needs `{}`", key("over_limit"), key("max_concurrency")))
            .note("without a concurrency limit no call is ever over it"));
    }
    if let (Some(v), false) = (&sf.retry_after, mode == Some("reject")) {
        let msg = format!("`{}` applies only with over_limit = \"reject\"", key("retry_after"));
        return Err(src
            .at(v.span(), msg)
            .note("a call that waits for a free slot gets no Retry-After"));
    }
    Ok(match mode {
        Some("reject") => OverLimit::Reject { retry_after },
        _ => OverLimit::Wait,
    })
}

/// The backoff kinds, by scenario-file name.
const BACKOFFS: [Backoff; 4] =
    [Backoff::Constant, Backoff::Linear, Backoff::Exponential, Backoff::DecorrelatedJitter];

/// `[retry]`: `RetrySpec::default()` overridden by the keys given.
fn retry(src: &Source<'_>, r: &S<RetryFile>) -> Res<RetrySpec> {
    let f = r.get_ref();
    let d = RetrySpec::default();
    let names = BACKOFFS.map(Backoff::name);
    let backoff = opt(&f.backoff, |v| choice(src, v, "retry.backoff", &names))?
        .and_then(|n| BACKOFFS.into_iter().find(|b| b.name() == n));
    let spec = RetrySpec {
        backoff: backoff.unwrap_or(d.backoff),
        base: opt(&f.base, |v| positive_duration(src, v, "retry.base"))?.unwrap_or(d.base),
        max_delay: opt(&f.max_delay, |v| positive_duration(src, v, "retry.max_delay"))?
            .unwrap_or(d.max_delay),
        max_attempts: opt(&f.max_attempts, |v| count(src, v, "retry.max_attempts", 0))?
            .unwrap_or(d.max_attempts),
        jitter: opt(&f.jitter, |v| boolean(src, v, "retry.jitter"))?.unwrap_or(d.jitter),
    };
    if spec.max_delay < spec.base {
        let span = f.max_delay.as_ref().or(f.base.as_ref()).map_or(r.span(), S::span);
        let (cap, base) = (format_duration(spec.max_delay), format_duration(spec.base));
        return Err(src.at(
            span,
            format!("`retry.max_delay` ({cap}) must not be below `retry.base` ({base})"),
        ));
    }
    Ok(spec)
}

/// `[expect]`, in file order (then `--set` order).
fn expect(src: &Source<'_>, named: &Named<Raw>) -> Res<Vec<Expectation>> {
    let Some(table) = named else {
        return Ok(Vec::new());
    };
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries.into_iter().map(|(metric, v)| expectation(src, metric, v)).collect()
}

fn expectation(src: &Source<'_>, metric: &S<String>, v: &S<Raw>) -> Res<Expectation> {
    let name = metric.get_ref();
    if name.trim().is_empty() {
        return Err(src.at(
            metric.span(),
            "an [expect] key must name a summary metric, e.g. \"messages.lost\"",
        ));
    }
    let key = format!("expect.{}", super::diagnose::key_text(name));
    let condition = match v.get_ref() {
        Raw::Str(s) => s.clone(),
        Raw::Int(_) | Raw::Float(_) => {
            let n = v.get_ref().describe().replace("integer ", "").replace("float ", "");
            let what = "a condition like \"<= 10\"";
            return Err(wrong_type(src, v, &key, what).suggest_value(Some(&format!("== {n}"))));
        }
        _ => return Err(wrong_type(src, v, &key, "a condition like \"<= 10\"")),
    };
    let (op, threshold) = super::units::parse_condition(name, &condition)
        .map_err(|e| src.at(v.span(), e.message).suggest_value(e.suggestion.as_deref()))?;
    Ok(Expectation { metric: name.clone(), op, threshold, condition })
}
