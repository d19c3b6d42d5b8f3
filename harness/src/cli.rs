//! The command line: argument parsing and dispatch. The work lives in the other modules.

use crate::outcome::Outcome;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// sluice: what your background processing does under a burst, during an outage, when a
/// worker crashes, and what it costs.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about = None)]
#[command(after_help = "Exit codes: 0 all good; 1 an expectation or invariant failed; \
                        2 bad input or usage.")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario and write its summary, time series, histograms and reports.
    Run(RunArgs),
    /// Run two or more designs and write a side-by-side comparison (HTML, Markdown, JSON).
    Compare(crate::compare::CompareArgs),
    /// Check scenario files without running them.
    Validate {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Run folders of scenarios over seeds as a regression suite (exit 1 on any failure).
    Check(crate::check::CheckArgs),
    /// Run a grid of settings over seeds and write sweep.{csv,json,md,html} with charts.
    Sweep(crate::sweep::SweepArgs),
    /// Find the cheapest setting that meets every [expect] condition.
    Capacity(crate::capacity::CapacityArgs),
    /// Combine the shard directories of a sharded sweep into one sweep.
    Merge(crate::merge::MergeArgs),
    /// Print the JSON Schema of scenario files (for editors: Taplo, Even Better TOML).
    Schema,
    /// Measure real hardware for the simulator (`calibrate gpu`: a GPU's batch-latency
    /// profile; needs a build with `--features gpu`).
    Calibrate {
        #[command(subcommand)]
        what: crate::calibrate::CalibrateCommand,
    },
}

/// Options of `sluice run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override any scenario key, e.g. `--set consumer.instances=8` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory (default: `runs/<scenario name>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print summary.json to stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Reports to write besides summary.json and timeseries.csv: any of html, md, png, svg,
    /// or `none`.
    #[arg(long, default_value = "html,md,png,svg")]
    pub report: String,
    /// Also write trace.csv: every message event (large for long runs).
    #[arg(long)]
    pub trace: bool,
    /// Print the resolved scenario (every default filled in) and exit.
    #[arg(long)]
    pub print_scenario: bool,
    /// Run twice and fail unless both runs give byte-identical summary.json and
    /// timeseries.csv.
    #[arg(long)]
    pub check_determinism: bool,
}

/// Parses the arguments, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let outcome = match cli.command {
        Command::Run(args) => crate::run::run(&args),
        Command::Compare(args) => crate::compare::compare(&args),
        Command::Validate { scenarios } => crate::validate::validate(&scenarios),
        Command::Check(args) => crate::check::check(&args),
        Command::Sweep(args) => crate::sweep::sweep(&args),
        Command::Capacity(args) => crate::capacity::capacity(&args),
        Command::Merge(args) => crate::merge::merge(&args),
        Command::Schema => crate::schema::print(),
        Command::Calibrate { what } => crate::calibrate::calibrate(&what),
    };
    outcome.report()
}

impl Outcome {
    /// Prints what went wrong (if anything) and returns the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::BadInput(msg) => {
                eprintln!("{msg}");
                ExitCode::from(2)
            }
        }
    }
}
