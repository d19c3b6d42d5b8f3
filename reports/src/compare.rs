//! Comparing runs side by side: `compare.json`, `compare.md`, `compare.html`.
//!
//! The first run is the baseline; every other run's headline metrics get a delta against it
//! (absolute and %), judged better or worse by the metric's direction.

use crate::charts;
use crate::error::ReportError;
use crate::expect;
use crate::html::{self, esc};
use crate::model::{RunReport, SCHEMA};
use crate::num::{count, float, ms, pct, round_dp, secs};
use crate::rundir::{Formats, create_dir, write_charts, write_file};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `compare.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// The runs, baseline first.
    pub runs: Vec<RunRef>,
    /// One row per metric.
    pub metrics: Vec<MetricRow>,
}

/// A run in a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    /// The label given to `compare`.
    pub label: String,
    /// Scenario name.
    pub scenario: String,
    /// Pattern name.
    pub pattern: String,
    /// Seed.
    pub seed: u64,
    /// Replay command.
    pub command: String,
    /// Expectations that held, of `expectations_total`.
    pub expectations_passed: usize,
    /// Expectations in the scenario.
    pub expectations_total: usize,
}

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Smaller is better (latency, backlog, losses).
    Lower,
    /// Larger is better (throughput).
    Higher,
    /// Neither (volume counts).
    Neither,
}

/// How a value compares with the baseline's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Moved the good way.
    Better,
    /// Moved the bad way.
    Worse,
    /// Equal.
    Same,
    /// Changed, but the metric has no good direction.
    Changed,
}

/// A metric across runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Summary path, e.g. `latency.end_to_end.p99_ms`; `services.calls` is the sum over
    /// services.
    pub metric: String,
    /// Display name.
    pub label: String,
    /// `ms`, `s`, `msg/s` or `count`.
    pub unit: String,
    /// Direction.
    pub better: Better,
    /// The value in each run (`null` when a run lacks the metric).
    pub values: Vec<Option<f64>>,
    /// Against the baseline, one per run (the baseline's own is `null`).
    pub deltas: Vec<Option<Delta>>,
}

/// A change against the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `value - baseline`.
    pub abs: f64,
    /// `100 * abs / baseline`; `null` when the baseline is 0.
    pub pct: Option<f64>,
    /// Better, worse, same or changed.
    pub verdict: Verdict,
}

/// The headline metrics: (summary path, label, unit, direction).
const METRICS: [(&str, &str, &str, Better); 17] = [
    ("throughput.completed_per_s", "throughput", "msg/s", Better::Higher),
    ("latency.end_to_end.p50_ms", "end-to-end p50", "ms", Better::Lower),
    ("latency.end_to_end.p99_ms", "end-to-end p99", "ms", Better::Lower),
    ("latency.end_to_end.p999_ms", "end-to-end p99.9", "ms", Better::Lower),
    ("latency.queue_wait.p99_ms", "queue wait p99", "ms", Better::Lower),
    ("backlog.peak", "backlog peak", "count", Better::Lower),
    ("drain_s", "drain time", "s", Better::Lower),
    ("messages.completed", "completed", "count", Better::Higher),
    ("messages.dead_lettered", "dead-lettered", "count", Better::Lower),
    ("messages.lost", "lost", "count", Better::Lower),
    ("messages.duplicates", "duplicates", "count", Better::Lower),
    ("messages.deliveries", "deliveries", "count", Better::Neither),
    ("services.calls", "downstream calls", "count", Better::Neither),
    ("hosting.instances_peak", "instances peak", "count", Better::Neither),
    ("hosting.cold_starts", "cold starts", "count", Better::Lower),
    ("cost.total_usd", "cost", "usd", Better::Lower),
    ("cost.per_million_messages_usd", "cost per million messages", "usd", Better::Lower),
];

/// Builds the comparison (baseline first). Needs at least 2 runs.
pub fn build(runs: &[(String, RunReport)]) -> Result<Comparison, ReportError> {
    if runs.len() < 2 {
        return Err(ReportError::NotEnoughRuns { given: runs.len() });
    }
    let values: Vec<serde_json::Value> = runs.iter().map(|(_, r)| r.summary.to_value()).collect();
    let mut metrics: Vec<MetricRow> = METRICS
        .iter()
        .map(|&(path, label, unit, better)| {
            let vals = runs
                .iter()
                .zip(&values)
                .map(|((_, r), v)| match path {
                    "services.calls" => Some(r.summary.calls() as f64),
                    _ => expect::lookup(v, path).ok(),
                })
                .collect();
            row(path, label, unit, better, vals)
        })
        .collect();
    let services: BTreeSet<&String> =
        runs.iter().flat_map(|(_, r)| r.summary.services.keys()).collect();
    if services.len() > 1 {
        for name in services {
            let vals = runs
                .iter()
                .map(|(_, r)| r.summary.services.get(name).map(|s| s.calls as f64))
                .collect();
            let path = format!("services.{name}.calls");
            metrics.push(row(&path, &format!("{name} calls"), "count", Better::Neither, vals));
        }
    }
    // Per class, when the runs have classes: its ledger's main lines and its p99.
    let classes: BTreeSet<&String> =
        runs.iter().flat_map(|(_, r)| r.summary.classes.keys()).collect();
    for name in classes {
        let rows: [(&str, &str, &str, Better); 4] = [
            ("messages.produced", "produced", "count", Better::Neither),
            ("messages.completed", "completed", "count", Better::Higher),
            ("messages.lost", "lost", "count", Better::Lower),
            ("latency.end_to_end.p99_ms", "end-to-end p99", "ms", Better::Lower),
        ];
        for (field, what, unit, better) in rows {
            let path = format!("classes.{name}.{field}");
            let vals = values.iter().map(|v| expect::lookup(v, &path).ok()).collect();
            metrics.push(row(&path, &format!("{name} {what}"), unit, better, vals));
        }
    }
    // The pattern's own section (`breaker.opened`, ...): fields ending in `_s` are seconds,
    // in `_ms` milliseconds.
    let fields: BTreeSet<(&String, &String)> = runs
        .iter()
        .flat_map(|(_, r)| r.summary.sections.iter())
        .flat_map(|(section, fields)| fields.keys().map(move |k| (section, k)))
        .collect();
    for (section, field) in fields {
        let vals = runs
            .iter()
            .map(|(_, r)| r.summary.sections.get(section).and_then(|f| f.get(field)).copied())
            .collect();
        let unit = if field.ends_with("_ms") {
            "ms"
        } else if field.ends_with("_s") {
            "s"
        } else {
            "count"
        };
        let path = format!("{section}.{field}");
        metrics.push(row(&path, &path, unit, Better::Neither, vals));
    }
    Ok(Comparison {
        schema: SCHEMA,
        runs: runs
            .iter()
            .map(|(label, r)| RunRef {
                label: label.clone(),
                scenario: r.summary.scenario.clone(),
                pattern: r.summary.pattern.clone(),
                seed: r.summary.seed,
                command: r.meta.command.clone(),
                expectations_passed: r.summary.expectations.iter().filter(|e| e.pass).count(),
                expectations_total: r.summary.expectations.len(),
            })
            .collect(),
        metrics,
    })
}

fn row(path: &str, label: &str, unit: &str, better: Better, values: Vec<Option<f64>>) -> MetricRow {
    let base = values[0];
    let deltas = values
        .iter()
        .enumerate()
        .map(|(i, v)| match (i, base, v) {
            (0, _, _) | (_, None, _) | (_, _, None) => None,
            (_, Some(b), Some(v)) => Some(delta(b, *v, better, unit)),
        })
        .collect();
    MetricRow {
        metric: path.into(),
        label: label.into(),
        unit: unit.into(),
        better,
        values,
        deltas,
    }
}

/// The change from `base` to `v`. A change too small to matter (see [`matters`]) is
/// `Changed`, never `Better` or `Worse`, so noise is not coloured as a win or a loss.
fn delta(base: f64, v: f64, better: Better, unit: &str) -> Delta {
    let abs = round_dp(v - base, 6);
    let pct = (base != 0.0).then(|| round_dp(abs / base.abs() * 100.0, 2));
    let small = !matters(unit, &Delta { abs, pct, verdict: Verdict::Changed });
    let verdict = match (better, abs.partial_cmp(&0.0)) {
        (_, Some(std::cmp::Ordering::Equal)) | (_, None) => Verdict::Same,
        (Better::Neither, _) => Verdict::Changed,
        _ if small => Verdict::Changed,
        (Better::Lower, Some(o)) | (Better::Higher, Some(o)) => {
            let lower = o == std::cmp::Ordering::Less;
            if lower == (better == Better::Lower) { Verdict::Better } else { Verdict::Worse }
        }
    };
    Delta { abs, pct, verdict }
}

fn value(unit: &str, v: Option<f64>) -> String {
    match (unit, v) {
        (_, None) => "–".into(),
        ("ms", Some(v)) => ms(v),
        ("s", Some(v)) => secs(v),
        ("msg/s", Some(v)) => format!("{} msg/s", float(v, 2)),
        ("usd", Some(v)) => format!("${}", float(v, 4)),
        (_, Some(v)) if v.fract() == 0.0 && v >= 0.0 => count(v as u64),
        (_, Some(v)) => float(v, 3),
    }
}

fn signed(unit: &str, abs: f64) -> String {
    let sign = if abs > 0.0 {
        "+"
    } else if abs < 0.0 {
        "−"
    } else {
        "±"
    };
    format!("{sign}{}", value(unit, Some(abs.abs())))
}

/// One line per non-baseline run naming the biggest moves, e.g.
/// "`b` vs `a`: end-to-end p99 −63% (better), backlog peak −80% (better); cost +43% (worse)".
/// Moves too small to matter (under 1 ms or 1 s of latency or drain, under 1 % of a rate or
/// count) are left out; the cost is always named when it moved, since most comparisons are a
/// trade of latency against money.
pub fn headline(c: &Comparison) -> Vec<String> {
    (1..c.runs.len())
        .map(|i| {
            let mut moves: Vec<(f64, &str, String)> = c
                .metrics
                .iter()
                .filter_map(|m| {
                    let d = m.deltas[i]?;
                    if !matches!(d.verdict, Verdict::Better | Verdict::Worse)
                        || !matters(&m.unit, &d)
                    {
                        return None;
                    }
                    let size = d.pct.map_or(f64::INFINITY, f64::abs);
                    let how = if d.verdict == Verdict::Better { "better" } else { "worse" };
                    let amount = d.pct.map_or_else(|| signed(&m.unit, d.abs), |p| pct(Some(p)));
                    Some((size, m.metric.as_str(), format!("{} {amount} ({how})", m.label)))
                })
                .collect();
            moves.sort_by(|a, b| b.0.total_cmp(&a.0));
            let cost = moves.iter().position(|m| m.1 == "cost.total_usd").map(|k| moves.remove(k));
            let mut text: Vec<String> = moves.into_iter().take(4).map(|m| m.2).collect();
            if text.is_empty() && cost.is_none() {
                text.push("no headline metric changed".into());
            }
            let mut line =
                format!("`{}` vs `{}`: {}", c.runs[i].label, c.runs[0].label, text.join(", "));
            if let Some(cost) = cost {
                line.push_str(&format!("{}{}", if text.is_empty() { "" } else { "; " }, cost.2));
            }
            line
        })
        .collect()
}

/// Whether a change is big enough to name in the headline.
fn matters(unit: &str, d: &Delta) -> bool {
    match unit {
        "ms" | "s" => d.abs.abs() >= 1.0,
        _ => d.pct.is_none_or(|p| p.abs() >= 1.0),
    }
}

/// `compare.md`.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::from("### sluice compare\n\n");
    for line in headline(c) {
        let _ = writeln!(out, "- {line}");
    }
    out.push_str("\n| metric |");
    for r in &c.runs {
        let _ = write!(out, " {} |", r.label.replace('|', "\\|"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(c.runs.len()));
    out.push('\n');
    for m in &c.metrics {
        let _ = write!(out, "| {} |", m.label);
        for (v, d) in m.values.iter().zip(&m.deltas) {
            let _ = write!(out, " {}", value(&m.unit, *v));
            if let Some(d) = d {
                let mark = match d.verdict {
                    Verdict::Better => " 🟢",
                    Verdict::Worse => " 🔴",
                    _ => "",
                };
                if d.verdict != Verdict::Same {
                    let _ = write!(out, " ({}, {}){mark}", signed(&m.unit, d.abs), pct(d.pct));
                }
            }
            out.push_str(" |");
        }
        out.push('\n');
    }
    out.push_str("\n| run | scenario | pattern | seed | expectations | replay |\n|---|---|---|---:|---:|---|\n");
    for r in &c.runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {}/{} | `{}` |",
            r.label,
            r.scenario,
            r.pattern,
            r.seed,
            r.expectations_passed,
            r.expectations_total,
            r.command
        );
    }
    out
}

/// `compare.html` (charts inline).
pub fn html_page(c: &Comparison, svgs: &[String]) -> String {
    let labels: Vec<&str> = c.runs.iter().map(|r| r.label.as_str()).collect();
    let mut out = html::open(&format!("sluice compare: {}", labels.join(" vs ")));
    let _ = writeln!(
        out,
        "<header>\n<h1>Comparison</h1>\n<p class=\"sub\">baseline <b>{}</b> against {}</p>\n</header>",
        esc(labels[0]),
        labels[1..].iter().map(|l| format!("<b>{}</b>", esc(l))).collect::<Vec<_>>().join(", ")
    );
    out.push_str("<section>\n<h2>At a glance</h2>\n<ul>\n");
    for line in headline(c) {
        let line = esc(&line).replace('`', "");
        let line = line
            .replace("(better)", "<span class=\"ok-text\">(better)</span>")
            .replace("(worse)", "<span class=\"bad-text\">(worse)</span>");
        let _ = writeln!(out, "<li>{line}</li>");
    }
    out.push_str("</ul>\n</section>\n<section>\n<h2>Headline metrics</h2>\n<table>\n<tr><th class=\"l\">metric</th>");
    for (i, l) in labels.iter().enumerate() {
        let color = charts::PALETTE[i % charts::PALETTE.len()];
        let _ = write!(out, "<th><span style=\"color:{color}\">■</span> {}</th>", esc(l));
    }
    out.push_str("</tr>\n");
    for m in &c.metrics {
        let _ = write!(out, "<tr><td class=\"l\">{}</td>", esc(&m.label));
        for (v, d) in m.values.iter().zip(&m.deltas) {
            let (class, delta) = match d {
                Some(d) if d.verdict != Verdict::Same => {
                    let class = match d.verdict {
                        Verdict::Better => " class=\"better\"",
                        Verdict::Worse => " class=\"worse\"",
                        _ => "",
                    };
                    (
                        class,
                        format!(
                            "<span class=\"delta\">{} ({})</span>",
                            esc(&signed(&m.unit, d.abs)),
                            esc(&pct(d.pct))
                        ),
                    )
                }
                _ => ("", String::new()),
            };
            let _ = write!(out, "<td{class}>{}{delta}</td>", esc(&value(&m.unit, *v)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</section>\n<section>\n<h2>Charts</h2>\n");
    for svg in svgs {
        out.push_str(&html::figure(svg));
    }
    out.push_str("</section>\n<section>\n<h2>Runs</h2>\n<table>\n<tr><th class=\"l\">run</th><th class=\"l\">scenario</th><th class=\"l\">pattern</th><th>seed</th><th>expectations</th></tr>\n");
    for r in &c.runs {
        let ok = r.expectations_passed == r.expectations_total;
        let class = if ok { "ok-text" } else { "bad-text" };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"{class}\">{}/{}</td></tr>",
            esc(&r.label),
            esc(&r.scenario),
            esc(&r.pattern),
            r.seed,
            r.expectations_passed,
            r.expectations_total
        );
        if !r.command.is_empty() {
            let _ = writeln!(
                out,
                "<tr><td></td><td class=\"l\" colspan=\"4\"><code>{}</code></td></tr>",
                esc(&r.command)
            );
        }
    }
    out.push_str("</table>\n</section>\n");
    out.push_str(&html::close(&format!("sluice compare · schema {}", c.schema)));
    out
}

/// Writes `compare.json` (always), `compare.md`, `compare.html` and `charts/compare-*.svg|png`
/// into `dir` as `formats` asks; returns the files written.
pub fn write(
    dir: &Path,
    runs: &[(String, RunReport)],
    formats: &Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    let c = build(runs)?;
    let mut written = Vec::new();
    create_dir(dir)?;
    let mut json = serde_json::to_vec_pretty(&c).expect("a comparison always serializes");
    json.push(b'\n');
    write_file(&dir.join("compare.json"), &json, &mut written)?;
    let charts = if formats.html || formats.svg || formats.png {
        charts::compare_charts(runs)
    } else {
        Vec::new()
    };
    let svgs = if formats.html || formats.svg {
        charts.iter().map(charts::svg).collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    write_charts(dir, &charts, &svgs, formats, &mut written)?;
    if formats.md {
        write_file(&dir.join("compare.md"), markdown(&c).as_bytes(), &mut written)?;
    }
    if formats.html {
        write_file(&dir.join("compare.html"), html_page(&c, &svgs).as_bytes(), &mut written)?;
    }
    Ok(written)
}
