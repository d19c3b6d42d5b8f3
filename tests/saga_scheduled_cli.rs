//! End-to-end tests of the `saga` and `scheduled` patterns through the `sluice` binary: their
//! tables' errors (positions, "did you mean"), printing them back, their summary sections and
//! time series, and their chaos pairs.

mod common;

use common::*;

use std::path::PathBuf;

const SAGA: &str = "scenarios/patterns/saga.toml";
const SCHEDULED: &str = "scenarios/patterns/scheduled.toml";

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
fn bad_saga_and_schedule_tables_are_exit_2_with_positions() -> TestResult {
    let steps = "steps = [\"reserve-stock\", \"charge-payment\", \"ship\"]";
    let cases = [
        (SAGA, "state", "state = \"durable\"", "state = \"disk\"", "unknown state \"disk\""),
        (
            SAGA,
            "comp-step",
            "charge-payment = \"refund-payment\"",
            "charge = \"refund-payment\"",
            "`compensations` names \"charge\", which is not a step",
        ),
        (
            SAGA,
            "comp-service",
            "charge-payment = \"refund-payment\"",
            "charge-payment = \"refund\"",
            "`compensations` names no service: \"refund\"",
        ),
        (
            SAGA,
            "step-service",
            steps,
            "steps = [\"reserve-stock\", \"charge\", \"ship\"]",
            "`steps` names no service: \"charge\"",
        ),
        (SAGA, "twice", steps, "steps = [\"ship\", \"ship\"]", "step \"ship\" is listed twice"),
        (
            SAGA,
            "comp-type",
            "compensations = { reserve-stock",
            "compensations = [\"a\"]\nx = { reserve-stock",
            "expected a table of strings",
        ),
        (
            SAGA,
            "attempts",
            "compensation_attempts = 10",
            "compensation_attempts = 0",
            "saga.compensation_attempts",
        ),
        (
            SCHEDULED,
            "five-fields",
            "cron = \"0 */5 * * * *\"",
            "cron = \"*/5 * * * *\"",
            "has 5 fields; an NCRONTAB expression has 6",
        ),
        (
            SCHEDULED,
            "bad-cron",
            "cron = \"0 */5 * * * *\"",
            "cron = \"0 */5 25 * * *\"",
            "is not a valid NCRONTAB expression",
        ),
        (SCHEDULED, "lock", "lock = \"lease\"", "lock = \"mutex\"", "unknown lock \"mutex\""),
        (
            SCHEDULED,
            "lock-none",
            "lock = \"lease\"",
            "lock = \"none\"",
            "`lease` needs lock = \"lease\"",
        ),
        (
            SCHEDULED,
            "key",
            "renew_lease = true",
            "renew_lase = true",
            "did you mean `renew_lease`?",
        ),
    ];
    for (scenario, name, from, to, wanted) in cases {
        let path = edited(scenario, name, from, to)?;
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
fn the_tables_print_back_and_load_again_the_same() -> TestResult {
    for (scenario, wanted) in [
        (
            SAGA,
            "compensations = { \"charge-payment\" = \"refund-payment\", \"reserve-stock\" = \"release-stock\" }",
        ),
        (SCHEDULED, "cron = \"0 */5 * * * *\"\njob = \"lognormal(mean=2m, p99=8m)\""),
    ] {
        let o = sluice(&["run", scenario, "--print-scenario"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let printed = String::from_utf8(o.stdout)?;
        assert!(printed.contains(wanted), "{printed}");
        let path = scratch_in("stateful", "print").join("printed.toml");
        std::fs::write(&path, &printed)?;
        let again = sluice(&["run", path.to_str().unwrap(), "--print-scenario"]);
        assert_eq!(String::from_utf8(again.stdout)?, printed);
    }
    Ok(())
}

#[test]
fn the_summaries_have_their_sections_and_series() -> TestResult {
    for (scenario, section, keys, column) in [
        (
            SAGA,
            "saga",
            &[
                "started",
                "completed",
                "compensated",
                "failed_compensation",
                "stuck",
                "step_duplicates",
            ][..],
            "saga.open",
        ),
        (
            SCHEDULED,
            "schedule",
            &["ticks", "runs", "missed", "overlapping", "duplicate_runs"][..],
            "schedule.running",
        ),
    ] {
        let dir = scratch_in("stateful", section);
        let o = sluice(&["run", scenario, "--out", dir.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?;
        for key in keys {
            assert!(summary[section][key].is_number(), "{section}.{key}: {summary}");
        }
        let series = std::fs::read_to_string(dir.join("timeseries.csv"))?;
        let header = series.lines().next().unwrap_or_default();
        assert!(header.split(',').any(|c| c == column), "{column} in {header}");
        let report = std::fs::read_to_string(dir.join("report.md"))?;
        assert!(report.contains(&format!("**{section}**")), "{report}");
    }
    Ok(())
}

#[test]
fn the_chaos_pairs_fail_and_pass_as_designed() -> TestResult {
    let dir = scratch_in("stateful", "chaos");
    let out_dir = dir.to_str().unwrap();
    for (broken, fixed, wanted) in [
        ("saga-in-memory-stuck", "saga-durable", "saga.stuck == 0"),
        ("scheduled-lease-no-renewal", "scheduled-lease-renewed", "schedule.duplicate_runs == 0"),
    ] {
        let b = sluice(&["run", &format!("scenarios/chaos/{broken}.toml"), "--out", out_dir]);
        let out = text(&b);
        assert_eq!(b.status.code(), Some(1), "{out}");
        assert!(out.contains(wanted), "{out}");
        let f = sluice(&["run", &format!("scenarios/chaos/{fixed}.toml"), "--out", out_dir]);
        assert_eq!(f.status.code(), Some(0), "{}", text(&f));
    }
    Ok(())
}
