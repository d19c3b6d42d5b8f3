//! End-to-end tests of `sluice check`, `sweep`, `capacity`, `merge` and `schema`: the
//! binary on shipped and made-up scenario files, as CI pipelines and capacity planners call it.

mod common;

use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    scratch_in("suite", name)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn json(path: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

/// A small competing-consumers scenario with the given extra lines.
fn small_scenario(dir: &Path, file: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name = \"small\"\nduration = \"2m\"\npattern = \"competing-consumers\"\n{extra}\n\
         [workload]\narrivals = \"poisson\"\nrate = \"20/s\"\n[consumer]\ninstances = 2\n\
         work = \"exp(mean=20ms)\"\n"
    );
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write scenario");
    path
}

#[test]
fn the_shipped_suite_passes_with_the_same_verdicts_on_1_and_4_threads() -> TestResult {
    let (a, b) = (scratch("check-1"), scratch("check-4"));
    let o1 = sluice(&["check", "scenarios", "--seeds", "2", "--jobs", "1", "--out", s(&a)]);
    let o4 = sluice(&["check", "scenarios", "--seeds", "2", "--jobs", "4", "--out", s(&b)]);
    assert_eq!(o1.status.code(), Some(0), "{}", text(&o1));
    assert_eq!(o4.status.code(), Some(0), "{}", text(&o4));
    assert_eq!(std::fs::read(a.join("check.json"))?, std::fs::read(b.join("check.json"))?);
    assert_eq!(o1.stdout, o4.stdout, "the same lines, in the same order");
    let check = json(&a.join("check.json"))?;
    let cases = check["cases"].as_array().ok_or("cases")?;
    let files = cases.iter().map(|c| c["file"].as_str().unwrap_or("")).collect::<Vec<_>>();
    assert!(files.contains(&"scenarios/capacity/mmc-wait.toml"), "folders recurse");
    assert_eq!(cases.len(), 2 * files.iter().collect::<std::collections::BTreeSet<_>>().len());
    assert!(
        String::from_utf8_lossy(&o1.stdout)
            .ends_with(&format!("check: {} passed, 0 failed\n", cases.len()))
    );
    // The chaos pair's broken half passes because its guarantee is broken, and says so.
    let broken = cases
        .iter()
        .find(|c| c["scenario"] == "storage-queue-crash-one-delivery")
        .ok_or("the chaos pair's broken half ran")?;
    assert_eq!(broken["pass"], true);
    assert_eq!(broken["expect_failure"], true);
    assert!(
        broken["reasons"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("expected failure: messages.dead_lettered == 0")
    );
    Ok(())
}

#[test]
fn a_failing_case_prints_its_replay_command_and_junit_names_it() -> TestResult {
    let dir = scratch("check-fail");
    small_scenario(&dir, "a-ok.toml", "[expect]\n\"messages.lost\" = \"== 0\"");
    small_scenario(&dir, "b-slo.toml", "[expect]\n\"latency.end_to_end.p99_ms\" = \"< 1ms\"");
    // The broken half of a pair whose expectations hold: "now passes" is a failure.
    small_scenario(
        &dir,
        "c-pair.toml",
        "expect_failure = true\n[expect]\n\"messages.lost\" = \"== 0\"",
    );
    let junit = dir.join("junit/junit.xml");
    let out_dir = scratch("check-fail-out");
    let o = sluice(&["check", s(&dir), "--seeds", "2", "--junit", s(&junit), "--out", s(&out_dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let b = dir.join("b-slo.toml");
    assert!(
        out.contains(&format!(
            "FAIL {} seed 1: latency.end_to_end.p99_ms < 1ms: actual ",
            b.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("  replay: sluice run {} --seed 2", b.display())), "{out}");
    assert!(out.contains("now passes: the pair no longer shows the problem"), "{out}");
    assert!(out.ends_with("check: 2 passed, 4 failed\n"), "{out}");
    let xml = std::fs::read_to_string(&junit)?;
    assert_eq!(xml.matches("<testsuite ").count(), 3, "one testsuite per file:\n{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 6, "one testcase per seed:\n{xml}");
    assert_eq!(xml.matches("<failure ").count(), 4, "{xml}");
    assert!(xml.contains(&format!("replay: sluice run {} --seed 1", b.display())), "{xml}");
    assert!(
        xml.contains("<testsuites name=\"sluice check\" tests=\"6\" skipped=\"0\" failures=\"4\""),
        "{xml}"
    );
    // Every failed case keeps its run directory, named after its file and seed.
    let failures: Vec<String> = std::fs::read_dir(out_dir.join("failures"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(failures.len(), 4, "{failures:?}");
    let b_stem =
        b.display().to_string().trim_end_matches(".toml").replace(['/', '\\', '.', ':'], "-");
    let one = out_dir.join("failures").join(format!("{}-seed-1", b_stem.trim_matches('-')));
    assert!(one.join("summary.json").is_file(), "{} in {failures:?}", one.display());
    assert_eq!(json(&out_dir.join("check.json"))?["failed"], 4);
    Ok(())
}

#[test]
fn swarm_draws_faults_from_the_seed_and_replays_with_run() -> TestResult {
    let dir = scratch("swarm");
    let path = dir.join("svc.toml");
    std::fs::write(
        &path,
        "name = \"svc\"\nduration = \"5m\"\npattern = \"competing-consumers\"\n[workload]\n\
         rate = \"30/s\"\n[consumer]\ninstances = 3\nwork = \"exp(mean=20ms)\"\ncalls = [\"api\"]\n\
         [services.api]\nlatency = \"exp(mean=10ms)\"\n[expect]\n\"latency.end_to_end.p99_ms\" = \"< 1ms\"\n",
    )?;
    let o1 = sluice(&[
        "check",
        s(&path),
        "--mode",
        "swarm",
        "--seeds",
        "6",
        "--jobs",
        "1",
        "--out",
        s(&dir.join("a")),
    ]);
    let o3 = sluice(&[
        "check",
        s(&path),
        "--mode",
        "swarm",
        "--seeds",
        "6",
        "--jobs",
        "3",
        "--out",
        s(&dir.join("b")),
    ]);
    // Swarm judges invariants and the ledger, not the (impossible) SLO.
    assert_eq!(o1.status.code(), Some(0), "{}", text(&o1));
    assert_eq!(o1.stdout, o3.stdout);
    let a = std::fs::read(dir.join("a/check.json"))?;
    assert_eq!(a, std::fs::read(dir.join("b/check.json"))?);
    let check: Value = serde_json::from_slice(&a)?;
    let replays: Vec<&str> = check["cases"]
        .as_array()
        .ok_or("cases")?
        .iter()
        .filter_map(|c| c["replay"].as_str())
        .collect();
    assert_eq!(replays.len(), 6);
    assert!(replays.iter().all(|r| r.contains("--set 'faults=[{kind = ")), "{replays:?}");
    let distinct: std::collections::BTreeSet<_> =
        replays.iter().map(|r| r.split("--set").nth(1)).collect();
    assert!(distinct.len() >= 5, "each seed draws its own faults: {replays:?}");
    // The replay command is a plain `sluice run` that loads (its SLO fails: exit 1, not 2).
    let replay = replays[0].trim_start_matches("sluice run ");
    let args = shell_words(replay);
    let mut argv: Vec<&str> = vec!["run"];
    argv.extend(args.iter().map(String::as_str));
    let out = dir.join("replay");
    argv.extend(["--report", "none", "--out", s(&out)]);
    let o = sluice(&argv);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    Ok(())
}

/// Splits a command line quoted by sluice's replay builder (single quotes only).
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[test]
fn check_determinism_runs_each_case_twice() -> TestResult {
    let dir = scratch("det");
    small_scenario(&dir, "d.toml", "");
    let o = sluice(&["check", s(&dir), "--seeds", "2", "--check-determinism"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("check: 2 passed, 0 failed"));
    Ok(())
}

#[test]
fn sweep_json_is_byte_identical_on_1_and_3_threads_and_from_2_merged_shards() -> TestResult {
    let dir = scratch("sweep");
    let base = [
        "sweep",
        "scenarios/capacity/mmc-wait.toml",
        "--set",
        "duration=10m",
        "--set",
        "warmup=1m",
        "--grid",
        "consumer.instances=10,11,12,14",
        "--grid",
        "queue.kind=service-bus,storage-queue",
        "--seeds",
        "2",
        "--report",
        "md,html",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let o = sluice(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        o
    };
    let (one, three) = (dir.join("one"), dir.join("three"));
    run(&["--jobs", "1", "--out", s(&one)]);
    run(&["--jobs", "3", "--out", s(&three)]);
    let (s1, s2) = (dir.join("shard-1"), dir.join("shard-2"));
    let o = run(&["--shard", "1/2", "--out", s(&s1)]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("wrote shard 1/2 (4 points)"));
    assert!(!s1.join("sweep.json").exists(), "a shard writes points, not the sweep");
    run(&["--shard", "2/2", "--out", s(&s2)]);
    let merged = dir.join("merged");
    let o = sluice(&["merge", s(&s2), s(&s1), "--out", s(&merged), "--report", "md,html"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for file in ["sweep.json", "sweep.csv", "sweep.md", "sweep.html"] {
        let want = std::fs::read(one.join(file))?;
        assert_eq!(want, std::fs::read(three.join(file))?, "{file}: 1 vs 3 threads");
        assert_eq!(want, std::fs::read(merged.join(file))?, "{file}: merged shards");
    }
    let sweep = json(&one.join("sweep.json"))?;
    let rows = sweep["rows"].as_array().ok_or("rows")?;
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[2]["values"]["consumer.instances"], "11");
    assert_eq!(rows[2]["values"]["queue.kind"], "service-bus");
    assert_eq!(rows[2]["runs"], 2);
    // 10 instances miss the 14 ms mean-wait SLO, 14 meet it on either queue.
    assert_eq!(rows[0]["pass"], false);
    assert_eq!(rows[0]["runs_passed"], 0);
    assert!(rows[0]["failed"]["latency.queue_wait.mean_ms < 14ms"] == 2, "{}", rows[0]);
    assert_eq!(rows[6]["pass"], true);
    let cheapest = sweep["cheapest_passing"].as_u64().ok_or("a point passes")? as usize;
    assert_eq!(rows[cheapest]["pass"], true);
    assert!(
        rows.iter()
            .filter(|r| r["pass"] == true)
            .all(|r| r["cost_usd"].as_f64() >= rows[cheapest]["cost_usd"].as_f64())
    );
    // More consumers never make the pooled p99 worse on one queue kind.
    let p99 = |i: usize| rows[i]["end_to_end"]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(p99(0) > p99(2) && p99(2) > p99(4) && p99(4) > p99(6), "{sweep}");
    // A point pools its seeds' histograms: its count is the sum of the runs' counts.
    let mut total = 0;
    for seed in ["1", "2"] {
        let single = dir.join(format!("single-{seed}"));
        let o = sluice(&[
            "run",
            "scenarios/capacity/mmc-wait.toml",
            "--set",
            "duration=10m",
            "--set",
            "warmup=1m",
            "--set",
            "consumer.instances=10",
            "--seed",
            seed,
            "--report",
            "none",
            "--out",
            s(&single),
        ]);
        // 10 instances miss the wait SLO (exit 1); the summary is written all the same.
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        total += json(&single.join("summary.json"))?["latency"]["end_to_end"]["count"]
            .as_u64()
            .ok_or("count")?;
    }
    assert_eq!(rows[0]["end_to_end"]["count"].as_u64(), Some(total));
    // Merging an incomplete set of shards is bad input, named.
    let o = sluice(&["merge", s(&s1), "--out", s(&dir.join("partial"))]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("missing: [1, 3, 5, 7]"), "{}", text(&o));
    Ok(())
}

/// Erlang C: the probability that an arrival waits in an M/M/c queue with offered load `a`.
fn erlang_c(c: u32, a: f64) -> f64 {
    // Sum a^k/k! iteratively to stay exact in floating point.
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        if k > 0 {
            term *= a / f64::from(k);
        }
        sum += term;
    }
    let last = term * a / f64::from(c) * f64::from(c) / (f64::from(c) - a);
    last / (sum + last)
}

#[test]
fn capacity_on_an_mmc_scenario_returns_erlang_cs_instance_count() -> TestResult {
    let path = repo().join("scenarios/capacity/mmc-wait.toml");
    let scenario = harness::scenario::load(&path, &[])?;
    let lambda = scenario.workload.rate_per_s;
    let sim::dist::Dist::Exp { mean } = scenario.consumer.work else {
        return Err("the capacity scenario's work is exponential".into());
    };
    let mu = 1e9 / mean as f64;
    let cond = &scenario.expect[0];
    assert_eq!(cond.metric, "latency.queue_wait.mean_ms");
    let a = lambda / mu;
    let wq_ms = |c: u32| erlang_c(c, a) / (f64::from(c) * mu - lambda) * 1e3;
    let want = (1..100).find(|&c| f64::from(c) > a && wq_ms(c) < cond.threshold).ok_or("none")?;
    assert!((wq_ms(10) - 66.87).abs() < 0.01, "the textbook M/M/10 value: {}", wq_ms(10));

    let out = scratch("capacity");
    let o = sluice(&[
        "capacity",
        "scenarios/capacity/mmc-wait.toml",
        "--vary",
        "consumer.instances=1..40",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c = json(&out.join("capacity.json"))?;
    assert_eq!(c["search"], "bisection");
    assert_eq!(c["answer"]["values"][0].as_i64(), Some(i64::from(want)), "Erlang C says {want}");
    assert!(c["evaluated"].as_array().ok_or("evaluated")?.len() <= 9, "bisection, not a scan");
    let neighbours: Vec<i64> = c["neighbours"]
        .as_array()
        .ok_or("neighbours")?
        .iter()
        .filter_map(|n| n["values"][0].as_i64())
        .collect();
    assert_eq!(neighbours, vec![i64::from(want) - 1, i64::from(want) + 1]);
    assert_eq!(c["neighbours"][0]["pass"], false);
    let headroom = c["margin"][0]["headroom"].as_f64().ok_or("headroom")?;
    let theory = 1.0 - wq_ms(want) / cond.threshold;
    assert!((headroom - theory).abs() < 0.1, "headroom {headroom} vs Erlang C {theory}");
    assert!(std::fs::read_to_string(out.join("capacity.html"))?.contains("consumer.instances=12"));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("consumer.instances={want} ")));

    // The same search on a grid gives the same answer.
    let grid = scratch("capacity-grid");
    let o = sluice(&[
        "capacity",
        "scenarios/capacity/mmc-wait.toml",
        "--vary",
        "consumer.instances=9..14",
        "--search",
        "grid",
        "--report",
        "none",
        "--out",
        s(&grid),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let g = json(&grid.join("capacity.json"))?;
    assert_eq!(g["evaluated"].as_array().ok_or("evaluated")?.len(), 6);
    assert_eq!(g["answer"]["values"][0].as_i64(), Some(i64::from(want)));
    Ok(())
}

#[test]
fn every_shipped_scenario_validates_against_the_schema_and_unknown_keys_do_not() -> TestResult {
    let o = sluice(&["schema"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let schema: Value = serde_json::from_slice(&o.stdout)?;
    let validator = jsonschema::validator_for(&schema)?;
    let mut files = Vec::new();
    let mut stack = vec![repo().join("scenarios")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 10);
    for f in &files {
        let doc: Value = toml::from_str(&std::fs::read_to_string(f)?)?;
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
    let doc: Value = toml::from_str(&std::fs::read_to_string(
        repo().join("scenarios/patterns/load-leveling.toml"),
    )?)?;
    for (path, bad) in [
        (vec![], ("colour", Value::from("blue"))),
        (vec!["consumer"], ("instanses", Value::from(4))),
        (vec!["queue"], ("kind", serde_json::json!({ "nested": 1 }))),
    ] {
        let mut d = doc.clone();
        let mut at = &mut d;
        for p in path {
            at = at.get_mut(p).ok_or("table")?;
        }
        at.as_object_mut().ok_or("object")?.insert(bad.0.into(), bad.1);
        assert!(!validator.is_valid(&d), "{} should not validate", bad.0);
    }
    let mut no_name = doc.clone();
    no_name.as_object_mut().ok_or("object")?.remove("name");
    assert!(!validator.is_valid(&no_name), "name is required");
    Ok(())
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    for (args, want) in [
        (vec!["check", "no/such/folder"], "no/such/folder: no such file or folder"),
        (
            vec!["check", "scenarios", "--mode", "smoke", "--seeds", "2"],
            "--mode smoke runs each file's own seed",
        ),
        (vec!["check", "scenarios", "--budget", "10s"], "--budget applies to --mode smoke"),
        (vec!["check", "scenarios", "--mode", "smoke", "--budget", "10 parsecs"], "--budget"),
        (
            vec!["sweep", "scenarios/capacity/mmc-wait.toml", "--grid", "consumer.instances"],
            "expected KEY=V1,V2",
        ),
        (
            vec![
                "sweep",
                "scenarios/capacity/mmc-wait.toml",
                "--grid",
                "consumer.instances=1",
                "--shard",
                "3/2",
            ],
            "--shard",
        ),
        (
            vec!["sweep", "scenarios/capacity/mmc-wait.toml", "--grid", "consumer.instancs=1,2"],
            "consumer.instancs",
        ),
        (
            vec![
                "capacity",
                "scenarios/capacity/mmc-wait.toml",
                "--vary",
                "consumer.instances=5..1",
            ],
            "HI is below LO",
        ),
        (
            vec![
                "capacity",
                "scenarios/capacity/mmc-wait.toml",
                "--vary",
                "consumer.instances=1..3",
                "--minimize",
                "cost.totl_usd",
            ],
            "--minimize",
        ),
        (vec!["merge", "scenarios", "--out", "/tmp/x"], "sweep-plan.json"),
    ] {
        let o = sluice(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
}

#[test]
fn smoke_runs_each_files_own_seed_within_a_budget() -> TestResult {
    let dir = scratch("smoke");
    small_scenario(&dir, "s.toml", "seed = 77");
    let out = dir.join("out");
    let o = sluice(&["check", s(&dir), "--mode", "smoke", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&out.join("check.json"))?["cases"][0]["seed"], 77);
    let o = sluice(&["check", s(&dir), "--mode", "smoke", "--budget", "1ms"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL smoke budget: the suite took"), "{}", text(&o));
    Ok(())
}
