//! A fixed synthetic run: 10 minutes of ~10 msg/s with a payments outage, a latency spike and a
//! consumer crash, built without the engine so the reports can be tested on their own.

use reports::{RunMeta, RunReport};
use sim::results::{
    CostResults, FaultRecord, IntervalRow, Latency, Ledger, RunResults, ScalingResults,
    ServiceStats,
};
use sim::spec::{CmpOp, Expectation, FaultKind, FaultSpec, Scenario, ServiceSpec};
use sim::time::{NS_PER_MIN, NS_PER_MS, NS_PER_S};
use std::collections::BTreeMap;

/// A tiny deterministic generator (64-bit LCG), so the fixture needs no RNG crate.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn faults() -> Vec<FaultSpec> {
    vec![
        FaultSpec {
            target: "payments".into(),
            kind: FaultKind::Outage { from: 3 * NS_PER_MIN, to: 4 * NS_PER_MIN },
        },
        FaultSpec {
            target: "consumer".into(),
            kind: FaultKind::Crash {
                at: 6 * NS_PER_MIN,
                instances: 2,
                restart_after: Some(NS_PER_MIN),
            },
        },
        FaultSpec {
            target: "payments".into(),
            kind: FaultKind::Latency {
                from: 8 * NS_PER_MIN,
                to: 9 * NS_PER_MIN,
                add: 400 * NS_PER_MS,
            },
        },
    ]
}

fn expectation(metric: &str, op: CmpOp, threshold: f64, condition: &str) -> Expectation {
    Expectation { metric: metric.into(), op, threshold, condition: condition.into() }
}

/// The scenario the fixture pretends to have run.
pub fn scenario() -> Scenario {
    let mut s = Scenario {
        name: "orders-outage".into(),
        description: "Orders flow through a Service Bus queue to 4 consumers that call payments; \
                      payments goes down for a minute."
            .into(),
        seed: 42,
        duration: 10 * NS_PER_MIN,
        faults: faults(),
        expect: vec![
            expectation("messages.lost", CmpOp::Eq, 0.0, "== 0"),
            expectation("latency.end_to_end.p99_ms", CmpOp::Lt, 30_000.0, "< 30s"),
            expectation("messages.dead_lettered", CmpOp::Le, 5.0, "<= 5"),
            expectation("latency.end_to_end.p99", CmpOp::Lt, 1.0, "< 1ms"),
        ],
        ..Scenario::default()
    };
    s.services.insert("payments".into(), ServiceSpec::default());
    s
}

fn hist(rng: &mut Lcg, n: u64, base_ms: f64, tail: f64) -> Latency {
    let mut l = Latency::new(2 * 3_600 * NS_PER_S);
    for _ in 0..n {
        let u = rng.unit();
        // Mostly near base_ms, with a heavy tail.
        let v = base_ms * (1.0 + 2.0 * u) + if u > 0.97 { tail * (u - 0.97) / 0.03 } else { 0.0 };
        l.record((v * NS_PER_MS as f64) as u64);
    }
    l
}

fn rows(rng: &mut Lcg) -> Vec<IntervalRow> {
    let mut out = Vec::new();
    let mut backlog = 0i64;
    for i in 1..=64u64 {
        let t = i * 10 * NS_PER_S;
        let secs = i * 10;
        let producing = secs <= 600;
        let arrivals = if producing { 90 + (rng.unit() * 20.0) as u64 } else { 0 };
        let outage = (181..=240).contains(&secs);
        let crashed = (361..=420).contains(&secs);
        let capacity = if outage {
            0
        } else if crashed {
            60
        } else {
            160
        };
        let completed = (backlog + arrivals as i64).min(capacity) as u64;
        backlog += arrivals as i64 - completed as i64;
        out.push(IntervalRow {
            t,
            arrivals,
            completed,
            failed: if outage { 40 + (rng.unit() * 10.0) as u64 } else { u64::from(i % 7 == 0) },
            dead_lettered: if secs == 230 || secs == 240 { 6 } else { 0 },
            expired: 0,
            rejected: if secs == 200 { 3 } else { 0 },
            backlog: backlog as u64,
            in_flight: backlog as u64 + if completed > 0 { 12 + i % 5 } else { 0 },
            in_progress: if completed > 0 { 12 + i % 5 } else { 0 },
            instances: if crashed { 2 } else { 4 },
            latency_p50_ns: if completed > 0 { (80 + backlog as u64 * 2) * NS_PER_MS } else { 0 },
            latency_p99_ns: if completed > 0 { (400 + backlog as u64 * 20) * NS_PER_MS } else { 0 },
            cost_usd: (i + 1) as f64 * 0.0125,
            web_latency_ns: 0,
            state: Vec::new(),
            state_columns: Default::default(),
        });
    }
    out
}

/// The fixture's recorded results.
pub fn results() -> RunResults {
    let mut rng = Lcg(42);
    let mut latency = BTreeMap::new();
    latency.insert("end_to_end".to_string(), hist(&mut rng, 5_980, 120.0, 45_000.0));
    latency.insert("queue_wait".to_string(), hist(&mut rng, 5_995, 20.0, 40_000.0));
    latency.insert("handler".to_string(), hist(&mut rng, 6_100, 60.0, 900.0));
    latency.insert("accept".to_string(), hist(&mut rng, 6_000, 5.0, 10.0));
    let mut services = BTreeMap::new();
    services.insert(
        "payments".to_string(),
        ServiceStats { calls: 6_420, errors: 545, timeouts: 3, ..Default::default() },
    );
    let mut extra = BTreeMap::new();
    extra.insert("retry.attempts_max".to_string(), 4.0);
    let rows = rows(&mut rng);
    let completed_peak_interval = rows.iter().map(|r| r.completed).max().unwrap_or(0);
    RunResults {
        scenario: "orders-outage".into(),
        pattern: "competing-consumers".into(),
        seed: 42,
        sim_time: 632_500 * NS_PER_MS,
        drained: true,
        ledger: Ledger {
            produced: 6_000,
            rejected: 3,
            completed: 5_980,
            dead_lettered: 12,
            expired: 0,
            lost: 0,
            in_flight: 5,
            deliveries: 6_100,
            duplicates: 2,
            late_successes: 0,
        },
        latency,
        backlog_peak: 1_012,
        backlog_mean: 187.123_456,
        in_system_mean: 201.987_654,
        services,
        queue_operations: 18_456,
        extra,
        state_columns: Vec::new(),
        timeseries: sim::model::series::Series::from_rows(
            rows,
            sim::model::series::Series::DEFAULT_CAP,
        ),
        completed_peak_interval,
        limit_stop: None,
        interval: 10 * NS_PER_S,
        faults: faults()
            .into_iter()
            .map(|f| FaultRecord { target: f.target, kind: f.kind })
            .collect(),
        hosting: "functions-consumption".into(),
        cost: CostResults {
            pricing: "azure-payg".into(),
            compute_usd: 0.7,
            executions_usd: 0.0012,
            messaging_usd: 0.0538,
            gpu_usd: 0.0,
            total_usd: 0.755,
            executions: 6_100,
            instance_seconds: 2_400.0,
            vcpu_seconds: 0.0,
            gb_seconds: 43_750.0,
            ..Default::default()
        },
        scaling: ScalingResults {
            instances_peak: 4,
            instances_mean: 3.5,
            scale_outs: 4,
            scale_ins: 0,
            cold_starts: 4,
            timeouts: 0,
            ..Default::default()
        },
        web: None,
        classes: Vec::new(),
        sections: Default::default(),
        violations: Vec::new(),
    }
}

/// What the harness would pass.
pub fn meta() -> RunMeta {
    RunMeta {
        command: "sluice run scenarios/chaos/orders-outage.toml --seed 42".into(),
        scenario_path: "scenarios/chaos/orders-outage.toml".into(),
        scenario_toml: "name = \"orders-outage\"\nseed = 42\nduration = \"10m\"\n\
                        pattern = \"competing-consumers\"\n\n[services.payments]\n\
                        latency = \"exp(mean=50ms)\"\n\n[[faults]]\nkind = \"outage\"\n\
                        target = \"payments\"\nfrom = \"3m\"\nto = \"4m\"\n"
            .into(),
        git_commit: Some("0123abc".into()),
    }
}

/// The fixture's report.
pub fn report() -> RunReport {
    RunReport::new(&scenario(), &results(), meta())
}

/// A second design for comparisons: twice the consumers, so less backlog and lower latency.
pub fn faster_report() -> RunReport {
    let mut r = results();
    let mut rng = Lcg(7);
    r.latency.insert("end_to_end".into(), hist(&mut rng, 5_990, 90.0, 9_000.0));
    r.latency.insert("queue_wait".into(), hist(&mut rng, 5_995, 8.0, 8_000.0));
    r.backlog_peak = 300;
    r.ledger.completed = 5_990;
    r.ledger.dead_lettered = 2;
    r.sim_time = 612 * NS_PER_S;
    let rows = r.timeseries.iter().take(62).cloned().map(|mut row| {
        row.backlog /= 3;
        row.instances *= 2;
        row.latency_p99_ns /= 3;
        row
    });
    r.timeseries =
        sim::model::series::Series::from_rows(rows, sim::model::series::Series::DEFAULT_CAP);
    let mut m = meta();
    m.command =
        "sluice run scenarios/chaos/orders-outage.toml --seed 42 --set consumer.instances=8".into();
    RunReport::new(&scenario(), &r, m)
}
