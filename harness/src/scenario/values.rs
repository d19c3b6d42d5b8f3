//! Typed reads of single values, each with its error at the value's position: strings,
//! names from a list, integers and numbers in a range, durations, rates, distributions.
//!
//! `key` is the value's dotted path (`consumer.instances`), used in messages.

use super::datafile;
use super::error::{ScenarioError, Source};
use super::file::{Field, Raw, S};
use super::units::{self, DistExpr, UnitError};
use sim::dist::Dist;
use sim::time::{Nanos, format_duration};
use std::ops::Range;

/// The result of reading a value.
pub(crate) type Res<T> = Result<T, ScenarioError>;

/// Reads an optional key with `read`.
pub(crate) fn opt<T>(field: &Field, read: impl FnOnce(&S<Raw>) -> Res<T>) -> Res<Option<T>> {
    field.as_ref().map(read).transpose()
}

/// A key that must be present; missing, the error points at `table` (its span and its name).
pub(crate) fn require<'f>(
    src: &Source<'_>,
    field: &'f Field,
    key: &str,
    table: (Range<usize>, &str),
    example: &str,
) -> Res<&'f S<Raw>> {
    field.as_ref().ok_or_else(|| {
        src.at(table.0, format!("missing required key `{key}` {}", table.1))
            .note(format!("e.g. {key} = {example}"))
    })
}

/// `wrong type for `key`: expected <what>, found <value>`.
pub(crate) fn wrong_type(src: &Source<'_>, v: &S<Raw>, key: &str, what: &str) -> ScenarioError {
    let found = v.get_ref().describe();
    src.at(v.span(), format!("wrong type for `{key}`: expected {what}, found {found}"))
}

/// A unit error at the value's position, with its suggestion.
fn unit_error(src: &Source<'_>, v: &S<Raw>, e: UnitError) -> ScenarioError {
    src.at(v.span(), e.message).suggest_value(e.suggestion.as_deref())
}

/// A string.
pub(crate) fn string(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<String> {
    match v.get_ref() {
        Raw::Str(s) => Ok(s.clone()),
        _ => Err(wrong_type(src, v, key, "a string")),
    }
}

/// One of `names`, with "did you mean" when the value is close to one. The message names
/// the last part of `key`: `unknown kind "crsh"`.
pub(crate) fn choice<'c>(
    src: &Source<'_>,
    v: &S<Raw>,
    key: &str,
    names: &[&'c str],
) -> Res<&'c str> {
    let s = string(src, v, key)?;
    names.iter().find(|n| **n == s).copied().ok_or_else(|| {
        let what = key.rsplit('.').next().unwrap_or(key);
        src.at(v.span(), format!("unknown {what} {s:?}"))
            .expected_one_of(names)
            .did_you_mean(&s, names)
    })
}

/// An integer within `range`.
pub(crate) fn integer(
    src: &Source<'_>,
    v: &S<Raw>,
    key: &str,
    range: std::ops::RangeInclusive<i128>,
) -> Res<i128> {
    let Raw::Int(i) = *v.get_ref() else {
        return Err(wrong_type(src, v, key, "an integer"));
    };
    if range.contains(&i) {
        return Ok(i);
    }
    let (lo, hi) = (*range.start(), *range.end());
    let limit = if i < lo { format!("at least {lo}") } else { format!("at most {hi}") };
    Err(src.at(v.span(), format!("`{key}` must be {limit} (found {i})")))
}

/// A `u32` of at least `min`.
pub(crate) fn count(src: &Source<'_>, v: &S<Raw>, key: &str, min: u32) -> Res<u32> {
    let i = integer(src, v, key, min.into()..=u32::MAX.into())?;
    Ok(u32::try_from(i).unwrap_or(u32::MAX))
}

/// A number (integer or float) in `lo..=hi`.
pub(crate) fn number(src: &Source<'_>, v: &S<Raw>, key: &str, lo: f64, hi: f64) -> Res<f64> {
    let x = match *v.get_ref() {
        Raw::Int(i) => i as f64,
        Raw::Float(x) => x,
        _ => return Err(wrong_type(src, v, key, "a number")),
    };
    if x.is_finite() && (lo..=hi).contains(&x) {
        return Ok(x);
    }
    let range =
        if hi == f64::MAX { format!("at least {lo}") } else { format!("between {lo} and {hi}") };
    Err(src.at(v.span(), format!("`{key}` must be {range} (found {x})")))
}

/// A probability, 0..=1.
pub(crate) fn probability(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<f64> {
    number(src, v, key, 0.0, 1.0)
}

/// A boolean.
pub(crate) fn boolean(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<bool> {
    match v.get_ref() {
        Raw::Bool(b) => Ok(*b),
        _ => Err(wrong_type(src, v, key, "true or false")),
    }
}

/// The text of a value in human units; a number gets a note that it needs a unit.
fn unit_text<'v>(
    src: &Source<'_>,
    v: &'v S<Raw>,
    key: &str,
    what: &str,
    unit: &str,
) -> Res<&'v str> {
    match v.get_ref() {
        Raw::Str(s) => Ok(s),
        Raw::Int(_) | Raw::Float(_) => {
            let n = match v.get_ref() {
                Raw::Int(i) => i.to_string(),
                Raw::Float(x) => x.to_string(),
                _ => String::new(),
            };
            Err(wrong_type(src, v, key, what).suggest_value(Some(&format!("{n}{unit}"))))
        }
        _ => Err(wrong_type(src, v, key, what)),
    }
}

/// A duration (`30s`, `1h30m`).
pub(crate) fn duration(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<Nanos> {
    if let Raw::Int(0) = v.get_ref() {
        return Ok(0);
    }
    let text = unit_text(src, v, key, "a duration string like \"30s\"", "s")?;
    units::parse_duration(text).map_err(|e| unit_error(src, v, e))
}

/// A duration above zero.
pub(crate) fn positive_duration(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<Nanos> {
    match duration(src, v, key)? {
        0 => Err(src.at(v.span(), format!("`{key}` must be longer than 0s"))),
        ns => Ok(ns),
    }
}

/// A duration above zero, or `"never"` (`None`).
pub(crate) fn duration_or_never(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<Option<Nanos>> {
    match v.get_ref() {
        Raw::Str(s) if s.trim() == "never" => Ok(None),
        _ => positive_duration(src, v, key).map(Some).map_err(|e| e.note("or \"never\"")),
    }
}

/// A duration of at least `min`, at most `max`.
pub(crate) fn duration_within(
    src: &Source<'_>,
    v: &S<Raw>,
    key: &str,
    (min, max): (Nanos, Nanos),
    why: &str,
) -> Res<Nanos> {
    let ns = duration(src, v, key)?;
    if (min..=max).contains(&ns) {
        return Ok(ns);
    }
    let (d, lo, hi) = (format_duration(ns), format_duration(min), format_duration(max));
    let range = match max {
        Nanos::MAX => format!("at least {lo}"),
        _ => format!("between {lo} and {hi}"),
    };
    Err(src.at(v.span(), format!("`{key}` must be {range} (found {d})")).note(why))
}

/// A rate (`100/s`) in messages per second.
pub(crate) fn rate(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<f64> {
    let text = unit_text(src, v, key, "a rate string like \"100/s\"", "/s")?;
    units::parse_rate(text).map_err(|e| unit_error(src, v, e))
}

/// A distribution; `empirical("file")` reads the file, relative to the scenario.
pub(crate) fn dist(src: &Source<'_>, v: &S<Raw>, key: &str) -> Res<Dist> {
    let what = "a distribution like \"exp(mean=50ms)\" or a duration like \"200ms\"";
    let text = unit_text(src, v, key, what, "ms")?;
    match units::parse_dist(text).map_err(|e| unit_error(src, v, e))? {
        DistExpr::Ready(d) => Ok(d),
        DistExpr::Empirical(file) => {
            let values = datafile::read(src, v.span(), &file, datafile::Kind::Empirical)?;
            Ok(Dist::Empirical { source: file, values })
        }
    }
}
