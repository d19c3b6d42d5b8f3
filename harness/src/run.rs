//! `sluice run`: load a scenario, run it, write the run directory, judge `[expect]`.

use crate::cli::RunArgs;
use crate::outcome::Outcome;
use crate::scenario;
use reports::{Formats, RunMeta, RunReport};
use sim::spec::Scenario;
use sim::time::SimTime;
use sim::{Run, RunOptions};
use std::io::{IsTerminal, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs `sluice run`.
pub fn run(args: &RunArgs) -> Outcome {
    let mut scenario = match scenario::load(&args.scenario, &args.sets) {
        Ok(s) => s,
        Err(e) => return Outcome::BadInput(e.to_string()),
    };
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if args.print_scenario {
        print!("{}", scenario::to_toml(&scenario));
        return Outcome::Ok;
    }
    let formats: Formats = match args.report.parse() {
        Ok(f) => f,
        Err(e) => return Outcome::BadInput(format!("error: --report: {e}")),
    };
    if let Err(msg) = crate::validate::check_expectations(&args.scenario, &scenario) {
        return Outcome::BadInput(msg);
    }
    let replay = replay_command(args, scenario.seed);
    eprintln!(
        "sluice: scenario {} ({}), seed {}",
        scenario.name,
        scenario.pattern.name(),
        scenario.seed
    );
    let started = Instant::now();
    let Some(done) =
        simulate(&scenario, RunOptions { trace: args.trace, ..Default::default() }, &replay)
    else {
        return Outcome::Failed;
    };
    let elapsed = started.elapsed();
    let meta = RunMeta {
        command: replay.clone(),
        scenario_path: args.scenario.display().to_string(),
        scenario_toml: scenario::to_toml(&scenario),
        git_commit: option_env!("SLUICE_GIT_COMMIT").map(str::to_string),
    };
    let report = RunReport::new(&scenario, &done.results, meta);
    let out = args.out.clone().unwrap_or_else(|| Path::new("runs").join(&scenario.name));
    let mut files = match reports::write_run_dir(&out, &report, &formats) {
        Ok(files) => files,
        Err(e) => return Outcome::BadInput(format!("error: {e}")),
    };
    if args.trace {
        match write_trace(&out.join("trace.csv"), &done.trace, &scenario.workload.classes) {
            Ok(p) => files.push(p),
            Err(e) => return Outcome::BadInput(format!("error: cannot write trace.csv: {e}")),
        }
    }
    if args.json {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&report.summary.to_json());
        let _ = writeln!(stdout);
    } else {
        print!("{}", reports::text::summary(&report));
        println!(
            "wrote {} files to {} ({} messages in {:.2}s wall)",
            files.len(),
            out.display(),
            done.results.ledger.produced,
            elapsed.as_secs_f64()
        );
    }
    if args.check_determinism && !same_again(&scenario, &report, &replay) {
        return Outcome::Failed;
    }
    judge(&report, &replay)
}

/// Runs the simulation, with a progress bar on a terminal for runs longer than a couple
/// of seconds. A broken invariant (a panic inside the simulator) is reported with the
/// command that replays it.
pub fn simulate(scenario: &Scenario, options: RunOptions, replay: &str) -> Option<Run> {
    install_panic_hook();
    let progress = Progress::new(scenario.horizon());
    IN_SIMULATION.set(true);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        sim::run(scenario, options, &mut |now| progress.tick(now))
    }));
    IN_SIMULATION.set(false);
    progress.finish();
    match result {
        Ok(run) => Some(run),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!(
                "error: invariant broken in scenario {} (seed {}): {msg}",
                scenario.name, scenario.seed
            );
            eprintln!("this is a bug in sluice; replay: {replay}");
            None
        }
    }
}

thread_local! {
    /// Whether this thread is inside [`simulate`], which reports a panic itself.
    static IN_SIMULATION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once per process, a panic hook that stays quiet for a panic inside
/// [`simulate`] (which reports it with the replay command) and prints every other panic as
/// usual. Installed once: swapping the process-wide hook per run would race between the
/// threads of `compare`, `check` and `sweep`.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_SIMULATION.get() {
                default(info);
            }
        }));
    });
}

/// A progress bar that appears only on a terminal and only once a run has taken more than
/// two seconds of wall time. It reads the simulated clock; it never influences the run.
struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    shown: std::cell::Cell<bool>,
}

impl Progress {
    fn new(horizon: u64) -> Progress {
        let bar = indicatif::ProgressBar::hidden();
        bar.set_length(horizon / sim::time::NS_PER_S);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulated {pos}s of at most {len}s [{elapsed_precise}] {wide_bar}",
            )
            .expect("valid template"),
        );
        Progress { bar, started: Instant::now(), shown: std::cell::Cell::new(false) }
    }

    fn tick(&self, now: SimTime) {
        if !self.shown.get() {
            if self.started.elapsed() < Duration::from_secs(2) || !std::io::stderr().is_terminal() {
                return;
            }
            self.shown.set(true);
            self.bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.bar.set_position(now.as_nanos() / sim::time::NS_PER_S);
    }

    fn finish(&self) {
        if self.shown.get() {
            self.bar.finish_and_clear();
        }
    }
}

/// The command that replays this run exactly.
pub fn replay_command(args: &RunArgs, seed: u64) -> String {
    replay(&args.scenario, seed, &args.sets)
}

/// `sluice run SCENARIO --seed N --set ...`, quoted for a shell.
pub fn replay(scenario: &Path, seed: u64, sets: &[String]) -> String {
    let mut cmd =
        format!("sluice run {} --seed {seed}", shell_quote(&scenario.display().to_string()));
    for s in sets {
        cmd.push_str(&format!(" --set {}", shell_quote(s)));
    }
    cmd
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn write_trace(
    path: &Path,
    trace: &[sim::model::meters::TraceEvent],
    classes: &[(String, f64)],
) -> std::io::Result<PathBuf> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "t_s,id,event,class")?;
    for e in trace {
        let class = classes.get(e.class as usize).map_or("", |(n, _)| n.as_str());
        let t = SimTime(e.t).as_secs_f64();
        writeln!(w, "{t:.9},{},{},{class}", e.id, e.what.name())?;
    }
    w.flush()?;
    Ok(path.to_path_buf())
}

/// Runs the scenario a second time and compares the bytes of summary.json and
/// timeseries.csv.
fn same_again(scenario: &Scenario, first: &RunReport, replay: &str) -> bool {
    let Some(again) = simulate(scenario, RunOptions::default(), replay) else {
        return false;
    };
    let second = RunReport::new(scenario, &again.results, first.meta.clone());
    let csv = |r: &RunReport| {
        let mut v = Vec::new();
        reports::timeseries::write_csv(&r.timeseries, &mut v).map(|_| v).ok()
    };
    let same_summary = first.summary.to_json() == second.summary.to_json();
    let same_series = csv(first) == csv(&second);
    if same_summary && same_series {
        eprintln!("determinism: a second run gave byte-identical summary.json and timeseries.csv");
        true
    } else {
        let first_row = first
            .timeseries
            .iter()
            .zip(&second.timeseries)
            .find(|(a, b)| a != b)
            .map_or("unknown".to_string(), |(a, _)| format!("{} s", a.t_s));
        eprintln!(
            "error: non-determinism detected: summary identical: {same_summary}, time series \
             identical: {same_series} (first differing interval ends at {first_row})"
        );
        eprintln!("replay: {replay} --check-determinism");
        false
    }
}

/// Exit 1 if any `[expect]` condition failed, listing each with its actual value.
fn judge(report: &RunReport, replay: &str) -> Outcome {
    let failed: Vec<_> = report.summary.expectations.iter().filter(|e| !e.pass).collect();
    if failed.is_empty() {
        return Outcome::Ok;
    }
    eprintln!("error: {} expectation(s) failed:", failed.len());
    for e in failed {
        let actual = e.actual.map_or_else(|| "n/a".to_string(), |a| a.to_string());
        let why = e.error.as_deref().map(|w| format!(" ({w})")).unwrap_or_default();
        eprintln!("  {} {}: actual {actual}{why}", e.metric, e.condition);
    }
    eprintln!("replay: {replay}");
    Outcome::Failed
}
