//! Human units: durations (`250ms`, `1h30m`), rates (`100/s`), distributions
//! (`lognormal(mean=200ms, p99=2s)`) and `[expect]` conditions (`< 30s`).
//!
//! Every parser here works on a plain string and returns a [`UnitError`] that says what was
//! expected; the caller attaches the position of the value in the scenario file.

use sim::dist::Dist;
use sim::spec::CmpOp;
use sim::time::{NS_PER_DAY, NS_PER_H, NS_PER_MIN, NS_PER_MS, NS_PER_S, NS_PER_US, Nanos};

/// Why a value in human units was rejected: the full message, and a corrected spelling
/// when one is close.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UnitError {
    /// The whole message, e.g. `bad duration "30 sec": expected ...`.
    pub message: String,
    /// A corrected value, shown as "did you mean ...?".
    pub suggestion: Option<String>,
}

impl UnitError {
    fn new(message: String) -> UnitError {
        UnitError { message, suggestion: None }
    }

    fn suggest(mut self, suggestion: Option<String>) -> UnitError {
        self.suggestion = suggestion;
        self
    }
}

/// What a duration should look like, for messages.
pub(crate) const DURATION_HINT: &str =
    "expected a number followed by ns, us, ms, s, m, h or d (e.g. \"30s\")";

/// The duration units and their lengths in nanoseconds.
const DURATION_UNITS: [(&str, Nanos); 8] = [
    ("ns", 1),
    ("us", NS_PER_US),
    ("µs", NS_PER_US),
    ("ms", NS_PER_MS),
    ("s", NS_PER_S),
    ("m", NS_PER_MIN),
    ("h", NS_PER_H),
    ("d", NS_PER_DAY),
];

/// Spellings people write for the units above, mapped to the accepted unit.
const UNIT_ALIASES: [(&str, &str); 22] = [
    ("nsec", "ns"),
    ("nanosecond", "ns"),
    ("nanoseconds", "ns"),
    ("usec", "us"),
    ("microsecond", "us"),
    ("microseconds", "us"),
    ("msec", "ms"),
    ("millis", "ms"),
    ("millisecond", "ms"),
    ("milliseconds", "ms"),
    ("sec", "s"),
    ("secs", "s"),
    ("second", "s"),
    ("seconds", "s"),
    ("min", "m"),
    ("mins", "m"),
    ("minute", "m"),
    ("minutes", "m"),
    ("hr", "h"),
    ("hour", "h"),
    ("hours", "h"),
    ("days", "d"),
];

/// Parses a duration: one or more `<number><unit>` groups, e.g. `250ms`, `1.5s`, `1h30m`.
/// A bare `0` is also accepted.
pub(crate) fn parse_duration(text: &str) -> Result<Nanos, UnitError> {
    let bad = |why: &str| UnitError::new(format!("bad duration {text:?}: {why}"));
    let t = text.trim();
    if t == "0" {
        return Ok(0);
    }
    match duration_groups(t) {
        Ok(ns) => Ok(ns),
        Err(Some(why)) => Err(bad(why)),
        Err(None) => {
            let hint = if is_plain_number(t) {
                "a number needs a unit, e.g. \"30s\" or \"30ms\""
            } else {
                DURATION_HINT
            };
            Err(bad(hint).suggest(suggest_duration(t)))
        }
    }
}

/// Too long for a [`Nanos`].
const TOO_LONG: &str = "too long (at most about 584 years)";

/// Sums the `<number><unit>` groups of `t`. `Err(None)`: not a duration; `Err(Some(why))`:
/// a duration with an impossible value.
fn duration_groups(t: &str) -> Result<Nanos, Option<&'static str>> {
    if t.is_empty() {
        return Err(None);
    }
    let mut rest = t;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = DURATION_UNITS.iter().find(|(u, _)| *u == unit).ok_or(None)?.1;
        total = total.checked_add(scaled(num, scale)?).ok_or(Some(TOO_LONG))?;
        rest = tail;
    }
    Nanos::try_from(total).map_err(|_| Some(TOO_LONG))
}

/// `num` (a decimal like `1.5`) times `scale` nanoseconds, exactly.
fn scaled(num: &str, scale: Nanos) -> Result<u128, Option<&'static str>> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 18 {
        return Err(None);
    }
    if int.len() > 30 {
        return Err(Some(TOO_LONG));
    }
    let whole: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| None)? };
    let frac_num: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| None)? };
    let denom = 10u128.pow(frac.len() as u32);
    let frac_ns = frac_num * scale as u128;
    if !frac_ns.is_multiple_of(denom) {
        return Err(Some("more precise than a nanosecond"));
    }
    whole.checked_mul(scale as u128).map(|w| w + frac_ns / denom).ok_or(Some(TOO_LONG))
}

/// Digits with an optional decimal point, nothing else.
pub(crate) fn is_plain_number(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// A corrected spelling of a duration written with spaces or long unit names
/// (`30 sec` → `30s`), if that parses.
fn suggest_duration(t: &str) -> Option<String> {
    let mut out = String::new();
    let lower = t.to_lowercase();
    let mut words = lower.split_whitespace().peekable();
    while let Some(word) = words.next() {
        let split = word.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(word.len());
        let (num, mut unit) = word.split_at(split);
        if num.is_empty() {
            return None;
        }
        if unit.is_empty() {
            unit = words.next()?;
        }
        let canon = UNIT_ALIASES.iter().find(|(a, _)| *a == unit).map_or(unit, |(_, u)| *u);
        out.push_str(num);
        out.push_str(canon);
    }
    (out != t && duration_groups(&out).is_ok()).then_some(out)
}

/// What a rate should look like, for messages.
const RATE_HINT: &str = "expected a number followed by /s, /min or /h (e.g. \"100/s\")";

/// Parses a rate (`100/s`, `6000/min`, `5/h`) into messages per second; it must be positive.
pub(crate) fn parse_rate(text: &str) -> Result<f64, UnitError> {
    let bad = |why: &str| UnitError::new(format!("bad rate {text:?}: {why}"));
    let Some((num, unit)) = text.split_once('/') else {
        let hint = if is_plain_number(text.trim()) {
            "a number needs a unit, e.g. \"100/s\" or \"6000/min\""
        } else {
            RATE_HINT
        };
        return Err(bad(hint));
    };
    let per_s = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hr" | "hour" => 3600.0,
        "d" | "day" => 86_400.0,
        _ => return Err(bad(RATE_HINT)),
    };
    let value = parse_number(num.trim()).ok_or_else(|| bad(RATE_HINT))?;
    if value <= 0.0 {
        return Err(bad("the rate must be positive"));
    }
    Ok(value / per_s)
}

/// A finite decimal number (`12`, `0.5`, `-3`, `1e6`); no `inf`, `nan` or `_`.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let ok_chars =
        text.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    let has_digit = text.chars().any(|c| c.is_ascii_digit());
    let v: f64 = text.parse().ok().filter(|_| ok_chars && has_digit)?;
    v.is_finite().then_some(v)
}

/// A distribution as written: ready, or an `empirical(...)` whose file is still to be read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DistExpr {
    /// Fully built and validated.
    Ready(Dist),
    /// `empirical("path")`: the values come from a file relative to the scenario.
    Empirical(String),
}

/// The distributions, their parameters in positional order, and an example.
const DISTS: [(&str, &[&str], &str); 7] = [
    ("const", &["value"], "const(1s)"),
    ("uniform", &["lo", "hi"], "uniform(1s, 3s)"),
    ("exp", &["mean"], "exp(mean=50ms)"),
    ("normal", &["mean", "sd"], "normal(mean=1s, sd=100ms)"),
    ("lognormal", &["mean", "p99"], "lognormal(mean=200ms, p99=2s)"),
    ("pareto", &["scale", "shape"], "pareto(scale=10ms, shape=2.5)"),
    ("empirical", &["file"], "empirical(\"file.csv\")"),
];

/// The names of the distributions, for "did you mean".
pub(crate) const DIST_NAMES: [&str; 7] =
    ["const", "uniform", "exp", "normal", "lognormal", "pareto", "empirical"];

/// Parses a distribution; a bare duration (`200ms`) means `const(200ms)`.
pub(crate) fn parse_dist(text: &str) -> Result<DistExpr, UnitError> {
    let bad = |why: String| UnitError::new(format!("bad distribution {text:?}: {why}"));
    let t = text.trim();
    let Some((name, inner)) = t.split_once('(') else {
        return parse_duration(t).map(|ns| DistExpr::Ready(Dist::Const(ns))).map_err(|_| {
            bad(format!(
                "expected a duration like \"200ms\" or one of {}",
                DISTS.map(|d| d.2).join(", ")
            ))
        });
    };
    let name = name.trim();
    let Some(&(_, params, example)) = DISTS.iter().find(|d| d.0 == name) else {
        let guess = crate::scenario::error::did_you_mean(name, &DIST_NAMES);
        let guess = guess.map(|g| t.replacen(name, g, 1));
        let names = DIST_NAMES.join(", ");
        return Err(
            bad(format!("unknown distribution `{name}`; expected one of {names}")).suggest(guess)
        );
    };
    let inner = inner.strip_suffix(')').ok_or_else(|| bad("missing `)` at the end".into()))?;
    let args =
        split_args(name, inner, params).map_err(|why| bad(format!("{why} (e.g. {example:?})")))?;
    build_dist(name, &args).map_err(bad)
}

/// Splits `a, b` or `mean=a, p99=b` into the parameter values, in `params` order.
fn split_args<'t>(name: &str, inner: &'t str, params: &[&str]) -> Result<Vec<&'t str>, String> {
    let parts: Vec<&str> = match name {
        _ if inner.trim().is_empty() => Vec::new(),
        "empirical" => vec![inner],
        _ => inner.split(',').collect(),
    };
    let mut values: Vec<Option<&str>> = vec![None; params.len()];
    for (i, part) in parts.iter().enumerate() {
        let (slot, value) = match part.split_once('=') {
            Some((key, value)) if name != "empirical" => {
                let key = key.trim();
                let slot = params.iter().position(|p| *p == key).ok_or_else(|| {
                    let mut why = format!("{name} takes {}, not `{key}`", params.join(" and "));
                    if let Some(g) = crate::scenario::error::did_you_mean(key, params) {
                        why.push_str(&format!(" (did you mean `{g}`?)"));
                    }
                    why
                })?;
                (slot, value)
            }
            _ => (i, *part),
        };
        let value = value.trim();
        if slot >= params.len() || value.is_empty() || values[slot].is_some() {
            return Err(format!("{name} takes {}", params.join(" and ")));
        }
        values[slot] = Some(value);
    }
    values
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("{name} needs {}", params.join(" and ")))
}

/// Builds and validates a distribution from its parameter values (in positional order).
fn build_dist(name: &str, a: &[&str]) -> Result<DistExpr, String> {
    let d = |i: usize, param: &str| -> Result<Nanos, String> {
        parse_duration(a[i])
            .map_err(|_| format!("{param} {:?} is not a duration; {DURATION_HINT}", a[i]))
    };
    let dist = match name {
        "const" => Dist::Const(d(0, "value")?),
        "uniform" => Dist::Uniform { lo: d(0, "lo")?, hi: d(1, "hi")? },
        "exp" => Dist::Exp { mean: d(0, "mean")? },
        "normal" => Dist::Normal { mean: d(0, "mean")?, sd: d(1, "sd")? },
        "lognormal" => Dist::lognormal(d(0, "mean")?, d(1, "p99")?).map_err(|e| e.to_string())?,
        "pareto" => {
            let shape =
                parse_number(a[1]).ok_or_else(|| format!("shape {:?} is not a number", a[1]))?;
            Dist::Pareto { scale: d(0, "scale")?, shape }
        }
        _ => return unquote(a[0]).map(DistExpr::Empirical),
    };
    dist.validate().map_err(|e| e.to_string())?;
    Ok(DistExpr::Ready(dist))
}

/// The path inside `empirical(...)`: a double-quoted string with `\"` and `\\` escapes, a
/// single-quoted string, or bare text.
fn unquote(arg: &str) -> Result<String, String> {
    let bad = || "expected a quoted file name, e.g. empirical(\"file.csv\")".to_string();
    if let Some(inner) = arg.strip_prefix('\'') {
        return inner.strip_suffix('\'').map(str::to_string).ok_or_else(bad);
    }
    let Some(inner) = arg.strip_prefix('"') else {
        return Ok(arg.to_string());
    };
    let inner = inner.strip_suffix('"').ok_or_else(bad)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or_else(bad)?),
            '"' => return Err(bad()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A metric's unit, from its name: `_ms` metrics take durations in milliseconds, `_s`
/// metrics in seconds; others take plain numbers only.
fn duration_scale(metric: &str) -> Option<f64> {
    if metric.ends_with("_ms") {
        Some(NS_PER_MS as f64)
    } else if metric.ends_with("_s") {
        Some(NS_PER_S as f64)
    } else {
        None
    }
}

/// The comparison operators, longest first so that `<=` is not read as `<`.
const OPS: [(&str, CmpOp); 6] = [
    ("<=", CmpOp::Le),
    (">=", CmpOp::Ge),
    ("==", CmpOp::Eq),
    ("!=", CmpOp::Ne),
    ("<", CmpOp::Lt),
    (">", CmpOp::Gt),
];

/// Parses an `[expect]` condition such as `<= 10` or `< 30s` for `metric`.
pub(crate) fn parse_condition(metric: &str, text: &str) -> Result<(CmpOp, f64), UnitError> {
    let bad = |why: String| UnitError::new(format!("bad condition {text:?}: {why}"));
    let t = text.trim();
    let Some(&(sym, op)) = OPS.iter().find(|(sym, _)| t.starts_with(sym)) else {
        let fix = [("=<", "<="), ("=>", ">="), ("=", "==")]
            .iter()
            .find(|(wrong, _)| t.starts_with(wrong))
            .map(|(wrong, right)| format!("{right}{}", &t[wrong.len()..]));
        return Err(bad("expected an operator (<, <=, >, >=, ==, !=) and a value, \
                        e.g. \"<= 10\" or \"< 30s\""
            .into())
        .suggest(fix));
    };
    let value = t[sym.len()..].trim();
    if let Some(v) = parse_number(value) {
        return Ok((op, v));
    }
    let ns = parse_duration(value).map_err(|_| {
        bad(format!("{value:?} is neither a number nor a duration (e.g. \"10\" or \"30s\")"))
    })?;
    let scale = duration_scale(metric).ok_or_else(|| {
        bad(format!(
            "a duration can only be compared with a metric measured in ms or s \
             (a name ending in _ms or _s); `{metric}` is not one"
        ))
    })?;
    Ok((op, ns as f64 / scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("1500ns"), Ok(1500));
        assert_eq!(parse_duration("250us"), Ok(250 * NS_PER_US));
        assert_eq!(parse_duration("250ms"), Ok(250 * NS_PER_MS));
        assert_eq!(parse_duration("30s"), Ok(30 * NS_PER_S));
        assert_eq!(parse_duration("5m"), Ok(5 * NS_PER_MIN));
        assert_eq!(parse_duration("2h"), Ok(2 * NS_PER_H));
        assert_eq!(parse_duration("7d"), Ok(7 * NS_PER_DAY));
        assert_eq!(parse_duration("1.5s"), Ok(1500 * NS_PER_MS));
        assert_eq!(parse_duration(".5s"), Ok(500 * NS_PER_MS));
        assert_eq!(parse_duration("1h30m"), Ok(90 * NS_PER_MIN));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("0s"), Ok(0));
    }

    #[test]
    fn bad_durations_say_what_was_expected() {
        let e = parse_duration("30 sec").unwrap_err();
        assert_eq!(
            e.message,
            "bad duration \"30 sec\": expected a number followed by ns, us, ms, s, m, h or d \
             (e.g. \"30s\")"
        );
        assert_eq!(e.suggestion.as_deref(), Some("30s"));
        assert_eq!(parse_duration("2 hours").unwrap_err().suggestion.as_deref(), Some("2h"));
        assert!(parse_duration("30").unwrap_err().message.contains("needs a unit"));
        assert!(parse_duration("1.5ns").unwrap_err().message.contains("nanosecond"));
        assert!(parse_duration("999999999d").unwrap_err().message.contains("too long"));
        for bad in ["", "s", "-5s", "1..5s", "5x", "1.2.3s", "5s5", "1e3s", "nan", "."] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates_are_per_second() {
        assert_eq!(parse_rate("100/s"), Ok(100.0));
        assert_eq!(parse_rate("6000/min"), Ok(100.0));
        assert_eq!(parse_rate("5/h"), Ok(5.0 / 3600.0));
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        assert!(parse_rate("0/s").unwrap_err().message.contains("positive"));
        assert!(parse_rate("100").unwrap_err().message.contains("needs a unit"));
        for bad in ["", "/s", "x/s", "inf/s", "nan/s", "100/week", "-1/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn distributions_parse_named_and_positional() {
        let ms = NS_PER_MS;
        let ready = |t: &str| match parse_dist(t) {
            Ok(DistExpr::Ready(d)) => d,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(ready("200ms"), Dist::Const(200 * ms));
        assert_eq!(ready("const(1s)"), Dist::Const(1000 * ms));
        assert_eq!(ready("uniform(1s, 3s)"), Dist::Uniform { lo: 1000 * ms, hi: 3000 * ms });
        assert_eq!(ready("exp(mean=50ms)"), Dist::Exp { mean: 50 * ms });
        assert_eq!(ready("exp(50ms)"), Dist::Exp { mean: 50 * ms });
        assert_eq!(
            ready("normal(sd=100ms, mean=1s)"),
            Dist::Normal { mean: 1000 * ms, sd: 100 * ms }
        );
        assert_eq!(
            ready("lognormal(mean=200ms, p99=2s)"),
            Dist::lognormal(200 * ms, 2000 * ms).unwrap()
        );
        assert_eq!(
            ready("pareto(scale=10ms, shape=2.5)"),
            Dist::Pareto { scale: 10 * ms, shape: 2.5 }
        );
        assert_eq!(parse_dist("empirical(\"a b.csv\")"), Ok(DistExpr::Empirical("a b.csv".into())));
        assert_eq!(parse_dist("empirical('x.csv')"), Ok(DistExpr::Empirical("x.csv".into())));
        assert_eq!(
            parse_dist(r#"empirical("a\\b.csv")"#),
            Ok(DistExpr::Empirical(r"a\b.csv".into()))
        );
    }

    #[test]
    fn bad_distributions_explain_themselves() {
        let e = parse_dist("lognormal(mean=200ms)").unwrap_err();
        assert_eq!(
            e.message,
            "bad distribution \"lognormal(mean=200ms)\": lognormal needs mean and p99 \
             (e.g. \"lognormal(mean=200ms, p99=2s)\")"
        );
        let e = parse_dist("expo(mean=1s)").unwrap_err();
        assert_eq!(e.suggestion.as_deref(), Some("exp(mean=1s)"));
        let e = parse_dist("normal(mean=1s, sdev=1s)").unwrap_err();
        assert!(e.message.contains("did you mean `sd`?"), "{}", e.message);
        assert!(parse_dist("lognormal(mean=2s, p99=1s)").unwrap_err().message.contains("p99"));
        assert!(parse_dist("uniform(3s, 1s)").unwrap_err().message.contains("upper bound"));
        assert!(parse_dist("exp(mean=0s)").unwrap_err().message.contains("positive"));
        assert!(parse_dist("pareto(scale=1ms, shape=-1)").unwrap_err().message.contains("shape"));
        for bad in [
            "",
            "(",
            ")",
            "exp(",
            "exp()",
            "exp(mean=)",
            "exp(1s, 2s)",
            "exp(mean=1s, mean=2s)",
            "uniform(1s)",
            "const(x)",
            "empirical(\"x)",
            "empirical(\"a\"b\")",
            "pareto(1ms, x)",
            "=(",
        ] {
            assert!(parse_dist(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conditions_convert_durations_to_the_metric_unit() {
        assert_eq!(parse_condition("messages.lost", "== 0"), Ok((CmpOp::Eq, 0.0)));
        assert_eq!(parse_condition("x", "<=10"), Ok((CmpOp::Le, 10.0)));
        assert_eq!(parse_condition("x", "!= -1.5"), Ok((CmpOp::Ne, -1.5)));
        assert_eq!(parse_condition("a.p99_ms", "< 30s"), Ok((CmpOp::Lt, 30_000.0)));
        assert_eq!(parse_condition("sim_time_s", ">= 1m"), Ok((CmpOp::Ge, 60.0)));
        assert_eq!(parse_condition("a.p99_ms", "> 250us"), Ok((CmpOp::Gt, 0.25)));
        assert!(parse_condition("messages.lost", "< 5s").unwrap_err().message.contains("_ms"));
        assert_eq!(parse_condition("x", "= 0").unwrap_err().suggestion.as_deref(), Some("== 0"));
        assert_eq!(parse_condition("x", "=< 3").unwrap_err().suggestion.as_deref(), Some("<= 3"));
        for bad in ["", "<", "10", "< x", "< inf", "<< 3"] {
            assert!(parse_condition("x", bad).is_err(), "{bad:?}");
        }
    }
}
