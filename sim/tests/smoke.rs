use sim::dist::Dist;
use sim::spec::*;
use sim::time::*;

#[test]
fn mm1_smoke() {
    let mut s = Scenario::default();
    s.duration = 20_000 * NS_PER_S;
    s.workload.rate_per_s = 8.0;
    s.consumer = ConsumerSpec {
        instances: 1,
        concurrency: 1,
        batch_size: 1,
        work: Dist::Exp {
            mean: 100 * NS_PER_MS,
        },
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let r = sim::run(&s, Default::default(), &mut |_| {}).results;
    eprintln!("{:?} {:?}", r.ledger, t.elapsed());
    let e2e = &r.latency["end_to_end"];
    eprintln!(
        "mean {} ms (theory 500), p99 {}",
        e2e.mean_ns() / 1e6,
        e2e.quantile_ns(0.99) as f64 / 1e6
    );
    eprintln!(
        "wait mean {} ms (theory 400)",
        r.latency["queue_wait"].mean_ns() / 1e6
    );
    assert!(r.ledger.balances());
}
