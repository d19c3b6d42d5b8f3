//! Simulated time: integer nanoseconds since the start of a run.
//!
//! sluice never reads the wall clock. Everything a result can see is measured on this
//! clock, which only the engine advances.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A span of simulated time in nanoseconds.
pub type Nanos = u64;

/// Nanoseconds in one microsecond, millisecond, second, minute, hour and day.
pub const NS_PER_US: Nanos = 1_000;
/// Nanoseconds in one millisecond.
pub const NS_PER_MS: Nanos = 1_000_000;
/// Nanoseconds in one second.
pub const NS_PER_S: Nanos = 1_000_000_000;
/// Nanoseconds in one minute.
pub const NS_PER_MIN: Nanos = 60 * NS_PER_S;
/// Nanoseconds in one hour.
pub const NS_PER_H: Nanos = 60 * NS_PER_MIN;
/// Nanoseconds in one day.
pub const NS_PER_DAY: Nanos = 24 * NS_PER_H;

/// A point on the simulated clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub Nanos);

impl SimTime {
    /// The start of every run.
    pub const EPOCH: SimTime = SimTime(0);
    /// Later than any event a run can schedule.
    pub const NEVER: SimTime = SimTime(u64::MAX);

    /// Nanoseconds since [`SimTime::EPOCH`].
    #[inline]
    pub fn as_nanos(self) -> Nanos {
        self.0
    }

    /// Seconds since [`SimTime::EPOCH`], for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }

    /// `self - earlier`, or zero if `earlier` is later.
    #[inline]
    pub fn since(self, earlier: SimTime) -> Nanos {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Nanos> for SimTime {
    type Output = SimTime;
    #[inline]
    fn add(self, rhs: Nanos) -> SimTime {
        SimTime(self.0.saturating_add(rhs))
    }
}

impl AddAssign<Nanos> for SimTime {
    #[inline]
    fn add_assign(&mut self, rhs: Nanos) {
        self.0 = self.0.saturating_add(rhs);
    }
}

impl Sub for SimTime {
    type Output = Nanos;
    #[inline]
    fn sub(self, rhs: SimTime) -> Nanos {
        self.0.saturating_sub(rhs.0)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_duration(self.0))
    }
}

/// Formats a duration the way scenario files write them: `250ms`, `30s`, `5m`, `2h`, `1h30m`.
pub fn format_duration(ns: Nanos) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    if !ns.is_multiple_of(NS_PER_S) {
        if ns.is_multiple_of(NS_PER_MS) {
            return format!("{}ms", ns / NS_PER_MS);
        }
        if ns.is_multiple_of(NS_PER_US) {
            return format!("{}us", ns / NS_PER_US);
        }
        return format!("{ns}ns");
    }
    let mut s = String::new();
    let mut rest = ns / NS_PER_S;
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= secs {
            s.push_str(&format!("{}{unit}", rest / secs));
            rest %= secs;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_scenario_units() {
        assert_eq!(format_duration(250 * NS_PER_MS), "250ms");
        assert_eq!(format_duration(90 * NS_PER_S), "1m30s");
        assert_eq!(format_duration(2 * NS_PER_H), "2h");
        assert_eq!(format_duration(7 * NS_PER_DAY), "7d");
        assert_eq!(format_duration(1500), "1500ns");
    }
}
