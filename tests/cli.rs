//! End-to-end tests: the `sluice` binary on shipped and broken scenario files, as users and
//! CI call it. Exit codes: 0 all good, 1 an expectation or invariant failed, 2 bad input.

mod common;

use common::*;

use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    scratch_in("cli", name)
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

/// A rate typo: a million messages a second against 20 messages a second of capacity.
const RUNAWAY: &str = "name = \"typo\"\nduration = \"1h\"\npattern = \"competing-consumers\"\n\
    [workload]\nrate = \"1000000/s\"\n[consumer]\ninstances = 1\nconcurrency = 1\n\
    work = \"const(50ms)\"\n";

#[test]
fn a_runaway_backlog_stops_with_exit_1_a_plain_message_and_the_run_directory() -> TestResult {
    let dir = scratch("runaway");
    let scenario = dir.join("typo.toml");
    std::fs::write(&scenario, RUNAWAY)?;
    let out = dir.join("out");
    let o = sluice(&[
        "run",
        scenario.to_str().unwrap(),
        "--set",
        "limits.max_backlog=20000",
        "--report",
        "md",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    // warned up front, then stopped, saying when, how big, the rates and the key to raise
    assert!(t.contains("warning: offered load 1000000 messages/s exceeds"), "{t}");
    assert!(t.contains("capacity of about 20 messages/s"), "{t}");
    assert!(t.contains("runaway backlog: the run stopped at"), "{t}");
    assert!(t.contains("20001 messages in the system"), "{t}");
    assert!(t.contains("(more than limits.max_backlog = 20000)"), "{t}");
    assert!(t.contains("against completions"), "{t}");
    assert!(t.contains("--set limits.max_backlog="), "{t}");
    assert!(t.contains("replay: sluice run"), "{t}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json"))?)?;
    let limits = &summary["limits"];
    assert_eq!(limits["stopped"], true, "{summary}");
    assert_eq!(limits["backlog"], 20_001);
    assert_eq!(limits["max_backlog"], 20_000);
    assert!(limits["at_s"].as_f64().unwrap() < 1.0);
    assert!(limits["arrivals_per_s"].as_f64().unwrap() > 100_000.0);
    assert!(limits["completions_per_s"].as_f64().unwrap() < 100.0);
    assert_eq!(summary["drained"], false);
    for file in ["timeseries.csv", "report.md", "scenario.toml", "histograms/end_to_end.hlog"] {
        assert!(out.join(file).exists(), "{file} written");
    }
    assert!(std::fs::read_to_string(out.join("scenario.toml"))?.contains("max_backlog = 20000"));
    let md = std::fs::read_to_string(out.join("report.md"))?;
    assert!(md.contains("**Stopped by `limits.max_backlog`**"), "{md}");
    Ok(())
}

#[test]
fn validate_warns_when_the_offered_load_exceeds_capacity() -> TestResult {
    let dir = scratch("warn");
    let scenario = dir.join("typo.toml");
    std::fs::write(&scenario, RUNAWAY)?;
    let o = sluice(&["validate", scenario.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "a warning, not an error: {t}");
    assert!(t.contains("warning:") && t.contains("typo.toml: offered load 1000000"), "{t}");
    // peak phases count: a burst above capacity warns too; a design that keeps up does not
    let o = sluice(&["validate", "scenarios/patterns/load-leveling.toml"]);
    assert!(text(&o).contains("offered load 400 messages/s exceeds"), "{}", text(&o));
    let o = sluice(&["validate", "scenarios/validation/mmc.toml"]);
    assert!(!text(&o).contains("warning"), "{}", text(&o));
    Ok(())
}

#[test]
fn the_limits_table_is_checked_and_printed_back() -> TestResult {
    let dir = scratch("limits");
    let head = "name = \"l\"\nduration = \"10m\"\npattern = \"competing-consumers\"\n";
    let cases = [
        ("key.toml", "[limits]\nmax_backlg = 10\n", "key.toml:5:1", "did you mean `max_backlog`"),
        ("zero.toml", "[limits]\nmax_backlog = 0\n", "zero.toml:5:15", "limits.max_backlog"),
        ("type.toml", "[limits]\nmax_backlog = \"lots\"\n", "type.toml:5:15", "integer"),
    ];
    for (name, body, place, hint) in cases {
        assert_rejected(&dir, name, &format!("{head}{body}"), place, hint);
    }
    let o = sluice(&["run", "scenarios/validation/mmc.toml", "--print-scenario"]);
    assert!(text(&o).contains("[limits]\nmax_backlog = 5000000\n"), "{}", text(&o));
    let o = sluice(&[
        "run",
        "scenarios/validation/mmc.toml",
        "--set",
        "limits.max_backlog=77",
        "--print-scenario",
    ]);
    assert!(text(&o).contains("[limits]\nmax_backlog = 77\n"), "{}", text(&o));
    Ok(())
}

#[test]
fn a_long_series_keeps_every_row_in_the_csv_and_stays_deterministic() -> TestResult {
    let dir = scratch("long");
    let scenario = dir.join("long.toml");
    // 2 hours at a 1 s interval: 7200 rows, more than the in-memory downsample keeps
    std::fs::write(
        &scenario,
        "name = \"long\"\nduration = \"2h\"\ninterval = \"1s\"\npattern = \"competing-consumers\"\n\
         [workload]\nrate = \"5/s\"\n[consumer]\ninstances = 2\nconcurrency = 2\n",
    )?;
    let (a, b) = (dir.join("a"), dir.join("b"));
    for out in [&a, &b] {
        let o = sluice(&[
            "run",
            scenario.to_str().unwrap(),
            "--report",
            "md,svg",
            "--check-determinism",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("byte-identical summary.json and timeseries.csv"));
    }
    let csv = std::fs::read_to_string(a.join("timeseries.csv"))?;
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(rows.len() >= 7200, "{} rows", rows.len());
    // one row a second (the last one ends with the run, maybe before a full second)
    assert!(rows[..7199].iter().enumerate().all(|(i, r)| r.starts_with(&format!("{}.0,", i + 1))));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("summary.json"))?)?;
    let completed: u64 =
        rows.iter().map(|r| r.split(',').nth(2).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(summary["messages"]["completed"], completed);
    for file in ["timeseries.csv", "summary.json", "report.md", "charts/throughput.svg"] {
        assert_eq!(std::fs::read(a.join(file))?, std::fs::read(b.join(file))?, "{file} differs");
    }
    // finished run directories with long series compare as well
    let o = sluice(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--report",
        "md",
        "--out",
        dir.join("cmp").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // its sub-folders keep every row: copied from the inputs...
    let copied = std::fs::read(dir.join("cmp").join("a").join("timeseries.csv"))?;
    assert_eq!(copied, csv.as_bytes());
    // ...or streamed while the designs ran
    let cmp2 = dir.join("cmp2");
    let o = sluice(&[
        "compare",
        scenario.to_str().unwrap(),
        "--vary",
        "consumer.instances=2,3",
        "--report",
        "none",
        "--out",
        cmp2.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let streamed = std::fs::read(cmp2.join("long__consumer.instances_2").join("timeseries.csv"))?;
    assert_eq!(streamed, csv.as_bytes(), "the same design, the same seed, every row");
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

#[test]
fn compare_shows_the_classes_and_any_pattern_section_side_by_side() -> TestResult {
    let dir = scratch("compare-classes");
    let o = sluice(&[
        "compare",
        "scenarios/patterns/priority.toml",
        "--vary",
        "priority.design=separate-queues,one-queue",
        "--report",
        "md",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("compare.json"))?)?;
    let row = |metric: &str| -> serde_json::Value {
        let m = c["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == metric);
        m.unwrap_or_else(|| panic!("no row {metric}")).clone()
    };
    for class in ["high", "low"] {
        for field in ["messages.produced", "messages.completed", "messages.lost"] {
            let r = row(&format!("classes.{class}.{field}"));
            assert!(r["values"][0].is_number() && r["values"][1].is_number(), "{r}");
        }
    }
    // one queue puts the high class behind the low backlog: its p99 is worse, in ms
    let high = row("classes.high.latency.end_to_end.p99_ms");
    assert_eq!(
        (high["unit"].as_str(), high["label"].as_str()),
        (Some("ms"), Some("high end-to-end p99"))
    );
    assert!(high["values"][1].as_f64() > high["values"][0].as_f64(), "{high}");
    assert_eq!(high["deltas"][1]["verdict"], "worse", "{high}");
    // the same produced per class in both designs (a paired comparison)
    assert_eq!(row("classes.high.messages.produced")["deltas"][1]["verdict"], "same");
    assert!(row("priority.starved_s")["values"][0].is_number());
    let md = std::fs::read_to_string(dir.join("compare.md"))?;
    assert!(md.contains("| high end-to-end p99 |") && md.contains("| low lost |"), "{md}");
    assert!(md.contains("| priority.low.starved_s |"), "{md}");

    // a pattern section of another pattern, from two scenario files: fan-out's chaos pair
    let dir = scratch("compare-fan-out");
    let o = sluice(&[
        "compare",
        "scenarios/chaos/fan-out-ttl-drops.toml",
        "scenarios/chaos/fan-out-dead-letter.toml",
        "--report",
        "md",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("compare.json"))?)?;
    let row = |metric: &str| -> serde_json::Value {
        let m = c["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == metric);
        m.unwrap_or_else(|| panic!("no row {metric}")).clone()
    };
    let dropped = row("fan_out.partner.dropped");
    assert!(
        dropped["values"][0].as_f64() > Some(0.0) && dropped["values"][1].as_f64() == Some(0.0)
    );
    let kept = row("fan_out.partner.dead_lettered");
    assert_eq!(kept["values"][1], dropped["values"][0], "{kept} {dropped}");
    assert_eq!(row("fan_out.warehouse.latency.p99_ms")["unit"], "ms");
    assert!(row("fan_out.partner.probation_s")["unit"] == "s");
    Ok(())
}
