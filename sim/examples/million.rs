//! One million messages through `competing-consumers` (Service Bus, 8 instances x 16
//! handlers, batch receive of 16, 0.1 % poison), printing wall time and rate.
//!
//! `cargo run --release -p sluice-sim --example million -- [MESSAGES]`
//! Measure memory with `/usr/bin/time -v` around it: peak RSS stays flat as MESSAGES grows.

use sim::dist::Dist;
use sim::spec::*;
use sim::time::*;

fn main() {
    let messages: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1e6);
    let rate = 2_000.0;
    let s = Scenario {
        name: "million".into(),
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
    };
    #[allow(clippy::disallowed_methods)] // wall time of the whole run, for the printout only
    let started = std::time::Instant::now();
    let r = sim::run(&s, sim::RunOptions::default(), &mut |_| {}).results;
    let wall = started.elapsed().as_secs_f64();
    assert!(r.ledger.balances());
    assert_eq!(r.ledger.completed + r.ledger.dead_lettered, r.ledger.produced);
    println!(
        "{} messages ({} deliveries) in {wall:.3} s wall: {:.2} M messages/s; p99 end-to-end {:.1} ms",
        r.ledger.produced,
        r.ledger.deliveries,
        r.ledger.produced as f64 / wall / 1e6,
        r.latency["end_to_end"].quantile_ns(0.99) as f64 / 1e6
    );
}
