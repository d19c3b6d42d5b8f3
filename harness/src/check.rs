//! `sluice check`: a folder of scenarios as a regression suite.
//!
//! ```text
//! sluice check scenarios/ --seeds 4 --junit check.xml
//! sluice check scenarios/ --mode swarm --seeds 32
//! ```
//!
//! Every scenario under the paths (folders recurse) runs for each seed with the invariant
//! checkers on; a case fails when an `[expect]` condition fails, a checker finds a broken
//! guarantee, or the ledger does not balance. Each failure prints one line with the command
//! that replays it. The broken half of a chaos pair (`expect_failure = true`) passes when its
//! expectations fail, and fails when they hold ("now passes").
//!
//! Modes (after TigerBeetle's VOPR):
//! - none: each scenario as written;
//! - `smoke`: the file's own seed only, and the suite must finish within `--budget`;
//! - `swarm`: the file's faults are replaced by faults drawn from the seed (kinds, times,
//!   sizes, counts); invariants and the ledger are judged, not the SLOs in `[expect]`;
//! - `performance`: no faults; invariants and the ledger judged, and each run's wall time and
//!   speed (simulated messages per wall second) printed: a benchmark of the suite.
//!
//! Swarm and performance cases are ordinary runs with `--set faults=[...]` overrides, so the
//! replay command is a plain `sluice run`.

use crate::outcome::Outcome;
use crate::runner::{self, Case, CaseResult};
use clap::{Args, ValueEnum};
use reports::RunReport;
use serde::Serialize;
use sim::rng::Rng;
use sim::spec::Scenario;
use sim::time::{NS_PER_S, SimTime};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `sluice check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Scenario files or folders (searched recursively for *.toml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Run seeds 1..=N of every scenario (default: each file's own seed).
    #[arg(long, conflicts_with = "seed")]
    pub seeds: Option<u64>,
    /// Run this one seed of every scenario.
    #[arg(long)]
    pub seed: Option<u64>,
    /// smoke (one fixed seed each, a time budget), swarm (faults drawn from the seed,
    /// invariants judged) or performance (no faults; wall time and speed per run).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Worker threads (default: one per core). Results never depend on it.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write JUnit XML: one testsuite per scenario file, one testcase per seed.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write check.json (every verdict) and a run directory per failed case here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run every case twice and report the simulated time at which the runs diverge.
    #[arg(long)]
    pub check_determinism: bool,
    /// Smoke mode's wall-clock budget for the whole suite (default 60s).
    #[arg(long, value_name = "DURATION")]
    pub budget: Option<String>,
}

/// The kinds of suite run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One fixed seed per scenario, within a time budget.
    Smoke,
    /// Faults drawn from the seed; invariants and the ledger judged, not SLOs.
    Swarm,
    /// No faults.
    Performance,
}

/// The verdict on one (scenario, seed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The scenario file.
    pub file: String,
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Whether the case passed.
    pub pass: bool,
    /// The broken half of a chaos pair.
    pub expect_failure: bool,
    /// Why it failed (or, for an expected failure, what it showed), one entry per condition.
    pub reasons: Vec<String>,
    /// The command that replays the run.
    pub replay: String,
}

/// `check.json`.
#[derive(Serialize)]
struct CheckFile<'a> {
    schema: u32,
    mode: Option<Mode>,
    passed: usize,
    failed: usize,
    cases: &'a [Verdict],
}

/// Runs `sluice check`.
pub fn check(args: &CheckArgs) -> Outcome {
    let budget = match (&args.budget, args.mode) {
        (Some(_), m) if m != Some(Mode::Smoke) => {
            return Outcome::BadInput("error: --budget applies to --mode smoke".into());
        }
        (Some(b), _) => match parse_budget(b) {
            Ok(d) => Some(d),
            Err(msg) => return Outcome::BadInput(msg),
        },
        (None, Some(Mode::Smoke)) => Some(Duration::from_secs(60)),
        (None, _) => None,
    };
    if args.mode == Some(Mode::Smoke) && (args.seeds.is_some() || args.seed.is_some()) {
        return Outcome::BadInput(
            "error: --mode smoke runs each file's own seed; drop --seeds/--seed".into(),
        );
    }
    if args.seeds == Some(0) {
        return Outcome::BadInput("error: --seeds must be at least 1".into());
    }
    let files = match runner::scenario_files(&args.paths) {
        Ok(f) => f,
        Err(msg) => return Outcome::BadInput(msg),
    };
    let cases = match cases(&files, args) {
        Ok(c) => c,
        Err(msg) => return Outcome::BadInput(msg),
    };
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "sluice check: {}, {}{}",
        plural(files.len(), "scenario file"),
        plural(cases.len(), "run"),
        args.mode.map(|m| format!(" ({m:?} mode)").to_lowercase()).unwrap_or_default()
    );
    let started = Instant::now();
    let options = runner::Options { jobs: runner::jobs(args.jobs), checks: true, progress: true };
    let keep_reports = args.out.is_some();
    let results: Vec<(Verdict, Option<RunReport>, String)> = runner::run_all(
        &cases,
        options,
        |case, result| {
            let mut v = verdict(case, &result, args.mode);
            let speed = result.report.as_ref().map_or(String::new(), |r| {
            let wall = result.wall.as_secs_f64();
            format!(
                "perf {} seed {}: {} messages, {:.0} s simulated in {:.3} s wall ({:.0} messages/s)",
                v.file,
                v.seed,
                r.summary.messages.produced,
                r.summary.sim_time_s,
                wall,
                r.summary.messages.produced as f64 / wall.max(1e-9)
            )
        });
            if args.check_determinism {
                let again = runner::run_case(case, true);
                if let Some(why) = divergence(&result, &again) {
                    v.pass = false;
                    v.reasons.push(why);
                }
            }
            let report = if !v.pass && keep_reports { result.report } else { None };
            (v, report, speed)
        },
    );
    let mut verdicts = Vec::new();
    let mut failed_reports = Vec::new();
    for (v, report, speed) in results {
        if args.mode == Some(Mode::Performance) && !speed.is_empty() {
            println!("{speed}");
        }
        verdicts.push(v);
        failed_reports.push(report);
    }
    let elapsed = started.elapsed();
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.pass).collect();
    for v in &failed {
        for reason in &v.reasons {
            println!("FAIL {} seed {}: {reason}", v.file, v.seed);
        }
        println!("  replay: {}", v.replay);
    }
    let mut outcome = if failed.is_empty() { Outcome::Ok } else { Outcome::Failed };
    if let Some(junit) = &args.junit
        && let Err(e) = write_junit(junit, &verdicts, args.mode)
    {
        return Outcome::BadInput(format!("error: cannot write {}: {e}", junit.display()));
    }
    if let Some(out) = &args.out
        && let Err(e) = write_out(out, &verdicts, args.mode, failed_reports)
    {
        return Outcome::BadInput(format!("error: cannot write {}: {e}", out.display()));
    }
    eprintln!("took {:.1}s of wall time", elapsed.as_secs_f64());
    if let Some(budget) = budget
        && elapsed > budget
    {
        println!(
            "FAIL smoke budget: the suite took {:.1}s, over its {budget:?} budget",
            elapsed.as_secs_f64()
        );
        outcome = Outcome::Failed;
    }
    let over = if matches!(outcome, Outcome::Failed) && failed.is_empty() {
        "; over the smoke budget"
    } else {
        ""
    };
    println!("check: {} passed, {} failed{over}", verdicts.len() - failed.len(), failed.len());
    outcome
}

fn parse_budget(s: &str) -> Result<Duration, String> {
    let ns =
        crate::scenario::parse_duration(s.trim()).map_err(|e| format!("error: --budget: {e}"))?;
    Ok(Duration::from_nanos(ns))
}

/// The cases, file by file, seed by seed: loaded before anything runs, so bad input fails
/// first.
fn cases(files: &[PathBuf], args: &CheckArgs) -> Result<Vec<Case>, String> {
    let seeds: Option<Vec<u64>> = match (args.seeds, args.seed) {
        (Some(n), _) => Some((1..=n).collect()),
        (None, Some(s)) => Some(vec![s]),
        (None, None) => None,
    };
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for file in files {
        let base = match Case::load(file, &[], None) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let seeds = seeds.clone().unwrap_or_else(|| vec![base.scenario.seed]);
        for seed in seeds {
            let sets = match args.mode {
                Some(Mode::Swarm) => vec![swarm_faults(&base.scenario, seed)],
                Some(Mode::Performance) => vec!["faults=[]".to_string()],
                _ => Vec::new(),
            };
            match Case::load(file, &sets, Some(seed)) {
                Ok(c) => out.push(c),
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors.join("\n")) }
}

/// `faults=[...]`: one to four faults drawn from the seed's `swarm` stream: kinds the
/// scenario can take (service faults need a service), windows inside the workload's
/// duration, sizes (added latency, error rates, crashed instances, restart delays).
pub fn swarm_faults(s: &Scenario, seed: u64) -> String {
    let mut rng = Rng::stream(seed, "swarm");
    let services: Vec<&String> = s.services.keys().collect();
    let crashable = if s.hosting.plan.elastic() {
        s.hosting.scaling.max_instances
    } else {
        s.consumer.instances
    };
    let duration_s = (s.duration / NS_PER_S).max(1);
    let count = 1 + rng.below(4);
    let mut faults = Vec::new();
    for _ in 0..count {
        let kinds: &[&str] = match (services.is_empty(), crashable > 0) {
            (false, true) => &["outage", "latency", "error-rate", "crash"],
            (false, false) => &["outage", "latency", "error-rate"],
            (true, true) => &["crash"],
            (true, false) => break,
        };
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        let from = rng.below(duration_s);
        let len = 1 + rng.below((duration_s / 4).max(1));
        let fault = if kind == "crash" {
            let instances = 1 + rng.below(u64::from(crashable));
            let restart = 1 + rng.below(300);
            format!(
                "{{kind = \"crash\", target = \"consumer\", at = \"{from}s\", instances = \
                 {instances}, restart_after = \"{restart}s\"}}"
            )
        } else {
            let target = services[rng.below(services.len() as u64) as usize];
            let window = format!(
                "kind = \"{kind}\", target = \"{}\", from = \"{from}s\", to = \"{}s\"",
                target.replace('\\', "\\\\").replace('"', "\\\""),
                from + len
            );
            match kind {
                "latency" => format!("{{{window}, add = \"{}ms\"}}", 10 + rng.below(5000)),
                "error-rate" => {
                    format!("{{{window}, error_rate = {:.2}}}", (1 + rng.below(20)) as f64 * 0.05)
                }
                _ => format!("{{{window}}}"),
            }
        };
        faults.push(fault);
    }
    // The pattern's own processes (a relay, a web app): crashes and graceful restarts. No
    // draw for a pattern without any, so older swarms replay as they were.
    let processes = sim::patterns::lookup(s.pattern).processes;
    for _ in 0..if processes.is_empty() { 0 } else { rng.below(3) } {
        let target = processes[rng.below(processes.len() as u64) as usize];
        let at = rng.below(duration_s);
        let down = 1 + rng.below(60);
        faults.push(if rng.chance(0.3) {
            format!(
                "{{kind = \"restart\", target = \"{target}\", at = \"{at}s\", grace = \"{}s\", \
                 restart_after = \"{down}s\"}}",
                rng.below(30)
            )
        } else {
            format!(
                "{{kind = \"crash\", target = \"{target}\", at = \"{at}s\", restart_after = \
                 \"{down}s\"}}"
            )
        });
    }
    format!("faults=[{}]", faults.join(", "))
}

/// Judges one run.
fn verdict(case: &Case, r: &CaseResult, mode: Option<Mode>) -> Verdict {
    let s = &case.scenario;
    let mut v = Verdict {
        file: case.path.display().to_string(),
        scenario: s.name.clone(),
        seed: s.seed,
        pass: true,
        expect_failure: s.expect_failure,
        reasons: Vec::new(),
        replay: case.replay(),
    };
    if let Some(msg) = &r.panic {
        v.pass = false;
        v.reasons.push(format!("invariant broken (a bug in sluice): {msg}"));
        return v;
    }
    let violations: Vec<String> = r
        .violations
        .iter()
        .map(|x| {
            format!(
                "invariant `{}` broken at {} s: {}",
                x.checker,
                SimTime(x.at).as_secs_f64(),
                x.message
            )
        })
        .collect();
    let report = r.report.as_ref().expect("a run that did not panic has a report");
    let expectations: Vec<String> = if matches!(mode, Some(Mode::Swarm | Mode::Performance)) {
        Vec::new() // swarm and performance judge invariants and the ledger, not SLOs
    } else {
        failed_expectations(report)
    };
    if s.expect_failure {
        if matches!(mode, Some(Mode::Swarm | Mode::Performance)) {
            return v; // the pair's problem is expected; only the ledger is judged
        }
        if violations.is_empty() && expectations.is_empty() {
            v.pass = false;
            v.reasons.push(
                "now passes: the pair no longer shows the problem (expect_failure = true, yet \
                 every [expect] condition held)"
                    .into(),
            );
        } else {
            v.reasons.extend(violations);
            v.reasons.extend(expectations.into_iter().map(|e| format!("expected failure: {e}")));
        }
        return v;
    }
    v.reasons.extend(violations);
    v.reasons.extend(expectations);
    v.pass = v.reasons.is_empty();
    v
}

/// `metric condition: actual X` for each failed `[expect]` condition.
fn failed_expectations(report: &RunReport) -> Vec<String> {
    report
        .summary
        .expectations
        .iter()
        .filter(|e| !e.pass)
        .map(|e| {
            let actual = e.actual.map_or_else(|| "n/a".to_string(), |a| a.to_string());
            let why = e.error.as_deref().map(|w| format!(" ({w})")).unwrap_or_default();
            format!("{} {}: actual {actual}{why}", e.metric, e.condition)
        })
        .collect()
}

/// Where two runs of the same case first differ, in simulated time; `None` when identical.
pub fn divergence(a: &CaseResult, b: &CaseResult) -> Option<String> {
    let (ra, rb) = match (&a.report, &b.report) {
        (Some(ra), Some(rb)) => (ra, rb),
        (None, None) if a.panic == b.panic => return None,
        _ => return Some("non-deterministic: one run panicked and the other did not".into()),
    };
    let mut start = 0.0;
    for (x, y) in ra.timeseries.iter().zip(&rb.timeseries) {
        if x != y {
            return Some(format!(
                "non-deterministic: the runs first diverge in the interval from {start} s to {} s \
                 of simulated time",
                x.t_s
            ));
        }
        start = x.t_s;
    }
    if ra.timeseries.len() != rb.timeseries.len() {
        return Some(format!(
            "non-deterministic: one run ends at {} s of simulated time, the other at {} s",
            ra.end_s(),
            rb.end_s()
        ));
    }
    if ra.summary.to_json() != rb.summary.to_json() || a.violations != b.violations {
        return Some(
            "non-deterministic: identical time series, but the summaries differ (at the end \
             of the run)"
                .into(),
        );
    }
    None
}

/// JUnit XML: one testsuite per scenario file, one testcase per seed.
fn write_junit(path: &Path, verdicts: &[Verdict], mode: Option<Mode>) -> std::io::Result<()> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let name = match mode {
        Some(m) => format!("sluice check ({m:?})").to_lowercase(),
        None => "sluice check".into(),
    };
    let mut report = Report::new(name);
    let mut suites: Vec<TestSuite> = Vec::new();
    for v in verdicts {
        if suites.last().is_none_or(|s| s.name.as_str() != v.file) {
            suites.push(TestSuite::new(v.file.as_str()));
        }
        let status = if v.pass {
            TestCaseStatus::success()
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(v.reasons.first().cloned().unwrap_or_default());
            st.set_type("sluice.check");
            let mut text = v.reasons.join("\n");
            text.push_str(&format!("\nreplay: {}", v.replay));
            st.set_description(text);
            st
        };
        let mut tc = TestCase::new(format!("seed {}", v.seed), status);
        tc.set_classname(v.scenario.as_str());
        if v.pass && v.expect_failure {
            tc.set_system_out(format!(
                "expected failure shown:\n{}\nreplay: {}",
                v.reasons.join("\n"),
                v.replay
            ));
        }
        suites.last_mut().expect("pushed above").add_test_case(tc);
    }
    report.add_test_suites(suites);
    let xml = report.to_string().map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, xml)
}

/// `DIR/check.json` and `DIR/failures/<file>-seed-<N>/` for every failed case.
fn write_out(
    out: &Path,
    verdicts: &[Verdict],
    mode: Option<Mode>,
    failed: Vec<Option<RunReport>>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let passed = verdicts.iter().filter(|v| v.pass).count();
    let file = CheckFile {
        schema: reports::SCHEMA,
        mode,
        passed,
        failed: verdicts.len() - passed,
        cases: verdicts,
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    json.push(b'\n');
    std::fs::write(out.join("check.json"), json)?;
    for (v, report) in verdicts.iter().zip(failed) {
        let Some(report) = report else { continue };
        // Named after the file (scenario names need not be unique), e.g.
        // `failures/scenarios-chaos-orders-outage-seed-3/`.
        let stem: String = v
            .file
            .trim_end_matches(".toml")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .collect();
        let dir = out.join("failures").join(format!("{}-seed-{}", stem.trim_matches('-'), v.seed));
        reports::write_run_dir(&dir, &report, &reports::Formats::data_only())
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::check::Violation;

    const TEXT: &str = "name = \"t\"\nduration = \"1m\"\npattern = \"competing-consumers\"\n\
                        [workload]\nrate = \"20/s\"\n[consumer]\ninstances = 2\n\
                        work = \"exp(mean=20ms)\"\n[expect]\n\"messages.lost\" = \"== 0\"\n";

    fn case(extra_top: &str) -> Case {
        let text = format!("{extra_top}{TEXT}");
        let scenario =
            crate::scenario::load_str(&text, Path::new("t.toml"), &[]).expect("valid scenario");
        Case { path: PathBuf::from("t.toml"), sets: Vec::new(), scenario }
    }

    fn broken(mut r: CaseResult) -> CaseResult {
        r.violations.push(Violation {
            checker: "ledger",
            at: 5 * NS_PER_S,
            message: "produced 10 != accounted 9".into(),
        });
        r
    }

    #[test]
    fn a_violation_fails_a_case_and_names_its_checker_and_time() {
        let c = case("");
        let ok = runner::run_case(&c, true);
        assert!(verdict(&c, &ok, None).pass);
        let v = verdict(&c, &broken(ok.clone()), None);
        assert!(!v.pass);
        assert_eq!(v.reasons, ["invariant `ledger` broken at 5 s: produced 10 != accounted 9"]);
        // Swarm judges invariants too.
        assert!(!verdict(&c, &broken(ok.clone()), Some(Mode::Swarm)).pass);
        let panicked = CaseResult { report: None, panic: Some("ledger".into()), ..ok };
        let v = verdict(&c, &panicked, None);
        assert!(!v.pass && v.reasons[0].starts_with("invariant broken (a bug in sluice)"));
    }

    #[test]
    fn the_broken_half_of_a_pair_passes_while_it_shows_the_problem() {
        let c = case("expect_failure = true\n");
        let holds = runner::run_case(&c, true);
        let v = verdict(&c, &holds, None);
        assert!(!v.pass);
        assert!(v.reasons[0].starts_with("now passes: the pair no longer shows the problem"));
        let v = verdict(&c, &broken(holds.clone()), None);
        assert!(v.pass, "{v:?}");
        // A bug in sluice is a failure even in a pair.
        let panicked = CaseResult { report: None, panic: Some("x".into()), ..holds };
        assert!(!verdict(&c, &panicked, None).pass);
    }

    #[test]
    fn divergence_names_the_first_interval_that_differs() {
        let c = case("");
        let a = runner::run_case(&c, true);
        assert_eq!(divergence(&a, &runner::run_case(&c, true)), None);
        let mut b = a.clone();
        let report = b.report.as_mut().expect("a report");
        report.timeseries[3].completed += 1;
        let why = divergence(&a, &b).expect("they differ");
        assert!(why.contains("from 30 s to 40 s of simulated time"), "{why}");
        let mut b = a.clone();
        b.report.as_mut().expect("a report").summary.messages.deliveries += 1;
        assert!(divergence(&a, &b).expect("they differ").contains("summaries differ"));
    }

    #[test]
    fn swarm_faults_come_from_the_seed() {
        let c = case("");
        let a = swarm_faults(&c.scenario, 1);
        assert_eq!(a, swarm_faults(&c.scenario, 1));
        assert_ne!(a, swarm_faults(&c.scenario, 2));
        // No services: crashes only, and every drawn schedule loads.
        for seed in 0..50 {
            let sets = [swarm_faults(&c.scenario, seed)];
            assert!(sets[0].contains("kind = \"crash\""));
            crate::scenario::load_str(TEXT, Path::new("t.toml"), &sets)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", sets[0]));
        }
    }
}
