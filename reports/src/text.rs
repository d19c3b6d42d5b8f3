//! The short, aligned summary printed to the terminal after a run.

use crate::model::RunReport;
use crate::num::{count, dur, float, ms, secs, usd_or_dash};
use std::fmt::Write as _;

/// Latency names shown first, in this order; others follow by name.
pub(crate) const LATENCY_ORDER: [&str; 4] = ["end_to_end", "queue_wait", "handler", "accept"];

/// Latency names in display order.
pub(crate) fn latency_names(r: &RunReport) -> Vec<&str> {
    let mut names: Vec<&str> = r.summary.latency.keys().map(String::as_str).collect();
    names.sort_by_key(|n| (LATENCY_ORDER.iter().position(|o| o == n).unwrap_or(9), *n));
    names
}

/// A few aligned lines: ledger, latencies, throughput, backlog, services, expectations (with
/// PASS/FAIL and actual values) and, when one failed, the replay command.
pub fn summary(r: &RunReport) -> String {
    let s = &r.summary;
    let m = &s.messages;
    let mut out = String::new();
    let _ = writeln!(out, "{}  ({}, seed {})", s.scenario, s.pattern, s.seed);
    let state = match (&s.limits, s.drained) {
        (Some(l), _) => {
            format!("STOPPED by limits.max_backlog ({} messages in the system)", l.backlog)
        }
        (None, true) => "drained".to_string(),
        (None, false) => "NOT drained (stopped at the horizon)".to_string(),
    };
    let _ = writeln!(
        out,
        "  {:<11} {} simulated: production {}, drain {}; {state}",
        "run",
        secs(s.sim_time_s),
        dur(s.duration_s),
        secs(s.drain_s)
    );
    let _ = writeln!(
        out,
        "  {:<11} produced {} | completed {} | dead-lettered {} | rejected {} | expired {} \
         | lost {} | in flight {}",
        "messages",
        count(m.produced),
        count(m.completed),
        count(m.dead_lettered),
        count(m.rejected),
        count(m.expired),
        count(m.lost),
        count(m.in_flight)
    );
    let _ = writeln!(
        out,
        "  {:<11} deliveries {} | duplicates {}",
        "",
        count(m.deliveries),
        count(m.duplicates)
    );
    let names = latency_names(r);
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    for (i, name) in names.iter().enumerate() {
        let l = &s.latency[*name];
        let head = if i == 0 { "latency" } else { "" };
        let _ = writeln!(
            out,
            "  {head:<11} {name:<width$}  p50 {:>9}  p99 {:>9}  max {:>9}  (n={})",
            ms(l.p50_ms),
            ms(l.p99_ms),
            ms(l.max_ms),
            count(l.count)
        );
    }
    let t = &s.throughput;
    let _ = writeln!(
        out,
        "  {:<11} {} msg/s completed (offered {} msg/s, busiest interval {} msg/s)",
        "throughput",
        float(t.completed_per_s, 2),
        float(t.produced_per_s, 2),
        float(t.peak_completed_per_s, 2)
    );
    let _ = writeln!(
        out,
        "  {:<11} peak {} | mean {}",
        "backlog",
        count(s.backlog.peak),
        float(s.backlog.mean, 1)
    );
    for (i, (name, sv)) in s.services.iter().enumerate() {
        let head = if i == 0 { "services" } else { "" };
        let _ = writeln!(
            out,
            "  {head:<11} {name}: {} calls, {} errors ({} timeouts)",
            count(sv.calls),
            count(sv.errors),
            count(sv.timeouts)
        );
    }
    hosting(r, &mut out);
    expectations(r, &mut out);
    out
}

/// `hosting` and `cost` lines.
fn hosting(r: &RunReport, out: &mut String) {
    let s = &r.summary;
    let h = &s.hosting;
    let _ = writeln!(
        out,
        "  {:<11} {}: peak {} instances, mean {} | {} scale-outs, {} scale-ins, {} cold starts, \
         {} timeouts",
        "hosting",
        h.plan,
        h.instances_peak,
        float(h.instances_mean, 2),
        h.scale_outs,
        h.scale_ins,
        h.cold_starts,
        h.timeouts
    );
    let c = &s.cost;
    let per_million = usd_or_dash(c.per_million_messages_usd);
    let _ = writeln!(
        out,
        "  {:<11} ${} total ({} per million messages; compute ${}, executions ${}, messaging ${}{}; \
         {} pricing)",
        "cost",
        float(c.total_usd, 4),
        per_million,
        float(c.compute_usd, 4),
        float(c.executions_usd, 4),
        float(c.messaging_usd, 4),
        gpu_part(c.gpu_usd),
        c.pricing
    );
    if let Some(w) = &s.web {
        let _ = writeln!(
            out,
            "  {:<11} response {} mean, {} worst interval ({} alone; background took up to {}% CPU)",
            "web tier",
            ms(w.latency_mean_ms),
            ms(w.latency_peak_ms),
            ms(w.latency_alone_ms),
            float(w.background_cpu_peak * 100.0, 1)
        );
    }
}

fn expectations(r: &RunReport, out: &mut String) {
    let ex = &r.summary.expectations;
    let width = ex.iter().map(|e| e.metric.len() + 1 + e.condition.len()).max().unwrap_or(0);
    for (i, e) in ex.iter().enumerate() {
        let head = if i == 0 { "expect" } else { "" };
        let verdict = if e.pass { "PASS" } else { "FAIL" };
        let cond = format!("{} {}", e.metric, e.condition);
        let actual = match (&e.actual, &e.error) {
            (Some(a), _) => format!("actual {}", float(*a, 3)),
            (None, Some(err)) => err.clone(),
            (None, None) => "no value".into(),
        };
        let _ = writeln!(out, "  {head:<11} {verdict}  {cond:<width$}  {actual}");
    }
    if !r.passed() && !r.meta.command.is_empty() {
        let _ = writeln!(out, "  {:<11} {}", "replay", r.meta.command);
    }
}

/// `, gpu $X` for runs billed GPU-seconds (GPU workers), else nothing.
fn gpu_part(gpu_usd: f64) -> String {
    if gpu_usd > 0.0 { format!(", gpu ${}", float(gpu_usd, 4)) } else { String::new() }
}
