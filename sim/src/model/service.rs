//! Downstream services: latency, errors, timeouts, the fault windows that hit them, and
//! their capacity.
//!
//! A service with `max_concurrency` takes at most that many calls at once (a database's
//! connection pool, a partner's concurrency quota). A call beyond it either waits, first come
//! first served, for a call in progress to end (`over_limit = "wait"`: the service's own queue,
//! so latency grows with load), or fails at once as throttled, HTTP 429
//! (`over_limit = "reject"`), optionally with a `Retry-After` that an in-process retry
//! honours. Scaling consumers out past a service's capacity then floods the service instead
//! of speeding anything up.

use crate::engine::{Sim, WaitList};
use crate::results::ServiceStats;
use crate::rng::Rng;
use crate::spec::{FaultKind, FaultSpec, OverLimit, ServiceSpec};
use crate::time::{NS_PER_MS, Nanos};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// How long a call takes to fail during an outage: the service answers at once with an
/// error (like a 503 from a load balancer with no healthy backend).
pub const OUTAGE_FAILURE_LATENCY: Nanos = NS_PER_MS;

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The service answered with an error.
    Failed,
    /// The call took longer than the service's timeout.
    Timeout,
    /// The service was at its `max_concurrency` and refused the call (HTTP 429).
    Throttled {
        /// The service's `Retry-After`, if it sends one.
        retry_after: Option<Nanos>,
    },
}

struct Service {
    spec: ServiceSpec,
    rng: Rng,
    faults: Vec<FaultKind>,
    stats: ServiceStats,
    in_progress: u32,
    waiting: u64,
}

/// All downstream services of a run, addressed by index (in name order).
pub struct Services {
    names: Vec<String>,
    inner: RefCell<Vec<Service>>,
    /// Per service: calls waiting for a free slot (`over_limit = "wait"`).
    freed: Vec<WaitList>,
}

impl Services {
    /// The services of a scenario, each with its own random stream and its fault windows.
    pub fn new(seed: u64, specs: &BTreeMap<String, ServiceSpec>, faults: &[FaultSpec]) -> Services {
        let names: Vec<String> = specs.keys().cloned().collect();
        let inner = specs
            .iter()
            .map(|(name, spec)| Service {
                spec: spec.clone(),
                rng: Rng::stream(seed, &format!("services.{name}")),
                faults: faults
                    .iter()
                    .filter(|f| &f.target == name && !matches!(f.kind, FaultKind::Crash { .. }))
                    .map(|f| f.kind.clone())
                    .collect(),
                stats: ServiceStats::default(),
                in_progress: 0,
                waiting: 0,
            })
            .collect();
        let freed = names.iter().map(|_| WaitList::new()).collect();
        Services { names, inner: RefCell::new(inner), freed }
    }

    /// The index of a service by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Whether service `idx` is in one of its outage windows at `at` (its calls then fail
    /// at once, like a 503 from a load balancer with no healthy backend).
    pub fn in_outage(&self, idx: usize, at: Nanos) -> bool {
        self.inner.borrow()[idx]
            .faults
            .iter()
            .any(|f| matches!(*f, FaultKind::Outage { from, to } if from <= at && at < to))
    }

    /// Decides how a call starting now will go: how long it takes and whether it fails.
    fn plan(&self, idx: usize, now: Nanos) -> (Nanos, Result<(), CallError>) {
        let mut all = self.inner.borrow_mut();
        let s = &mut all[idx];
        s.stats.calls += 1;
        let mut latency = s.spec.latency.sample(&mut s.rng);
        let mut error_rate = s.spec.error_rate;
        let mut outage = false;
        for f in &s.faults {
            match *f {
                FaultKind::Outage { from, to } if from <= now && now < to => outage = true,
                FaultKind::Latency { from, to, add } if from <= now && now < to => latency += add,
                FaultKind::ErrorRate { from, to, error_rate: e } if from <= now && now < to => {
                    error_rate = e
                }
                _ => {}
            }
        }
        // Draw the error even in an outage, so a fault never shifts the stream.
        let failed = s.rng.chance(error_rate);
        let outcome = if outage {
            s.stats.errors += 1;
            return (OUTAGE_FAILURE_LATENCY.min(latency), Err(CallError::Failed));
        } else if s.spec.timeout.is_some_and(|t| latency > t) {
            latency = s.spec.timeout.expect("checked");
            s.stats.timeouts += 1;
            Err(CallError::Timeout)
        } else if failed {
            Err(CallError::Failed)
        } else {
            Ok(())
        };
        if outcome.is_err() {
            s.stats.errors += 1;
        }
        (latency, outcome)
    }

    /// Calls service `idx` and waits for its answer (and, at the service's capacity, for a
    /// free slot first, or is refused).
    pub async fn call(&self, sim: &Sim, idx: usize) -> Result<(), CallError> {
        let limit = self.inner.borrow()[idx].spec.max_concurrency;
        let _slot = match limit {
            None => None,
            Some(max) => Some(self.acquire(sim, idx, max).await?),
        };
        let (latency, outcome) = self.plan(idx, sim.now_ns());
        sim.sleep(latency).await;
        outcome
    }

    /// Takes one of service `idx`'s `max` slots: waits for one, or is refused, as the
    /// service's `over_limit` says. The slot is given back when the guard drops (also when
    /// the caller is aborted by a crash).
    async fn acquire<'a>(
        &'a self,
        sim: &'a Sim,
        idx: usize,
        max: u32,
    ) -> Result<SlotGuard<'a>, CallError> {
        let mut queued = false;
        loop {
            let refusal = {
                let mut all = self.inner.borrow_mut();
                let s = &mut all[idx];
                if s.in_progress < max {
                    s.in_progress += 1;
                    if queued {
                        s.waiting -= 1;
                    }
                    return Ok(SlotGuard { services: self, sim, idx });
                }
                match s.spec.over_limit {
                    OverLimit::Reject { retry_after } => {
                        s.stats.calls += 1;
                        s.stats.errors += 1;
                        s.stats.throttled += 1;
                        Some(retry_after)
                    }
                    OverLimit::Wait => {
                        if !queued {
                            queued = true;
                            s.waiting += 1;
                            s.stats.queued += 1;
                            s.stats.waiting_peak = s.stats.waiting_peak.max(s.waiting);
                        }
                        None
                    }
                }
            };
            if let Some(retry_after) = refusal {
                return Err(CallError::Throttled { retry_after });
            }
            let guard = WaitGuard { services: self, idx, armed: true };
            self.freed[idx].wait(sim).await;
            std::mem::forget(guard); // woken normally: it counts itself out above
        }
    }

    fn release(&self, sim: &Sim, idx: usize) {
        self.inner.borrow_mut()[idx].in_progress -= 1;
        self.freed[idx].notify_one_live(sim);
    }

    /// Call statistics by service name.
    pub fn stats(&self) -> BTreeMap<String, ServiceStats> {
        self.names.iter().cloned().zip(self.inner.borrow().iter().map(|s| s.stats)).collect()
    }
}

/// A slot of a service with a concurrency limit, held for one call.
struct SlotGuard<'a> {
    services: &'a Services,
    sim: &'a Sim,
    idx: usize,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.services.release(self.sim, self.idx);
    }
}

/// A call waiting for a slot; if the caller is aborted while it waits, it stops counting as
/// waiting.
struct WaitGuard<'a> {
    services: &'a Services,
    idx: usize,
    armed: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.services.inner.borrow_mut()[self.idx].waiting -= 1;
        }
    }
}

/// The calls a handler makes: an ordered list of services, each call retried in process as
/// `[retry]` says (Polly's retry strategy around the call). One per consumer pool.
pub struct Downstream {
    sim: Sim,
    services: std::rc::Rc<Services>,
    calls: Vec<usize>,
    retry: Option<crate::spec::RetrySpec>,
    rng: RefCell<Rng>,
}

impl Downstream {
    /// Calls to `calls` (service names, checked by the loader) on `services`, retried as
    /// `retry` says (`None`: no retries); backoff jitter draws from stream `stream`.
    ///
    /// # Panics
    /// If a name in `calls` is not a service: the loader rejects such scenarios.
    pub fn new(
        sim: Sim,
        services: std::rc::Rc<Services>,
        calls: &[String],
        retry: Option<crate::spec::RetrySpec>,
        rng: Rng,
    ) -> Downstream {
        let calls = calls
            .iter()
            .map(|c| services.index(c).expect("the loader checked that called services exist"))
            .collect();
        Downstream { sim, services, calls, retry, rng: RefCell::new(rng) }
    }

    /// Calls service `idx`, retrying in process as `[retry]` says.
    pub async fn call_with_retry(&self, idx: usize) -> Result<(), CallError> {
        let mut attempts = 0;
        let mut state = crate::model::retry::RetryState::default();
        loop {
            attempts += 1;
            let outcome = self.services.call(&self.sim, idx).await;
            let Some(spec) = &self.retry else {
                return outcome;
            };
            if outcome.is_ok() || !crate::model::retry::RetryState::may_retry(spec, attempts) {
                return outcome;
            }
            let mut delay = state.next_delay(spec, &mut self.rng.borrow_mut());
            if let Err(CallError::Throttled { retry_after: Some(after) }) = outcome {
                delay = delay.max(after); // Polly honours Retry-After when told to
            }
            self.sim.sleep(delay).await;
        }
    }

    /// Calls every service in order, each retried in process; stops at the first failure.
    pub async fn call_all(&self) -> Result<(), CallError> {
        for &idx in &self.calls {
            self.call_with_retry(idx).await?;
        }
        Ok(())
    }

    /// Calls every service once, in order; stops at the first failure.
    pub async fn call_all_once(&self) -> Result<(), CallError> {
        for &idx in &self.calls {
            self.services.call(&self.sim, idx).await?;
        }
        Ok(())
    }
}
