//! # sluice-sim
//!
//! A deterministic, fault-injecting discrete-event simulator of background-processing
//! systems, and reference implementations of the patterns architects build them with.
//!
//! A run is a pure function of its [`spec::Scenario`] and seed: virtual time is an integer
//! ([`time::SimTime`]), events at the same time run in the order they were scheduled, and
//! every random draw comes from a per-component [`rng::Rng`] stream.

pub mod dist;
pub mod engine;
pub mod model;
pub mod patterns;
pub mod results;
pub mod rng;
pub mod spec;
pub mod time;
pub mod world;

pub use world::{Run, RunOptions, World, run};
