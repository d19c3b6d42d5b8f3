//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external URLs)
//! that opens from disk.

use crate::charts::{self, Chart};
use crate::error::ReportError;
use crate::markdown::fault_when;
use crate::model::RunReport;
use crate::num::{count, float, ms, secs, usd_or_dash};
use crate::text::latency_names;
use std::fmt::Write as _;

/// The stylesheet shared by `report.html` and `compare.html`.
pub(crate) const CSS: &str = r#"
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f3f5f8;--ok:#17692e;--okbg:#e3f4e6;
--bad:#a8231b;--badbg:#fde8e6;--accent:#4e79a7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
main{max-width:1060px;margin:0 auto;padding:28px 24px 40px}
h1{font-size:28px;margin:0 0 2px;letter-spacing:-.01em}
h2{font-size:17px;margin:0 0 12px}
.sub{color:var(--muted);margin:0 0 10px}
.desc{margin:6px 0 14px;font-size:16px}
.badge{display:inline-block;padding:2px 11px;border-radius:999px;font-weight:600;font-size:13px;
vertical-align:middle;margin-left:8px}
.badge.pass{background:var(--okbg);color:var(--ok)}.badge.fail{background:var(--badbg);color:var(--bad)}
.badge.none{background:#e8ecf1;color:var(--muted)}
.cmd{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;
background:#17202a;color:#e6edf3;padding:10px 14px;border-radius:8px;overflow-x:auto;
white-space:pre;margin:6px 0}
.meta{color:var(--muted);font-size:13px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-top:18px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:12px 16px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.card .v{font-size:23px;font-weight:650;margin-top:2px;white-space:nowrap}
.card.bad{border-color:#f2b8b5;background:#fff7f6}.card.bad .v{color:var(--bad)}
section{background:#fff;border:1px solid var(--line);border-radius:12px;padding:16px 20px;
margin-top:18px}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
th.l,td.l{text-align:left}
table.nowrap td{white-space:nowrap}
tr:last-child td{border-bottom:0}
tr.ok td{background:var(--okbg)}tr.bad td{background:var(--badbg)}
td.verdict{font-weight:700;width:90px;white-space:nowrap}tr.ok td.verdict{color:var(--ok)}tr.bad td.verdict{color:var(--bad)}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px}
.better{background:var(--okbg);color:var(--ok)}.worse{background:var(--badbg);color:var(--bad)}
.delta{display:block;font-size:12px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
figure.chart{margin:0 0 14px}figure.chart:last-child{margin-bottom:0}
figure.chart svg{width:100%;height:auto;display:block}
.track{position:relative;height:14px;background:#eef1f5;border-radius:4px;min-width:220px}
.track .bar{position:absolute;top:0;bottom:0;background:#d6453d;border-radius:4px;opacity:.8;
min-width:3px}
pre.toml{background:#f8fafc;border:1px solid var(--line);padding:12px 14px;border-radius:8px;
overflow-x:auto;font-size:13px;line-height:1.45;margin:0}
.muted{color:var(--muted)}.ok-text{color:var(--ok)}.bad-text{color:var(--bad)}
footer{color:var(--muted);font-size:12px;margin-top:22px;text-align:center}
@media (max-width:760px){.cards{grid-template-columns:repeat(2,1fr)}.grid2{grid-template-columns:1fr}}
"#;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Turns `backtick` spans of escaped text into `<code>` elements.
fn code_spans(escaped: &str) -> String {
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The page's head and opening tags.
pub(crate) fn open(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(title)
    )
}

/// Closing tags with a footer.
pub(crate) fn close(footer: &str) -> String {
    format!("<footer>{footer}</footer>\n</main>\n</body>\n</html>\n")
}

/// A headline card.
pub(crate) fn card(key: &str, value: &str, bad: bool) -> String {
    let class = if bad { "card bad" } else { "card" };
    format!(
        "<div class=\"{class}\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>\n",
        esc(key),
        esc(value)
    )
}

/// An inline chart.
pub(crate) fn figure(svg: &str) -> String {
    format!("<figure class=\"chart\">{svg}</figure>\n")
}

/// The whole page, rendering the charts itself.
pub fn report(r: &RunReport) -> Result<String, ReportError> {
    let charts = charts::run_charts(r);
    let svgs = charts.iter().map(charts::svg).collect::<Result<Vec<_>, _>>()?;
    Ok(report_with(r, &charts, &svgs))
}

/// The page with charts already rendered (`svgs[i]` is `charts[i]`).
pub(crate) fn report_with(r: &RunReport, charts: &[Chart], svgs: &[String]) -> String {
    let s = &r.summary;
    let mut out = open(&format!("sluice: {}", s.scenario));
    let (class, text) = match (s.expectations.len(), r.passed()) {
        (0, _) => ("none", "no expectations".to_string()),
        (n, true) => ("pass", format!("PASS {n}/{n}")),
        (n, false) => {
            let ok = s.expectations.iter().filter(|e| e.pass).count();
            ("fail", format!("FAIL {ok}/{n}"))
        }
    };
    let _ = writeln!(
        out,
        "<header>\n<h1>{}<span class=\"badge {class}\">{text}</span></h1>\n\
         <p class=\"sub\">pattern <b>{}</b> · seed <b>{}</b> · {} simulated ({})</p>",
        esc(&s.scenario),
        esc(&s.pattern),
        s.seed,
        secs(s.sim_time_s),
        match (&s.limits, s.drained) {
            (Some(_), _) => "stopped by limits.max_backlog: the backlog ran away",
            (None, true) => "drained",
            (None, false) => "not drained: stopped at the horizon",
        }
    );
    if !r.description.is_empty() {
        let _ = writeln!(out, "<p class=\"desc\">{}</p>", esc(&r.description));
    }
    if !r.meta.command.is_empty() {
        let _ = writeln!(out, "<div class=\"cmd\">{}</div>", esc(&r.meta.command));
    }
    let mut meta = Vec::new();
    if !r.meta.scenario_path.is_empty() {
        meta.push(format!("scenario <code>{}</code>", esc(&r.meta.scenario_path)));
    }
    if let Some(c) = &r.meta.git_commit {
        meta.push(format!("commit <code>{}</code>", esc(c)));
    }
    if !meta.is_empty() {
        let _ = writeln!(out, "<p class=\"meta\">{}</p>", meta.join(" · "));
    }
    out.push_str("</header>\n");
    cards(r, &mut out);
    expectations(r, &mut out);
    out.push_str("<div class=\"grid2\">\n");
    ledger(r, &mut out);
    more(r, &mut out);
    out.push_str("</div>\n");
    latency(r, &mut out);
    classes(r, &mut out);
    out.push_str("<section>\n<h2>Charts</h2>\n");
    for (chart, svg) in charts.iter().zip(svgs) {
        let _ = write!(out, "<!-- chart: {} -->\n{}", chart.id, figure(svg));
    }
    out.push_str("</section>\n");
    faults(r, &mut out);
    if !r.meta.scenario_toml.is_empty() {
        let _ = writeln!(
            out,
            "<section>\n<h2>Resolved scenario</h2>\n<pre class=\"toml\">{}</pre>\n</section>",
            esc(r.meta.scenario_toml.trim_end())
        );
    }
    let commit = r.meta.git_commit.as_deref().map(|c| format!(" · commit {}", esc(c)));
    out.push_str(&close(&format!(
        "sluice report · summary schema {}{}",
        s.schema,
        commit.unwrap_or_default()
    )));
    out
}

fn cards(r: &RunReport, out: &mut String) {
    let s = &r.summary;
    let e2e = s.latency("end_to_end");
    let m = &s.messages;
    out.push_str("<div class=\"cards\">\n");
    out.push_str(&card(
        "throughput",
        &format!("{} msg/s", float(s.throughput.completed_per_s, 2)),
        false,
    ));
    out.push_str(&card("end-to-end p50", &ms(e2e.p50_ms), false));
    out.push_str(&card("end-to-end p99", &ms(e2e.p99_ms), false));
    out.push_str(&card("end-to-end p99.9", &ms(e2e.p999_ms), false));
    out.push_str(&card("backlog peak", &count(s.backlog.peak), false));
    let drain = if s.drained { secs(s.drain_s) } else { "not drained".into() };
    out.push_str(&card("drain time", &drain, !s.drained));
    out.push_str(&card("dead-lettered", &count(m.dead_lettered), m.dead_lettered > 0));
    out.push_str(&card("lost", &count(m.lost), m.lost > 0));
    let c = &s.cost;
    out.push_str(&card("cost", &format!("${}", float(c.total_usd, 4)), false));
    let per_million = usd_or_dash(c.per_million_messages_usd);
    out.push_str(&card("cost / million msgs", &per_million, false));
    let h = &s.hosting;
    out.push_str(&card("instances peak", &h.instances_peak.to_string(), false));
    out.push_str(&card("cold starts", &count(h.cold_starts), false));
    out.push_str("</div>\n");
}

fn expectations(r: &RunReport, out: &mut String) {
    let ex = &r.summary.expectations;
    if ex.is_empty() {
        return;
    }
    out.push_str("<section>\n<h2>Expectations</h2>\n<table>\n");
    out.push_str("<tr><th class=\"l\"></th><th class=\"l\">metric</th><th class=\"l\">condition</th><th>actual</th></tr>\n");
    for e in ex {
        let (class, verdict) = if e.pass { ("ok", "✓ PASS") } else { ("bad", "✗ FAIL") };
        let actual = match (&e.actual, &e.error) {
            (Some(a), _) if e.metric.ends_with("_ms") => {
                format!("{} <span class=\"muted\">({})</span>", esc(&float(*a, 3)), esc(&ms(*a)))
            }
            (Some(a), _) if e.metric.ends_with("_s") => {
                format!("{} <span class=\"muted\">({})</span>", esc(&float(*a, 3)), esc(&secs(*a)))
            }
            (Some(a), _) => esc(&float(*a, 3)),
            (None, Some(err)) => code_spans(&esc(err)),
            (None, None) => "–".into(),
        };
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td class=\"l verdict\">{verdict}</td><td class=\"l\"><code>{}</code></td>\
             <td class=\"l\"><code>{}</code></td><td>{actual}</td></tr>",
            esc(&e.metric),
            esc(&e.condition)
        );
    }
    out.push_str("</table>\n</section>\n");
}

fn ledger(r: &RunReport, out: &mut String) {
    let m = &r.summary.messages;
    let share = |n: u64| {
        if m.produced == 0 {
            "–".to_string()
        } else {
            format!("{}%", float(n as f64 * 100.0 / m.produced as f64, 2))
        }
    };
    out.push_str("<section>\n<h2>Message ledger</h2>\n<table>\n<tr><th class=\"l\">messages</th><th>count</th><th>share</th></tr>\n");
    let rows = [
        ("produced", m.produced, false),
        ("completed", m.completed, false),
        ("dead-lettered", m.dead_lettered, m.dead_lettered > 0),
        ("rejected", m.rejected, m.rejected > 0),
        ("expired", m.expired, m.expired > 0),
        ("lost", m.lost, m.lost > 0),
        ("in flight at the end", m.in_flight, false),
    ];
    for (name, n, bad) in rows {
        let class = if bad { " class=\"bad-text\"" } else { "" };
        let _ = writeln!(
            out,
            "<tr{class}><td class=\"l\">{name}</td><td>{}</td><td>{}</td></tr>",
            count(n),
            share(n)
        );
    }
    let _ = writeln!(
        out,
        "<tr><td class=\"l\">deliveries (redeliveries included)</td><td>{}</td><td></td></tr>\n\
         <tr><td class=\"l\">duplicate effects</td><td>{}</td><td></td></tr>",
        count(m.deliveries),
        count(m.duplicates)
    );
    let sum = m.rejected + m.completed + m.dead_lettered + m.expired + m.lost + m.in_flight;
    let balance = if sum == m.produced {
        "<span class=\"ok-text\">✓ every produced message is accounted for</span>".to_string()
    } else {
        format!(
            "<span class=\"bad-text\">✗ ledger off by {}</span>",
            sum as i128 - m.produced as i128
        )
    };
    let _ = writeln!(out, "</table>\n<p class=\"meta\">{balance}</p>\n</section>");
}

fn more(r: &RunReport, out: &mut String) {
    let s = &r.summary;
    out.push_str("<section>\n<h2>Rates, services, hosting and cost</h2>\n<table>\n");
    let mut row = |k: String, v: String| {
        let _ = writeln!(out, "<tr><td class=\"l\">{}</td><td>{}</td></tr>", esc(&k), esc(&v));
    };
    let t = &s.throughput;
    row("completed / s (whole run)".into(), float(t.completed_per_s, 3));
    row("offered / s (production)".into(), float(t.produced_per_s, 3));
    row("busiest interval / s".into(), float(t.peak_completed_per_s, 3));
    row(
        "backlog peak · mean".into(),
        format!("{} · {}", count(s.backlog.peak), float(s.backlog.mean, 2)),
    );
    let l = &s.little;
    let ratio = l.ratio.map_or("–".to_string(), |x| float(x, 3));
    row(
        "Little's law: L · λW · L/λW".into(),
        format!("{} · {} · {ratio}", float(l.mean_in_system, 2), float(l.lambda_w, 2)),
    );
    row("queue operations".into(), count(s.queue.operations));
    for (name, sv) in &s.services {
        row(
            format!("{name}: calls · errors · timeouts"),
            format!("{} · {} · {}", count(sv.calls), count(sv.errors), count(sv.timeouts)),
        );
    }
    for (section, fields) in &s.sections {
        for (k, v) in fields {
            row(format!("{section}: {k}"), float(*v, 3));
        }
    }
    for (k, v) in &s.extra {
        row(format!("extra: {k}"), float(*v, 3));
    }
    let h = &s.hosting;
    row("hosting plan".into(), h.plan.clone());
    row(
        "instances peak · mean".into(),
        format!("{} · {}", h.instances_peak, float(h.instances_mean, 2)),
    );
    row(
        "scale-outs · scale-ins · cold starts · timeouts".into(),
        format!("{} · {} · {} · {}", h.scale_outs, h.scale_ins, h.cold_starts, h.timeouts),
    );
    let c = &s.cost;
    row(
        format!("cost: compute · executions · messaging ({})", c.pricing),
        format!(
            "${} · ${} · ${}",
            float(c.compute_usd, 4),
            float(c.executions_usd, 4),
            float(c.messaging_usd, 4)
        ),
    );
    if c.gpu_usd > 0.0 {
        row("cost: GPU-seconds".into(), format!("${}", float(c.gpu_usd, 4)));
    }
    if let Some(w) = &s.web {
        row(
            "web tier: mean · worst interval · alone".into(),
            format!(
                "{} · {} · {}",
                ms(w.latency_mean_ms),
                ms(w.latency_peak_ms),
                ms(w.latency_alone_ms)
            ),
        );
    }
    out.push_str("</table>\n</section>\n");
}

fn latency(r: &RunReport, out: &mut String) {
    let names = latency_names(r);
    if names.is_empty() {
        return;
    }
    out.push_str("<section>\n<h2>Latency</h2>\n<table>\n<tr><th class=\"l\"></th><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    for name in names {
        let l = &r.summary.latency[name];
        let _ = writeln!(
            out,
            "<tr><td class=\"l\"><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            count(l.count),
            ms(l.mean_ms),
            ms(l.p50_ms),
            ms(l.p90_ms),
            ms(l.p99_ms),
            ms(l.p999_ms),
            ms(l.max_ms)
        );
    }
    out.push_str("</table>\n<p class=\"meta\">end_to_end: accepted → completed · queue_wait: accepted → first delivery · handler: each execution</p>\n</section>\n");
}

/// One row per workload class: its ledger and end-to-end latency.
fn classes(r: &RunReport, out: &mut String) {
    let classes = &r.summary.classes;
    if classes.is_empty() {
        return;
    }
    out.push_str("<section>\n<h2>Classes</h2>\n<table>\n<tr><th class=\"l\">class</th><th>produced</th><th>completed</th><th>dead-lettered</th><th>rejected</th><th>expired</th><th>lost</th><th>in flight</th><th>p50</th><th>p99</th><th>max</th></tr>\n");
    for (name, c) in classes {
        let m = &c.messages;
        let e2e = c.latency.get("end_to_end").filter(|l| l.count > 0);
        let lat = |f: fn(&crate::model::LatencySummary) -> f64| {
            e2e.map_or("–".to_string(), |l| ms(f(l)))
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\"><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            count(m.produced),
            count(m.completed),
            count(m.dead_lettered),
            count(m.rejected),
            count(m.expired),
            count(m.lost),
            count(m.in_flight),
            lat(|l| l.p50_ms),
            lat(|l| l.p99_ms),
            lat(|l| l.max_ms)
        );
    }
    out.push_str("</table>\n<p class=\"meta\">latency: accepted → completed, for each class's messages</p>\n</section>\n");
}

fn faults(r: &RunReport, out: &mut String) {
    out.push_str("<section>\n<h2>Fault timeline</h2>\n");
    if r.faults.is_empty() {
        out.push_str("<p class=\"meta\">No faults were injected.</p>\n</section>\n");
        return;
    }
    let end = r.end_s().max(1e-9);
    out.push_str("<table>\n<tr><th class=\"l\">fault</th><th class=\"l\">when</th><th class=\"l\">detail</th><th class=\"l\">timeline (0 → end of run)</th></tr>\n");
    for f in &r.faults {
        let left = (f.from_s / end * 100.0).clamp(0.0, 100.0);
        let width = ((f.end_or(end) - f.from_s) / end * 100.0).clamp(0.0, 100.0 - left);
        let _ = writeln!(
            out,
            "<tr><td class=\"l\"><b>{}</b> {}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\"><div class=\"track\"><div class=\"bar\" style=\"left:{left:.2}%;width:{width:.2}%\"></div></div></td></tr>",
            esc(&f.target),
            esc(&f.kind),
            esc(&fault_when(f)),
            esc(&f.detail)
        );
    }
    out.push_str("</table>\n</section>\n");
}
