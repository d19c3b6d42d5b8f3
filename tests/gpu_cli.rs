//! `sluice calibrate gpu` and the gpu-worker pattern, end to end: the command without GPU
//! support, the shipped scenario and profile, profile errors with their position, and a
//! resolved scenario that replays without its profile file.

mod common;

use common::{TestResult, assert_rejected, sluice, text};

fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch_in("gpu", name)
}

fn summary(dir: &std::path::Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json"))?)?)
}

#[cfg(not(feature = "gpu"))]
#[test]
fn calibrate_without_the_gpu_feature_exits_2_and_says_how_to_rebuild() {
    let dir = scratch("calibrate");
    let out = dir.join("t4.toml");
    let o = sluice(&["calibrate", "gpu", "--kind", "T4", "--out", out.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("built without GPU support: rebuild with --features gpu"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(!out.exists(), "no profile written");
    let o = sluice(&["calibrate", "gpu", "--batches", "0,4"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--batches"), "{}", text(&o));
}

#[test]
fn the_gpu_worker_scenario_runs_and_reports_its_section_and_gpu_cost() -> TestResult {
    let dir = scratch("pattern");
    let o = sluice(&[
        "run",
        "scenarios/patterns/gpu-worker.toml",
        "--out",
        dir.to_str().unwrap(),
        "--report",
        "none",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = summary(&dir)?;
    let gpu = &s["gpu"];
    for field in ["batches", "batch_size_mean", "utilization", "oom_errors", "model_loads"] {
        assert!(gpu[field].is_number(), "gpu.{field} in {gpu}");
    }
    assert!(gpu["batches"].as_f64().unwrap() > 0.0);
    let gpu_usd = s["cost"]["gpu_usd"].as_f64().unwrap();
    let gpu_s = gpu["gpu_seconds"].as_f64().unwrap();
    // The T4 rate of pricing/azure-payg.toml, per GPU-second.
    assert!((gpu_usd - gpu_s * 0.000146).abs() < 1e-6, "{gpu_usd} vs {gpu_s} s");
    // The pattern's columns: each interval's GPU utilization and mean batch size.
    let timeseries = std::fs::read_to_string(dir.join("timeseries.csv"))?;
    let mut lines = timeseries.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name);
    let (u, b) = (col("gpu.utilization").expect("column"), col("gpu.batch_size").expect("column"));
    let rows: Vec<Vec<f64>> =
        lines.map(|l| l.split(',').map(|v| v.parse().unwrap_or(f64::NAN)).collect()).collect();
    assert!(rows.len() > 100);
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r[u])), "utilization within [0, 1]");
    let busiest = rows.iter().map(|r| r[u]).fold(0.0, f64::max);
    assert!(busiest > 0.2, "the burst keeps the GPUs busier: {busiest}");
    assert!(rows.iter().any(|r| r[b] > 2.0), "batches grow in the burst");
    Ok(())
}

#[test]
fn a_scenario_with_the_shipped_profile_runs() -> TestResult {
    let dir = scratch("profile");
    let o = sluice(&[
        "run",
        "scenarios/gpu/batch-size.toml",
        "--set",
        "duration=4m",
        "--out",
        dir.to_str().unwrap(),
        "--report",
        "none",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = summary(&dir)?;
    assert!(s["gpu"]["batches"].as_f64().unwrap() > 0.0);
    Ok(())
}

const HEAD: &str = "name = \"g\"\npattern = \"gpu-worker\"\nduration = \"1m\"\n\
                    [workload]\nrate = \"10/s\"\n[consumer]\nhosting = \"aca-job\"\n[gpu]\n";

#[test]
fn bad_gpu_settings_exit_2_with_their_position() -> TestResult {
    let dir = scratch("errors");
    let cases = [
        ("missing.toml", "profile = \"nope.toml\"\n", "missing.toml:9:11", "no such file"),
        (
            "both.toml",
            "profile = \"p.toml\"\nbatch_latency = \"linear(base=1ms, per_item=1ms)\"\n",
            "both.toml:9:11",
            "keep one",
        ),
        ("curve.toml", "batch_latency = \"linear(base=20ms)\"\n", "curve.toml:9:17", "per_item"),
        ("kind.toml", "kind = \"V100\"\n", "kind.toml:9:8", "T4"),
        ("mem.toml", "item_memory = \"300\"\n", "mem.toml:9:15", "needs a unit"),
        ("badprofile.toml", "profile = \"bad.toml\"\n", "badprofile.toml:9:11", "bad profile"),
    ];
    std::fs::write(
        dir.join("p.toml"),
        "gpu = \"x\"\nsource = \"test\"\nmeasured = false\n[[points]]\nbatch = 1\nlatency_ms = 5\n",
    )?;
    std::fs::write(dir.join("bad.toml"), "gpu = \"x\"\nsource = \"test\"\nmeasured = false\n")?;
    for (name, body, place, hint) in cases {
        assert_rejected(&dir, name, &format!("{HEAD}{body}"), place, hint);
    }
    let path = dir.join("plan.toml");
    std::fs::write(&path, HEAD.replace("aca-job", "functions-consumption") + "kind = \"T4\"\n")?;
    let o = sluice(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("runs on `[consumer] hosting = \"aca-job\"`"), "{}", text(&o));
    Ok(())
}

#[test]
fn a_resolved_scenario_replays_without_its_profile_file() -> TestResult {
    let dir = scratch("replay");
    let o = sluice(&["run", "scenarios/gpu/batch-size.toml", "--print-scenario"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let printed = String::from_utf8(o.stdout)?;
    assert!(printed.contains("batch_latency = \"table(1=22ms, 2=24ms"), "{printed}");
    assert!(!printed.contains("profile ="), "{printed}");
    let path = dir.join("resolved.toml");
    std::fs::write(&path, &printed)?;
    let o = sluice(&["run", path.to_str().unwrap(), "--print-scenario"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8(o.stdout)?, printed, "the printed scenario is a fixed point");
    Ok(())
}
