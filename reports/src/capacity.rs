//! Capacity searches: the cheapest setting that meets every `[expect]` condition.
//! `capacity.json`, `capacity.md`, `capacity.html` and charts (the cost curve with the
//! answer, and each condition's metric against its threshold).

use crate::charts::PALETTE;
use crate::error::ReportError;
use crate::expect;
use crate::html::{self, esc};
use crate::model::RunReport;
use crate::num::{float, round_dp};
use crate::rundir::{Formats, create_dir, write_file};
use crate::sweep::{chart_stem, write_xy_charts};
use crate::xy::{Mark, XyChart, XySeries};
use serde::{Deserialize, Serialize};
use sim::spec::{CmpOp, Expectation};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `capacity.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Always [`crate::SCHEMA`].
    pub schema: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file, as given.
    pub scenario_path: String,
    /// `--set` overrides applied to every setting.
    pub sets: Vec<String>,
    /// The varied keys and their ranges, in `--vary` order.
    pub vary: Vec<Range>,
    /// The summary path minimised among the settings that pass.
    pub minimize: String,
    /// `bisection` (one key whose conditions only get easier as it grows) or `grid`.
    pub search: String,
    /// The seeds every setting runs; a setting passes when every run passes.
    pub seeds: Vec<u64>,
    /// The cheapest passing setting, if any.
    pub answer: Option<Eval>,
    /// How far the answer is from each threshold.
    pub margin: Vec<Margin>,
    /// The settings next to the answer (one step down and up each key), as evaluated.
    pub neighbours: Vec<Eval>,
    /// Every setting evaluated, in key order.
    pub evaluated: Vec<Eval>,
}

/// A `--vary key=LO..HI`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// The scenario key.
    pub key: String,
    /// Lowest value tried.
    pub lo: i64,
    /// Highest value tried.
    pub hi: i64,
}

/// One setting, run over every seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Eval {
    /// The varied keys' values, in `--vary` order.
    pub values: Vec<i64>,
    /// Whether every run met every condition (and every invariant held).
    pub pass: bool,
    /// Runs made.
    pub runs: usize,
    /// Runs that passed.
    pub runs_passed: usize,
    /// Mean over runs of the minimised metric.
    pub objective: f64,
    /// Mean over runs of `cost.total_usd`.
    pub cost_usd: f64,
    /// Mean over runs of the end-to-end p99 \[ms\].
    pub p99_ms: f64,
    /// Each condition: its worst value over the runs.
    pub conditions: Vec<Condition>,
    /// Replays the setting's first run.
    pub replay: String,
}

/// A condition at one setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Summary path.
    pub metric: String,
    /// As written.
    pub condition: String,
    /// The threshold in the metric's unit.
    pub threshold: f64,
    /// The worst value over the runs (closest to failing, or failing most).
    pub worst: Option<f64>,
    /// Runs in which it held.
    pub runs_passed: usize,
}

/// The answer's distance from a threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Margin {
    /// Summary path.
    pub metric: String,
    /// As written.
    pub condition: String,
    /// The worst value over the answer's runs.
    pub worst: Option<f64>,
    /// Headroom as a share of the threshold (`(threshold - worst) / threshold` for `<`, the
    /// other way round for `>`); `null` for `==`/`!=` or a zero threshold.
    pub headroom: Option<f64>,
}

impl Eval {
    /// Evaluates one setting from its runs (`ok`: the run's invariants held).
    pub fn new(
        values: Vec<i64>,
        runs: &[(&RunReport, bool)],
        expect: &[Expectation],
        minimize: &str,
    ) -> Eval {
        let n = runs.len().max(1) as f64;
        let mean = |f: &dyn Fn(&RunReport) -> f64| {
            round_dp(runs.iter().map(|(r, _)| f(r)).sum::<f64>() / n, 6)
        };
        let conditions: Vec<Condition> = expect
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let results: Vec<_> =
                    runs.iter().filter_map(|(r, _)| r.summary.expectations.get(i)).collect();
                let actuals = results.iter().filter_map(|x| x.actual);
                let worst = match e.op {
                    CmpOp::Lt | CmpOp::Le => actuals.reduce(f64::max),
                    CmpOp::Gt | CmpOp::Ge => actuals.reduce(f64::min),
                    CmpOp::Eq | CmpOp::Ne => {
                        results.iter().find(|x| !x.pass).or(results.first()).and_then(|x| x.actual)
                    }
                };
                Condition {
                    metric: e.metric.clone(),
                    condition: e.condition.clone(),
                    threshold: e.threshold,
                    worst,
                    runs_passed: results.iter().filter(|x| x.pass).count(),
                }
            })
            .collect();
        let runs_passed = runs.iter().filter(|(r, ok)| *ok && r.passed()).count();
        Eval {
            values,
            pass: runs_passed == runs.len() && !runs.is_empty(),
            runs: runs.len(),
            runs_passed,
            objective: mean(&|r| {
                expect::lookup(&r.summary.to_value(), minimize).unwrap_or(f64::NAN)
            }),
            cost_usd: mean(&|r| r.summary.cost.total_usd),
            p99_ms: mean(&|r| r.summary.latency("end_to_end").p99_ms),
            conditions,
            replay: runs.first().map(|r| r.0.meta.command.clone()).unwrap_or_default(),
        }
    }

    /// The margin of each condition at this setting.
    pub fn margins(&self, expect: &[Expectation]) -> Vec<Margin> {
        self.conditions
            .iter()
            .zip(expect)
            .map(|(c, e)| Margin {
                metric: c.metric.clone(),
                condition: c.condition.clone(),
                worst: c.worst,
                headroom: c.worst.and_then(|w| {
                    let t = e.threshold;
                    if t == 0.0 {
                        return None;
                    }
                    match e.op {
                        CmpOp::Lt | CmpOp::Le => Some(round_dp((t - w) / t.abs(), 4)),
                        CmpOp::Gt | CmpOp::Ge => Some(round_dp((w - t) / t.abs(), 4)),
                        _ => None,
                    }
                }),
            })
            .collect()
    }
}

fn setting(c: &Capacity, values: &[i64]) -> String {
    c.vary.iter().zip(values).map(|(r, v)| format!("{}={v}", r.key)).collect::<Vec<_>>().join(" ")
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| float(v, 3))
}

fn headroom(h: Option<f64>) -> String {
    h.map_or_else(|| "–".into(), |h| format!("{}%", float(h * 100.0, 1)))
}

/// The charts: the minimised metric against the first key (hollow: fails a condition; the
/// answer circled), then each condition's worst value against its threshold.
pub fn charts(c: &Capacity) -> Vec<XyChart> {
    let Some(first) = c.vary.first() else {
        return Vec::new();
    };
    // One line per combination of the other keys.
    let mut lines: Vec<(Vec<i64>, Vec<&Eval>)> = Vec::new();
    for e in &c.evaluated {
        let rest = e.values[1..].to_vec();
        match lines.iter_mut().find(|l| l.0 == rest) {
            Some(l) => l.1.push(e),
            None => lines.push((rest, vec![e])),
        }
    }
    let label = |rest: &[i64]| {
        if rest.is_empty() {
            "evaluated settings".to_string()
        } else {
            c.vary[1..]
                .iter()
                .zip(rest)
                .map(|(r, v)| format!("{}={v}", r.key))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let series = |f: &dyn Fn(&Eval) -> Option<f64>| -> Vec<XySeries> {
        lines
            .iter()
            .enumerate()
            .map(|(i, (rest, evals))| {
                let mut pts: Vec<(f64, f64, bool)> = evals
                    .iter()
                    .map(|e| (e.values[0] as f64, f(e).unwrap_or(f64::NAN), e.pass))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                XySeries {
                    label: label(rest),
                    color: i % PALETTE.len(),
                    hollow: pts.iter().enumerate().filter(|p| !p.1.2).map(|p| p.0).collect(),
                    points: pts.iter().map(|p| (p.0, p.1)).collect(),
                }
            })
            .collect()
    };
    let mut out = Vec::new();
    let answer_mark = |y: f64| {
        c.answer.as_ref().map(|a| Mark {
            x: a.values[0] as f64,
            y,
            label: format!("cheapest passing: {}", setting(c, &a.values)),
            color: 4,
        })
    };
    out.push(XyChart {
        id: "capacity-cost".into(),
        title: format!("{} against {} (hollow: fails [expect])", c.minimize, first.key),
        x_label: first.key.clone(),
        x_names: Vec::new(),
        y_label: c.minimize.clone(),
        series: series(&|e| Some(e.objective)),
        marks: answer_mark(c.answer.as_ref().map_or(0.0, |a| a.objective)).into_iter().collect(),
        hlines: Vec::new(),
        log_y: false,
    });
    let n_conditions = c.evaluated.first().map_or(0, |e| e.conditions.len());
    for k in 0..n_conditions {
        let cond = &c.evaluated[0].conditions[k];
        let worst: Vec<f64> = c.evaluated.iter().filter_map(|e| e.conditions[k].worst).collect();
        if worst.windows(2).all(|w| w[0] == w[1]) {
            continue; // the same everywhere: nothing to see
        }
        // Far-off values (an overloaded setting's wait) would flatten the rest: draw them at
        // three times the threshold.
        let cap = (cond.threshold > 0.0 && worst.iter().any(|w| *w > 3.0 * cond.threshold))
            .then_some(3.0 * cond.threshold);
        let clip = |v: Option<f64>| v.map(|v| cap.map_or(v, |c| v.min(c)));
        let note = if cap.is_some() { "; higher values drawn at 3x the threshold" } else { "" };
        out.push(XyChart {
            id: format!("capacity-{}", chart_stem(&cond.metric)),
            title: format!("{} (worst of the runs{note})", cond.metric),
            x_label: first.key.clone(),
            x_names: Vec::new(),
            y_label: cond.metric.clone(),
            series: series(&|e| clip(e.conditions[k].worst)),
            marks: answer_mark(
                c.answer.as_ref().and_then(|a| a.conditions[k].worst).unwrap_or(0.0),
            )
            .into_iter()
            .collect(),
            hlines: vec![(cond.threshold, format!("{} {}", cond.metric, cond.condition))],
            log_y: false,
        });
    }
    out
}

/// `capacity.md`.
pub fn markdown(c: &Capacity) -> String {
    let mut out = format!("### sluice capacity: {}\n\n", c.scenario);
    let ranges =
        c.vary.iter().map(|r| format!("`{}` {}..{}", r.key, r.lo, r.hi)).collect::<Vec<_>>();
    let _ = writeln!(
        out,
        "Searched {} by {} ({} settings evaluated, {} seed(s) each), minimising `{}`.\n",
        ranges.join(", "),
        c.search,
        c.evaluated.len(),
        c.seeds.len(),
        c.minimize
    );
    match &c.answer {
        Some(a) => {
            let _ = writeln!(
                out,
                "**Answer: `{}`** ({} = {}, p99 {} ms).\n",
                setting(c, &a.values),
                c.minimize,
                float(a.objective, 6),
                float(a.p99_ms, 3)
            );
            out.push_str("| condition | worst of the runs | headroom |\n|---|---:|---:|\n");
            for m in &c.margin {
                let _ = writeln!(
                    out,
                    "| `{} {}` | {} | {} |",
                    m.metric,
                    m.condition,
                    num(m.worst),
                    headroom(m.headroom)
                );
            }
            let _ = writeln!(out, "\nReplay: `{}`", a.replay);
        }
        None => out.push_str("**No setting in the range meets every condition.**\n"),
    }
    out.push_str("\n| setting | passes | runs passed | ");
    let conds: Vec<String> = c
        .evaluated
        .first()
        .map(|e| e.conditions.iter().map(|x| format!("{} {}", x.metric, x.condition)).collect())
        .unwrap_or_default();
    for x in &conds {
        let _ = write!(out, "{x} | ");
    }
    let _ = writeln!(out, "{} |", c.minimize);
    out.push_str("|---|---|---:|");
    out.push_str(&"---:|".repeat(conds.len() + 1));
    out.push('\n');
    for e in &c.evaluated {
        let mark = if e.pass { "✅" } else { "❌" };
        let _ =
            write!(out, "| {} | {mark} | {}/{} | ", setting(c, &e.values), e.runs_passed, e.runs);
        for x in &e.conditions {
            let _ = write!(out, "{} | ", num(x.worst));
        }
        let _ = writeln!(out, "{} |", float(e.objective, 6));
    }
    out
}

/// `capacity.html` (charts inline).
pub fn html_page(c: &Capacity, svgs: &[String]) -> String {
    let mut out = html::open(&format!("sluice capacity: {}", c.scenario));
    let ranges = c.vary.iter().map(|r| format!("{} {}..{}", r.key, r.lo, r.hi)).collect::<Vec<_>>();
    let badge = if c.answer.is_some() {
        "<span class=\"badge pass\">found</span>"
    } else {
        "<span class=\"badge fail\">none in range</span>"
    };
    let _ = writeln!(
        out,
        "<header>\n<h1>Capacity: {}{badge}</h1>\n<p class=\"sub\">the cheapest setting of {} that meets every [expect] condition in every run; {} search, {} settings evaluated, {} seed(s) each, minimising <code>{}</code></p>\n</header>",
        esc(&c.scenario),
        esc(&ranges.join(", ")),
        esc(&c.search),
        c.evaluated.len(),
        c.seeds.len(),
        esc(&c.minimize)
    );
    out.push_str("<div class=\"cards\">\n");
    match &c.answer {
        Some(a) => {
            out.push_str(&html::card("answer", &setting(c, &a.values), false));
            let objective = if c.minimize.ends_with("_usd") {
                format!("${}", float(a.objective, 4))
            } else {
                float(a.objective, 4)
            };
            out.push_str(&html::card(&c.minimize, &objective, false));
            out.push_str(&html::card(
                "end-to-end p99",
                &format!("{} ms", float(a.p99_ms, 1)),
                false,
            ));
            let tightest = c.margin.iter().filter_map(|m| m.headroom).reduce(f64::min);
            out.push_str(&html::card("tightest headroom", &headroom(tightest), false));
        }
        None => out.push_str(&html::card("answer", "none in range", true)),
    }
    out.push_str("</div>\n");
    if let Some(a) = &c.answer {
        out.push_str("<section>\n<h2>Margin</h2>\n<table>\n<tr><th class=\"l\">condition</th><th>worst of the runs</th><th>headroom</th></tr>\n");
        for m in &c.margin {
            let _ = writeln!(
                out,
                "<tr><td class=\"l\"><code>{} {}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&m.metric),
                esc(&m.condition),
                esc(&num(m.worst)),
                esc(&headroom(m.headroom))
            );
        }
        out.push_str("</table>\n");
        let _ = writeln!(out, "<div class=\"cmd\">{}</div>\n</section>", esc(&a.replay));
        if !c.neighbours.is_empty() {
            out.push_str("<section>\n<h2>Neighbours</h2>\n<table>\n<tr><th class=\"l\">setting</th><th>passes</th><th>runs passed</th><th>");
            out.push_str(&esc(&c.minimize));
            out.push_str("</th></tr>\n");
            for e in &c.neighbours {
                let class = if e.pass { "ok" } else { "bad" };
                let _ = writeln!(
                    out,
                    "<tr class=\"{class}\"><td class=\"l\">{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
                    esc(&setting(c, &e.values)),
                    if e.pass { "yes" } else { "no" },
                    e.runs_passed,
                    e.runs,
                    float(e.objective, 6)
                );
            }
            out.push_str("</table>\n</section>\n");
        }
    }
    out.push_str("<section>\n<h2>Charts</h2>\n");
    for svg in svgs {
        out.push_str(&html::figure(svg));
    }
    out.push_str("</section>\n<section>\n<h2>Every setting evaluated</h2>\n<table>\n<tr><th class=\"l\">setting</th><th>passes</th>");
    if let Some(e) = c.evaluated.first() {
        for x in &e.conditions {
            let _ = write!(out, "<th>{} {}</th>", esc(&x.metric), esc(&x.condition));
        }
    }
    let _ = writeln!(out, "<th>{}</th></tr>", esc(&c.minimize));
    for e in &c.evaluated {
        let is_answer = c.answer.as_ref().is_some_and(|a| a.values == e.values);
        let class = if is_answer { " class=\"ok\"" } else { "" };
        let _ = write!(
            out,
            "<tr{class}><td class=\"l\">{}</td><td class=\"{}\">{}/{}</td>",
            esc(&setting(c, &e.values)),
            if e.pass { "ok-text" } else { "bad-text" },
            e.runs_passed,
            e.runs
        );
        for x in &e.conditions {
            let _ = write!(out, "<td>{}</td>", esc(&num(x.worst)));
        }
        let _ = writeln!(out, "<td>{}</td></tr>", float(e.objective, 6));
    }
    out.push_str("</table>\n</section>\n");
    out.push_str(&html::close(&format!("sluice capacity · schema {}", c.schema)));
    out
}

/// Writes `capacity.json` (always), `capacity.md`, `capacity.html` and
/// `charts/capacity-*.svg|png` as `formats` asks; returns the files written.
pub fn write(dir: &Path, c: &Capacity, formats: &Formats) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    create_dir(dir)?;
    let mut json = serde_json::to_vec_pretty(c).expect("a capacity search always serializes");
    json.push(b'\n');
    write_file(&dir.join("capacity.json"), &json, &mut written)?;
    let charts = if formats.html || formats.svg || formats.png { charts(c) } else { Vec::new() };
    let svgs = write_xy_charts(dir, &charts, formats, &mut written)?;
    if formats.md {
        write_file(&dir.join("capacity.md"), markdown(c).as_bytes(), &mut written)?;
    }
    if formats.html {
        write_file(&dir.join("capacity.html"), html_page(c, &svgs).as_bytes(), &mut written)?;
    }
    Ok(written)
}
