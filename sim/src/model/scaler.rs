//! Autoscaling on the queue length: the Functions scale controller (target-based scaling),
//! KEDA with the HPA for Container Apps apps, and KEDA's scaled jobs for Container Apps jobs.
//!
//! Every `polling_interval` the scaler reads the queue length (messages held: waiting,
//! locked or delayed) and computes `desired = ceil(length / target_per_instance)`, clamped
//! to `[min_instances, max_instances]`.
//!
//! * Functions plans: below `desired`, add up to `scale_out_max` instances (target-based
//!   scaling adds up to four at a time; incremental scaling, `scale_out_max = 1`, one), at
//!   most one such decision per `scale_out_step`; above `desired` for a whole `cooldown`,
//!   drain down to `desired` (in-flight work finishes first, within the plan's drain
//!   grace). A new instance pays a cold start, except on Premium while a pre-warmed
//!   instance is ready (the buffer refills after a cold start of its own).
//! * Container Apps apps (KEDA feeding the HPA): below `desired`, grow to
//!   `min(max, desired, max(4, 2 × current))` at each decision (from zero, KEDA activates one
//!   replica first), at most one decision per `scale_out_step`; scale-in to the highest
//!   `desired` seen over the last `cooldown` (the HPA's 300 s scale-down stabilization
//!   window), removing the whole surplus at once; a removed replica gets the termination
//!   grace period (`drain_grace`, default 30 s) to finish its executions.
//! * Container Apps jobs: start `desired - running` new executions (KEDA ScaledJob's default
//!   strategy; `running` counts executions not yet finished). Each execution starts
//!   `parallelism` replicas, each paying a cold start; a replica drains the queue and exits
//!   when it finds it empty, or exits after `messages_per_replica` messages; once
//!   `completion_count` replicas have exited, the execution's others are ended.

use crate::engine::Sim;
use crate::model::host::Host;
use crate::model::queue::Queue;
use crate::rng::Rng;
use crate::spec::{HostingSpec, Plan};
use crate::time::Nanos;
use std::collections::VecDeque;
use std::rc::Rc;

/// The autoscaler of one consumer pool: it reads one queue's length and adds or drains
/// the pool's instances.
pub struct Autoscaler {
    /// The engine.
    pub sim: Sim,
    /// The pool it scales.
    pub host: Rc<Host>,
    /// The queue whose length it reads.
    pub queue: Rc<Queue>,
    /// The plan and its `[scaling]` settings.
    pub hosting: HostingSpec,
    /// Messages per instance it aims for: `[scaling] target_per_instance`, else the
    /// trigger's own ([`crate::model::trigger::QueueTrigger::scale_target`]).
    pub target: u32,
    /// Cold-start draws (the `scaler` stream).
    pub rng: Rng,
}

/// What the scaler remembers between polls.
#[derive(Default)]
struct Memory {
    /// The last scale-out decision (Functions plans, Container Apps apps).
    last_out: Option<Nanos>,
    /// Since when the pool has been over-provisioned (Functions plans).
    over_since: Option<Nanos>,
    /// When each of Premium's pre-warmed instances is ready (again).
    warm_ready_at: Vec<Nanos>,
    /// Container Apps apps: (time, desired) of the decisions within the last `cooldown`,
    /// the HPA's scale-down stabilization window.
    recent: VecDeque<(Nanos, u32)>,
}

impl Autoscaler {
    /// The scaler process: every `polling_interval`, the plan's decision on the queue length.
    pub async fn run(mut self) {
        let s = &self.hosting.scaling;
        let (poll, min, max) = (s.polling_interval, s.min_instances, s.max_instances);
        let target = u64::from(self.target.max(1));
        let mut memory =
            Memory { warm_ready_at: vec![0; s.prewarmed as usize], ..Default::default() };
        loop {
            self.sim.sleep(poll).await;
            let desired = (self.queue.held().div_ceil(target) as u32).clamp(min, max);
            match self.hosting.plan {
                Plan::AcaJob => self.start_jobs(desired),
                Plan::AcaApp => self.scale_app(desired, &mut memory),
                _ => self.scale_functions(desired, &mut memory),
            }
        }
    }

    /// KEDA's scaled job (default strategy): start `desired - running` executions, each of
    /// `parallelism` replicas. KEDA counts jobs (executions), not replicas.
    fn start_jobs(&mut self, desired: u32) {
        let s = &self.hosting.scaling;
        for _ in 0..desired.saturating_sub(self.host.executions()) {
            let colds: Vec<Nanos> =
                (0..s.parallelism.max(1)).map(|_| s.cold_start.sample(&mut self.rng)).collect();
            self.host.add_execution(&colds, s.completion_count.max(1));
        }
    }

    /// KEDA feeding the HPA: grow to `min(max, desired, max(4, 2 × current))` (one replica
    /// from zero), shrink to the highest `desired` of the stabilization window at once.
    fn scale_app(&mut self, desired: u32, memory: &mut Memory) {
        let s = &self.hosting.scaling;
        let now = self.sim.now_ns();
        let current = self.host.active();
        memory.recent.push_back((now, desired));
        while memory.recent.front().is_some_and(|(t, _)| now - t > s.cooldown) {
            memory.recent.pop_front();
        }
        if desired > current {
            if memory.last_out.is_none_or(|t| now - t >= s.scale_out_step) {
                memory.last_out = Some(now);
                let next = if current == 0 { 1 } else { desired.min((2 * current).max(4)) };
                for _ in current..next.min(s.max_instances) {
                    let cold = s.cold_start.sample(&mut self.rng);
                    self.host.add(Some(cold), false);
                }
            }
        } else {
            let floor = memory.recent.iter().map(|(_, d)| *d).max().unwrap_or(desired);
            if floor < current {
                self.host.drain(current - floor);
            }
        }
    }

    /// The Functions scale controller (target-based): add up to `scale_out_max` instances
    /// per `scale_out_step` (Premium takes pre-warmed ones first), drain the surplus after a
    /// whole `cooldown` of it.
    fn scale_functions(&mut self, desired: u32, memory: &mut Memory) {
        let s = &self.hosting.scaling;
        let now = self.sim.now_ns();
        let current = self.host.active();
        if desired > current {
            memory.over_since = None;
            if memory.last_out.is_none_or(|t| now - t >= s.scale_out_step) {
                memory.last_out = Some(now);
                for _ in 0..(desired - current).min(s.scale_out_max.max(1)) {
                    let cold = s.cold_start.sample(&mut self.rng);
                    let warm = memory.warm_ready_at.iter_mut().find(|t| **t <= now);
                    match warm {
                        Some(ready) if self.hosting.plan == Plan::FunctionsPremium => {
                            *ready = now + cold; // the buffer refills behind it
                            self.host.add(None, false);
                        }
                        _ => self.host.add(Some(cold), false),
                    }
                }
            }
        } else if desired < current {
            let since = *memory.over_since.get_or_insert(now);
            if now - since >= s.cooldown {
                self.host.drain(current - desired);
                memory.over_since = None;
            }
        } else {
            memory.over_since = None;
        }
    }
}
