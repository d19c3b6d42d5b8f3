//! sluice's speed, in four groups (`cargo bench -p sluice-benches`):
//!
//! * `engine`: raw engine events/s, processes sleeping in a loop;
//! * `mmc`: M/M/10 at ρ = 0.9, customers/s, on sluice's engine (async processes, a wait
//!   list, a FIFO: the patterns' process model), on simcore (DSLab, callbacks) and as a bare
//!   hand-written heap loop, all three on the same random streams (asserted to agree on the
//!   mean wait exactly, and with Erlang C), plus the same model as a whole `sim::run`;
//! * `meters`: recording a latency (`sim::results::Latency::record`, HDR + exact sum) vs a
//!   bare `hdrhistogram` record; `interval`: closing a time-series interval, now and as it
//!   was (the interval's own HDR histogram, reset each time);
//! * `run`: a whole `sim::run` of a competing-consumers scenario, messages/s.
//!
//! `cargo test -p sluice-benches` runs each benchmark once (criterion's test mode).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sim::dist::Dist;
use sim::ledger::{Exit, Holder};
use sim::results::Latency;
use sim::rng::Rng;
use sim::time::*;
use sluice_benches::mmc::{self, Params};
use std::hint::black_box;
use std::time::Duration;

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    for processes in [10u64, 1_000] {
        let sleeps = 100_000 / processes;
        g.throughput(Throughput::Elements(processes * sleeps));
        g.bench_function(format!("sleep-loop/{processes}-processes"), |b| {
            b.iter(|| sluice_benches::raw_engine(black_box(processes), sleeps))
        });
    }
    g.finish();
}

fn mmc(c: &mut Criterion) {
    let p = Params::standard(100_000);
    // Same streams, same model: the three must agree to the nanosecond, and with Erlang C.
    let reference = mmc::bare(&p);
    assert_eq!(mmc::sluice_engine(&p), reference, "sluice engine vs bare loop");
    assert_eq!(mmc::simcore(&p), reference, "simcore vs bare loop");
    mmc::assert_erlang_c(&p, "M/M/10 engine", reference.mean_wait_ns());
    let whole = mmc::whole_run(&p);
    mmc::assert_erlang_c(&p, "M/M/10 whole run", whole.mean_wait_ns);

    let mut g = c.benchmark_group("mmc");
    g.throughput(Throughput::Elements(p.customers));
    g.bench_function("sluice-engine", |b| b.iter(|| mmc::sluice_engine(black_box(&p))));
    g.bench_function("simcore", |b| b.iter(|| mmc::simcore(black_box(&p))));
    g.bench_function("bare-loop", |b| b.iter(|| mmc::bare(black_box(&p))));
    g.bench_function("sluice-whole-run", |b| b.iter(|| mmc::whole_run(black_box(&p))));
    g.finish();
}

fn meters(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut rng = Rng::stream(1, "bench.meters");
    let dist = Dist::Exp { mean: 100 * NS_PER_MS };
    let values: Vec<Nanos> = (0..N).map(|_| dist.sample(&mut rng)).collect();
    // a one-hour scenario's histograms: values up to twice its horizon (1 h + 24 h drain)
    let highest = 2 * (NS_PER_H + NS_PER_DAY);

    let mut g = c.benchmark_group("meters");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("latency-record", |b| {
        b.iter_batched_ref(
            || Latency::new(highest),
            |h| {
                for &v in &values {
                    h.record(v);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("hdrhistogram-record", |b| {
        b.iter_batched_ref(
            || Latency::new(highest).hist,
            |h| {
                for &v in &values {
                    h.record(v).expect("in range");
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // Closing a time-series interval with 10 completions in it: the meters' close (buffered
    // p50/p99, the row to the downsample) against what it replaced (the interval's own HDR
    // histogram: record, two quantiles, reset).
    let sim = sim::engine::Sim::new();
    let meters =
        sim::model::meters::Meters::new(sim.clone(), NS_PER_H + NS_PER_DAY, 0, false, &[], None);
    let mut g = c.benchmark_group("interval");
    g.throughput(Throughput::Elements(1));
    g.bench_function("close", |b| {
        b.iter(|| {
            for &v in &values[..10] {
                let mut msg = meters.produce(0);
                meters.admit(&mut msg, Holder::Queue);
                meters.latency(sim::model::meters::Lat::QueueWait, 0, v);
                meters.exit(&msg, Holder::Queue, Exit::Completed);
            }
            meters.close_interval(black_box(sim::model::meters::Levels::default()));
        })
    });
    g.bench_function("close-with-hdr-reset (before)", |b| {
        let mut h = Latency::new(highest);
        b.iter(|| {
            for &v in &values[..10] {
                h.record(v);
            }
            let q = (h.quantile_ns(0.5), h.quantile_ns(0.99));
            h.hist.reset();
            black_box(q)
        })
    });
    g.finish();
}

fn run(c: &mut Criterion) {
    let s = sluice_benches::competing_consumers(100_000.0);
    let once = sim::run(&s, sim::RunOptions::default(), &mut |_| {}).results;
    assert!(once.ledger.balances());
    let mut g = c.benchmark_group("run");
    g.throughput(Throughput::Elements(once.ledger.produced));
    g.bench_function("competing-consumers", |b| {
        b.iter(|| sim::run(black_box(&s), sim::RunOptions::default(), &mut |_| {}))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = engine, mmc, meters, run
}
criterion_main!(benches);
