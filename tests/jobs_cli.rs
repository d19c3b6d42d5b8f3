//! Container Apps jobs, end to end: the `[scaling]` job keys (`parallelism`,
//! `completion_count`, `messages_per_replica`) with their errors and positions, the shipped
//! one-message scenario, and its printed form that replays to the same summary.

mod common;

use common::{TestResult, assert_rejected, sluice, text};

const SCENARIO: &str = "scenarios/hosting/aca-job-one-message.toml";

fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch_in("jobs", name)
}

/// Each bad job key: exit 2, the file:line:column of the value, what was expected.
#[test]
fn bad_job_keys_exit_2_at_their_position() -> TestResult {
    let dir = scratch("bad");
    let head = "name = \"j\"\nduration = \"10m\"\npattern = \"competing-consumers\"\n";
    let job = "[consumer]\nhosting = \"aca-job\"\n[scaling]\n";
    let cases = [
        (
            "over.toml",
            format!("{head}{job}parallelism = 2\ncompletion_count = 3\n"),
            "over.toml:8:20",
            "`scaling.completion_count` (3) is above `scaling.parallelism` (2)",
        ),
        (
            "default-parallelism.toml",
            format!("{head}{job}completion_count = 2\n"),
            "default-parallelism.toml:7:20",
            "is above `scaling.parallelism` (1)",
        ),
        ("zero.toml", format!("{head}{job}parallelism = 0\n"), "zero.toml:7:15", "at least 1"),
        (
            "plan.toml",
            format!("{head}[consumer]\nhosting = \"functions-flex\"\n[scaling]\nparallelism = 2\n"),
            "plan.toml:7:15",
            "`scaling.parallelism` does not apply to hosting = \"functions-flex\"",
        ),
        (
            "quota.toml",
            format!("{head}{job}messages_per_replica = \"one\"\n"),
            "quota.toml:7:24",
            "a count of messages or \"drain\"",
        ),
        (
            "quota-plan.toml",
            format!(
                "{head}[consumer]\nhosting = \"functions-consumption\"\n[scaling]\nmessages_per_replica = 1\n"
            ),
            "quota-plan.toml:7:24",
            "does not apply to hosting = \"functions-consumption\"",
        ),
        (
            "gpu.toml",
            "name = \"g\"\nduration = \"10m\"\npattern = \"gpu-worker\"\n[consumer]\n\
             hosting = \"aca-job\"\n[scaling]\nmessages_per_replica = 1\n"
                .to_string(),
            "gpu.toml:7:24",
            "`scaling.messages_per_replica` does not apply to gpu-worker",
        ),
    ];
    for (name, body, place, hint) in cases {
        assert_rejected(&dir, name, &body, place, hint);
    }
    // "drain" and 0 both mean a replica drains the queue; the printed scenario says "drain".
    for value in ["\"drain\"", "0"] {
        let path = dir.join("drain.toml");
        std::fs::write(&path, format!("{head}{job}messages_per_replica = {value}\n"))?;
        let o = sluice(&["run", path.to_str().unwrap(), "--print-scenario"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("messages_per_replica = \"drain\"\n"), "{}", text(&o));
    }
    Ok(())
}

#[test]
fn the_one_message_scenario_passes_and_its_printed_form_replays() -> TestResult {
    let dir = scratch("one-message");
    let run = |scenario: &str, out: &str, extra: &[&str], code: i32| {
        let out = dir.join(out);
        let mut args = vec!["run", scenario, "--json", "--report", "none", "--out"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        let o = sluice(&args);
        assert_eq!(o.status.code(), Some(code), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("a summary")
    };
    let one = run(SCENARIO, "one", &[], 0);
    let completed = one["messages"]["completed"].as_u64().unwrap();
    // Every message had a replica of its own.
    assert_eq!(one["hosting"]["scale_outs"].as_u64().unwrap(), completed, "{one}");
    assert!(one["expectations"].as_array().unwrap().iter().all(|e| e["pass"] == true));
    // Replicas that drain the queue handle the same jobs with far fewer replicas (so the
    // scenario's replica-per-job expectation fails: exit 1).
    let drain = run(SCENARIO, "drain", &["--set", "scaling.messages_per_replica=drain"], 1);
    assert_eq!(drain["messages"]["completed"].as_u64().unwrap(), completed);
    assert!(drain["hosting"]["scale_outs"].as_u64().unwrap() * 10 < completed, "{drain}");
    // The resolved scenario prints the job keys and replays to the same summary.
    let o = sluice(&["run", SCENARIO, "--print-scenario"]);
    assert_eq!(o.status.code(), Some(0));
    let printed_text = String::from_utf8(o.stdout)?;
    for line in ["parallelism = 1\n", "completion_count = 1\n", "messages_per_replica = 1\n"] {
        assert!(printed_text.contains(line), "{line:?} in:\n{printed_text}");
    }
    let printed = dir.join("printed.toml");
    std::fs::write(&printed, printed_text)?;
    let again = run(printed.to_str().unwrap(), "again", &[], 0);
    assert_eq!(again, one);
    Ok(())
}
