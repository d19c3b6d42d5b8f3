//! The simulator against queueing theory (the formulas are in `docs/sources.md`).
//!
//! Each check runs `REPLICATES` independent seeds and compares the theory with a 99.9 %
//! Student-t confidence interval over the replicate means, so the tolerance follows from
//! the run length, not from tuning. Runs start empty and discard a warm-up.
//!
//! The M/M/c setup is design.md's: Service Bus, `batch_size = 1`, `concurrency = 1`, one
//! instance per server, Poisson arrivals, exponential work, no calls and no faults.
//!
//! `SIM_SEED=N` shifts the seeds (replicate i uses seed N + i).

use sim::dist::Dist;
use sim::results::RunResults;
use sim::spec::*;
use sim::time::*;
use sim::{RunOptions, run};

const REPLICATES: usize = 8;

/// Two-sided 99.9 % Student-t quantiles for 1..=10 degrees of freedom.
const T999: [f64; 10] = [636.6, 31.6, 12.92, 8.61, 6.869, 5.959, 5.408, 5.041, 4.781, 4.587];

fn base_seed() -> u64 {
    std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

/// An M/M/c (or M/G/c) scenario: `c` servers, arrival rate `lambda` per second, service
/// `work`, `customers` arrivals expected after a warm-up of a tenth of them.
fn mgc(c: u32, lambda: f64, work: Dist, customers: f64) -> Scenario {
    let duration = (customers * 1.1 / lambda * NS_PER_S as f64) as Nanos;
    Scenario {
        duration,
        warmup: duration / 11,
        interval: duration / 10,
        workload: WorkloadSpec {
            arrivals: Arrivals::Poisson,
            rate_per_s: lambda,
            ..Default::default()
        },
        queue: QueueSpec::service_bus(),
        consumer: ConsumerSpec {
            instances: c,
            concurrency: 1,
            batch_size: 1,
            work,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn replicate(s: &Scenario) -> Vec<RunResults> {
    (0..REPLICATES)
        .map(|i| {
            let s = Scenario { seed: base_seed() + i as u64, ..s.clone() };
            let r = run(&s, RunOptions::default(), &mut |_| {}).results;
            assert!(r.ledger.balances());
            r
        })
        .collect()
}

/// Asserts that `theory` lies in the 99.9 % confidence interval of the replicate values.
fn check(what: &str, theory: f64, values: &[f64]) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half = T999[values.len() - 2] * (var / n).sqrt();
    let seeds = format!("seeds {}..{}", base_seed(), base_seed() + values.len() as u64);
    println!("{what}: simulated {mean:.5} ± {half:.5} (99.9 % CI), theory {theory:.5}");
    assert!(
        (mean - theory).abs() <= half,
        "{what}: theory {theory} outside {mean} ± {half} ({seeds}; replay with SIM_SEED)"
    );
}

fn secs(ns: f64) -> f64 {
    ns / NS_PER_S as f64
}

/// Erlang C: P(wait > 0) for `c` servers at offered load `a`, by the stable recursion.
fn erlang_c(c: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(c);
    c * b / (c - a * (1.0 - b))
}

fn check_mmc(c: u32, rho: f64) {
    let mu = 10.0; // service mean 100 ms
    let lambda = rho * f64::from(c) * mu;
    let runs = replicate(&mgc(c, lambda, Dist::Exp { mean: 100 * NS_PER_MS }, 200_000.0));
    let a = lambda / mu;
    let pw = erlang_c(c, a);
    let wq = pw / (f64::from(c) * mu - lambda);
    let label = format!("M/M/{c} rho={rho}");
    let waits: Vec<f64> = runs.iter().map(|r| secs(r.latency["queue_wait"].mean_ns())).collect();
    check(&format!("{label} mean wait Wq [s]"), wq, &waits);
    let pws: Vec<f64> = runs.iter().map(|r| r.latency["queue_wait"].nonzero_share()).collect();
    check(&format!("{label} P(wait > 0)"), pw, &pws);
    let sojourn: Vec<f64> = runs.iter().map(|r| secs(r.latency["end_to_end"].mean_ns())).collect();
    check(&format!("{label} mean sojourn W [s]"), wq + 1.0 / mu, &sojourn);
    check_little(&runs);
}

/// Little's law on each run's own counters: time-averaged number in the system equals the
/// arrival rate times the mean time in the system. With the warm-up discarded from W but
/// not from L, the two agree to within the run-to-run noise, so check the pooled ratio.
fn check_little(runs: &[RunResults]) {
    let ratios: Vec<f64> = runs
        .iter()
        .map(|r| {
            let lambda = r.ledger.produced as f64 / secs(r.sim_time as f64);
            let w = secs(r.latency["end_to_end"].mean_ns());
            r.in_system_mean / (lambda * w)
        })
        .collect();
    check("Little's law L / (lambda W)", 1.0, &ratios);
}

#[test]
fn mm1_light_and_heavy_means_and_sojourn_tail() {
    for rho in [0.5, 0.9] {
        let mu = 10.0;
        let lambda = rho * mu;
        let runs = replicate(&mgc(1, lambda, Dist::Exp { mean: 100 * NS_PER_MS }, 300_000.0));
        check_little(&runs);
        // W ~ Exp(mu - lambda): the p-quantile is -ln(1-p) / (mu - lambda).
        for p in [0.5, 0.9, 0.99] {
            let theory = -(1.0f64 - p).ln() / (mu - lambda);
            let q: Vec<f64> =
                runs.iter().map(|r| secs(r.latency["end_to_end"].quantile_ns(p) as f64)).collect();
            check(&format!("M/M/1 rho={rho} sojourn p{}", p * 100.0), theory, &q);
        }
        let w: Vec<f64> = runs.iter().map(|r| secs(r.latency["end_to_end"].mean_ns())).collect();
        check(&format!("M/M/1 rho={rho} mean sojourn"), 1.0 / (mu - lambda), &w);
    }
}

#[test]
fn mmc_erlang_c_one_and_many_servers() {
    check_mmc(1, 0.5);
    check_mmc(10, 0.5);
    check_mmc(10, 0.9);
}

#[test]
fn md1_pollaczek_khinchine() {
    let mu = 10.0;
    let rho = 0.8;
    let runs = replicate(&mgc(1, rho * mu, Dist::Const(100 * NS_PER_MS), 200_000.0));
    let wq = rho / (2.0 * mu * (1.0 - rho));
    let waits: Vec<f64> = runs.iter().map(|r| secs(r.latency["queue_wait"].mean_ns())).collect();
    check("M/D/1 rho=0.8 mean wait (P-K)", wq, &waits);
    // M/G/1 with uniform service: E[S^2] = (b^3 - a^3) / (3 (b - a))
    let (a, b) = (0.05, 0.15);
    let runs = replicate(&mgc(
        1,
        rho * mu,
        Dist::Uniform { lo: 50 * NS_PER_MS, hi: 150 * NS_PER_MS },
        200_000.0,
    ));
    let es2 = (b * b * b - a * a * a) / (3.0 * (b - a));
    let wq = rho * mu * es2 / (2.0 * (1.0 - rho));
    let waits: Vec<f64> = runs.iter().map(|r| secs(r.latency["queue_wait"].mean_ns())).collect();
    check("M/G/1 uniform rho=0.8 mean wait (P-K)", wq, &waits);
}

#[test]
fn mm1k_loss_probability() {
    // One server, room for K in the system: the queue's capacity counts waiting and locked
    // messages, which with one handler is exactly the number in the system.
    let k = 5;
    for rho in [0.7, 1.3] {
        let mu = 10.0;
        let mut s = mgc(1, rho * mu, Dist::Exp { mean: 100 * NS_PER_MS }, 200_000.0);
        s.queue.capacity = k;
        let runs = replicate(&s);
        let theory = (1.0 - rho) * rho.powi(k as i32) / (1.0 - rho.powi(k as i32 + 1));
        let p: Vec<f64> =
            runs.iter().map(|r| r.ledger.rejected as f64 / r.ledger.produced as f64).collect();
        check(&format!("M/M/1/{k} rho={rho} P(block)"), theory, &p);
    }
}

#[test]
fn m_d_1_processor_sharing_on_one_vcpu() {
    // CPU-bound handlers, 64 at a time on one vCPU: an M/G/1 processor-sharing queue, whose
    // mean sojourn is S / (1 - rho) whatever the service distribution (insensitivity). With
    // constant 100 ms work at rho = 0.7 that is 0.333 s; first-come-first-served would give
    // Pollaczek-Khinchine's 0.217 s, and 64 independent handlers 0.1 s.
    let (lambda, service) = (7.0, 0.1);
    let mut s = mgc(1, lambda, Dist::Const(100 * NS_PER_MS), customers());
    s.consumer.concurrency = 64;
    s.consumer.cpu_bound = true;
    let runs = replicate(&s);
    let w: Vec<f64> = runs.iter().map(|r| secs(r.latency["end_to_end"].mean_ns())).collect();
    let rho = lambda * service;
    check("M/D/1-PS mean sojourn [s]", service / (1.0 - rho), &w);
    check_little(&runs);
    // Two vCPUs: up to two pieces at full speed, sharing beyond (rho = 0.35 per vCPU).
    s.hosting.cpu = 2.0;
    let faster = replicate(&s);
    let w2 = faster.iter().map(|r| secs(r.latency["end_to_end"].mean_ns())).sum::<f64>() / 8.0;
    assert!(w2 < 0.7 * w.iter().sum::<f64>() / 8.0 && w2 >= service, "{w2}");
}

fn customers() -> f64 {
    std::env::var("PS_CUSTOMERS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000.0)
}
