//! Latency histograms: lossless storage (`.hlog`, base64 inside JSON) and the standard
//! HdrHistogram percentile-distribution text (`.hgrm`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt::Write as _;

/// Percentile ticks per half distance in `.hgrm` exports and spectrum charts (HdrHistogram's
/// customary 5).
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// A latency histogram of nanoseconds. Serializes (serde) as a base64 string of the V2 +
/// deflate encoding that HdrHistogram uses everywhere, so it round-trips exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyHistogram(pub Histogram<u64>);

impl LatencyHistogram {
    /// The V2 + deflate encoding, base64.
    pub fn to_base64(&self) -> String {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut buf)
            .expect("serializing a histogram into memory cannot fail");
        BASE64.encode(buf)
    }

    /// Decodes [`LatencyHistogram::to_base64`]'s output (or any HdrHistogram V2 encoding).
    pub fn from_base64(s: &str) -> Result<LatencyHistogram, String> {
        let bytes = BASE64.decode(s.trim()).map_err(|e| format!("base64: {e}"))?;
        let h = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram encoding: {e:?}"))?;
        Ok(LatencyHistogram(h))
    }

    /// `(quantile, value in ms)` at HdrHistogram's percentile ticks, with the count up to each
    /// point. The last entry has quantile 1 (the maximum).
    pub fn percentiles_ms(&self) -> Vec<PercentilePoint> {
        let mut out = Vec::new();
        if self.0.is_empty() {
            return out;
        }
        let mut total = 0u64;
        for v in self.0.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            out.push(PercentilePoint {
                quantile: v.quantile_iterated_to(),
                value_ms: v.value_iterated_to() as f64 / 1e6,
                total_count: total,
            });
        }
        out
    }
}

/// One row of a percentile distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PercentilePoint {
    /// The quantile iterated to, 0..=1.
    pub quantile: f64,
    /// The value at that quantile (highest equivalent value of its bucket) \[ms\].
    pub value_ms: f64,
    /// Values recorded up to this one.
    pub total_count: u64,
}

impl Serialize for LatencyHistogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LatencyHistogram::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// An HdrHistogram interval log (`.hlog`, the format of Java's `HistogramLogWriter`) holding
/// one interval, `[0, end_s)`, tagged with the histogram's name. Java's `HistogramLogProcessor`
/// and the Rust crate's `IntervalLogIterator` read it.
pub fn to_hlog(name: &str, h: &LatencyHistogram, end_s: f64) -> String {
    let mut s = String::new();
    s.push_str("#[Histogram log format version 1.3]\n");
    let _ = writeln!(s, "#[sluice latency histogram \"{name}\", values in nanoseconds]");
    s.push_str("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",");
    s.push_str("\"Interval_Compressed_Histogram\"\n");
    let tag = tag_of(name);
    let max_ms = h.0.max() as f64 / 1e6;
    let _ = writeln!(s, "Tag={tag},0.000,{end_s:.3},{max_ms:.3},{}", h.to_base64());
    s
}

/// Reads the first interval histogram of an interval log.
pub fn from_hlog(bytes: &[u8]) -> Result<LatencyHistogram, String> {
    for entry in IntervalLogIterator::new(bytes) {
        match entry {
            Ok(LogEntry::Interval(h)) => {
                return LatencyHistogram::from_base64(h.encoded_histogram());
            }
            Ok(_) => {}
            Err(e) => return Err(format!("interval log: {e:?}")),
        }
    }
    Err("no histogram in the interval log".to_string())
}

/// Tags may not contain `,`, spaces or line breaks.
fn tag_of(name: &str) -> String {
    name.chars().map(|c| if c == ',' || c.is_whitespace() { '_' } else { c }).collect()
}

/// The percentile distribution as Java's `outputPercentileDistribution(out, 5, 1e6)` prints it:
/// values in milliseconds with 3 decimals.
pub fn to_hgrm(h: &LatencyHistogram) -> String {
    let hist = &h.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for p in h.percentiles_ms() {
        if p.quantile < 1.0 {
            let inv = 1.0 / (1.0 - p.quantile);
            let _ = writeln!(
                s,
                "{:12.3} {:2.12} {:10} {:14.2}",
                p.value_ms, p.quantile, p.total_count, inv
            );
        } else {
            let _ = writeln!(s, "{:12.3} {:2.12} {:10}", p.value_ms, p.quantile, p.total_count);
        }
    }
    let (mean, sd, max) = if hist.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (hist.mean() / 1e6, hist.stdev() / 1e6, hist.max() as f64 / 1e6)
    };
    let _ = writeln!(s, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]");
    let _ = writeln!(s, "#[Max     = {max:12.3}, Total count    = {:12}]", hist.len());
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        hist.buckets(),
        sub_buckets(hist)
    );
    s
}

/// HdrHistogram's sub-bucket count: the power of two that holds `2 * 10^sigfig`.
fn sub_buckets(h: &Histogram<u64>) -> u64 {
    let largest = 2 * 10u64.pow(u32::from(h.sigfig()));
    largest.next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LatencyHistogram {
        let mut h = Histogram::<u64>::new_with_bounds(1_000, 3_600_000_000_000, 3).unwrap();
        for i in 1..=1000u64 {
            h.record(i * 1_000_000).unwrap();
        }
        LatencyHistogram(h)
    }

    #[test]
    fn base64_round_trips() {
        let h = sample();
        let back = LatencyHistogram::from_base64(&h.to_base64()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.to_base64(), h.to_base64());
        assert_eq!(back.0.high(), h.0.high());
    }

    #[test]
    fn hlog_round_trips() {
        let h = sample();
        let log = to_hlog("end_to_end", &h, 60.0);
        assert!(log.contains("Tag=end_to_end,0.000,60.000,1000."), "{log}");
        let back = from_hlog(log.as_bytes()).unwrap();
        assert_eq!(back, h);
        assert!(from_hlog(b"#nothing\n").is_err());
    }

    #[test]
    fn hgrm_matches_java_layout() {
        let text = to_hgrm(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], "       1.000 0.000000000000          1           1.00");
        let last_row = lines[lines.len() - 4];
        assert!(last_row.ends_with("1.000000000000       1000"), "{last_row}");
        assert!(lines[lines.len() - 3].starts_with("#[Mean    =      500.500"), "{text}");
        assert!(lines[lines.len() - 2].starts_with("#[Max     =     1000."), "{text}");
        assert_eq!(
            lines[lines.len() - 1],
            "#[Buckets =           23, SubBuckets     =         2048]"
        );
    }

    #[test]
    fn empty_histogram_exports() {
        let h = LatencyHistogram(Histogram::new_with_bounds(1_000, 2_000_000_000, 3).unwrap());
        assert!(h.percentiles_ms().is_empty());
        let text = to_hgrm(&h);
        assert!(text.contains("Total count    =            0"));
    }
}
