//! # sluice-reports
//!
//! Turns one run's recorded results ([`sim::results::RunResults`]) into a run directory:
//! `summary.json`, `timeseries.csv`, HDR histograms, charts, `report.md` and `report.html`,
//! and compares finished runs side by side. Nothing here knows the engine's internals.
//!
//! One data model, many writers: [`RunReport`] is built once (every number rounded once) and
//! every writer reads it, so the JSON, CSV, text, charts and HTML always agree. A run directory
//! can be read back into the same `RunReport` ([`read_run_dir`]), which is how `compare` works
//! on finished runs.
//!
//! ```no_run
//! # fn demo(scenario: &sim::spec::Scenario, results: &sim::results::RunResults)
//! # -> Result<(), reports::ReportError> {
//! use reports::{Formats, RunMeta, RunReport};
//! let meta = RunMeta { command: "sluice run s.toml --seed 1".into(), ..RunMeta::default() };
//! let report = RunReport::new(scenario, results, meta);
//! print!("{}", reports::text::summary(&report));
//! let files = reports::write_run_dir("out/run".as_ref(), &report, &Formats::all())?;
//! let again = reports::read_run_dir("out/run".as_ref())?;
//! assert_eq!(again, report);
//! # Ok(()) }
//! ```
//!
//! ## Panics and error handling
//!
//! Writing and reading return [`ReportError`], which names the file or chart. Nothing panics
//! on a damaged run directory.
#![warn(missing_docs, unreachable_pub)]

pub mod capacity;
pub mod charts;
pub mod compare;
mod error;
pub mod expect;
pub mod hist;
pub mod html;
pub mod markdown;
mod model;
mod num;
mod plot;
mod rundir;
pub mod sweep;
pub mod text;
pub mod timeseries;
pub mod xy;

pub use error::ReportError;
pub use model::{
    Backlog, FaultWindow, LatencySummary, LimitsSummary, Little, Messages, QueueSummary, RunMeta,
    RunReport, SCHEMA, ServiceSummary, Summary, Throughput, TimeseriesRow,
};
pub use rundir::{Formats, read_run_dir, write_run_dir, write_run_dir_streamed};
