//! The workload: when messages arrive, and of which class.
//!
//! Poisson arrivals with piecewise-constant rates are exact: at a phase boundary the
//! process restarts with the new rate (memorylessness makes that correct).

use crate::rng::Rng;
use crate::spec::{Arrivals, WorkloadSpec};
use crate::time::{NS_PER_S, Nanos};

/// The arrival process of one run.
pub struct Workload {
    spec: WorkloadSpec,
    duration: Nanos,
    rng: Rng,
    cumulative: Vec<f64>,
    next_constant: Nanos,
    trace_pos: usize,
    last: Nanos,
}

impl Workload {
    /// Arrivals in `[0, duration)` drawn from the `workload` stream of `seed`.
    pub fn new(spec: &WorkloadSpec, duration: Nanos, seed: u64) -> Workload {
        let total: f64 = spec.classes.iter().map(|(_, w)| w).sum();
        let mut acc = 0.0;
        let cumulative = spec
            .classes
            .iter()
            .map(|(_, w)| {
                acc += w / total;
                acc
            })
            .collect();
        Workload {
            spec: spec.clone(),
            duration,
            rng: Rng::stream(seed, "workload"),
            cumulative,
            next_constant: 0,
            trace_pos: 0,
            last: 0,
        }
    }

    /// The index of the class named `name`, if the workload has it.
    pub fn class_index(&self, name: &str) -> Option<u8> {
        self.spec.classes.iter().position(|(n, _)| n == name).map(|i| i as u8)
    }

    /// The time of the next arrival, or `None` once the workload has ended.
    pub fn next_arrival(&mut self) -> Option<Nanos> {
        let t = match &self.spec.arrivals {
            Arrivals::Trace { times, .. } => {
                let t = *times.get(self.trace_pos)?;
                self.trace_pos += 1;
                t
            }
            Arrivals::Constant => self.next_constant()?,
            Arrivals::Poisson => self.next_poisson()?,
        };
        self.last = t;
        (t < self.duration).then_some(t)
    }

    fn next_constant(&mut self) -> Option<Nanos> {
        let mut t = self.next_constant;
        loop {
            if t >= self.duration {
                return None;
            }
            let rate = self.spec.rate_at(t);
            if rate > 0.0 {
                self.next_constant = t + (NS_PER_S as f64 / rate).round().max(1.0) as Nanos;
                return Some(t);
            }
            t = self.boundary_after(t);
        }
    }

    fn next_poisson(&mut self) -> Option<Nanos> {
        let mut t = self.last;
        if self.spec.phases.is_empty() && self.spec.rate_per_s > 0.0 {
            // one rate for the whole run: no boundaries to look for
            let gap = -libm::log(self.rng.unit_open0()) * NS_PER_S as f64 / self.spec.rate_per_s;
            let next = t as f64 + gap;
            return (next < self.duration as f64).then_some(next as Nanos);
        }
        loop {
            if t >= self.duration {
                return None;
            }
            let rate = self.spec.rate_at(t);
            let boundary = self.boundary_after(t);
            if rate > 0.0 {
                let gap = -libm::log(self.rng.unit_open0()) * NS_PER_S as f64 / rate;
                let next = t as f64 + gap;
                if next < boundary as f64 {
                    return Some(next as Nanos);
                }
            }
            t = boundary;
        }
    }

    /// The next time after `t` at which the rate may change.
    fn boundary_after(&self, t: Nanos) -> Nanos {
        self.spec
            .phases
            .iter()
            .flat_map(|p| [p.from, p.to])
            .filter(|&b| b > t)
            .min()
            .unwrap_or(self.duration)
            .min(self.duration)
    }

    /// Draws the class of the next message.
    pub fn class(&mut self) -> u8 {
        if self.cumulative.len() <= 1 {
            return 0;
        }
        let u = self.rng.unit();
        self.cumulative.iter().position(|&c| u < c).unwrap_or(self.cumulative.len() - 1) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Phase;

    #[test]
    fn poisson_rate_follows_phases() {
        let spec = WorkloadSpec {
            arrivals: Arrivals::Poisson,
            rate_per_s: 100.0,
            phases: vec![Phase { from: 100 * NS_PER_S, to: 200 * NS_PER_S, rate_per_s: 1000.0 }],
            classes: vec![("normal".into(), 1.0)],
            class_work: Vec::new(),
        };
        let mut w = Workload::new(&spec, 300 * NS_PER_S, 1);
        let mut counts = [0u64; 3];
        while let Some(t) = w.next_arrival() {
            counts[(t / (100 * NS_PER_S)) as usize] += 1;
        }
        // 10k, 100k, 10k expected; 4 sigma bands
        assert!((9_600..10_400).contains(&counts[0]), "{counts:?}");
        assert!((98_700..101_300).contains(&counts[1]), "{counts:?}");
        assert!((9_600..10_400).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn constant_is_evenly_spaced() {
        let spec =
            WorkloadSpec { arrivals: Arrivals::Constant, rate_per_s: 4.0, ..Default::default() };
        let mut w = Workload::new(&spec, NS_PER_S, 1);
        let times: Vec<Nanos> = std::iter::from_fn(|| w.next_arrival()).collect();
        assert_eq!(times, [0, 250_000_000, 500_000_000, 750_000_000]);
    }

    #[test]
    fn classes_follow_weights() {
        let spec = WorkloadSpec {
            classes: vec![("normal".into(), 0.9), ("poison".into(), 0.1)],
            ..Default::default()
        };
        let mut w = Workload::new(&spec, NS_PER_S, 1);
        let poison = (0..100_000).filter(|_| w.class() == 1).count();
        assert!((9_600..10_400).contains(&poison), "{poison}");
        assert_eq!(w.class_index("poison"), Some(1));
    }
}
