//! A pattern's own process (a producer, a relay, a web app, an orchestrator): what a crash or a
//! graceful restart fault hits besides consumer pools.
//!
//! A process's tasks run in their own engine group: a crash aborts every one of them at its
//! current await point, so whatever they held in memory is gone, as in a real process. State
//! that must survive (a store, a queue) lives outside, in components the pattern keeps. The
//! pattern settles in the ledger, in its `on_crash` callback, what the process held.

use crate::engine::{Sim, WaitList};
use crate::time::Nanos;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

/// What (re)starts a process, or settles what it held when it crashed.
type Hook = Box<dyn Fn(&Rc<Process>)>;

/// A named process that crash and restart faults can target.
pub struct Process {
    name: String,
    sim: Sim,
    group: Cell<u32>,
    up: Cell<bool>,
    stopping: Cell<bool>,
    stop: WaitList,
    starts: Cell<u32>,
    start: Hook,
    on_crash: Hook,
}

impl Process {
    /// A process named `name`, down until [`Process::boot`]: `start` spawns its tasks (with
    /// [`Process::spawn`]) at every start, `on_crash` runs right after a crash has aborted
    /// them.
    pub fn new(
        sim: Sim,
        name: &str,
        start: impl Fn(&Rc<Process>) + 'static,
        on_crash: impl Fn(&Rc<Process>) + 'static,
    ) -> Rc<Process> {
        Rc::new(Process {
            name: name.to_string(),
            sim,
            group: Cell::new(0),
            up: Cell::new(false),
            stopping: Cell::new(false),
            stop: WaitList::new(),
            starts: Cell::new(0),
            start: Box::new(start),
            on_crash: Box::new(on_crash),
        })
    }

    /// The name faults use as `target`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it runs (started and not crashed since).
    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// Whether a graceful restart has told it to stop: it should take no new work and
    /// finish what it holds.
    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// How many times it was started (1 after the first start).
    pub fn starts(&self) -> u32 {
        self.starts.get()
    }

    /// Spawns one of the process's tasks: it dies with the process.
    ///
    /// # Panics
    /// If the process is down (a task of a crashed process cannot start anything).
    pub fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        assert!(self.up.get(), "process {} spawned a task while down", self.name);
        self.sim.spawn_in(self.group.get(), task);
    }

    /// Returns once the process has been told to stop (at once if it already has).
    pub async fn until_stopping(&self) {
        while !self.stopping.get() {
            self.stop.wait(&self.sim).await;
        }
    }

    /// Starts it (a no-op while it runs): a fresh task group, then `start`.
    pub fn boot(self: &Rc<Self>) {
        if self.up.get() {
            return;
        }
        self.group.set(self.sim.new_group());
        self.up.set(true);
        self.stopping.set(false);
        self.starts.set(self.starts.get() + 1);
        (self.start)(self);
    }

    /// Kills it now (a no-op while it is down): every task aborted, then `on_crash`.
    pub fn crash(self: &Rc<Self>) {
        if !self.up.get() {
            return;
        }
        self.up.set(false);
        self.stopping.set(false);
        self.sim.abort_group(self.group.get());
        (self.on_crash)(self);
    }

    /// A graceful restart: told to stop now, cut off after `grace`, started again
    /// `restart_after` later.
    pub async fn restart(self: Rc<Self>, grace: Nanos, restart_after: Nanos) {
        if !self.up.get() {
            return;
        }
        self.stopping.set(true);
        self.stop.notify_all(&self.sim);
        self.sim.sleep(grace).await;
        self.crash();
        self.sim.sleep(restart_after).await;
        self.boot();
    }

    /// A crash, then a new start `restart_after` later (`None`: down for good).
    pub async fn crash_at(self: Rc<Self>, restart_after: Option<Nanos>) {
        self.crash();
        if let Some(after) = restart_after {
            self.sim.sleep(after).await;
            self.boot();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{NS_PER_S, SimTime};
    use std::cell::RefCell;

    /// A process whose one task ticks a shared counter every second, holding its own tick
    /// count in memory.
    fn ticking(sim: &Sim, log: &Rc<RefCell<Vec<String>>>) -> Rc<Process> {
        let (s, l) = (sim.clone(), log.clone());
        let l2 = log.clone();
        Process::new(
            sim.clone(),
            "relay",
            move |p| {
                let (s, l) = (s.clone(), l.clone());
                let p2 = p.clone();
                p.spawn(async move {
                    let mut mine = 0;
                    loop {
                        s.sleep(NS_PER_S).await;
                        mine += 1;
                        let stopping = if p2.is_stopping() { " stopping" } else { "" };
                        l.borrow_mut()
                            .push(format!("{} tick {mine}{stopping}", s.now_ns() / NS_PER_S));
                    }
                });
            },
            move |p| l2.borrow_mut().push(format!("crashed after start {}", p.starts())),
        )
    }

    #[test]
    fn a_crash_ends_every_task_and_a_restart_begins_afresh() {
        let sim = Sim::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let p = ticking(&sim, &log);
        p.boot();
        let p2 = p.clone();
        let s = sim.clone();
        sim.spawn(async move {
            s.sleep(2 * NS_PER_S + NS_PER_S / 2).await;
            p2.crash_at(Some(NS_PER_S)).await;
        });
        sim.run_until(SimTime(6 * NS_PER_S));
        assert_eq!(
            *log.borrow(),
            ["1 tick 1", "2 tick 2", "crashed after start 1", "4 tick 1", "5 tick 2"]
        );
        assert!(p.is_up());
        assert_eq!(p.starts(), 2);
    }

    #[test]
    fn a_graceful_restart_warns_then_cuts_off_after_the_grace() {
        let sim = Sim::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        let p = ticking(&sim, &log);
        p.boot();
        let p2 = p.clone();
        let s = sim.clone();
        sim.spawn(async move {
            s.sleep(NS_PER_S + NS_PER_S / 2).await;
            p2.restart(2 * NS_PER_S, 0).await;
        });
        sim.run_until(SimTime(5 * NS_PER_S));
        assert_eq!(
            *log.borrow(),
            [
                "1 tick 1",
                "2 tick 2 stopping",
                "3 tick 3 stopping",
                "crashed after start 1",
                "4 tick 1"
            ]
        );
    }
}
