//! Sweeps: a grid of settings, several seeds per point. `sweep.json`, `sweep.csv`, `sweep.md`,
//! `sweep.html` and charts (p99 and cost against each varied key, with the knee).
//!
//! A sweep is built from [`Point`]s: one grid point aggregated over its seeds, its latency
//! histograms merged exactly (HDR histograms add losslessly). Points are what a shard writes
//! (`points/NNNNN.json`) and what `sluice merge` reads back, so a merged sweep is the same,
//! byte for byte, as one made on one machine.

use crate::charts::PALETTE;
use crate::error::ReportError;
use crate::hist::LatencyHistogram;
use crate::html::{self, esc};
use crate::model::{LatencySummary, RunReport, SCHEMA};
use crate::num::{count, float, ms, round_dp};
use crate::rundir::{Formats, create_dir, write_file};
use crate::xy::{self, Mark, XyChart, XySeries};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a sweep is: the same in every shard (`sweep-plan.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file, as given.
    pub scenario_path: String,
    /// `--set` overrides applied to every point.
    pub sets: Vec<String>,
    /// The varied keys, in `--grid` order, with their values.
    pub grid: Vec<GridKey>,
    /// The seeds every point runs.
    pub seeds: Vec<u64>,
}

/// One `--grid key=v1,v2,...`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridKey {
    /// The scenario key.
    pub key: String,
    /// Its values, as given.
    pub values: Vec<String>,
}

impl Plan {
    /// How many points the grid has.
    pub fn len(&self) -> usize {
        self.grid.iter().map(|g| g.values.len()).product()
    }

    /// Whether the grid is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of point `i` (the first key varies slowest).
    pub fn values(&self, mut i: usize) -> Vec<String> {
        let mut out = vec![String::new(); self.grid.len()];
        for (k, g) in self.grid.iter().enumerate().rev() {
            out[k] = g.values[i % g.values.len()].clone();
            i /= g.values.len();
        }
        out
    }
}

/// One grid point over its seeds (`points/NNNNN.json` in a sweep or shard directory).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Position in the grid.
    pub index: usize,
    /// The varied keys' values.
    pub values: Vec<String>,
    /// Runs (seeds) made.
    pub runs: usize,
    /// Runs whose every `[expect]` held and whose invariants held.
    pub runs_passed: usize,
    /// Each failed condition (`metric condition`) with the number of runs it failed in.
    pub failed: BTreeMap<String, usize>,
    /// Messages produced, over all runs.
    pub produced: u64,
    /// Messages completed, over all runs.
    pub completed: u64,
    /// Messages lost, over all runs.
    pub lost: u64,
    /// Messages dead-lettered, over all runs.
    pub dead_lettered: u64,
    /// The highest backlog peak of any run.
    pub backlog_peak: u64,
    /// The highest instance count of any run.
    pub instances_peak: u64,
    /// Sum over runs of `throughput.completed_per_s`.
    pub throughput_sum: f64,
    /// Sum over runs of `cost.total_usd`.
    pub cost_sum_usd: f64,
    /// Latency histograms merged over runs, by name, with the count-weighted mean \[ms\].
    pub latency: BTreeMap<String, PooledLatency>,
    /// The command that replays the point's first run.
    pub replay: String,
}

/// A latency histogram merged over runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PooledLatency {
    /// The merged histogram (ns).
    pub hist: LatencyHistogram,
    /// Sum over runs of `mean_ms * count` (for the pooled mean).
    pub weighted_mean_sum: f64,
}

impl Point {
    /// Aggregates the runs of one point. `runs[i].1`: run `i`'s invariants held; a run passes
    /// when they did and every `[expect]` condition held.
    pub fn new(index: usize, values: Vec<String>, runs: &[(&RunReport, bool)]) -> Point {
        let mut p = Point {
            index,
            values,
            runs: runs.len(),
            runs_passed: runs.iter().filter(|(r, ok)| *ok && r.passed()).count(),
            failed: BTreeMap::new(),
            produced: 0,
            completed: 0,
            lost: 0,
            dead_lettered: 0,
            backlog_peak: 0,
            instances_peak: 0,
            throughput_sum: 0.0,
            cost_sum_usd: 0.0,
            latency: BTreeMap::new(),
            replay: runs.first().map(|r| r.0.meta.command.clone()).unwrap_or_default(),
        };
        for (r, _) in runs {
            let s = &r.summary;
            for e in s.expectations.iter().filter(|e| !e.pass) {
                *p.failed.entry(format!("{} {}", e.metric, e.condition)).or_default() += 1;
            }
            p.produced += s.messages.produced;
            p.completed += s.messages.completed;
            p.lost += s.messages.lost;
            p.dead_lettered += s.messages.dead_lettered;
            p.backlog_peak = p.backlog_peak.max(s.backlog.peak);
            p.instances_peak = p.instances_peak.max(u64::from(s.hosting.instances_peak));
            p.throughput_sum += s.throughput.completed_per_s;
            p.cost_sum_usd += s.cost.total_usd;
            for (name, h) in &r.histograms {
                let mean = s.latency.get(name).map_or(0.0, |l| l.mean_ms * l.count as f64);
                match p.latency.get_mut(name) {
                    Some(pooled) => {
                        // Same bounds in every run of a point; a mismatch would be a bug.
                        let _ = pooled.hist.0.add(&h.0);
                        pooled.weighted_mean_sum += mean;
                    }
                    None => {
                        p.latency.insert(
                            name.clone(),
                            PooledLatency { hist: h.clone(), weighted_mean_sum: mean },
                        );
                    }
                }
            }
        }
        p
    }

    /// The pooled latency summary of histogram `name` (zeros when absent).
    pub fn latency(&self, name: &str) -> LatencySummary {
        let Some(l) = self.latency.get(name) else {
            return LatencySummary::default();
        };
        let h = &l.hist.0;
        let n = h.len();
        let q =
            |q: f64| if n == 0 { 0.0 } else { round_dp(h.value_at_quantile(q) as f64 / 1e6, 3) };
        LatencySummary {
            count: n,
            mean_ms: if n == 0 { 0.0 } else { round_dp(l.weighted_mean_sum / n as f64, 3) },
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if n == 0 { 0.0 } else { round_dp(h.max() as f64 / 1e6, 3) },
        }
    }
}

/// `sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file, as given.
    pub scenario_path: String,
    /// `--set` overrides applied to every point.
    pub sets: Vec<String>,
    /// The varied keys and their values.
    pub grid: Vec<GridKey>,
    /// The seeds every point ran.
    pub seeds: Vec<u64>,
    /// One row per grid point, in grid order.
    pub rows: Vec<Row>,
    /// Where adding more of a numeric key stops helping p99, per line of the p99 charts.
    pub knees: Vec<Knee>,
    /// The cheapest point (lowest mean cost per run) whose every run passed.
    pub cheapest_passing: Option<usize>,
}

/// One grid point in `sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Position in the grid.
    pub point: usize,
    /// The varied keys' values, by key.
    pub values: BTreeMap<String, String>,
    /// Runs (seeds).
    pub runs: usize,
    /// Runs whose every expectation and invariant held.
    pub runs_passed: usize,
    /// Every run passed.
    pub pass: bool,
    /// End-to-end latency pooled over runs.
    pub end_to_end: LatencySummary,
    /// Queue wait p99 pooled over runs \[ms\].
    pub queue_wait_p99_ms: f64,
    /// The highest backlog peak of any run.
    pub backlog_peak: u64,
    /// Mean over runs of `throughput.completed_per_s`.
    pub throughput_per_s: f64,
    /// Mean over runs of `cost.total_usd`.
    pub cost_usd: f64,
    /// Cost per million completed messages, pooled over runs; `null` when none completed.
    pub cost_per_million_usd: Option<f64>,
    /// The highest instance count of any run.
    pub instances_peak: u64,
    /// Messages lost over all runs.
    pub lost: u64,
    /// Messages dead-lettered over all runs.
    pub dead_lettered: u64,
    /// Failed conditions with the number of runs they failed in.
    pub failed: BTreeMap<String, usize>,
    /// The command that replays the point's first run.
    pub replay: String,
}

/// A knee: the smallest value of `key` whose p99 is within a tenth of the whole improvement
/// the line reaches, on a log scale (more of it buys little; see [`knee`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    /// The varied key.
    pub key: String,
    /// The other keys' values on this line.
    pub fixed: BTreeMap<String, String>,
    /// The knee's value of `key`.
    pub value: String,
    /// Its end-to-end p99 \[ms\].
    pub p99_ms: f64,
    /// The knee is the largest value tried: more may still help.
    pub at_end: bool,
}

/// Builds `sweep.json` from the plan and every point (any order; each index exactly once).
pub fn build(plan: &Plan, mut points: Vec<Point>) -> Result<Sweep, ReportError> {
    points.sort_by_key(|p| p.index);
    let want = plan.len();
    let missing: Vec<usize> =
        (0..want).filter(|i| points.binary_search_by_key(i, |p| p.index).is_err()).collect();
    if !missing.is_empty() || points.len() != want {
        return Err(ReportError::Sweep(format!(
            "the sweep has {want} points but {} were given (missing: {:?}); merge every shard",
            points.len(),
            missing
        )));
    }
    let rows: Vec<Row> = points.iter().map(|p| row(plan, p)).collect();
    let knees = knees(plan, &rows);
    let cheapest_passing = rows
        .iter()
        .filter(|r| r.pass)
        .min_by(|a, b| a.cost_usd.total_cmp(&b.cost_usd).then(a.point.cmp(&b.point)))
        .map(|r| r.point);
    Ok(Sweep {
        schema: SCHEMA,
        scenario: plan.scenario.clone(),
        scenario_path: plan.scenario_path.clone(),
        sets: plan.sets.clone(),
        grid: plan.grid.clone(),
        seeds: plan.seeds.clone(),
        rows,
        knees,
        cheapest_passing,
    })
}

fn row(plan: &Plan, p: &Point) -> Row {
    let runs = p.runs.max(1) as f64;
    Row {
        point: p.index,
        values: plan.grid.iter().map(|g| g.key.clone()).zip(p.values.iter().cloned()).collect(),
        runs: p.runs,
        runs_passed: p.runs_passed,
        pass: p.runs_passed == p.runs,
        end_to_end: p.latency("end_to_end"),
        queue_wait_p99_ms: p.latency("queue_wait").p99_ms,
        backlog_peak: p.backlog_peak,
        throughput_per_s: round_dp(p.throughput_sum / runs, 3),
        cost_usd: round_dp(p.cost_sum_usd / runs, 6),
        cost_per_million_usd: (p.completed > 0)
            .then(|| round_dp(p.cost_sum_usd / p.completed as f64 * 1e6, 4)),
        instances_peak: p.instances_peak,
        lost: p.lost,
        dead_lettered: p.dead_lettered,
        failed: p.failed.clone(),
        replay: p.replay.clone(),
    }
}

/// The rows on one line of a chart of `key`: the other keys fixed at each combination.
/// Returns `(label of the fixed values, fixed values, rows in value order)`.
fn lines<'a>(
    plan: &Plan,
    rows: &'a [Row],
    key: &str,
) -> Vec<(String, BTreeMap<String, String>, Vec<&'a Row>)> {
    let mut out: Vec<(String, BTreeMap<String, String>, Vec<&Row>)> = Vec::new();
    for r in rows {
        let fixed: BTreeMap<String, String> = r
            .values
            .iter()
            .filter(|(k, _)| *k != key)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match out.iter_mut().find(|l| l.1 == fixed) {
            Some(l) => l.2.push(r),
            None => {
                let label = plan
                    .grid
                    .iter()
                    .filter(|g| g.key != key)
                    .map(|g| format!("{}={}", g.key, fixed[&g.key]))
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push((label, fixed, vec![r]));
            }
        }
    }
    out
}

fn knees(plan: &Plan, rows: &[Row]) -> Vec<Knee> {
    let mut out = Vec::new();
    for g in &plan.grid {
        let (xs, names) = xy::x_positions(&g.values);
        if !names.is_empty() || g.values.len() < 3 {
            continue;
        }
        for (_, fixed, line) in lines(plan, rows, &g.key) {
            let mut pts: Vec<(f64, &Row)> = line
                .iter()
                .map(|r| {
                    let i = g.values.iter().position(|v| *v == r.values[&g.key]).unwrap_or(0);
                    (xs[i], *r)
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if let Some(k) = knee(&pts.iter().map(|(_, r)| r.end_to_end.p99_ms).collect::<Vec<_>>())
            {
                let r = pts[k].1;
                out.push(Knee {
                    key: g.key.clone(),
                    fixed: fixed.clone(),
                    value: r.values[&g.key].clone(),
                    p99_ms: r.end_to_end.p99_ms,
                    at_end: k + 1 == pts.len(),
                });
            }
        }
    }
    out
}

/// The knee of a line of p99s in increasing order of the key: the first point within a tenth
/// of the whole improvement, measured on a log scale (latency spans orders of magnitude: going
/// from 45 s to 1 s still matters after going from 9 min to 45 s). `None` when the line never
/// improves.
pub fn knee(p99: &[f64]) -> Option<usize> {
    let ln = |y: f64| y.max(1e-3).ln();
    let first = ln(*p99.first()?);
    let best = p99.iter().map(|y| ln(*y)).fold(f64::INFINITY, f64::min);
    let gain = first - best;
    if gain <= 1e-9 {
        return None;
    }
    p99.iter().position(|&y| ln(y) <= best + 0.1 * gain)
}

/// The charts: for each varied key, end-to-end p99 and cost per million messages against it,
/// one line per combination of the other keys; knees marked on the p99 charts.
pub fn charts(s: &Sweep) -> Vec<XyChart> {
    let plan = Plan {
        schema: s.schema,
        scenario: s.scenario.clone(),
        scenario_path: s.scenario_path.clone(),
        sets: s.sets.clone(),
        grid: s.grid.clone(),
        seeds: s.seeds.clone(),
    };
    let mut out = Vec::new();
    for g in &s.grid {
        let (xs, names) = xy::x_positions(&g.values);
        let x_of = |r: &Row| xs[g.values.iter().position(|v| *v == r.values[&g.key]).unwrap_or(0)];
        let lines = lines(&plan, &s.rows, &g.key);
        let series = |f: &dyn Fn(&Row) -> f64| -> Vec<XySeries> {
            lines
                .iter()
                .enumerate()
                .map(|(i, (label, _, rows))| {
                    let mut pts: Vec<(f64, f64, bool)> =
                        rows.iter().map(|r| (x_of(r), f(r), r.pass)).collect();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    XySeries {
                        label: if label.is_empty() {
                            "all seeds pooled".into()
                        } else {
                            label.clone()
                        },
                        color: i % PALETTE.len(),
                        hollow: pts.iter().enumerate().filter(|p| !p.1.2).map(|p| p.0).collect(),
                        points: pts.iter().map(|p| (p.0, p.1)).collect(),
                    }
                })
                .collect()
        };
        let marks: Vec<Mark> = s
            .knees
            .iter()
            .filter(|k| k.key == g.key)
            .map(|k| {
                let i = lines.iter().position(|l| l.1 == k.fixed).unwrap_or(0);
                let x = xs[g.values.iter().position(|v| *v == k.value).unwrap_or(0)];
                Mark {
                    x,
                    y: k.p99_ms,
                    label: format!("knee: {}", k.value),
                    color: i % PALETTE.len(),
                }
            })
            .collect();
        let stem = chart_stem(&g.key);
        // Seconds once latencies reach ten seconds; a log axis past two decades.
        let p99s: Vec<f64> = s.rows.iter().map(|r| r.end_to_end.p99_ms).collect();
        let top = p99s.iter().copied().fold(0.0, f64::max);
        let low = p99s.iter().copied().filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min);
        let (scale, unit) = if top >= 10_000.0 { (1e-3, "s") } else { (1.0, "ms") };
        let marks: Vec<Mark> =
            marks.into_iter().map(|m: Mark| Mark { y: m.y * scale, ..m }).collect();
        out.push(XyChart {
            id: format!("sweep-p99-{stem}"),
            title: format!("End-to-end p99 against {} (hollow: a run failed [expect])", g.key),
            x_label: g.key.clone(),
            x_names: names.clone(),
            y_label: format!("p99 ({unit})"),
            series: series(&|r| r.end_to_end.p99_ms * scale),
            marks,
            hlines: Vec::new(),
            log_y: top / low > 100.0,
        });
        out.push(XyChart {
            id: format!("sweep-cost-{stem}"),
            title: format!("Cost per million messages against {}", g.key),
            x_label: g.key.clone(),
            x_names: names,
            y_label: "USD per million messages".into(),
            series: series(&|r| r.cost_per_million_usd.unwrap_or(f64::NAN)),
            marks: Vec::new(),
            hlines: Vec::new(),
            log_y: false,
        });
    }
    out
}

/// A key as a file-name part.
pub(crate) fn chart_stem(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// `sweep.csv`: one row per point.
pub fn csv(s: &Sweep) -> String {
    let mut out = String::from("point");
    for g in &s.grid {
        out.push(',');
        out.push_str(&csv_field(&g.key));
    }
    out.push_str(",runs,runs_passed,pass,p50_ms,p99_ms,p999_ms,mean_ms,queue_wait_p99_ms,backlog_peak,throughput_per_s,cost_usd,cost_per_million_usd,instances_peak,lost,dead_lettered\n");
    for r in &s.rows {
        let _ = write!(out, "{}", r.point);
        for g in &s.grid {
            let _ = write!(out, ",{}", csv_field(&r.values[&g.key]));
        }
        let _ = writeln!(
            out,
            ",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.runs,
            r.runs_passed,
            r.pass,
            r.end_to_end.p50_ms,
            r.end_to_end.p99_ms,
            r.end_to_end.p999_ms,
            r.end_to_end.mean_ms,
            r.queue_wait_p99_ms,
            r.backlog_peak,
            r.throughput_per_s,
            r.cost_usd,
            r.cost_per_million_usd.map_or(String::new(), |c| c.to_string()),
            r.instances_peak,
            r.lost,
            r.dead_lettered
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn usd(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("${}", float(v, 4)))
}

/// `sweep.md`.
pub fn markdown(s: &Sweep) -> String {
    let mut out = format!("### sluice sweep: {}\n\n", s.scenario);
    let _ = writeln!(
        out,
        "{} points × {} seeds ({}).",
        s.rows.len(),
        s.seeds.len(),
        s.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    );
    if let Some(i) = s.cheapest_passing {
        let r = &s.rows[i];
        let _ = writeln!(
            out,
            "\n**Cheapest point that meets every `[expect]`**: {} (p99 {}, ${} per run).",
            values_text(r),
            ms(r.end_to_end.p99_ms),
            float(r.cost_usd, 4)
        );
    } else {
        out.push_str("\n**No point meets every `[expect]` in every run.**\n");
    }
    for k in &s.knees {
        let fixed = k.fixed.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let at = if fixed.is_empty() { String::new() } else { format!(" (at {fixed})") };
        let _ = writeln!(
            out,
            "- knee of `{}`{at}: {} (p99 {}): {}",
            k.key,
            k.value,
            ms(k.p99_ms),
            knee_note(k)
        );
    }
    out.push_str("\n| point |");
    for g in &s.grid {
        let _ = write!(out, " {} |", g.key);
    }
    out.push_str(" passed | p50 | p99 | queue wait p99 | backlog peak | cost per run | cost per million |\n|---:|");
    out.push_str(&"---|".repeat(s.grid.len()));
    out.push_str("---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &s.rows {
        let _ = write!(out, "| {} |", r.point);
        for g in &s.grid {
            let _ = write!(out, " {} |", r.values[&g.key]);
        }
        let mark = if r.pass { "✅" } else { "❌" };
        let _ = writeln!(
            out,
            " {mark} {}/{} | {} | {} | {} | {} | ${} | {} |",
            r.runs_passed,
            r.runs,
            ms(r.end_to_end.p50_ms),
            ms(r.end_to_end.p99_ms),
            ms(r.queue_wait_p99_ms),
            count(r.backlog_peak),
            float(r.cost_usd, 4),
            usd(r.cost_per_million_usd)
        );
    }
    out
}

fn knee_note(k: &Knee) -> &'static str {
    if k.at_end {
        "the largest value tried, and p99 was still improving: try larger values"
    } else {
        "beyond it p99 improves by under a tenth of the whole gain (log scale)"
    }
}

fn values_text(r: &Row) -> String {
    r.values.iter().map(|(k, v)| format!("`{k}={v}`")).collect::<Vec<_>>().join(", ")
}

/// `sweep.html` (charts inline).
pub fn html_page(s: &Sweep, svgs: &[String]) -> String {
    let mut out = html::open(&format!("sluice sweep: {}", s.scenario));
    let keys = s.grid.iter().map(|g| g.key.as_str()).collect::<Vec<_>>().join(" × ");
    let _ = writeln!(
        out,
        "<header>\n<h1>Sweep: {}</h1>\n<p class=\"sub\">{} over {} points, {} seed(s) each</p>\n</header>",
        esc(&s.scenario),
        esc(&keys),
        s.rows.len(),
        s.seeds.len()
    );
    out.push_str("<div class=\"cards\">\n");
    let passing = s.rows.iter().filter(|r| r.pass).count();
    out.push_str(&html::card("points", &s.rows.len().to_string(), false));
    out.push_str(&html::card(
        "points passing",
        &format!("{passing}/{}", s.rows.len()),
        passing == 0,
    ));
    match s.cheapest_passing.map(|i| &s.rows[i]) {
        Some(r) => {
            let v = r
                .values
                .iter()
                .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
                .collect::<Vec<_>>()
                .join(" ");
            out.push_str(&html::card("cheapest passing", &v, false));
            out.push_str(&html::card("its p99", &ms(r.end_to_end.p99_ms), false));
        }
        None => out.push_str(&html::card("cheapest passing", "none", true)),
    }
    out.push_str("</div>\n");
    if !s.knees.is_empty() {
        out.push_str("<section>\n<h2>Knees</h2>\n<ul>\n");
        for k in &s.knees {
            let fixed =
                k.fixed.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            let at = if fixed.is_empty() { String::new() } else { format!(" at {}", esc(&fixed)) };
            let _ = writeln!(
                out,
                "<li><code>{}</code>{at}: <b>{}</b> (p99 {}): {}</li>",
                esc(&k.key),
                esc(&k.value),
                esc(&ms(k.p99_ms)),
                esc(knee_note(k))
            );
        }
        out.push_str("</ul>\n</section>\n");
    }
    out.push_str("<section>\n<h2>Charts</h2>\n");
    for svg in svgs {
        out.push_str(&html::figure(svg));
    }
    out.push_str(
        "</section>\n<section>\n<h2>Points</h2>\n<table class=\"nowrap\">\n<tr><th>#</th>",
    );
    for g in &s.grid {
        let _ = write!(out, "<th class=\"l\">{}</th>", esc(&g.key));
    }
    out.push_str("<th>passed</th><th>p50</th><th>p99</th><th>queue wait p99</th><th>backlog peak</th><th>cost per run</th><th>per million</th></tr>\n");
    for r in &s.rows {
        let class = if r.pass { "" } else { " class=\"bad\"" };
        let _ = write!(out, "<tr{class}><td>{}</td>", r.point);
        for g in &s.grid {
            let _ = write!(out, "<td class=\"l\">{}</td>", esc(&r.values[&g.key]));
        }
        let _ = writeln!(
            out,
            "<td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>${}</td><td>{}</td></tr>",
            r.runs_passed,
            r.runs,
            esc(&ms(r.end_to_end.p50_ms)),
            esc(&ms(r.end_to_end.p99_ms)),
            esc(&ms(r.queue_wait_p99_ms)),
            count(r.backlog_peak),
            float(r.cost_usd, 4),
            esc(&usd(r.cost_per_million_usd))
        );
    }
    out.push_str("</table>\n</section>\n");
    let failing: Vec<&Row> = s.rows.iter().filter(|r| !r.pass).collect();
    if !failing.is_empty() {
        out.push_str("<section>\n<h2>Failed conditions</h2>\n<table>\n<tr><th>#</th><th class=\"l\">condition</th><th>runs</th></tr>\n");
        for r in failing {
            for (cond, n) in &r.failed {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td class=\"l\"><code>{}</code></td><td>{n}/{}</td></tr>",
                    r.point,
                    esc(cond),
                    r.runs
                );
            }
        }
        out.push_str("</table>\n</section>\n");
    }
    let _ = writeln!(
        out,
        "<section>\n<h2>Replay a point</h2>\n<div class=\"cmd\">{}</div>\n</section>",
        esc(&s.rows.first().map(|r| r.replay.clone()).unwrap_or_default())
    );
    out.push_str(&html::close(&format!("sluice sweep · schema {}", s.schema)));
    out
}

/// Writes `sweep.json`, `sweep.csv` (always), `sweep.md`, `sweep.html` and
/// `charts/sweep-*.svg|png` as `formats` asks; returns the files written.
pub fn write(dir: &Path, s: &Sweep, formats: &Formats) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    create_dir(dir)?;
    let mut json = serde_json::to_vec_pretty(s).expect("a sweep always serializes");
    json.push(b'\n');
    write_file(&dir.join("sweep.json"), &json, &mut written)?;
    write_file(&dir.join("sweep.csv"), csv(s).as_bytes(), &mut written)?;
    let charts = if formats.html || formats.svg || formats.png { charts(s) } else { Vec::new() };
    let svgs = write_xy_charts(dir, &charts, formats, &mut written)?;
    if formats.md {
        write_file(&dir.join("sweep.md"), markdown(s).as_bytes(), &mut written)?;
    }
    if formats.html {
        write_file(&dir.join("sweep.html"), html_page(s, &svgs).as_bytes(), &mut written)?;
    }
    Ok(written)
}

/// Renders `charts` (SVG when needed for the page or asked for), writes `charts/ID.svg|png`
/// as asked, and returns the SVGs.
pub(crate) fn write_xy_charts(
    dir: &Path,
    charts: &[XyChart],
    formats: &Formats,
    written: &mut Vec<PathBuf>,
) -> Result<Vec<String>, ReportError> {
    let svgs = if formats.html || formats.svg {
        charts.iter().map(xy::svg).collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    if formats.svg || formats.png {
        let chart_dir = dir.join("charts");
        create_dir(&chart_dir)?;
        for (i, c) in charts.iter().enumerate() {
            if formats.svg {
                write_file(&chart_dir.join(format!("{}.svg", c.id)), svgs[i].as_bytes(), written)?;
            }
            if formats.png {
                write_file(&chart_dir.join(format!("{}.png", c.id)), &xy::png(c)?, written)?;
            }
        }
    }
    Ok(svgs)
}

/// Writes a point as `DIR/points/NNNNN.json`.
pub fn write_point(dir: &Path, p: &Point) -> Result<PathBuf, ReportError> {
    let points = dir.join("points");
    create_dir(&points)?;
    let path = points.join(format!("{:05}.json", p.index));
    let mut json = serde_json::to_vec_pretty(p).expect("a point always serializes");
    json.push(b'\n');
    let mut written = Vec::new();
    write_file(&path, &json, &mut written)?;
    Ok(path)
}

/// Reads every `DIR/points/*.json`.
pub fn read_points(dir: &Path) -> Result<Vec<Point>, ReportError> {
    let points = dir.join("points");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&points)
        .map_err(|e| ReportError::io("read", &points, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    entries
        .iter()
        .map(|p| {
            let text = std::fs::read(p).map_err(|e| ReportError::io("read", p, e))?;
            serde_json::from_slice(&text)
                .map_err(|e| ReportError::Sweep(format!("{}: {e}", p.display())))
        })
        .collect()
}

/// Writes the plan as `DIR/sweep-plan.json`.
pub fn write_plan(dir: &Path, plan: &Plan) -> Result<PathBuf, ReportError> {
    create_dir(dir)?;
    let path = dir.join("sweep-plan.json");
    let mut json = serde_json::to_vec_pretty(plan).expect("a plan always serializes");
    json.push(b'\n');
    let mut written = Vec::new();
    write_file(&path, &json, &mut written)?;
    Ok(path)
}

/// Reads `DIR/sweep-plan.json`.
pub fn read_plan(dir: &Path) -> Result<Plan, ReportError> {
    let path = dir.join("sweep-plan.json");
    let text = std::fs::read(&path).map_err(|e| ReportError::io("read", &path, e))?;
    serde_json::from_slice(&text)
        .map_err(|e| ReportError::Sweep(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knee_is_where_more_stops_helping() {
        assert_eq!(knee(&[1000.0, 300.0, 120.0, 110.0, 108.0]), Some(2));
        assert_eq!(knee(&[544_000.0, 166_000.0, 122_000.0, 44_700.0, 960.0, 950.0]), Some(4));
        assert_eq!(knee(&[100.0, 100.0, 100.0]), None);
        assert_eq!(knee(&[500.0, 100.0]), Some(1));
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn grid_points_in_order() {
        let plan = Plan {
            schema: SCHEMA,
            scenario: "s".into(),
            scenario_path: "s.toml".into(),
            sets: vec![],
            grid: vec![
                GridKey { key: "a".into(), values: vec!["1".into(), "2".into()] },
                GridKey { key: "b".into(), values: vec!["x".into(), "y".into(), "z".into()] },
            ],
            seeds: vec![1],
        };
        assert_eq!(plan.len(), 6);
        assert_eq!(plan.values(0), vec!["1", "x"]);
        assert_eq!(plan.values(2), vec!["1", "z"]);
        assert_eq!(plan.values(3), vec!["2", "x"]);
        assert!(build(&plan, vec![]).is_err());
    }
}
