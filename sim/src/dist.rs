//! Distributions of durations, as scenario files write them.
//!
//! `const(1s)`, `uniform(1s, 3s)`, `exp(mean=50ms)`, `normal(mean=1s, sd=100ms)`,
//! `lognormal(mean=200ms, p99=2s)`, `pareto(scale=10ms, shape=2.5)`, `empirical("file.csv")`.
//! Samples are non-negative nanoseconds. Sampling uses inverse transforms with `libm`, so the
//! same stream gives the same bits on every platform.

use crate::rng::Rng;
use crate::time::Nanos;
use std::fmt;

/// The standard normal quantile at 0.99, used to fit a log-normal from its mean and p99.
const Z99: f64 = 2.326_347_874_040_840_8;

/// A distribution of durations (in nanoseconds).
#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    /// Always the same value.
    Const(Nanos),
    /// Uniform between `lo` and `hi` (inclusive of `lo`).
    Uniform {
        /// Lower bound.
        lo: Nanos,
        /// Upper bound.
        hi: Nanos,
    },
    /// Exponential with the given mean.
    Exp {
        /// The mean.
        mean: Nanos,
    },
    /// Normal, truncated at zero (negative draws are redrawn).
    Normal {
        /// The mean.
        mean: Nanos,
        /// The standard deviation.
        sd: Nanos,
    },
    /// Log-normal given by its mean and 99th percentile; `mu`/`sigma` are the parameters of
    /// the underlying normal (in log-nanoseconds).
    LogNormal {
        /// The mean.
        mean: Nanos,
        /// The 99th percentile.
        p99: Nanos,
        /// Mean of the underlying normal (log-nanoseconds).
        mu: f64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
    /// Pareto (type I) with minimum `scale` and tail index `shape` (> 0).
    Pareto {
        /// The minimum value.
        scale: Nanos,
        /// The tail index.
        shape: f64,
    },
    /// Resampling of observed values, with the file they came from (for display).
    Empirical {
        /// The file the values came from.
        source: String,
        /// The observed values.
        values: Vec<Nanos>,
    },
}

/// Why a distribution's parameters were rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DistError {
    /// `uniform(lo, hi)` with `hi < lo`. Swap them.
    #[error("uniform: the upper bound must not be below the lower bound")]
    UniformBounds,
    /// `exp`, `lognormal` or `pareto` with a zero scale. Give a positive mean/scale.
    #[error("{0}: the mean/scale must be positive")]
    NonPositive(&'static str),
    /// `lognormal` whose p99 is not above its mean, or too far above it for any log-normal.
    #[error(
        "lognormal: p99 must be above the mean and at most about 15 times it \
         (a log-normal with mean {mean} cannot have p99 {p99})"
    )]
    LogNormalShape {
        /// The mean.
        mean: String,
        /// The 99th percentile.
        p99: String,
    },
    /// `pareto` with a non-positive shape.
    #[error("pareto: shape must be a positive number")]
    ParetoShape,
    /// `empirical` with no values.
    #[error("empirical: the file holds no values")]
    EmptyEmpirical,
}

impl Dist {
    /// A log-normal with the given mean and 99th percentile.
    ///
    /// For mean m and p99 q: `ln q - ln m = z·σ - σ²/2`, solved for the smaller root
    /// `σ = z - sqrt(z² - 2 ln(q/m))`, and `μ = ln m - σ²/2`.
    pub fn lognormal(mean: Nanos, p99: Nanos) -> Result<Dist, DistError> {
        if mean == 0 {
            return Err(DistError::NonPositive("lognormal"));
        }
        let r = libm::log(p99 as f64 / mean as f64);
        let disc = Z99 * Z99 - 2.0 * r;
        if p99 <= mean || disc < 0.0 {
            return Err(DistError::LogNormalShape {
                mean: crate::time::format_duration(mean),
                p99: crate::time::format_duration(p99),
            });
        }
        let sigma = Z99 - libm::sqrt(disc);
        let mu = libm::log(mean as f64) - sigma * sigma / 2.0;
        Ok(Dist::LogNormal { mean, p99, mu, sigma })
    }

    /// Checks the parameters of a distribution built directly.
    pub fn validate(&self) -> Result<(), DistError> {
        match self {
            Dist::Uniform { lo, hi } if hi < lo => Err(DistError::UniformBounds),
            Dist::Exp { mean: 0 } => Err(DistError::NonPositive("exp")),
            Dist::Pareto { scale: 0, .. } => Err(DistError::NonPositive("pareto")),
            Dist::Pareto { shape, .. } if !(*shape > 0.0 && shape.is_finite()) => {
                Err(DistError::ParetoShape)
            }
            Dist::Empirical { values, .. } if values.is_empty() => Err(DistError::EmptyEmpirical),
            _ => Ok(()),
        }
    }

    /// The distribution's mean in nanoseconds (infinite for a Pareto with shape <= 1).
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Const(v) => *v as f64,
            Dist::Uniform { lo, hi } => (*lo as f64 + *hi as f64) / 2.0,
            Dist::Exp { mean } | Dist::Normal { mean, .. } | Dist::LogNormal { mean, .. } => {
                *mean as f64
            }
            Dist::Pareto { scale, shape } => {
                if *shape <= 1.0 {
                    f64::INFINITY
                } else {
                    shape * *scale as f64 / (shape - 1.0)
                }
            }
            Dist::Empirical { values, .. } => {
                values.iter().map(|v| *v as f64).sum::<f64>() / values.len() as f64
            }
        }
    }

    /// Draws one duration.
    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> Nanos {
        match self {
            Dist::Const(v) => *v,
            Dist::Exp { mean } => to_nanos(-libm::log(rng.unit_open0()) * *mean as f64),
            Dist::Uniform { lo, hi } => lo + rng.below(hi - lo + 1),
            Dist::Normal { mean, sd } => loop {
                let x = *mean as f64 + *sd as f64 * std_normal(rng);
                if x >= 0.0 {
                    break to_nanos(x);
                }
            },
            Dist::LogNormal { mu, sigma, .. } => to_nanos(libm::exp(mu + sigma * std_normal(rng))),
            Dist::Pareto { scale, shape } => {
                to_nanos(*scale as f64 * libm::pow(rng.unit_open0(), -1.0 / shape))
            }
            Dist::Empirical { values, .. } => values[rng.below(values.len() as u64) as usize],
        }
    }
}

#[inline]
fn to_nanos(x: f64) -> Nanos {
    // saturating float -> int cast; rounding to the nearest nanosecond
    (x + 0.5) as Nanos
}

/// A standard normal draw (Box–Muller, one of the pair; simple and portable).
fn std_normal(rng: &mut Rng) -> f64 {
    let u1 = rng.unit_open0();
    let u2 = rng.unit();
    libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2)
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::time::format_duration as d;
        match self {
            Dist::Const(v) => write!(f, "const({})", d(*v)),
            Dist::Uniform { lo, hi } => write!(f, "uniform({}, {})", d(*lo), d(*hi)),
            Dist::Exp { mean } => write!(f, "exp(mean={})", d(*mean)),
            Dist::Normal { mean, sd } => write!(f, "normal(mean={}, sd={})", d(*mean), d(*sd)),
            Dist::LogNormal { mean, p99, .. } => {
                write!(f, "lognormal(mean={}, p99={})", d(*mean), d(*p99))
            }
            Dist::Pareto { scale, shape } => {
                write!(f, "pareto(scale={}, shape={shape})", d(*scale))
            }
            Dist::Empirical { source, .. } => write!(f, "empirical({source:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NS_PER_MS;

    fn mean_of(d: &Dist, n: usize) -> f64 {
        let mut rng = Rng::stream(3, "dist");
        (0..n).map(|_| d.sample(&mut rng) as f64).sum::<f64>() / n as f64
    }

    #[test]
    fn sample_means_match_the_parameters() {
        let n = 200_000;
        for d in [
            Dist::Exp { mean: 50 * NS_PER_MS },
            Dist::Uniform { lo: 10 * NS_PER_MS, hi: 30 * NS_PER_MS },
            Dist::Normal { mean: 100 * NS_PER_MS, sd: 10 * NS_PER_MS },
            Dist::lognormal(200 * NS_PER_MS, 2_000 * NS_PER_MS).unwrap(),
            Dist::Pareto { scale: 10 * NS_PER_MS, shape: 3.0 },
        ] {
            let m = mean_of(&d, n);
            // heavy tails converge slowly: 3% is several standard errors for all of these
            assert!(
                (m / d.mean() - 1.0).abs() < 0.03,
                "{d}: sample mean {m}, expected {}",
                d.mean()
            );
        }
    }

    #[test]
    fn lognormal_p99_is_where_it_was_asked_for() {
        let d = Dist::lognormal(200 * NS_PER_MS, 2_000 * NS_PER_MS).unwrap();
        let mut rng = Rng::stream(5, "ln");
        let mut v: Vec<u64> = (0..200_000).map(|_| d.sample(&mut rng)).collect();
        v.sort_unstable();
        let p99 = v[v.len() * 99 / 100] as f64;
        assert!((p99 / (2_000 * NS_PER_MS) as f64 - 1.0).abs() < 0.05, "p99 {p99}");
    }

    #[test]
    fn impossible_parameters_are_rejected() {
        assert!(Dist::lognormal(NS_PER_MS, NS_PER_MS / 2).is_err());
        assert!(Dist::lognormal(NS_PER_MS, 1_000 * NS_PER_MS).is_err());
        assert!(Dist::Uniform { lo: 5, hi: 1 }.validate().is_err());
        assert!(Dist::Exp { mean: 0 }.validate().is_err());
        assert!(Dist::Pareto { scale: 1, shape: -1.0 }.validate().is_err());
    }
}
