//! `sluice sweep`: a grid of settings, several seeds per point.
//!
//! ```text
//! sluice sweep scenarios/patterns/competing-consumers.toml \
//!     --grid consumer.instances=2,4,8 --grid consumer.hosting=worker,functions-premium --seeds 3
//! sluice sweep ... --shard 1/2 --out runs/sweep-shard-1     # then: sluice merge
//! ```
//!
//! Every (point, seed) is one run on the shared runner; a point's runs are aggregated into a
//! `reports::sweep::Point` (histograms merged exactly) and written to `points/`, and the
//! sweep's files are built from the points. A shard runs the points whose index `i` has
//! `i % N == I - 1` and writes only its points and the plan; `sluice merge` builds the same
//! files from the shards as one unsharded run.

use crate::outcome::Outcome;
use crate::runner::{self, Case};
use clap::Args;
use reports::Formats;
use reports::sweep::{GridKey, Plan, Point};
use std::path::{Path, PathBuf};

/// Options of `sluice sweep`.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// A key and its values: `--grid consumer.instances=2,4,8` (repeatable: the grid is the
    /// cross product, the first key varying slowest). Commas inside parentheses or quotes do
    /// not split: `--grid 'consumer.work=uniform(1s, 3s),const(2s)'`.
    #[arg(long = "grid", value_name = "KEY=V1,V2,...", required = true)]
    pub grid: Vec<String>,
    /// Run seeds 1..=N at every point (default: the file's own seed).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Override a key at every point (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Worker threads (default: one per core). Results never depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run only the I-th of N disjoint slices of the points (1-based): `--shard 2/4`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Output directory (default: `runs/sweep-<scenario name>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reports besides sweep.json and sweep.csv: any of html, md, png, svg, all or none.
    #[arg(long, default_value = "html,md,svg")]
    pub report: String,
}

/// Runs `sluice sweep`.
pub fn sweep(args: &SweepArgs) -> Outcome {
    let formats: Formats = match args.report.parse() {
        Ok(f) => f,
        Err(e) => return Outcome::BadInput(format!("error: --report: {e}")),
    };
    let shard = match args.shard.as_deref().map(runner::parse_shard).transpose() {
        Ok(s) => s,
        Err(msg) => return Outcome::BadInput(msg),
    };
    let grid = match parse_grid(&args.grid) {
        Ok(g) => g,
        Err(msg) => return Outcome::BadInput(msg),
    };
    if args.seeds == Some(0) {
        return Outcome::BadInput("error: --seeds must be at least 1".into());
    }
    let base = match Case::load(&args.scenario, &args.sets, None) {
        Ok(c) => c,
        Err(msg) => return Outcome::BadInput(msg),
    };
    let seeds: Vec<u64> = match args.seeds {
        Some(n) => (1..=n).collect(),
        None => vec![base.scenario.seed],
    };
    let plan = Plan {
        schema: reports::SCHEMA,
        scenario: base.scenario.name.clone(),
        scenario_path: args.scenario.display().to_string(),
        sets: args.sets.clone(),
        grid,
        seeds,
    };
    let mine: Vec<usize> =
        (0..plan.len()).filter(|i| shard.is_none_or(|(k, n)| i % n == k - 1)).collect();
    // Load every case first, so a bad value fails before anything runs.
    let mut cases = Vec::new();
    for &i in &mine {
        let mut sets = args.sets.clone();
        sets.extend(plan.grid.iter().zip(plan.values(i)).map(|(g, v)| format!("{}={v}", g.key)));
        for &seed in &plan.seeds {
            match Case::load(&args.scenario, &sets, Some(seed)) {
                Ok(c) => cases.push(c),
                Err(msg) => return Outcome::BadInput(msg),
            }
        }
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(format!("sweep-{}", plan.scenario)));
    eprintln!(
        "sluice sweep: {} points x {} seeds = {} runs{}",
        mine.len(),
        plan.seeds.len(),
        cases.len(),
        shard
            .map(|(i, n)| format!(" (shard {i}/{n} of {} points)", plan.len()))
            .unwrap_or_default()
    );
    let options = runner::Options { jobs: runner::jobs(args.jobs), checks: true, progress: true };
    // Keep what a point needs: the summary and histograms, not the time series.
    let results = runner::run_all(&cases, options, |_, mut r| {
        if let Some(report) = r.report.as_mut() {
            report.timeseries = Vec::new();
        }
        r
    });
    let mut broken = Vec::new();
    let mut points = Vec::new();
    for (k, &i) in mine.iter().enumerate() {
        let chunk = &results[k * plan.seeds.len()..(k + 1) * plan.seeds.len()];
        let case_chunk = &cases[k * plan.seeds.len()..(k + 1) * plan.seeds.len()];
        let mut runs = Vec::new();
        for (r, c) in chunk.iter().zip(case_chunk) {
            match &r.report {
                Some(report) => runs.push((report, r.violations.is_empty())),
                None => broken.push(format!(
                    "error: invariant broken (a bug in sluice): {}\n  replay: {}",
                    r.panic.as_deref().unwrap_or("?"),
                    c.replay()
                )),
            }
        }
        points.push(Point::new(i, plan.values(i), &runs));
    }
    if !broken.is_empty() {
        for b in &broken {
            eprintln!("{b}");
        }
        return Outcome::Failed;
    }
    if let Err(e) = reports::sweep::write_plan(&out, &plan) {
        return Outcome::BadInput(format!("error: {e}"));
    }
    for p in &points {
        if let Err(e) = reports::sweep::write_point(&out, p) {
            return Outcome::BadInput(format!("error: {e}"));
        }
    }
    if let Some((i, n)) = shard {
        println!(
            "wrote shard {i}/{n} ({} points) to {}; combine the shards with `sluice merge`",
            points.len(),
            out.display()
        );
        return Outcome::Ok;
    }
    finish(&out, &plan, points, &formats)
}

/// Builds and writes the sweep's files from all its points, and prints its headline.
pub fn finish(out: &Path, plan: &Plan, points: Vec<Point>, formats: &Formats) -> Outcome {
    let sweep = match reports::sweep::build(plan, points) {
        Ok(s) => s,
        Err(e) => return Outcome::BadInput(format!("error: {e}")),
    };
    let files = match reports::sweep::write(out, &sweep, formats) {
        Ok(f) => f,
        Err(e) => return Outcome::BadInput(format!("error: {e}")),
    };
    let passing = sweep.rows.iter().filter(|r| r.pass).count();
    println!("{passing} of {} points meet every [expect] in every run", sweep.rows.len());
    if let Some(r) = sweep.cheapest_passing.map(|i| &sweep.rows[i]) {
        let values: Vec<String> = r.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "cheapest passing point: {} (p99 {} ms, ${} per run)",
            values.join(" "),
            r.end_to_end.p99_ms,
            r.cost_usd
        );
    }
    for k in &sweep.knees {
        let end = if k.at_end { " (the largest value tried: more may still help)" } else { "" };
        println!("knee of {}: {} (p99 {} ms){end}", k.key, k.value, k.p99_ms);
    }
    println!("wrote {} files to {}", files.len(), out.display());
    Outcome::Ok
}

/// `KEY=V1,V2,...` per `--grid`.
fn parse_grid(grid: &[String]) -> Result<Vec<GridKey>, String> {
    let mut out: Vec<GridKey> = Vec::new();
    for g in grid {
        let (key, values) = g.split_once('=').ok_or_else(|| {
            format!("error: --grid {g:?}: expected KEY=V1,V2,... (e.g. consumer.instances=2,4,8)")
        })?;
        let key = key.trim().to_string();
        let values = runner::split_values(values);
        if key.is_empty() || values.is_empty() {
            return Err(format!("error: --grid {g:?}: expected KEY=V1,V2,..."));
        }
        if out.iter().any(|o| o.key == key) {
            return Err(format!("error: --grid {key} is given twice"));
        }
        let mut seen = values.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != values.len() {
            return Err(format!("error: --grid {g:?}: a value is repeated"));
        }
        out.push(GridKey { key, values });
    }
    Ok(out)
}
