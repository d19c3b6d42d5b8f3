//! `[expect]` conditions: dotted paths into `summary.json`, evaluated against a summary.
//!
//! A path such as `latency.end_to_end.p99_ms` walks the summary's objects. A key that itself
//! contains dots (an `extra` counter such as `retry.attempts_max`) is matched whole:
//! `extra.retry.attempts_max` works. Array elements are addressed by index
//! (`expectations.0.pass`). Numbers are compared as they are; `true`/`false` count as 1/0.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sim::spec::Expectation;
use std::fmt;

/// One evaluated `[expect]` condition, as it appears in `summary.json`'s `expectations[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExpectationResult {
    /// The dotted summary path, e.g. `latency.end_to_end.p99_ms`.
    pub metric: String,
    /// The condition as written in the scenario, e.g. `< 30s`.
    pub condition: String,
    /// The metric's value in the summary; `null` when it could not be read.
    pub actual: Option<f64>,
    /// Whether the condition held (false when the metric could not be read).
    pub pass: bool,
    /// Why the metric could not be read (unknown path, not a number); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a metric path gives no number.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricError {
    /// No such path in the summary. `suggestion` is the closest existing path, when one is
    /// close enough to be a likely typo.
    Unknown {
        /// The path as given.
        path: String,
        /// "did you mean" candidate.
        suggestion: Option<String>,
    },
    /// The path exists but holds no number or bool (an object, a string, `null`).
    NotANumber {
        /// The path as given.
        path: String,
        /// What is there, in JSON.
        found: String,
    },
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricError::Unknown { path, suggestion: Some(s) } => {
                write!(f, "unknown metric `{path}`; did you mean `{s}`?")
            }
            MetricError::Unknown { path, suggestion: None } => {
                write!(f, "unknown metric `{path}` (see docs/output-format.md for summary paths)")
            }
            MetricError::NotANumber { path, found } => {
                write!(f, "metric `{path}` is not a number (found {found})")
            }
        }
    }
}

impl std::error::Error for MetricError {}

/// Evaluates each condition against `summary` (a `summary.json` value), in order.
pub fn evaluate(expect: &[Expectation], summary: &Value) -> Vec<ExpectationResult> {
    expect
        .iter()
        .map(|e| match lookup(summary, &e.metric) {
            Ok(actual) => ExpectationResult {
                metric: e.metric.clone(),
                condition: e.condition.clone(),
                actual: Some(actual),
                pass: e.op.holds(actual, e.threshold),
                error: None,
            },
            Err(err) => ExpectationResult {
                metric: e.metric.clone(),
                condition: e.condition.clone(),
                actual: None,
                pass: false,
                error: Some(err.to_string()),
            },
        })
        .collect()
}

/// The number at `path` in `summary` (bools as 0/1).
pub fn lookup(summary: &Value, path: &str) -> Result<f64, MetricError> {
    let segments: Vec<&str> = path.split('.').collect();
    let Some(v) = walk(summary, &segments) else {
        return Err(MetricError::Unknown {
            path: path.to_string(),
            suggestion: suggest(summary, path),
        });
    };
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| not_a_number(path, v)),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        _ => Err(not_a_number(path, v)),
    }
}

/// Checks that `path` names a number in `summary`; the error carries a "did you mean".
/// A `null` that is a number in other runs (`little.ratio`) counts as a number here.
pub fn check_metric(summary: &Value, path: &str) -> Result<(), MetricError> {
    match lookup(summary, path) {
        Err(MetricError::NotANumber { found, .. }) if found == "null" => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Every path in `summary` that holds a number, a bool or `null`, sorted by key.
pub fn metric_paths(summary: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(summary, String::new(), &mut out);
    out
}

fn not_a_number(path: &str, v: &Value) -> MetricError {
    let mut found = v.to_string();
    if found.len() > 60 {
        found.truncate(57);
        found.push_str("...");
    }
    MetricError::NotANumber { path: path.to_string(), found }
}

/// Walks `segments`, matching object keys that contain dots whole (longest match first).
fn walk<'a>(v: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    if segments.is_empty() {
        return Some(v);
    }
    match v {
        Value::Object(map) => (1..=segments.len()).rev().find_map(|k| {
            let key = segments[..k].join(".");
            map.get(&key).and_then(|child| walk(child, &segments[k..]))
        }),
        Value::Array(items) => {
            let i: usize = segments[0].parse().ok()?;
            walk(items.get(i)?, &segments[1..])
        }
        _ => None,
    }
}

fn collect(v: &Value, prefix: String, out: &mut Vec<String>) {
    let join = |k: &str| {
        if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") }
    };
    match v {
        Value::Object(map) => map.iter().for_each(|(k, child)| collect(child, join(k), out)),
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, c)| collect(c, join(&i.to_string()), out))
        }
        Value::String(_) => {}
        _ => out.push(prefix),
    }
}

/// The closest existing metric path, when the distance suggests a typo.
fn suggest(summary: &Value, path: &str) -> Option<String> {
    let limit = (path.len() / 4).max(2);
    metric_paths(summary)
        .into_iter()
        .filter(|p| !p.starts_with("expectations."))
        .map(|p| (strsim::levenshtein(&p, path), p))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sim::spec::CmpOp;

    fn summary() -> Value {
        json!({
            "drained": true,
            "messages": {"lost": 0, "completed": 990},
            "latency": {"end_to_end": {"p99_ms": 1234.5}},
            "extra": {"retry.attempts_max": 7.0},
            "little": {"ratio": null},
            "scenario": "x"
        })
    }

    fn exp(metric: &str, op: CmpOp, threshold: f64) -> Expectation {
        let condition = format!("{} {threshold}", op.symbol());
        Expectation { metric: metric.into(), op, threshold, condition }
    }

    #[test]
    fn looks_up_numbers_bools_and_dotted_keys() {
        let s = summary();
        assert_eq!(lookup(&s, "messages.completed"), Ok(990.0));
        assert_eq!(lookup(&s, "drained"), Ok(1.0));
        assert_eq!(lookup(&s, "extra.retry.attempts_max"), Ok(7.0));
        assert!(matches!(lookup(&s, "latency"), Err(MetricError::NotANumber { .. })));
        assert!(matches!(lookup(&s, "scenario"), Err(MetricError::NotANumber { .. })));
    }

    #[test]
    fn suggests_close_paths() {
        let s = summary();
        let err = check_metric(&s, "latency.end_to_end.p99").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown metric `latency.end_to_end.p99`; did you mean `latency.end_to_end.p99_ms`?"
        );
        let err = check_metric(&s, "messages.lsot").unwrap_err();
        assert!(err.to_string().contains("did you mean `messages.lost`"), "{err}");
        let err = check_metric(&s, "totally.different").unwrap_err();
        assert!(matches!(err, MetricError::Unknown { suggestion: None, .. }));
        assert_eq!(check_metric(&s, "little.ratio"), Ok(()));
    }

    #[test]
    fn evaluates_in_order() {
        let s = summary();
        let r = evaluate(
            &[
                exp("messages.lost", CmpOp::Eq, 0.0),
                exp("latency.end_to_end.p99_ms", CmpOp::Lt, 1000.0),
                exp("messages.nope", CmpOp::Eq, 0.0),
            ],
            &s,
        );
        assert!(r[0].pass && r[0].actual == Some(0.0) && r[0].error.is_none());
        assert!(!r[1].pass && r[1].actual == Some(1234.5));
        assert!(!r[2].pass && r[2].actual.is_none());
        assert!(r[2].error.as_deref().unwrap().starts_with("unknown metric `messages.nope`"));
        let json = serde_json::to_string(&r[0]).unwrap();
        assert_eq!(
            json,
            r#"{"metric":"messages.lost","condition":"== 0","actual":0.0,"pass":true}"#
        );
    }

    #[test]
    fn lists_metric_paths() {
        let paths = metric_paths(&summary());
        assert!(paths.contains(&"extra.retry.attempts_max".to_string()));
        assert!(paths.contains(&"little.ratio".to_string()));
        assert!(!paths.contains(&"scenario".to_string()));
    }
}
