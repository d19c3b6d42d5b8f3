//! Hosting plans, autoscaling and billing, checked against hand-computed numbers.

use sim::dist::Dist;
use sim::results::RunResults;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};

/// 100 messages, one a second, each taking exactly `work`, on one handler at a time.
fn fixed_workload(plan: Plan, work: Nanos, memory_mb: u32) -> Scenario {
    let mut pricing = Pricing::zero("test");
    for rate in Pricing::RATES {
        pricing.set(rate, 1.0); // every rate 1 USD per unit: bills read as unit counts
    }
    pricing.set("service_bus_per_million_operations_usd", 0.0);
    Scenario {
        duration: 100 * NS_PER_S,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 1.0,
            ..Default::default()
        },
        consumer: ConsumerSpec {
            instances: 1,
            concurrency: 1,
            batch_size: 1,
            work: Dist::Const(work),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan,
            memory_mb,
            cpu: 0.5,
            scaling: ScalingSpec {
                min_instances: 1, // always one warm instance: no cold start in the bill
                max_instances: 1,
                cold_start: Dist::Const(NS_PER_S),
                prewarmed: 1,
                ..Default::default()
            },
            ..Default::default()
        },
        cost: CostSpec { pricing, free_grant: false },
        ..Default::default()
    }
}

fn go(s: &Scenario) -> RunResults {
    let r = run(s, RunOptions::default(), &mut |_| {}).results;
    assert!(r.ledger.balances());
    r
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn consumption_bills_executions_and_rounded_gb_seconds() {
    // 600 MB rounds up to 640 MB = 0.625 GB; 250 ms stays 250 ms: 100 x 0.625 x 0.25 GB-s.
    let r = go(&fixed_workload(Plan::FunctionsConsumption, 250 * NS_PER_MS, 600));
    assert_eq!(r.cost.executions, 100);
    assert!(close(r.cost.compute_usd, 100.0 * 0.625 * 0.25), "{:?}", r.cost);
    assert!(close(r.cost.executions_usd, 100.0 / 1e6), "{:?}", r.cost);
    // 20 ms executions are billed 100 ms each; 4 GB is capped at 1.5 GB.
    let r = go(&fixed_workload(Plan::FunctionsConsumption, 20 * NS_PER_MS, 4096));
    assert!(close(r.cost.compute_usd, 100.0 * 1.5 * 0.1), "{:?}", r.cost);
}

#[test]
fn flex_bills_execution_periods_with_a_one_second_minimum() {
    // One always-ready 2 GB instance, a message every 2 s: each 250 ms execution is its own
    // period, billed 1 s: 50 x 2 GB x 1 s at the always-ready execution rate, and the
    // baseline for the rest of the time (never for a moment already billed as execution).
    let mut s = fixed_workload(Plan::FunctionsFlex, 250 * NS_PER_MS, 2048);
    s.workload.rate_per_s = 0.5;
    let r = go(&s);
    let t = r.sim_time as f64 / NS_PER_S as f64;
    let billed_execution = 50.0 * 1.0;
    let want = 50.0 * 2.0 * 1.0 + (t - billed_execution) * 2.0;
    assert!(close(r.cost.compute_usd, want), "{:?} want {want} (t = {t})", r.cost);
    assert!(close(r.cost.executions_usd, 50.0 / 1e6));
}

#[test]
fn premium_bills_allocated_and_prewarmed_instances() {
    let r = go(&fixed_workload(Plan::FunctionsPremium, 250 * NS_PER_MS, 3584));
    let t = r.sim_time as f64 / NS_PER_S as f64;
    // one allocated instance and one pre-warmed, each 0.5 vCPU + 3.5 GB per second
    let want = 2.0 * t * (0.5 + 3.5);
    assert!(close(r.cost.compute_usd, want), "{:?} want {want}", r.cost);
    assert_eq!(r.cost.executions_usd, 0.0);
}

#[test]
fn worker_bills_instance_hours() {
    let mut s = fixed_workload(Plan::Worker, 250 * NS_PER_MS, 512);
    s.consumer.instances = 3;
    let r = go(&s);
    let hours = r.sim_time as f64 / NS_PER_H as f64;
    assert!(close(r.cost.compute_usd, 3.0 * hours), "{:?}", r.cost);
    assert!(close(r.cost.instance_seconds, 3.0 * hours * 3600.0));
}

#[test]
fn aca_job_replicas_bill_from_start_to_exit() {
    // One message at t = 0; the scaler sees it at 30 s, the replica cold-starts for 1 s,
    // handles it in 250 ms and exits: 1.25 replica-seconds of 0.5 vCPU and 0.5 GiB.
    let mut s = fixed_workload(Plan::AcaJob, 250 * NS_PER_MS, 512);
    s.duration = NS_PER_S;
    s.hosting.scaling.min_instances = 0;
    s.hosting.scaling.max_instances = 10;
    let r = go(&s);
    assert_eq!(r.ledger.completed, 1);
    assert_eq!(r.scaling.cold_starts, 1);
    assert!(close(r.cost.instance_seconds, 1.25), "{:?}", r.cost);
    assert!(close(r.cost.compute_usd, 1.25 * (0.5 + 0.5)), "{:?}", r.cost);
    assert_eq!(r.latency["end_to_end"].mean_ns(), (31_250 * NS_PER_MS) as f64);
}

#[test]
fn autoscaler_follows_the_backlog_within_its_limits_and_scale_from_zero_pays_a_cold_start() {
    // 200/s of 1 s work needs 200 busy handlers: 13 instances of 16; the cap is 8.
    let s = Scenario {
        duration: 60 * NS_PER_MIN,
        interval: 30 * NS_PER_S,
        workload: WorkloadSpec { rate_per_s: 20.0, ..Default::default() },
        consumer: ConsumerSpec {
            concurrency: 16,
            work: Dist::Const(NS_PER_S),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::FunctionsConsumption,
            scaling: ScalingSpec {
                min_instances: 0,
                max_instances: 8,
                cold_start: Dist::Const(5 * NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        queue: QueueSpec::service_bus(),
        ..Default::default()
    };
    let mut s = s;
    s.workload.phases.push(Phase { from: 10 * NS_PER_MIN, to: 20 * NS_PER_MIN, rate_per_s: 200.0 });
    let r = go(&s);
    let rows = &r.timeseries;
    assert!(rows.iter().all(|row| row.instances <= 8), "never above max_instances");
    assert_eq!(r.scaling.instances_peak, 8);
    // From zero: the first message waits for the scaler's poll and a 5 s cold start.
    assert!(r.scaling.cold_starts >= 8);
    let first_wait = r.latency["queue_wait"].max_ns();
    assert!(first_wait >= 5 * NS_PER_S, "queue wait includes a cold start");
    // Target-based scaling adds up to 4 instances per 30 s decision: 8 take two decisions.
    let at = |n: u32| rows.iter().find(|row| row.instances >= n).map(|row| row.t).unwrap();
    let burst = 10 * NS_PER_MIN;
    assert!(at(8) - burst <= 120 * NS_PER_S, "four at a time: {}", at(8) - burst);
    // After the burst the backlog drains and the pool shrinks again (cooldown 5 min).
    assert!(rows.last().unwrap().instances < 8);
    assert!(r.scaling.scale_ins > 0);
    assert_eq!(r.ledger.completed, r.ledger.produced);
}

#[test]
fn an_execution_over_the_time_limit_is_retried_then_dead_lettered_and_nothing_is_lost() {
    // Consumption's default limit is 5 minutes; these handlers need 7.
    let s = Scenario {
        duration: 10 * NS_PER_S,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 1.0,
            ..Default::default()
        },
        queue: QueueSpec { max_delivery_count: 3, ..QueueSpec::service_bus() },
        consumer: ConsumerSpec {
            concurrency: 16,
            work: Dist::Const(7 * NS_PER_MIN),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::FunctionsConsumption,
            scaling: ScalingSpec { min_instances: 1, max_instances: 1, ..Default::default() },
            ..Default::default()
        },
        ..Default::default()
    };
    let r = go(&s);
    assert_eq!(r.ledger.produced, 10);
    assert_eq!(r.ledger.dead_lettered, 10, "{:?}", r.ledger);
    assert_eq!(r.ledger.deliveries, 30);
    // Each delivery ended at a timeout: its own, or one in the same worker process (which
    // the host restarts, failing every execution in it).
    assert_eq!(r.scaling.timeouts + r.scaling.timeout_collateral, 30, "{:?}", r.scaling);
    assert!(r.scaling.timeout_collateral > 0, "{:?}", r.scaling);
    assert_eq!(r.ledger.lost + r.ledger.in_flight + r.ledger.completed, 0);
}

/// A burst on Consumption from zero: the scaler's pace decides how fast instances come.
fn burst(scale_out_max: u32) -> RunResults {
    let mut s = Scenario {
        duration: 20 * NS_PER_MIN,
        interval: 10 * NS_PER_S,
        workload: WorkloadSpec { rate_per_s: 1.0, ..Default::default() },
        consumer: ConsumerSpec {
            concurrency: 16,
            work: Dist::Const(NS_PER_S),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::FunctionsConsumption,
            scaling: ScalingSpec {
                max_instances: 20,
                cold_start: Dist::Const(5 * NS_PER_S),
                scale_out_max,
                ..Default::default()
            },
            ..Default::default()
        },
        queue: QueueSpec::service_bus(),
        ..Default::default()
    };
    s.workload.phases.push(Phase { from: 2 * NS_PER_MIN, to: 10 * NS_PER_MIN, rate_per_s: 300.0 });
    go(&s)
}

#[test]
fn target_based_scaling_adds_four_instances_per_decision_incremental_one() {
    let (target, incremental) = (burst(4), burst(1));
    let reach = |r: &RunResults, n: u32| {
        r.timeseries.iter().find(|row| row.instances >= n).map(|row| row.t).expect("reached")
    };
    // 300/s of 1 s work needs 19 instances of 16 handlers: 5 decisions at 4 a time, 19 at
    // one a time (30 s apart).
    let burst_at = 2 * NS_PER_MIN;
    assert!(reach(&target, 19) - burst_at <= 6 * 30 * NS_PER_S, "{}", reach(&target, 19));
    assert!(reach(&incremental, 19) - burst_at >= 18 * 30 * NS_PER_S);
    let p99 = |r: &RunResults| r.latency["end_to_end"].quantile_ns(0.99);
    assert!(p99(&incremental) > 2 * p99(&target), "{} vs {}", p99(&incremental), p99(&target));
    assert_eq!(target.ledger.completed, target.ledger.produced);
}

#[test]
fn a_scaled_in_instance_is_cut_off_when_its_drain_grace_runs_out() {
    // Premium drains for up to 60 min by default; here 2 min, with 10-minute handlers.
    let mut s = Scenario {
        duration: 30 * NS_PER_MIN,
        interval: 30 * NS_PER_S,
        workload: WorkloadSpec { rate_per_s: 0.01, ..Default::default() },
        queue: QueueSpec { max_delivery_count: 10, ..QueueSpec::service_bus() },
        consumer: ConsumerSpec {
            concurrency: 2,
            work: Dist::Const(10 * NS_PER_MIN),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::FunctionsPremium,
            execution_timeout: ExecutionLimit::Unlimited,
            scaling: ScalingSpec {
                min_instances: 1,
                max_instances: 10,
                cooldown: 0,
                target_per_instance: Some(2),
                drain_grace: Some(2 * NS_PER_MIN),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    s.workload.phases.push(Phase { from: NS_PER_MIN, to: 2 * NS_PER_MIN, rate_per_s: 0.2 });
    let r = go(&s);
    assert!(r.scaling.drain_cutoffs > 0, "{:?}", r.scaling);
    assert!(r.ledger.deliveries > r.ledger.produced, "cut-off work is delivered again");
    assert_eq!(r.ledger.lost, 0);
    // Without a grace limit the same drains wait for the handlers: nothing is cut off.
    s.hosting.scaling.drain_grace = Some(NS_PER_DAY);
    let r = go(&s);
    assert_eq!(r.scaling.drain_cutoffs, 0, "{:?}", r.scaling);
}

/// One 7-minute message on a storage queue, a 5-minute `functionTimeout`, two deliveries.
fn timed_out(model: WorkerModel) -> RunResults {
    let s = Scenario {
        duration: NS_PER_S,
        drain: Some(120 * NS_PER_MIN),
        interval: 10 * NS_PER_S,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 1.0,
            ..Default::default()
        },
        queue: QueueSpec { max_delivery_count: 2, ..QueueSpec::storage_queue() },
        consumer: ConsumerSpec { work: Dist::Const(7 * NS_PER_MIN), ..Default::default() },
        hosting: HostingSpec {
            plan: Plan::FunctionsPremium,
            execution_timeout: ExecutionLimit::After(5 * NS_PER_MIN),
            worker_model: model,
            scaling: ScalingSpec { min_instances: 1, max_instances: 1, ..Default::default() },
            ..Default::default()
        },
        ..Default::default()
    };
    go(&s)
}

#[test]
fn a_timeout_in_process_waits_for_the_visibility_to_lapse_isolated_releases_at_once() {
    let dead_at = |r: &RunResults| {
        r.timeseries.iter().find(|row| row.dead_lettered > 0).map(|row| row.t).expect("poisoned")
    };
    let isolated = timed_out(WorkerModel::Isolated);
    let in_process = timed_out(WorkerModel::InProcess);
    for r in [&isolated, &in_process] {
        assert_eq!((r.ledger.dead_lettered, r.ledger.deliveries), (1, 2), "{:?}", r.ledger);
        assert_eq!(r.scaling.timeouts, 2);
    }
    // Isolated: released at each timeout, poisoned after two 5-minute tries.
    assert!(dead_at(&isolated) <= 10 * NS_PER_MIN + 10 * NS_PER_S, "{}", dead_at(&isolated));
    // In-process: the host goes down unsettled; the message waits out its 10-minute
    // visibility (renewed at 5 min) before each retry: twice as long or more.
    assert!(dead_at(&in_process) >= 2 * dead_at(&isolated), "{}", dead_at(&in_process));
    assert!(in_process.scaling.cold_starts > isolated.scaling.cold_starts, "the host restarts");
}

#[test]
fn a_replica_timeout_ends_the_replica_not_each_execution() {
    // Container Apps job: 1-minute replica timeout, 20 s messages, a steady queue: each
    // replica handles messages until its run reaches one minute, then ends mid-message.
    let s = Scenario {
        duration: 5 * NS_PER_MIN,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 0.2,
            ..Default::default()
        },
        queue: QueueSpec { max_delivery_count: 100, ..QueueSpec::service_bus() },
        consumer: ConsumerSpec {
            concurrency: 1,
            work: Dist::Const(20 * NS_PER_S),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            execution_timeout: ExecutionLimit::After(NS_PER_MIN),
            scaling: ScalingSpec {
                max_instances: 1,
                polling_interval: 5 * NS_PER_S,
                cold_start: Dist::Const(NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let r = go(&s);
    assert!(r.scaling.timeouts > 0, "{:?}", r.scaling);
    // No execution is longer than the limit, yet replicas end at it: more replicas than one.
    assert!(r.scaling.scale_outs >= 4, "{:?}", r.scaling);
    assert!(r.ledger.completed > 0);
}

#[test]
fn webjob_background_load_slows_the_web_tier() {
    let base = Scenario {
        duration: 10 * NS_PER_MIN,
        interval: NS_PER_MIN,
        consumer: ConsumerSpec {
            instances: 2,
            concurrency: 4,
            work: Dist::Const(100 * NS_PER_MS),
            ..Default::default()
        },
        hosting: HostingSpec { plan: Plan::WebJob, cpu: 2.0, ..Default::default() },
        ..Default::default()
    };
    let mut latencies = Vec::new();
    for rate in [1.0, 10.0, 30.0] {
        let mut s = base.clone();
        s.workload.rate_per_s = rate;
        let web = go(&s).web.expect("webjob reports its web tier");
        latencies.push(web.latency_mean_ms);
        assert!(web.latency_mean_ms >= web.latency_alone_ms);
    }
    assert!(latencies[0] < latencies[1] && latencies[1] < latencies[2], "{latencies:?}");
}

#[test]
fn scale_in_never_goes_below_the_always_ready_floor_while_instances_drain() {
    // Long handlers keep drained instances around for minutes; the scaler must not count
    // them as capacity, nor drain the always-ready ones.
    let mut s = Scenario {
        duration: 30 * NS_PER_MIN,
        interval: 30 * NS_PER_S,
        workload: WorkloadSpec { rate_per_s: 0.2, ..Default::default() },
        consumer: ConsumerSpec {
            concurrency: 4,
            work: Dist::Const(2 * NS_PER_MIN),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::FunctionsPremium,
            scaling: ScalingSpec {
                min_instances: 2,
                max_instances: 10,
                cooldown: 0,
                scale_out_step: 10 * NS_PER_S,
                polling_interval: 10 * NS_PER_S,
                target_per_instance: Some(4),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    s.workload.phases.push(Phase { from: 5 * NS_PER_MIN, to: 8 * NS_PER_MIN, rate_per_s: 1.0 });
    let r = go(&s);
    assert!(r.timeseries.iter().all(|row| row.instances >= 2), "never below min_instances");
    assert!(r.scaling.scale_ins <= r.scaling.scale_outs, "{:?}", r.scaling);
    assert!(r.scaling.scale_outs > 0 && r.scaling.scale_ins > 0, "{:?}", r.scaling);
    assert_eq!(r.ledger.completed, r.ledger.produced);
}

#[test]
fn never_lifts_the_execution_limit() {
    let s = Scenario {
        duration: 10 * NS_PER_S,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 1.0,
            ..Default::default()
        },
        consumer: ConsumerSpec {
            concurrency: 16,
            work: Dist::Const(40 * NS_PER_MIN),
            ..Default::default()
        },
        queue: QueueSpec { lock_renewal: 60 * NS_PER_MIN, ..QueueSpec::service_bus() },
        hosting: HostingSpec {
            plan: Plan::FunctionsPremium,
            execution_timeout: ExecutionLimit::Unlimited,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = go(&s);
    assert_eq!(r.scaling.timeouts, 0);
    assert_eq!(r.ledger.completed, 10);
}

/// 300 messages of two classes on a storage queue with a 5-minute `functionTimeout` and three
/// deliveries; `slow` messages' work is `lognormal(mean=2m, p99=10m)`, drawn per delivery
/// (`[consumer] work`, with `normal`'s work the same) or once per message
/// (`[workload.class_work]`).
fn slow_class(per_message: bool) -> RunResults {
    let slow = Dist::lognormal(2 * NS_PER_MIN, 10 * NS_PER_MIN).expect("valid");
    let s = Scenario {
        duration: 300 * NS_PER_S,
        drain: Some(300 * NS_PER_MIN),
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 1.0,
            classes: vec![("slow".into(), 1.0)],
            class_work: if per_message { vec![("slow".into(), slow.clone())] } else { vec![] },
            ..Default::default()
        },
        queue: QueueSpec { max_delivery_count: 3, ..QueueSpec::storage_queue() },
        consumer: ConsumerSpec {
            concurrency: 64,
            batch_size: 32,
            work: if per_message { Dist::Const(NS_PER_MS) } else { slow },
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::FunctionsPremium,
            execution_timeout: ExecutionLimit::After(5 * NS_PER_MIN),
            scaling: ScalingSpec { min_instances: 8, max_instances: 8, ..Default::default() },
            ..Default::default()
        },
        ..Default::default()
    };
    go(&s)
}

#[test]
fn a_slow_message_is_slow_on_every_delivery() {
    let (per_delivery, per_message) = (slow_class(false), slow_class(true));
    // P(work > 5 min) is about 10 % for this log-normal: drawn per delivery, three timeouts in a
    // row are rare (0.1 %); drawn once per message, every one of that 10 % times out three times
    // and is dead-lettered.
    let share = |r: &RunResults| r.ledger.dead_lettered as f64 / r.ledger.produced as f64;
    assert!(share(&per_message) > 0.05, "{:?}", per_message.ledger);
    assert!(share(&per_delivery) < share(&per_message) / 5.0, "{:?}", per_delivery.ledger);
    assert_eq!(per_message.ledger.dead_lettered + per_message.ledger.completed, 300);
}

#[test]
fn a_container_apps_job_aims_at_five_messages_per_replica_by_default() {
    // 100 one-minute messages at once: KEDA's default target (5) asks for 20 replicas.
    let s = Scenario {
        duration: NS_PER_S,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 100.0,
            ..Default::default()
        },
        consumer: ConsumerSpec {
            concurrency: 1,
            work: Dist::Const(NS_PER_MIN),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            scaling: ScalingSpec {
                max_instances: 100,
                polling_interval: 10 * NS_PER_S,
                cold_start: Dist::Const(NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        queue: QueueSpec::service_bus(),
        ..Default::default()
    };
    let r = go(&s);
    assert_eq!(r.scaling.instances_peak, 20, "{:?}", r.scaling);
    assert_eq!(r.ledger.completed, 100);
}

/// A Container Apps job on Service Bus: `n` messages of `work` arrive in the first second;
/// the scaler looks every 10 s, replicas start in 1 s.
fn job_burst(n: f64, work: Nanos, target: Option<u32>, per_replica: Option<u32>) -> Scenario {
    Scenario {
        duration: NS_PER_S,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: n,
            ..Default::default()
        },
        queue: QueueSpec { max_delivery_count: 100, ..QueueSpec::service_bus() },
        consumer: ConsumerSpec { concurrency: 1, work: Dist::Const(work), ..Default::default() },
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            scaling: ScalingSpec {
                max_instances: 100,
                target_per_instance: target,
                polling_interval: 10 * NS_PER_S,
                cold_start: Dist::Const(NS_PER_S),
                messages_per_replica: per_replica,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn a_replica_with_a_message_quota_takes_that_many_and_exits() {
    // A storage queue, 10 ten-second messages, one execution per poll (target 10). A replica
    // would take all 10 in one batch of 16 and drain the queue; with two messages per replica
    // it takes two, handles them side by side and exits, and each later poll starts another.
    let mut s = job_burst(10.0, 10 * NS_PER_S, Some(10), Some(2));
    s.queue = QueueSpec { max_delivery_count: 100, ..QueueSpec::storage_queue() };
    s.consumer.batch_size = 16;
    let quota = go(&s);
    assert_eq!(quota.ledger.completed, 10);
    assert_eq!(quota.scaling.scale_outs, 5, "{:?}", quota.scaling);
    // Each replica runs its cold start and one round of two messages: 11 s apiece.
    assert!(close(quota.cost.instance_seconds, 55.0), "{:?}", quota.cost);
    s.hosting.scaling.messages_per_replica = None;
    let drain = go(&s);
    assert_eq!(drain.ledger.completed, 10);
    assert_eq!(drain.scaling.scale_outs, 1, "{:?}", drain.scaling);
}

#[test]
fn one_message_replicas_at_the_default_target_leave_messages_for_later_executions() {
    // 100 one-minute messages, KEDA's default target 5: 20 executions at the first poll.
    // One-message replicas handle 20 messages in the first minute; each later poll starts
    // executions for what is left, so the backlog takes about five rounds. Replicas that
    // drain the queue keep going instead: the same 20 replicas handle all 100.
    let one = go(&job_burst(100.0, NS_PER_MIN, None, Some(1)));
    let drain = go(&job_burst(100.0, NS_PER_MIN, None, None));
    assert_eq!((one.ledger.completed, drain.ledger.completed), (100, 100));
    assert_eq!(drain.scaling.instances_peak, 20, "{:?}", drain.scaling);
    assert_eq!(one.scaling.scale_outs, 100, "one replica per message: {:?}", one.scaling);
    assert!(drain.scaling.scale_outs < 40, "{:?}", drain.scaling);
    // The drain replicas finish in five minutes of work each; one-message executions are
    // started only at polls, 20 at a time at most while 20 are still running.
    let p99 = |r: &RunResults| r.latency["end_to_end"].quantile_ns(0.99);
    assert!(p99(&one) >= p99(&drain), "{} < {}", p99(&one), p99(&drain));
}

#[test]
fn an_execution_runs_parallelism_replicas_and_the_scaler_counts_executions() {
    // 100 one-minute messages over 20 s, target 5. At the 10 s poll about 50 are queued:
    // about 10 executions of three replicas each. At the 20 s poll all 100 are held (the
    // replicas hold the ones they handle): 20 executions wanted, so about 10 more start,
    // 60 replicas in all. Counting replicas instead (30 or more running, 20 wanted) would
    // start none.
    let mut s = job_burst(5.0, NS_PER_MIN, None, None);
    s.duration = 20 * NS_PER_S;
    s.hosting.scaling.parallelism = 3;
    s.hosting.scaling.completion_count = 3;
    let r = go(&s);
    assert_eq!(r.ledger.completed, 100);
    assert_eq!(r.scaling.instances_peak, 60, "{:?}", r.scaling);
    assert_eq!(r.scaling.scale_outs, 60, "{:?}", r.scaling);
}

#[test]
fn a_completed_execution_ends_its_other_replicas() {
    // One 2-minute message, two replicas per execution, one completion needed: the replica
    // that finds the queue empty exits at once and completes the execution, so its sibling
    // (handling the message) is ended 30 s later, cut off; the message comes back when its
    // lock lapses and the same thing happens again. With a completion count of 2 the
    // execution waits for both replicas and the message completes.
    let mut s = job_burst(1.0, 2 * NS_PER_MIN, Some(1), Some(1));
    s.duration = NS_PER_S;
    s.drain = Some(20 * NS_PER_MIN);
    s.queue.max_delivery_count = 3;
    s.hosting.scaling.parallelism = 2;
    s.hosting.scaling.completion_count = 1;
    let one = go(&s);
    assert_eq!(one.ledger.completed, 0, "{:?}", one.ledger);
    assert_eq!(one.ledger.dead_lettered, 1, "{:?}", one.ledger);
    assert!(one.scaling.drain_cutoffs >= 3, "{:?}", one.scaling);
    s.hosting.scaling.completion_count = 2;
    let both = go(&s);
    assert_eq!(both.ledger.completed, 1, "{:?}", both.ledger);
    assert_eq!(both.scaling.drain_cutoffs, 0, "{:?}", both.scaling);
}
