//! End-to-end tests of loading: errors with their exact positions, defaults per queue kind,
//! `--set` overrides, data files, the round trip through `to_toml`, and garbage input.

use super::*;
use sim::dist::Dist;
use sim::spec::{Arrivals, Backoff, CmpOp, FaultKind, QueueKind, QueueSpec, RetrySpec};
use sim::time::{NS_PER_DAY, NS_PER_H, NS_PER_MIN, NS_PER_MS, NS_PER_S};
use std::path::PathBuf;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The example from design.md, "Scenario files (TOML)".
const DESIGN_EXAMPLE: &str = r#"name = "orders-burst"            # required
description = "Black Friday burst absorbed by a queue"
seed = 42                        # default 1; --seed overrides
duration = "2h"                  # how long the workload produces
drain = "1h"
warmup = "0s"
interval = "10s"
pattern = "competing-consumers"

[workload]
arrivals = "poisson"             # constant | poisson | trace
rate = "100/s"
[[workload.phases]]
from = "10m"
to = "15m"
rate = "2000/s"
[workload.classes]
normal = 0.999
poison = 0.001

[queue]
kind = "service-bus"
visibility_timeout = "30s"
max_delivery_count = 5
ttl = "24h"
capacity = 0

[consumer]
instances = 4
concurrency = 16
batch_size = 16
work = "lognormal(mean=200ms, p99=2s)"
calls = ["payments"]

[services.payments]
latency = "exp(mean=50ms)"
error_rate = 0.01
timeout = "10s"

[retry]
backoff = "exponential"
base = "2s"
max_delay = "5m"
max_attempts = 0
jitter = false

[[faults]]
kind = "outage"
target = "payments"
from = "30m"
to = "40m"

[[faults]]
kind = "crash"
target = "consumer"
at = "45m"
instances = 2
restart_after = "1m"

[expect]
"messages.lost" = "== 0"
"latency.end_to_end.p99_ms" = "< 30s"
"messages.dead_lettered" = "<= 10"
"#;

/// The smallest valid file.
const MINIMAL: &str = "name = \"min\"\nduration = \"1h\"\npattern = \"load-leveling\"\n";

fn load_text(text: &str) -> Result<Scenario, ScenarioError> {
    load_str(text, Path::new("scenarios/x.toml"), &[])
}

fn load_with(text: &str, sets: &[&str]) -> Result<Scenario, ScenarioError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_str(text, Path::new("scenarios/x.toml"), &sets)
}

/// The error's display for `text` appended to the minimal file (which has 3 lines).
fn error_after_minimal(extra: &str) -> String {
    match load_text(&format!("{MINIMAL}{extra}")) {
        Ok(_) => panic!("expected an error for:\n{extra}"),
        Err(e) => e.to_string(),
    }
}

/// A fresh, empty folder for files a test writes.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-scenario-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_design_example_loads() -> TestResult {
    let s = load_text(DESIGN_EXAMPLE)?;
    assert_eq!((s.name.as_str(), s.seed, s.duration), ("orders-burst", 42, 2 * NS_PER_H));
    assert_eq!((s.drain, s.warmup, s.interval), (Some(NS_PER_H), 0, 10 * NS_PER_S));
    assert_eq!(s.pattern, sim::patterns::competing_consumers::KIND);
    assert_eq!(s.workload.rate_per_s, 100.0);
    assert_eq!(s.workload.phases[0].rate_per_s, 2000.0);
    assert_eq!(s.workload.classes, vec![("normal".into(), 0.999), ("poison".into(), 0.001)]);
    assert_eq!(s.queue.visibility_timeout, 30 * NS_PER_S);
    assert_eq!((s.queue.max_delivery_count, s.queue.ttl), (5, Some(24 * NS_PER_H)));
    assert_eq!(s.consumer.work, Dist::lognormal(200 * NS_PER_MS, 2 * NS_PER_S)?);
    assert_eq!(s.consumer.calls, vec!["payments".to_string()]);
    assert_eq!(s.services["payments"].timeout, Some(10 * NS_PER_S));
    assert_eq!(s.retry, Some(RetrySpec::default()));
    assert_eq!(s.faults[0].kind, FaultKind::Outage { from: 30 * NS_PER_MIN, to: 40 * NS_PER_MIN });
    let crash =
        FaultKind::Crash { at: 45 * NS_PER_MIN, instances: 2, restart_after: Some(NS_PER_MIN) };
    assert_eq!(s.faults[1].kind, crash);
    let metrics: Vec<&str> = s.expect.iter().map(|e| e.metric.as_str()).collect();
    assert_eq!(metrics, ["messages.lost", "latency.end_to_end.p99_ms", "messages.dead_lettered"]);
    assert_eq!((s.expect[1].op, s.expect[1].threshold), (CmpOp::Lt, 30_000.0));
    assert_eq!(s.expect[1].condition, "< 30s");
    Ok(())
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() -> TestResult {
    let s = load_text(MINIMAL)?;
    let d = Scenario::default();
    assert_eq!((s.seed, s.drain, s.warmup, s.interval), (1, None, 0, 10 * NS_PER_S));
    assert_eq!(s.pattern, sim::patterns::load_leveling::KIND);
    assert_eq!((&s.workload, &s.api, &s.queue), (&d.workload, &d.api, &d.queue));
    assert_eq!(s.queue, QueueSpec::service_bus());
    assert_eq!(s.consumer, d.consumer);
    assert_eq!(s.consumer.batch_size, 1);
    assert!(
        s.services.is_empty() && s.retry.is_none() && s.faults.is_empty() && s.expect.is_empty()
    );
    Ok(())
}

#[test]
fn storage_queue_defaults_then_the_keys_given() -> TestResult {
    let s = load_text(&format!("{MINIMAL}[queue]\nkind = \"storage-queue\"\n"))?;
    assert_eq!(s.queue, QueueSpec::storage_queue());
    assert_eq!((s.queue.visibility_timeout, s.queue.max_delivery_count), (10 * NS_PER_MIN, 5));
    assert_eq!(s.queue.ttl, Some(7 * NS_PER_DAY));
    assert_eq!(s.consumer.batch_size, 16);
    let s = load_text(&format!(
        "{MINIMAL}[queue]\nkind = \"storage-queue\"\nmax_delivery_count = 3\nttl = \"never\"\n\
         new_batch_threshold = 4\n[consumer]\nbatch_size = 32\n"
    ))?;
    assert_eq!((s.queue.max_delivery_count, s.queue.ttl), (3, None));
    assert_eq!((s.queue.new_batch_threshold, s.consumer.batch_size), (Some(4), 32));
    assert_eq!(s.queue.visibility_timeout, 10 * NS_PER_MIN);
    Ok(())
}

#[test]
fn unknown_keys_point_at_the_key_and_suggest_a_name() {
    assert_eq!(
        error_after_minimal("[consumer]\ninstances = 2\n  instanse = 3\n"),
        "scenarios/x.toml:6:3: error: unknown key `instanse` in [consumer]\n  \
         expected one of: instances, concurrency, batch_size, work, calls, poll_interval, hosting, memory, cpu, execution_timeout, worker_model, cpu_bound\n  \
         did you mean `instances`?"
    );
    assert_eq!(
        error_after_minimal("[services.db]\nlatncy = \"1ms\"\n"),
        "scenarios/x.toml:5:1: error: unknown key `latncy` in [services.db]\n  \
         expected one of: latency, error_rate, timeout, max_concurrency, over_limit, retry_after\n  \
         did you mean `latency`?"
    );
    let e = error_after_minimal("[breakers]\nmax = 3\n");
    assert!(
        e.starts_with("scenarios/x.toml:4:2: error: unknown key `breakers` at the top level"),
        "{e}"
    );
    assert!(e.contains("did you mean `breaker`?"), "{e}"); // the circuit-breaker's table
    let e = error_after_minimal("[scaling]\nmax_instances = 3\n");
    assert!(
        e.starts_with(
            "scenarios/x.toml:4:1: error: [scaling] does not apply to hosting = \"worker\""
        ),
        "{e}"
    );
}

#[test]
fn syntax_and_type_errors_have_positions() {
    assert_eq!(
        error_after_minimal("[consumer\n"),
        "scenarios/x.toml:4:10: error: invalid TOML: unclosed table, expected `]`"
    );
    assert_eq!(
        error_after_minimal("name = \"again\"\n"),
        "scenarios/x.toml:4:1: error: invalid TOML: duplicate key `name`"
    );
    assert_eq!(
        error_after_minimal("[consumer]\ninstances = \"3\"\n"),
        "scenarios/x.toml:5:13: error: wrong type for `consumer.instances`: expected an integer, \
         found string \"3\""
    );
    assert_eq!(
        error_after_minimal("[consumer]\ncalls = \"db\"\n"),
        "scenarios/x.toml:5:9: error: wrong type for `consumer.calls`: expected an array, \
         found string \"db\""
    );
    assert_eq!(
        error_after_minimal("queue = 3\n"),
        "scenarios/x.toml:4:9: error: wrong type for `queue`: expected a table, found integer 3"
    );
    assert_eq!(
        error_after_minimal("[retry]\njitter = \"yes\"\n"),
        "scenarios/x.toml:5:10: error: wrong type for `retry.jitter`: expected true or false, \
         found string \"yes\""
    );
    assert_eq!(
        error_after_minimal("drain = 1979-05-27\n"),
        "scenarios/x.toml:4:9: error: wrong type for `drain`: expected a duration string like \
         \"30s\", found date-time 1979-05-27"
    );
}

#[test]
fn bad_units_point_at_the_value() {
    let text = "name = \"x\"\npattern = \"load-leveling\"\n\n\n\n\nduration = \"30 sec\"\n";
    assert_eq!(
        load_text(text).unwrap_err().to_string(),
        "scenarios/x.toml:7:12: error: bad duration \"30 sec\": expected a number followed by \
         ns, us, ms, s, m, h or d (e.g. \"30s\")\n  did you mean \"30s\"?"
    );
    assert_eq!(
        error_after_minimal("interval = 10\n"),
        "scenarios/x.toml:4:12: error: wrong type for `interval`: expected a duration string \
         like \"30s\", found integer 10\n  did you mean \"10s\"?"
    );
    assert_eq!(
        error_after_minimal("[workload]\nrate = \"100 per s\"\n"),
        "scenarios/x.toml:5:8: error: bad rate \"100 per s\": expected a number followed by /s, \
         /min or /h (e.g. \"100/s\")"
    );
    assert_eq!(
        error_after_minimal("[consumer]\nwork = \"lognormal(mean=2s, p99=1s)\"\n"),
        "scenarios/x.toml:5:8: error: bad distribution \"lognormal(mean=2s, p99=1s)\": lognormal: \
         p99 must be above the mean and at most about 15 times it (a log-normal with mean 2s \
         cannot have p99 1s)"
    );
    assert_eq!(
        error_after_minimal("[api]\naccept = \"expo(mean=1ms)\"\n"),
        "scenarios/x.toml:5:10: error: bad distribution \"expo(mean=1ms)\": unknown distribution \
         `expo`; expected one of const, uniform, exp, normal, lognormal, pareto, empirical\n  \
         did you mean \"exp(mean=1ms)\"?"
    );
}

#[test]
fn impossible_values_are_rejected_at_the_value() {
    let cases = [
        (
            "[consumer]\ninstances = 0\n",
            "5:13",
            "`consumer.instances` must be at least 1 (found 0)",
        ),
        ("[consumer]\nconcurrency = -2\n", "5:15", "`consumer.concurrency` must be at least 1"),
        ("[queue]\nkind = \"storage-queue\"\n[consumer]\nbatch_size = 33\n", "7:14", "at most 32"),
        ("[queue]\nmax_delivery_count = 0\n", "5:22", "must be at least 1"),
        ("[queue]\nvisibility_timeout = \"10m\"\n", "5:22", "between 1ns and 5m"),
        (
            "[queue]\nmax_polling_interval = \"10ms\"\n",
            "5:24",
            "must be at least 100ms (found 10ms)",
        ),
        ("[queue]\nttl = \"0s\"\n", "5:7", "`queue.ttl` must be longer than 0s"),
        ("[services.db]\nerror_rate = 1.5\n", "5:14", "between 0 and 1 (found 1.5)"),
        ("[workload]\nrate = \"0/s\"\n", "5:8", "the rate must be positive"),
        ("[workload.classes]\na = 0\nb = 0\n", "4:1", "at least one class with a weight above 0"),
        ("[workload.classes]\na = -1\n", "5:5", "must be at least 0"),
        ("[retry]\nbase = \"10s\"\nmax_delay = \"1s\"\n", "6:13", "must not be below `retry.base`"),
        ("[retry]\nbackoff = \"exponentail\"\n", "5:11", "unknown backoff \"exponentail\""),
        ("warmup = \"2h\"\n", "4:10", "`warmup` (2h) must be shorter than `duration` (1h)"),
        ("seed = -1\n", "4:8", "`seed` must be at least 0"),
        (
            "[queue]\nkind = \"storage-queue\"\nprefetch = 32\n",
            "6:12",
            "`queue.prefetch` applies to Service Bus only",
        ),
        ("[queue]\nprefetch = -1\n", "5:12", "`queue.prefetch` must be at least 0"),
        (
            "[queue]\nprefetch = 10\n[consumer]\nhosting = \"aca-job\"\n",
            "5:12",
            "`queue.prefetch` does not apply to hosting = \"aca-job\"",
        ),
    ];
    for (extra, pos, needle) in cases {
        let e = error_after_minimal(extra);
        assert!(e.starts_with(&format!("scenarios/x.toml:{pos}: error: ")), "{extra:?}: {e}");
        assert!(e.contains(needle), "{extra:?}: {e}");
    }
}

#[test]
fn phases_must_be_windows_that_do_not_overlap() -> TestResult {
    let phases = "[[workload.phases]]\nfrom = \"20m\"\nto = \"30m\"\nrate = \"5/s\"\n\
                  [[workload.phases]]\nfrom = \"10m\"\nto = \"15m\"\nrate = \"6/s\"\n";
    let s = load_text(&format!("{MINIMAL}{phases}"))?;
    let froms: Vec<u64> = s.workload.phases.iter().map(|p| p.from).collect();
    assert_eq!(froms, [10 * NS_PER_MIN, 20 * NS_PER_MIN], "sorted by from");
    let overlap = phases.replace("to = \"15m\"", "to = \"25m\"");
    assert_eq!(
        error_after_minimal(&overlap),
        "scenarios/x.toml:5:8: error: phase [20m, 30m) overlaps phase [10m, 25m)\n  \
         phases must not overlap"
    );
    let backwards = "[[workload.phases]]\nfrom = \"20m\"\nto = \"10m\"\nrate = \"5/s\"\n";
    let e = error_after_minimal(backwards);
    assert!(
        e.starts_with("scenarios/x.toml:6:6: error: `workload.phases[0].to` (10m) must be after"),
        "{e}"
    );
    let e = error_after_minimal("[[workload.phases]]\nfrom = \"1m\"\nrate = \"5/s\"\n");
    assert_eq!(
        e,
        "scenarios/x.toml:4:1: error: missing required key `to` in [[workload.phases]] (entry 1)\n  \
         e.g. to = \"15m\""
    );
    Ok(())
}

#[test]
fn references_to_unknown_services_suggest_known_ones() {
    let services = "[services.payments]\n[services.inventory]\n";
    assert_eq!(
        error_after_minimal(&format!(
            "{services}[consumer]\ncalls = [\"inventory\", \"paymnts\"]\n"
        )),
        "scenarios/x.toml:7:23: error: unknown service `paymnts` in `consumer.calls[1]`\n  \
         expected one of: inventory, payments\n  did you mean `payments`?"
    );
    assert_eq!(
        error_after_minimal("[consumer]\ncalls = [\"db\"]\n"),
        "scenarios/x.toml:5:10: error: unknown service `db` in `consumer.calls[0]`\n  \
         no services are defined: add a [services.db] table"
    );
    let fault = "[[faults]]\nkind = \"outage\"\ntarget = \"paymnt\"\nfrom = \"1m\"\nto = \"2m\"\n";
    let e = error_after_minimal(&format!("{services}{fault}"));
    assert!(
        e.starts_with(
            "scenarios/x.toml:8:10: error: unknown service `paymnt` in `faults[0].target`"
        ),
        "{e}"
    );
    assert!(e.ends_with("did you mean `payments`?"), "{e}");
}

#[test]
fn class_work_names_a_class_and_takes_a_distribution() {
    let ok = "[workload.classes]\nnormal = 0.9\nslow = 0.1\n[workload.class_work]\nslow = \"const(7m)\"\n";
    let s = load_text(&format!("{MINIMAL}{ok}")).unwrap();
    assert_eq!(
        s.workload.class_work,
        vec![("slow".into(), sim::dist::Dist::Const(7 * NS_PER_MIN))]
    );
    let e = error_after_minimal(&ok.replace("slow = \"const", "slwo = \"const"));
    assert!(e.contains("\"slwo\" is not a class of [workload.classes]"), "{e}");
    assert!(e.ends_with("did you mean `slow`?"), "{e}");
    let e = error_after_minimal(&ok.replace("const(7m)", "cnst(7m)"));
    assert!(e.starts_with("scenarios/x.toml:8:8: error: bad distribution \"cnst(7m)\""), "{e}");
}

#[test]
fn restarts_need_a_process_of_the_pattern() {
    let restart =
        "[[faults]]\nkind = \"restart\"\ntarget = \"web\"\nat = \"1m\"\ngrace = \"30s\"\n";
    let e = error_after_minimal(restart);
    assert!(e.contains("error: pattern \"load-leveling\" has no process a restart fault"), "{e}");
    let e = error_after_minimal(&restart.replace("grace = \"30s\"\n", "instances = 1\n"));
    assert!(e.contains("key `instances` does not apply to a restart fault"), "{e}");
}

#[test]
fn faults_take_only_the_keys_of_their_kind() {
    let crash = "[[faults]]\nkind = \"crash\"\ntarget = \"consumer\"\nat = \"1m\"\ninstances = 1\n";
    assert!(load_text(&format!("{MINIMAL}{crash}")).is_ok());
    assert_eq!(
        error_after_minimal(&format!("{crash}from = \"1m\"\n")),
        "scenarios/x.toml:9:8: error: key `from` does not apply to a crash fault\n  \
         expected one of: kind, target, at, instances, restart_after"
    );
    let e = error_after_minimal(&crash.replace("instances = 1", "instances = 2"));
    assert!(
        e.starts_with(
            "scenarios/x.toml:8:13: error: `faults[0].instances` is 2, but the consumer has only 1"
        ),
        "{e}"
    );
    let e = error_after_minimal(&crash.replace("\"consumer\"", "\"db\""));
    assert!(e.starts_with("scenarios/x.toml:6:10: error: a crash fault hits the consumer"), "{e}");
    let e = error_after_minimal(&crash.replace("\"crash\"", "\"crsh\""));
    assert!(e.starts_with("scenarios/x.toml:5:8: error: unknown kind \"crsh\""), "{e}");
    assert!(e.ends_with("did you mean `crash`?"), "{e}");
    let window = "[services.db]\n[[faults]]\nkind = \"latency\"\ntarget = \"db\"\nfrom = \"2m\"\nto = \"1m\"\n";
    let e = error_after_minimal(window);
    assert!(e.starts_with("scenarios/x.toml:9:6: error: `faults[0].to` (1m) must be after"), "{e}");
    let e = error_after_minimal(&window.replace("to = \"1m\"", "to = \"3m\""));
    assert_eq!(
        e,
        "scenarios/x.toml:5:1: error: missing required key `add` in [[faults]] (entry 1)\n  \
         e.g. add = \"400ms\""
    );
}

#[test]
fn expectations_convert_durations_and_reject_them_elsewhere() -> TestResult {
    let s = load_text(&format!(
        "{MINIMAL}[expect]\n\"z.p99_ms\" = \"<= 250us\"\n\"a.t_s\" = \"> 2m\"\n\"m.count\" = \"!= 3\"\n"
    ))?;
    let got: Vec<(&str, CmpOp, f64)> =
        s.expect.iter().map(|e| (e.metric.as_str(), e.op, e.threshold)).collect();
    let file_order =
        [("z.p99_ms", CmpOp::Le, 0.25), ("a.t_s", CmpOp::Gt, 120.0), ("m.count", CmpOp::Ne, 3.0)];
    assert_eq!(got, file_order);
    assert_eq!(
        error_after_minimal("[expect]\n\"messages.lost\" = \"< 5s\"\n"),
        "scenarios/x.toml:5:19: error: bad condition \"< 5s\": a duration can only be compared \
         with a metric measured in ms or s (a name ending in _ms or _s); `messages.lost` is not one"
    );
    assert_eq!(
        error_after_minimal("[expect]\n\"messages.lost\" = 0\n"),
        "scenarios/x.toml:5:19: error: wrong type for `expect.\"messages.lost\"`: expected a \
         condition like \"<= 10\", found integer 0\n  did you mean \"== 0\"?"
    );
    let e = error_after_minimal("[expect]\n\"messages.lost\" = \"= 0\"\n");
    assert!(e.ends_with("did you mean \"== 0\"?"), "{e}");
    Ok(())
}

#[test]
fn required_keys_and_the_pattern_name_are_checked() {
    assert_eq!(
        load_text("name = \"x\"\nduration = \"1h\"\n").unwrap_err().to_string(),
        "scenarios/x.toml:1:1: error: missing required key `pattern` at the top level\n  \
         e.g. pattern = \"competing-consumers\""
    );
    let text = MINIMAL.replace("load-leveling", "competing-consumer");
    let names: Vec<&str> = sim::patterns::REGISTRY.iter().map(|p| p.kind.name()).collect();
    assert!(names.starts_with(&["load-leveling", "competing-consumers", "retry-backoff"]));
    assert_eq!(
        load_text(&text).unwrap_err().to_string(),
        format!(
            "scenarios/x.toml:3:11: error: unknown pattern \"competing-consumer\"\n  \
             expected one of: {}\n  did you mean `competing-consumers`?",
            names.join(", ")
        )
    );
}

#[test]
fn overrides_change_values_types_and_tables() -> TestResult {
    let sets = [
        "consumer.instances=8",
        "queue.kind=storage-queue",
        "workload.rate=200/s",
        "faults.0.to=45m",
        "faults[1].instances=3",
        "services.payments.error_rate=0.2",
        "seed=5",
        "expect.\"messages.lost\"=<= 1",
        "expect.\"extra.count\"=< 9",
    ];
    let s = load_with(DESIGN_EXAMPLE, &sets)?;
    assert_eq!((s.consumer.instances, s.queue.kind, s.seed), (8, QueueKind::StorageQueue, 5));
    assert_eq!(s.queue.max_delivery_count, 5, "the file's key wins over the kind's default");
    assert_eq!(s.queue.abandon_delay, QueueSpec::storage_queue().abandon_delay);
    assert_eq!(s.workload.rate_per_s, 200.0);
    assert_eq!(s.faults[0].kind, FaultKind::Outage { from: 30 * NS_PER_MIN, to: 45 * NS_PER_MIN });
    assert!(matches!(s.faults[1].kind, FaultKind::Crash { instances: 3, .. }));
    assert_eq!(s.services["payments"].error_rate, 0.2);
    assert_eq!((s.expect[0].op, s.expect[0].threshold), (CmpOp::Le, 1.0));
    assert_eq!(s.expect.last().map(|e| e.metric.as_str()), Some("extra.count"));

    let s = load_with(
        MINIMAL,
        &["retry.backoff=linear", "consumer.calls=[\"db\"]", "services.db.timeout=2s"],
    )?;
    assert_eq!(s.retry.map(|r| r.backoff), Some(Backoff::Linear));
    assert_eq!((s.consumer.calls.len(), s.services["db"].timeout), (1, Some(2 * NS_PER_S)));
    let s =
        load_with(MINIMAL, &["duration=90m", "description=a b", "workload.arrivals=\"constant\""])?;
    assert_eq!((s.duration, s.description.as_str()), (90 * NS_PER_MIN, "a b"));
    assert_eq!(s.workload.arrivals, Arrivals::Constant);
    Ok(())
}

#[test]
fn overrides_may_replace_whole_tables_and_arrays() -> TestResult {
    let s = load_with(DESIGN_EXAMPLE, &["faults=[]", "queue.ttl=never"])?;
    assert!(s.faults.is_empty());
    assert_eq!(s.queue.ttl, None);
    let s = load_with(DESIGN_EXAMPLE, &["faults=[]", "consumer={ instances = 3 }"])?;
    assert_eq!(s.consumer.instances, 3);
    assert!(s.consumer.calls.is_empty(), "the inline table replaces all of [consumer]");
    let e = load_with(DESIGN_EXAMPLE, &["consumer={ instanse = 3 }"]).unwrap_err();
    assert_eq!(e.place(), "--set consumer={ instanse = 3 }");
    assert_eq!(e.message(), "unknown key `instanse` in [consumer]");
    assert_eq!(e.line_col(), None);
    Ok(())
}

#[test]
fn bad_overrides_name_the_override() {
    let err = |sets: &[&str]| load_with(DESIGN_EXAMPLE, sets).unwrap_err().to_string();
    assert_eq!(
        err(&["consumer.instanse=8"]),
        "--set consumer.instanse=8: error: unknown key `instanse` in [consumer]\n  \
         expected one of: instances, concurrency, batch_size, work, calls, poll_interval, hosting, memory, cpu, execution_timeout, worker_model, cpu_bound\n  \
         did you mean `instances`?"
    );
    assert!(
        err(&["consumr.instances=8"]).starts_with(
            "--set consumr.instances=8: error: unknown key `consumr` at the top level"
        )
    );
    assert_eq!(
        err(&["consumer.instances=eight"]),
        "--set consumer.instances=eight: error: wrong type for `consumer.instances`: expected an \
         integer, found string \"eight\""
    );
    assert_eq!(
        err(&["faults.5.to=1m"]),
        "--set faults.5.to=1m: error: `faults` has 2 entries, numbered from 0: there is no entry 5"
    );
    assert_eq!(
        err(&["seed=1", "queue.ttl=0s"]),
        "--set queue.ttl=0s: error: `queue.ttl` must be longer than 0s\n  or \"never\""
    );
    assert!(err(&["name.first=x"]).contains("`name` is a string, not a table"));
    assert!(err(&["faults.kind=x"]).contains("`faults` is an array: pick an entry first"));
    assert!(err(&["consumer.instances"]).contains("expected key=value"));
    assert!(
        load_with(MINIMAL, &["faults.0.to=1m"])
            .unwrap_err()
            .to_string()
            .contains("there is no `faults`")
    );
}

#[test]
fn missing_files_are_reported() {
    let e = load(Path::new("/nonexistent/sluice/x.toml"), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/sluice/x.toml: error: cannot read scenario file: no such file"
    );
    let e = error_after_minimal("[workload]\ntrace = \"traces/none.csv\"\n");
    assert_eq!(
        e,
        "scenarios/x.toml:5:9: error: cannot read trace file \"traces/none.csv\" \
         (scenarios/traces/none.csv): no such file\n  \
         paths are relative to the scenario file's folder"
    );
    let e = error_after_minimal("[consumer]\nwork = 'empirical(\"w.csv\")'\n");
    assert!(
        e.starts_with("scenarios/x.toml:5:8: error: cannot read empirical file \"w.csv\""),
        "{e}"
    );
}

#[test]
fn trace_and_empirical_files_load_relative_to_the_scenario() -> TestResult {
    let dir = temp_dir("data");
    std::fs::create_dir_all(dir.join("traces"))?;
    std::fs::write(dir.join("traces/t.csv"), "time_s\n0\n0.5\n1s\n1500ms\n")?;
    std::fs::write(dir.join("work.csv"), "10ms\n30ms\n20ms\n")?;
    let text = format!(
        "{MINIMAL}[workload]\ntrace = \"traces/t.csv\"\n[consumer]\nwork = 'empirical(\"work.csv\")'\n"
    );
    let scenario_path = dir.join("s.toml");
    std::fs::write(&scenario_path, &text)?;
    let s = load(&scenario_path, &[])?;
    let times = vec![0, 500 * NS_PER_MS, NS_PER_S, 1500 * NS_PER_MS];
    assert_eq!(s.workload.arrivals, Arrivals::Trace { source: "traces/t.csv".into(), times });
    let values = vec![10 * NS_PER_MS, 30 * NS_PER_MS, 20 * NS_PER_MS];
    assert_eq!(s.consumer.work, Dist::Empirical { source: "work.csv".into(), values });

    std::fs::write(dir.join("traces/t.csv"), "0\n2s\n  1s\n")?;
    let e = load(&scenario_path, &[]).unwrap_err();
    let trace = dir.join("traces/t.csv");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:3: error: arrival times must not decrease: 1s comes after 2s (line 2)",
            trace.display()
        )
    );
    let e = load(&scenario_path, &["workload.arrivals=poisson".into()]).unwrap_err();
    assert!(e.message().contains("applies only to arrivals = \"trace\""), "{e}");
    std::fs::write(dir.join("traces/t.csv"), "0\n")?;
    let with_phase =
        format!("{text}[[workload.phases]]\nfrom = \"1m\"\nto = \"2m\"\nrate = \"1/s\"\n");
    let e = load_str(&with_phase, &scenario_path, &[]).unwrap_err();
    assert!(e.message().contains("phases do not apply to trace arrivals"), "{e}");
    Ok(())
}

/// `to_toml` then `load_str` gives back the same scenario.
fn assert_round_trip(s: &Scenario, origin: &Path) -> TestResult {
    let printed = to_toml(s);
    let again =
        load_str(&printed, origin, &[]).map_err(|e| format!("{e}\n--- printed:\n{printed}"))?;
    assert_eq!(&again, s, "printed:\n{printed}");
    assert_eq!(to_toml(&again), printed, "printing is stable");
    Ok(())
}

#[test]
fn printed_scenarios_load_back_equal() -> TestResult {
    let origin = Path::new("scenarios/x.toml");
    assert_round_trip(&load_text(MINIMAL)?, origin)?;
    assert_round_trip(&load_text(DESIGN_EXAMPLE)?, origin)?;
    let storage = format!(
        "{MINIMAL}seed = 18446744073709551615\ndrain = \"0s\"\n[queue]\nkind = \"storage-queue\"\n\
         new_batch_threshold = 0\n[workload]\narrivals = \"constant\"\nrate = \"5/h\"\n\
         [workload.classes]\n\"odd name\" = 3\npoison = 0.125\n[services.\"a.b\"]\n\
         latency = \"pareto(scale=10ms, shape=2.5)\"\n\
         [[faults]]\nkind = \"error-rate\"\ntarget = \"a.b\"\nfrom = \"1s\"\nto = \"1500ms\"\nerror_rate = 1\n\
         [[faults]]\nkind = \"latency\"\ntarget = \"a.b\"\nfrom = \"1us\"\nto = \"1h30m\"\nadd = \"1ns\"\n\
         [consumer]\nwork = \"uniform(1s, 3s)\"\n\
         [[faults]]\nkind = \"crash\"\ntarget = \"consumer\"\nat = \"0s\"\ninstances = 1\nrestart_after = \"never\"\n\
         [retry]\nbackoff = \"decorrelated-jitter\"\njitter = true\nmax_attempts = 7\n\
         [api]\naccept = \"normal(mean=1s, sd=100ms)\"\n\
         [expect]\n\"q\\\"uote\" = \" >=  1e3 \"\n"
    );
    assert_round_trip(&load_text(&storage)?, origin)?;

    let dir = temp_dir("round-trip");
    std::fs::write(dir.join("t.csv"), "0\n1\n2\n")?;
    std::fs::write(dir.join("e \"q\".csv"), "1ms\n")?;
    let data = format!(
        "{MINIMAL}description = \"line\\nbreak\\u0001\"\n[workload]\ntrace = \"t.csv\"\n\
         [consumer]\nwork = 'empirical(\"e \\\"q\\\".csv\")'\n"
    );
    let origin = dir.join("s.toml");
    assert_round_trip(&load_str(&data, &origin, &[])?, &origin)?;
    Ok(())
}

#[test]
fn garbage_never_panics() {
    let garbage = [
        "",
        "=",
        "[",
        "]]",
        "[[",
        "a",
        "\"",
        "'''",
        "name = ",
        "[a.b.c]\n[a]\nb = 1",
        "x = [1, 2",
        "\u{0}",
        "\u{feff}name = 1",
        "a = {",
        "a = { b = [ { c = 1 } ] }",
        "[[faults]]\n[[faults]]",
        "name = \"x\"\nduration = \"1h\"\npattern = \"retry-backoff\"\n[faults]\nkind = 1",
        "duration = 99999999999999999999",
        "seed = 1e400",
        "name = nan",
        "name = inf",
        "[workload]\nphases = 3",
        "[workload]\nclasses = []",
        "expect = []",
        "[expect]\n\"\" = \"\"",
        "services = { a = 1 }",
        "[services.a]\nlatency = []",
        "[consumer]\ncalls = [[]]",
    ];
    for text in garbage {
        assert!(load_text(text).is_err(), "{text:?}");
    }
    // every prefix of a full file, and every single-byte change of it (a fixed sequence)
    let full = DESIGN_EXAMPLE;
    for end in (0..full.len()).filter(|i| full.is_char_boundary(*i)) {
        let _ = load_text(&full[..end]);
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let alphabet = b"=[]{}\"',.#\n 0123456789smhd/()abcxyz-_";
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut bytes = full.as_bytes().to_vec();
        let at = (x % bytes.len() as u64) as usize;
        bytes[at] = alphabet[(x >> 32) as usize % alphabet.len()];
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = load_text(&text);
        }
    }
    let sets =
        ["", "=", ".=1", "a.b.c.d=1", "faults[99999999999999999999].x=1", "faults[-1].x=1", "\"=1"];
    for set in sets {
        assert!(load_with(MINIMAL, &[set]).is_err(), "{set:?}");
    }
}

#[test]
fn hosting_keys_resolve_with_the_plan_defaults() -> TestResult {
    use sim::spec::{ExecutionLimit, Plan};
    let s = load_text(&format!(
        "{MINIMAL}[consumer]\nhosting = \"functions-flex\"\n[scaling]\nmin_instances = 2\n"
    ))?;
    assert_eq!(s.hosting.plan, Plan::FunctionsFlex);
    assert_eq!(s.hosting.memory_mb, 2048, "Flex's default instance size");
    assert_eq!(s.hosting.scaling.min_instances, 2);
    assert_eq!(s.hosting.timeout(), Some(30 * sim::time::NS_PER_MIN));
    let s = load_text(&format!(
        "{MINIMAL}[consumer]\nhosting = \"functions-premium\"\nexecution_timeout = \"never\"\n"
    ))?;
    assert_eq!(s.hosting.execution_timeout, ExecutionLimit::Unlimited);
    assert_eq!(s.hosting.timeout(), None, "\"never\" lifts Premium's 30-minute default");
    assert_eq!(s.hosting.scaling.min_instances, 1, "Premium keeps one instance");
    assert!(s.cost.pricing.consumption_gb_s > 0.0, "azure-payg by default");
    Ok(())
}

#[test]
fn hosting_keys_that_would_be_ignored_are_errors() {
    let cases = [
        (
            "[consumer]\nhosting = \"functions-consumption\"\ninstances = 4\n",
            "scenarios/x.toml:6:13: error: `consumer.instances` does not apply to hosting = \"functions-consumption\"",
        ),
        (
            "[consumer]\nhosting = \"functions-flex\"\n[scaling]\nprewarmed = 2\n",
            "scenarios/x.toml:7:13: error: `scaling.prewarmed` does not apply to hosting = \"functions-flex\"",
        ),
        (
            "[consumer]\nhosting = \"functions-consumption\"\nexecution_timeout = \"20m\"\n",
            "scenarios/x.toml:6:21: error: `consumer.execution_timeout` is at most 10m on functions-consumption",
        ),
        (
            "[cost]\ngb_second_usd = 0.1\nconsumption_gb_s_usd = 0.2\n",
            "scenarios/x.toml:5:17: error: `cost.gb_second_usd` and `cost.consumption_gb_s_usd` set the same rate",
        ),
        (
            "[cost]\npricing = \"azure-paygo\"\n",
            "scenarios/x.toml:5:11: error: unknown pricing table \"azure-paygo\"",
        ),
    ];
    for (extra, want) in cases {
        let e = error_after_minimal(extra);
        assert!(e.starts_with(want), "{extra}\n{e}");
    }
    let e = load_text(
        "name = \"r\"\nduration = \"1h\"\npattern = \"retry-backoff\"\n[consumer]\nhosting = \"aca-job\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("retry-backoff runs on a fixed worker"), "{e}");
}

#[test]
fn a_resolved_scenario_with_a_pricing_file_replays_without_the_file() -> TestResult {
    let dir = temp_dir("pricing-file");
    let table = include_str!("../../../pricing/azure-payg.toml").replace("0.000016", "0.00002");
    std::fs::write(dir.join("mine.toml"), table)?;
    let path = dir.join("s.toml");
    std::fs::write(&path, format!("{MINIMAL}[cost]\npricing = \"mine.toml\"\n"))?;
    let s = super::load(&path, &[])?;
    assert_eq!(s.cost.pricing.name, "mine.toml");
    assert_eq!(s.cost.pricing.consumption_gb_s, 0.00002);
    // Printed elsewhere (a run directory), the scenario loads without mine.toml.
    let elsewhere = temp_dir("pricing-replay").join("scenario.toml");
    std::fs::write(&elsewhere, to_toml(&s))?;
    assert_eq!(super::load(&elsewhere, &[])?, s);
    Ok(())
}

const RETRY_BACKOFF_MINIMAL: &str = r#"
name = "rb"
duration = "10m"
pattern = "retry-backoff"
[services.api]
latency = "exp(mean=50ms)"
[consumer]
calls = ["api"]
"#;

#[test]
fn a_pattern_reads_its_own_table_and_prints_it_back() -> TestResult {
    let text = format!(
        "{RETRY_BACKOFF_MINIMAL}[retry_backoff]\npoll_interval = \"10s\"\nbackoff = \"linear\"\nmax_attempts = 7\n"
    );
    let s = load_text(&text)?;
    let (poll, schedule) = sim::patterns::retry_backoff::Settings::resolve(&s);
    assert_eq!(poll, 10 * NS_PER_S);
    assert_eq!(schedule.backoff, Backoff::Linear);
    assert_eq!(schedule.max_attempts, 7);
    assert_eq!(schedule.base, 2 * NS_PER_S, "a key left out keeps its default");
    let printed = to_toml(&s);
    assert!(
        printed.contains("[retry_backoff]\npoll_interval = \"10s\"\nbackoff = \"linear\""),
        "{printed}"
    );
    assert_eq!(load_text(&printed)?, s, "the round trip gives the same scenario");
    let set = load_with(RETRY_BACKOFF_MINIMAL, &["retry_backoff.max_delay=1m"])?;
    assert_eq!(sim::patterns::retry_backoff::Settings::resolve(&set).1.max_delay, NS_PER_MIN);
    Ok(())
}

#[test]
fn the_old_places_of_retry_backoff_settings_still_work() -> TestResult {
    let old = format!(
        "{RETRY_BACKOFF_MINIMAL}poll_interval = \"10s\"\n[retry]\nbase = \"3s\"\nmax_delay = \"1m\"\n"
    );
    let new = format!(
        "{RETRY_BACKOFF_MINIMAL}[retry_backoff]\npoll_interval = \"10s\"\nbase = \"3s\"\nmax_delay = \"1m\"\n"
    );
    let (a, b) = (load_text(&old)?, load_text(&new)?);
    assert_eq!(
        sim::patterns::retry_backoff::Settings::resolve(&a),
        sim::patterns::retry_backoff::Settings::resolve(&b)
    );
    Ok(())
}

#[test]
fn pattern_table_errors_have_positions() {
    let err = |extra: &str| {
        load_text(&format!("{RETRY_BACKOFF_MINIMAL}{extra}")).unwrap_err().to_string()
    };
    let e = err("[retry_backoff]\npoll_intervall = \"5s\"\n");
    assert!(e.contains(":10:1: error: unknown key `poll_intervall` in [retry_backoff]"), "{e}");
    assert!(e.contains("did you mean `poll_interval`?"), "{e}");
    let e = err("[retry_backoff]\npoll_interval = 5\n");
    assert!(e.contains(":10:17: error: wrong type for `retry_backoff.poll_interval`"), "{e}");
    let e = err("[retry_backoff]\nbase = \"1m\"\nmax_delay = \"10s\"\n");
    assert!(e.contains("`max_delay` must be at least `base`"), "{e}");
    let e = err("[retry_backof]\n");
    assert!(e.contains("did you mean `retry_backoff`?"), "{e}");
    let other = load_text(
        "name = \"x\"\nduration = \"1m\"\npattern = \"competing-consumers\"\n[retry_backoff]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        other.contains(":4:2: error: [retry_backoff] is the table of pattern `retry-backoff`"),
        "{other}"
    );
}

#[test]
fn service_capacity_keys_load_print_back_and_refuse_what_would_be_ignored() -> TestResult {
    let base =
        "name = \"x\"\nduration = \"1m\"\npattern = \"competing-consumers\"\n[services.db]\n";
    let s = load_text(&format!(
        "{base}max_concurrency = 5\nover_limit = \"reject\"\nretry_after = \"2s\"\n"
    ))?;
    let db = &s.services["db"];
    assert_eq!(db.max_concurrency, Some(5));
    assert_eq!(db.over_limit, sim::spec::OverLimit::Reject { retry_after: Some(2 * NS_PER_S) });
    assert_eq!(load_text(&to_toml(&s))?, s);
    let wait = load_text(&format!("{base}max_concurrency = 5\n"))?;
    assert_eq!(wait.services["db"].over_limit, sim::spec::OverLimit::Wait);
    let err = |extra: &str| load_text(&format!("{base}{extra}")).unwrap_err().to_string();
    let e = err("over_limit = \"reject\"\n");
    assert!(
        e.contains(":5:14: error: `services.db.over_limit` needs `services.db.max_concurrency`"),
        "{e}"
    );
    let e = err("max_concurrency = 5\nretry_after = \"1s\"\n");
    assert!(
        e.contains(
            ":6:15: error: `services.db.retry_after` applies only with over_limit = \"reject\""
        ),
        "{e}"
    );
    let e = err("max_concurrency = 0\n");
    assert!(e.contains("must be at least 1"), "{e}");
    let e = err("max_concurrency = 2\nover_limit = \"queue\"\n");
    assert!(e.contains("unknown over_limit \"queue\""), "{e}");
    Ok(())
}

#[test]
fn expect_failure_marks_the_broken_half_of_a_chaos_pair() -> TestResult {
    let text = format!("expect_failure = true\n{MINIMAL}[expect]\n\"messages.lost\" = \"== 0\"\n");
    let s = load_text(&text)?;
    assert!(s.expect_failure);
    assert!(to_toml(&s).contains("\nexpect_failure = true\n"));
    assert_eq!(load_text(&to_toml(&s))?, s);
    assert!(!load_text(MINIMAL)?.expect_failure);
    let e = load_text(&format!("expect_failure = true\n{MINIMAL}")).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "scenarios/x.toml:1:18: error: `expect_failure = true` needs an [expect] table"
        ),
        "{e}"
    );
    let e = load_text(&format!("expect_failure = \"yes\"\n{MINIMAL}")).unwrap_err().to_string();
    assert!(e.starts_with("scenarios/x.toml:1:18: error:"), "{e}");
    Ok(())
}

#[test]
fn functions_trigger_concurrency_defaults_follow_the_instances_cores() -> TestResult {
    // (queue kind, [consumer] lines) → (maxConcurrentCalls, newBatchThreshold)
    let cases: [(&str, &str, u32, Option<u32>); 9] = [
        ("service-bus", "hosting = \"functions-consumption\"", 16, None),
        ("service-bus", "hosting = \"functions-premium\"\ncpu = 2.0", 32, None),
        ("service-bus", "hosting = \"functions-premium\"\ncpu = 4.0\nconcurrency = 8", 8, None),
        ("service-bus", "hosting = \"functions-flex\"\nmemory = \"4096MB\"", 32, None),
        ("service-bus", "hosting = \"functions-flex\"\nmemory = \"512MB\"", 16, None),
        ("service-bus", "hosting = \"webjob\"\ncpu = 2.0", 32, None),
        ("service-bus", "hosting = \"worker\"\ncpu = 4.0", 16, None),
        ("storage-queue", "hosting = \"functions-premium\"\ncpu = 4.0", 16, Some(32)),
        ("storage-queue", "hosting = \"functions-consumption\"\ncpu = 4.0", 16, None),
    ];
    for (kind, consumer, calls, threshold) in cases {
        let text = format!("{MINIMAL}[queue]\nkind = \"{kind}\"\n[consumer]\n{consumer}\n");
        let s = load_text(&text)?;
        assert_eq!(s.consumer.concurrency, calls, "{kind} / {consumer}");
        assert_eq!(s.queue.new_batch_threshold, threshold, "{kind} / {consumer}");
    }
    let flex = load_text(&format!("{MINIMAL}[consumer]\nhosting = \"functions-flex\"\n"))?;
    assert_eq!(flex.hosting.cpu, 1.0, "the default 2,048 MB Flex instance has 1 vCPU");
    let premium = load_text(&format!("{MINIMAL}[consumer]\nhosting = \"functions-premium\"\n"))?;
    assert_eq!((premium.hosting.cpu, premium.hosting.memory_mb), (1.0, 3584), "EP1");
    Ok(())
}
