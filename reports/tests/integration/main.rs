//! Integration tests of the `reports` crate on a fixed synthetic run (no engine, no network).
//!
//! Golden files live in `tests/data/`; regenerate them with `SNAP_UPDATE=1 cargo test -p
//! sluice-reports` and review the diff.

// The synthetic run the tests share.
mod fixture;
// Golden-file checks of summary.json, timeseries.csv, report.md, hgrm and the text summary.
mod snapshots;
// Run directories: determinism, write -> read -> write round trip, errors.
mod rundir;
// Charts show the report's numbers; SVG/PNG bytes are deterministic.
mod charts;
// report.html: structure, self-containment, and a real Chromium screenshot when available.
mod html;
// compare.json/md/html.
mod compare;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh, empty scratch directory under Cargo's per-target temp dir.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
