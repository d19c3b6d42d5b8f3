//! # Fire and forget: work held only in the web process (the anti-pattern)
//!
//! ```text
//!  web process (one App Service instance)
//!  ┌────────────────────────────────────────────────────────────────────────────┐
//!  │ request ──► API ──TryWrite──► [Channel<T>, bounded] ──► BackgroundService  │
//!  │   ◄──202── (api.accept)        full: 503                × workers ──► services
//!  └────────────────────────────────────────────────────────────────────────────┘
//!    crash: everything queued and running is gone
//!    graceful restart: no new requests; the loops drain for `grace`, then the rest is gone
//! ```
//!
//! Demonstrates:
//! * the API answers as fast as with a queue (`latency.accept`): it only writes to an
//!   in-memory channel (`Channel.CreateBounded`, `TryWrite`), and a full channel refuses the
//!   request (`messages.rejected`);
//! * the work lives only in the process's memory: a crash of the web process (`[[faults]]
//!   kind = "crash", target = "web"`) loses everything queued and running, counted in
//!   `messages.lost`; a deploy or platform restart (`kind = "restart"`, `grace = "30s"`, the
//!   host's shutdown timeout) stops taking requests, lets the background loops work for the
//!   grace period, and loses what they could not finish;
//! * against `load-leveling` with the same workload and deploy, the queue keeps the work
//!   (`sluice compare`; figures in docs/patterns.md).
//!
//! Settings, in `[fire_and_forget]`:
//!
//! ```toml
//! [fire_and_forget]
//! channel_capacity = 1000    # in-memory channel; full = rejected
//! workers = 1                # background loops reading the channel (one BackgroundService)
//! drain_on_stop = true       # false: the loop stops reading at the stop signal (a
//!                            # `ReadAsync(stoppingToken)` loop): the queue is lost at once
//! ```
//!
//! Each item is the `[consumer] work` and `calls` (with `[retry]` in process), run once: a
//! failure is logged and the work is gone (`fire_and_forget.failed`, `messages.lost`), as
//! nothing would deliver it again. The API's enqueue takes `[api] accept`.
//!
//! Billing: the background loops run inside the web app's instance, which the web tier pays
//! for in every design (no pattern bills its API), so this pattern adds no compute cost; the
//! queue-based design pays for its consumers and broker operations.

use crate::check::Checker;
use crate::engine::WaitList;
use crate::ledger::{Event, Exit, Holder, Message};
use crate::model::meters::Lat;
use crate::model::process::Process;
use crate::model::series::Gauge;
use crate::model::service::Downstream;
use crate::patterns::{Pattern, SettingsTable};
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{PatternKind, Scenario};
use crate::topology::Topology;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("fire-and-forget");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "work handed to an in-memory channel in the web process: lost on a crash or restart",
    section: Some("fire_and_forget"),
    processes: &["web"],
    hosted: false,
    table: Some(SettingsTable { name: "fire_and_forget", read }),
    build,
    checkers,
};

/// `[fire_and_forget]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// Items the in-memory channel holds.
    pub channel_capacity: Option<u64>,
    /// Background loops reading the channel.
    pub workers: Option<u32>,
    /// Whether the loops keep draining the channel after the stop signal.
    pub drain_on_stop: Option<bool>,
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    Ok(Arc::new(Settings {
        channel_capacity: t.integer("channel_capacity", 1, u64::from(u32::MAX))?,
        workers: t.integer("workers", 1, 100_000)?.map(|n| n as u32),
        drain_on_stop: t.boolean("drain_on_stop")?,
    }))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(v) = self.channel_capacity {
            out.integer("channel_capacity", v);
        }
        if let Some(v) = self.workers {
            out.integer("workers", u64::from(v));
        }
        if let Some(v) = self.drain_on_stop {
            out.boolean("drain_on_stop", v);
        }
    }
}

/// The settings in force, defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Items the channel holds (default 1000).
    pub channel_capacity: u64,
    /// Background loops (default 1: one `BackgroundService`).
    pub workers: u32,
    /// Drain after the stop signal (default true).
    pub drain_on_stop: bool,
}

impl Resolved {
    /// The settings of `s`, defaults filled in.
    pub fn of(s: &Scenario) -> Resolved {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        Resolved {
            channel_capacity: mine.channel_capacity.unwrap_or(1000),
            workers: mine.workers.unwrap_or(1),
            drain_on_stop: mine.drain_on_stop.unwrap_or(true),
        }
    }
}

const COUNTERS: [&str; 6] = [
    "fire_and_forget.accepted",
    "fire_and_forget.rejected",
    "fire_and_forget.failed",
    "fire_and_forget.lost_queued",
    "fire_and_forget.lost_running",
    "fire_and_forget.queued_peak",
];

/// The web process's memory: requests being accepted, the channel, the work running.
#[derive(Default)]
struct Memory {
    at_api: BTreeMap<u64, Message>,
    channel: VecDeque<Message>,
    running: BTreeMap<u64, Message>,
}

/// The web app.
struct Web {
    t: Rc<Topology>,
    cfg: Resolved,
    memory: RefCell<Memory>,
    readers: WaitList,
    calls: Downstream,
    rng: RefCell<Rng>,
    queued: Gauge,
    process: RefCell<Option<Rc<Process>>>,
}

/// The web process: its API and its background loops.
fn build(t: &Rc<Topology>) {
    t.meters.track_accept(t.scenario.horizon());
    for c in COUNTERS {
        t.count(c, 0.0); // in every summary, so `[expect]` can name them
    }
    let web = Rc::new(Web {
        t: t.clone(),
        cfg: Resolved::of(&t.scenario),
        memory: RefCell::new(Memory::default()),
        readers: WaitList::new(),
        calls: t.downstream(&t.scenario.consumer.calls),
        rng: RefCell::new(t.rng("web")),
        queued: t.gauge("fire_and_forget.queued"),
        process: RefCell::new(None),
    });
    // The topology keeps the process, so it holds the web app weakly (no cycle); a process
    // of the engine holds it for the whole run (the crash hook must find it after the
    // workload has ended and every task of it has crashed).
    t.sim.spawn(keep(web.clone()));
    let (starting, crashed) = (Rc::downgrade(&web), Rc::downgrade(&web));
    let process = t.add_process(
        "web",
        move |p| {
            let Some(web) = starting.upgrade() else { return };
            for _ in 0..web.cfg.workers {
                p.spawn(web.clone().background_loop(p.clone()));
            }
        },
        move |_| crashed.upgrade().into_iter().for_each(|w| w.crashed()),
    );
    *web.process.borrow_mut() = Some(process);
    let api = web.clone();
    t.sim.spawn(t.clone().produce(move |msg| api.request(msg)));
}

fn checkers(_: &Scenario) -> Vec<Box<dyn Checker>> {
    Vec::new()
}

impl Web {
    fn process(&self) -> Rc<Process> {
        self.process.borrow().clone().expect("the web process is added in build")
    }

    /// A request reaches the web app: refused while it is down or stopping, else handled.
    fn request(self: &Rc<Self>, mut msg: Message) {
        let t = &self.t;
        t.meters.admit(&mut msg, Holder::Api);
        let process = self.process();
        if !process.is_up() || process.is_stopping() {
            t.count("fire_and_forget.rejected", 1.0);
            t.meters.exit(&msg, Holder::Api, Exit::Rejected);
            return;
        }
        self.memory.borrow_mut().at_api.insert(msg.id, msg);
        process.spawn(self.clone().accept(msg));
    }

    /// The controller action: write the work to the channel and answer 202, or 503 when
    /// the channel is full.
    async fn accept(self: Rc<Self>, mut msg: Message) {
        let t = &self.t;
        let requested = t.sim.now_ns();
        let took = t.scenario.api.accept.sample(&mut self.rng.borrow_mut());
        t.sim.sleep(took).await;
        let mut m = self.memory.borrow_mut();
        m.at_api.remove(&msg.id);
        if m.channel.len() as u64 >= self.cfg.channel_capacity {
            drop(m);
            t.count("fire_and_forget.rejected", 1.0);
            t.meters.exit(&msg, Holder::Api, Exit::Rejected);
            return;
        }
        t.meters.hand_over(&mut msg, Holder::Api, Holder::Web);
        m.channel.push_back(msg);
        let queued = m.channel.len() as f64;
        drop(m);
        self.queued.set(queued);
        t.record_max("fire_and_forget.queued_peak", queued);
        t.count("fire_and_forget.accepted", 1.0);
        t.meters.latency(Lat::Accept, requested, t.sim.now_ns() - requested);
        self.readers.notify_one_live(&t.sim);
    }

    /// One `BackgroundService` loop: read the channel, run the work, repeat. After the
    /// stop signal it drains what is queued (or, with `drain_on_stop = false`, stops
    /// reading at once).
    async fn background_loop(self: Rc<Self>, process: Rc<Process>) {
        let t = &self.t;
        loop {
            if process.is_stopping() && !self.cfg.drain_on_stop {
                return;
            }
            let next = self.memory.borrow_mut().channel.pop_front();
            let Some(mut msg) = next else {
                if process.is_stopping() {
                    return; // drained: the loop ends, the host waits for the others
                }
                self.readers.wait(&t.sim).await;
                continue;
            };
            self.queued.set(self.memory.borrow().channel.len() as f64);
            t.meters.hand_over(&mut msg, Holder::Web, Holder::Handler);
            self.memory.borrow_mut().running.insert(msg.id, msg);
            self.run(msg).await;
        }
    }

    /// Runs one item once: no one will ever hand it over again.
    async fn run(&self, msg: Message) {
        let t = &self.t;
        let started = t.sim.now_ns();
        t.meters.delivered();
        t.meters.trace(&msg, Event::Delivered { count: 1 });
        t.meters.latency(Lat::QueueWait, msg.accepted_at, started - msg.accepted_at);
        let work = t.scenario.consumer.work.sample(&mut self.rng.borrow_mut());
        t.sim.sleep(work).await;
        let ok = !t.is_poison(msg.class) && self.calls.call_all().await.is_ok();
        t.meters.latency(Lat::Handler, msg.accepted_at, t.sim.now_ns() - started);
        self.memory.borrow_mut().running.remove(&msg.id);
        if ok {
            t.meters.exit(&msg, Holder::Handler, Exit::Completed);
        } else {
            // Logged and gone: nothing delivers it again.
            t.meters.failed();
            t.count("fire_and_forget.failed", 1.0);
            t.meters.exit(&msg, Holder::Handler, Exit::Lost);
        }
    }

    /// The process died: requests being accepted fail, the channel and the running work
    /// are gone.
    fn crashed(&self) {
        let t = &self.t;
        let m = std::mem::take(&mut *self.memory.borrow_mut());
        for msg in m.at_api.values() {
            t.count("fire_and_forget.rejected", 1.0);
            t.meters.exit(msg, Holder::Api, Exit::Rejected);
        }
        for msg in &m.channel {
            t.count("fire_and_forget.lost_queued", 1.0);
            t.meters.exit(msg, Holder::Web, Exit::Lost);
        }
        for msg in m.running.values() {
            t.count("fire_and_forget.lost_running", 1.0);
            t.meters.exit(msg, Holder::Handler, Exit::Lost);
        }
        self.queued.set(0.0);
    }
}

/// Holds `state` until the engine shuts down and drops its processes.
async fn keep<T>(state: Rc<T>) {
    let _state = state;
    std::future::pending::<()>().await;
}
