//! End-to-end tests of the `priority` pattern through the `sluice` binary: its table's
//! errors (positions, "did you mean"), printing it back, `--set` on its sub-tables, its
//! summary section and its chaos pair.

mod common;

use common::*;

use std::path::PathBuf;

const SCENARIO: &str = "scenarios/patterns/priority.toml";

fn scratch(name: &str) -> PathBuf {
    scratch_in("prio", name)
}

/// The shipped scenario with `from` replaced by `to`, written to a scratch file.
fn edited(name: &str, from: &str, to: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    edited_in("prio", SCENARIO, name, from, to)
}

#[test]
fn bad_priority_tables_are_exit_2_with_positions() -> TestResult {
    let cases = [
        (
            "order",
            "order = [\"high\", \"low\"]",
            "order = [\"high\", \"lo\"]",
            "error: `priority.order` names `lo`, which is not a class of [workload.classes]",
        ),
        (
            "twice",
            "order = [\"high\", \"low\"]",
            "order = [\"high\", \"high\"]",
            "error: `priority.order` names `high` twice",
        ),
        ("design", "design = \"separate-queues\"", "design = \"fifo\"", "unknown design \"fifo\""),
        (
            "pool-key",
            "[priority.pools.low]\ninstances = 2",
            "[priority.pools.low]\ninstancs = 2",
            "error: unknown key `instancs` in [priority.pools.low]",
        ),
        (
            "pool-class",
            "[priority.pools.low]",
            "[priority.pools.lo]",
            "error: [priority.pools.lo]: `lo` is not a class of [workload.classes]",
        ),
        (
            "pool-zero",
            "[priority.pools.low]\ninstances = 2",
            "[priority.pools.low]\ninstances = 0",
            "priority.pools.low.instances",
        ),
    ];
    for (name, from, to, wanted) in cases {
        let path = edited(name, from, to)?;
        let o = sluice(&["validate", path.to_str().unwrap()]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {out}");
        assert!(out.contains(wanted), "{name}: {out}");
        let file = path.to_str().unwrap();
        assert!(out.contains(&format!("{file}:")), "{name}: a position in the file: {out}");
        assert!(!out.contains("panicked"), "{name}: {out}");
    }
    let path = edited(
        "suggest",
        "[priority.pools.low]\ninstances = 2",
        "[priority.pools.low]\ninstancs = 2",
    )?;
    let out = text(&sluice(&["validate", path.to_str().unwrap()]));
    assert!(out.contains("did you mean `instances`?"), "{out}");
    Ok(())
}

#[test]
fn the_table_prints_back_and_loads_again_the_same() -> TestResult {
    let o = sluice(&["run", SCENARIO, "--print-scenario"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let printed = String::from_utf8(o.stdout)?;
    assert!(printed.contains("[priority]\ndesign = \"separate-queues\"\norder = [\"high\", \"low\"]\npools.high.instances = 2\npools.low.instances = 2\n"), "{printed}");
    let path = scratch("print").join("printed.toml");
    std::fs::write(&path, &printed)?;
    let again = sluice(&["run", path.to_str().unwrap(), "--print-scenario"]);
    assert_eq!(String::from_utf8(again.stdout)?, printed);
    let set = sluice(&[
        "run",
        SCENARIO,
        "--print-scenario",
        "--set",
        "priority.design=strict",
        "--set",
        "priority.pools.low.work=const(1s)",
    ]);
    let out = text(&set);
    assert!(out.contains("design = \"strict\""), "{out}");
    assert!(out.contains("pools.low.work = \"const(1s)\""), "{out}");
    Ok(())
}

#[test]
fn the_summary_has_the_priority_section_and_classes() -> TestResult {
    let dir = scratch("run");
    let o = sluice(&["run", SCENARIO, "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
    for key in ["starved_s", "high.starved_s", "low.starved_s"] {
        assert!(summary["priority"][key].is_number(), "priority.{key}: {summary}");
    }
    let high = summary["classes"]["high"]["latency"]["end_to_end"]["p99_ms"].as_f64().unwrap();
    let low = summary["classes"]["low"]["latency"]["end_to_end"]["p99_ms"].as_f64().unwrap();
    assert!(high * 10.0 < low, "separate pools: high p99 {high} ms, low p99 {low} ms");
    let report = std::fs::read_to_string(dir.join("report.md"))?;
    assert!(report.contains("**priority**") && report.contains("low.starved_s"), "{report}");
    Ok(())
}

#[test]
fn the_chaos_pair_fails_and_passes_as_designed() -> TestResult {
    let dir = scratch("chaos");
    let out_dir = dir.to_str().unwrap();
    let broken = sluice(&["run", "scenarios/chaos/priority-strict-starves.toml", "--out", out_dir]);
    let out = text(&broken);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(out.contains("priority.low.starved_s < 60"), "{out}");
    let fixed = sluice(&["run", "scenarios/chaos/priority-separate-pools.toml", "--out", out_dir]);
    assert_eq!(fixed.status.code(), Some(0), "{}", text(&fixed));
    Ok(())
}
