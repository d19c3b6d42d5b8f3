//! The GPU of a GPU worker: how long a batch takes, how much memory it needs, and which GPU
//! kinds there are.
//!
//! * [`BatchLatency`]: the time one batch of `n` items takes on the GPU, either a straight
//!   line (`linear(base=20ms, per_item=2ms)`: a fixed launch/transfer cost plus a cost per
//!   item) or a measured table (`table(1=9ms, 8=14ms, 32=31ms)`, from a profile file written
//!   by `sluice calibrate gpu`), interpolated linearly between the measured batch sizes and
//!   extended along the last segment beyond them.
//! * [`GpuMemory`]: the GPU's memory, the model's own footprint (weights, workspace) and the
//!   memory each item of a batch adds (activations). A batch that does not fit fails with
//!   out-of-memory; [`GpuMemory::max_batch`] is the largest batch that fits.
//! * [`KINDS`]: the GPUs of Azure Container Apps' serverless GPU workload profiles (NVIDIA
//!   T4 and A100), with their memory.
//!
//! Memory sizes are written `16GB`, `300MB`, `80GiB`: `KB`/`MB`/`GB` and `KiB`/`MiB`/`GiB`
//! are both taken as powers of 1024 (GPU memory is sold in binary units).

use crate::time::{NS_PER_MS, NS_PER_S, NS_PER_US, Nanos, format_duration};

/// A GPU kind of the Container Apps serverless GPU profiles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuKind {
    /// The name in scenario files (`[gpu] kind`).
    pub name: &'static str,
    /// The rate's name in the pricing file (USD per GPU-second).
    pub rate: &'static str,
    /// The GPU's memory, MB.
    pub memory_mb: f64,
    /// The workload profile that offers it.
    pub profile: &'static str,
}

/// The GPU kinds, in the order the docs list them: NVIDIA T4 (16 GB) in the
/// `Consumption-GPU-NC8as-T4` profile and NVIDIA A100 (80 GB) in `Consumption-GPU-NC24-A100`.
pub const KINDS: [GpuKind; 2] = [
    GpuKind {
        name: "T4",
        rate: "gpu_t4_s_usd",
        memory_mb: 16.0 * 1024.0,
        profile: "Consumption-GPU-NC8as-T4",
    },
    GpuKind {
        name: "A100",
        rate: "gpu_a100_s_usd",
        memory_mb: 80.0 * 1024.0,
        profile: "Consumption-GPU-NC24-A100",
    },
];

/// The GPU kind named `name`.
pub fn kind(name: &str) -> Option<GpuKind> {
    KINDS.iter().find(|k| k.name == name).copied()
}

/// How long a batch takes on the GPU.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchLatency {
    /// `base + n × per_item`.
    Linear {
        /// The fixed cost of a batch (kernel launches, transfers).
        base: Nanos,
        /// The cost of each item.
        per_item: Nanos,
    },
    /// Measured points `(batch size, latency)`, batch sizes increasing; interpolated
    /// linearly between points, flat below the first, along the last segment beyond the
    /// last.
    Table(Vec<(u32, Nanos)>),
}

impl BatchLatency {
    /// The latency of a batch of `n` items.
    pub fn of(&self, n: u32) -> Nanos {
        match self {
            BatchLatency::Linear { base, per_item } => {
                base.saturating_add(per_item.saturating_mul(u64::from(n)))
            }
            BatchLatency::Table(points) => interpolate(points, n),
        }
    }

    /// Parses `linear(base=20ms, per_item=2ms)` or `table(1=9ms, 8=14ms, 32=31ms)`.
    pub fn parse(text: &str) -> Result<BatchLatency, String> {
        let text = text.trim();
        let expected = "expected `linear(base=20ms, per_item=2ms)` or \
                        `table(1=9ms, 8=14ms, 32=31ms)`";
        let (name, args) = text
            .strip_suffix(')')
            .and_then(|t| t.split_once('('))
            .ok_or_else(|| format!("cannot read batch latency {text:?}: {expected}"))?;
        let pairs: Vec<(&str, &str)> = args
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.split_once('=')
                    .map(|(k, v)| (k.trim(), v.trim()))
                    .ok_or_else(|| format!("`{a}` in {text:?}: expected name=value"))
            })
            .collect::<Result<_, _>>()?;
        match name.trim() {
            "linear" => {
                let (mut base, mut per_item) = (None, None);
                for (k, v) in pairs {
                    let d = parse_duration(v).map_err(|e| format!("`{k}` in {text:?}: {e}"))?;
                    match k {
                        "base" => base = Some(d),
                        "per_item" => per_item = Some(d),
                        _ => {
                            return Err(format!(
                                "unknown parameter `{k}` in {text:?}: linear takes base and \
                                 per_item"
                            ));
                        }
                    }
                }
                let missing = |p: &str| format!("{text:?}: linear needs `{p}`");
                Ok(BatchLatency::Linear {
                    base: base.ok_or_else(|| missing("base"))?,
                    per_item: per_item.ok_or_else(|| missing("per_item"))?,
                })
            }
            "table" => {
                let mut points = Vec::new();
                for (k, v) in pairs {
                    let n: u32 = k.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("`{k}` in {text:?}: a batch size must be a whole number >= 1")
                    })?;
                    let d = parse_duration(v).map_err(|e| format!("`{k}` in {text:?}: {e}"))?;
                    points.push((n, d));
                }
                Self::table(points).map_err(|e| format!("{text:?}: {e}"))
            }
            other => Err(format!("unknown batch latency `{other}` in {text:?}: {expected}")),
        }
    }

    /// A table from measured points: batch sizes strictly increasing, at least one point.
    pub fn table(points: Vec<(u32, Nanos)>) -> Result<BatchLatency, String> {
        if points.is_empty() {
            return Err("a table needs at least one point".to_string());
        }
        if let Some(w) = points.windows(2).find(|w| w[1].0 <= w[0].0) {
            return Err(format!("batch sizes must increase: {} comes after {}", w[1].0, w[0].0));
        }
        Ok(BatchLatency::Table(points))
    }

    /// The text form, as [`BatchLatency::parse`] reads it.
    pub fn write(&self) -> String {
        match self {
            BatchLatency::Linear { base, per_item } => format!(
                "linear(base={}, per_item={})",
                format_duration(*base),
                format_duration(*per_item)
            ),
            BatchLatency::Table(points) => {
                let items: Vec<String> =
                    points.iter().map(|(n, d)| format!("{n}={}", format_duration(*d))).collect();
                format!("table({})", items.join(", "))
            }
        }
    }

    /// Reads a profile file's text (see `docs/patterns.md`, "Batch-latency profiles"):
    /// `gpu`, `source`, `measured` and `[[points]]` with `batch` and `latency_ms`.
    pub fn from_profile(text: &str) -> Result<BatchLatency, String> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        for key in doc.keys() {
            if !["gpu", "source", "measured", "kernel", "points"].contains(&key.as_str()) {
                return Err(format!(
                    "unknown key `{key}` (expected gpu, source, measured, kernel, points)"
                ));
            }
        }
        for key in ["gpu", "source"] {
            if !doc.get(key).is_some_and(toml::Value::is_str) {
                return Err(format!("`{key}` must be a string naming where the numbers come from"));
            }
        }
        if !doc.get("measured").is_some_and(toml::Value::is_bool) {
            return Err("`measured` must be true (measured on a GPU) or false".to_string());
        }
        let Some(toml::Value::Array(items)) = doc.get("points") else {
            return Err("missing [[points]] (batch = N, latency_ms = X)".to_string());
        };
        let mut points = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let n = i + 1;
            let t = item.as_table().ok_or_else(|| format!("point {n} is not a table"))?;
            let batch = t
                .get("batch")
                .and_then(toml::Value::as_integer)
                .filter(|b| *b >= 1 && *b <= i64::from(u32::MAX))
                .ok_or_else(|| format!("point {n}: `batch` must be a whole number >= 1"))?;
            let ms = t
                .get("latency_ms")
                .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .ok_or_else(|| format!("point {n}: `latency_ms` must be a number >= 0"))?;
            points.push((batch as u32, (ms * NS_PER_MS as f64).round() as Nanos));
        }
        Self::table(points)
    }
}

fn interpolate(points: &[(u32, Nanos)], n: u32) -> Nanos {
    let (first, last) = (points[0], points[points.len() - 1]);
    if n <= first.0 {
        return first.1;
    }
    let segment = points.windows(2).find(|w| n <= w[1].0);
    let (a, b) = match segment {
        Some(w) => (w[0], w[1]),
        None if points.len() >= 2 => (points[points.len() - 2], last),
        None => return last.1,
    };
    let slope = (b.1 as f64 - a.1 as f64) / f64::from(b.0 - a.0);
    let v = a.1 as f64 + slope * f64::from(n - a.0);
    v.max(0.0).round() as Nanos
}

/// Parses a duration: a number and a unit (`ns`, `us`, `ms`, `s`, `m`, `h`).
pub fn parse_duration(text: &str) -> Result<Nanos, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.trim().parse().map_err(|_| format!("cannot read duration {t:?}"))?;
    let scale = match unit {
        "ns" => 1,
        "us" => NS_PER_US,
        "ms" => NS_PER_MS,
        "s" => NS_PER_S,
        "m" => 60 * NS_PER_S,
        "h" => 3600 * NS_PER_S,
        _ => return Err(format!("duration {t:?} needs a unit: ns, us, ms, s, m or h")),
    };
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("duration {t:?} must be >= 0"));
    }
    Ok((value * scale as f64).round() as Nanos)
}

/// Parses a memory size (`16GB`, `300MB`, `80GiB`) into MB (binary units).
pub fn parse_memory_mb(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.trim().parse().map_err(|_| format!("cannot read size {t:?}"))?;
    let mb = match unit {
        "KB" | "KiB" => value / 1024.0,
        "MB" | "MiB" => value,
        "GB" | "GiB" => value * 1024.0,
        _ => return Err(format!("size {t:?} needs a unit: KB, MB or GB")),
    };
    if !(mb.is_finite() && mb >= 0.0) {
        return Err(format!("size {t:?} must be >= 0"));
    }
    Ok(mb)
}

/// Formats MB the way [`parse_memory_mb`] reads it.
pub fn format_memory_mb(mb: f64) -> String {
    if mb >= 1024.0 && (mb / 1024.0).fract() == 0.0 {
        format!("{}GB", mb / 1024.0)
    } else {
        format!("{mb}MB")
    }
}

/// A GPU's memory and what a batch needs of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuMemory {
    /// The GPU's memory, MB.
    pub total_mb: f64,
    /// The model's own footprint (weights, workspace), MB.
    pub model_mb: f64,
    /// Memory each item of a batch adds (activations), MB.
    pub item_mb: f64,
}

impl GpuMemory {
    /// Whether a batch of `n` items fits.
    pub fn fits(&self, n: u32) -> bool {
        self.model_mb + f64::from(n) * self.item_mb <= self.total_mb
    }

    /// The largest batch that fits (`u32::MAX` when items need no memory; 0 when not even
    /// the model fits).
    pub fn max_batch(&self) -> u32 {
        let free = self.total_mb - self.model_mb;
        if free < 0.0 {
            return 0;
        }
        if self.item_mb <= 0.0 {
            return u32::MAX;
        }
        (free / self.item_mb).floor().min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_latency_is_base_plus_items() {
        let l = BatchLatency::parse("linear(base=20ms, per_item=2ms)").expect("valid");
        assert_eq!(l.of(1), 22 * NS_PER_MS);
        assert_eq!(l.of(32), 84 * NS_PER_MS);
        assert_eq!(BatchLatency::parse(&l.write()).expect("round trip"), l);
    }

    #[test]
    fn a_table_interpolates_and_extends_its_last_segment() {
        let t = BatchLatency::parse("table(1=10ms, 4=16ms, 8=20ms)").expect("valid");
        assert_eq!(t.of(1), 10 * NS_PER_MS);
        assert_eq!(t.of(2), 12 * NS_PER_MS, "between 1 and 4: +2 ms per item");
        assert_eq!(t.of(6), 18 * NS_PER_MS, "between 4 and 8: +1 ms per item");
        assert_eq!(t.of(16), 28 * NS_PER_MS, "beyond 8: along the last segment");
        assert_eq!(BatchLatency::parse(&t.write()).expect("round trip"), t);
        let one = BatchLatency::parse("table(4=7ms)").expect("valid");
        assert_eq!((one.of(1), one.of(100)), (7 * NS_PER_MS, 7 * NS_PER_MS));
    }

    #[test]
    fn bad_latencies_say_what_was_expected() {
        for (text, says) in [
            ("linear(base=20ms)", "needs `per_item`"),
            ("linear(base=20, per_item=2ms)", "needs a unit"),
            ("cubic(a=1ms)", "unknown batch latency `cubic`"),
            ("table(4=7ms, 2=5ms)", "must increase"),
            ("table(0=7ms)", ">= 1"),
            ("20ms", "expected `linear("),
        ] {
            let e = BatchLatency::parse(text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn a_profile_file_reads_into_a_table() {
        let text = "gpu = \"NVIDIA T4\"\nsource = \"test\"\nmeasured = false\n\
                    [[points]]\nbatch = 1\nlatency_ms = 9.5\n\
                    [[points]]\nbatch = 8\nlatency_ms = 16\n";
        let t = BatchLatency::from_profile(text).expect("valid");
        assert_eq!(t, BatchLatency::Table(vec![(1, 9_500_000), (8, 16 * NS_PER_MS)]));
        let e = BatchLatency::from_profile("gpu = \"x\"\nsource = \"y\"\nmeasured = true\n")
            .expect_err("no points");
        assert!(e.contains("[[points]]"), "{e}");
        let e = BatchLatency::from_profile("gpu = \"x\"\nmeasured = true\n").expect_err("source");
        assert!(e.contains("`source`"), "{e}");
    }

    #[test]
    fn memory_decides_the_largest_batch() {
        let m = GpuMemory {
            total_mb: parse_memory_mb("16GB").expect("valid"),
            model_mb: parse_memory_mb("2GB").expect("valid"),
            item_mb: parse_memory_mb("300MB").expect("valid"),
        };
        assert_eq!(m.max_batch(), 47, "(16384 - 2048) / 300 = 47.8");
        assert!(m.fits(47) && !m.fits(48));
        assert_eq!(format_memory_mb(16384.0), "16GB");
        assert_eq!(format_memory_mb(300.0), "300MB");
        assert!(parse_memory_mb("16").is_err());
    }
}
