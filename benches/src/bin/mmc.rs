//! M/M/10 at ρ = 0.9 on sluice, for `scripts/compare-simpy.sh` (release build).
//!
//! ```text
//! mmc engine N [REPS]  sluice's engine, simcore and a bare loop, N completions each (same
//!                      streams: asserts they agree exactly, and with Erlang C); best of REPS
//! mmc run N [REPS]     the same model as a whole `sim::run` (meters, time series), ~N messages
//! mmc cc N             a competing-consumers run of N messages (memory check under time -v)
//! mmc one TOOL N       one run of bare-loop, simcore or sluice-engine (for profilers)
//! ```
//!
//! Prints one `key=value` line per measurement, e.g.
//! `tool=sluice-engine customers=1000000 seconds=0.081 per_s=12345678 mean_wait_ms=66.1`.

use sluice_benches::mmc::{self, Outcome, Params};
use std::time::Instant;

fn arg(i: usize) -> Option<f64> {
    std::env::args().nth(i).map(|a| {
        a.replace('_', "").parse().unwrap_or_else(|_| usage(&format!("not a number: {a}")))
    })
}

fn usage(why: &str) -> ! {
    eprintln!("{why}\nusage: mmc engine N [REPS] | mmc run N [REPS] | mmc cc N | mmc one TOOL N");
    std::process::exit(2)
}

/// Runs `f` `reps` times and returns its last value and the shortest wall time.
fn best<T>(reps: u32, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut best = f64::INFINITY;
    let mut value = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let v = std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
        value = Some(v);
    }
    (value.expect("at least one rep"), best)
}

/// An M/M/c implementation of `sluice_benches::mmc`.
type Tool = fn(&Params) -> Outcome;

fn report(tool: &str, customers: u64, seconds: f64, mean_wait_ns: f64) {
    println!(
        "tool={tool} customers={customers} seconds={seconds:.4} per_s={:.0} mean_wait_ms={:.3}",
        customers as f64 / seconds,
        mean_wait_ns / 1e6
    );
}

fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let n = if cmd == "one" { 0 } else { arg(2).unwrap_or(1e6) as u64 };
    let reps = arg(3).unwrap_or(3.0) as u32;
    let p = Params::standard(n);
    match cmd.as_str() {
        "engine" => {
            println!(
                "theory=erlang-c servers={} rho={:.4} p_wait={:.4} mean_wait_ms={:.3} tolerance_pct={:.1}",
                p.servers,
                p.rho(),
                p.p_wait(),
                p.theory_wait_ns() / 1e6,
                p.wait_tolerance() * 100.0
            );
            // interleave the tools so that machine noise hits them alike
            let mut results: Vec<(&str, Outcome, f64)> = Vec::new();
            let tools: [(&str, Tool); 3] = [
                ("bare-loop", mmc::bare),
                ("simcore", mmc::simcore),
                ("sluice-engine", mmc::sluice_engine),
            ];
            for _ in 0..reps.max(1) {
                for (name, f) in tools {
                    let (out, secs) = best(1, || f(&p));
                    match results.iter_mut().find(|r| r.0 == name) {
                        Some(r) => r.2 = r.2.min(secs),
                        None => results.push((name, out, secs)),
                    }
                }
            }
            let reference = results[0].1;
            for (name, out, secs) in &results {
                assert_eq!(*out, reference, "{name} disagrees with the bare loop");
                report(name, out.completed, *secs, out.mean_wait_ns());
            }
            mmc::assert_erlang_c(&p, "M/M/10 engine", reference.mean_wait_ns());
        }
        "one" => {
            // mmc one TOOL N: a single run of one engine implementation (for profilers)
            let tool = std::env::args().nth(2).unwrap_or_default();
            let p = Params::standard(arg(3).unwrap_or(1e6) as u64);
            let f: Tool = match tool.as_str() {
                "bare-loop" => mmc::bare,
                "simcore" => mmc::simcore,
                "sluice-engine" => mmc::sluice_engine,
                _ => usage("mmc one bare-loop|simcore|sluice-engine N"),
            };
            let (out, secs) = best(1, || f(&p));
            report(&tool, out.completed, secs, out.mean_wait_ns());
        }
        "run" => {
            let (r, secs) = best(reps, || mmc::whole_run(&p));
            report("sluice-run", r.completed, secs, r.mean_wait_ns);
            mmc::assert_erlang_c(&p, "M/M/10 whole run", r.mean_wait_ns);
        }
        "cc" => {
            let s = sluice_benches::competing_consumers(n as f64);
            let t = Instant::now();
            let r = sim::run(&s, sim::RunOptions::default(), &mut |_| {}).results;
            let secs = t.elapsed().as_secs_f64();
            assert!(r.ledger.balances());
            assert_eq!(r.ledger.completed + r.ledger.dead_lettered, r.ledger.produced);
            println!(
                "tool=competing-consumers messages={} deliveries={} seconds={secs:.3} per_s={:.0}",
                r.ledger.produced,
                r.ledger.deliveries,
                r.ledger.produced as f64 / secs
            );
        }
        _ => usage("unknown command"),
    }
}
