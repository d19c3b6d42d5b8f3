//! # sluice-benches
//!
//! Workloads shared by the criterion benchmarks (`benches/engine.rs`) and the `mmc` binary
//! that `scripts/compare-simpy.sh` runs against SimPy:
//!
//! * [`mmc`]: one M/M/c model written four ways — on sluice's engine with the same process
//!   model the patterns use, on simcore (the DSLab engine, callback style), as a bare
//!   hand-written event loop, and as a whole `sim::run` scenario with meters. The first three
//!   draw from the same random streams in the same order, so they agree on the mean wait to
//!   the nanosecond; all four agree with Erlang C.
//! * [`raw_engine`]: processes sleeping in a loop (engine events per second).
//! * [`competing_consumers`]: the `million` example's scenario, at any size.

pub mod mmc;

use sim::dist::Dist;
use sim::engine::Sim;
use sim::spec::*;
use sim::time::*;

/// Runs `processes` processes that each sleep `sleeps` times (process `i` sleeps
/// `1000 + i` ns each time, so the timer heap holds `processes` timers with distinct times)
/// and returns the timer events fired, `processes * sleeps`.
pub fn raw_engine(processes: u64, sleeps: u64) -> u64 {
    let sim = Sim::new();
    for i in 0..processes {
        let s = sim.clone();
        sim.spawn(async move {
            for _ in 0..sleeps {
                s.sleep(1000 + i).await;
            }
        });
    }
    sim.run_until(SimTime::NEVER);
    sim.events()
}

/// The `million` example's scenario with `messages` expected messages: competing consumers
/// on Service Bus, 8 instances x 16 handlers, batch receive of 16, exponential work (mean
/// 50 ms), 0.1 % poison messages (dead-lettered after 5 deliveries), 2 000 messages/s.
pub fn competing_consumers(messages: f64) -> Scenario {
    let rate = 2_000.0;
    Scenario {
        name: "competing-consumers-bench".into(),
        duration: (messages / rate * NS_PER_S as f64) as Nanos,
        interval: NS_PER_MIN,
        workload: WorkloadSpec {
            rate_per_s: rate,
            classes: vec![("normal".into(), 0.999), ("poison".into(), 0.001)],
            ..Default::default()
        },
        queue: QueueSpec {
            visibility_timeout: 30 * NS_PER_S,
            max_delivery_count: 5,
            ..QueueSpec::service_bus()
        },
        consumer: ConsumerSpec {
            instances: 8,
            concurrency: 16,
            batch_size: 16,
            work: Dist::Exp { mean: 50 * NS_PER_MS },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_engine_counts_every_timer() {
        assert_eq!(raw_engine(10, 100), 1000);
    }

    #[test]
    fn competing_consumers_balances() {
        let r = sim::run(&competing_consumers(20_000.0), sim::RunOptions::default(), &mut |_| {})
            .results;
        assert!(r.ledger.balances());
        assert_eq!(r.ledger.completed + r.ledger.dead_lettered, r.ledger.produced);
    }
}
