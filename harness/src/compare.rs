//! `sluice compare`: runs several designs (scenario files, `--vary` variants of one, or
//! finished run directories) and writes a side-by-side comparison.
//!
//! ```text
//! sluice compare scenarios/patterns/load-leveling.toml --vary consumer.instances=4,8
//! sluice compare a.toml b.toml --seed 7
//! sluice compare runs/load-leveling runs/load-leveling-8
//! ```
//!
//! Independent runs go in parallel (rayon); results are collected in input order, so the
//! comparison does not depend on the number of threads.

use crate::outcome::Outcome;
use crate::scenario;
use clap::Args;
use rayon::prelude::*;
use reports::{Formats, RunMeta, RunReport};
use std::path::{Path, PathBuf};

/// Options of `sluice compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Scenario files (TOML) or finished run directories (holding summary.json), in order;
    /// the first is the baseline.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Run one scenario once per value: `--vary consumer.instances=4,8` (the first value is
    /// the baseline). Repeatable: variants are the cross product, in order.
    #[arg(long = "vary", value_name = "KEY=V1,V2,...")]
    pub vary: Vec<String>,
    /// Override a key in every scenario run (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Override every scenario's seed (the default keeps each scenario's own seed, so
    /// variants of one scenario share it: a paired comparison).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (default: `runs/compare-<first scenario>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reports besides compare.json: any of html, md, png, svg, all or none.
    #[arg(long, default_value = "html,md,svg")]
    pub report: String,
}

/// One design to compare: a scenario with its overrides, or a finished run.
enum Design {
    Scenario { path: PathBuf, sets: Vec<String>, label: String },
    RunDir(PathBuf),
}

/// Runs `sluice compare`.
pub fn compare(args: &CompareArgs) -> Outcome {
    let formats: Formats = match args.report.parse() {
        Ok(f) => f,
        Err(e) => return Outcome::BadInput(format!("error: --report: {e}")),
    };
    let designs = match designs(args) {
        Ok(d) => d,
        Err(msg) => return Outcome::BadInput(msg),
    };
    if designs.len() < 2 {
        return Outcome::BadInput(
            "error: compare needs at least two designs: two or more scenario files or run \
             directories, or one scenario with --vary KEY=V1,V2"
                .into(),
        );
    }
    // Load every scenario first, so a bad file fails before anything runs.
    let mut loaded = Vec::new();
    for d in &designs {
        match load(d, args) {
            Ok(x) => loaded.push(x),
            Err(msg) => return Outcome::BadInput(msg),
        }
    }
    eprintln!("sluice compare: {} designs", loaded.len());
    let first = match &loaded[0] {
        Loaded::Run { scenario, .. } => scenario.name.clone(),
        Loaded::Done(_, report, _) => report.summary.scenario.clone(),
    };
    let out =
        args.out.clone().unwrap_or_else(|| Path::new("runs").join(format!("compare-{first}")));
    // Each design's sub-folder; a scenario run streams its timeseries.csv there as it runs,
    // unless two designs share a folder.
    let dirs: Vec<PathBuf> = loaded.iter().map(|l| out.join(slug(l.label()))).collect();
    let jobs: Vec<(Loaded, Option<PathBuf>)> = loaded
        .into_iter()
        .zip(&dirs)
        .map(|(l, d)| (l, (dirs.iter().filter(|e| *e == d).count() == 1).then(|| d.clone())))
        .collect();
    let reports: Vec<Option<Finished>> =
        jobs.into_par_iter().map(|(l, dir)| finish(l, dir.as_deref())).collect();
    let Some(finished) = reports.into_iter().collect::<Option<Vec<_>>>() else {
        return Outcome::Failed; // an invariant broke; `simulate` reported it
    };
    let mut written = Vec::new();
    let mut runs = Vec::new();
    for ((label, report, csv), dir) in finished.into_iter().zip(dirs) {
        if let Err(e) = write_design_dir(&dir, &report, &csv) {
            return Outcome::BadInput(format!("error: {e}"));
        }
        written.push(dir);
        runs.push((label, report));
    }
    match reports::compare::write(&out, &runs, &formats) {
        Ok(files) => {
            let c = reports::compare::build(&runs).expect("built once already");
            for line in reports::compare::headline(&c) {
                println!("{line}");
            }
            println!(
                "wrote {} files to {} (runs in {} sub-folders)",
                files.len(),
                out.display(),
                written.len()
            );
            Outcome::Ok
        }
        Err(e) => Outcome::BadInput(format!("error: {e}")),
    }
}

/// The designs named on the command line, in order.
fn designs(args: &CompareArgs) -> Result<Vec<Design>, String> {
    let variants = variants(&args.vary)?;
    let mut out = Vec::new();
    for input in &args.inputs {
        if input.is_dir() {
            if !args.vary.is_empty() {
                return Err(format!(
                    "error: --vary applies to scenario files, not to the run directory {}",
                    input.display()
                ));
            }
            out.push(Design::RunDir(input.clone()));
            continue;
        }
        for (label, sets) in &variants {
            let mut all = args.sets.clone();
            all.extend(sets.iter().cloned());
            out.push(Design::Scenario { path: input.clone(), sets: all, label: label.clone() });
        }
    }
    Ok(out)
}

/// The cross product of `--vary` values: (label suffix, `--set` strings).
fn variants(vary: &[String]) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out = vec![(String::new(), Vec::new())];
    for v in vary {
        let (key, values) = v.split_once('=').ok_or_else(|| {
            format!("error: --vary {v:?}: expected KEY=V1,V2,... (e.g. consumer.instances=4,8)")
        })?;
        let values: Vec<&str> =
            values.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if values.is_empty() {
            return Err(format!("error: --vary {v:?}: no values after `=`"));
        }
        out = out
            .into_iter()
            .flat_map(|(label, sets)| {
                values.iter().map(move |val| {
                    let mut sets = sets.clone();
                    sets.push(format!("{key}={val}"));
                    let sep = if label.is_empty() { "" } else { " " };
                    (format!("{label}{sep}{key}={val}"), sets)
                })
            })
            .collect();
    }
    Ok(out)
}

/// A design ready to run (or already run: its label, report and run directory).
enum Loaded {
    Run { scenario: sim::spec::Scenario, path: PathBuf, sets: Vec<String>, label: String },
    Done(String, RunReport, PathBuf),
}

impl Loaded {
    fn label(&self) -> &str {
        match self {
            Loaded::Run { label, .. } | Loaded::Done(label, ..) => label,
        }
    }
}

/// Where a design's full `timeseries.csv` comes from.
enum Csv {
    /// Streamed into its sub-folder while it ran.
    Streamed,
    /// The run directory it was read from.
    CopyFrom(PathBuf),
    /// Only the report's rows are at hand (two designs shared a sub-folder).
    FromReport,
}

/// A finished design: label, report, and where its CSV is.
type Finished = (String, RunReport, Csv);

/// Writes a design's sub-folder, keeping every row of its time series.
fn write_design_dir(dir: &Path, report: &RunReport, csv: &Csv) -> Result<(), String> {
    let data = Formats::data_only();
    match csv {
        Csv::FromReport => reports::write_run_dir(dir, report, &data).map(drop),
        Csv::Streamed => reports::write_run_dir_streamed(dir, report, &data).map(drop),
        Csv::CopyFrom(src) => {
            reports::write_run_dir_streamed(dir, report, &data).map_err(|e| e.to_string())?;
            let (from, to) = (src.join("timeseries.csv"), dir.join("timeseries.csv"));
            let same = matches!(
                (std::fs::canonicalize(&from), std::fs::canonicalize(&to)),
                (Ok(a), Ok(b)) if a == b
            );
            if !same {
                std::fs::copy(&from, &to)
                    .map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
            }
            Ok(())
        }
    }
    .map_err(|e| e.to_string())
}

fn load(d: &Design, args: &CompareArgs) -> Result<Loaded, String> {
    match d {
        Design::RunDir(dir) => {
            let report = reports::read_run_dir(dir).map_err(|e| format!("error: {e}"))?;
            let label = dir.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
            Ok(Loaded::Done(label, report, dir.clone()))
        }
        Design::Scenario { path, sets, label } => {
            let mut s = scenario::load(path, sets).map_err(|e| e.to_string())?;
            if let Some(seed) = args.seed {
                s.seed = seed;
            }
            crate::validate::check_expectations(path, &s)?;
            let label =
                if label.is_empty() { s.name.clone() } else { format!("{} [{label}]", s.name) };
            Ok(Loaded::Run { scenario: s, path: path.clone(), sets: sets.clone(), label })
        }
    }
}

/// Runs a loaded scenario (or passes a finished run through). With a `dir`, the run's
/// `timeseries.csv` is streamed into it.
fn finish(l: Loaded, dir: Option<&Path>) -> Option<Finished> {
    match l {
        Loaded::Done(label, report, from) => Some((label, report, Csv::CopyFrom(from))),
        Loaded::Run { scenario, path, sets, label } => {
            let replay = crate::run::replay(&path, scenario.seed, &sets);
            let stream = dir.and_then(|d| match crate::run::StreamedCsv::create(d) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("warning: {e}; its sub-folder keeps the downsampled series");
                    None
                }
            });
            let options =
                sim::RunOptions { series: stream.as_ref().map(|s| s.sink()), ..Default::default() };
            let run = crate::run::simulate(&scenario, options, &replay)?;
            let csv = match stream.map(|s| s.finish()) {
                Some(Ok(_)) => Csv::Streamed,
                Some(Err(e)) => {
                    eprintln!("error: cannot write the time series of {label}: {e}");
                    return None;
                }
                None => Csv::FromReport,
            };
            let meta = RunMeta {
                command: replay,
                scenario_path: path.display().to_string(),
                scenario_toml: scenario::to_toml(&scenario),
                git_commit: option_env!("SLUICE_GIT_COMMIT").map(str::to_string),
            };
            Some((label, RunReport::new(&scenario, &run.results, meta), csv))
        }
    }
}

/// A label as a folder name.
fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    s.trim_matches('_').to_string()
}
