//! The consumer host: instances that run handlers, crash, restart, start cold, drain on
//! scale-in, and kill executions that outlive the plan's time limit.
//!
//! ```text
//!  add ──cold start──► Running ──drain (scale-in)──► Draining ──last handler ends──► Stopped
//!                         │                                                          ▲
//!                         └──────────────── crash (in-flight work dropped) ──────────┘
//! ```
//!
//! An execution that runs past the plan's limit is killed and its message abandoned, so the
//! broker delivers it again (and eventually dead-letters it). Deadlines are kept per
//! instance in a FIFO (every execution has the same limit) and one watchdog process per
//! instance sleeps until the oldest: no timer per message.

use crate::engine::{Sim, TaskId, WaitList};
use crate::model::cost::CostMeter;
use crate::model::meters::Level;
use crate::model::queue::{Delivery, Queue};
use crate::results::ScalingResults;
use crate::rng::Rng;
use crate::time::{Nanos, SimTime};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Allocated, paying its cold start.
    Starting,
    /// Receiving and handling messages.
    Running,
    /// Scale-in: no more receives; stops when its last handler ends.
    Draining,
    /// Gone (scaled in, crashed, or a job replica that finished).
    Stopped,
}

struct Deadline {
    at: Nanos,
    task: TaskId,
    started: Nanos,
    delivery: Option<Delivery>,
}

/// One consumer instance (one incarnation: a restart makes a new one).
pub struct Instance {
    /// The instance's index (stable across restarts).
    pub index: u32,
    /// The executor group of everything running on this incarnation.
    group: u32,
    state: Cell<State>,
    busy: Cell<u32>,
    freed: WaitList,
    /// The instance's random stream (handler work durations).
    pub rng: RefCell<Rng>,
    /// A Container Apps job replica: exits once the queue is empty and its handlers are done.
    pub exit_when_idle: bool,
    always_ready: bool,
    billed_until: Cell<Nanos>,
    busy_since: Cell<Nanos>,
    busy_unbilled: Cell<Nanos>,
    deadlines: RefCell<VecDeque<Deadline>>,
    watchdog: Cell<Option<TaskId>>,
    watchdog_armed: Cell<Nanos>,
    pump: Cell<Option<TaskId>>,
}

impl Instance {
    /// Handlers running now.
    pub fn busy(&self) -> u32 {
        self.busy.get()
    }

    /// The executor group of this incarnation (also the lock holder id it receives with).
    pub fn group(&self) -> u32 {
        self.group
    }

    /// Where the instance is in its life.
    pub fn state(&self) -> State {
        self.state.get()
    }

    /// Waits until `busy <= limit`.
    pub async fn wait_busy_at_most(&self, sim: &Sim, limit: u32) {
        while self.busy.get() > limit {
            self.freed.wait(sim).await;
        }
    }
}

/// What a host runs on each instance once it is up: the pattern's receive loop.
pub type InstanceMain = Rc<dyn Fn(Rc<Instance>)>;

/// The consumer instances of a run.
pub struct Host {
    sim: Sim,
    seed: u64,
    queue: Rc<Queue>,
    cost: Rc<CostMeter>,
    timeout: Option<Nanos>,
    instances: RefCell<Vec<Rc<Instance>>>,
    incarnations: Cell<u32>,
    next_index: Cell<u32>,
    main: RefCell<Option<InstanceMain>>,
    allocated: RefCell<Level>,
    stats: RefCell<ScalingResults>,
    cpu_work: Cell<Nanos>,
    prewarmed: u32,
    prewarmed_billed_until: Cell<Nanos>,
}

impl Host {
    /// A host with no instances yet; executions longer than `timeout` are killed.
    /// `prewarmed` instances are billed on top of the allocated ones (Premium's buffer).
    pub fn new(
        sim: Sim,
        seed: u64,
        queue: Rc<Queue>,
        cost: Rc<CostMeter>,
        timeout: Option<Nanos>,
        prewarmed: u32,
    ) -> Host {
        Host {
            prewarmed,
            prewarmed_billed_until: Cell::new(0),
            sim,
            seed,
            queue,
            cost,
            timeout,
            instances: RefCell::new(Vec::new()),
            incarnations: Cell::new(0),
            next_index: Cell::new(0),
            main: RefCell::new(None),
            allocated: RefCell::new(Level::default()),
            stats: RefCell::new(ScalingResults::default()),
            cpu_work: Cell::new(0),
        }
    }

    /// Starts `count` warm instances running `main` (the initial pool, or the always-ready
    /// instances of an elastic plan).
    pub fn start(&self, count: u32, always_ready: bool, main: InstanceMain) {
        *self.main.borrow_mut() = Some(main);
        for _ in 0..count {
            let index = self.next_index.get();
            self.next_index.set(index + 1);
            self.launch(index, None, always_ready, false);
        }
    }

    /// Adds an instance after `cold_start` (`None`: warm). Counts a scale-out.
    pub fn add(&self, cold_start: Option<Nanos>, exit_when_idle: bool) {
        let index = self.next_index.get();
        self.next_index.set(index + 1);
        self.stats.borrow_mut().scale_outs += 1;
        self.launch(index, cold_start, false, exit_when_idle);
    }

    fn launch(
        &self,
        index: u32,
        cold_start: Option<Nanos>,
        always_ready: bool,
        exit_when_idle: bool,
    ) {
        let n = self.incarnations.get();
        self.incarnations.set(n + 1);
        let now = self.sim.now_ns();
        let inst = Rc::new(Instance {
            index,
            group: n + 1, // group 0 is everything outside instances
            state: Cell::new(if cold_start.is_some() { State::Starting } else { State::Running }),
            busy: Cell::new(0),
            freed: WaitList::new(),
            rng: RefCell::new(Rng::stream(self.seed, &format!("consumer.{index}.{n}"))),
            exit_when_idle,
            always_ready,
            billed_until: Cell::new(now),
            busy_since: Cell::new(now),
            busy_unbilled: Cell::new(0),
            deadlines: RefCell::new(VecDeque::new()),
            watchdog: Cell::new(None),
            watchdog_armed: Cell::new(0),
            pump: Cell::new(None),
        });
        self.instances.borrow_mut().push(inst.clone());
        let peak = {
            let mut level = self.allocated.borrow_mut();
            level.add(now, 1);
            level.peak
        };
        self.stats.borrow_mut().instances_peak = peak as u32;
        let main = self.main.borrow().clone().expect("host started");
        match cold_start {
            None => main(inst),
            Some(delay) => {
                self.stats.borrow_mut().cold_starts += 1;
                let sim = self.sim.clone();
                self.sim.spawn_in(inst.group, async move {
                    sim.sleep(delay).await;
                    inst.state.set(State::Running);
                    main(inst);
                });
            }
        }
    }

    /// Spawns the receive loop of `inst` (remembered, so a drain can stop it).
    pub fn spawn_pump(&self, inst: &Instance, process: impl Future<Output = ()> + 'static) {
        inst.pump.set(Some(self.sim.spawn_in(inst.group, process)));
    }

    /// Runs a handler for `delivery` on `inst`, counting it busy until it ends; if the plan
    /// has an execution limit, the handler is killed at the limit and its message abandoned.
    pub fn run_handler(
        self: &Rc<Self>,
        inst: &Rc<Instance>,
        delivery: Option<Delivery>,
        handler: impl Future<Output = ()> + 'static,
    ) {
        let now = self.sim.now_ns();
        if inst.busy.get() == 0 {
            inst.busy_since.set(now);
        }
        inst.busy.set(inst.busy.get() + 1);
        let (me, host) = (Rc::clone(inst), Rc::clone(self));
        let task = self.sim.spawn_in(inst.group, async move {
            handler.await;
            host.handler_ended(&me, now);
        });
        if let Some(limit) = self.timeout {
            let deadline = Deadline { at: now + limit, task, started: now, delivery };
            inst.deadlines.borrow_mut().push_back(deadline);
            self.ensure_watchdog(inst);
        }
    }

    fn handler_ended(&self, inst: &Instance, started: Nanos) {
        let now = self.sim.now_ns();
        self.cost.execution(now - started);
        inst.busy.set(inst.busy.get() - 1);
        if inst.busy.get() == 0 {
            self.end_busy_period(inst, now);
            if inst.state.get() == State::Draining {
                self.stop(inst);
                return;
            }
        }
        inst.freed.notify_one(&self.sim);
    }

    /// Records CPU-bound handler work (for the web tier that shares a WebJob's CPU).
    pub fn cpu_work(&self, work: Nanos) {
        self.cpu_work.set(self.cpu_work.get() + work);
    }

    /// CPU-bound handler work recorded since the last call.
    pub fn take_cpu_work(&self) -> Nanos {
        self.cpu_work.replace(0)
    }

    fn ensure_watchdog(self: &Rc<Self>, inst: &Rc<Instance>) {
        match inst.watchdog.get() {
            Some(w) if inst.watchdog_armed.get() > self.sim.now_ns() => {
                let _ = w; // armed for an earlier deadline: it will see this one in time
            }
            Some(w) => self.sim.wake(w),
            None => {
                let (me, host) = (Rc::clone(inst), Rc::clone(self));
                let id = self.sim.spawn_in(inst.group, async move { host.watchdog(me).await });
                inst.watchdog.set(Some(id));
            }
        }
    }

    /// Kills executions past their deadline, oldest first, and sleeps until the next one.
    async fn watchdog(&self, inst: Rc<Instance>) {
        loop {
            let now = self.sim.now_ns();
            let next = loop {
                let front = inst.deadlines.borrow().front().map(|d| (d.at, d.task));
                let Some((at, task)) = front else { break None };
                if !self.sim.is_alive(task) {
                    inst.deadlines.borrow_mut().pop_front(); // ended in time
                    continue;
                }
                if at > now {
                    break Some(at);
                }
                let d = inst.deadlines.borrow_mut().pop_front().expect("front");
                self.kill(&inst, d);
            };
            match next {
                Some(at) if inst.watchdog_armed.get() != at => {
                    inst.watchdog_armed.set(at);
                    self.sim.wake_at(SimTime(at));
                }
                Some(_) => {}
                None => inst.watchdog_armed.set(0),
            }
            self.sim.suspend().await;
        }
    }

    fn kill(&self, inst: &Instance, d: Deadline) {
        self.sim.abort(d.task);
        self.stats.borrow_mut().timeouts += 1;
        if let Some(delivery) = d.delivery {
            let _ = self.queue.abandon(&delivery);
        }
        self.handler_ended(inst, d.started);
    }

    fn end_busy_period(&self, inst: &Instance, now: Nanos) {
        let period = now - inst.busy_since.get();
        inst.busy_unbilled.set(inst.busy_unbilled.get() + period);
        self.cost.flex_period(period, inst.always_ready);
    }

    /// Bills an instance's allocated time up to `now`.
    fn bill(&self, inst: &Instance, now: Nanos) {
        let time = now - inst.billed_until.replace(now);
        self.cost.instance_time(time, inst.busy_unbilled.replace(0), inst.always_ready);
    }

    /// Bills every live instance (and Premium's pre-warmed buffer) up to now, so the
    /// accrued cost can be read at any time.
    pub fn bill_all(&self) {
        let now = self.sim.now_ns();
        for inst in self.instances.borrow().iter() {
            self.bill(inst, now);
        }
        let since = self.prewarmed_billed_until.replace(now);
        if self.prewarmed > 0 {
            self.cost.instance_time(u64::from(self.prewarmed) * (now - since), 0, false);
        }
    }

    /// Scale-in: stops the newest running instances (no new receives), letting their
    /// in-flight executions finish. Never goes below `keep` running instances.
    pub fn drain(&self, count: u32) {
        let victims: Vec<Rc<Instance>> = self
            .instances
            .borrow()
            .iter()
            .rev()
            .filter(|i| matches!(i.state.get(), State::Running | State::Starting))
            .take(count as usize)
            .cloned()
            .collect();
        for inst in victims {
            self.stats.borrow_mut().scale_ins += 1;
            if inst.state.get() == State::Starting {
                self.sim.abort_group(inst.group);
                self.stop(&inst);
                continue;
            }
            inst.state.set(State::Draining);
            if let Some(pump) = inst.pump.take() {
                self.sim.abort(pump);
            }
            if inst.busy.get() == 0 {
                self.stop(&inst);
            }
        }
    }

    /// A job replica found the queue empty with nothing in flight: it exits.
    pub fn exit(&self, inst: &Instance) {
        self.stop(inst);
    }

    fn stop(&self, inst: &Instance) {
        if inst.state.get() == State::Stopped {
            return;
        }
        let now = self.sim.now_ns();
        if inst.busy.get() > 0 {
            self.end_busy_period(inst, now);
        }
        self.bill(inst, now);
        inst.state.set(State::Stopped);
        self.allocated.borrow_mut().add(now, -1);
        self.instances.borrow_mut().retain(|i| i.group != inst.group);
        self.sim.abort_group(inst.group); // the watchdog and anything left
    }

    /// Crashes up to `count` live instances (lowest index first): everything running on them
    /// stops at once, and the messages they held stay locked until their locks expire.
    /// Returns the indexes crashed.
    pub fn crash(&self, count: u32) -> Vec<u32> {
        let mut victims: Vec<Rc<Instance>> = self.instances.borrow().clone();
        victims.sort_by_key(|i| i.index);
        victims.truncate(count as usize);
        for inst in &victims {
            self.queue.holder_gone(inst.group);
            self.stop(inst);
        }
        victims.iter().map(|i| i.index).collect()
    }

    /// Starts a fresh incarnation of each instance in `indexes` (after a crash).
    pub fn restart(&self, indexes: &[u32]) {
        for &i in indexes {
            self.launch(i, None, false, false);
        }
    }

    /// Instances allocated now (starting, running or draining).
    pub fn allocated(&self) -> u32 {
        self.allocated.borrow().value as u32
    }

    /// Instances running now (receiving messages).
    pub fn running(&self) -> u32 {
        self.instances.borrow().iter().filter(|i| i.state.get() == State::Running).count() as u32
    }

    /// Ends the run: bills every live instance up to now, and forgets the instance main
    /// (which holds the world).
    pub fn shutdown(&self) -> ScalingResults {
        self.bill_all();
        let live: Vec<Rc<Instance>> = self.instances.borrow().clone();
        for inst in live {
            self.stop(&inst);
        }
        self.main.borrow_mut().take();
        let mut stats = *self.stats.borrow();
        stats.instances_mean = self.allocated.borrow().mean(self.sim.now_ns());
        stats
    }
}
