//! The one error type of the `reports` crate.

use std::path::PathBuf;

/// Why writing or reading a report failed. Every variant names the file (or chart) involved.
///
/// None of these is a bug in the run itself: the run's results are intact and the report can be
/// written again once the cause is fixed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A file or folder could not be created, written or read. Check the path, permissions and
    /// free disk space.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read`, `write` or `create`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A JSON file could not be written or parsed. When reading, the run directory was written by
    /// another version of sluice or edited by hand: write it again with `sluice run`.
    #[error("bad JSON in {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json reported (with line and column when parsing).
        source: serde_json::Error,
    },
    /// A CSV file could not be written or parsed (see [`ReportError::Json`] for the remedy).
    #[error("bad CSV in {}: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// What the csv crate reported (with the record number when parsing).
        source: csv::Error,
    },
    /// A histogram could not be encoded or decoded (a `.hlog` file is damaged or missing its
    /// histogram line). Write the run directory again.
    #[error("bad histogram in {}: {message}", path.display())]
    Histogram {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// plotters could not draw a chart (for example no font could be registered). The other
    /// outputs are unaffected; leave out `png`/`svg` to skip charts.
    #[error("cannot draw chart `{chart}`: {message}")]
    Chart {
        /// The chart's file stem, e.g. `latency-spectrum`.
        chart: String,
        /// What plotters reported.
        message: String,
    },
    /// `compare` needs at least two runs.
    #[error("compare needs at least 2 runs, got {given}")]
    NotEnoughRuns {
        /// How many runs were given.
        given: usize,
    },
    /// A sweep's shard directories do not make one whole sweep (a point missing or twice,
    /// shards of different sweeps), or a shard file is damaged.
    #[error("{0}")]
    Sweep(String),
}

impl ReportError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ReportError::Io { action, path: path.to_path_buf(), source }
    }
}
