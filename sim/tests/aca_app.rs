//! The Container Apps app plan (`aca-app`): KEDA + HPA scaling on the queue length, the
//! termination grace period of a scaled-in replica, and the idle rate of replicas at the
//! minimum replica count, checked against hand-computed numbers.

use sim::dist::Dist;
use sim::results::RunResults;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};

fn go(s: &Scenario) -> RunResults {
    let r = run(s, RunOptions::default(), &mut |_| {}).results;
    assert!(r.ledger.balances());
    r
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// An app on `queue` with `[scaling]` defaults for an app (min 0, max 10, 1 s cold start).
fn app(queue: QueueSpec, concurrency: u32, work: Dist) -> Scenario {
    Scenario {
        interval: 10 * NS_PER_S,
        queue,
        consumer: ConsumerSpec { concurrency, work, ..Default::default() },
        hosting: HostingSpec {
            plan: Plan::AcaApp,
            cpu: 0.5,
            memory_mb: 1024,
            scaling: ScalingSpec {
                min_instances: 0,
                max_instances: Plan::AcaApp.default_max_instances(),
                cold_start: Dist::Const(NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn the_plan_has_no_execution_limit_a_30_second_grace_and_ten_replicas() {
    assert_eq!(Plan::from_name("aca-app"), Some(Plan::AcaApp));
    assert_eq!(Plan::AcaApp.default_execution_timeout(), None);
    assert_eq!(Plan::AcaApp.max_execution_timeout(), None);
    assert_eq!(Plan::AcaApp.default_drain_grace(), Some(30 * NS_PER_S));
    assert_eq!(Plan::AcaApp.default_max_instances(), 10);
    assert_eq!(Plan::AcaApp.default_min_instances(), 0);
    assert!(Plan::AcaApp.elastic());
}

#[test]
fn an_app_scales_out_one_then_four_then_doubling_up_to_its_maximum() {
    // 60 one-minute messages at once, one handler per replica: KEDA's default target (5)
    // asks for 12 replicas, capped at 10. Decisions every 30 s: 0 -> 1 (KEDA activation),
    // then min(max, desired, max(4, 2 x current)): 4, 8, 10.
    let mut s = app(QueueSpec::service_bus(), 1, Dist::Const(NS_PER_MIN));
    s.duration = NS_PER_S;
    s.workload =
        WorkloadSpec { arrivals: Arrivals::Constant, rate_per_s: 60.0, ..Default::default() };
    let r = go(&s);
    let at = |t: Nanos| r.timeseries.iter().find(|row| row.t == t).expect("a row").instances;
    let counts: Vec<u32> = [20, 40, 70, 100, 130].map(|s| at(s * NS_PER_S)).to_vec();
    assert_eq!(counts, [0, 1, 4, 8, 10], "replicas at 20, 40, 70, 100, 130 s");
    assert_eq!(r.scaling.instances_peak, 10);
    assert_eq!(r.scaling.cold_starts, 10, "every new replica starts cold");
    assert_eq!(r.ledger.completed, 60);
}

#[test]
fn scale_in_waits_for_the_stabilization_window_then_removes_the_whole_surplus() {
    // A one-minute burst of 1 s messages scales the app out; once fewer than 6 messages are
    // held the desired count is 1 (the minimum), and the HPA keeps the highest
    // recommendation of the last 300 s: the surplus goes in one step, 300 s after the last
    // busy recommendation. A trickle (one message every 100 s) keeps the run going. (A
    // storage queue: its receivers poll, so no receive of a removed replica is left waiting.)
    let mut s = app(QueueSpec::storage_queue(), 16, Dist::Const(NS_PER_S));
    s.consumer.batch_size = 16;
    s.duration = 15 * NS_PER_MIN;
    s.hosting.scaling.min_instances = 1;
    s.workload =
        WorkloadSpec { arrivals: Arrivals::Constant, rate_per_s: 0.01, ..Default::default() };
    s.workload.phases.push(Phase { from: 0, to: NS_PER_MIN, rate_per_s: 300.0 });
    let r = go(&s);
    let rows = &r.timeseries;
    let peak = r.scaling.instances_peak;
    assert!(peak >= 4, "scaled out: {peak}");
    let last_busy = rows.iter().filter(|row| row.in_flight > 5).map(|row| row.t).max().unwrap();
    let drop = rows.iter().find(|row| row.t > last_busy && row.instances == 1).expect("scaled in");
    let before = rows.iter().rfind(|row| row.t < drop.t).unwrap();
    assert_eq!(before.instances, peak, "no step in between: the whole surplus at once");
    assert!(drop.t - last_busy >= 270 * NS_PER_S, "{} s", (drop.t - last_busy) / NS_PER_S);
    assert!(drop.t - last_busy <= 340 * NS_PER_S, "{} s", (drop.t - last_busy) / NS_PER_S);
    assert_eq!(r.scaling.scale_ins, u64::from(peak - 1));
    assert_eq!(r.ledger.completed, r.ledger.produced);
}

/// A burst of fast messages with a few 15-minute ones among them, on a storage queue (whose
/// listener keeps renewing visibility): the surplus replicas are removed while some still
/// run a slow message.
fn slow_tail(grace: Option<Nanos>) -> RunResults {
    let mut s = app(QueueSpec::storage_queue(), 16, Dist::Const(NS_PER_S));
    s.duration = 40 * NS_PER_MIN;
    s.hosting.scaling.min_instances = 1;
    s.hosting.scaling.drain_grace = grace;
    s.workload = WorkloadSpec {
        rate_per_s: 0.0,
        classes: vec![("fast".into(), 0.99), ("slow".into(), 0.01)],
        class_work: vec![("slow".into(), Dist::Const(15 * NS_PER_MIN))],
        ..Default::default()
    };
    s.workload.phases.push(Phase { from: 0, to: NS_PER_MIN, rate_per_s: 50.0 });
    go(&s)
}

#[test]
fn a_scaled_in_replica_gets_the_termination_grace_period_then_is_cut_off() {
    let r = slow_tail(None); // the plan's 30 s
    assert!(r.scaling.scale_ins > 0, "{:?}", r.scaling);
    assert!(r.scaling.drain_cutoffs > 0, "{:?}", r.scaling);
    assert!(r.ledger.deliveries > r.ledger.produced, "cut-off work is delivered again");
    assert_eq!((r.ledger.lost, r.ledger.in_flight), (0, 0));
    // A grace longer than the slow messages lets every one of them finish.
    let r = slow_tail(Some(NS_PER_H));
    assert_eq!(r.scaling.drain_cutoffs, 0, "{:?}", r.scaling);
    assert_eq!(r.ledger.deliveries, r.ledger.produced);
}

/// A quiet hour: one 10 s message every 100 s on an app with `min` replicas, every rate 0
/// but the Container Apps ones.
fn quiet(min: u32) -> RunResults {
    let mut s = app(QueueSpec::service_bus(), 1, Dist::Const(10 * NS_PER_S));
    s.duration = NS_PER_H;
    s.hosting.scaling.min_instances = min;
    s.hosting.scaling.max_instances = 1;
    s.workload =
        WorkloadSpec { arrivals: Arrivals::Constant, rate_per_s: 0.01, ..Default::default() };
    let mut pricing = Pricing::zero("test");
    pricing.set("aca_vcpu_s_usd", 1.0);
    pricing.set("aca_idle_vcpu_s_usd", 0.125);
    pricing.set("aca_gib_s_usd", 0.5);
    s.cost = CostSpec { pricing, free_grant: false };
    go(&s)
}

#[test]
fn a_replica_at_the_minimum_count_with_no_execution_pays_the_idle_vcpu_rate() {
    let r = quiet(1);
    let t = r.sim_time as f64 / NS_PER_S as f64;
    assert_eq!(r.ledger.completed, 36);
    assert_eq!(r.scaling.cold_starts, 0, "the minimum replica is always there");
    let idle = r.cost.idle.clone().expect("an idle bill on aca-app");
    // 36 executions of 10 s are active; the rest of the replica's time is idle.
    let busy = 36.0 * 10.0;
    assert!(close(idle.replica_seconds, t - busy), "{idle:?} (t = {t})");
    // 0.5 vCPU at 1 (active) or 0.125 (idle) per vCPU-s; 1 GiB at 0.5 per GiB-s all the time.
    let want = busy * 0.5 + (t - busy) * 0.5 * 0.125 + t * 0.5;
    assert!(close(r.cost.compute_usd, want), "{} != {want}", r.cost.compute_usd);
    assert!(close(idle.usd, (t - busy) * (0.5 * 0.125 + 0.5)), "{idle:?}");
    // Billed at the active rate all along, the same hour costs more.
    assert!(r.cost.compute_usd < t * (0.5 + 0.5));
}

#[test]
fn a_replica_above_the_minimum_count_is_never_idle() {
    // Minimum 0: the one replica that serves the messages is above the minimum, so it pays
    // the active rate even between messages (the scale-down window keeps it 300 s).
    let r = quiet(0);
    let idle = r.cost.idle.clone().expect("an idle bill on aca-app");
    assert_eq!(idle.replica_seconds, 0.0);
    let s = r.cost.instance_seconds;
    assert!(close(r.cost.compute_usd, s * (0.5 + 0.5)), "{:?}", r.cost);
}
