//! The web tier that shares a WebJob's App Service instances (the "noisy neighbour").
//!
//! The web tier and the background handlers share the instances' CPU. Per interval, the
//! background takes `u_bg = handler CPU time / (interval × instances × cpu)`, the web tier
//! `u_web = rate × cpu_per_request / (instances × cpu)`. Under processor sharing, a web
//! request's mean response time is `cpu_per_request / (1 - u_web - u_bg)` (M/G/1-PS); the
//! difference from `u_bg = 0` is what background work adds. At or above full load the
//! response time is reported as 100 times the request's CPU time (saturated).
//!
//! Limitation: handler work is simulated as wall time; oversubscribing the CPU does not slow
//! the handlers themselves (their share is capped at 100 % in the report).

use crate::spec::WebTierSpec;
use crate::time::{NS_PER_S, Nanos};

/// The web tier's response time for one interval, and the CPU share taken by background
/// work. `cpu_work` is the handlers' work in the interval (before `handler_cpu_share`).
pub fn response_time(
    web: &WebTierSpec,
    instances: u32,
    cpu: f64,
    interval: Nanos,
    cpu_work: Nanos,
) -> (Nanos, f64) {
    let capacity = f64::from(instances.max(1)) * cpu;
    let u_web = web.rate_per_s * web.cpu_per_request as f64 / NS_PER_S as f64 / capacity;
    // Demand beyond the instances' CPU is capped at all of it: the model does not slow the
    // handlers down when they oversubscribe the CPU, it only reports the web tier saturated.
    let u_bg = (cpu_work as f64 * web.handler_cpu_share / interval as f64 / capacity).min(1.0);
    (ps_response(web.cpu_per_request, u_web + u_bg), u_bg)
}

/// Mean response time under processor sharing at total utilisation `u`.
pub fn ps_response(cpu_per_request: Nanos, u: f64) -> Nanos {
    let factor = if u >= 0.99 { 100.0 } else { (1.0 / (1.0 - u)).min(100.0) };
    (cpu_per_request as f64 * factor) as Nanos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NS_PER_MS;

    #[test]
    fn background_work_slows_the_web_tier() {
        let web = WebTierSpec {
            rate_per_s: 25.0,
            cpu_per_request: 20 * NS_PER_MS,
            handler_cpu_share: 1.0,
        };
        // 25/s x 20 ms = 0.5 CPU on one core: alone, R = 20 / (1 - 0.5) = 40 ms.
        let (alone, u0) = response_time(&web, 1, 1.0, 10 * NS_PER_S, 0);
        assert_eq!((alone, u0), (40 * NS_PER_MS, 0.0));
        // background takes 3 of 10 s: R = 20 / (1 - 0.8) = 100 ms.
        let (busy, u) = response_time(&web, 1, 1.0, 10 * NS_PER_S, 3 * NS_PER_S);
        assert!((u - 0.3).abs() < 1e-12);
        assert_eq!(busy, 100 * NS_PER_MS);
    }
}
