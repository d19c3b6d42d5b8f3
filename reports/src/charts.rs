//! Charts as data: what each chart shows, built from [`RunReport`]s before any pixel is drawn.
//!
//! Keeping the plotted series as plain numbers lets tests check that a chart shows exactly what
//! `timeseries.csv` and `summary.json` say, and lets the SVG/PNG renderers stay small.
//! [`svg()`] and [`png()`] draw a chart with plotters (fonts: DejaVu Sans, embedded).

use crate::error::ReportError;
use crate::model::{FaultWindow, RunReport, TimeseriesRow};

/// A chart: series over an x axis, with shaded windows (faults) on time charts.
#[derive(Clone, Debug)]
pub struct Chart {
    /// File stem: `latency-spectrum`, `backlog`, ...
    pub id: String,
    /// Caption.
    pub title: String,
    /// The x axis.
    pub x: XAxis,
    /// What the y axis measures, with its unit.
    pub y_label: String,
    /// The lines, drawn in order.
    pub series: Vec<Series>,
    /// Shaded x windows with a label (fault windows).
    pub shades: Vec<Shade>,
    /// Logarithmic y axis (latency spectra spanning more than two decades).
    pub log_y: bool,
}

/// An x axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum XAxis {
    /// Simulated time in seconds, `[0, end_s]` (labelled in s, min or h).
    Time {
        /// The right edge \[s\].
        end_s: f64,
    },
    /// HdrHistogram's percentile axis: x = log10(1 / (1 - q)), so 1 = 90%, 2 = 99%,
    /// 3 = 99.9%; `[0, max]`.
    Nines {
        /// The right edge, a whole number of nines.
        max: u32,
    },
}

/// One line. A NaN y breaks the line (no data in that interval).
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Index into [`PALETTE`].
    pub color: usize,
    /// `(x, y)` in the axis' units (seconds or nines; y in the chart's unit).
    pub points: Vec<(f64, f64)>,
}

/// A shaded x window.
#[derive(Clone, Debug, PartialEq)]
pub struct Shade {
    /// Start \[s\].
    pub from: f64,
    /// End \[s\].
    pub to: f64,
    /// Label drawn at the top of the window.
    pub label: String,
}

/// Line colours (Tableau 10), as `#rrggbb`; runs in a comparison take them in order.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const BLUE: usize = 0;
const ORANGE: usize = 1;
const RED: usize = 2;
const TEAL: usize = 3;
const GREEN: usize = 4;
const PURPLE: usize = 6;
const BROWN: usize = 8;
const GREY: usize = 9;

/// The histograms the spectrum shows first, in this order; others follow by name.
const SPECTRUM_ORDER: [&str; 3] = ["end_to_end", "queue_wait", "handler"];

/// The charts of one run, in report order: latency spectrum, latency over time, arrivals vs
/// completions, backlog and in-flight, failures, instances, accrued cost, and the web tier's
/// response time on WebJob plans.
pub fn run_charts(r: &RunReport) -> Vec<Chart> {
    let end_s = r.end_s();
    let shades = shades(&r.faults, end_s);
    let x = XAxis::Time { end_s };
    let rows = &r.timeseries;
    let time = |id: &str, title: &str, y: &str, series: Vec<Series>| Chart {
        id: id.into(),
        title: title.into(),
        x,
        y_label: y.into(),
        series,
        shades: shades.clone(),
        log_y: false,
    };
    let mut names: Vec<&String> = r.histograms.keys().collect();
    names.sort_by_key(|n| (SPECTRUM_ORDER.iter().position(|o| o == n).unwrap_or(9), *n));
    let colors = [BLUE, ORANGE, GREEN, PURPLE, TEAL, BROWN, GREY];
    let spectrum = names
        .iter()
        .filter(|n| !r.histograms[n.as_str()].0.is_empty())
        .enumerate()
        .map(|(i, n)| spectrum_series(n, colors[i % colors.len()], r, n))
        .collect();
    vec![
        spectrum_chart("latency-spectrum", "Latency by percentile", spectrum),
        time(
            "latency-over-time",
            "End-to-end latency of messages completed per interval",
            "latency (ms)",
            vec![
                latency_series("p50", BLUE, rows, |row| row.latency_p50_ms),
                latency_series("p99", RED, rows, |row| row.latency_p99_ms),
            ],
        ),
        time(
            "throughput",
            "Arrivals vs completions",
            "messages / s",
            vec![
                rate_series("arrivals", GREY, rows, |row| row.arrivals),
                rate_series("completed", GREEN, rows, |row| row.completed),
            ],
        ),
        time(
            "backlog",
            "Backlog and in progress",
            "messages",
            vec![
                count_series("backlog (waiting)", BLUE, rows, |row| row.backlog),
                count_series("in progress", ORANGE, rows, |row| row.in_progress),
            ],
        ),
        time("failures", "Failures", "messages per interval", failure_series(rows)),
        time(
            "instances",
            &format!("Consumer instances ({})", r.summary.hosting.plan),
            "instances",
            vec![count_series("instances", PURPLE, rows, |row| u64::from(row.instances))],
        ),
        time(
            "cost",
            &format!("Accrued cost ({} pricing)", r.summary.cost.pricing),
            "USD since the start",
            vec![Series {
                label: "cost".into(),
                color: BROWN,
                points: rows.iter().map(|row| (row.t_s, row.cost_usd)).collect(),
            }],
        ),
    ]
    .into_iter()
    .chain(state_charts(r, &time))
    .chain(r.summary.web.is_some().then(|| {
        time(
            "web-latency",
            "Web tier response time (shares the WebJob's CPU)",
            "latency (ms)",
            vec![Series {
                label: "web response time".into(),
                color: TEAL,
                points: rows.iter().map(|row| (row.t_s, row.web_latency_ms)).collect(),
            }],
        )
    }))
    .collect()
}

/// Makes a time chart: `(id, title, y label, series)`.
type TimeChart<'a> = dyn Fn(&str, &str, &str, Vec<Series>) -> Chart + 'a;

/// The pattern's state over time, from its gauge columns: one chart per kind of gauge.
/// Columns named alike except for their middle (`fan_out.billing.pending`,
/// `fan_out.audit.pending`) share a chart, one line each.
fn state_charts(r: &RunReport, time: &TimeChart<'_>) -> Vec<Chart> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, column) in r.state_columns.iter().enumerate() {
        let key = state_group(column);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    let colors = [BLUE, ORANGE, GREEN, RED, PURPLE, TEAL, BROWN, GREY];
    groups
        .into_iter()
        .map(|(key, members)| {
            let series = members
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let column = &r.state_columns[i];
                    let label = if members.len() == 1 { column.clone() } else { middle(column) };
                    let points = r
                        .timeseries
                        .iter()
                        .map(|row| (row.t_s, row.state.get(i).copied().unwrap_or(f64::NAN)))
                        .collect();
                    Series { label, color: colors[k % colors.len()], points }
                })
                .collect();
            let parts: Vec<&str> = key.split(['.', '*']).filter(|p| !p.is_empty()).collect();
            let id = format!("state-{}", parts.join("-"));
            let title = format!("Pattern state: {key}");
            time(&id, &title, "level at each interval's end", series)
        })
        .collect()
}

/// `a.b.c` -> `a.*.c`; names with fewer than three parts stand for themselves.
fn state_group(column: &str) -> String {
    let parts: Vec<&str> = column.split('.').collect();
    if parts.len() < 3 {
        return column.to_string();
    }
    format!("{}.*.{}", parts[0], parts[parts.len() - 1])
}

/// The middle of `a.b.c` (`b`), the whole name otherwise.
fn middle(column: &str) -> String {
    let parts: Vec<&str> = column.split('.').collect();
    if parts.len() < 3 {
        return column.to_string();
    }
    parts[1..parts.len() - 1].join(".")
}

/// The overlaid charts of a comparison, one colour per run: end-to-end latency spectrum,
/// backlog, completions per second, p99 latency per interval.
pub fn compare_charts(runs: &[(String, RunReport)]) -> Vec<Chart> {
    let end_s = runs.iter().map(|(_, r)| r.end_s()).fold(0.0, f64::max);
    let mut faults: Vec<FaultWindow> = Vec::new();
    for (_, r) in runs {
        for f in &r.faults {
            if !faults.contains(f) {
                faults.push(f.clone());
            }
        }
    }
    let shades = shades(&faults, end_s);
    let x = XAxis::Time { end_s };
    let per_run = |f: &dyn Fn(usize, &str, &RunReport) -> Series| -> Vec<Series> {
        runs.iter().enumerate().map(|(i, (label, r))| f(i % PALETTE.len(), label, r)).collect()
    };
    let time = |id: &str, title: &str, y: &str, series: Vec<Series>| Chart {
        id: id.into(),
        title: title.into(),
        x,
        y_label: y.into(),
        series,
        shades: shades.clone(),
        log_y: false,
    };
    vec![
        spectrum_chart(
            "compare-spectrum",
            "End-to-end latency by percentile",
            per_run(&|c, label, r| spectrum_series(label, c, r, "end_to_end"))
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect(),
        ),
        time(
            "compare-backlog",
            "Backlog",
            "messages waiting",
            per_run(&|c, label, r| count_series(label, c, &r.timeseries, |row| row.backlog)),
        ),
        time(
            "compare-throughput",
            "Completions",
            "messages / s",
            per_run(&|c, label, r| rate_series(label, c, &r.timeseries, |row| row.completed)),
        ),
        time(
            "compare-latency-p99",
            "p99 end-to-end latency per interval",
            "latency (ms)",
            per_run(&|c, label, r| {
                latency_series(label, c, &r.timeseries, |row| row.latency_p99_ms)
            }),
        ),
    ]
}

fn spectrum_chart(id: &str, title: &str, series: Vec<Series>) -> Chart {
    let points = || series.iter().flat_map(|s| &s.points);
    let top = points().map(|p| p.0).fold(0.0, f64::max);
    let max = (top.ceil() as u32).clamp(2, 9);
    let y_hi = points().map(|p| p.1).fold(0.0, f64::max);
    let y_lo = points().map(|p| p.1).filter(|y| *y > 0.0).fold(f64::INFINITY, f64::min);
    let log_y = y_hi / y_lo > 100.0;
    Chart {
        id: id.into(),
        title: title.into(),
        x: XAxis::Nines { max },
        y_label: if log_y { "latency (log scale)" } else { "latency (ms)" }.into(),
        series,
        shades: Vec::new(),
        log_y,
    }
}

/// The percentile spectrum of histogram `name` (empty when missing): HdrHistogram's percentile
/// ticks below the maximum, at x = log10(1 / (1 - q)).
fn spectrum_series(label: &str, color: usize, r: &RunReport, name: &str) -> Series {
    let points = r
        .histograms
        .get(name)
        .map(|h| h.percentiles_ms())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.quantile < 1.0)
        .map(|p| (nines(p.quantile), p.value_ms))
        .collect();
    Series { label: label.into(), color, points }
}

/// x = log10(1 / (1 - q)).
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The axis label for `n` nines: 0%, 90%, 99%, 99.9%, ...
pub fn nines_label(n: f64) -> String {
    let k = n.round() as i32;
    match k {
        i32::MIN..=0 => "0%".into(),
        1 => "90%".into(),
        _ => format!("99.{}%", "9".repeat((k - 2) as usize)).replace("99.%", "99%"),
    }
}

fn count_series(
    label: &str,
    color: usize,
    rows: &[TimeseriesRow],
    f: impl Fn(&TimeseriesRow) -> u64,
) -> Series {
    let points = rows.iter().map(|row| (row.t_s, f(row) as f64)).collect();
    Series { label: label.into(), color, points }
}

/// Counts per interval divided by the interval's length (the last one may be shorter).
fn rate_series(
    label: &str,
    color: usize,
    rows: &[TimeseriesRow],
    f: impl Fn(&TimeseriesRow) -> u64,
) -> Series {
    let mut prev = 0.0;
    let points = rows
        .iter()
        .map(|row| {
            let len = row.t_s - prev;
            prev = row.t_s;
            (row.t_s, if len > 0.0 { f(row) as f64 / len } else { 0.0 })
        })
        .collect();
    Series { label: label.into(), color, points }
}

/// A latency per interval; NaN (a gap) where nothing completed.
fn latency_series(
    label: &str,
    color: usize,
    rows: &[TimeseriesRow],
    f: impl Fn(&TimeseriesRow) -> f64,
) -> Series {
    let points = rows
        .iter()
        .map(|row| (row.t_s, if row.completed == 0 { f64::NAN } else { f(row) }))
        .collect();
    Series { label: label.into(), color, points }
}

/// Failed executions and dead-letters, plus expiries and rejections when there are any.
fn failure_series(rows: &[TimeseriesRow]) -> Vec<Series> {
    let mut out = vec![
        count_series("failed executions", ORANGE, rows, |row| row.failed),
        count_series("dead-lettered", RED, rows, |row| row.dead_lettered),
    ];
    if rows.iter().any(|row| row.expired > 0) {
        out.push(count_series("expired", BROWN, rows, |row| row.expired));
    }
    if rows.iter().any(|row| row.rejected > 0) {
        out.push(count_series("rejected", PURPLE, rows, |row| row.rejected));
    }
    out
}

fn shades(faults: &[FaultWindow], end_s: f64) -> Vec<Shade> {
    faults
        .iter()
        .map(|f| Shade { from: f.from_s, to: f.end_or(end_s).max(f.from_s), label: f.label() })
        .collect()
}

/// Renders a chart as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, ReportError> {
    crate::plot::svg(chart)
}

/// Renders a chart as a PNG image.
pub fn png(chart: &Chart) -> Result<Vec<u8>, ReportError> {
    crate::plot::png(chart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(5.0), "99.999%");
    }

    #[test]
    fn rates_use_each_interval_length() {
        let rows = vec![
            TimeseriesRow { t_s: 10.0, completed: 50, ..Default::default() },
            TimeseriesRow { t_s: 15.0, completed: 50, ..Default::default() },
        ];
        let s = rate_series("c", 0, &rows, |r| r.completed);
        assert_eq!(s.points, vec![(10.0, 5.0), (15.0, 10.0)]);
    }
}
