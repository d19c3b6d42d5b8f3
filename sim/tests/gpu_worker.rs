//! The GPU worker: batches fill under load and stay small at a trickle (with `max_wait`
//! bounding the latency batching adds), the bill matches a hand computation, a batch too
//! large for the GPU's memory fails with out-of-memory, a scaler target below the batch size
//! over-creates replicas, and the checkers hold over many seeds with random crashes.
//! `SIM_SEED=N` replays one seed; `SIM_SEEDS=N` sets how many.

use sim::dist::Dist;
use sim::model::gpu::BatchLatency;
use sim::patterns::gpu_worker::{KIND, Settings};
use sim::results::RunResults;
use sim::rng::Rng;
use sim::spec::table::PatternTable;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};
use std::sync::Arc;

fn seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

const MS: Nanos = NS_PER_MS;

/// A T4 with a 20 ms + 2 ms/item batch, 32 per batch, 50 ms wait, instant cold starts.
fn gpu(max_batch: u32, max_wait: Nanos) -> Settings {
    Settings {
        max_batch: Some(max_batch),
        max_wait: Some(max_wait),
        batch_latency: Some(BatchLatency::Linear { base: 20 * MS, per_item: 2 * MS }),
        memory_mb: Some(16.0 * 1024.0),
        model_memory_mb: Some(2048.0),
        item_memory_mb: Some(300.0),
        image_pull: Some(Dist::Const(0)),
        model_load: Some(Dist::Const(0)),
        ..Default::default()
    }
}

/// One warm GPU replica on a fixed worker, Poisson arrivals at `rate` for 10 minutes.
fn warm(settings: Settings, rate: f64, seed: u64) -> Scenario {
    Scenario {
        seed,
        duration: 10 * NS_PER_MIN,
        pattern: KIND,
        pattern_table: PatternTable(Some(Arc::new(settings))),
        workload: WorkloadSpec { rate_per_s: rate, ..Default::default() },
        queue: QueueSpec::service_bus(),
        consumer: ConsumerSpec { instances: 1, ..Default::default() },
        ..Default::default()
    }
}

fn checked(s: &Scenario) -> RunResults {
    let r = run(s, RunOptions { checks: true, ..Default::default() }, &mut |_| {}).results;
    assert!(r.violations.is_empty(), "seed {}: {:#?}", s.seed, r.violations);
    assert_eq!(r.ledger.lost, 0, "seed {}", s.seed);
    r
}

fn field(r: &RunResults, name: &str) -> f64 {
    r.sections["gpu"][name]
}

#[test]
fn under_load_the_batches_fill() {
    // A full batch takes 84 ms (380 items/s): at 330/s the replica is busy most of the time
    // and every batch finds a backlog of about a batch.
    let r = checked(&warm(gpu(32, 50 * MS), 330.0, seed()));
    let mean = field(&r, "batch_size_mean");
    assert!(mean > 0.9 * 32.0 && mean <= 32.0, "mean batch size {mean}");
    assert!(field(&r, "utilization") > 0.8, "utilization {}", field(&r, "utilization"));
    assert_eq!(r.ledger.completed, r.ledger.produced);
}

#[test]
fn at_a_trickle_batches_stay_small_and_max_wait_bounds_the_added_latency() {
    // One message every 2 s on average: nearly every batch holds one message, which waits
    // the whole max_wait for company and then runs alone (22 ms).
    let r = checked(&warm(gpu(32, 50 * MS), 0.5, seed()));
    let mean = field(&r, "batch_size_mean");
    assert!((1.0..1.1).contains(&mean), "mean batch size {mean}");
    let e2e = &r.latency["end_to_end"];
    // From its receipt, a message waits at most max_wait (50 ms) for company, then its batch
    // of a few items runs (20 + 2n ms).
    let handler_ms = r.latency["handler"].max_ns() as f64 / 1e6;
    assert!(handler_ms <= 50.0 + 20.0 + 2.0 * 3.0 + 0.1, "max handler {handler_ms} ms");
    // End to end, it may also wait for the batch running when it arrives.
    let max_ms = e2e.max_ns() as f64 / 1e6;
    assert!(max_ms <= 2.0 * (20.0 + 2.0 * 3.0) + 50.0 + 0.1, "max end-to-end {max_ms} ms");
    let p50 = e2e.quantile_ns(0.5) as f64 / 1e6;
    assert!((71.5..=72.5).contains(&p50), "a lone message: 50 ms wait + 22 ms batch, got {p50}");
    assert!(field(&r, "fill_wait_ms_max") <= 50.0);
    // Without the wait, a lone message runs at once.
    let r = checked(&warm(gpu(32, 0), 0.5, seed()));
    let p50 = r.latency["end_to_end"].quantile_ns(0.5) as f64 / 1e6;
    assert!((21.5..=22.5).contains(&p50), "no wait: 22 ms batch, got {p50}");
}

#[test]
fn the_bill_matches_a_hand_computation() {
    // 64 messages at t = 0..0.64 s. The scaler polls at 30 s and starts one replica (max 1):
    // replica start 10 s, image pull 5 s, model load 20 s, ready at 65 s; two batches of 32
    // (84 ms each); the queue is empty, it exits at 65.168 s. Billed: 35.168 s of the
    // replica: GPU-seconds at the T4 rate, vCPU-s and GiB-s at the Container Apps rates.
    let mut settings = gpu(32, 50 * MS);
    settings.image_pull = Some(Dist::Const(5 * NS_PER_S));
    settings.model_load = Some(Dist::Const(20 * NS_PER_S));
    let mut pricing = Pricing::zero("hand");
    pricing.set("gpu_t4_s_usd", 0.0002);
    pricing.set("aca_vcpu_s_usd", 0.000024);
    pricing.set("aca_gib_s_usd", 0.000003);
    pricing.set("service_bus_per_million_operations_usd", 0.0);
    let s = Scenario {
        duration: 640 * MS,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 100.0,
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            cpu: 8.0,
            memory_mb: 56 * 1024,
            scaling: ScalingSpec {
                min_instances: 0,
                max_instances: 1,
                cold_start: Dist::Const(10 * NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        cost: CostSpec { pricing, free_grant: false },
        ..warm(settings, 100.0, seed())
    };
    let r = checked(&s);
    assert_eq!(r.ledger.completed, 64);
    assert_eq!(field(&r, "batches"), 2.0);
    assert_eq!(field(&r, "model_loads"), 1.0);
    let billed_s = 35.168;
    assert!((field(&r, "gpu_seconds") - billed_s).abs() < 1e-6, "{}", field(&r, "gpu_seconds"));
    let gpu_usd = billed_s * 0.0002;
    let compute_usd = billed_s * (8.0 * 0.000024 + 56.0 * 0.000003);
    assert!((r.cost.gpu_usd - gpu_usd).abs() < 1e-9, "gpu {} != {gpu_usd}", r.cost.gpu_usd);
    assert!((r.cost.compute_usd - compute_usd).abs() < 1e-9, "compute {}", r.cost.compute_usd);
    assert!((r.cost.total_usd - gpu_usd - compute_usd).abs() < 1e-9, "total {}", r.cost.total_usd);
    // 2 × 84 ms busy of 35.168 s billed.
    let u = field(&r, "utilization");
    assert!((u - 0.168 / billed_s).abs() < 1e-9, "utilization {u}");
}

#[test]
fn a_batch_that_does_not_fit_fails_with_out_of_memory() {
    // 2 GB model + 300 MB per item in 16 GB: 47 items fit. Under load, batches of 64 do not.
    let big = checked(&warm(gpu(64, 50 * MS), 330.0, seed()));
    assert_eq!(field(&big, "max_safe_batch"), 47.0);
    assert!(field(&big, "oom_errors") > 0.0);
    assert!(big.ledger.dead_lettered > 0, "redelivered until max_delivery_count");
    let safe = checked(&warm(gpu(32, 50 * MS), 330.0, seed()));
    assert_eq!(field(&safe, "oom_errors"), 0.0);
    assert_eq!(safe.ledger.dead_lettered, 0);
}

/// A burst of 200 messages every 5 minutes onto a job scaled by a KEDA-like scaler with the
/// given target, replicas that take a long time to start.
fn bursts(target: u32, seed: u64) -> Scenario {
    let mut settings = gpu(32, 50 * MS);
    settings.model_load = Some(Dist::Const(40 * NS_PER_S));
    Scenario {
        duration: 20 * NS_PER_MIN,
        workload: WorkloadSpec {
            rate_per_s: 0.0,
            phases: (0..4)
                .map(|i| Phase {
                    from: i * 5 * NS_PER_MIN,
                    to: i * 5 * NS_PER_MIN + 10 * NS_PER_S,
                    rate_per_s: 20.0,
                })
                .collect(),
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            scaling: ScalingSpec {
                min_instances: 0,
                max_instances: 100,
                target_per_instance: Some(target),
                cold_start: Dist::Const(60 * NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        ..warm(settings, 0.0, seed)
    }
}

#[test]
fn a_scaler_target_below_the_batch_size_over_creates_replicas() {
    let keda_default = checked(&bursts(5, seed()));
    let matched = checked(&bursts(32, seed()));
    let (over, fit) = (field(&keda_default, "overcreated"), field(&matched, "overcreated"));
    assert!(over > 0.0, "target 5 with batches of 32: replicas with nothing to do");
    assert!(over > 2.0 * fit.max(1.0), "over-created {over} vs {fit}");
    assert!(keda_default.cost.gpu_usd >= matched.cost.gpu_usd);
    assert!(field(&keda_default, "replicas") > field(&matched, "replicas"));
}

#[test]
fn a_warm_replica_answers_a_trickle_without_cold_starts() {
    let mut settings = gpu(32, 50 * MS);
    settings.model_load = Some(Dist::Const(40 * NS_PER_S));
    let job = |min: u32| Scenario {
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            scaling: ScalingSpec {
                min_instances: min,
                max_instances: 10,
                cold_start: Dist::Const(20 * NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        ..warm(settings.clone(), 0.02, seed())
    };
    let zero = checked(&job(0));
    let one = checked(&job(1));
    let p50 = |r: &RunResults| r.latency["end_to_end"].quantile_ns(0.5) as f64 / 1e9;
    assert!(p50(&zero) > 60.0, "scale to zero: every message waits for a replica: {}", p50(&zero));
    assert!(p50(&one) < 0.1, "one warm replica: {}", p50(&one));
    assert_eq!(field(&one, "model_loads"), 1.0);
    assert!(field(&zero, "model_loads") >= 2.0);
}

#[test]
fn a_job_replica_ends_at_the_replica_timeout_and_a_fresh_one_loads_the_model() {
    // Steady work that never leaves a replica idle, replica timeout 5 minutes, 20 minutes.
    let mut settings = gpu(32, 50 * MS);
    settings.model_load = Some(Dist::Const(30 * NS_PER_S));
    settings.idle_timeout = Some(30 * NS_PER_S);
    let s = Scenario {
        duration: 20 * NS_PER_MIN,
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            execution_timeout: ExecutionLimit::After(5 * NS_PER_MIN),
            scaling: ScalingSpec {
                min_instances: 0,
                max_instances: 1,
                cold_start: Dist::Const(10 * NS_PER_S),
                ..Default::default()
            },
            ..Default::default()
        },
        ..warm(settings, 50.0, seed())
    };
    let r = checked(&s);
    let timeouts = field(&r, "replica_timeouts");
    assert!(timeouts >= 3.0, "20 minutes of 5-minute replicas: {timeouts}");
    assert_eq!(field(&r, "model_loads"), field(&r, "replicas"));
    assert!(field(&r, "model_loads") >= 4.0);
    assert_eq!((r.ledger.dead_lettered, r.ledger.in_flight), (0, 0), "nothing dropped");
}

#[test]
fn checkers_hold_over_many_seeds_with_random_crashes() {
    for seed in seed()..seed() + seeds() {
        let mut r = Rng::stream(seed, "gpu-swarm");
        let mut settings = gpu(1 + r.below(48) as u32, r.below(100) * MS);
        settings.model_load = Some(Dist::Const(r.below(30) * NS_PER_S));
        let plan = if r.chance(0.5) { Plan::AcaJob } else { Plan::Worker };
        let at = (1 + r.below(8)) * NS_PER_MIN;
        let s = Scenario {
            hosting: HostingSpec {
                plan,
                scaling: ScalingSpec {
                    min_instances: r.below(2) as u32,
                    max_instances: 1 + r.below(5) as u32,
                    cold_start: Dist::Const(r.below(20) * NS_PER_S),
                    ..Default::default()
                },
                ..Default::default()
            },
            queue: QueueSpec {
                visibility_timeout: (5 + r.below(30)) * NS_PER_S,
                ..QueueSpec::service_bus()
            },
            faults: vec![FaultSpec {
                target: "consumer".into(),
                kind: FaultKind::Crash {
                    at,
                    instances: 1 + r.below(3) as u32,
                    restart_after: r.chance(0.7).then(|| r.below(60) * NS_PER_S),
                },
            }],
            drain: Some(30 * NS_PER_MIN),
            ..warm(settings, 5.0 + r.below(300) as f64, seed)
        };
        let res = checked(&s);
        assert!(res.ledger.balances(), "seed {seed}");
        if std::env::var("GPU_DEBUG").is_ok() {
            eprintln!(
                "{seed}: {plan:?} in flight {} {:?}",
                res.ledger.in_flight, res.sections["gpu"]
            );
        }
    }
}

#[test]
fn a_job_execution_of_two_gpu_replicas_loads_the_model_on_each() {
    // 64 messages, one execution at most: with `parallelism = 2` it starts two GPU replicas,
    // each pulls the image and loads the model, and they share the messages.
    let mut settings = gpu(32, 50 * MS);
    settings.image_pull = Some(Dist::Const(5 * NS_PER_S));
    settings.model_load = Some(Dist::Const(20 * NS_PER_S));
    let s = Scenario {
        duration: 640 * MS,
        workload: WorkloadSpec {
            arrivals: Arrivals::Constant,
            rate_per_s: 100.0,
            ..Default::default()
        },
        hosting: HostingSpec {
            plan: Plan::AcaJob,
            scaling: ScalingSpec {
                min_instances: 0,
                max_instances: 1,
                cold_start: Dist::Const(10 * NS_PER_S),
                parallelism: 2,
                completion_count: 2,
                ..Default::default()
            },
            ..Default::default()
        },
        ..warm(settings, 100.0, seed())
    };
    let r = checked(&s);
    assert_eq!(r.ledger.completed, 64);
    assert_eq!(r.scaling.scale_outs, 2, "{:?}", r.scaling);
    assert_eq!(r.scaling.instances_peak, 2, "{:?}", r.scaling);
    assert_eq!(field(&r, "model_loads"), 2.0);
}
