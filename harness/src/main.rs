//! `sluice`: run, validate and compare background-processing scenarios.
//!
//! Exit codes: 0 all good; 1 an expectation or invariant failed; 2 bad input or usage.

fn main() -> std::process::ExitCode {
    harness::cli::main()
}
