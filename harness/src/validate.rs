//! `sluice validate`, and the check of `[expect]` paths against the summary's fields.

use crate::outcome::Outcome;
use crate::scenario;
use sim::spec::Scenario;
use std::path::{Path, PathBuf};

/// Loads and checks each scenario without running it.
pub fn validate(paths: &[PathBuf]) -> Outcome {
    let mut errors = Vec::new();
    for path in paths {
        let checked = scenario::load(path, &[])
            .map_err(|e| e.to_string())
            .and_then(|s| check_expectations(path, &s).map(|_| s));
        match checked {
            Ok(s) => {
                println!("ok: {} ({}, {})", path.display(), s.name, s.pattern.name());
                if let Some(w) = sim::limits::LoadCheck::of(&s).warning() {
                    eprintln!("warning: {}: {w}", path.display());
                }
            }
            Err(msg) => errors.push(msg),
        }
    }
    if errors.is_empty() { Outcome::Ok } else { Outcome::BadInput(errors.join("\n")) }
}

/// Checks that every `[expect]` metric names a field of this scenario's summary, by
/// building the summary of an empty run of it. Errors point at the line of the metric.
pub fn check_expectations(path: &Path, scenario: &Scenario) -> Result<(), String> {
    if scenario.expect.is_empty() {
        return Ok(());
    }
    let empty = Scenario { duration: 0, drain: Some(0), faults: Vec::new(), ..scenario.clone() };
    let results = sim::run(&empty, sim::RunOptions::default(), &mut |_| {}).results;
    let summary = reports::Summary::new(&empty, &results).to_value();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut errors = Vec::new();
    for e in &scenario.expect {
        if let Err(err) = reports::expect::check_metric(&summary, &e.metric) {
            let (line, col) = locate(&text, &e.metric);
            errors.push(format!(
                "{}:{line}:{col}: error: [expect] {err}\n  expected a field of summary.json \
                 (see docs/output-format.md)",
                path.display()
            ));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// The 1-based line and column of the first quoted occurrence of `key` in `text`.
fn locate(text: &str, key: &str) -> (usize, usize) {
    let quoted = format!("\"{key}\"");
    for (i, line) in text.lines().enumerate() {
        if let Some(col) = line.find(&quoted) {
            return (i + 1, col + 1);
        }
    }
    (1, 1)
}
