//! The executor: processes, the timer heap and the run loop.

use crate::time::{Nanos, SimTime};
use std::cell::{Cell, RefCell};
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

type Process = Pin<Box<dyn Future<Output = ()>>>;

/// Identifies one spawned process. Stale ids (of finished or aborted processes) are
/// recognised by their generation and ignored, so a late wake-up never reaches a stranger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    slot: u32,
    generation: u32,
}

impl TaskId {
    const NONE: TaskId = TaskId { slot: u32::MAX, generation: 0 };
}

/// A timer: wake `task` at `time`. Ordered so that `BinaryHeap` pops the earliest, and
/// among equal times the one set first.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Timer {
    time: Nanos,
    seq: u64,
    task: TaskId,
}

impl Ord for Timer {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

impl PartialOrd for Timer {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Slot {
    generation: u32,
    group: u32,
    process: Option<Process>,
    /// True while the process is being polled (its future is out of the slot).
    running: bool,
}

struct Inner {
    now: Cell<Nanos>,
    seq: Cell<u64>,
    timers: RefCell<BinaryHeap<Timer>>,
    ready: RefCell<Vec<TaskId>>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    current: Cell<TaskId>,
    stopped: Cell<bool>,
    events: Cell<u64>,
    /// The heap's root is the timer being handled now: it is still in the heap, and the
    /// first timer set while it is handled replaces it (one sift instead of a pop and a
    /// push); otherwise the run loop pops it afterwards.
    fired: Cell<bool>,
    /// The last process group handed out by [`Sim::new_group`].
    groups: Cell<u32>,
}

/// A handle on one simulation: its clock, timers and processes. Cheap to clone.
#[derive(Clone)]
pub struct Sim {
    inner: Rc<Inner>,
}

/// Why [`Sim::run_until`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// A process called [`Sim::stop`].
    Stopped,
    /// The next event lies beyond the horizon; the clock stands at the horizon.
    Horizon,
    /// No process can ever run again.
    Idle,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// A new simulation at [`SimTime::EPOCH`] with no processes.
    pub fn new() -> Sim {
        Sim {
            inner: Rc::new(Inner {
                now: Cell::new(0),
                seq: Cell::new(0),
                timers: RefCell::new(BinaryHeap::with_capacity(1024)),
                ready: RefCell::new(Vec::with_capacity(256)),
                slots: RefCell::new(Vec::new()),
                free: RefCell::new(Vec::new()),
                current: Cell::new(TaskId::NONE),
                stopped: Cell::new(false),
                events: Cell::new(0),
                fired: Cell::new(false),
                groups: Cell::new(0),
            }),
        }
    }

    /// The current simulated time.
    #[inline]
    pub fn now(&self) -> SimTime {
        SimTime(self.inner.now.get())
    }

    /// Nanoseconds since the start.
    #[inline]
    pub fn now_ns(&self) -> Nanos {
        self.inner.now.get()
    }

    /// Processes polled and timers fired so far (a measure of work done).
    pub fn events(&self) -> u64 {
        self.inner.events.get()
    }

    /// The process being polled right now.
    ///
    /// # Panics
    /// Outside a process (no process is running).
    #[inline]
    pub fn current(&self) -> TaskId {
        let id = self.inner.current.get();
        assert!(id != TaskId::NONE, "sluice futures can only be awaited inside a sim process");
        id
    }

    /// Starts a process in group 0. It first runs after the processes already ready.
    pub fn spawn(&self, process: impl Future<Output = ()> + 'static) -> TaskId {
        self.spawn_in(0, process)
    }

    /// Starts a process in `group`; [`Sim::abort_group`] ends all processes of a group
    /// (e.g. everything running on one consumer instance when it crashes).
    pub fn spawn_in(&self, group: u32, process: impl Future<Output = ()> + 'static) -> TaskId {
        let process: Process = Box::pin(process);
        let mut slots = self.inner.slots.borrow_mut();
        let id = match self.inner.free.borrow_mut().pop() {
            Some(slot) => {
                let s = &mut slots[slot as usize];
                s.group = group;
                s.process = Some(process);
                TaskId { slot, generation: s.generation }
            }
            None => {
                let slot = u32::try_from(slots.len()).expect("fewer than 4 billion processes");
                slots.push(Slot { generation: 0, group, process: Some(process), running: false });
                TaskId { slot, generation: 0 }
            }
        };
        self.inner.ready.borrow_mut().push(id);
        id
    }

    /// Ends a process now: its future is dropped at its current await point. Its pending
    /// timers and wait-list entries become stale and are ignored. Aborting a finished
    /// process does nothing.
    pub fn abort(&self, id: TaskId) {
        let dropped = {
            let mut slots = self.inner.slots.borrow_mut();
            let s = &mut slots[id.slot as usize];
            if s.generation != id.generation {
                return;
            }
            s.generation = s.generation.wrapping_add(1);
            if s.running {
                // It is being polled (it aborts itself): `poll` drops it when it yields.
                return;
            }
            self.inner.free.borrow_mut().push(id.slot);
            s.process.take()
        };
        drop(dropped); // outside the borrow: dropping a future may touch the simulation
    }

    /// A process group no one else has: 1, 2, 3, ... (group 0 is the processes started
    /// with [`Sim::spawn`]).
    pub fn new_group(&self) -> u32 {
        let g = self.inner.groups.get() + 1;
        self.inner.groups.set(g);
        g
    }

    /// Aborts every live process of `group` except the one running now.
    pub fn abort_group(&self, group: u32) {
        let me = self.inner.current.get();
        let victims: Vec<TaskId> = self
            .inner
            .slots
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.group == group && (s.process.is_some() || s.running))
            .map(|(i, s)| TaskId { slot: i as u32, generation: s.generation })
            .filter(|id| *id != me)
            .collect();
        for id in victims {
            self.abort(id);
        }
    }

    /// Whether process `id` is still running (not finished, not aborted).
    pub fn is_alive(&self, id: TaskId) -> bool {
        self.inner
            .slots
            .borrow()
            .get(id.slot as usize)
            .is_some_and(|s| s.generation == id.generation)
    }

    /// Makes `id` runnable (if it still exists). Used by [`WaitList`](super::WaitList).
    #[inline]
    pub fn wake(&self, id: TaskId) {
        self.inner.ready.borrow_mut().push(id);
    }

    /// Sets a timer that wakes the current process at `at` (or now, if `at` has passed).
    #[inline]
    pub fn wake_at(&self, at: SimTime) {
        let seq = self.inner.seq.get();
        self.inner.seq.set(seq + 1);
        let time = at.0.max(self.inner.now.get());
        let timer = Timer { time, seq, task: self.current() };
        let mut timers = self.inner.timers.borrow_mut();
        if self.inner.fired.replace(false) {
            // The root is the timer that fired: overwrite it, sifting down once. (A process
            // woken by a timer usually sets its next one at once: a sleep in a loop.)
            *timers.peek_mut().expect("the fired timer is the root") = timer;
        } else {
            timers.push(timer);
        }
    }

    /// A future that completes `delay` from now.
    #[inline]
    pub fn sleep(&self, delay: Nanos) -> Sleep<'_> {
        Sleep { sim: self, until: self.now() + delay, armed: false }
    }

    /// A future that completes at `at` (at once if `at` has passed).
    #[inline]
    pub fn sleep_until(&self, at: SimTime) -> Sleep<'_> {
        Sleep { sim: self, until: at, armed: false }
    }

    /// A future that gives up control once: it returns `Pending` the first time it is
    /// polled and `Ready` the next time, whatever woke the process. Use it with
    /// [`Sim::wake_at`] or an explicit [`Sim::wake`] for processes that must react to
    /// whichever comes first.
    #[inline]
    pub fn suspend(&self) -> Suspend {
        Suspend { yielded: false }
    }

    /// Asks the run loop to return [`RunOutcome::Stopped`] once the current process yields.
    pub fn stop(&self) {
        self.inner.stopped.set(true);
    }

    /// Whether [`Sim::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.get()
    }

    /// Runs processes and fires timers in order until `horizon`, a stop, or idleness.
    pub fn run_until(&self, horizon: SimTime) -> RunOutcome {
        self.run_until_with(horizon, &mut |_| {})
    }

    /// As [`Sim::run_until`], calling `progress(now)` every 2^16 events (for progress bars;
    /// it must not influence the simulation).
    pub fn run_until_with(
        &self,
        horizon: SimTime,
        progress: &mut dyn FnMut(SimTime),
    ) -> RunOutcome {
        let inner = &*self.inner;
        let mut batch: Vec<TaskId> = Vec::with_capacity(256);
        loop {
            // Run everything that is ready, in the order it became ready.
            while !inner.ready.borrow().is_empty() {
                std::mem::swap(&mut batch, &mut *inner.ready.borrow_mut());
                if batch.is_empty() {
                    break;
                }
                for id in batch.drain(..) {
                    self.poll(id);
                    if inner.stopped.get() {
                        return RunOutcome::Stopped;
                    }
                }
            }
            // Advance the clock to the next timer (left in the heap while it is handled).
            let next = inner.timers.borrow().peek().copied();
            let Some(timer) = next else {
                return RunOutcome::Idle;
            };
            if timer.time > horizon.0 {
                inner.now.set(horizon.0.max(inner.now.get()));
                return RunOutcome::Horizon;
            }
            inner.now.set(timer.time);
            let events = inner.events.get() + 1;
            inner.events.set(events);
            if events & 0xffff == 0 {
                progress(SimTime(timer.time));
            }
            inner.fired.set(true);
            self.poll(timer.task);
            if inner.fired.replace(false) {
                inner.timers.borrow_mut().pop();
            }
            if inner.stopped.get() {
                return RunOutcome::Stopped;
            }
        }
    }

    /// Polls one process once, if it is still alive.
    ///
    /// The process is polled where it lies, in its slot's box: the box's heap allocation
    /// does not move when `slots` grows (a spawn during the poll), and a process that aborts
    /// itself is only dropped here, after its poll returns (see [`Sim::abort`]).
    #[inline]
    fn poll(&self, id: TaskId) {
        let inner = &*self.inner;
        let process: *mut (dyn Future<Output = ()> + 'static) = {
            let mut slots = inner.slots.borrow_mut();
            let s = &mut slots[id.slot as usize];
            if s.generation != id.generation || s.running {
                return; // stale wake-up, or already running (woken by itself)
            }
            let Some(p) = s.process.as_mut() else {
                return;
            };
            s.running = true;
            // SAFETY: the future stays pinned in its box; we only take a pointer to it.
            unsafe { Pin::get_unchecked_mut(p.as_mut()) }
        };
        inner.current.set(id);
        let mut cx = Context::from_waker(Waker::noop());
        // SAFETY: the box is neither moved nor dropped while `running` is set (`abort` and
        // `shutdown` leave a running process alone), and the slot borrow is released.
        let done = unsafe { Pin::new_unchecked(&mut *process) }.poll(&mut cx).is_ready();
        inner.current.set(TaskId::NONE);
        let mut slots = inner.slots.borrow_mut();
        let s = &mut slots[id.slot as usize];
        s.running = false;
        let aborted = s.generation != id.generation;
        if aborted || done {
            if !aborted {
                s.generation = s.generation.wrapping_add(1);
            }
            let p = s.process.take();
            inner.free.borrow_mut().push(id.slot);
            drop(slots);
            drop(p); // outside the borrow: dropping a future may touch the simulation
        }
    }

    /// Drops every process (ending the run for good). Processes usually hold handles on the
    /// world they run in, so this also breaks the reference cycles that would leak it.
    pub fn shutdown(&self) {
        assert!(
            self.inner.current.get() == TaskId::NONE,
            "shutdown must be called outside the simulation's processes"
        );
        let processes: Vec<Process> = {
            let mut slots = self.inner.slots.borrow_mut();
            slots.iter_mut().filter_map(|s| s.process.take()).collect()
        };
        drop(processes);
        self.inner.slots.borrow_mut().clear();
        self.inner.free.borrow_mut().clear();
        self.inner.timers.borrow_mut().clear();
        self.inner.ready.borrow_mut().clear();
    }

    /// Live processes (for tests and leak checks).
    pub fn live_processes(&self) -> usize {
        self.inner.slots.borrow().iter().filter(|s| s.process.is_some() || s.running).count()
    }
}

/// A future completing at a point in simulated time. See [`Sim::sleep`].
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep<'a> {
    sim: &'a Sim,
    until: SimTime,
    armed: bool,
}

impl Future for Sleep<'_> {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.armed && self.sim.now() >= self.until {
            return Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            self.sim.wake_at(self.until);
        }
        Poll::Pending
    }
}

/// A future that is pending exactly once. See [`Sim::suspend`].
#[must_use = "a Suspend does nothing unless awaited"]
pub struct Suspend {
    yielded: bool,
}

impl Future for Suspend {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    type Log = Rc<RefCell<Vec<(u64, &'static str)>>>;

    fn log_sim() -> (Sim, Log) {
        (Sim::new(), Rc::new(RefCell::new(Vec::new())))
    }

    #[test]
    fn timers_fire_in_time_order_and_ties_in_set_order() {
        let (sim, log) = log_sim();
        for (name, delay) in [("c", 30), ("a", 10), ("b1", 20), ("b2", 20), ("b3", 20)] {
            let (s, l) = (sim.clone(), log.clone());
            sim.spawn(async move {
                s.sleep(delay).await;
                l.borrow_mut().push((s.now_ns(), name));
            });
        }
        assert_eq!(sim.run_until(SimTime::NEVER), RunOutcome::Idle);
        assert_eq!(*log.borrow(), [(10, "a"), (20, "b1"), (20, "b2"), (20, "b3"), (30, "c")]);
    }

    #[test]
    fn horizon_stops_the_clock_there() {
        let sim = Sim::new();
        let s = sim.clone();
        sim.spawn(async move {
            loop {
                s.sleep(7).await;
            }
        });
        assert_eq!(sim.run_until(SimTime(100)), RunOutcome::Horizon);
        assert_eq!(sim.now_ns(), 100);
        // and it can go on from there
        assert_eq!(sim.run_until(SimTime(200)), RunOutcome::Horizon);
        assert_eq!(sim.now_ns(), 200);
    }

    #[test]
    fn aborted_processes_never_run_again_and_slots_are_reused() {
        let (sim, log) = log_sim();
        let (s, l) = (sim.clone(), log.clone());
        let victim = sim.spawn_in(7, async move {
            s.sleep(10).await;
            l.borrow_mut().push((s.now_ns(), "victim"));
        });
        let s = sim.clone();
        sim.spawn(async move {
            s.sleep(5).await;
            s.abort_group(7);
        });
        sim.run_until(SimTime::NEVER);
        assert!(log.borrow().is_empty());
        assert_eq!(sim.live_processes(), 0);
        // the victim's slot is reused with a new generation: the stale id does nothing
        let (s, l) = (sim.clone(), log.clone());
        let fresh = sim.spawn(async move {
            s.sleep(1).await;
            l.borrow_mut().push((s.now_ns(), "fresh"));
        });
        assert_ne!(fresh, victim);
        sim.abort(victim);
        sim.wake(victim);
        sim.run_until(SimTime::NEVER);
        assert_eq!(*log.borrow(), [(11, "fresh")]);
    }

    #[test]
    fn stop_returns_promptly() {
        let sim = Sim::new();
        let s = sim.clone();
        sim.spawn(async move {
            s.sleep(3).await;
            s.stop();
            s.sleep(1).await;
            unreachable!("a stopped run polls nothing more");
        });
        assert_eq!(sim.run_until(SimTime::NEVER), RunOutcome::Stopped);
        assert_eq!(sim.now_ns(), 3);
        sim.shutdown();
    }

    #[test]
    fn wait_lists_wake_in_fifo_order() {
        let (sim, log) = log_sim();
        let list = Rc::new(crate::engine::WaitList::new());
        for name in ["first", "second"] {
            let (s, l, w) = (sim.clone(), log.clone(), list.clone());
            sim.spawn(async move {
                w.wait(&s).await;
                l.borrow_mut().push((s.now_ns(), name));
            });
        }
        let (s, w) = (sim.clone(), list.clone());
        sim.spawn(async move {
            s.sleep(4).await;
            w.notify_one(&s);
            s.sleep(4).await;
            w.notify_all(&s);
        });
        sim.run_until(SimTime::NEVER);
        assert_eq!(*log.borrow(), [(4, "first"), (8, "second")]);
    }
}
