//! End-to-end tests of the `fan-out` pattern through the `sluice` binary: its table's errors
//! (positions, "did you mean"), printing its array of subscriptions back, its summary section
//! and its chaos pair.

mod common;

use common::*;

use std::path::PathBuf;

const SCENARIO: &str = "scenarios/patterns/fan-out.toml";

fn scratch(name: &str) -> PathBuf {
    scratch_in("fanout", name)
}

/// The shipped scenario with `from` replaced by `to`, written to a scratch file.
fn edited(name: &str, from: &str, to: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    edited_in("fanout", SCENARIO, name, from, to)
}

#[test]
fn bad_subscriptions_are_exit_2_with_positions() -> TestResult {
    let cases = [
        (
            "key",
            "name = \"billing\"",
            "nam = \"billing\"",
            "error: unknown key `nam` in [fan_out.subscriptions[0]]",
        ),
        (
            "endpoint",
            "endpoint = \"email-api\"",
            "endpoint = \"emial-api\"",
            "`endpoint` names no service: \"emial-api\"",
        ),
        (
            "no-endpoint",
            "endpoint = \"email-api\"\n",
            "",
            "subscription `email` needs an `endpoint`",
        ),
        (
            "type",
            "event_types = [\"order-created\"]\nendpoint = \"email-api\"",
            "event_types = [\"order-creatd\"]\nendpoint = \"email-api\"",
            "`event_types` names `order-creatd`, which is not a class",
        ),
        ("ttl", "event_ttl = \"24h\"", "event_ttl = \"2d\"", "`event_ttl` must be from 1m to 24h"),
        (
            "attempts",
            "max_attempts = 30 ",
            "max_attempts = 31 ",
            "fan_out.subscriptions[1].max_attempts",
        ),
        (
            "twice",
            "name = \"analytics\"",
            "name = \"billing\"",
            "two subscriptions are named `billing`",
        ),
        ("dots", "name = \"analytics\"", "name = \"a.b\"", "subscription name `a.b`"),
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
    let path = edited("suggest", "name = \"billing\"", "nam = \"billing\"")?;
    let out = text(&sluice(&["validate", path.to_str().unwrap()]));
    assert!(out.contains("did you mean `name`?"), "{out}");
    Ok(())
}

#[test]
fn the_subscriptions_print_back_and_load_again_the_same() -> TestResult {
    let o = sluice(&["run", SCENARIO, "--print-scenario"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let printed = String::from_utf8(o.stdout)?;
    assert!(
        printed.contains("[fan_out]\nsubscriptions = [{ name = \"billing\", event_types = [\"order-created\", \"order-cancelled\"], endpoint = \"billing-api\", dead_letter = true }, "),
        "{printed}"
    );
    let path = scratch("print").join("printed.toml");
    std::fs::write(&path, &printed)?;
    let again = sluice(&["run", path.to_str().unwrap(), "--print-scenario"]);
    assert_eq!(String::from_utf8(again.stdout)?, printed);
    Ok(())
}

#[test]
fn the_summary_has_the_fan_out_section() -> TestResult {
    let dir = scratch("run");
    let o = sluice(&["run", SCENARIO, "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
    let f = &summary["fan_out"];
    for sub in ["billing", "email", "analytics"] {
        for key in ["matched", "delivered", "retried", "dead_lettered", "dropped", "latency.p99_ms"]
        {
            assert!(f[format!("{sub}.{key}")].is_number(), "fan_out.{sub}.{key}: {f}");
        }
    }
    let copies: f64 = ["billing", "email", "analytics"]
        .iter()
        .map(|s| f[format!("{s}.matched")].as_f64().unwrap())
        .sum();
    assert_eq!(summary["messages"]["produced"].as_f64(), Some(copies), "one message per copy");
    let report = std::fs::read_to_string(dir.join("report.md"))?;
    assert!(report.contains("**fan_out**") && report.contains("email.retried"), "{report}");
    Ok(())
}

#[test]
fn the_chaos_pair_fails_and_passes_as_designed() -> TestResult {
    let dir = scratch("chaos");
    let out_dir = dir.to_str().unwrap();
    let broken = sluice(&["run", "scenarios/chaos/fan-out-ttl-drops.toml", "--out", out_dir]);
    let out = text(&broken);
    assert_eq!(broken.status.code(), Some(1), "{out}");
    assert!(out.contains("fan_out.partner.dropped == 0"), "{out}");
    let fixed = sluice(&["run", "scenarios/chaos/fan-out-dead-letter.toml", "--out", out_dir]);
    assert_eq!(fixed.status.code(), Some(0), "{}", text(&fixed));
    Ok(())
}
