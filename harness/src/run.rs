//! `sluice run`: load a scenario, run it, write the run directory, judge `[expect]`.

use crate::cli::RunArgs;
use crate::outcome::Outcome;
use crate::scenario;
use reports::timeseries::CsvStream;
use reports::{Formats, RunMeta, RunReport};
use sim::model::series::SeriesSink;
use sim::spec::Scenario;
use sim::time::SimTime;
use sim::{Run, RunOptions};
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;
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
    if let Some(w) = sim::limits::LoadCheck::of(&scenario).warning() {
        eprintln!("warning: {w}");
    }
    let out = args.out.clone().unwrap_or_else(|| Path::new("runs").join(&scenario.name));
    let csv_path = out.join("timeseries.csv");
    let csv = match StreamedCsv::create(&out) {
        Ok(csv) => csv,
        Err(e) => return Outcome::BadInput(format!("error: {e}")),
    };
    let started = Instant::now();
    let options = RunOptions { trace: args.trace, series: Some(csv.sink()), ..Default::default() };
    let Some(done) = simulate(&scenario, options, &replay) else {
        return Outcome::Failed;
    };
    if let Err(e) = csv.finish() {
        return Outcome::BadInput(format!("error: cannot write {}: {e}", csv_path.display()));
    }
    let elapsed = started.elapsed();
    let meta = RunMeta {
        command: replay.clone(),
        scenario_path: args.scenario.display().to_string(),
        scenario_toml: scenario::to_toml(&scenario),
        git_commit: option_env!("SLUICE_GIT_COMMIT").map(str::to_string),
    };
    let report = RunReport::new(&scenario, &done.results, meta);
    let mut files = match reports::write_run_dir_streamed(&out, &report, &formats) {
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
    if args.check_determinism && !same_again(&scenario, &report, &csv_path, &replay) {
        return Outcome::Failed;
    }
    let judged = judge(&report, &replay);
    if let Some(stop) = done.results.limit_stop {
        eprintln!("{}", limit_message(&stop, done.results.ledger.produced));
        eprintln!("replay: {replay}");
        return Outcome::Failed;
    }
    judged
}

/// What the CLI says when `[limits]` stopped a run: when, how big, arrivals against
/// completions, and the key to raise.
pub fn limit_message(stop: &sim::limits::LimitStop, produced: u64) -> String {
    use sim::limits::fmt_rate;
    format!(
        "error: runaway backlog: the run stopped at {} simulated, with {} messages in the \
         system (more than limits.max_backlog = {}).\n  arrivals {} messages/s against \
         completions {} messages/s ({} produced so far): the design cannot keep up with its \
         load.\n  Fix the load or add capacity; if a backlog this large is intended, raise \
         the limit: --set limits.max_backlog={} (or [limits] max_backlog in the scenario).",
        sim_time(stop.at),
        stop.in_system,
        stop.max_backlog,
        fmt_rate(stop.arrivals_per_s()),
        fmt_rate(stop.completions_per_s()),
        produced,
        stop.max_backlog.saturating_mul(10)
    )
}

/// A simulated time for messages: `2.913 ms`, `41.5 s`, `2h30m`.
fn sim_time(ns: u64) -> String {
    let ns_per_s = sim::time::NS_PER_S;
    if ns < ns_per_s {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else if ns < 60 * ns_per_s {
        format!("{:.3} s", ns as f64 / 1e9)
    } else {
        sim::time::format_duration(ns)
    }
}

/// `timeseries.csv` written row by row while the run goes (the simulator's series sink).
/// The first write error is kept and reported when the run ends.
pub(crate) struct StreamedCsv<W: Write> {
    state: Rc<RefCell<StreamState<W>>>,
}

/// The stream (until finished) and the first error it met.
type StreamState<W> = (Option<CsvStream<W>>, Option<csv::Error>);

impl StreamedCsv<BufWriter<File>> {
    /// Creates `dir` (if needed) and `dir/timeseries.csv`, and writes its header.
    pub(crate) fn create(dir: &Path) -> Result<Self, String> {
        let path = dir.join("timeseries.csv");
        std::fs::create_dir_all(dir)
            .and_then(|_| File::create(&path))
            .map_err(|e| e.to_string())
            .and_then(|f| StreamedCsv::new(BufWriter::new(f)).map_err(|e| e.to_string()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl<W: Write + 'static> StreamedCsv<W> {
    fn new(out: W) -> Result<StreamedCsv<W>, csv::Error> {
        Ok(StreamedCsv { state: Rc::new(RefCell::new((Some(CsvStream::new(out)?), None))) })
    }

    /// The sink to give the run; `flush_each` flushes after every row (for comparisons).
    fn sink_with(&self, flush_each: bool) -> SeriesSink {
        let state = self.state.clone();
        SeriesSink::new(move |row| {
            let mut s = state.borrow_mut();
            let (stream, error) = &mut *s;
            if error.is_some() {
                return;
            }
            if let Some(w) = stream {
                let r = w.interval(row).and_then(|_| if flush_each { w.flush() } else { Ok(()) });
                if let Err(e) = r {
                    *error = Some(e);
                }
            }
        })
    }

    pub(crate) fn sink(&self) -> SeriesSink {
        self.sink_with(false)
    }

    /// Flushes the file; the first error of the run, if any.
    pub(crate) fn finish(&self) -> Result<W, csv::Error> {
        let mut s = self.state.borrow_mut();
        if let Some(e) = s.1.take() {
            return Err(e);
        }
        s.0.take().expect("finished once").finish()
    }
}

/// A writer that compares what is written with a file, byte by byte.
struct SameAs {
    file: BufReader<File>,
    same: bool,
    buf: Vec<u8>,
}

impl Write for SameAs {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.same {
            self.buf.resize(data.len(), 0);
            let same = self.file.read_exact(&mut self.buf).is_ok() && self.buf == data;
            self.same = same;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
/// timeseries.csv (the second run's rows are compared with the file as they come).
fn same_again(scenario: &Scenario, first: &RunReport, csv_path: &Path, replay: &str) -> bool {
    let file = match File::open(csv_path) {
        Ok(f) => BufReader::new(f),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", csv_path.display());
            return false;
        }
    };
    let Ok(csv) = StreamedCsv::new(SameAs { file, same: true, buf: Vec::new() }) else {
        return false;
    };
    let first_differing: Rc<RefCell<Option<f64>>> = Rc::default();
    let sink = {
        let (inner, state, first_differing) =
            (csv.sink_with(true), csv.state.clone(), first_differing.clone());
        SeriesSink::new(move |row| {
            inner.send(row);
            let s = state.borrow();
            let same = s.0.as_ref().is_some_and(|w| w.get_ref().same);
            if !same && first_differing.borrow().is_none() {
                *first_differing.borrow_mut() = Some(row.t as f64 / 1e9);
            }
        })
    };
    let options = RunOptions { series: Some(sink), ..Default::default() };
    let Some(again) = simulate(scenario, options, replay) else {
        return false;
    };
    let same_series = match csv.finish() {
        // everything written matched; the file must hold nothing more
        Ok(mut w) => w.same && w.file.read(&mut [0u8; 1]).is_ok_and(|n| n == 0),
        Err(_) => false,
    };
    let second = RunReport::new(scenario, &again.results, first.meta.clone());
    let same_summary = first.summary.to_json() == second.summary.to_json();
    if same_summary && same_series {
        eprintln!("determinism: a second run gave byte-identical summary.json and timeseries.csv");
        true
    } else {
        let first_row =
            first_differing.borrow().map_or("unknown".to_string(), |t| format!("{t} s"));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as(file: &Path, parts: &[&[u8]]) -> bool {
        let mut w =
            SameAs { file: BufReader::new(File::open(file).unwrap()), same: true, buf: vec![] };
        for p in parts {
            w.write_all(p).unwrap();
        }
        w.same && w.file.read(&mut [0u8; 1]).unwrap() == 0
    }

    #[test]
    fn the_determinism_check_compares_bytes_as_they_come() {
        let dir = std::env::temp_dir().join(format!("sluice-sameas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("timeseries.csv");
        std::fs::write(&file, b"t_s,a\n1.0,2\n2.0,3\n").unwrap();
        assert!(same_as(&file, &[b"t_s,a\n", b"1.0,2\n2.0,3\n"]));
        assert!(!same_as(&file, &[b"t_s,a\n", b"1.0,2\n2.0,4\n"]), "a changed value");
        assert!(!same_as(&file, &[b"t_s,a\n1.0,2\n"]), "a missing row");
        assert!(!same_as(&file, &[b"t_s,a\n1.0,2\n2.0,3\n3.0,1\n"]), "an extra row");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_streamed_file_has_the_bytes_of_write_csv() {
        let columns: std::rc::Rc<[String]> = vec!["breaker.open".to_string()].into();
        let rows: Vec<sim::results::IntervalRow> = (1..=5)
            .map(|i| sim::results::IntervalRow {
                t: i * 10_000_000_000,
                arrivals: i,
                state: vec![(i % 2) as f64],
                state_columns: columns.clone(),
                ..Default::default()
            })
            .collect();
        let csv = StreamedCsv::new(Vec::new()).unwrap();
        let sink = csv.sink();
        for r in &rows {
            sink.send(r);
        }
        let streamed = csv.finish().unwrap();
        let report_rows: Vec<reports::TimeseriesRow> =
            rows.iter().map(reports::TimeseriesRow::from).collect();
        let mut at_once = Vec::new();
        reports::timeseries::write_csv(&report_rows, &columns, &mut at_once).unwrap();
        assert_eq!(streamed, at_once);
        let text = String::from_utf8(at_once).unwrap();
        assert!(text.lines().next().unwrap().ends_with(",in_progress,breaker.open"), "{text}");
        assert!(text.lines().nth(1).unwrap().ends_with(",0,1.0"), "{text}");
    }
}
