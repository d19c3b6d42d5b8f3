//! Retry delays: Polly v8's constant, linear and exponential backoff (with its jitter
//! variants) and AWS's decorrelated jitter. Sources in `docs/sources.md`.

use crate::rng::Rng;
use crate::spec::{Backoff, RetrySpec};
use crate::time::Nanos;

/// The delay state of one retried operation (one job, one in-process call).
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryState {
    /// Retries made so far.
    pub retries: u32,
    /// DecorrelatedJitterBackoffV2's running `prev`, or AWS's previous sleep (ns).
    prev: f64,
}

impl RetryState {
    /// Whether another attempt is allowed after `attempts` attempts in all.
    pub fn may_retry(spec: &RetrySpec, attempts: u32) -> bool {
        spec.max_attempts == 0 || attempts < spec.max_attempts
    }

    /// The delay before the next retry, advancing the state.
    pub fn next_delay(&mut self, spec: &RetrySpec, rng: &mut Rng) -> Nanos {
        let attempt = self.retries; // 0 for the first retry, as in Polly
        self.retries += 1;
        let base = spec.base as f64;
        let cap = spec.max_delay as f64;
        let delay = match (spec.backoff, spec.jitter) {
            (Backoff::Constant, false) => base,
            (Backoff::Linear, false) => (f64::from(attempt) + 1.0) * base,
            (Backoff::Exponential, false) => libm::pow(2.0, f64::from(attempt)) * base,
            (Backoff::Constant | Backoff::Linear, true) => {
                let d = if spec.backoff == Backoff::Constant {
                    base
                } else {
                    (f64::from(attempt) + 1.0) * base
                };
                // Polly: delay + U(-25 %, +25 %) of delay
                d + (rng.unit() - 0.5) * 0.5 * d
            }
            (Backoff::Exponential, true) => {
                // Polly DecorrelatedJitterBackoffV2
                const P_FACTOR: f64 = 4.0;
                const RP_SCALING: f64 = 1.0 / 1.4;
                let t = f64::from(attempt) + rng.unit();
                let next = libm::pow(2.0, t) * libm::tanh(libm::sqrt(P_FACTOR * t));
                let d = (next - self.prev) * RP_SCALING * base;
                self.prev = next;
                d
            }
            (Backoff::DecorrelatedJitter, _) => {
                // AWS: sleep = min(cap, U(base, 3 * prev)), prev starting at base
                let prev = if self.prev == 0.0 { base } else { self.prev };
                let hi = 3.0 * prev;
                let d = (base + rng.unit() * (hi - base)).min(cap);
                self.prev = d;
                d
            }
        };
        if !delay.is_finite() || delay >= cap { spec.max_delay } else { delay.max(0.0) as Nanos }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{NS_PER_MIN, NS_PER_S};

    fn spec(backoff: Backoff, jitter: bool) -> RetrySpec {
        RetrySpec {
            backoff,
            base: 2 * NS_PER_S,
            max_delay: 5 * NS_PER_MIN,
            max_attempts: 0,
            jitter,
        }
    }

    #[test]
    fn exponential_doubles_then_caps() {
        let s = spec(Backoff::Exponential, false);
        let mut st = RetryState::default();
        let mut rng = Rng::stream(1, "r");
        let d: Vec<u64> = (0..11).map(|_| st.next_delay(&s, &mut rng) / NS_PER_S).collect();
        assert_eq!(d, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    #[test]
    fn constant_and_linear() {
        let mut rng = Rng::stream(1, "r");
        let mut st = RetryState::default();
        let c: Vec<u64> = (0..3)
            .map(|_| st.next_delay(&spec(Backoff::Constant, false), &mut rng) / NS_PER_S)
            .collect();
        assert_eq!(c, [2, 2, 2]);
        let mut st = RetryState::default();
        let l: Vec<u64> = (0..3)
            .map(|_| st.next_delay(&spec(Backoff::Linear, false), &mut rng) / NS_PER_S)
            .collect();
        assert_eq!(l, [2, 4, 6]);
    }

    #[test]
    fn jittered_delays_stay_in_their_bands() {
        let mut rng = Rng::stream(9, "r");
        let s = spec(Backoff::Constant, true);
        let mut st = RetryState::default();
        for _ in 0..1000 {
            let d = st.next_delay(&s, &mut rng) as f64 / NS_PER_S as f64;
            assert!((1.5..=2.5).contains(&d), "{d}");
        }
        let s = spec(Backoff::DecorrelatedJitter, true);
        let mut st = RetryState::default();
        for _ in 0..1000 {
            let d = st.next_delay(&s, &mut rng);
            assert!(d >= s.base && d <= s.max_delay);
        }
    }

    #[test]
    fn polly_decorrelated_v2_medians_grow_geometrically() {
        // With t = attempt + U(0,1) and next = 2^t tanh(sqrt(4t)), the k-th delay is about
        // 2^(k-1/2) - 2^(k-3/2) scaled by 1/1.4: the first median is about `base` and, after
        // the second, each median is about twice the one before.
        let s = RetrySpec { max_delay: 10_000 * NS_PER_S, ..spec(Backoff::Exponential, true) };
        let mut rng = Rng::stream(4, "r");
        let mut delays = vec![Vec::new(); 6];
        for _ in 0..20_000 {
            let mut st = RetryState::default();
            for d in delays.iter_mut() {
                d.push(st.next_delay(&s, &mut rng) as f64 / s.base as f64);
            }
        }
        let medians: Vec<f64> = delays
            .iter_mut()
            .map(|d| {
                d.sort_by(f64::total_cmp);
                d[d.len() / 2]
            })
            .collect();
        assert!((0.8..1.2).contains(&medians[0]), "{medians:?}");
        for k in 3..6 {
            let ratio = medians[k] / medians[k - 1];
            assert!((1.7..2.3).contains(&ratio), "{medians:?}");
        }
    }
}
