//! Turns the TOML parser's and serde's errors into [`ScenarioError`]s in sluice's words:
//! "unknown key `x` in [consumer]" with the keys that table takes, "wrong type for
//! `consumer.instances`: expected ..., found ...".
//!
//! The errors carry spans; the key path is found by looking the span up in the parsed
//! document.

use super::error::{ScenarioError, Source};
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A key in a table.
    Key(String),
    /// An entry of an array (from 0).
    Index(usize),
}

/// A key path as users write it: `consumer.instances`, `faults[1].from`,
/// `expect."messages.lost"`.
pub(crate) fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key_text(k));
            }
        }
    }
    out
}

/// A key as TOML writes it: bare when it can be, quoted otherwise.
pub(crate) fn key_text(key: &str) -> String {
    let bare =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { key.to_string() } else { super::print::quote(key) }
}

/// Where a table is, for messages: `at the top level`, `in [consumer]`,
/// `in [[faults]] (entry 2)`.
pub(crate) fn table_name(path: &[Seg]) -> String {
    match path.split_last() {
        None => "at the top level".to_string(),
        Some((Seg::Index(i), array)) => format!("in [[{}]] (entry {})", dotted(array), i + 1),
        Some(_) => format!("in [{}]", dotted(path)),
    }
}

/// The path of the key or value with exactly this span, the deepest one if several match
/// (everything a `--set` creates shares one span).
pub(crate) fn path_to(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
    for (k, v) in table.iter() {
        let key = Seg::Key(k.get_ref().to_string());
        if let Some(mut rest) = path_in(v.get_ref(), span) {
            rest.insert(0, key);
            return Some(rest);
        }
        if k.span() == *span || v.span() == *span {
            return Some(vec![key]);
        }
    }
    None
}

fn path_in(value: &DeValue<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
    match value {
        DeValue::Table(t) => path_to(t, span),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let mut rest =
                path_in(item.get_ref(), span).or_else(|| (item.span() == *span).then(Vec::new))?;
            rest.insert(0, Seg::Index(i));
            Some(rest)
        }),
        _ => None,
    }
}

/// A TOML syntax error.
pub(crate) fn syntax_error(src: &Source<'_>, e: &toml::de::Error) -> ScenarioError {
    let mut message = format!("invalid TOML: {}", e.message().trim());
    let Some(span) = e.span() else {
        return src.whole(message);
    };
    if let Some(key) = src.text(span.clone()).filter(|_| message.ends_with("duplicate key")) {
        message.push_str(&format!(" `{}`", key.trim()));
    }
    src.at(span, message)
}

/// An error from deserializing the document into `ScenarioFile`.
pub(crate) fn serde_error(
    src: &Source<'_>,
    root: &DeTable<'_>,
    e: &toml::de::Error,
) -> ScenarioError {
    let span = e.span();
    let path = span.as_ref().and_then(|s| path_to(root, s)).unwrap_or_default();
    let at = |message: String| match &span {
        Some(s) => src.at(s.clone(), message),
        None => src.whole(message),
    };
    let msg = e.message();
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let mut names = backticked(rest);
        if path.len() <= 1 {
            names.extend(super::pattern_table::names()); // pattern tables are top-level too
        }
        let (key, expected) = names.split_first().map_or(("?", &[][..]), |(k, e)| (*k, e));
        // everything a `--set` creates shares one span: cut the path at the unknown key
        let cut = path.iter().rposition(|s| *s == Seg::Key(key.to_string()));
        let parent = &path[..cut.unwrap_or(path.len().saturating_sub(1))];
        return at(format!("unknown key `{key}` {}", table_name(parent)))
            .expected_one_of(expected)
            .did_you_mean(key, expected);
    }
    if let Some((found, expected)) =
        msg.strip_prefix("invalid type: ").and_then(|r| r.split_once(", expected "))
    {
        let (found, expected) = (plain(found), plain(expected));
        return at(format!(
            "wrong type for `{}`: expected {expected}, found {found}",
            dotted(&path)
        ));
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        return at(format!("missing required key {rest} {}", table_name(&path)));
    }
    match path.is_empty() {
        true => at(msg.to_string()),
        false => at(format!("`{}`: {msg}", dotted(&path))),
    }
}

/// The names quoted in backticks, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// serde's type names in TOML's words.
fn plain(what: &str) -> String {
    match what {
        "map" | "a map" => "a table".into(),
        "sequence" | "a sequence" => "an array".into(),
        s if s.starts_with("struct ") => "a table".into(),
        s => s.replace('`', "").replace("floating point", "float"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_the_way_toml_writes_them() {
        let p = [Seg::Key("faults".into()), Seg::Index(1), Seg::Key("from".into())];
        assert_eq!(dotted(&p), "faults[1].from");
        assert_eq!(dotted(&[Seg::Key("expect".into()), Seg::Key("a.b".into())]), "expect.\"a.b\"");
        assert_eq!(table_name(&[]), "at the top level");
        assert_eq!(table_name(&p[..2]), "in [[faults]] (entry 2)");
        assert_eq!(
            table_name(&[Seg::Key("services".into()), Seg::Key("db".into())]),
            "in [services.db]"
        );
    }

    #[test]
    fn spans_are_found_in_nested_tables_and_arrays() {
        let text = "a = 1\n[[f]]\nx = 2\n[[f]]\ny = \"z\"\n";
        let root = DeTable::parse(text).unwrap();
        let y = text.find('y').unwrap();
        assert_eq!(
            path_to(root.get_ref(), &(y..y + 1)),
            Some(vec![Seg::Key("f".into()), Seg::Index(1), Seg::Key("y".into())])
        );
        let z = text.find('"').unwrap();
        assert_eq!(
            path_to(root.get_ref(), &(z..z + 3)).map(|p| dotted(&p)).as_deref(),
            Some("f[1].y")
        );
        assert_eq!(path_to(root.get_ref(), &(999..1000)), None);
    }
}
