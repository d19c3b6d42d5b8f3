//! Billing end to end: the Service Bus `[queue] tier` (errors with their position, the bill's
//! parts in `summary.json`) and the `aca-app` plan's idle replica time.

mod common;

use common::{TestResult, assert_rejected, sluice, text};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    common::scratch_in("billing", name)
}

fn summary(dir: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?)
}

#[test]
fn a_bad_tier_exits_2_with_its_position_and_what_was_expected() -> TestResult {
    let dir = scratch("bad-tier");
    let head = "name = \"bad\"\nduration = \"10m\"\npattern = \"competing-consumers\"\n";
    let cases = [
        (
            "typo.toml",
            format!("{head}[queue]\nkind = \"service-bus\"\ntier = \"premum\"\n"),
            "typo.toml:6:8",
            "did you mean `premium`",
        ),
        (
            "unknown.toml",
            format!("{head}[queue]\ntier = \"gold\"\n"),
            "unknown.toml:5:8",
            "basic, standard, premium",
        ),
        ("number.toml", format!("{head}[queue]\ntier = 2\n"), "number.toml:5:8", "queue.tier"),
        (
            "storage.toml",
            format!("{head}[queue]\nkind = \"storage-queue\"\ntier = \"basic\"\n"),
            "storage.toml:6:8",
            "does not apply to kind = \"storage-queue\"",
        ),
        (
            "units.toml",
            format!("{head}[queue]\ntier = \"standard\"\nmessaging_units = 2\n"),
            "units.toml:6:19",
            "does not apply to tier = \"standard\"",
        ),
        (
            "zero-units.toml",
            format!("{head}[queue]\ntier = \"premium\"\nmessaging_units = 0\n"),
            "zero-units.toml:6:19",
            "queue.messaging_units",
        ),
    ];
    for (name, body, place, hint) in cases {
        assert_rejected(&dir, name, &body, place, hint);
    }
    Ok(())
}

/// Runs the shipped hosting scenario for Container Apps apps with `sets`, into `dir`.
fn run_app(dir: &Path, sets: &[&str]) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut args = vec!["run", "scenarios/hosting/aca-app.toml", "--report", "none"];
    for s in sets {
        args.extend(["--set", s]);
    }
    args.extend(["--out", dir.to_str().unwrap()]);
    let o = sluice(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    summary(dir)
}

#[test]
fn the_summary_splits_the_service_bus_bill_by_tier() -> TestResult {
    let standard = run_app(&scratch("standard"), &[])?;
    let c = &standard["cost"];
    let part = |c: &serde_json::Value, k: &str| c[k].as_f64().unwrap_or(f64::NAN);
    assert_eq!(c["messaging_tier"], "standard");
    let parts = part(c, "messaging_base_usd") + part(c, "messaging_operations_usd");
    assert!((part(c, "messaging_usd") - parts).abs() < 2e-6, "{c}");
    // One hour of the base charge at the shipped rate ($0.0135 an hour), prorated to the
    // simulated time.
    let hours = standard["sim_time_s"].as_f64().unwrap_or(3600.0) / 3600.0;
    assert!((part(c, "messaging_base_usd") - 0.0135 * hours).abs() < 1e-4, "{c}");
    assert!(part(c, "messaging_included_operations") > 17_000.0, "{c}");
    let premium = run_app(&scratch("premium"), &["queue.tier=premium"])?;
    let p = &premium["cost"];
    assert_eq!(p["messaging_tier"], "premium");
    assert_eq!(part(p, "messaging_operations_usd"), 0.0);
    assert!(part(p, "messaging_base_usd") > 0.9 * hours, "{p}");
    let basic = run_app(&scratch("basic"), &["queue.tier=basic"])?;
    assert_eq!(part(&basic["cost"], "messaging_base_usd"), 0.0);
    // A storage queue's bill has no Service Bus parts.
    let storage = run_app(&scratch("storage"), &["queue.kind=storage-queue"])?;
    assert!(storage["cost"].get("messaging_tier").is_none(), "{}", storage["cost"]);
    Ok(())
}

#[test]
fn a_quiet_app_with_one_minimum_replica_is_billed_mostly_idle() -> TestResult {
    let quiet = ["workload.rate=1/min", "workload.phases[0].rate=1/min"];
    let s = run_app(&scratch("quiet"), &quiet)?;
    let c = &s["cost"];
    let idle = c["idle_replica_seconds"].as_f64().unwrap_or(0.0);
    let allocated = c["instance_seconds"].as_f64().unwrap_or(0.0);
    assert!(idle > 0.95 * allocated, "idle {idle} of {allocated} s: {c}");
    assert!(c["idle_usd"].as_f64().unwrap_or(0.0) > 0.0, "{c}");
    // Without a minimum replica nothing is idle-billed.
    let s = run_app(&scratch("quiet-min0"), &[&quiet[..], &["scaling.min_instances=0"]].concat())?;
    assert_eq!(s["cost"]["idle_replica_seconds"].as_f64(), Some(0.0), "{}", s["cost"]);
    Ok(())
}
