//! The patterns: one module each, written against the models in [`crate::model`] and
//! composed on a [`Topology`], and this registry, which lists them once.
//!
//! | pattern | module | what it shows |
//! | --- | --- | --- |
//! | `load-leveling` | [`load_leveling`] | an API answers at once while the queue absorbs a burst |
//! | `competing-consumers` | [`competing_consumers`] | N instances, batch receive, redelivery after a crash, poison to the DLQ |
//! | `retry-backoff` | [`retry_backoff`] | store the intent, poll for due jobs, exponential backoff |
//! | `circuit-breaker` | [`circuit_breaker`] | Polly v7/v8 and resilience4j breakers in front of a failing service |
//! | `priority` | [`priority`] | separate queues per class vs one queue vs strict priority: per-class latency, starvation |
//! | `event-stream` | [`event_stream`] | Event Hubs partitions, a checkpoint after each batch, retry then park, a stream breaker |
//! | `fan-out` | [`fan_out`] | one event to every matching subscription (Event Grid): retry schedule, TTL, dead-letter, isolation |
//! | `outbox` | [`outbox`] | state and event in one transaction, a relay, an idempotent consumer; the dual write loses events |
//! | `fire-and-forget` | [`fire_and_forget`] | work in an in-memory channel of the web process: lost on a crash or restart |
//! | `gpu-worker` | [`gpu_worker`] | queue-started GPU job replicas, dynamic batching, GPU memory, layered cold start |
//! | `saga` | [`saga`] | orchestrated steps with compensations: durable history replayed after a crash vs state in memory |
//! | `scheduled` | [`scheduled`] | cron ticks on several instances under a lease lock: one run per tick, missed ticks, catch-up |
//!
//! Each module exports a `PATTERN` ([`Pattern`]): its name, how it builds its components
//! and processes, and its invariant checkers. Adding a pattern is one module and one line in
//! [`REGISTRY`] (see CONTRIBUTING.md).

pub mod circuit_breaker;
pub mod competing_consumers;
pub mod event_stream;
pub mod fan_out;
pub mod fire_and_forget;
pub mod gpu_worker;
pub mod load_leveling;
pub mod outbox;
pub mod priority;
pub mod retry_backoff;
pub mod saga;
pub mod scheduled;

use crate::check::Checker;
use crate::spec::table::{PatternSettings, TableError, TableReader};
use crate::spec::{PatternKind, Scenario};
use crate::topology::Topology;
use std::rc::Rc;
use std::sync::Arc;

/// A pattern's entry in the registry.
pub struct Pattern {
    /// Which pattern (its name in scenario files is `kind.name()`).
    pub kind: PatternKind,
    /// One line on what it shows.
    pub about: &'static str,
    /// Whether the pattern's consumers run on the scenario's hosting plan (`[consumer]
    /// hosting`, `[scaling]`); a pattern that is not hosted runs on a fixed worker.
    pub hosted: bool,
    /// The pattern's section in `summary.json` (`breaker`, `saga`, ...): its counters named
    /// `<section>.<field>` ([`Topology::count`]) appear there. `None`: its counters go to
    /// `extra`.
    pub section: Option<&'static str>,
    /// The pattern's own processes that crash and restart faults may target besides the
    /// consumer pool (`producer`, `relay`, `web`, `orchestrator`): each is added with
    /// [`Topology::add_process`] when the pattern builds.
    pub processes: &'static [&'static str],
    /// The pattern's own settings table, if it has one.
    pub table: Option<SettingsTable>,
    /// Adds the pattern's components to the topology and spawns its processes.
    pub build: fn(&Rc<Topology>),
    /// The pattern's own invariant checkers for a scenario (the common ones of
    /// [`crate::check::common`] run too).
    pub checkers: fn(&Scenario) -> Vec<Box<dyn Checker>>,
}

/// Reads a pattern's table into its settings.
pub type ReadSettings = fn(&mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError>;

/// A pattern's own table in the scenario file.
pub struct SettingsTable {
    /// The table's name (`retry_backoff` for `[retry_backoff]`).
    pub name: &'static str,
    /// Reads the table (every key the pattern has; the reader reports the others as
    /// unknown).
    pub read: ReadSettings,
}

/// Every pattern, in the order the README lists them.
pub static REGISTRY: [&Pattern; 12] = [
    &load_leveling::PATTERN,
    &competing_consumers::PATTERN,
    &retry_backoff::PATTERN,
    &circuit_breaker::PATTERN,
    &priority::PATTERN,
    &event_stream::PATTERN,
    &fan_out::PATTERN,
    &outbox::PATTERN,
    &fire_and_forget::PATTERN,
    &gpu_worker::PATTERN,
    &saga::PATTERN,
    &scheduled::PATTERN,
];

/// The registry entry of `kind`.
///
/// # Panics
/// If `kind` has no entry: kinds come from the registry (the harness looks names up with
/// [`find`]).
pub fn lookup(kind: PatternKind) -> &'static Pattern {
    find(kind.name()).unwrap_or_else(|| panic!("pattern `{}` is not registered", kind.name()))
}

/// The registry entry of the pattern named `name` in scenario files.
pub fn find(name: &str) -> Option<&'static Pattern> {
    REGISTRY.iter().find(|p| p.kind.name() == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tables_are_unique() {
        for p in REGISTRY {
            assert_eq!(
                REGISTRY.iter().filter(|q| q.kind == p.kind).count(),
                1,
                "{}",
                p.kind.name()
            );
            assert!(std::ptr::eq(lookup(p.kind), p));
            if let Some(t) = &p.table {
                let same =
                    REGISTRY.iter().filter(|q| q.table.as_ref().is_some_and(|u| u.name == t.name));
                assert_eq!(same.count(), 1, "table [{}]", t.name);
            }
        }
        assert!(find("no-such-pattern").is_none());
    }
}
