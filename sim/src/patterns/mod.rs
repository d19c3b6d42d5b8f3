//! The patterns: one module each, written against the models in [`crate::model`].
//!
//! | pattern | module | what it shows |
//! | --- | --- | --- |
//! | `load-leveling` | [`load_leveling`] | an API answers at once while the queue absorbs a burst |
//! | `competing-consumers` | [`competing_consumers`] | N instances, batch receive, redelivery after a crash, poison to the DLQ |
//! | `retry-backoff` | [`retry_backoff`] | store the intent, poll for due jobs, exponential backoff |

pub mod competing_consumers;
pub mod load_leveling;
pub mod retry_backoff;

use crate::spec::PatternKind;
use crate::world::World;
use std::rc::Rc;

/// Starts the processes of `pattern` in `world`.
pub fn start(pattern: PatternKind, world: &Rc<World>) {
    match pattern {
        PatternKind::LoadLeveling => load_leveling::start(world),
        PatternKind::CompetingConsumers => competing_consumers::start(world),
        PatternKind::RetryBackoff => retry_backoff::start(world),
    }
}
