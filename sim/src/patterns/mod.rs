//! The patterns: one module each, written against the models in [`crate::model`] and
//! composed on a [`Topology`], and this registry, which lists them once.
//!
//! | pattern | module | what it shows |
//! | --- | --- | --- |
//! | `load-leveling` | [`load_leveling`] | an API answers at once while the queue absorbs a burst |
//! | `competing-consumers` | [`competing_consumers`] | N instances, batch receive, redelivery after a crash, poison to the DLQ |
//! | `retry-backoff` | [`retry_backoff`] | store the intent, poll for due jobs, exponential backoff |
//!
//! Each module exports a `PATTERN` ([`Pattern`]): its name, how it builds its components
//! and processes, and its invariant checkers. Adding a pattern is one module and one line in
//! [`REGISTRY`] (see CONTRIBUTING.md).

pub mod competing_consumers;
pub mod load_leveling;
pub mod retry_backoff;

use crate::check::Checker;
use crate::spec::{PatternKind, Scenario};
use crate::topology::Topology;
use std::rc::Rc;

/// A pattern's entry in the registry.
pub struct Pattern {
    /// Which pattern (its name in scenario files is `kind.name()`).
    pub kind: PatternKind,
    /// One line on what it shows.
    pub about: &'static str,
    /// Adds the pattern's components to the topology and spawns its processes.
    pub build: fn(&Rc<Topology>),
    /// The pattern's own invariant checkers for a scenario (the common ones of
    /// [`crate::check::common`] run too).
    pub checkers: fn(&Scenario) -> Vec<Box<dyn Checker>>,
}

/// Every pattern, in the order the README lists them.
pub static REGISTRY: [&Pattern; 3] =
    [&load_leveling::PATTERN, &competing_consumers::PATTERN, &retry_backoff::PATTERN];

/// The registry entry of `kind`.
///
/// # Panics
/// If `kind` has no entry: every [`PatternKind`] is registered (tested).
pub fn lookup(kind: PatternKind) -> &'static Pattern {
    REGISTRY.iter().find(|p| p.kind == kind).expect("every pattern kind is registered")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_once() {
        for kind in PatternKind::ALL {
            assert_eq!(REGISTRY.iter().filter(|p| p.kind == kind).count(), 1, "{}", kind.name());
        }
        assert_eq!(REGISTRY.len(), PatternKind::ALL.len());
    }
}
