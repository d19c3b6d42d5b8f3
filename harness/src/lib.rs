//! The `sluice` command's library: scenario loading and validation, runs.
pub mod scenario;
