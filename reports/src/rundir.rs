//! Writing a run directory, and reading one back.
//!
//! ```text
//! DIR/summary.json               headline numbers (always)
//! DIR/timeseries.csv             one row per interval (always; streamed by `sluice run`)
//! DIR/run.json                   replay command, description, interval, fault timeline (always)
//! DIR/scenario.toml              the resolved scenario parameters (always)
//! DIR/histograms/NAME.hlog       lossless latency histogram, HdrHistogram interval log (always)
//! DIR/histograms/NAME.hgrm       percentile distribution text, ms (always)
//! DIR/charts/ID.svg, ID.png      charts (Formats::svg, Formats::png)
//! DIR/report.md                  Markdown report (Formats::md)
//! DIR/report.html                self-contained HTML report (Formats::html)
//! ```

use crate::charts::{self, Chart};
use crate::error::ReportError;
use crate::hist;
use crate::model::{FaultWindow, RunMeta, RunReport, SCHEMA, Summary};
use crate::{html, markdown, timeseries};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Which optional outputs to write. `summary.json`, `timeseries.csv`, `run.json`,
/// `scenario.toml` and the histograms are always written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Formats {
    /// `report.html` (charts inline, whatever `svg` says).
    pub html: bool,
    /// `report.md`.
    pub md: bool,
    /// `charts/*.png`.
    pub png: bool,
    /// `charts/*.svg`.
    pub svg: bool,
}

impl Formats {
    /// Everything.
    pub fn all() -> Formats {
        Formats { html: true, md: true, png: true, svg: true }
    }

    /// Only the always-written data files (fast: no charts).
    pub fn data_only() -> Formats {
        Formats { html: false, md: false, png: false, svg: false }
    }
}

impl std::str::FromStr for Formats {
    type Err = String;

    /// A comma-separated list of `html`, `md`, `png`, `svg`, or `all` / `none`:
    /// `"html,md"`. Unknown names are an error that lists the valid ones.
    fn from_str(s: &str) -> Result<Formats, String> {
        let mut f = Formats::data_only();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "html" => f.html = true,
                "md" => f.md = true,
                "png" => f.png = true,
                "svg" => f.svg = true,
                "all" => f = Formats::all(),
                "none" => f = Formats::data_only(),
                other => {
                    return Err(format!(
                        "unknown report format `{other}` (expected html, md, png, svg, all or none)"
                    ));
                }
            }
        }
        Ok(f)
    }
}

impl Default for Formats {
    /// Everything.
    fn default() -> Formats {
        Formats::all()
    }
}

/// `run.json`: what a report needs beyond the summary and the time series.
#[derive(Serialize, Deserialize)]
struct RunFile {
    schema: u32,
    command: String,
    scenario_path: String,
    git_commit: Option<String>,
    description: String,
    interval_s: f64,
    faults: Vec<FaultWindow>,
}

pub(crate) fn write_file(
    path: &Path,
    bytes: &[u8],
    written: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    fs::write(path, bytes).map_err(|e| ReportError::io("write", path, e))?;
    written.push(path.to_path_buf());
    Ok(())
}

pub(crate) fn create_dir(path: &Path) -> Result<(), ReportError> {
    fs::create_dir_all(path).map_err(|e| ReportError::io("create", path, e))
}

/// A histogram name as a file stem: anything but letters, digits, `_`, `-` and `.` becomes `_`.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .collect()
}

/// Writes the run directory `dir` (created if needed) and returns the files written, in a fixed
/// order. Existing files of the same names are replaced.
///
/// `timeseries.csv` holds the report's rows: every interval of a run that had up to
/// [`sim::model::series::Series::DEFAULT_CAP`] of them, else the downsample. `sluice run`
/// streams the full file during the run instead and then calls [`write_run_dir_streamed`].
pub fn write_run_dir(
    dir: &Path,
    report: &RunReport,
    formats: &Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    write_dir(dir, report, formats, false)
}

/// [`write_run_dir`] for a run whose `timeseries.csv` was already written into `dir` while it
/// ran ([`timeseries::CsvStream`]): writes everything else, and lists the CSV among the files
/// written.
pub fn write_run_dir_streamed(
    dir: &Path,
    report: &RunReport,
    formats: &Formats,
) -> Result<Vec<PathBuf>, ReportError> {
    write_dir(dir, report, formats, true)
}

fn write_dir(
    dir: &Path,
    report: &RunReport,
    formats: &Formats,
    csv_streamed: bool,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    create_dir(dir)?;
    write_file(&dir.join("summary.json"), &report.summary.to_json(), &mut written)?;
    let csv_path = dir.join("timeseries.csv");
    if csv_streamed {
        written.push(csv_path);
    } else {
        let mut csv = Vec::new();
        timeseries::write_csv(&report.timeseries, &report.state_columns, &mut csv)
            .map_err(|source| ReportError::Csv { path: csv_path.clone(), source })?;
        write_file(&csv_path, &csv, &mut written)?;
    }
    let run = RunFile {
        schema: SCHEMA,
        command: report.meta.command.clone(),
        scenario_path: report.meta.scenario_path.clone(),
        git_commit: report.meta.git_commit.clone(),
        description: report.description.clone(),
        interval_s: report.interval_s,
        faults: report.faults.clone(),
    };
    let mut run_json = serde_json::to_vec_pretty(&run).expect("run.json always serializes");
    run_json.push(b'\n');
    write_file(&dir.join("run.json"), &run_json, &mut written)?;
    write_file(&dir.join("scenario.toml"), report.meta.scenario_toml.as_bytes(), &mut written)?;

    let hist_dir = dir.join("histograms");
    create_dir(&hist_dir)?;
    for (name, h) in &report.histograms {
        let stem = file_stem(name);
        let hlog = hist::to_hlog(name, h, report.summary.sim_time_s);
        write_file(&hist_dir.join(format!("{stem}.hlog")), hlog.as_bytes(), &mut written)?;
        write_file(
            &hist_dir.join(format!("{stem}.hgrm")),
            hist::to_hgrm(h).as_bytes(),
            &mut written,
        )?;
    }

    let need_charts = formats.png || formats.svg || formats.html;
    let charts = if need_charts { charts::run_charts(report) } else { Vec::new() };
    let svgs = if formats.svg || formats.html {
        charts.iter().map(charts::svg).collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    write_charts(dir, &charts, &svgs, formats, &mut written)?;
    if formats.md {
        write_file(&dir.join("report.md"), markdown::report(report).as_bytes(), &mut written)?;
    }
    if formats.html {
        let page = html::report_with(report, &charts, &svgs);
        write_file(&dir.join("report.html"), page.as_bytes(), &mut written)?;
    }
    Ok(written)
}

/// Writes `charts/ID.svg` (from `svgs`) and `charts/ID.png` as `formats` asks.
pub(crate) fn write_charts(
    dir: &Path,
    charts: &[Chart],
    svgs: &[String],
    formats: &Formats,
    written: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    if !(formats.svg || formats.png) {
        return Ok(());
    }
    let chart_dir = dir.join("charts");
    create_dir(&chart_dir)?;
    for (i, chart) in charts.iter().enumerate() {
        if formats.svg {
            write_file(&chart_dir.join(format!("{}.svg", chart.id)), svgs[i].as_bytes(), written)?;
        }
        if formats.png {
            write_file(
                &chart_dir.join(format!("{}.png", chart.id)),
                &charts::png(chart)?,
                written,
            )?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, ReportError> {
    fs::read(path).map_err(|e| ReportError::io("read", path, e))
}

/// Reads a run directory written by [`write_run_dir`] back into the report it was written from.
pub fn read_run_dir(dir: &Path) -> Result<RunReport, ReportError> {
    let path = dir.join("summary.json");
    let summary: Summary = serde_json::from_slice(&read(&path)?)
        .map_err(|source| ReportError::Json { path: path.clone(), source })?;
    let path = dir.join("timeseries.csv");
    let file = fs::File::open(&path).map_err(|e| ReportError::io("read", &path, e))?;
    let (timeseries, state_columns) = timeseries::read_csv(std::io::BufReader::new(file))
        .map_err(|source| ReportError::Csv { path: path.clone(), source })?;
    let path = dir.join("run.json");
    let run: RunFile = serde_json::from_slice(&read(&path)?)
        .map_err(|source| ReportError::Json { path: path.clone(), source })?;
    let path = dir.join("scenario.toml");
    let scenario_toml = String::from_utf8_lossy(&read(&path)?).into_owned();
    let mut histograms = BTreeMap::new();
    for name in summary.latency.keys() {
        let path = dir.join("histograms").join(format!("{}.hlog", file_stem(name)));
        let h = hist::from_hlog(&read(&path)?)
            .map_err(|message| ReportError::Histogram { path: path.clone(), message })?;
        histograms.insert(name.clone(), h);
    }
    Ok(RunReport {
        meta: RunMeta {
            command: run.command,
            scenario_path: run.scenario_path,
            scenario_toml,
            git_commit: run.git_commit,
        },
        description: run.description,
        interval_s: run.interval_s,
        summary,
        timeseries,
        state_columns,
        faults: run.faults,
        histograms,
    })
}
