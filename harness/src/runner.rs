//! The shared runner of `check`, `sweep` and `capacity`: many (scenario, seed, overrides)
//! cases in parallel on a rayon pool, results collected in input order.
//!
//! Parallelism lives only across runs: each case is one single-threaded simulation, a pure
//! function of its scenario and seed, so the results (and every file written from them) are
//! the same whatever `--jobs` is. A progress bar counts finished cases on a terminal only.

use crate::scenario;
use rayon::prelude::*;
use reports::{RunMeta, RunReport};
use sim::RunOptions;
use sim::check::Violation;
use sim::spec::Scenario;
use std::io::IsTerminal;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// One run to make: a scenario file, its overrides and a seed, already loaded.
#[derive(Clone, Debug)]
pub struct Case {
    /// The scenario file, as given on the command line (for replay commands and reports).
    pub path: PathBuf,
    /// `--set` overrides applied when loading (replayed with the run).
    pub sets: Vec<String>,
    /// The resolved scenario, its seed set.
    pub scenario: Scenario,
}

impl Case {
    /// Loads `path` with `sets` and sets the seed (the file's own when `seed` is `None`).
    pub fn load(path: &Path, sets: &[String], seed: Option<u64>) -> Result<Case, String> {
        let mut s = scenario::load(path, sets).map_err(|e| e.to_string())?;
        if let Some(seed) = seed {
            s.seed = seed;
        }
        crate::validate::check_expectations(path, &s)?;
        Ok(Case { path: path.to_path_buf(), sets: sets.to_vec(), scenario: s })
    }

    /// `sluice run FILE --seed N --set ...`: the command that replays this case.
    pub fn replay(&self) -> String {
        crate::run::replay(&self.path, self.scenario.seed, &self.sets)
    }
}

/// What one case gave.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The report, unless the run panicked (a ledger assertion: a bug in sluice).
    pub report: Option<RunReport>,
    /// Guarantees the invariant checkers found broken.
    pub violations: Vec<Violation>,
    /// The panic message when the run panicked.
    pub panic: Option<String>,
    /// Wall-clock time the run took (for performance reports only: never part of a result).
    pub wall: std::time::Duration,
}

/// How to run a batch.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Worker threads (0: one per core).
    pub jobs: usize,
    /// Run the invariant checkers.
    pub checks: bool,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

/// Runs every case, in parallel, and returns the results in the order of `cases`.
///
/// `work` runs once per case on a worker thread and turns the case's [`CaseResult`] into what
/// the caller keeps (a summary line, a sweep row, ...), so big reports need not be held.
pub fn run_all<T: Send>(
    cases: &[Case],
    options: Options,
    work: impl Fn(&Case, CaseResult) -> T + Sync,
) -> Vec<T> {
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(options.jobs).build() {
        Ok(pool) => pool,
        Err(_) => rayon::ThreadPoolBuilder::new().build().expect("a default rayon pool"),
    };
    let bar = progress_bar(cases.len() as u64, options.progress);
    // Panics inside the simulator are caught and reported per case; keep the default hook
    // from printing them over the progress bar. The hook is process-wide, so it is swapped
    // once for the whole batch, not per case.
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let out = pool.install(|| {
        cases
            .par_iter()
            .map(|case| {
                let result = run_case(case, options.checks);
                let kept = work(case, result);
                bar.inc(1);
                kept
            })
            .collect()
    });
    panic::set_hook(previous);
    bar.finish_and_clear();
    out
}

/// Runs one case on this thread (no pool, no progress bar).
pub fn run_case(case: &Case, checks: bool) -> CaseResult {
    let options = RunOptions { checks, ..Default::default() };
    let started = std::time::Instant::now();
    let result =
        panic::catch_unwind(AssertUnwindSafe(|| sim::run(&case.scenario, options, &mut |_| {})));
    match result {
        Ok(run) => {
            let meta = RunMeta {
                command: case.replay(),
                scenario_path: case.path.display().to_string(),
                scenario_toml: scenario::to_toml(&case.scenario),
                git_commit: option_env!("SLUICE_GIT_COMMIT").map(str::to_string),
            };
            let report = RunReport::new(&case.scenario, &run.results, meta);
            CaseResult {
                report: Some(report),
                violations: run.results.violations,
                panic: None,
                wall: started.elapsed(),
            }
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            CaseResult {
                report: None,
                violations: Vec::new(),
                panic: Some(msg),
                wall: started.elapsed(),
            }
        }
    }
}

/// A bar of finished cases, drawn only on a terminal.
fn progress_bar(len: u64, wanted: bool) -> indicatif::ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() || len < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{pos}/{len} runs [{elapsed_precise}] {wide_bar}")
            .expect("valid template"),
    );
    bar
}

/// Splits `V1,V2,...` at commas outside parentheses and quotes, so values such as
/// `uniform(1s, 3s)` stay whole; empty values are dropped.
pub fn split_values(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quote) = (0i32, None);
    for c in s.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('(' | '[' | '{', None) => depth += 1,
            (')' | ']' | '}', None) => depth -= 1,
            (',', None) if depth <= 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect()
}

/// Parses `--jobs`: 0 means one per core.
pub fn jobs(n: Option<usize>) -> usize {
    n.unwrap_or(0)
}

/// `I/N` for `--shard`: 1-based I, 1 ≤ I ≤ N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("error: --shard {s:?}: expected I/N with 1 <= I <= N, e.g. --shard 1/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) =
        (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The scenario files under `paths` (folders recurse), sorted, each once.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).map_err(|e| format!("error: cannot read {}: {e}", p.display()))?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("error: {}: no such file or folder", p.display()));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(format!(
            "error: no scenario files (*.toml) under {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_outside_parentheses() {
        assert_eq!(split_values("2, 4,8"), ["2", "4", "8"]);
        assert_eq!(split_values("uniform(1s, 3s),const(2s)"), ["uniform(1s, 3s)", "const(2s)"]);
        assert_eq!(split_values("[\"a\", \"b\"],'x,y'"), ["[\"a\", \"b\"]", "'x,y'"]);
        assert!(split_values(" , ").is_empty());
    }

    #[test]
    fn shards_parse() {
        assert_eq!(parse_shard("1/2"), Ok((1, 2)));
        assert_eq!(parse_shard(" 3 / 3 "), Ok((3, 3)));
        for bad in ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
