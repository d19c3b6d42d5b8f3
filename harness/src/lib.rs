//! The `sluice` command's library: the CLI, scenario loading and validation, runs.
//!
//! Data flows scenario file -> [`scenario`] (parse, validate, resolve) -> `sim::run` ->
//! `reports` (summary, CSV, charts, HTML/Markdown). This crate is the glue.

#![warn(missing_docs, unreachable_pub)]

pub mod calibrate;
pub mod capacity;
pub mod check;
pub mod cli;
pub mod compare;
pub mod merge;
pub mod outcome;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod schema;
pub mod sweep;
pub mod validate;
