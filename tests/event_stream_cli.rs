//! End-to-end tests of the `event-stream` pattern through the `sluice` binary: its table's
//! errors (positions, "did you mean"), printing it back with its `[stream.breaker]`
//! sub-table, `--set` on it, its summary section and its chaos pair.

mod common;

use common::*;

use std::path::PathBuf;

const SCENARIO: &str = "scenarios/patterns/event-stream.toml";

fn scratch(name: &str) -> PathBuf {
    scratch_in("stream", name)
}

/// The shipped scenario with `from` replaced by `to`, written to a scratch file.
fn edited(name: &str, from: &str, to: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    edited_in("stream", SCENARIO, name, from, to)
}

#[test]
fn bad_stream_tables_are_exit_2_with_positions() -> TestResult {
    let cases = [
        (
            "retries",
            "max_retries = 5",
            "max_retries = 1.5",
            "`stream.max_retries` must be a whole number",
        ),
        (
            "forever",
            "max_retries = 5",
            "max_retries = -2",
            "`stream.max_retries` must be between -1",
        ),
        (
            "retry",
            "retry = \"exponential-backoff\"",
            "retry = \"exponential\"",
            "did you mean `exponential-backoff`?",
        ),
        (
            "delays",
            "max_retry_delay = \"1m\"",
            "max_retry_delay = \"1s\"",
            "must not be shorter than `stream.retry_delay`",
        ),
        (
            "breaker-key",
            "failures = 50",
            "failurs = 50",
            "unknown key `failurs` in [stream.breaker]",
        ),
        (
            "breaker-zero",
            "pause = \"1m\"",
            "pause = \"0s\"",
            "`stream.breaker.pause` must be longer than 0s",
        ),
        ("partitions", "partitions = 32", "partitions = 0", "stream.partitions"),
        (
            "expiry",
            "park_instances = 1",
            "park_instances = 1\nownership_expiry = \"20s\"",
            "must be longer than `stream.load_balancing_interval`",
        ),
        (
            "stream-key",
            "on_failure = \"park\"",
            "on_falure = \"park\"",
            "did you mean `on_failure`?",
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
    Ok(())
}

#[test]
fn the_table_prints_back_and_loads_again_the_same() -> TestResult {
    let o = sluice(&["run", SCENARIO, "--print-scenario"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let printed = String::from_utf8(o.stdout)?;
    assert!(printed.contains("on_failure = \"park\"\npark_instances = 1\nbreaker.failures = 50\nbreaker.window = \"30s\"\nbreaker.pause = \"1m\"\n"), "{printed}");
    let path = scratch("print").join("printed.toml");
    std::fs::write(&path, &printed)?;
    let again = sluice(&["run", path.to_str().unwrap(), "--print-scenario"]);
    assert_eq!(String::from_utf8(again.stdout)?, printed);
    let set = sluice(&[
        "run",
        SCENARIO,
        "--print-scenario",
        "--set",
        "stream.retry=fixed-delay",
        "--set",
        "stream.max_retries=-1",
        "--set",
        "stream.breaker.failures=10",
    ]);
    let out = text(&set);
    assert!(out.contains("retry = \"fixed-delay\""), "{out}");
    assert!(out.contains("max_retries = -1"), "{out}");
    assert!(out.contains("breaker.failures = 10"), "{out}");
    Ok(())
}

#[test]
fn the_summary_has_the_stream_section() -> TestResult {
    let dir = scratch("run");
    let o = sluice(&["run", SCENARIO, "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
    for key in [
        "events",
        "checkpoints",
        "replayed",
        "skipped",
        "parked",
        "order_violations",
        "lag_peak",
        "paused_s",
    ] {
        assert!(summary["stream"][key].is_number(), "stream.{key}: {summary}");
    }
    assert_eq!(summary["stream"]["events"].as_f64(), summary["messages"]["produced"].as_f64());
    assert!(summary["stream"]["replayed"].as_f64().unwrap() > 0.0, "the crash replays");
    let report = std::fs::read_to_string(dir.join("report.md"))?;
    assert!(report.contains("**stream**") && report.contains("lag_peak"), "{report}");
    Ok(())
}

#[test]
fn the_chaos_pair_fails_and_passes_as_designed() -> TestResult {
    let dir = scratch("chaos");
    let out_dir = dir.to_str().unwrap();
    let broken = sluice(&["run", "scenarios/chaos/stream-skip-loses.toml", "--out", out_dir]);
    let out = text(&broken);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(out.contains("messages.lost == 0"), "{out}");
    let fixed = sluice(&["run", "scenarios/chaos/stream-retry-park.toml", "--out", out_dir]);
    assert_eq!(fixed.status.code(), Some(0), "{}", text(&fixed));
    Ok(())
}
