//! How a command ended, and the exit code that says so.

/// The result of a command, mapped to sluice's exit codes.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0: everything ran and every expectation held.
    Ok,
    /// Exit 1: an expectation or an invariant failed (already reported, with the replay
    /// command).
    Failed,
    /// Exit 2: bad input or usage; the message says what and where.
    BadInput(String),
}
