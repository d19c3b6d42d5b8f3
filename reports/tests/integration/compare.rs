use crate::{TestResult, fixture, scratch};
use reports::compare::{self, Verdict};
use reports::{Formats, ReportError, read_run_dir, write_run_dir};

fn runs() -> Vec<(String, reports::RunReport)> {
    vec![
        ("4 consumers".into(), fixture::report()),
        ("8 consumers".into(), fixture::faster_report()),
    ]
}

#[test]
fn deltas_and_verdicts() -> TestResult {
    let c = compare::build(&runs())?;
    let row = |m: &str| c.metrics.iter().find(|r| r.metric == m).unwrap().clone();
    let p99 = row("latency.end_to_end.p99_ms");
    let d = p99.deltas[1].unwrap();
    assert!(p99.deltas[0].is_none());
    assert_eq!(d.verdict, Verdict::Better);
    assert!(d.abs < 0.0 && d.pct.unwrap() < 0.0);
    let backlog = row("backlog.peak");
    assert_eq!(backlog.values, vec![Some(1012.0), Some(300.0)]);
    let d = backlog.deltas[1].unwrap();
    assert_eq!((d.abs, d.pct, d.verdict), (-712.0, Some(-70.36), Verdict::Better));
    assert_eq!(row("messages.lost").deltas[1].unwrap().verdict, Verdict::Same);
    // a sub-1 % move in a count is noise: shown, but neither better nor worse
    let completed = row("messages.completed").deltas[1].unwrap();
    assert!(completed.pct.unwrap().abs() < 1.0);
    assert_eq!(completed.verdict, Verdict::Changed);
    assert_eq!(row("drain_s").deltas[1].unwrap().verdict, Verdict::Better);
    let headline = compare::headline(&c);
    assert!(headline[0].starts_with("`8 consumers` vs `4 consumers`: "), "{headline:?}");
    assert!(headline[0].contains("(better)"));
    assert!(matches!(compare::build(&runs()[..1]), Err(ReportError::NotEnoughRuns { given: 1 })));
    Ok(())
}

#[test]
fn writes_deterministic_files_from_finished_run_dirs() -> TestResult {
    let (a, b) = (scratch("compare-a"), scratch("compare-b"));
    let fa = compare::write(&a, &runs(), &Formats::all())?;
    // The same comparison from run directories read back.
    let mut from_dirs = Vec::new();
    for (i, (label, r)) in runs().into_iter().enumerate() {
        let dir = scratch(&format!("compare-run-{i}"));
        write_run_dir(&dir, &r, &Formats::data_only())?;
        from_dirs.push((label, read_run_dir(&dir)?));
    }
    let fb = compare::write(&b, &from_dirs, &Formats::all())?;
    let names: Vec<String> =
        fa.iter().map(|f| f.strip_prefix(&a).unwrap().display().to_string()).collect();
    for expected in [
        "compare.json",
        "compare.md",
        "compare.html",
        "charts/compare-spectrum.svg",
        "charts/compare-backlog.png",
        "charts/compare-throughput.svg",
        "charts/compare-latency-p99.png",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing: {names:?}");
    }
    for (x, y) in fa.iter().zip(&fb) {
        assert!(std::fs::read(x)? == std::fs::read(y)?, "{} differs", x.display());
    }
    let md = std::fs::read_to_string(a.join("compare.md"))?;
    assert!(md.contains("| backlog peak | 1,012 | 300 (−712, −70.4%) 🟢 |"), "{md}");
    let html = std::fs::read_to_string(a.join("compare.html"))?;
    assert!(!html.contains("<script"));
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("class=\"better\""));
    Ok(())
}
