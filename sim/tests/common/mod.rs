//! The swarm's shared draws: a downstream service and a fault schedule drawn from a seed's
//! stream (kinds, times, sizes and counts), for the many-seed tests of every pattern.

#![allow(dead_code)] // each test file uses its own share of these

use sim::dist::Dist;
use sim::rng::Rng;
use sim::spec::{FaultKind, FaultSpec, OverLimit, ServiceSpec};
use sim::time::{NS_PER_MS, NS_PER_S, Nanos};

/// A service `api` might be: latency, errors, a timeout, sometimes a concurrency limit.
pub fn swarm_service(r: &mut Rng) -> ServiceSpec {
    ServiceSpec {
        latency: Dist::Exp { mean: (5 + r.below(50)) * NS_PER_MS },
        error_rate: r.below(20) as f64 / 100.0,
        timeout: Some(2 * NS_PER_S),
        max_concurrency: r.chance(0.3).then(|| 1 + r.below(8) as u32),
        over_limit: if r.chance(0.5) {
            OverLimit::Wait
        } else {
            OverLimit::Reject { retry_after: r.chance(0.5).then_some(NS_PER_S) }
        },
    }
}

/// Up to three faults in `[0, duration)`: outages and error bursts on `api`, crashes of the
/// consumer (most come back).
pub fn swarm_faults(r: &mut Rng, duration: Nanos) -> Vec<FaultSpec> {
    let mut faults = Vec::new();
    for _ in 0..r.below(4) {
        let at = r.below(duration);
        let length = (10 + r.below(60)) * NS_PER_S;
        let kind = match r.below(3) {
            0 => FaultKind::Outage { from: at, to: at + length },
            1 => FaultKind::Crash {
                at,
                instances: 1 + r.below(3) as u32,
                restart_after: r.chance(0.8).then_some(length),
            },
            _ => FaultKind::ErrorRate { from: at, to: at + length, error_rate: 0.5 },
        };
        let target = if matches!(kind, FaultKind::Crash { .. }) { "consumer" } else { "api" };
        faults.push(FaultSpec { target: target.into(), kind });
    }
    faults
}

/// Up to two crashes or graceful restarts of the pattern's own processes (`processes`), at
/// random times in `[0, duration)`; most come back. Draws nothing when there are none, so
/// the swarms of patterns without processes stay as they were.
pub fn swarm_process_faults(r: &mut Rng, duration: Nanos, processes: &[&str]) -> Vec<FaultSpec> {
    let mut faults = Vec::new();
    if processes.is_empty() {
        return faults;
    }
    for _ in 0..r.below(3) {
        let target = processes[r.below(processes.len() as u64) as usize];
        let at = r.below(duration);
        let down = (1 + r.below(60)) * NS_PER_S;
        let kind = if r.chance(0.3) {
            FaultKind::Restart { at, grace: r.below(30) * NS_PER_S, restart_after: down }
        } else {
            FaultKind::Crash { at, instances: 1, restart_after: r.chance(0.9).then_some(down) }
        };
        faults.push(FaultSpec { target: target.into(), kind });
    }
    faults
}
