//! The consumer host: instances that run handler slots, crash, restart, start cold, drain on
//! scale-in, and kill executions that outlive the plan's time limit.
//!
//! ```text
//!  add ──cold start──► Running ──drain (scale-in)──► Draining ──last handler ends──► Stopped
//!                         │                                                          ▲
//!                         └──────────────── crash (in-flight work dropped) ──────────┘
//! ```
//!
//! An instance runs a fixed number of handler *slots*, each a long-lived process that takes a
//! message, handles it and takes the next (the pattern decides how slots get messages). The
//! instance keeps the slots' shared prefetch buffer and counts the executions in progress.
//!
//! An execution that runs past the plan's limit is killed and its message abandoned, so the
//! broker delivers it again (and eventually dead-letters it); the slot is replaced by a fresh
//! one. Deadlines are kept per instance in a FIFO (every execution has the same limit) and one
//! watchdog process per instance sleeps until the oldest: no timer per message.

use crate::dist::Dist;
use crate::engine::{Sim, TaskId, WaitList};
use crate::model::cost::CostMeter;
use crate::model::cpu::Cpu;
use crate::model::meters::{Level, Meters};
use crate::model::queue::{Delivery, Queue};
use crate::results::ScalingResults;
use crate::rng::Rng;
use crate::time::{Nanos, SimTime};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Allocated, paying its cold start.
    Starting,
    /// Receiving and handling messages.
    Running,
    /// Scale-in: no more receives; stops when its last execution ends.
    Draining,
    /// Gone (scaled in, crashed, or a job replica that finished).
    Stopped,
}

struct Deadline {
    at: Nanos,
    slot: u32,
    execution: u64,
    started: Nanos,
    delivery: Delivery,
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
    /// When this incarnation was allocated (before its cold start): a Container Apps job
    /// replica's timeout counts from here.
    pub launched: Nanos,
    /// A job replica's messages still to take before it exits (`None`: no limit, it drains).
    quota: Cell<Option<u32>>,
    always_ready: bool,
    billed_until: Cell<Nanos>,
    busy_since: Cell<Nanos>,
    busy_unbilled: Cell<Nanos>,
    /// Messages received for the instance and not yet taken by a slot.
    buffer: RefCell<VecDeque<Delivery>>,
    /// The slot receiving for the instance, if one is.
    fetcher: Cell<Option<TaskId>>,
    /// Slots waiting for the buffer to fill (or to become the fetcher).
    arrived: WaitList,
    /// Each slot's process, and how many executions it has finished.
    slots: RefCell<Vec<(TaskId, u64)>>,
    deadlines: RefCell<VecDeque<Deadline>>,
    watchdog: Cell<Option<TaskId>>,
    watchdog_armed: Cell<Nanos>,
    /// The instance's vCPUs, when handler work is CPU-bound (`[consumer] cpu_bound`).
    cpu: Option<Rc<Cpu>>,
}

impl Instance {
    /// Executions in progress now.
    pub fn busy(&self) -> u32 {
        self.busy.get()
    }

    /// Handler slots of this instance.
    pub fn slots(&self) -> u32 {
        self.slots.borrow().len() as u32
    }

    /// The executor group of this incarnation (also the lock holder id it receives with).
    pub fn group(&self) -> u32 {
        self.group
    }

    /// Where the instance is in its life.
    pub fn state(&self) -> State {
        self.state.get()
    }

    /// Whether slots may take new messages.
    pub fn running(&self) -> bool {
        self.state.get() == State::Running
    }

    /// Waits until `busy <= limit`.
    pub async fn wait_busy_at_most(&self, sim: &Sim, limit: u32) {
        while self.busy.get() > limit {
            self.freed.wait(sim).await;
        }
    }

    /// Messages received for the instance and not yet taken by a slot.
    pub fn buffered(&self) -> u32 {
        self.buffer.borrow().len() as u32
    }

    /// Makes `task` the instance's background receiver (a prefetching one), unless the
    /// instance already has a receiver; returns whether it did.
    pub fn set_receiver(&self, task: impl FnOnce() -> TaskId) -> bool {
        if self.fetcher.get().is_some() {
            return false;
        }
        self.fetcher.set(Some(task()));
        true
    }

    /// The background receiver ends (the instance stopped taking messages).
    pub fn receiver_ended(&self) {
        self.fetcher.set(None);
    }

    /// The background receiver fetched `fetched` into the buffer: one waiting slot is woken
    /// per message.
    pub fn prefetched(&self, sim: &Sim, fetched: &mut Vec<Delivery>) {
        let n = fetched.len();
        self.buffer.borrow_mut().extend(fetched.drain(..));
        for _ in 0..n {
            self.arrived.notify_one(sim);
        }
    }

    /// Waits until one of the instance's executions ends.
    pub async fn wait_execution_end(&self, sim: &Sim) {
        self.freed.wait(sim).await;
    }

    /// A message already received for the instance, if any.
    pub fn take_buffered(&self) -> Option<Delivery> {
        self.buffer.borrow_mut().pop_front()
    }

    /// Makes the current slot the instance's fetcher, unless another slot already is.
    pub fn begin_fetch(&self, sim: &Sim) -> bool {
        if self.fetcher.get().is_some() {
            return false;
        }
        self.fetcher.set(Some(sim.current()));
        true
    }

    /// The fetcher is done: `fetched` goes to the buffer, and one waiting slot is woken for
    /// each buffered message, plus one to become the next fetcher.
    pub fn end_fetch(&self, sim: &Sim, fetched: &mut Vec<Delivery>) {
        self.fetcher.set(None);
        let n = fetched.len();
        if n > 0 {
            self.buffer.borrow_mut().extend(fetched.drain(..));
        }
        for _ in 0..=n {
            self.arrived.notify_one(sim);
        }
    }

    /// Waits until the fetcher has something, or stops fetching.
    pub async fn wait_for_messages(&self, sim: &Sim) {
        self.arrived.wait(sim).await;
    }

    /// How many more messages a job replica may take (`u32::MAX` when it drains the queue,
    /// and for every instance that is not a job replica).
    pub fn quota_left(&self) -> u32 {
        self.quota.get().unwrap_or(u32::MAX)
    }

    /// The replica took `n` messages of its quota.
    pub fn took(&self, n: usize) {
        if let Some(left) = self.quota.get() {
            self.quota.set(Some(left.saturating_sub(n as u32)));
        }
    }
}

/// How long a job replica that its execution no longer needs may finish what it runs before
/// it is killed: Kubernetes' `terminationGracePeriodSeconds` default (30 s).
pub const REPLICA_TERMINATION_GRACE: Nanos = 30 * crate::time::NS_PER_S;

/// One execution of a Container Apps job: its replicas (by executor group) and how many
/// have exited successfully.
struct JobRun {
    replicas: Vec<u32>,
    completed: u32,
    completion_count: u32,
}

/// An execution in progress (see [`Host::begin_execution`]).
#[derive(Clone, Copy, Debug)]
pub struct Execution {
    slot: u32,
    started: Nanos,
}

/// A handler slot's process: the pattern's loop for slot `n` of an instance.
pub type SlotMain = Rc<dyn Fn(Rc<Instance>, u32) -> Pin<Box<dyn Future<Output = ()>>>>;

/// What an execution that runs past the time limit takes down with it.
#[derive(Clone, Debug)]
pub enum OnTimeout {
    /// The Functions host restarts the worker process (isolated worker, every non-.NET
    /// language): every execution in it fails and is settled as failed (abandoned on
    /// Service Bus, released on a storage queue); the instance goes on.
    RestartWorker,
    /// The in-process .NET host shuts down: every execution on the instance is cut off
    /// unsettled (its message returns when its lock or visibility lapses), and the host
    /// starts again after a draw of this restart time.
    RestartHost(Dist),
    /// A Container Apps job replica: the limit is the replica's whole run; at it the replica
    /// ends, cutting off what it runs (messages return when their locks lapse).
    EndReplica,
}

/// The consumer instances of a run.
pub struct Host {
    sim: Sim,
    seed: u64,
    queue: Rc<Queue>,
    meters: Rc<Meters>,
    cost: Rc<CostMeter>,
    timeout: Option<Nanos>,
    slots_per_instance: Cell<u32>,
    instances: RefCell<Vec<Rc<Instance>>>,
    incarnations: Cell<u32>,
    next_index: Cell<u32>,
    main: RefCell<Option<SlotMain>>,
    allocated: RefCell<Level>,
    stats: RefCell<ScalingResults>,
    cpu_work: Cell<Nanos>,
    prewarmed: u32,
    prewarmed_billed_until: Cell<Nanos>,
    /// How long a draining instance may finish its executions (`None`: as long as they take).
    drain_grace: Option<Nanos>,
    /// What the time limit cuts off.
    on_timeout: OnTimeout,
    /// vCPUs per instance when handler work is CPU-bound (`None`: work only takes time).
    cpus: Option<f64>,
    /// The pool's name: its instances' random streams are `<name>.<index>.<incarnation>`.
    name: String,
    /// Messages a Container Apps job replica takes before it exits (`None`: it drains).
    messages_per_replica: Option<u32>,
    /// The Container Apps job executions started by [`Host::add_execution`] and not yet
    /// seen finished.
    job_runs: RefCell<Vec<JobRun>>,
    /// Container Apps apps: the minimum replica count at which replicas can be idle.
    idle_floor: Option<u32>,
    /// When each idle replica (by group) became idle, and idle time not yet billed.
    idle_since: RefCell<std::collections::BTreeMap<u32, Nanos>>,
    idle_unbilled: Cell<Nanos>,
}

impl Host {
    /// A host with no instances yet; executions longer than `timeout` are killed.
    /// `prewarmed` instances are billed on top of the allocated ones (Premium's buffer).
    pub fn new(
        sim: Sim,
        seed: u64,
        queue: Rc<Queue>,
        meters: Rc<Meters>,
        cost: Rc<CostMeter>,
        timeout: Option<Nanos>,
        prewarmed: u32,
    ) -> Host {
        Host {
            sim,
            seed,
            queue,
            meters,
            cost,
            timeout,
            slots_per_instance: Cell::new(1),
            instances: RefCell::new(Vec::new()),
            incarnations: Cell::new(0),
            next_index: Cell::new(0),
            main: RefCell::new(None),
            allocated: RefCell::new(Level::default()),
            stats: RefCell::new(ScalingResults::default()),
            cpu_work: Cell::new(0),
            prewarmed,
            prewarmed_billed_until: Cell::new(0),
            drain_grace: None,
            on_timeout: OnTimeout::RestartWorker,
            cpus: None,
            name: "consumer".to_string(),
            messages_per_replica: None,
            job_runs: RefCell::new(Vec::new()),
            idle_floor: None,
            idle_since: RefCell::default(),
            idle_unbilled: Cell::new(0),
        }
    }

    /// The same host, whose job replicas each take at most `n` messages and exit once those
    /// are handled (`None`: they drain the queue).
    pub fn with_messages_per_replica(mut self, n: Option<u32>) -> Host {
        self.messages_per_replica = n;
        self
    }

    /// The same host, whose replicas are billed at the idle rate while the pool holds exactly
    /// `floor` replicas and a running replica has no execution in progress (Container Apps
    /// apps with a minimum replica count; `None`: never idle).
    pub fn with_idle_floor(mut self, floor: Option<u32>) -> Host {
        self.idle_floor = floor;
        self
    }

    /// Opens and closes idle periods after a change of a replica's state, its executions or
    /// the replica count (only with an idle floor).
    fn refresh_idle(&self) {
        let Some(floor) = self.idle_floor else { return };
        let now = self.sim.now_ns();
        let eligible = self.allocated() == floor;
        let mut idle = self.idle_since.borrow_mut();
        if !eligible && idle.is_empty() {
            return;
        }
        let mut ended = 0;
        let instances = self.instances.borrow();
        for inst in instances.iter() {
            let now_idle = eligible && inst.state.get() == State::Running && inst.busy.get() == 0;
            match (idle.get(&inst.group).copied(), now_idle) {
                (Some(since), false) => {
                    ended += now - since;
                    idle.remove(&inst.group);
                }
                (None, true) => {
                    idle.insert(inst.group, now);
                }
                _ => {}
            }
        }
        idle.retain(|group, since| {
            let live = instances.iter().any(|i| i.group == *group);
            if !live {
                ended += now - *since;
            }
            live
        });
        self.idle_unbilled.set(self.idle_unbilled.get() + ended);
    }

    /// The same host, whose draining instances are removed `grace` after the drain began,
    /// cutting off what still runs (`None`: they finish whatever it takes).
    pub fn with_drain_grace(mut self, grace: Option<Nanos>) -> Host {
        self.drain_grace = grace;
        self
    }

    /// The same host, whose time limit cuts off what `on_timeout` says (default: the
    /// worker process, [`OnTimeout::RestartWorker`]).
    pub fn with_on_timeout(mut self, on_timeout: OnTimeout) -> Host {
        self.on_timeout = on_timeout;
        self
    }

    /// The same host, whose handler work is CPU time on `cpus` vCPUs per instance (processor
    /// sharing beyond `cpus` pieces at once; see [`crate::model::cpu`]).
    pub fn with_cpu_bound_work(mut self, cpus: f64) -> Host {
        self.cpus = Some(cpus);
        self
    }

    /// Runs `work` of a handler on `inst`: on its vCPUs when work is CPU-bound (slower when
    /// more handlers than vCPUs run), else simply taking that long. Counts it as CPU work
    /// (the WebJob web tier's share).
    pub async fn work(&self, inst: &Instance, work: Nanos) {
        match &inst.cpu {
            Some(cpu) => cpu.run(work).await,
            None => self.sim.sleep(work).await,
        }
        self.cpu_work(work);
    }

    /// The same host for the pool named `name` (default `consumer`), so that two pools'
    /// instances draw from different random streams.
    pub fn named(mut self, name: &str) -> Host {
        self.name = name.to_string();
        self
    }

    /// Starts `count` warm instances of `slots` handler slots each, every slot running
    /// `main` (the initial pool, or the always-ready instances of an elastic plan).
    pub fn start(self: &Rc<Self>, count: u32, always_ready: bool, slots: u32, main: SlotMain) {
        *self.main.borrow_mut() = Some(main);
        self.slots_per_instance.set(slots.max(1));
        for _ in 0..count {
            let index = self.next_index.get();
            self.next_index.set(index + 1);
            self.launch(index, None, always_ready, false);
        }
    }

    /// Adds an instance after `cold_start` (`None`: warm). Counts a scale-out.
    pub fn add(self: &Rc<Self>, cold_start: Option<Nanos>, exit_when_idle: bool) {
        let index = self.next_index.get();
        self.next_index.set(index + 1);
        self.stats.borrow_mut().scale_outs += 1;
        self.launch(index, cold_start, false, exit_when_idle);
    }

    fn launch(
        self: &Rc<Self>,
        index: u32,
        cold_start: Option<Nanos>,
        always_ready: bool,
        exit_when_idle: bool,
    ) {
        let n = self.incarnations.get();
        self.incarnations.set(n + 1);
        let now = self.sim.now_ns();
        let inst = Rc::new(Instance {
            launched: now,
            index,
            // Unique across pools: aborting this instance's processes touches no other pool's.
            group: self.sim.new_group(),
            state: Cell::new(if cold_start.is_some() { State::Starting } else { State::Running }),
            busy: Cell::new(0),
            freed: WaitList::new(),
            rng: RefCell::new(Rng::stream(self.seed, &format!("{}.{index}.{n}", self.name))),
            exit_when_idle,
            quota: Cell::new(self.messages_per_replica.filter(|_| exit_when_idle)),
            always_ready,
            billed_until: Cell::new(now),
            busy_since: Cell::new(now),
            busy_unbilled: Cell::new(0),
            buffer: RefCell::new(VecDeque::new()),
            fetcher: Cell::new(None),
            arrived: WaitList::new(),
            slots: RefCell::new(Vec::new()),
            deadlines: RefCell::new(VecDeque::new()),
            watchdog: Cell::new(None),
            watchdog_armed: Cell::new(0),
            cpu: self.cpus.map(|c| Cpu::new(self.sim.clone(), c)),
        });
        self.instances.borrow_mut().push(inst.clone());
        let peak = {
            let mut level = self.allocated.borrow_mut();
            level.add(now, 1);
            level.peak
        };
        self.stats.borrow_mut().instances_peak = peak as u32;
        self.refresh_idle();
        if let (OnTimeout::EndReplica, Some(limit)) = (&self.on_timeout, self.timeout) {
            let (host, me) = (Rc::clone(self), Rc::clone(&inst));
            self.sim.spawn_in(inst.group, async move {
                host.sim.sleep(limit).await;
                host.stats.borrow_mut().timeouts += u64::from(me.busy.get());
                host.queue.holder_gone(me.group);
                host.stop(&me);
            });
        }
        match cold_start {
            None => self.spawn_slots(&inst),
            Some(delay) => {
                self.stats.borrow_mut().cold_starts += 1;
                let host = Rc::clone(self);
                let sim = self.sim.clone();
                self.sim.spawn_in(inst.group, async move {
                    sim.sleep(delay).await;
                    inst.state.set(State::Running);
                    host.refresh_idle();
                    host.spawn_slots(&inst);
                });
            }
        }
    }

    fn spawn_slots(&self, inst: &Rc<Instance>) {
        let main = self.main.borrow().clone().expect("host started");
        let tasks: Vec<(TaskId, u64)> = (0..self.slots_per_instance.get())
            .map(|n| (self.sim.spawn_in(inst.group, main(inst.clone(), n)), 0))
            .collect();
        *inst.slots.borrow_mut() = tasks;
    }

    /// An execution of `delivery` starts in slot `slot` of `inst`: counts the instance busy
    /// and (with an execution-time limit) arms the watchdog, which kills the slot's process
    /// if [`Host::end_execution`] has not come by the deadline.
    pub fn begin_execution(
        self: &Rc<Self>,
        inst: &Rc<Instance>,
        slot: u32,
        delivery: Delivery,
    ) -> Execution {
        let started = self.sim.now_ns();
        if inst.busy.get() == 0 {
            inst.busy_since.set(started);
        }
        inst.busy.set(inst.busy.get() + 1);
        self.refresh_idle();
        self.meters.execution_started();
        if let Some(limit) =
            self.timeout.filter(|_| !matches!(self.on_timeout, OnTimeout::EndReplica))
        {
            let execution = inst.slots.borrow()[slot as usize].1;
            let deadline = Deadline { at: started + limit, slot, execution, started, delivery };
            inst.deadlines.borrow_mut().push_back(deadline);
            self.ensure_watchdog(inst);
        }
        Execution { slot, started }
    }

    /// An execution that holds no queue message (a batch of stream events) starts on
    /// `inst`: counted busy and billed like any other, ended by [`Host::end_execution`]. No
    /// execution-time limit is armed for it.
    pub fn begin_untimed(&self, inst: &Instance) -> Execution {
        let started = self.sim.now_ns();
        if inst.busy.get() == 0 {
            inst.busy_since.set(started);
        }
        inst.busy.set(inst.busy.get() + 1);
        self.refresh_idle();
        self.meters.execution_started();
        Execution { slot: 0, started }
    }

    /// The execution begun by [`Host::begin_execution`] ended: bills it and frees the slot.
    pub fn end_execution(&self, inst: &Instance, execution: Execution) {
        inst.slots.borrow_mut()[execution.slot as usize].1 += 1;
        self.execution_ended(inst, execution.started);
    }

    fn execution_ended(&self, inst: &Instance, started: Nanos) {
        let now = self.sim.now_ns();
        self.cost.execution(now - started);
        inst.busy.set(inst.busy.get() - 1);
        self.refresh_idle();
        self.meters.executions_ended(1);
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
            // armed for an earlier deadline: it will see this one in time
            Some(_) if inst.watchdog_armed.get() > self.sim.now_ns() => {}
            Some(w) => self.sim.wake(w),
            None => {
                let (me, host) = (Rc::clone(inst), Rc::clone(self));
                let id = self.sim.spawn_in(inst.group, async move { host.watchdog(me).await });
                inst.watchdog.set(Some(id));
            }
        }
    }

    /// Kills executions past their deadline, oldest first, and sleeps until the next one.
    async fn watchdog(self: Rc<Self>, inst: Rc<Instance>) {
        loop {
            let now = self.sim.now_ns();
            let next = loop {
                let front = inst.deadlines.borrow().front().map(|d| (d.at, d.slot, d.execution));
                let Some((at, slot, execution)) = front else { break None };
                if inst.slots.borrow()[slot as usize].1 != execution {
                    inst.deadlines.borrow_mut().pop_front(); // ended in time
                    continue;
                }
                if at > now {
                    break Some(at);
                }
                let d = inst.deadlines.borrow_mut().pop_front().expect("front");
                if self.time_out(&inst, d) {
                    return; // the host went down with the instance (and this watchdog)
                }
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

    /// An execution ran past the time limit: it and what `on_timeout` says go down with it.
    /// Returns whether the instance itself went down.
    fn time_out(self: &Rc<Self>, inst: &Rc<Instance>, d: Deadline) -> bool {
        self.stats.borrow_mut().timeouts += 1;
        match &self.on_timeout {
            OnTimeout::RestartWorker | OnTimeout::EndReplica => {
                // The worker process restarts: every execution in it fails with this one.
                let others: Vec<Deadline> = inst
                    .deadlines
                    .borrow_mut()
                    .drain(..)
                    .filter(|o| inst.slots.borrow()[o.slot as usize].1 == o.execution)
                    .collect();
                self.stats.borrow_mut().timeout_collateral += others.len() as u64;
                self.kill(inst, d);
                for o in others {
                    self.kill(inst, o);
                }
                false
            }
            OnTimeout::RestartHost(restart) => {
                let collateral = u64::from(inst.busy.get()).saturating_sub(1);
                self.stats.borrow_mut().timeout_collateral += collateral;
                let delay = restart.sample(&mut inst.rng.borrow_mut());
                self.queue.holder_gone(inst.group);
                self.stop(inst);
                self.launch(inst.index, Some(delay), inst.always_ready, inst.exit_when_idle);
                true
            }
        }
    }

    /// Kills an execution: its slot's process ends, its message is abandoned (settled as
    /// failed), and a fresh slot takes the old one's place.
    fn kill(&self, inst: &Rc<Instance>, d: Deadline) {
        let (task, _) = inst.slots.borrow()[d.slot as usize];
        self.sim.abort(task);
        if inst.fetcher.get() == Some(task) {
            inst.fetcher.set(None);
        }
        let _ = self.queue.abandon(&d.delivery);
        inst.slots.borrow_mut()[d.slot as usize].1 += 1;
        self.execution_ended(inst, d.started);
        if inst.running() {
            let main = self.main.borrow().clone().expect("host started");
            let fresh = self.sim.spawn_in(inst.group, main(inst.clone(), d.slot));
            inst.slots.borrow_mut()[d.slot as usize].0 = fresh;
        }
    }

    fn end_busy_period(&self, inst: &Instance, now: Nanos) {
        let period = now - inst.busy_since.get();
        let billed = self.cost.flex_period(period, inst.always_ready);
        inst.busy_unbilled.set(inst.busy_unbilled.get() + billed);
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
        if self.idle_floor.is_some() {
            let mut open = 0;
            for since in self.idle_since.borrow_mut().values_mut() {
                open += now - std::mem::replace(since, now);
            }
            self.cost.idle_time(self.idle_unbilled.replace(0) + open);
        }
    }

    /// Scale-in: the newest running instances stop taking messages (their prefetched ones go
    /// back to the queue) and stop once their in-flight executions have finished, or when
    /// the drain grace runs out: then what still runs is cut off without settling, and its
    /// messages come back when their locks or visibility lapse.
    pub fn drain(self: &Rc<Self>, count: u32) {
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
            self.retire(&inst, self.drain_grace);
        }
    }

    /// Takes `inst` out of service, as a scale-in or a pod's termination does: a starting
    /// instance stops at once; a running one takes no more messages (those it had received
    /// go back to the queue), may finish what it runs for `grace` (`None`: as long as that
    /// takes), then stops; what it still ran is cut off unsettled (`drain_cutoffs`) and comes
    /// back when its locks or visibility lapse.
    fn retire(self: &Rc<Self>, inst: &Rc<Instance>, grace: Option<Nanos>) {
        if inst.state.get() == State::Starting {
            self.stop(inst);
            return;
        }
        inst.state.set(State::Draining);
        self.refresh_idle();
        if let Some(fetcher) = inst.fetcher.take() {
            self.sim.abort(fetcher); // waiting in a receive: it holds no message
        }
        let unprocessed: Vec<Delivery> = inst.buffer.borrow_mut().drain(..).collect();
        for d in &unprocessed {
            self.queue.release_unprocessed(d);
        }
        inst.arrived.notify_all(&self.sim); // idle slots see the drain and end
        if inst.busy.get() == 0 {
            self.stop(inst);
        } else if let Some(grace) = grace {
            let (host, me) = (Rc::clone(self), Rc::clone(inst));
            self.sim.spawn_in(inst.group, async move {
                host.sim.sleep(grace).await;
                host.stats.borrow_mut().drain_cutoffs += u64::from(me.busy.get());
                host.queue.holder_gone(me.group);
                host.stop(&me);
            });
        }
    }

    /// A job replica found the queue empty with nothing in flight (or handled its quota of
    /// messages): it exits successfully. When that makes its execution's completion count,
    /// the execution's other replicas are ended.
    pub fn exit(self: &Rc<Self>, inst: &Instance) {
        self.stop(inst);
        let ended: Vec<u32> = {
            let mut runs = self.job_runs.borrow_mut();
            let Some(run) = runs.iter_mut().find(|r| r.replicas.contains(&inst.group)) else {
                return;
            };
            run.completed += 1;
            if run.completed != run.completion_count {
                return;
            }
            run.replicas.iter().copied().filter(|g| *g != inst.group).collect()
        };
        let live: Vec<Rc<Instance>> =
            self.instances.borrow().iter().filter(|i| ended.contains(&i.group)).cloned().collect();
        for other in live {
            // Deleted like a pod: the termination grace, then killed.
            self.retire(&other, Some(REPLICA_TERMINATION_GRACE));
        }
    }

    /// Starts one Container Apps job execution: a replica per cold start in `cold_starts`
    /// (its `parallelism`), which succeeds once `completion_count` of them have exited.
    pub fn add_execution(self: &Rc<Self>, cold_starts: &[Nanos], completion_count: u32) {
        let mut replicas = Vec::with_capacity(cold_starts.len());
        for &cold in cold_starts {
            self.add(Some(cold), true);
            replicas.push(self.instances.borrow().last().expect("just launched").group);
        }
        self.job_runs.borrow_mut().push(JobRun { replicas, completed: 0, completion_count });
    }

    /// Job executions running now: those with a replica still allocated, plus every starting
    /// or running instance that belongs to no execution (always-ready ones, restarts after a
    /// crash). KEDA counts a job as running until it has finished.
    pub fn executions(&self) -> u32 {
        let instances = self.instances.borrow();
        let mut runs = self.job_runs.borrow_mut();
        runs.retain(|r| instances.iter().any(|i| r.replicas.contains(&i.group)));
        let loose = instances
            .iter()
            .filter(|i| matches!(i.state.get(), State::Starting | State::Running))
            .filter(|i| !runs.iter().any(|r| r.replicas.contains(&i.group)))
            .count();
        (runs.len() + loose) as u32
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
        // executions dropped by a crash (or still running at the end) end here
        self.meters.executions_ended(u64::from(inst.busy.replace(0)));
        self.allocated.borrow_mut().add(now, -1);
        self.instances.borrow_mut().retain(|i| i.group != inst.group);
        self.refresh_idle();
        self.sim.abort_group(inst.group); // idle slots, the watchdog, anything left
    }

    /// Crashes up to `count` live instances (lowest index first): everything running on them
    /// stops at once, and the messages they held (in handlers or prefetched) stay locked until
    /// their locks expire. Returns the indexes crashed.
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
    pub fn restart(self: &Rc<Self>, indexes: &[u32]) {
        for &i in indexes {
            self.launch(i, None, false, false);
        }
    }

    /// Instances starting or running now: the capacity the autoscaler reasons about
    /// (draining instances are on their way out).
    pub fn active(&self) -> u32 {
        self.instances
            .borrow()
            .iter()
            .filter(|i| matches!(i.state.get(), State::Starting | State::Running))
            .count() as u32
    }

    /// Instances allocated now (starting, running or draining).
    pub fn allocated(&self) -> u32 {
        self.allocated.borrow().value as u32
    }

    /// Ends the run: bills every live instance up to now, and forgets the slot main (which
    /// holds the world).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cost::CostMeter;
    use crate::model::trigger::{Handler, QueueTrigger};
    use crate::spec::{ConsumerSpec, CostSpec, HostingSpec, QueueKind, QueueSpec};
    use crate::time::{NS_PER_H, NS_PER_S};

    /// Holds each message for 10 s, then completes it.
    struct Slow {
        sim: Sim,
        queue: Rc<Queue>,
    }

    impl Handler for Slow {
        async fn handle(&self, _: &Rc<Instance>, d: Delivery) {
            self.sim.sleep(10 * NS_PER_S).await;
            let _ = self.queue.complete(&d);
        }
    }

    fn pool(instances: u32) -> (Sim, Rc<Meters>, Rc<Queue>, Rc<Host>) {
        let sim = Sim::new();
        let meters = Rc::new(Meters::new(sim.clone(), NS_PER_H, 0, false, &[], None));
        let spec = QueueSpec { visibility_timeout: 30 * NS_PER_S, ..QueueSpec::service_bus() };
        let queue = Queue::new(spec, sim.clone(), meters.clone());
        queue.start();
        let hosting = HostingSpec::default();
        let cost = Rc::new(CostMeter::new(&hosting, &CostSpec::default(), QueueKind::ServiceBus));
        let host = Rc::new(Host::new(sim.clone(), 1, queue.clone(), meters.clone(), cost, None, 0));
        let consumer = ConsumerSpec { concurrency: 2, batch_size: 2, ..Default::default() };
        let trigger =
            Rc::new(QueueTrigger::new(sim.clone(), queue.clone(), host.clone(), &consumer));
        trigger.start(Rc::new(Slow { sim: sim.clone(), queue: queue.clone() }), instances, false);
        for _ in 0..4 {
            queue.send(meters.produce(0), None);
        }
        (sim, meters, queue, host)
    }

    fn at(sim: &Sim, t: Nanos) {
        let clock = sim.clone();
        sim.spawn(async move { clock.sleep_until(SimTime(t)).await });
        sim.run_until(SimTime(t));
    }

    #[test]
    fn a_crash_drops_the_work_and_its_locks_lapse_for_another_instance() {
        let (sim, meters, queue, host) = pool(2);
        at(&sim, NS_PER_S);
        assert_eq!((host.allocated(), queue.locked()), (2, 4), "two handlers each");
        assert_eq!(host.crash(1), [0]);
        assert_eq!(host.allocated(), 1);
        at(&sim, 11 * NS_PER_S);
        assert_eq!(queue.locked(), 2, "the survivor finished its two; the dead one's stay locked");
        at(&sim, 31 * NS_PER_S);
        assert_eq!(queue.locked(), 2, "lapsed at 30 s and taken by the survivor");
        at(&sim, 41 * NS_PER_S);
        assert_eq!((queue.held(), meters.holdings().in_flight()), (0, 0), "nothing lost");
        host.shutdown();
        sim.shutdown();
    }

    #[test]
    fn a_draining_instance_finishes_its_work_then_stops() {
        let (sim, _meters, queue, host) = pool(1);
        at(&sim, NS_PER_S);
        host.drain(1);
        assert_eq!((host.allocated(), host.active()), (1, 0), "draining: allocated, not active");
        at(&sim, 10 * NS_PER_S);
        assert_eq!(host.allocated(), 0, "stopped once its two executions ended");
        assert_eq!(queue.held(), 2, "it took no more messages");
        host.shutdown();
        sim.shutdown();
    }
}
