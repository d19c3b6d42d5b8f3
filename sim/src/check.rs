//! Invariant checkers, written apart from the patterns they judge.
//!
//! A checker watches what a run does (typed [`crate::model::meters::TraceEvent`]s and the
//! final [`crate::results::RunResults`]) and reports every guarantee that was broken as a
//! [`Violation`]. Tests and `sluice check` share them: a run started with
//! [`crate::RunOptions::checks`] carries its violations in
//! [`crate::results::RunResults::violations`].

use crate::time::Nanos;

/// A broken guarantee, found by a checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker that found it (`ledger`, `max-deliveries`, ...).
    pub checker: &'static str,
    /// Simulated time at which it was found.
    pub at: Nanos,
    /// What was broken, with the values that broke it.
    pub message: String,
}
