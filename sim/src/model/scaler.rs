//! Autoscaling on the queue length: the Functions scale controller (target-based scaling)
//! and KEDA's scaled jobs for Container Apps jobs.
//!
//! Every `polling_interval` the scaler reads the queue length (messages held: waiting,
//! locked or delayed) and computes `desired = ceil(length / target_per_instance)`, clamped
//! to `[min_instances, max_instances]`.
//!
//! * Functions plans: below `desired`, add one instance, at most one per `scale_out_step`
//!   (queue triggers add instances one at a time); above `desired` for a whole `cooldown`,
//!   drain down to `desired` (in-flight work finishes first). A new instance pays a cold
//!   start, except on Premium while a pre-warmed instance is ready (the buffer refills after
//!   a cold start of its own).
//! * Container Apps jobs: start `min(desired - running, max - running)` new executions; each
//!   pays a cold start, drains the queue and exits when it finds it empty.

use crate::spec::{Plan, QueueKind};
use crate::time::Nanos;
use crate::world::World;
use std::rc::Rc;

/// The target per instance in force: the scenario's, else the trigger's own (`batch_size`
/// for storage queues, `maxConcurrentCalls` = `concurrency` for Service Bus).
pub fn target_per_instance(world: &World) -> u32 {
    let c = &world.scenario.consumer;
    world.scenario.hosting.scaling.target_per_instance.unwrap_or(match world.queue.spec().kind {
        QueueKind::StorageQueue => c.batch_size,
        QueueKind::ServiceBus => c.concurrency,
    })
}

/// The scaler process.
pub async fn autoscale(world: Rc<World>) {
    let h = &world.scenario.hosting;
    let s = &h.scaling;
    let target = u64::from(target_per_instance(&world).max(1));
    let mut last_out: Option<Nanos> = None;
    let mut over_since: Option<Nanos> = None;
    let mut warm_ready_at: Vec<Nanos> = vec![0; s.prewarmed as usize];
    loop {
        world.sim.sleep(s.polling_interval).await;
        let now = world.sim.now_ns();
        let length = world.queue.held();
        let desired = (length.div_ceil(target) as u32).clamp(s.min_instances, s.max_instances);
        let current = world.host.active();
        if h.plan == Plan::AcaJob {
            for _ in 0..desired.saturating_sub(current) {
                let cold = s.cold_start.sample(&mut world.scaler_rng.borrow_mut());
                world.host.add(Some(cold), true);
            }
            continue;
        }
        if desired > current {
            over_since = None;
            if last_out.is_none_or(|t| now - t >= s.scale_out_step) {
                last_out = Some(now);
                let cold = s.cold_start.sample(&mut world.scaler_rng.borrow_mut());
                let warm = warm_ready_at.iter_mut().find(|t| **t <= now);
                match warm {
                    Some(ready) if h.plan == Plan::FunctionsPremium => {
                        *ready = now + cold; // the buffer refills behind it
                        world.host.add(None, false);
                    }
                    _ => world.host.add(Some(cold), false),
                }
            }
        } else if desired < current {
            let since = *over_since.get_or_insert(now);
            if now - since >= s.cooldown {
                world.host.drain(current - desired);
                over_since = None;
            }
        } else {
            over_since = None;
        }
    }
}
