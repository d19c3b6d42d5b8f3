//! End-to-end tests of the `outbox` and `fire-and-forget` patterns through the `sluice`
//! binary: their tables' errors (positions, "did you mean"), `[store]`, printing back,
//! crash and restart faults on their processes, their summary sections and gauges, and their
//! chaos pairs.

mod common;

use common::*;

use std::path::PathBuf;

const OUTBOX: &str = "scenarios/patterns/outbox.toml";
const FIRE_AND_FORGET: &str = "scenarios/patterns/fire-and-forget.toml";

fn scratch(name: &str) -> PathBuf {
    scratch_in("stateful", name)
}

/// A shipped scenario with `from` replaced by `to`, written to a scratch file.
fn edited(
    scenario: &str,
    name: &str,
    from: &str,
    to: &str,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    edited_in("stateful", scenario, name, from, to)
}

#[test]
fn bad_tables_and_fault_targets_are_exit_2_with_positions() -> TestResult {
    let cases = [
        (OUTBOX, "design", "design = \"outbox\"", "design = \"dual\"", "design"),
        (
            OUTBOX,
            "interval",
            "relay_interval = \"1s\"",
            "relay_interval = \"0s\"",
            "`relay_interval` must be longer than 0",
        ),
        (OUTBOX, "batch", "relay_batch = 100", "relay_batch = 0", "outbox.relay_batch"),
        (OUTBOX, "key", "relay_batch = 100", "relay_bach = 100", "did you mean `relay_batch`?"),
        (
            OUTBOX,
            "broker",
            "idempotent_consumer = true",
            "idempotent_consumer = true\nbroker = \"sb\"",
            "unknown service `sb` in `outbox.broker` (defined: shipping)",
        ),
        (
            OUTBOX,
            "store",
            "commit_latency = \"exp(mean=5ms)\"",
            "commit_latency = \"expo(mean=5ms)\"",
            "unknown distribution `expo`",
        ),
        (OUTBOX, "store-key", "commit_latency = ", "commit_latncy = ", "commit_latency"),
        (OUTBOX, "target", "target = \"relay\"", "target = \"relai\"", "did you mean `relay`?"),
        (
            FIRE_AND_FORGET,
            "capacity",
            "channel_capacity = 1000",
            "channel_capacity = 0",
            "fire_and_forget.channel_capacity",
        ),
        (FIRE_AND_FORGET, "workers", "workers = 1", "workers = \"one\"", "fire_and_forget.workers"),
        (FIRE_AND_FORGET, "restart-target", "target = \"web\"", "target = \"api\"", "no process"),
    ];
    for (scenario, name, from, to, wanted) in cases {
        let path = edited(scenario, name, from, to)?;
        let o = sluice(&["validate", path.to_str().unwrap()]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {out}");
        assert!(out.contains(wanted), "{name}: wanted {wanted:?} in {out}");
        let file = path.to_str().unwrap();
        assert!(out.contains(&format!("{file}:")), "{name}: a position in the file: {out}");
        assert!(!out.contains("panicked"), "{name}: {out}");
    }
    Ok(())
}

#[test]
fn the_tables_print_back_and_load_again_the_same() -> TestResult {
    for (scenario, table) in [
        (
            OUTBOX,
            "[outbox]\ndesign = \"outbox\"\nrelay_interval = \"1s\"\nrelay_batch = 100\nidempotent_consumer = true\nbroker_latency = \"exp(mean=5ms)\"\n",
        ),
        (
            FIRE_AND_FORGET,
            "[fire_and_forget]\nchannel_capacity = 1000\nworkers = 1\ndrain_on_stop = true\n",
        ),
    ] {
        let o =
            sluice(&["run", scenario, "--print-scenario", "--set", "store.latency=exp(mean=2ms)"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let printed = String::from_utf8(o.stdout)?;
        assert!(printed.contains(table), "{printed}");
        assert!(printed.contains("[store]\nlatency = \"exp(mean=2ms)\"\n"), "{printed}");
        let path = scratch("print").join(format!("{}.toml", table.len()));
        std::fs::write(&path, &printed)?;
        let again = sluice(&["run", path.to_str().unwrap(), "--print-scenario"]);
        assert_eq!(String::from_utf8(again.stdout)?, printed);
    }
    let set = sluice(&["run", OUTBOX, "--print-scenario", "--set", "outbox.design=dual-write"]);
    assert!(text(&set).contains("design = \"dual-write\""), "{}", text(&set));
    // the default [store] is left out of a printed scenario, as it was before there was one
    let plain = sluice(&["run", "scenarios/patterns/load-leveling.toml", "--print-scenario"]);
    assert!(!text(&plain).contains("[store]"), "{}", text(&plain));
    Ok(())
}

#[test]
fn the_summary_has_the_outbox_section_and_the_unpublished_gauge() -> TestResult {
    let dir = scratch("outbox-run");
    let o = sluice(&["run", OUTBOX, "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
    for key in [
        "committed",
        "published",
        "unpublished",
        "duplicate_publishes",
        "duplicate_effects",
        "lost_events",
    ] {
        assert!(summary["outbox"][key].is_number(), "outbox.{key}: {summary}");
    }
    assert!(summary["outbox"]["duplicate_publishes"].as_f64() > Some(0.0), "the relay crash");
    let series = std::fs::read_to_string(dir.join("timeseries.csv"))?;
    assert!(series.lines().next().unwrap().ends_with(",outbox.unpublished"), "{series}");
    let report = std::fs::read_to_string(dir.join("report.md"))?;
    assert!(report.contains("duplicate_publishes"), "{report}");
    Ok(())
}

#[test]
fn the_chaos_pairs_fail_and_pass_as_designed() -> TestResult {
    let dir = scratch("chaos");
    let out_dir = dir.to_str().unwrap();
    for (broken, wanted, fixed) in [
        (
            "scenarios/chaos/outbox-dual-write-loses.toml",
            "outbox.lost_events == 0",
            "scenarios/chaos/outbox-relay-idempotent.toml",
        ),
        (
            "scenarios/chaos/fire-and-forget-deploy-loses.toml",
            "messages.lost == 0",
            "scenarios/chaos/load-leveling-deploy-keeps.toml",
        ),
    ] {
        let o = sluice(&["run", broken, "--out", out_dir]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(out.contains(wanted), "{out}");
        let o = sluice(&["run", fixed, "--out", out_dir]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    Ok(())
}
