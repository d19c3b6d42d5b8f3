//! [`to_toml`]: a resolved [`Scenario`] printed back as a scenario file, every value
//! explicit, in the units the file format uses. Loading the output (from the same folder, so
//! that trace and empirical files are found) gives back an equal `Scenario`.

use super::diagnose::key_text;
use sim::spec::{
    Arrivals, ConsumerSpec, CostSpec, ExecutionLimit, FaultKind, FaultSpec, HostingSpec, OverLimit,
    Plan, Pricing, QueueKind, QueueSpec, RetrySpec, Scenario, ServiceBusTier, ServiceSpec,
    WorkloadSpec,
};
use sim::time::{Nanos, format_duration};
use std::fmt::Display;

/// Prints `s` as a scenario file: the "resolved parameters" of reports and
/// `sluice run --print-scenario`.
pub fn to_toml(s: &Scenario) -> String {
    let mut out = Out(String::new());
    top(&mut out, s);
    workload(&mut out, &s.workload);
    out.table("api");
    out.str("accept", &s.api.accept.to_string());
    queue(&mut out, &s.queue);
    if s.store != sim::spec::StoreSpec::default() {
        out.table("store");
        out.str("latency", &s.store.latency.to_string());
        out.str("commit_latency", &s.store.commit_latency.to_string());
    }
    consumer(&mut out, &s.consumer, s.hosting.plan.elastic());
    hosting(&mut out, &s.hosting);
    for (name, svc) in &s.services {
        service(&mut out, name, svc);
    }
    if let Some(r) = &s.retry {
        retry(&mut out, r);
    }
    if let (Some(settings), Some(table)) =
        (&s.pattern_table.0, sim::patterns::lookup(s.pattern).table.as_ref())
    {
        let mut w = super::pattern_table::Writer(Vec::new());
        settings.write(&mut w);
        out.table(table.name);
        for (k, v) in w.0 {
            out.raw(&k, v);
        }
    }
    for f in &s.faults {
        fault(&mut out, f);
    }
    cost(&mut out, &s.cost);
    out.table("limits");
    out.raw("max_backlog", s.limits.max_backlog);
    if !s.expect.is_empty() {
        out.table("expect");
        for e in &s.expect {
            out.str(&key_text(&e.metric), &e.condition);
        }
    }
    out.0
}

/// A TOML basic string with the escapes TOML requires.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The file being written.
struct Out(String);

impl Out {
    fn line(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }

    fn table(&mut self, header: &str) {
        self.line(&format!("\n[{header}]"));
    }

    fn array_entry(&mut self, header: &str) {
        self.line(&format!("\n[[{header}]]"));
    }

    fn raw(&mut self, key: &str, value: impl Display) {
        self.line(&format!("{key} = {value}"));
    }

    fn str(&mut self, key: &str, value: &str) {
        self.raw(key, quote(value));
    }

    fn dur(&mut self, key: &str, ns: Nanos) {
        self.str(key, &format_duration(ns));
    }

    fn rate(&mut self, key: &str, per_s: f64) {
        self.str(key, &format!("{per_s}/s"));
    }
}

fn top(out: &mut Out, s: &Scenario) {
    out.str("name", &s.name);
    out.str("description", &s.description);
    out.raw("seed", s.seed);
    out.dur("duration", s.duration);
    match s.drain {
        Some(d) => out.dur("drain", d),
        None => out.line(&format!(
            "# drain: until the system is empty, at most {}",
            format_duration(Scenario::DRAIN_CAP)
        )),
    }
    out.dur("warmup", s.warmup);
    out.dur("interval", s.interval);
    out.str("pattern", s.pattern.name());
    if s.expect_failure {
        out.raw("expect_failure", true);
    }
}

fn workload(out: &mut Out, w: &WorkloadSpec) {
    out.table("workload");
    match &w.arrivals {
        Arrivals::Constant => out.str("arrivals", "constant"),
        Arrivals::Poisson => out.str("arrivals", "poisson"),
        Arrivals::Trace { source, .. } => {
            out.str("arrivals", "trace");
            out.str("trace", source);
        }
    }
    out.rate("rate", w.rate_per_s);
    for p in &w.phases {
        out.array_entry("workload.phases");
        out.dur("from", p.from);
        out.dur("to", p.to);
        out.rate("rate", p.rate_per_s);
    }
    out.table("workload.classes");
    for (name, weight) in &w.classes {
        out.raw(&key_text(name), weight);
    }
    if !w.class_work.is_empty() {
        out.table("workload.class_work");
        for (name, work) in &w.class_work {
            out.str(&key_text(name), &work.to_string());
        }
    }
}

fn queue(out: &mut Out, q: &QueueSpec) {
    out.table("queue");
    out.str("kind", q.kind.name());
    out.dur("visibility_timeout", q.visibility_timeout);
    out.raw("max_delivery_count", q.max_delivery_count);
    match q.ttl {
        Some(ttl) => out.dur("ttl", ttl),
        None => out.str("ttl", "never"),
    }
    out.raw("capacity", q.capacity);
    out.dur("abandon_delay", q.abandon_delay);
    out.dur("max_polling_interval", q.max_polling_interval);
    match q.lock_renewal {
        QueueSpec::RENEW_UNLIMITED => out.str("lock_renewal", "unlimited"),
        d => out.dur("lock_renewal", d),
    }
    match q.new_batch_threshold {
        Some(n) => out.raw("new_batch_threshold", n),
        None => out.line("# new_batch_threshold: batch_size / 2 (the default)"),
    }
    if q.kind == QueueKind::ServiceBus {
        out.raw("prefetch", q.prefetch);
        out.str("tier", q.tier.name());
        if q.tier == ServiceBusTier::Premium {
            out.raw("messaging_units", q.messaging_units);
        }
    }
}

fn consumer(out: &mut Out, c: &ConsumerSpec, elastic: bool) {
    out.table("consumer");
    if elastic {
        out.line("# instances: decided by the autoscaler ([scaling])");
    } else {
        out.raw("instances", c.instances);
    }
    out.raw("concurrency", c.concurrency);
    out.raw("batch_size", c.batch_size);
    out.str("work", &c.work.to_string());
    let calls: Vec<String> = c.calls.iter().map(|n| quote(n)).collect();
    out.raw("calls", format!("[{}]", calls.join(", ")));
    out.dur("poll_interval", c.poll_interval);
    out.raw("cpu_bound", c.cpu_bound);
}

/// The rest of `[consumer]` (hosting keys), then `[scaling]` and `[web]` where they apply.
fn hosting(out: &mut Out, h: &HostingSpec) {
    out.str("hosting", h.plan.name());
    out.str("memory", &format!("{}MB", h.memory_mb));
    out.raw("cpu", format!("{:?}", h.cpu));
    match h.execution_timeout {
        ExecutionLimit::After(t) => out.dur("execution_timeout", t),
        ExecutionLimit::Unlimited => out.str("execution_timeout", "never"),
        ExecutionLimit::PlanDefault => out.line(&format!(
            "# execution_timeout: the plan's default ({})",
            h.plan.default_execution_timeout().map_or("none".into(), format_duration)
        )),
    }
    if matches!(h.plan, Plan::FunctionsConsumption | Plan::FunctionsFlex | Plan::FunctionsPremium) {
        out.str("worker_model", h.worker_model.name());
    }
    if h.plan.elastic() {
        let s = &h.scaling;
        out.table("scaling");
        out.raw("min_instances", s.min_instances);
        out.raw("max_instances", s.max_instances);
        match s.target_per_instance {
            Some(t) => out.raw("target_per_instance", t),
            None if matches!(h.plan, Plan::AcaJob | Plan::AcaApp) => out
                .line("# target_per_instance: 5, KEDA's messageCount / queueLength (the default)"),
            None => out.line("# target_per_instance: the trigger's own (the default)"),
        }
        out.dur("polling_interval", s.polling_interval);
        out.dur("cooldown", s.cooldown);
        out.dur("scale_out_step", s.scale_out_step);
        if !matches!(h.plan, Plan::AcaJob | Plan::AcaApp) {
            out.raw("scale_out_max", s.scale_out_max);
        }
        if let Some(g) = s.drain_grace.or(h.plan.default_drain_grace()) {
            out.dur("drain_grace", g);
        }
        out.str("cold_start", &s.cold_start.to_string());
        if h.plan == Plan::FunctionsPremium {
            out.raw("prewarmed", s.prewarmed);
        }
        if h.plan == Plan::AcaJob {
            out.raw("parallelism", s.parallelism);
            out.raw("completion_count", s.completion_count);
            match s.messages_per_replica {
                Some(n) => out.raw("messages_per_replica", n),
                None => out.str("messages_per_replica", "drain"),
            }
        }
    }
    if h.plan == Plan::WebJob {
        out.table("web");
        out.rate("rate", h.web.rate_per_s);
        out.dur("cpu_per_request", h.web.cpu_per_request);
        out.raw("handler_cpu_share", format!("{:?}", h.web.handler_cpu_share));
    }
}

/// `[cost]` with every rate written out, so the printed scenario bills the same.
fn cost(out: &mut Out, c: &CostSpec) {
    out.table("cost");
    out.str("pricing", &c.pricing.name);
    out.raw("free_grant", c.free_grant);
    for rate in Pricing::RATES {
        let value = c.pricing.get(rate).expect("a known rate");
        out.raw(rate, format!("{value:?}"));
    }
}

fn service(out: &mut Out, name: &str, s: &ServiceSpec) {
    out.table(&format!("services.{}", key_text(name)));
    out.str("latency", &s.latency.to_string());
    out.raw("error_rate", s.error_rate);
    match s.timeout {
        Some(t) => out.dur("timeout", t),
        None => out.str("timeout", "never"),
    }
    if let Some(n) = s.max_concurrency {
        out.raw("max_concurrency", n);
        match s.over_limit {
            OverLimit::Wait => out.str("over_limit", "wait"),
            OverLimit::Reject { retry_after } => {
                out.str("over_limit", "reject");
                if let Some(r) = retry_after {
                    out.dur("retry_after", r);
                }
            }
        }
    }
}

fn retry(out: &mut Out, r: &RetrySpec) {
    out.table("retry");
    out.str("backoff", r.backoff.name());
    out.dur("base", r.base);
    out.dur("max_delay", r.max_delay);
    out.raw("max_attempts", r.max_attempts);
    out.raw("jitter", r.jitter);
}

fn fault(out: &mut Out, f: &FaultSpec) {
    out.array_entry("faults");
    out.str("kind", f.kind.name());
    out.str("target", &f.target);
    match f.kind {
        FaultKind::Outage { from, to }
        | FaultKind::Latency { from, to, .. }
        | FaultKind::ErrorRate { from, to, .. }
        | FaultKind::RenewalFailure { from, to } => {
            out.dur("from", from);
            out.dur("to", to);
        }
        FaultKind::Restart { at, grace, restart_after } => {
            out.dur("at", at);
            out.dur("grace", grace);
            out.dur("restart_after", restart_after);
        }
        FaultKind::Crash { at, instances, restart_after } => {
            out.dur("at", at);
            out.raw("instances", instances);
            match restart_after {
                Some(r) => out.dur("restart_after", r),
                None => out.str("restart_after", "never"),
            }
        }
    }
    match f.kind {
        FaultKind::Latency { add, .. } => out.dur("add", add),
        FaultKind::ErrorRate { error_rate, .. } => out.raw("error_rate", error_rate),
        _ => {}
    }
}
