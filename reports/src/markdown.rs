//! `report.md`: a compact Markdown report, fit for a pull-request comment.

use crate::model::{FaultWindow, RunReport};
use crate::num::{count, dur, float, ms, secs, usd_or_dash};
use crate::text::latency_names;
use std::fmt::Write as _;

/// The report as Markdown: headline table, ledger, latencies, expectations (✅/❌ with actual
/// values), services, faults and the replay command.
pub fn report(r: &RunReport) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let passed = s.expectations.iter().filter(|e| e.pass).count();
    let badge = match (s.expectations.len(), r.passed()) {
        (0, _) => String::new(),
        (n, true) => format!(" — ✅ {passed}/{n} expectations"),
        (n, false) => format!(" — ❌ {passed}/{n} expectations"),
    };
    let _ =
        writeln!(out, "### sluice run: `{}` ({}, seed {}){badge}\n", s.scenario, s.pattern, s.seed);
    if !r.description.is_empty() {
        let _ = writeln!(out, "> {}\n", r.description.replace('\n', " "));
    }
    if let Some(l) = &s.limits {
        let _ = writeln!(
            out,
            "**Stopped by `limits.max_backlog`** at {} simulated: {} messages in the system \
             (limit {}); arrivals {} msg/s against completions {} msg/s.\n",
            secs(l.at_s),
            count(l.backlog),
            count(l.max_backlog),
            float(l.arrivals_per_s, 0),
            float(l.completions_per_s, 2)
        );
    }
    let e2e = s.latency("end_to_end");
    let drain =
        if s.drained { secs(s.drain_s) } else { format!("not drained ({})", secs(s.drain_s)) };
    out.push_str("| throughput | p50 | p99 | p99.9 | max | backlog peak | drain |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} msg/s | {} | {} | {} | {} | {} | {} |\n",
        float(s.throughput.completed_per_s, 2),
        ms(e2e.p50_ms),
        ms(e2e.p99_ms),
        ms(e2e.p999_ms),
        ms(e2e.max_ms),
        count(s.backlog.peak),
        drain
    );
    ledger(r, &mut out);
    latency(r, &mut out);
    classes(r, &mut out);
    sections(r, &mut out);
    expectations(r, &mut out);
    services(r, &mut out);
    hosting(r, &mut out);
    faults(&r.faults, &mut out);
    if !r.meta.command.is_empty() {
        let _ = writeln!(out, "**Replay:** `{}`", r.meta.command);
    }
    out
}

fn ledger(r: &RunReport, out: &mut String) {
    let m = &r.summary.messages;
    out.push_str("**Messages**\n\n");
    out.push_str(
        "| produced | completed | dead-lettered | rejected | expired | lost | in flight \
         | deliveries | duplicates |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let cells = [
        m.produced,
        m.completed,
        m.dead_lettered,
        m.rejected,
        m.expired,
        m.lost,
        m.in_flight,
        m.deliveries,
        m.duplicates,
    ];
    let row: Vec<String> = cells.iter().map(|c| count(*c)).collect();
    let _ = writeln!(out, "| {} |\n", row.join(" | "));
}

fn latency(r: &RunReport, out: &mut String) {
    let names = latency_names(r);
    if names.is_empty() {
        return;
    }
    out.push_str("**Latency**\n\n| | count | mean | p50 | p90 | p99 | p99.9 | max |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for name in names {
        let l = &r.summary.latency[name];
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            count(l.count),
            ms(l.mean_ms),
            ms(l.p50_ms),
            ms(l.p90_ms),
            ms(l.p99_ms),
            ms(l.p999_ms),
            ms(l.max_ms)
        );
    }
    out.push('\n');
}

fn classes(r: &RunReport, out: &mut String) {
    let classes = &r.summary.classes;
    if classes.is_empty() {
        return;
    }
    out.push_str("**Classes**\n\n| class | produced | completed | dead-lettered | rejected | expired | lost | p50 | p99 | max |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (name, c) in classes {
        let m = &c.messages;
        let (p50, p99, max) = c
            .latency
            .get("end_to_end")
            .filter(|l| l.count > 0)
            .map_or(("–".into(), "–".into(), "–".into()), |l| {
                (ms(l.p50_ms), ms(l.p99_ms), ms(l.max_ms))
            });
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {p50} | {p99} | {max} |",
            count(m.produced),
            count(m.completed),
            count(m.dead_lettered),
            count(m.rejected),
            count(m.expired),
            count(m.lost),
        );
    }
    out.push('\n');
}

/// The pattern's own section(s): `breaker.opened` ...
fn sections(r: &RunReport, out: &mut String) {
    for (section, fields) in &r.summary.sections {
        let _ = writeln!(out, "**{section}**\n\n| | |\n|---|---:|");
        for (k, v) in fields {
            let _ = writeln!(out, "| {k} | {} |", float(*v, 3));
        }
        out.push('\n');
    }
}

fn expectations(r: &RunReport, out: &mut String) {
    let ex = &r.summary.expectations;
    if ex.is_empty() {
        return;
    }
    out.push_str("**Expectations**\n\n| | metric | condition | actual |\n|---|---|---|---:|\n");
    for e in ex {
        let mark = if e.pass { "✅" } else { "❌" };
        let actual = match (&e.actual, &e.error) {
            (Some(a), _) => float(*a, 3),
            (None, Some(err)) => err.replace('|', "\\|"),
            (None, None) => "–".into(),
        };
        let _ = writeln!(out, "| {mark} | `{}` | `{}` | {actual} |", e.metric, e.condition);
    }
    out.push('\n');
}

fn services(r: &RunReport, out: &mut String) {
    let s = &r.summary;
    if s.services.is_empty() {
        return;
    }
    out.push_str("**Services**\n\n| service | calls | errors | timeouts |\n|---|---:|---:|---:|\n");
    for (name, sv) in &s.services {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            count(sv.calls),
            count(sv.errors),
            count(sv.timeouts)
        );
    }
    out.push('\n');
}

fn hosting(r: &RunReport, out: &mut String) {
    let s = &r.summary;
    let (h, c) = (&s.hosting, &s.cost);
    let per_million = usd_or_dash(c.per_million_messages_usd);
    out.push_str("**Hosting and cost**\n\n");
    out.push_str("| plan | instances peak · mean | cold starts | timeouts | total | per million msgs | compute | executions | messaging |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} · {} | {} | {} | ${} | {} | ${} | ${} | ${} |\n",
        h.plan,
        h.instances_peak,
        float(h.instances_mean, 2),
        h.cold_starts,
        h.timeouts,
        float(c.total_usd, 4),
        per_million,
        float(c.compute_usd, 4),
        float(c.executions_usd, 4),
        float(c.messaging_usd, 4)
    );
    if c.gpu_usd > 0.0 {
        let _ = writeln!(out, "GPU-seconds: ${} (in the total).\n", float(c.gpu_usd, 4));
    }
    if let Some(w) = &s.web {
        let _ = writeln!(
            out,
            "Web tier: {} mean response ({} alone, {} worst interval).\n",
            ms(w.latency_mean_ms),
            ms(w.latency_alone_ms),
            ms(w.latency_peak_ms)
        );
    }
}

/// `from → to` of a fault, or `at` for a crash that never restarts.
pub(crate) fn fault_when(f: &FaultWindow) -> String {
    match f.to_s {
        Some(to) => format!("{} → {}", dur(f.from_s), dur(to)),
        None => format!("{} → end", dur(f.from_s)),
    }
}

fn faults(faults: &[FaultWindow], out: &mut String) {
    if faults.is_empty() {
        return;
    }
    out.push_str("**Faults**\n\n");
    for f in faults {
        let detail = if f.detail.is_empty() { String::new() } else { format!(" ({})", f.detail) };
        let length = f.to_s.map(|to| format!(", {}", dur(to - f.from_s))).unwrap_or_default();
        let _ = writeln!(out, "- `{}` {}: {}{length}{detail}", f.target, f.kind, fault_when(f));
    }
    out.push('\n');
}
