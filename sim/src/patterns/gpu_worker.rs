//! # GPU worker: queue-started GPU jobs, batched inference
//!
//! ```text
//!              KEDA scaler: every polling_interval,
//!              start ceil(queue length / target) − (replicas not finished)
//!                    │
//!  producer ──► [queue] ◄──receive up to max_batch, wait at most max_wait──┐
//!                    │                                                     │
//!                    └──► replica: start ─► image pull ─► model load ─► batch on the GPU ─► complete
//!                                │                                        │ out of memory
//!                                │                                        └─► abandon (redelivered)
//!                                └──► the queue is empty: the replica exits
//! ```
//!
//! A Container Apps job with a GPU workload profile (serverless T4 or A100), started by a
//! queue-length scaler, doing batched inference:
//!
//! * **Dynamic batching**: a replica takes up to `max_batch` messages; if it got fewer, it
//!   waits at most `max_wait` from the first for more, then runs the batch. Under load the
//!   batches fill (mean size near `max_batch`); at a trickle they stay small and `max_wait`
//!   bounds the latency batching adds.
//! * **Batch latency** on the GPU follows `batch_latency` (a line) or a measured `profile`
//!   ([`crate::model::gpu::BatchLatency`]).
//! * **GPU memory**: a batch needs `model_memory + n × item_memory`; one that does not fit
//!   in `memory` fails with out-of-memory (`gpu.oom_errors`), its messages go back to the
//!   queue and are delivered again (dead-lettered at `max_delivery_count`).
//!   `gpu.max_safe_batch` is the largest batch that fits.
//! * **Cold start in layers**: the replica start (`[scaling] cold_start`, scheduling and
//!   container start), the image pull (`image_pull`) and the model load (`model_load`, into
//!   GPU memory). Every replica pays all three, billed from its start.
//! * **Run to completion**: a job replica that finds the queue empty (before a batch) exits;
//!   a warm replica (`[scaling] min_instances`) waits for messages instead. A replica's whole
//!   run is bounded by the replica timeout (`[consumer] execution_timeout`, 30 min by
//!   default, counted from its allocation), where the platform ends it: the worker takes no
//!   batch it could not finish before then and exits (`gpu.replica_timeouts`), and the
//!   scaler starts a fresh one, which loads the model again. A replica that should stay
//!   warm (a Container Apps app with `minReplicas = 1`, not a job) has
//!   `execution_timeout = "never"`.
//! * **Over-creation**: the scaler counts the messages its replicas hold (locked) and starts
//!   `ceil(length / target) − (replicas not finished)` each poll, as KEDA's ScaledJob does.
//!   With a target below what one replica takes (`target_per_instance` < `max_batch`; KEDA's
//!   default target is 5), replicas are started for messages that another replica, still
//!   pending or loading its model, will take: they load the model, find nothing and exit.
//!   `gpu.overcreated` counts replicas that exited without running a batch.
//! * **Billing**: GPU-seconds of every replica from its start to its exit at the GPU kind's
//!   rate (`cost.gpu_usd`), on top of the plan's vCPU-s and GiB-s.
//!
//! Summary section `gpu`: `batches`, `batch_size_mean`, `utilization` (busy GPU time over
//! billed GPU time), `oom_errors`, `model_loads`, `overcreated`, `replicas`, `max_safe_batch`,
//! `fill_wait_ms_max` (the longest a batch waited to fill, at most `max_wait`),
//! `gpu_seconds`, `replica_timeouts`. Time series: `gpu.utilization` (the busy share of each interval's billed GPU
//! time) and `gpu.batch_size` (the mean batch of each interval).
//!
//! Settings, in `[gpu]`:
//!
//! ```toml
//! [gpu]
//! kind = "T4"                  # T4 | A100: the GPU-second rate and the default memory
//! max_batch = 32
//! max_wait = "50ms"
//! batch_latency = "linear(base=20ms, per_item=2ms)"   # or profile = "profiles/t4.toml"
//! memory = "16GB"              # default: the kind's
//! model_memory = "2GB"         # weights and workspace (default 0)
//! item_memory = "300MB"
//! image_pull = "lognormal(mean=20s, p99=60s)"
//! model_load = "lognormal(mean=40s, p99=90s)"
//! idle_timeout = "0s"          # a job replica's wait on an empty queue before it exits
//! ```

use crate::check::gpu::GpuBounds;
use crate::check::{Checker, MaxDeliveries};
use crate::dist::Dist;
use crate::model::gpu::{self, BatchLatency, GpuKind, GpuMemory};
use crate::model::host::{Host, Instance};
use crate::model::meters::Lat;
use crate::model::queue::{Delivery, Queue};
use crate::patterns::{Pattern, SettingsTable};
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{PatternKind, Plan, Scenario};
use crate::time::{NS_PER_MS, NS_PER_S, Nanos};
use crate::topology::Topology;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("gpu-worker");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "queue-started GPU job replicas, dynamic batching, GPU memory, layered cold start",
    section: Some("gpu"),
    hosted: true,
    processes: &[],
    table: Some(SettingsTable { name: "gpu", read }),
    build,
    checkers,
};

/// The counters of the `gpu` section, initialised to 0 in every run.
pub const COUNTERS: [&str; 11] = [
    "batches",
    "batch_size_mean",
    "utilization",
    "oom_errors",
    "model_loads",
    "overcreated",
    "replicas",
    "max_safe_batch",
    "fill_wait_ms_max",
    "gpu_seconds",
    "replica_timeouts",
];

/// `[gpu]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The GPU kind (index into [`gpu::KINDS`]).
    pub kind: Option<usize>,
    /// Most messages per batch.
    pub max_batch: Option<u32>,
    /// Longest wait for a batch to fill, from its first message.
    pub max_wait: Option<Nanos>,
    /// The batch-latency curve (from `batch_latency` or `profile`).
    pub batch_latency: Option<BatchLatency>,
    /// GPU memory, MB.
    pub memory_mb: Option<f64>,
    /// The model's own memory, MB.
    pub model_memory_mb: Option<f64>,
    /// Memory per batch item, MB.
    pub item_memory_mb: Option<f64>,
    /// Time to pull the container image.
    pub image_pull: Option<Dist>,
    /// Time to load the model onto the GPU.
    pub model_load: Option<Dist>,
    /// How long a job replica waits for a message before it exits.
    pub idle_timeout: Option<Nanos>,
}

fn size(t: &mut dyn TableReader, key: &str) -> Result<Option<f64>, TableError> {
    match t.string(key)? {
        None => Ok(None),
        Some(s) => gpu::parse_memory_mb(&s)
            .map(Some)
            .map_err(|e| t.invalid(key, &format!("`gpu.{key}`: {e}"))),
    }
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let names = gpu::KINDS.map(|k| k.name);
    let kind = t.choice("kind", &names)?;
    let max_batch = t.integer("max_batch", 1, 100_000)?.map(|n| n as u32);
    let max_wait = t.duration("max_wait")?;
    let mut batch_latency = match t.string("batch_latency")? {
        None => None,
        Some(s) => Some(
            BatchLatency::parse(&s)
                .map_err(|e| t.invalid("batch_latency", &format!("`gpu.batch_latency`: {e}")))?,
        ),
    };
    if let Some((name, text)) = t.file("profile")? {
        if batch_latency.is_some() {
            let msg = "`gpu.profile` and `gpu.batch_latency` both set the batch latency: keep one";
            return Err(t.invalid("profile", msg));
        }
        let curve = BatchLatency::from_profile(&text).map_err(|e| {
            t.invalid(
                "profile",
                &format!("bad profile {name:?}: {e} (the format: docs/patterns.md, gpu-worker)"),
            )
        })?;
        batch_latency = Some(curve);
    }
    let settings = Settings {
        kind,
        max_batch,
        max_wait,
        batch_latency,
        memory_mb: size(t, "memory")?,
        model_memory_mb: size(t, "model_memory")?,
        item_memory_mb: size(t, "item_memory")?,
        image_pull: t.dist("image_pull")?,
        model_load: t.dist("model_load")?,
        idle_timeout: t.duration("idle_timeout")?,
    };
    if let Some(s) = t.scenario() {
        let plan = s.hosting.plan;
        if !matches!(plan, Plan::AcaJob | Plan::Worker) {
            let msg = format!(
                "the gpu-worker pattern runs on `[consumer] hosting = \"aca-job\"` (Container \
                 Apps serverless GPU) or `\"worker\"` (a fixed GPU pool), not `{}`",
                plan.name()
            );
            return Err(t.invalid("kind", &msg));
        }
    }
    Ok(Arc::new(settings))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(k) = self.kind {
            out.string("kind", gpu::KINDS[k].name);
        }
        if let Some(v) = self.max_batch {
            out.integer("max_batch", u64::from(v));
        }
        if let Some(v) = self.max_wait {
            out.duration("max_wait", v);
        }
        if let Some(v) = &self.batch_latency {
            out.string("batch_latency", &v.write());
        }
        for (key, v) in [
            ("memory", self.memory_mb),
            ("model_memory", self.model_memory_mb),
            ("item_memory", self.item_memory_mb),
        ] {
            if let Some(mb) = v {
                out.string(key, &gpu::format_memory_mb(mb));
            }
        }
        if let Some(v) = &self.image_pull {
            out.dist("image_pull", v);
        }
        if let Some(v) = &self.model_load {
            out.dist("model_load", v);
        }
        if let Some(v) = self.idle_timeout {
            out.duration("idle_timeout", v);
        }
    }
}

/// The settings in force for one run.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The GPU kind (default T4).
    pub kind: GpuKind,
    /// Most messages per batch (default 32).
    pub max_batch: u32,
    /// Longest wait for a batch to fill (default 50 ms).
    pub max_wait: Nanos,
    /// Batch latency (default `linear(base=20ms, per_item=2ms)`).
    pub latency: BatchLatency,
    /// GPU memory (default: the kind's), model (default 0) and per item (default 300 MB).
    pub memory: GpuMemory,
    /// Image pull (default `lognormal(mean=20s, p99=60s)`).
    pub image_pull: Dist,
    /// Model load (default `lognormal(mean=40s, p99=90s)`).
    pub model_load: Dist,
    /// How long a job replica waits on an empty queue before it exits (default 0: it exits
    /// on the first empty receive).
    pub idle_timeout: Nanos,
}

impl Resolved {
    /// The settings for `s`: `[gpu]` over the defaults.
    pub fn of(s: &Scenario) -> Resolved {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        let kind = gpu::KINDS[mine.kind.unwrap_or(0)];
        Resolved {
            kind,
            max_batch: mine.max_batch.unwrap_or(32),
            max_wait: mine.max_wait.unwrap_or(50 * NS_PER_MS),
            latency: mine
                .batch_latency
                .unwrap_or(BatchLatency::Linear { base: 20 * NS_PER_MS, per_item: 2 * NS_PER_MS }),
            memory: GpuMemory {
                total_mb: mine.memory_mb.unwrap_or(kind.memory_mb),
                model_mb: mine.model_memory_mb.unwrap_or(0.0),
                item_mb: mine.item_memory_mb.unwrap_or(300.0),
            },
            image_pull: mine
                .image_pull
                .unwrap_or_else(|| Dist::lognormal(20 * NS_PER_S, 60 * NS_PER_S).expect("valid")),
            model_load: mine
                .model_load
                .unwrap_or_else(|| Dist::lognormal(40 * NS_PER_S, 90 * NS_PER_S).expect("valid")),
            idle_timeout: mine.idle_timeout.unwrap_or(0),
        }
    }
}

/// The GPU replicas of a run: what they share (the queue, the host) and the GPU's
/// accounting.
struct Gpu {
    t: Rc<Topology>,
    queue: Rc<Queue>,
    host: Rc<Host>,
    s: Resolved,
    /// GPUs running a batch now, and the busy GPU time up to `busy_at`.
    busy: Cell<u32>,
    busy_ns: Cell<f64>,
    busy_at: Cell<Nanos>,
    batches: Cell<u64>,
    items: Cell<u64>,
}

impl Gpu {
    /// Busy GPU time up to now, ns.
    fn busy_total(&self) -> f64 {
        let now = self.t.sim.now_ns();
        self.busy_ns.get() + f64::from(self.busy.get()) * (now - self.busy_at.get()) as f64
    }

    fn set_busy(&self, delta: i32) {
        self.busy_ns.set(self.busy_total());
        self.busy_at.set(self.t.sim.now_ns());
        self.busy.set(self.busy.get().saturating_add_signed(delta));
    }

    /// Bills the replicas up to now and updates `gpu.utilization` and `gpu.gpu_seconds`.
    fn account(&self) {
        self.host.bill_all();
        let gpu_s = self.t.cost.gpu_seconds();
        let busy_s = self.busy_total() / NS_PER_S as f64;
        let utilization = if gpu_s > 0.0 { (busy_s / gpu_s).min(1.0) } else { 0.0 };
        self.t.set("gpu.utilization", utilization);
        self.t.set("gpu.gpu_seconds", gpu_s);
    }

    /// One replica, from its start (after the replica start) to its exit.
    async fn replica(self: Rc<Self>, inst: Rc<Instance>) {
        let sim = self.t.sim.clone();
        // A Container Apps replica's whole run, from its allocation, is bounded by the
        // replica timeout, where the platform ends it: this worker takes no batch it could
        // not finish before then, and exits.
        let h = &self.t.scenario.hosting;
        let deadline = (h.plan == Plan::AcaJob)
            .then(|| h.timeout())
            .flatten()
            .map(|limit| inst.launched + limit);
        let longest_batch = self.s.max_wait + self.s.latency.of(self.s.max_batch);
        self.t.count("gpu.replicas", 1.0);
        let (pull, load) = {
            let mut rng = inst.rng.borrow_mut();
            (self.s.image_pull.sample(&mut rng), self.s.model_load.sample(&mut rng))
        };
        sim.sleep(pull).await;
        sim.sleep(load).await;
        self.t.count("gpu.model_loads", 1.0);
        let max = self.s.max_batch;
        let mut ran = 0u64;
        let mut batch: Vec<(Delivery, Nanos)> = Vec::with_capacity(max as usize);
        let mut got: Vec<Delivery> = Vec::with_capacity(max as usize);
        loop {
            if deadline.is_some_and(|d| sim.now_ns() + longest_batch >= d) {
                self.t.count("gpu.replica_timeouts", 1.0);
                self.host.exit(&inst);
                self.account();
                return;
            }
            // A job replica waits `idle_timeout` at most, then exits; a warm one waits.
            let until = if inst.exit_when_idle {
                let idle = sim.now_ns() + self.s.idle_timeout;
                Some(deadline.map_or(idle, |d| idle.min(d - longest_batch)))
            } else {
                deadline.map(|d| d - longest_batch)
            };
            self.queue.receive_within(max, inst.group(), &mut got, until).await;
            if got.is_empty() && !inst.exit_when_idle {
                continue; // a warm replica's wait ran into its replica timeout
            }
            if got.is_empty() {
                if ran == 0 {
                    self.t.count("gpu.overcreated", 1.0);
                }
                self.host.exit(&inst);
                self.account();
                return;
            }
            let first = sim.now_ns();
            let mut executions = Vec::with_capacity(max as usize);
            // Fill the batch: up to `max`, waiting at most `max_wait` after the first.
            let dispatch_at = first + self.s.max_wait;
            loop {
                let now = sim.now_ns();
                for d in got.drain(..) {
                    executions.push(self.host.begin_execution(&inst, 0, d));
                    batch.push((d, now));
                }
                if batch.len() as u32 >= max || now >= dispatch_at {
                    break;
                }
                let room = max - batch.len() as u32;
                self.queue.receive_within(room, inst.group(), &mut got, Some(dispatch_at)).await;
            }
            let n = batch.len() as u32;
            let waited = sim.now_ns() - first;
            self.t.record_max("gpu.fill_wait_ms_max", waited as f64 / NS_PER_MS as f64);
            let running = Running::start(&self);
            if self.s.memory.fits(n) {
                sim.sleep(self.s.latency.of(n)).await;
                self.batches.set(self.batches.get() + 1);
                self.items.set(self.items.get() + u64::from(n));
                self.t.count("gpu.batches", 1.0);
                let mean = self.items.get() as f64 / self.batches.get() as f64;
                self.t.set("gpu.batch_size_mean", mean);
                let now = sim.now_ns();
                for (d, received) in &batch {
                    self.t.meters.latency(Lat::Handler, d.msg.accepted_at, now - received);
                    let _ = self.queue.complete(d);
                }
            } else {
                // The allocation fails as the batch starts: about one item's batch time.
                sim.sleep(self.s.latency.of(1)).await;
                self.t.count("gpu.oom_errors", 1.0);
                let now = sim.now_ns();
                for (d, received) in &batch {
                    self.t.meters.latency(Lat::Handler, d.msg.accepted_at, now - received);
                    let _ = self.queue.abandon(d);
                }
            }
            drop(running);
            for e in executions {
                self.host.end_execution(&inst, e);
            }
            batch.clear();
            ran += 1;
            self.account();
        }
    }
}

/// A batch on the GPU: the GPU counts as busy until it is dropped, which also happens when a
/// crash aborts the replica in the middle of the batch.
struct Running(Rc<Gpu>);

impl Running {
    fn start(gpu: &Rc<Gpu>) -> Running {
        gpu.set_busy(1);
        Running(gpu.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set_busy(-1);
    }
}

fn build(t: &Rc<Topology>) {
    let s = Resolved::of(&t.scenario);
    for c in COUNTERS {
        t.count(&format!("gpu.{c}"), 0.0); // in every summary, so `[expect]` can name them
    }
    t.set("gpu.max_safe_batch", f64::from(s.memory.max_batch().min(1_000_000)));
    t.cost.set_gpu_rate(t.scenario.cost.pricing.get(s.kind.rate).unwrap_or(0.0));
    let queue = t.add_queue("queue", t.scenario.queue.clone());
    let q = queue.clone();
    t.sim.spawn(t.clone().produce(move |msg| {
        q.send(msg, None);
    }));
    t.add_pool("consumer", queue.clone(), &t.scenario.consumer);
    let host = t.pool("consumer").expect("just added").0;
    let gpu = Rc::new(Gpu {
        t: t.clone(),
        queue,
        host: host.clone(),
        s,
        busy: Cell::new(0),
        busy_ns: Cell::new(0.0),
        busy_at: Cell::new(0),
        batches: Cell::new(0),
        items: Cell::new(0),
    });
    probes(t, &gpu);
    let h = &t.scenario.hosting;
    let (count, always_ready) = if h.plan.elastic() {
        (h.scaling.min_instances, true)
    } else {
        (t.scenario.consumer.instances, false)
    };
    let main = gpu;
    host.start(
        count,
        always_ready,
        1,
        Rc::new(move |inst: Rc<Instance>, _slot| Box::pin(main.clone().replica(inst))),
    );
}

/// The time-series columns: `gpu.utilization` (busy GPU time over billed GPU time in the
/// interval) and `gpu.batch_size` (the mean size of the batches run in the interval).
fn probes(t: &Topology, gpu: &Rc<Gpu>) {
    let weak = Rc::downgrade(gpu);
    let before = Cell::new((0.0, 0.0));
    t.probe("gpu.utilization", move || {
        let Some(gpu) = weak.upgrade() else { return 0.0 };
        gpu.account(); // the run loop has just billed every replica up to now
        let busy = gpu.busy_total() / NS_PER_S as f64;
        let billed = gpu.t.cost.gpu_seconds();
        let (busy_before, billed_before) = before.replace((busy, billed));
        let allocated = billed - billed_before;
        if allocated > 0.0 { ((busy - busy_before) / allocated).min(1.0) } else { 0.0 }
    });
    let weak = Rc::downgrade(gpu);
    let before = Cell::new((0, 0));
    t.probe("gpu.batch_size", move || {
        let Some(gpu) = weak.upgrade() else { return 0.0 };
        let now = (gpu.batches.get(), gpu.items.get());
        let (batches, items) = before.replace(now);
        let n = now.0 - batches;
        if n > 0 { (now.1 - items) as f64 / n as f64 } else { 0.0 }
    });
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let r = Resolved::of(s);
    vec![
        Box::new(MaxDeliveries::new(s.queue.max_delivery_count)),
        Box::new(GpuBounds { max_batch: r.max_batch, max_wait: r.max_wait }),
    ]
}
