//! Number rounding (for stable JSON/CSV) and human formatting (for text, Markdown and HTML).

/// Rounds `x` to `dp` decimal places; non-finite values become 0 so JSON stays valid.
pub(crate) fn round_dp(x: f64, dp: i32) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    let f = 10f64.powi(dp);
    let r = (x * f).round() / f;
    // Avoid "-0.0" in outputs.
    if r == 0.0 { 0.0 } else { r }
}

/// Nanoseconds to milliseconds, rounded to 3 decimals (microseconds).
pub(crate) fn ns_to_ms(ns: u64) -> f64 {
    round_dp(ns as f64 / 1e6, 3)
}

/// Nanoseconds to seconds, rounded to 6 decimals (microseconds).
pub(crate) fn ns_to_s(ns: u64) -> f64 {
    round_dp(ns as f64 / 1e9, 6)
}

/// A count with thousands separators: `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A float for people: integers with separators, others with up to `dp` decimals
/// (trailing zeros dropped).
/// Dollars to 2 decimals (`$3.16`), or `–` when there is no value (e.g. the cost per million
/// messages of a run that completed none).
pub(crate) fn usd_or_dash(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("${}", float(x, 2)))
}

pub(crate) fn float(x: f64, dp: usize) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        let s = count(x.abs() as u64);
        return if x < 0.0 { format!("-{s}") } else { s };
    }
    let s = format!("{x:.dp$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    // Separators in the integer part.
    let (int, frac) = s.split_once('.').map_or((s, None), |(a, b)| (a, Some(b)));
    let neg = int.starts_with('-');
    let digits = int.trim_start_matches('-');
    let grouped = digits.parse::<u64>().map_or(digits.to_string(), count);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&grouped);
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// A latency given in milliseconds, in the most readable unit: `0.85 ms`, `120 ms`, `1.83 s`,
/// `2m 5s`, `1h 2m`.
pub(crate) fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{} ms", float(v, 3))
    } else if v < 10.0 {
        format!("{} ms", float(v, 2))
    } else if v < 1_000.0 {
        format!("{} ms", float(v, 1))
    } else if v < 60_000.0 {
        format!("{} s", float(v / 1_000.0, 2))
    } else {
        secs(v / 1_000.0)
    }
}

/// A duration given in seconds: `850 ms`, `12.5 s`, `2m 5s`, `1h 2m`.
pub(crate) fn secs(s: f64) -> String {
    if s == 0.0 {
        return "0 s".into();
    }
    if s < 1.0 {
        return format!("{} ms", float(s * 1_000.0, 1));
    }
    if s < 60.0 {
        return format!("{} s", float(s, 2));
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 { format!("{h}h {m}m") } else { format!("{m}m {sec}s") }
}

/// A point or span of simulated time given in seconds, the way scenario files write it:
/// `30m`, `1h30m`, `250ms`.
pub(crate) fn dur(s: f64) -> String {
    sim::time::format_duration((s.max(0.0) * 1e9).round() as u64)
}

/// A signed percentage change, `+12.5%`, `−3%` (a real minus sign); `n/a` when the base is 0.
pub(crate) fn pct(delta: Option<f64>) -> String {
    match delta {
        Some(p) => {
            let sign = if p > 0.0 {
                "+"
            } else if p < 0.0 {
                "−"
            } else {
                "±"
            };
            format!("{sign}{}%", float(round_dp(p.abs(), 1), 1))
        }
        None => "n/a".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_stable() {
        assert_eq!(round_dp(1.23456, 3), 1.235);
        assert_eq!(round_dp(-0.0001, 3), 0.0);
        assert_eq!(round_dp(f64::NAN, 3), 0.0);
        assert_eq!(ns_to_ms(1_234_567), 1.235);
        assert_eq!(ns_to_s(1_500_000_000), 1.5);
    }

    #[test]
    fn human_formats() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(float(1234.5, 2), "1,234.5");
        assert_eq!(float(-3.0, 2), "-3");
        assert_eq!(ms(0.5), "0.5 ms");
        assert_eq!(ms(120.04), "120 ms");
        assert_eq!(ms(1830.0), "1.83 s");
        assert_eq!(ms(125_000.0), "2m 5s");
        assert_eq!(secs(3720.0), "1h 2m");
        assert_eq!(pct(Some(12.54)), "+12.5%");
        assert_eq!(pct(Some(-3.0)), "−3%");
        assert_eq!(pct(None), "n/a");
    }
}
