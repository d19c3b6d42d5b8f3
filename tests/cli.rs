//! End-to-end tests: the `sluice` binary on shipped and broken scenario files, as users and
//! CI call it. Exit codes: 0 all good, 1 an expectation or invariant failed, 2 bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the sluice binary runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn same_scenario_and_seed_give_byte_identical_outputs() -> TestResult {
    let (a, b, c) = (scratch("det-a"), scratch("det-b"), scratch("det-c"));
    let scenario = "scenarios/patterns/competing-consumers.toml";
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let o = sluice(&[
            "run",
            scenario,
            "--seed",
            seed,
            "--report",
            "md,svg",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains(&format!("seed {seed}")), "the seed is printed");
    }
    for file in ["summary.json", "timeseries.csv", "report.md", "charts/backlog.svg"] {
        assert_eq!(std::fs::read(a.join(file))?, std::fs::read(b.join(file))?, "{file} differs");
    }
    assert_ne!(std::fs::read(a.join("summary.json"))?, std::fs::read(c.join("summary.json"))?);
    Ok(())
}

#[test]
fn every_shipped_scenario_validates() -> TestResult {
    let mut files = Vec::new();
    for dir in std::fs::read_dir(repo().join("scenarios"))? {
        for f in std::fs::read_dir(dir?.path())? {
            let p = f?.path();
            if p.extension().is_some_and(|e| e == "toml") {
                files.push(p.strip_prefix(repo())?.display().to_string());
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let o = sluice(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    Ok(())
}

/// Each broken file: exit 2, the file:line:column, what was expected, and no panic.
#[test]
fn bad_input_exits_2_with_a_position_and_never_panics() -> TestResult {
    let dir = scratch("bad");
    let head = "name = \"bad\"\nduration = \"10m\"\npattern = \"competing-consumers\"\n";
    let cases = [
        ("syntax.toml", format!("{head}[consumer\n"), "syntax.toml:4:10", "invalid TOML"),
        (
            "unknown.toml",
            format!("{head}[consumer]\ninstanse = 3\n"),
            "unknown.toml:5:1",
            "did you mean `instances`",
        ),
        (
            "unit.toml",
            format!("{head}[queue]\nvisibility_timeout = \"30 sec\"\n"),
            "unit.toml:5:22",
            "expected",
        ),
        (
            "impossible.toml",
            format!("{head}[services.db]\nerror_rate = 1.5\n"),
            "impossible.toml:5:14",
            "between 0 and 1",
        ),
        (
            "reference.toml",
            format!("{head}[consumer]\ncalls = [\"paymnts\"]\n[services.payments]\n"),
            "reference.toml:5:10",
            "did you mean `payments`",
        ),
        (
            "trace.toml",
            format!("{head}[workload]\narrivals = \"trace\"\ntrace = \"missing.csv\"\n"),
            "trace.toml:6:9",
            "missing.csv",
        ),
        (
            "expect.toml",
            format!("{head}[expect]\n\"latency.end_to_end.p99\" = \"< 1000\"\n"),
            "expect.toml:5:1",
            "did you mean",
        ),
        (
            "plan.toml",
            format!("{head}[consumer]\nhosting = \"functions-consumptoin\"\n"),
            "plan.toml:5:11",
            "did you mean `functions-consumption`",
        ),
    ];
    for (name, body, place, hint) in cases {
        let path = dir.join(name);
        std::fs::write(&path, body)?;
        let o =
            sluice(&["run", path.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {t}");
        assert!(t.contains(place), "{name}: expected {place} in:\n{t}");
        assert!(t.contains(hint), "{name}: expected {hint:?} in:\n{t}");
        assert!(!t.contains("panicked"), "{name}: {t}");
        assert!(!dir.join("out").join("summary.json").exists(), "{name}: no partial report");
    }
    let o = sluice(&["run", "scenarios/does-not-exist.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("does-not-exist.toml"));
    let o =
        sluice(&["run", "scenarios/patterns/load-leveling.toml", "--set", "consumer.instanse=8"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--set consumer.instanse=8"), "{}", text(&o));
    let o = sluice(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
    Ok(())
}

#[test]
fn a_failed_expectation_exits_1_with_its_actual_value_and_the_replay_command() -> TestResult {
    let dir = scratch("expect");
    let o = sluice(&[
        "run",
        "scenarios/patterns/load-leveling.toml",
        "--set",
        "expect.\"latency.end_to_end.p99_ms\"=< 1s",
        "--report",
        "none",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("latency.end_to_end.p99_ms < 1s: actual"), "{t}");
    assert!(
        t.contains("replay: sluice run scenarios/patterns/load-leveling.toml --seed 42"),
        "{t}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json"))?)?;
    let failed = summary["expectations"].as_array().unwrap().iter().filter(|e| e["pass"] == false);
    assert_eq!(failed.count(), 1);
    Ok(())
}

#[test]
fn json_output_and_print_scenario_round_trip() -> TestResult {
    let dir = scratch("json");
    let o = sluice(&[
        "run",
        "scenarios/patterns/retry-backoff.toml",
        "--json",
        "--report",
        "none",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(v["schema"], 1);
    assert_eq!(v["messages"]["lost"], 0);
    assert!(
        v["services"]["partner"]["calls"].as_u64().unwrap()
            > v["messages"]["completed"].as_u64().unwrap()
    );
    // The resolved scenario prints as a file that loads and runs to the same summary.
    let o = sluice(&["run", "scenarios/patterns/retry-backoff.toml", "--print-scenario"]);
    assert_eq!(o.status.code(), Some(0));
    let printed = dir.join("printed.toml");
    std::fs::write(&printed, &o.stdout)?;
    let o2 = sluice(&[
        "run",
        printed.to_str().unwrap(),
        "--json",
        "--report",
        "none",
        "--out",
        dir.join("again").to_str().unwrap(),
    ]);
    assert_eq!(o2.status.code(), Some(0), "{}", text(&o2));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o2.stdout)?, v);
    Ok(())
}

#[test]
fn compare_two_consumer_counts() -> TestResult {
    let dir = scratch("compare");
    let o = sluice(&[
        "compare",
        "scenarios/patterns/load-leveling.toml",
        "--vary",
        "consumer.instances=4,8",
        "--report",
        "md",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("compare.json"))?)?;
    assert_eq!(c["runs"].as_array().unwrap().len(), 2);
    let p99 = c["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "latency.end_to_end.p99_ms")
        .unwrap();
    let (four, eight) = (p99["values"][0].as_f64().unwrap(), p99["values"][1].as_f64().unwrap());
    assert!(eight < four / 10.0, "8 consumers cut the burst's p99: {four} -> {eight}");
    assert!(std::fs::read_to_string(dir.join("compare.md"))?.contains("cost"));
    // Finished run directories compare too.
    let runs: Vec<String> =
        ["load-leveling__consumer.instances_4", "load-leveling__consumer.instances_8"]
            .iter()
            .map(|d| dir.join(d).display().to_string())
            .collect();
    let o = sluice(&[
        "compare",
        &runs[0],
        &runs[1],
        "--report",
        "none",
        "--out",
        dir.join("again").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    Ok(())
}

#[test]
fn breaker_table_errors_point_at_the_key_and_its_chaos_pair_fails_then_passes() -> TestResult {
    let dir = scratch("breaker");
    let head = "name = \"bad\"\nduration = \"10m\"\npattern = \"circuit-breaker\"\n\
                [consumer]\ncalls = [\"payments\"]\n[services.payments]\n[services.db]\n[breaker]\n";
    let cases = [
        ("target.toml", "target = \"paymnts\"\n", "target.toml:9:10", "names no service"),
        ("uncalled.toml", "target = \"db\"\n", "uncalled.toml:9:10", "never call \"db\""),
        (
            "probes.toml",
            "kind = \"ratio\"\nhalf_open_calls = 3\n",
            "probes.toml:10:19",
            "exactly one probe",
        ),
        ("kind.toml", "kind = \"ratoi\"\n", "kind.toml:9:8", "did you mean `ratio`"),
    ];
    for (name, body, place, hint) in cases {
        let path = dir.join(name);
        std::fs::write(&path, format!("{head}{body}"))?;
        let o = sluice(&["validate", path.to_str().unwrap()]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {t}");
        assert!(t.contains(place) && t.contains(hint), "{name}: expected {place}, {hint:?}:\n{t}");
        assert!(!t.contains("panicked"), "{name}: {t}");
    }
    // The trap dead-letters orders (exit 1); pausing the listener keeps them (exit 0).
    for (file, code) in [("breaker-abandon-trap", 1), ("breaker-pause", 0)] {
        let path = format!("scenarios/chaos/{file}.toml");
        let out = dir.join(file);
        let o = sluice(&["run", &path, "--report", "none", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(code), "{file}: {}", text(&o));
        assert!(text(&o).contains("messages.dead_lettered == 0"), "{file}: {}", text(&o));
    }
    Ok(())
}

#[test]
fn compare_shows_the_calls_a_breaker_spares_and_its_time_to_recover() -> TestResult {
    let dir = scratch("compare-breaker");
    let o = sluice(&[
        "compare",
        "scenarios/patterns/circuit-breaker.toml",
        "--vary",
        "breaker.kind=none,ratio",
        "--report",
        "md",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("compare.json"))?)?;
    let values = |metric: &str| -> (f64, f64) {
        let m = c["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == metric);
        let m = m.unwrap_or_else(|| panic!("no row {metric}"));
        (m["values"][0].as_f64().unwrap(), m["values"][1].as_f64().unwrap())
    };
    let (none, ratio) = values("services.calls");
    assert!(ratio < none * 0.6, "the breaker spares calls: {none} -> {ratio}");
    let (none, ratio) = values("breaker.recovery_s");
    assert!(none < 1.0 && ratio > none && ratio < 6.0, "recovery {none} -> {ratio}");
    let (none, ratio) = values("breaker.short_circuited");
    assert!(none == 0.0 && ratio > 1000.0);
    let md = std::fs::read_to_string(dir.join("compare.md"))?;
    assert!(md.contains("| breaker.recovery_s |"), "{md}");
    Ok(())
}
