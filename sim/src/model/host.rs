//! The consumer host: instances, each running up to `concurrency` handlers, that crash
//! (dropping their in-flight work) and restart.

use crate::engine::{Sim, WaitList};
use crate::rng::Rng;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

/// One consumer instance (one incarnation of it: a restart makes a new one).
pub struct Instance {
    /// The instance's index in the host (stable across restarts).
    pub index: u32,
    /// The executor group of everything running on this incarnation.
    group: u32,
    alive: Cell<bool>,
    busy: Cell<u32>,
    freed: WaitList,
    /// The instance's random stream (handler work durations).
    pub rng: RefCell<Rng>,
}

impl Instance {
    /// Handlers running now.
    pub fn busy(&self) -> u32 {
        self.busy.get()
    }

    /// Whether this incarnation is running.
    pub fn alive(&self) -> bool {
        self.alive.get()
    }

    /// Waits until fewer than `limit + 1` handlers run, i.e. `busy <= limit`.
    pub async fn wait_busy_at_most(&self, sim: &Sim, limit: u32) {
        while self.busy.get() > limit {
            self.freed.wait(sim).await;
        }
    }
}

/// What a host runs on each instance it starts: the pattern's receive loop.
pub type InstanceMain = Rc<dyn Fn(Rc<Instance>)>;

/// The consumer instances of a run.
pub struct Host {
    sim: Sim,
    seed: u64,
    instances: RefCell<Vec<Rc<Instance>>>,
    incarnations: Cell<u32>,
    main: RefCell<Option<InstanceMain>>,
}

impl Host {
    /// A host with no instances yet.
    pub fn new(sim: Sim, seed: u64) -> Host {
        Host {
            sim,
            seed,
            instances: RefCell::new(Vec::new()),
            incarnations: Cell::new(0),
            main: RefCell::new(None),
        }
    }

    fn incarnate(&self, index: u32) -> Rc<Instance> {
        let n = self.incarnations.get();
        self.incarnations.set(n + 1);
        Rc::new(Instance {
            index,
            group: n + 1, // group 0 is everything that runs outside instances
            alive: Cell::new(true),
            busy: Cell::new(0),
            freed: WaitList::new(),
            rng: RefCell::new(Rng::stream(self.seed, &format!("consumer.{index}.{n}"))),
        })
    }

    /// Starts `count` instances, each running `main`.
    pub fn start(&self, count: u32, main: InstanceMain) {
        *self.main.borrow_mut() = Some(main.clone());
        for i in 0..count {
            let inst = self.incarnate(i);
            self.instances.borrow_mut().push(inst.clone());
            main(inst);
        }
    }

    /// Spawns a process that belongs to `inst` (it dies with the instance).
    pub fn spawn_on(&self, inst: &Instance, process: impl Future<Output = ()> + 'static) {
        self.sim.spawn_in(inst.group, process);
    }

    /// Runs a handler on `inst`, counting it as busy until it ends.
    pub fn run_handler(&self, inst: &Rc<Instance>, handler: impl Future<Output = ()> + 'static) {
        inst.busy.set(inst.busy.get() + 1);
        let me = Rc::clone(inst);
        let sim = self.sim.clone();
        self.sim.spawn_in(inst.group, async move {
            handler.await;
            me.busy.set(me.busy.get() - 1);
            me.freed.notify_one(&sim);
        });
    }

    /// Crashes up to `count` running instances (lowest index first): everything running on
    /// them stops at once, and the messages they held stay locked until their locks expire.
    /// Returns the indexes crashed.
    pub fn crash(&self, count: u32) -> Vec<u32> {
        let victims: Vec<Rc<Instance>> = self
            .instances
            .borrow()
            .iter()
            .filter(|i| i.alive())
            .take(count as usize)
            .cloned()
            .collect();
        for inst in &victims {
            inst.alive.set(false);
            self.sim.abort_group(inst.group);
        }
        victims.iter().map(|i| i.index).collect()
    }

    /// Starts a fresh incarnation of each instance in `indexes`.
    pub fn restart(&self, indexes: &[u32]) {
        let main = self.main.borrow().clone().expect("host started");
        for &i in indexes {
            let inst = self.incarnate(i);
            self.instances.borrow_mut()[i as usize] = inst.clone();
            main(inst);
        }
    }

    /// Forgets the instance main (which holds the world) at the end of a run.
    pub fn shutdown(&self) {
        self.main.borrow_mut().take();
    }

    /// Instances running now.
    pub fn alive(&self) -> u32 {
        self.instances.borrow().iter().filter(|i| i.alive()).count() as u32
    }
}
