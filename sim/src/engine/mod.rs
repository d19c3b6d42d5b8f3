//! The engine: a virtual clock, a timer heap and a deterministic executor of async processes.
//!
//! Pattern code is written as ordinary `async fn`s that read top to bottom (receive, call,
//! complete or abandon). A process waits on simulated time with [`Sim::sleep`] or on a
//! [`WaitList`] (a queue becoming non-empty, a free handler slot). The executor runs one
//! process at a time on one thread; nothing is ever polled concurrently.
//!
//! ## Ordering guarantees
//!
//! * Timers fire in order of their time; timers due at the same time fire in the order they
//!   were set (a sequence number breaks the tie).
//! * Processes woken by a [`WaitList`] run in the order they were woken (FIFO), before the
//!   clock advances.
//! * A run is therefore a pure function of the processes spawned and the random streams they
//!   draw from.
//!
//! ## Why a custom executor
//!
//! Every leaf future here is sluice's own: they read the current process id from the
//! executor rather than going through `Waker`, so waking costs a push onto a `Vec` and a
//! timer costs one heap entry; there is no allocation per event. Futures from other async
//! runtimes cannot be awaited inside a simulation (they would never be woken).

mod executor;
mod wait;

pub use executor::{RunOutcome, Sim, Sleep, Suspend, TaskId};
pub use wait::WaitList;
