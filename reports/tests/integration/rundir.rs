use crate::{TestResult, fixture, scratch};
use reports::{Formats, ReportError, read_run_dir, write_run_dir};
use std::path::{Path, PathBuf};

fn relative(dir: &Path, files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.strip_prefix(dir).unwrap().display().to_string()).collect()
}

fn assert_same_files(a: &Path, fa: &[PathBuf], b: &Path, fb: &[PathBuf]) {
    assert_eq!(relative(a, fa), relative(b, fb));
    for (x, y) in fa.iter().zip(fb) {
        let (bx, by) = (std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        assert!(bx == by, "{} and {} differ", x.display(), y.display());
    }
}

#[test]
fn writes_the_documented_files() -> TestResult {
    let dir = scratch("rundir-files");
    let files = write_run_dir(&dir, &fixture::report(), &Formats::all())?;
    let names = relative(&dir, &files);
    for expected in [
        "summary.json",
        "timeseries.csv",
        "run.json",
        "scenario.toml",
        "histograms/end_to_end.hlog",
        "histograms/end_to_end.hgrm",
        "histograms/queue_wait.hlog",
        "histograms/handler.hgrm",
        "histograms/accept.hlog",
        "charts/latency-spectrum.svg",
        "charts/latency-spectrum.png",
        "charts/latency-over-time.png",
        "charts/throughput.svg",
        "charts/backlog.png",
        "charts/failures.svg",
        "charts/instances.png",
        "report.md",
        "report.html",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    for f in &files {
        assert!(f.is_file() && std::fs::metadata(f)?.len() > 0, "{} empty", f.display());
    }
    Ok(())
}

#[test]
fn data_only_writes_no_charts_or_pages() -> TestResult {
    let dir = scratch("rundir-data-only");
    let files = write_run_dir(&dir, &fixture::report(), &Formats::data_only())?;
    let names = relative(&dir, &files);
    assert!(
        names.iter().all(|n| !n.starts_with("charts/") && !n.starts_with("report.")),
        "{names:?}"
    );
    assert_eq!(names.len(), 4 + 2 * 4);
    Ok(())
}

#[test]
fn same_results_give_identical_bytes() -> TestResult {
    let (a, b) = (scratch("rundir-det-a"), scratch("rundir-det-b"));
    let fa = write_run_dir(&a, &fixture::report(), &Formats::all())?;
    let fb = write_run_dir(&b, &fixture::report(), &Formats::all())?;
    assert_same_files(&a, &fa, &b, &fb);
    Ok(())
}

#[test]
fn write_read_write_round_trips() -> TestResult {
    let (a, b) = (scratch("rundir-rt-a"), scratch("rundir-rt-b"));
    let report = fixture::report();
    let fa = write_run_dir(&a, &report, &Formats::all())?;
    let back = read_run_dir(&a)?;
    assert_eq!(back, report);
    let fb = write_run_dir(&b, &back, &Formats::all())?;
    assert_same_files(&a, &fa, &b, &fb);
    // serde round trip of the whole model (histograms as base64 V2+deflate).
    let json = serde_json::to_string(&report)?;
    assert_eq!(serde_json::from_str::<reports::RunReport>(&json)?, report);
    Ok(())
}

#[test]
fn read_errors_name_the_file() -> TestResult {
    let dir = scratch("rundir-errors");
    let err = read_run_dir(&dir.join("nope")).unwrap_err();
    assert!(matches!(err, ReportError::Io { .. }));
    assert!(err.to_string().contains("summary.json"), "{err}");

    write_run_dir(&dir, &fixture::report(), &Formats::data_only())?;
    std::fs::write(dir.join("run.json"), "{ not json")?;
    let err = read_run_dir(&dir).unwrap_err();
    assert!(
        matches!(err, ReportError::Json { .. }) && err.to_string().contains("run.json"),
        "{err}"
    );

    write_run_dir(&dir, &fixture::report(), &Formats::data_only())?;
    std::fs::write(dir.join("histograms/handler.hlog"), "#empty\n")?;
    let err = read_run_dir(&dir).unwrap_err();
    assert!(err.to_string().contains("handler.hlog"), "{err}");

    write_run_dir(&dir, &fixture::report(), &Formats::data_only())?;
    std::fs::write(dir.join("timeseries.csv"), "t_s,arrivals\nx,1\n")?;
    let err = read_run_dir(&dir).unwrap_err();
    assert!(matches!(err, ReportError::Csv { .. }) && err.to_string().contains("timeseries.csv"));
    Ok(())
}

#[test]
fn an_empty_run_still_writes_everything() -> TestResult {
    // No messages, no intervals, empty histograms, no faults, no expectations, not drained.
    let mut scenario = fixture::scenario();
    scenario.expect.clear();
    scenario.faults.clear();
    let mut results = fixture::results();
    results.ledger = Default::default();
    results.timeseries = Default::default();
    results.faults.clear();
    results.drained = false;
    results.sim_time = 0;
    for l in results.latency.values_mut() {
        *l = sim::results::Latency::new(0);
    }
    let report = reports::RunReport::new(&scenario, &results, Default::default());
    let dir = scratch("rundir-empty");
    let files = write_run_dir(&dir, &report, &Formats::all())?;
    assert!(files.len() > 20);
    assert_eq!(read_run_dir(&dir)?, report);
    let text = reports::text::summary(&report);
    assert!(text.contains("NOT drained"), "{text}");
    let html = std::fs::read_to_string(dir.join("report.html"))?;
    assert!(html.contains("No faults were injected."));
    assert!(html.contains("no expectations"));
    Ok(())
}
