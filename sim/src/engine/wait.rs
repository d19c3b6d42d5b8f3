//! Wait lists: processes waiting for a condition another process will signal.

use super::executor::{Sim, TaskId};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Processes waiting for something (a message to arrive, a handler slot to free up), woken
/// in FIFO order. Waiters must re-check their condition when woken: a wake-up is a hint,
/// not a guarantee (another process may have taken the message first).
#[derive(Default)]
pub struct WaitList {
    waiters: RefCell<VecDeque<TaskId>>,
}

impl WaitList {
    /// An empty wait list.
    pub fn new() -> WaitList {
        WaitList::default()
    }

    /// Completes after the next [`WaitList::notify_one`] or [`WaitList::notify_all`] that
    /// reaches this process.
    pub fn wait<'a>(&'a self, sim: &'a Sim) -> Wait<'a> {
        Wait { list: self, sim, registered: false }
    }

    /// Wakes the longest-waiting process, if any.
    #[inline]
    pub fn notify_one(&self, sim: &Sim) {
        if let Some(id) = self.waiters.borrow_mut().pop_front() {
            sim.wake(id);
        }
    }

    /// Wakes the longest-waiting process that is still alive, dropping the entries of
    /// aborted ones (for a resource that must not sit idle while a live process waits).
    pub fn notify_one_live(&self, sim: &Sim) {
        let mut waiters = self.waiters.borrow_mut();
        while let Some(id) = waiters.pop_front() {
            if sim.is_alive(id) {
                sim.wake(id);
                return;
            }
        }
    }

    /// Wakes every waiting process.
    pub fn notify_all(&self, sim: &Sim) {
        for id in self.waiters.borrow_mut().drain(..) {
            sim.wake(id);
        }
    }

    /// Withdraws the current process from the list (after a wait that ended some other
    /// way, such as a timer), so that a later notification goes to a process that waits.
    pub fn cancel(&self, sim: &Sim) {
        let me = sim.current();
        self.waiters.borrow_mut().retain(|w| *w != me);
    }

    /// Number of registered waiters (stale entries of aborted processes included).
    pub fn len(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Whether no process waits.
    pub fn is_empty(&self) -> bool {
        self.waiters.borrow().is_empty()
    }
}

/// Future returned by [`WaitList::wait`].
#[must_use = "a Wait does nothing unless awaited"]
pub struct Wait<'a> {
    list: &'a WaitList,
    sim: &'a Sim,
    registered: bool,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.registered {
            return Poll::Ready(());
        }
        self.registered = true;
        let id = self.sim.current();
        self.list.waiters.borrow_mut().push_back(id);
        Poll::Pending
    }
}
