//! `sluice capacity`: the cheapest setting that meets every `[expect]` condition.
//!
//! ```text
//! sluice capacity scenarios/capacity/mmc-wait.toml --vary consumer.instances=1..40
//! sluice capacity s.toml --vary consumer.instances=2..16 --vary consumer.concurrency=1..8:1
//! ```
//!
//! A setting passes when every run (one per seed) meets every condition and breaks no
//! invariant. With one varied key whose conditions only get easier as it grows (instances,
//! concurrency, scaling limits: more capacity never makes a latency or loss condition harder),
//! the search bisects: the smallest passing value in O(log n) settings. Otherwise
//! (`--search grid`, several keys, any other key) it evaluates every setting. The answer is the
//! passing setting with the lowest `--minimize` metric (mean over runs).

use crate::outcome::Outcome;
use crate::runner::{self, Case};
use clap::{Args, ValueEnum};
use reports::Formats;
use reports::capacity::{Capacity, Eval, Range};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `sluice capacity`.
#[derive(Args, Debug, Clone)]
pub struct CapacityArgs {
    /// The scenario file (TOML); its `[expect]` table states the SLOs.
    pub scenario: PathBuf,
    /// An integer key and its range: `--vary consumer.instances=1..40`, or with a step
    /// `--vary consumer.concurrency=4..64:4` (repeatable: a grid over every key).
    #[arg(long = "vary", value_name = "KEY=LO..HI[:STEP]", required = true)]
    pub vary: Vec<String>,
    /// The summary path to minimise among passing settings.
    #[arg(long, default_value = "cost.total_usd")]
    pub minimize: String,
    /// auto (bisection for one capacity key, else grid), bisection or grid.
    #[arg(long, value_enum, default_value = "auto")]
    pub search: Search,
    /// Run seeds 1..=N at every setting (default: the file's own seed).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Override a key at every setting (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Worker threads (default: one per core). Results never depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Output directory (default: `runs/capacity-<scenario name>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Reports besides capacity.json: any of html, md, png, svg, all or none.
    #[arg(long, default_value = "html,md,svg")]
    pub report: String,
}

/// How to search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Search {
    /// Bisection for one key known to make conditions easier as it grows; grid otherwise.
    Auto,
    /// Bisection on the first key (its conditions must only get easier as it grows).
    Bisection,
    /// Every setting.
    Grid,
}

/// Keys whose growth only adds capacity, so a passing value stays passing above it.
const MONOTONE_SUFFIXES: [&str; 5] =
    ["instances", "concurrency", "max_instances", "min_instances", "prewarmed"];

/// Whether `key` adds capacity as it grows (`consumer.instances`, `scaling.max_instances`,
/// `priority.pools.high.instances`, ...).
pub fn monotone(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    MONOTONE_SUFFIXES.contains(&last)
}

/// A parsed `--vary`.
struct Vary {
    key: String,
    values: Vec<i64>,
    lo: i64,
    hi: i64,
}

fn parse_vary(v: &str) -> Result<Vary, String> {
    let bad = |why: &str| {
        format!(
            "error: --vary {v:?}: {why} (expected KEY=LO..HI or KEY=LO..HI:STEP, e.g. consumer.instances=1..40)"
        )
    };
    let (key, range) = v.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let (range, step) = match range.split_once(':') {
        Some((r, s)) => (r, s.trim().parse::<i64>().map_err(|_| bad("STEP is not an integer"))?),
        None => (range, 1),
    };
    let (lo, hi) = range.split_once("..").ok_or_else(|| bad("no `..`"))?;
    let lo: i64 = lo.trim().parse().map_err(|_| bad("LO is not an integer"))?;
    let hi: i64 = hi.trim().parse().map_err(|_| bad("HI is not an integer"))?;
    if step < 1 {
        return Err(bad("STEP must be at least 1"));
    }
    if hi < lo {
        return Err(bad("HI is below LO"));
    }
    let values: Vec<i64> = (lo..=hi).step_by(step as usize).collect();
    if values.len() > 10_000 {
        return Err(bad("more than 10000 values: use a STEP"));
    }
    Ok(Vary { key: key.trim().to_string(), values, lo, hi })
}

/// Runs `sluice capacity`.
pub fn capacity(args: &CapacityArgs) -> Outcome {
    let formats: Formats = match args.report.parse() {
        Ok(f) => f,
        Err(e) => return Outcome::BadInput(format!("error: --report: {e}")),
    };
    let vary: Vec<Vary> = match args.vary.iter().map(|v| parse_vary(v)).collect() {
        Ok(v) => v,
        Err(msg) => return Outcome::BadInput(msg),
    };
    if args.seeds == Some(0) {
        return Outcome::BadInput("error: --seeds must be at least 1".into());
    }
    let base = match Case::load(&args.scenario, &args.sets, None) {
        Ok(c) => c,
        Err(msg) => return Outcome::BadInput(msg),
    };
    if base.scenario.expect.is_empty() {
        return Outcome::BadInput(format!(
            "error: {} has no [expect] table: capacity searches for the cheapest setting that \
             meets it\n  e.g. [expect] \"latency.end_to_end.p99_ms\" = \"< 2s\"",
            args.scenario.display()
        ));
    }
    if let Err(e) = check_minimize(&base, &args.minimize) {
        return Outcome::BadInput(e);
    }
    let bisect = match args.search {
        Search::Grid => false,
        Search::Bisection if vary.len() != 1 => {
            return Outcome::BadInput("error: --search bisection takes one --vary key".into());
        }
        Search::Bisection => true,
        Search::Auto => vary.len() == 1 && monotone(&vary[0].key),
    };
    let seeds: Vec<u64> = match args.seeds {
        Some(n) => (1..=n).collect(),
        None => vec![base.scenario.seed],
    };
    let mut search = Searcher {
        args,
        vary: &vary,
        seeds: &seeds,
        expect: base.scenario.expect.clone(),
        done: BTreeMap::new(),
        failure: None,
    };
    let result = if bisect { search.bisection() } else { search.grid() };
    if let Err(msg) = result {
        return Outcome::BadInput(msg);
    }
    if let Some(msg) = search.failure {
        eprintln!("{msg}");
        return Outcome::Failed;
    }
    let evaluated: Vec<Eval> = search.done.values().cloned().collect();
    let answer = evaluated
        .iter()
        .filter(|e| e.pass)
        .min_by(|a, b| a.objective.total_cmp(&b.objective).then(a.values.cmp(&b.values)))
        .cloned();
    let neighbours = answer
        .as_ref()
        .map(|a| {
            let mut out = Vec::new();
            for k in 0..vary.len() {
                let pos = vary[k].values.iter().position(|v| *v == a.values[k]).unwrap_or(0);
                for p in [pos.checked_sub(1), Some(pos + 1)].into_iter().flatten() {
                    if let Some(v) = vary[k].values.get(p) {
                        let mut vals = a.values.clone();
                        vals[k] = *v;
                        if let Some(e) = search.done.get(&vals) {
                            out.push(e.clone());
                        }
                    }
                }
            }
            out
        })
        .unwrap_or_default();
    let report = Capacity {
        schema: reports::SCHEMA,
        scenario: base.scenario.name.clone(),
        scenario_path: args.scenario.display().to_string(),
        sets: args.sets.clone(),
        vary: vary.iter().map(|v| Range { key: v.key.clone(), lo: v.lo, hi: v.hi }).collect(),
        minimize: args.minimize.clone(),
        search: if bisect { "bisection" } else { "grid" }.into(),
        seeds,
        margin: answer.as_ref().map(|a| a.margins(&base.scenario.expect)).unwrap_or_default(),
        answer,
        neighbours,
        evaluated,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(format!("capacity-{}", report.scenario)));
    let files = match reports::capacity::write(&out, &report, &formats) {
        Ok(f) => f,
        Err(e) => return Outcome::BadInput(format!("error: {e}")),
    };
    let setting = |vals: &[i64]| {
        vary.iter().zip(vals).map(|(v, x)| format!("{}={x}", v.key)).collect::<Vec<_>>().join(" ")
    };
    match &report.answer {
        Some(a) => {
            println!(
                "cheapest setting meeting every [expect]: {} ({} = {}; {} settings evaluated by {})",
                setting(&a.values),
                report.minimize,
                a.objective,
                report.evaluated.len(),
                report.search
            );
            for m in &report.margin {
                let h = m.headroom.map_or("n/a".into(), |h| format!("{:.1}%", h * 100.0));
                let w = m.worst.map_or("n/a".into(), |w| w.to_string());
                println!("  {} {}: worst {w}, headroom {h}", m.metric, m.condition);
            }
        }
        None => println!(
            "no setting in the range meets every [expect] ({} settings evaluated)",
            report.evaluated.len()
        ),
    }
    println!("wrote {} files to {}", files.len(), out.display());
    if report.answer.is_some() { Outcome::Ok } else { Outcome::Failed }
}

fn check_minimize(base: &Case, path: &str) -> Result<(), String> {
    let empty = sim::spec::Scenario {
        duration: 0,
        drain: Some(0),
        faults: Vec::new(),
        ..base.scenario.clone()
    };
    let results = sim::run(&empty, sim::RunOptions::default(), &mut |_| {}).results;
    let summary = reports::Summary::new(&empty, &results).to_value();
    reports::expect::check_metric(&summary, path).map_err(|e| {
        format!("error: --minimize: {e}\n  expected a numeric field of summary.json, e.g. cost.total_usd")
    })
}

/// Evaluates settings, remembering each.
struct Searcher<'a> {
    args: &'a CapacityArgs,
    vary: &'a [Vary],
    seeds: &'a [u64],
    expect: Vec<sim::spec::Expectation>,
    done: BTreeMap<Vec<i64>, Eval>,
    failure: Option<String>,
}

impl Searcher<'_> {
    /// Runs every setting not yet evaluated, all seeds, in parallel.
    fn evaluate(&mut self, settings: &[Vec<i64>]) -> Result<(), String> {
        let todo: Vec<&Vec<i64>> =
            settings.iter().filter(|s| !self.done.contains_key(*s)).collect();
        let mut cases = Vec::new();
        for s in &todo {
            let mut sets = self.args.sets.clone();
            sets.extend(self.vary.iter().zip(s.iter()).map(|(v, x)| format!("{}={x}", v.key)));
            for &seed in self.seeds {
                cases.push(Case::load(&self.args.scenario, &sets, Some(seed))?);
            }
        }
        let options =
            runner::Options { jobs: runner::jobs(self.args.jobs), checks: true, progress: false };
        let results = runner::run_all(&cases, options, |_, mut r| {
            if let Some(report) = r.report.as_mut() {
                report.timeseries = Vec::new();
            }
            r
        });
        let n = self.seeds.len();
        for (k, s) in todo.into_iter().enumerate() {
            let mut runs = Vec::new();
            for (r, c) in results[k * n..(k + 1) * n].iter().zip(&cases[k * n..(k + 1) * n]) {
                match &r.report {
                    Some(rep) => runs.push((rep, r.violations.is_empty())),
                    None => {
                        self.failure.get_or_insert(format!(
                            "error: invariant broken (a bug in sluice): {}\n  replay: {}",
                            r.panic.as_deref().unwrap_or("?"),
                            c.replay()
                        ));
                    }
                }
            }
            let e = Eval::new(s.clone(), &runs, &self.expect, &self.args.minimize);
            eprintln!(
                "  {}: {}",
                self.vary
                    .iter()
                    .zip(s)
                    .map(|(v, x)| format!("{}={x}", v.key))
                    .collect::<Vec<_>>()
                    .join(" "),
                if e.pass { "passes" } else { "fails" }
            );
            self.done.insert(s.clone(), e);
        }
        Ok(())
    }

    fn pass(&self, s: &[i64]) -> bool {
        self.done.get(s).is_some_and(|e| e.pass)
    }

    /// The smallest passing value of the one key, then its neighbours.
    fn bisection(&mut self) -> Result<(), String> {
        let values = &self.vary[0].values;
        let (first, last) = (0, values.len() - 1);
        self.evaluate(&[vec![values[first]], vec![values[last]]])?;
        if !self.pass(&[values[last]]) || self.pass(&[values[first]]) {
            if self.pass(&[values[first]]) && values.len() > 1 {
                self.evaluate(&[vec![values[1]]])?;
            }
            return Ok(());
        }
        // Invariant: values[lo] fails, values[hi] passes.
        let (mut lo, mut hi) = (first, last);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            self.evaluate(&[vec![values[mid]]])?;
            if self.pass(&[values[mid]]) { hi = mid } else { lo = mid }
        }
        if let Some(v) = values.get(hi + 1) {
            self.evaluate(&[vec![*v]])?;
        }
        Ok(())
    }

    /// Every setting.
    fn grid(&mut self) -> Result<(), String> {
        let mut settings: Vec<Vec<i64>> = vec![Vec::new()];
        for v in self.vary {
            settings = settings
                .into_iter()
                .flat_map(|s| {
                    v.values.iter().map(move |x| {
                        let mut s = s.clone();
                        s.push(*x);
                        s
                    })
                })
                .collect();
        }
        if settings.len() > 2_000 {
            return Err(format!(
                "error: the grid has {} settings: narrow the ranges or add a STEP",
                settings.len()
            ));
        }
        self.evaluate(&settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_keys_are_monotone() {
        assert!(monotone("consumer.instances"));
        assert!(monotone("scaling.max_instances"));
        assert!(monotone("priority.pools.high.instances"));
        assert!(!monotone("consumer.batch_size"));
        assert!(!monotone("queue.visibility_timeout"));
    }

    #[test]
    fn ranges_parse() {
        let v = parse_vary("consumer.instances=2..10:4").unwrap();
        assert_eq!(
            (v.key.as_str(), v.values, v.lo, v.hi),
            ("consumer.instances", vec![2, 6, 10], 2, 10)
        );
        for bad in ["x", "x=1", "x=5..1", "x=1..5:0", "x=a..b"] {
            assert!(parse_vary(bad).is_err(), "{bad}");
        }
    }
}
