//! Pattern tables (`[retry_backoff]`, ...): each pattern reads its own table through
//! [`sim::spec::table::TableReader`]; this module implements the reader over the scenario
//! file, with the same units, positions and messages as every other table, and reports the
//! keys the pattern did not ask for as unknown. [`Writer`] prints a table back.

use super::error::{ScenarioError, Source};
use super::file::{Raw, S};
use super::values::{self, Res};
use sim::dist::Dist;
use sim::patterns::{Pattern, REGISTRY};
use sim::spec::Scenario;
use sim::spec::table::{PatternTable, SubTable, SubTables, TableError, TableReader, TableWriter};
use sim::time::{Nanos, format_duration};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The names of every pattern's table.
pub(crate) fn names() -> Vec<&'static str> {
    REGISTRY.iter().filter_map(|p| p.table.as_ref().map(|t| t.name)).collect()
}

/// A pattern table taken out of the document before the rest is checked.
pub(crate) struct Taken<'a> {
    /// The table's name (`retry_backoff`; `priority.pools.high` for a sub-table).
    name: String,
    key_span: Range<usize>,
    value: Spanned<DeValue<'a>>,
}

/// Takes every pattern table out of `root`, so that the fixed tables can be checked for
/// unknown keys without them.
pub(crate) fn take<'a>(root: &mut DeTable<'a>) -> Vec<Taken<'a>> {
    let mut taken = Vec::new();
    for name in names() {
        let key = root.keys().find(|k| k.get_ref().as_ref() == name).cloned();
        if let Some(key) = key {
            let value = root.remove(&key).expect("the key was just found");
            taken.push(Taken { name: name.to_string(), key_span: key.span(), value });
        }
    }
    taken
}

/// Reads the table of `pattern` from `taken`; a table of another pattern is an error.
/// `scenario` is the rest of the file, already validated.
pub(crate) fn read(
    src: &Source<'_>,
    pattern: &Pattern,
    taken: Vec<Taken<'_>>,
    scenario: &Scenario,
) -> Res<PatternTable> {
    let mut out = PatternTable::default();
    for t in taken {
        let Some(table) = pattern.table.as_ref().filter(|mine| mine.name == t.name) else {
            let owner = REGISTRY
                .iter()
                .find(|p| p.table.as_ref().is_some_and(|x| x.name == t.name))
                .map_or("another pattern", |p| p.kind.name());
            return Err(src
                .at(t.key_span, format!("[{}] is the table of pattern `{owner}`", t.name))
                .note(format!("this scenario runs `{}`", pattern.kind.name())));
        };
        let mut reader = Reader::new(src, scenario, &t)?;
        let settings = (table.read)(&mut reader).map_err(into_scenario_error)?;
        reader.unknown_keys()?;
        out = PatternTable(Some(settings));
    }
    Ok(out)
}

/// The table's entries, each with its span.
fn entries(src: &Source<'_>, t: &Taken<'_>) -> Res<Entries> {
    let span = t.value.span();
    let DeValue::Table(_) = t.value.get_ref() else {
        return Err(src.at(span, format!("`{}` must be a table: [{}]", t.name, t.name)));
    };
    let mut wrapper = DeTable::new();
    wrapper.insert(Spanned::new(t.key_span.clone(), t.name.clone().into()), t.value.clone());
    let parsed: BTreeMap<String, BTreeMap<S<String>, S<toml::Value>>> =
        serde::Deserialize::deserialize(toml::de::Deserializer::from(Spanned::new(
            span.clone(),
            wrapper,
        )))
        .map_err(|e| src.at(span.clone(), format!("[{}]: {}", t.name, e.message())))?;
    let table = parsed.into_iter().next().map(|(_, v)| v).unwrap_or_default();
    Ok(table.into_iter().map(|(k, v)| (k.get_ref().clone(), (k.span(), v))).collect())
}

fn into_scenario_error(e: TableError) -> ScenarioError {
    match e.0.downcast::<ScenarioError>() {
        Ok(e) => *e,
        Err(other) => ScenarioError::new("scenario", None, other.to_string()),
    }
}

fn wrap(e: ScenarioError) -> TableError {
    TableError(Box::new(e))
}

/// A table's entries by key: the key's span and the value with its span.
type Entries = BTreeMap<String, (Range<usize>, S<toml::Value>)>;

/// Reads one pattern table (or one of its sub-tables) for its pattern.
struct Reader<'s, 'a, 'v> {
    src: &'s Source<'a>,
    scenario: &'s Scenario,
    table: String,
    span: Range<usize>,
    entries: Entries,
    /// The table as parsed, for its sub-tables.
    raw: Spanned<DeValue<'v>>,
    asked: BTreeSet<String>,
}

impl<'s, 'a, 'v> Reader<'s, 'a, 'v> {
    fn new(src: &'s Source<'a>, scenario: &'s Scenario, t: &Taken<'v>) -> Res<Self> {
        Ok(Reader {
            src,
            scenario,
            table: t.name.clone(),
            span: t.value.span(),
            entries: entries(src, t)?,
            raw: t.value.clone(),
            asked: BTreeSet::new(),
        })
    }
    /// The scalar at `key`, as the loader's other tables see it.
    fn raw(&mut self, key: &str) -> Result<Option<S<Raw>>, TableError> {
        self.asked.insert(key.to_string());
        let Some((_, v)) = self.entries.get(key) else { return Ok(None) };
        let raw = match v.get_ref() {
            toml::Value::String(s) => Raw::Str(s.clone()),
            toml::Value::Integer(i) => Raw::Int(i128::from(*i)),
            toml::Value::Float(x) => Raw::Float(*x),
            toml::Value::Boolean(b) => Raw::Bool(*b),
            toml::Value::Datetime(d) => Raw::Datetime(d.to_string()),
            toml::Value::Array(_) | toml::Value::Table(_) => {
                let msg = format!("wrong type for `{}`: expected a single value", self.key(key));
                return Err(wrap(self.src.at(v.span(), msg)));
            }
        };
        Ok(Some(Spanned::new(v.span(), raw)))
    }

    fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.table)
    }

    fn read<T>(
        &mut self,
        key: &str,
        f: impl FnOnce(&Source<'_>, &S<Raw>, &str) -> Res<T>,
    ) -> Result<Option<T>, TableError> {
        let full = self.key(key);
        match self.raw(key)? {
            Some(v) => f(self.src, &v, &full).map(Some).map_err(wrap),
            None => Ok(None),
        }
    }

    /// Keys the pattern never asked for are unknown.
    fn unknown_keys(&self) -> Res<()> {
        let known: Vec<&str> = self.asked.iter().map(String::as_str).collect();
        for (key, (key_span, _)) in &self.entries {
            if !self.asked.contains(key) {
                let at = key_span.clone();
                return Err(self
                    .src
                    .at(at, format!("unknown key `{key}` in [{}]", self.table))
                    .expected_one_of(&known)
                    .did_you_mean(key, &known));
            }
        }
        Ok(())
    }
}

impl TableReader for Reader<'_, '_, '_> {
    fn duration(&mut self, key: &str) -> Result<Option<Nanos>, TableError> {
        self.read(key, values::duration)
    }

    fn integer(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, TableError> {
        self.read(key, |src, v, k| values::integer(src, v, k, i128::from(min)..=i128::from(max)))
            .map(|v| v.map(|i| i as u64))
    }

    fn number(&mut self, key: &str, min: f64, max: f64) -> Result<Option<f64>, TableError> {
        self.read(key, |src, v, k| values::number(src, v, k, min, max))
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, TableError> {
        self.read(key, values::boolean)
    }

    fn choice(&mut self, key: &str, options: &[&str]) -> Result<Option<usize>, TableError> {
        self.read(key, |src, v, k| {
            let picked = values::choice(src, v, k, options)?;
            Ok(options.iter().position(|o| *o == picked).expect("choice is one of options"))
        })
    }

    fn dist(&mut self, key: &str) -> Result<Option<Dist>, TableError> {
        self.read(key, values::dist)
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, TableError> {
        self.read(key, values::string)
    }

    fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, TableError> {
        self.asked.insert(key.to_string());
        let Some((_, v)) = self.entries.get(key) else { return Ok(None) };
        let what = format!("wrong type for `{}`: expected an array of strings", self.key(key));
        let toml::Value::Array(items) = v.get_ref() else {
            return Err(wrap(self.src.at(v.span(), what)));
        };
        items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrap(self.src.at(v.span(), what.clone())))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn string_map(&mut self, key: &str) -> Result<Option<Vec<(String, String)>>, TableError> {
        self.asked.insert(key.to_string());
        let Some((_, v)) = self.entries.get(key) else { return Ok(None) };
        let what = format!(
            "wrong type for `{}`: expected a table of strings, like {{ a = \"x\" }}",
            self.key(key)
        );
        let toml::Value::Table(items) = v.get_ref() else {
            return Err(wrap(self.src.at(v.span(), what)));
        };
        items
            .iter()
            .map(|(k, i)| {
                i.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| wrap(self.src.at(v.span(), what.clone())))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn invalid(&self, key: &str, message: &str) -> TableError {
        let at = self.entries.get(key).map_or(self.span.clone(), |(_, v)| v.span());
        wrap(self.src.at(at, message.to_string()))
    }

    fn tables(&mut self, key: &str, read: &mut SubTables<'_>) -> Result<bool, TableError> {
        self.asked.insert(key.to_string());
        let DeValue::Table(table) = self.raw.get_ref() else { return Ok(false) };
        let Some((_, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            return Ok(false);
        };
        let full = self.key(key);
        let DeValue::Table(subs) = value.get_ref() else {
            let msg = format!("`{full}` must be a table of tables: [{full}.<name>]");
            return Err(wrap(self.src.at(value.span(), msg)));
        };
        for (name, sub) in subs.iter() {
            let t = Taken {
                name: format!("{full}.{}", name.get_ref()),
                key_span: name.span(),
                value: sub.clone(),
            };
            let mut reader = Reader::new(self.src, self.scenario, &t).map_err(wrap)?;
            read(name.get_ref(), &mut reader)?;
            reader.unknown_keys().map_err(wrap)?;
        }
        Ok(true)
    }

    fn file(&mut self, key: &str) -> Result<Option<(String, String)>, TableError> {
        let full = self.key(key);
        let Some(v) = self.raw(key)? else { return Ok(None) };
        let name = values::string(self.src, &v, &full).map_err(wrap)?;
        let path = self.src.relative(&name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some((name, text))),
            Err(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_string(),
                    _ => e.to_string(),
                };
                let msg = format!("cannot read `{full}` file {name:?} ({}): {why}", path.display());
                Err(wrap(
                    self.src
                        .at(v.span(), msg)
                        .note("paths are relative to the scenario file's folder"),
                ))
            }
        }
    }

    fn table(&mut self, key: &str, read: &mut SubTable<'_>) -> Result<bool, TableError> {
        self.asked.insert(key.to_string());
        let DeValue::Table(table) = self.raw.get_ref() else { return Ok(false) };
        let Some((name, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            return Ok(false);
        };
        let t = Taken { name: self.key(key), key_span: name.span(), value: value.clone() };
        let mut reader = Reader::new(self.src, self.scenario, &t).map_err(wrap)?;
        read(&mut reader)?;
        reader.unknown_keys().map_err(wrap)?;
        Ok(true)
    }

    fn array_of_tables(&mut self, key: &str, read: &mut SubTables<'_>) -> Result<bool, TableError> {
        self.asked.insert(key.to_string());
        let DeValue::Table(table) = self.raw.get_ref() else { return Ok(false) };
        let Some((_, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            return Ok(false);
        };
        let full = self.key(key);
        let msg = format!("`{full}` must be an array of tables: [[{full}]]");
        let DeValue::Array(items) = value.get_ref() else {
            return Err(wrap(self.src.at(value.span(), msg)));
        };
        for (i, item) in items.iter().enumerate() {
            if !matches!(item.get_ref(), DeValue::Table(_)) {
                return Err(wrap(self.src.at(item.span(), msg)));
            }
            let t =
                Taken { name: format!("{full}[{i}]"), key_span: item.span(), value: item.clone() };
            let mut reader = Reader::new(self.src, self.scenario, &t).map_err(wrap)?;
            read(&i.to_string(), &mut reader)?;
            reader.unknown_keys().map_err(wrap)?;
        }
        Ok(true)
    }

    fn scenario(&self) -> Option<&Scenario> {
        Some(self.scenario)
    }
}

/// Prints a pattern table back as `key = value` lines.
pub(crate) struct Writer(pub(crate) Vec<(String, String)>);

impl TableWriter for Writer {
    fn duration(&mut self, key: &str, value: Nanos) {
        self.0.push((key.into(), super::print::quote(&format_duration(value))));
    }

    fn integer(&mut self, key: &str, value: u64) {
        self.0.push((key.into(), value.to_string()));
    }

    fn number(&mut self, key: &str, value: f64) {
        self.0.push((key.into(), format!("{value:?}")));
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.0.push((key.into(), value.to_string()));
    }

    fn string(&mut self, key: &str, value: &str) {
        self.0.push((key.into(), super::print::quote(value)));
    }

    fn dist(&mut self, key: &str, value: &Dist) {
        self.0.push((key.into(), super::print::quote(&value.to_string())));
    }

    fn strings(&mut self, key: &str, value: &[String]) {
        let items: Vec<String> = value.iter().map(|s| super::print::quote(s)).collect();
        self.0.push((key.into(), format!("[{}]", items.join(", "))));
    }

    fn array_of_tables(
        &mut self,
        key: &str,
        len: usize,
        write: &mut dyn FnMut(usize, &mut dyn TableWriter),
    ) {
        let tables: Vec<String> = (0..len)
            .map(|i| {
                let mut w = Writer(Vec::new());
                write(i, &mut w);
                let pairs: Vec<String> = w.0.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", pairs.join(", "))
            })
            .collect();
        self.0.push((key.into(), format!("[{}]", tables.join(", "))));
    }

    fn string_map(&mut self, key: &str, value: &[(String, String)]) {
        let items: Vec<String> = value
            .iter()
            .map(|(k, v)| format!("{} = {}", super::print::quote(k), super::print::quote(v)))
            .collect();
        self.0.push((key.into(), format!("{{ {} }}", items.join(", "))));
    }
}

/// The JSON Schema of every pattern's table, by table name: each pattern's `read` is run
/// against a reader that answers "absent" to every key and writes down what was asked, so
/// the schema follows the pattern's own code.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    REGISTRY
        .iter()
        .filter_map(|p| p.table.as_ref())
        .map(|t| {
            let mut d = Describe(serde_json::Map::new());
            let _ = (t.read)(&mut d);
            let schema = serde_json::json!({
                "type": "object",
                "description": format!("the pattern's own table (docs/scenario-reference.md, [{}])", t.name),
                "additionalProperties": false,
                "properties": serde_json::Value::Object(d.0),
            });
            (t.name, schema)
        })
        .collect()
}

/// A reader that records the keys a pattern asks for, with their JSON Schema.
struct Describe(serde_json::Map<String, serde_json::Value>);

impl Describe {
    fn key<T>(&mut self, key: &str, schema: serde_json::Value) -> Result<Option<T>, TableError> {
        self.0.insert(key.to_string(), schema);
        Ok(None)
    }
}

impl TableReader for Describe {
    fn duration(&mut self, key: &str) -> Result<Option<Nanos>, TableError> {
        self.key(
            key,
            serde_json::json!({ "type": "string", "description": "a duration: 250ms, 30s, 5m" }),
        )
    }

    fn integer(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, TableError> {
        self.key(key, serde_json::json!({ "type": "integer", "minimum": min, "maximum": max }))
    }

    fn number(&mut self, key: &str, min: f64, max: f64) -> Result<Option<f64>, TableError> {
        self.key(key, serde_json::json!({ "type": "number", "minimum": min, "maximum": max }))
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, TableError> {
        self.key(key, serde_json::json!({ "type": "boolean" }))
    }

    fn choice(&mut self, key: &str, options: &[&str]) -> Result<Option<usize>, TableError> {
        self.key(key, serde_json::json!({ "enum": options }))
    }

    fn dist(&mut self, key: &str) -> Result<Option<Dist>, TableError> {
        self.key(key, serde_json::json!({ "type": "string", "description": "a distribution: exp(mean=50ms)" }))
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, TableError> {
        self.key(key, serde_json::json!({ "type": "string" }))
    }

    fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, TableError> {
        self.key(key, serde_json::json!({ "type": "array", "items": { "type": "string" } }))
    }

    fn file(&mut self, key: &str) -> Result<Option<(String, String)>, TableError> {
        self.key(
            key,
            serde_json::json!({ "type": "string", "description": "a file, relative to the scenario" }),
        )
    }

    fn string_map(&mut self, key: &str) -> Result<Option<Vec<(String, String)>>, TableError> {
        self.key(
            key,
            serde_json::json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        )
    }

    fn invalid(&self, key: &str, message: &str) -> TableError {
        TableError(format!("{key}: {message}").into())
    }

    fn tables(&mut self, key: &str, read: &mut SubTables<'_>) -> Result<bool, TableError> {
        let mut sub = Describe(serde_json::Map::new());
        let _ = read("<name>", &mut sub);
        self.key::<()>(
            key,
            serde_json::json!({
                "type": "object",
                "description": "named sub-tables",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": serde_json::Value::Object(sub.0),
                },
            }),
        )?;
        Ok(false)
    }

    fn table(&mut self, key: &str, read: &mut SubTable<'_>) -> Result<bool, TableError> {
        let mut sub = Describe(serde_json::Map::new());
        let _ = read(&mut sub);
        self.key::<()>(
            key,
            serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "properties": serde_json::Value::Object(sub.0),
            }),
        )?;
        Ok(false)
    }

    fn array_of_tables(&mut self, key: &str, read: &mut SubTables<'_>) -> Result<bool, TableError> {
        let mut sub = Describe(serde_json::Map::new());
        let _ = read("0", &mut sub);
        self.key::<()>(
            key,
            serde_json::json!({
                "type": "array",
                "description": "an array of tables",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": serde_json::Value::Object(sub.0),
                },
            }),
        )?;
        Ok(false)
    }
}
