//! Scenario files: TOML in human units → a validated [`sim::spec::Scenario`].
//!
//! Loading happens in stages, each with its own errors:
//!
//! 1. parse the TOML, keeping the span of every key and value (syntax errors);
//! 2. apply the `--set key=value` overrides to the parsed document (`set`);
//! 3. deserialize into `ScenarioFile`, which rejects unknown keys and misplaced tables
//!    (`file`, `diagnose`);
//! 4. resolve: parse units, fill in defaults, check ranges and references, read trace and
//!    empirical files (`resolve`, `workload`, `faults`, `values`, `datafile`);
//! 5. the pattern's own table (`[retry_backoff]`, ...), taken out before stage 3, is read by
//!    the pattern itself through `pattern_table`.
//!
//! Every error is a [`ScenarioError`] that names the file, line and column (or the `--set`)
//! of the offending key or value, says what was expected and, where a known name is close,
//! suggests it. No input makes the loader panic.
//!
//! [`to_toml`] prints a resolved scenario back in the same format; loading that text gives
//! the same `Scenario`. The format is documented key by key in `docs/scenario-reference.md`.
//!
//! ```
//! let text = r#"
//! name = "demo"
//! duration = "10m"
//! pattern = "competing-consumers"
//! [consumer]
//! instances = 2
//! "#;
//! let sets = ["consumer.instances=8".to_string()];
//! let s = harness::scenario::load_str(text, "demo.toml".as_ref(), &sets).unwrap();
//! assert_eq!(s.consumer.instances, 8);
//! assert!(harness::scenario::to_toml(&s).contains("instances = 8"));
//! ```

mod datafile;
mod diagnose;
mod error;
mod faults;
mod file;
mod hosting;
mod pattern_table;
mod print;
mod resolve;
mod set;
mod units;
mod values;
mod workload;

#[cfg(test)]
mod tests;

pub use error::ScenarioError;
pub use pattern_table::schemas as pattern_table_schemas;
pub use print::to_toml;

use error::Source;
use file::ScenarioFile;
use serde::Deserialize;
use sim::spec::Scenario;
use std::path::Path;
use toml::de::DeTable;

/// The JSON Schema of the scenario file types, traced from them (see `crate::schema`).
pub(crate) fn file_schema() -> serde_json::Value {
    crate::schema::trace::<ScenarioFile>()
}

/// Parses a duration in the scenario files' units (`250ms`, `30s`, `5m`, `2h`), for command
/// line options.
pub fn parse_duration(text: &str) -> Result<sim::time::Nanos, String> {
    units::parse_duration(text).map_err(|e| e.message)
}

/// Reads and validates the scenario file at `path`, with `--set key=value` overrides
/// applied (see [`load_str`]).
pub fn load(path: &Path, sets: &[String]) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => e.to_string(),
        };
        ScenarioError::new(
            path.display().to_string(),
            None,
            format!("cannot read scenario file: {why}"),
        )
    })?;
    load_str(&text, path, sets)
}

/// Validates scenario `text`. `origin` is the file it came from: it names the file in error
/// messages, and trace and empirical files are looked up relative to its folder.
///
/// `sets` are raw `--set key=value` overrides, applied in order before validation: the key
/// is a dotted path (`consumer.instances`, `faults.0.to` or `faults[0].to`,
/// `expect."messages.lost"`), the value a TOML value if it parses as one, else a string.
pub fn load_str(text: &str, origin: &Path, sets: &[String]) -> Result<Scenario, ScenarioError> {
    let src = Source::new(origin, text, sets);
    let mut root = DeTable::parse(text).map_err(|e| diagnose::syntax_error(&src, &e))?;
    set::apply(root.get_mut(), sets, &src)?;
    let tables = pattern_table::take(root.get_mut());
    let snapshot = root.get_ref().clone();
    let file = ScenarioFile::deserialize(toml::de::Deserializer::from(root))
        .map_err(|e| diagnose::serde_error(&src, &snapshot, &e))?;
    let mut scenario = resolve::scenario(&src, &file)?;
    let pattern = sim::patterns::lookup(scenario.pattern);
    scenario.pattern_table = pattern_table::read(&src, pattern, tables, &scenario)?;
    Ok(scenario)
}
