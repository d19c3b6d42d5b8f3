//! Files of durations that a scenario names: arrival traces (`[workload] trace`) and
//! `empirical("file.csv")` distributions.
//!
//! One value per line: a duration (`1.5s`, `250ms`) or a bare number of seconds (`1.5`).
//! Only the first comma-separated field counts; blank lines and `#` comments are skipped, and
//! a first line that is not a value is taken as a header. Trace times must not decrease.
//! Errors point at the data file's line and column.

use super::error::{ScenarioError, Source};
use super::units::{is_plain_number, parse_duration};
use sim::time::{Nanos, format_duration};
use std::ops::Range;

/// What a data file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Arrival times since the start, non-decreasing.
    Trace,
    /// Observed durations, in any order.
    Empirical,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Trace => "trace",
            Kind::Empirical => "empirical",
        }
    }
}

/// Reads `file` (relative to the scenario); `span` is where the scenario names it.
pub(crate) fn read(
    src: &Source<'_>,
    span: Range<usize>,
    file: &str,
    kind: Kind,
) -> Result<Vec<Nanos>, ScenarioError> {
    let path = src.relative(file);
    let noun = kind.noun();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => e.to_string(),
        };
        src.at(
            span.clone(),
            format!("cannot read {noun} file {file:?} ({}): {why}", path.display()),
        )
        .note("paths are relative to the scenario file's folder")
    })?;
    let values = parse(&text, kind).map_err(|(line, col, message)| {
        ScenarioError::new(path.display().to_string(), Some((line, col)), message)
    })?;
    if values.is_empty() {
        return Err(src.at(span, format!("{noun} file {file:?} holds no values")));
    }
    Ok(values)
}

/// Parses the lines of a data file; an error is (line, column, message).
pub(crate) fn parse(text: &str, kind: Kind) -> Result<Vec<Nanos>, (usize, usize, String)> {
    let mut values = Vec::new();
    let mut previous: Option<(Nanos, usize)> = None;
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let field = line.split(['#', ',']).next().unwrap_or("");
        let value = field.trim();
        if value.is_empty() {
            continue;
        }
        let col = line[..line.len() - line.trim_start().len()].chars().count() + 1;
        let parsed = match is_plain_number(value) {
            true => parse_duration(&format!("{value}s")),
            false => parse_duration(value),
        };
        let header = std::mem::replace(&mut first, false);
        let ns = match parsed {
            Ok(ns) => ns,
            Err(_) if header => continue,
            Err(_) => {
                let why = format!(
                    "bad value {value:?}: expected a duration like \"1.5s\" or a number of seconds"
                );
                return Err((i + 1, col, why));
            }
        };
        if let Some((prev, prev_line)) = previous.filter(|(p, _)| kind == Kind::Trace && ns < *p) {
            let why = format!(
                "arrival times must not decrease: {} comes after {} (line {prev_line})",
                format_duration(ns),
                format_duration(prev)
            );
            return Err((i + 1, col, why));
        }
        previous = Some((ns, i + 1));
        values.push(ns);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::time::{NS_PER_MS, NS_PER_S};

    #[test]
    fn lines_take_durations_or_seconds_after_an_optional_header() {
        let text = "t,extra\n0\n0.5, x\n\n# comment\n 1s\n1500ms\n";
        assert_eq!(
            parse(text, Kind::Trace),
            Ok(vec![0, 500 * NS_PER_MS, NS_PER_S, 1500 * NS_PER_MS])
        );
        assert_eq!(parse("", Kind::Trace), Ok(vec![]));
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = parse("time\n1s\n  2s\n1s\n", Kind::Trace).unwrap_err();
        assert_eq!((e.0, e.1), (4, 1));
        assert!(e.2.contains("must not decrease: 1s comes after 2s (line 3)"), "{}", e.2);
        assert!(parse("1s\n0s\n", Kind::Empirical).is_ok());
        let e = parse("1s\n  oops\n", Kind::Empirical).unwrap_err();
        assert_eq!((e.0, e.1), (2, 3));
    }
}
