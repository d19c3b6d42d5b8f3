//! # sluice-sim
//!
//! A deterministic, fault-injecting discrete-event simulator of background-processing
//! systems, and reference implementations of the patterns architects build them with.
//!
//! A run is a pure function of its [`spec::Scenario`] and seed: virtual time is an integer
//! ([`time::SimTime`]), events at the same time run in the order they were scheduled, and
//! every random draw comes from a per-component [`rng::Rng`] stream.
//!
//! ## A practical overview
//!
//! The `sluice` binary builds a [`spec::Scenario`] from a scenario file; a library user can
//! build one directly. An M/M/2 queue is a Service Bus queue with two single-handler
//! consumer instances, Poisson arrivals and exponential work:
//!
//! ```
//! use sim::dist::Dist;
//! use sim::spec::{ConsumerSpec, Scenario, WorkloadSpec};
//! use sim::time::{NS_PER_MIN, NS_PER_MS};
//!
//! let scenario = Scenario {
//!     seed: 42,
//!     duration: 30 * NS_PER_MIN,
//!     workload: WorkloadSpec { rate_per_s: 15.0, ..Default::default() },
//!     consumer: ConsumerSpec {
//!         instances: 2,
//!         concurrency: 1,
//!         batch_size: 1,
//!         work: Dist::Exp { mean: 100 * NS_PER_MS },
//!         ..Default::default()
//!     },
//!     ..Default::default()
//! };
//! let run = sim::run(&scenario, sim::RunOptions::default(), &mut |_| {});
//! let r = run.results;
//! assert!(r.ledger.balances()); // every message accounted for
//! assert_eq!(r.ledger.completed, r.ledger.produced); // nothing lost, the run drained
//! let wait = r.latency["queue_wait"].mean_ns() / 1e6;
//! assert!(wait > 100.0 && wait < 160.0, "Erlang C says 128.6 ms, got {wait}");
//! // Same scenario, same seed: the same run, to the nanosecond.
//! let again = sim::run(&scenario, sim::RunOptions::default(), &mut |_| {}).results;
//! assert_eq!(again.latency["end_to_end"].sum_ns, r.latency["end_to_end"].sum_ns);
//! ```
//!
//! Patterns are `async` processes on the engine's executor ([`engine`]); they are written
//! against the infrastructure models ([`model`]) and registered in [`patterns`].
//!
//! ## Memory
//!
//! A run's memory follows what is in flight, not its length: the time series goes row by
//! row to [`RunOptions::series`] (the harness writes `timeseries.csv` from it) and
//! [`results::RunResults::timeseries`] keeps a bounded, deterministic downsample
//! ([`model::series`]). A run whose backlog passes `scenario.limits.max_backlog` stops early
//! and says so in [`results::RunResults::limit_stop`] ([`limits`]).
//!
//! ## Panics and error handling
//!
//! A [`spec::Scenario`] is already validated (the harness rejects bad input with a
//! position and a hint), so running one does not fail. A broken invariant is a bug in sluice,
//! not in the scenario, and panics: the ledger that does not balance at the end of a run, a
//! latency beyond the histogram's range (set from the scenario's horizon). The harness
//! catches the panic and prints the seed and the command that replays the run.

#![warn(missing_docs, unreachable_pub)]

pub mod check;
pub mod dist;
pub mod engine;
pub mod ledger;
pub mod limits;
pub mod model;
pub mod patterns;
pub mod results;
pub mod rng;
pub mod runner;
pub mod spec;
pub mod time;
pub mod topology;

pub use runner::{Run, RunOptions, run};
