//! `--set key=value` overrides, applied to the parsed document before it is checked.
//!
//! Keys are dotted paths (`consumer.instances`, `services.payments.error_rate`); array
//! entries are picked with a number, `faults.0.to` or `faults[0].to`; a key with dots in it
//! is quoted (`expect."messages.lost"`). Missing tables are created. The value is read as a
//! TOML value if it is one (`8`, `0.2`, `true`, `["a", "b"]`), else taken as a string
//! (`45m`, `storage-queue`). Everything an override writes gets the override's span (see
//! [`set_span`]), so later errors about it name the override.

use super::diagnose::{Seg, dotted};
use super::error::{ScenarioError, Source, set_span};
use std::borrow::Cow;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Applies every override in order; the first that cannot be applied is the error.
pub(crate) fn apply<'a>(
    root: &mut DeTable<'a>,
    sets: &'a [String],
    src: &Source<'_>,
) -> Result<(), ScenarioError> {
    for (i, set) in sets.iter().enumerate() {
        apply_one(root, set, set_span(i)).map_err(|why| src.at_set(i, why))?;
    }
    Ok(())
}

fn apply_one<'a>(root: &mut DeTable<'a>, set: &'a str, span: Range<usize>) -> Result<(), String> {
    let (key, value) =
        set.split_once('=').ok_or("expected key=value, e.g. --set consumer.instances=8")?;
    let path = parse_path(key.trim())?;
    let value = parse_value(value.trim(), &span);
    put_in_table(root, &path, value, span, &[])
}

/// Parses `a.b[0].c`, `a.0.c` or `expect."x.y"` into segments.
pub(crate) fn parse_path(key: &str) -> Result<Vec<Seg>, String> {
    let bad = |why: &str| format!("bad key `{key}`: {why}");
    let mut segs = Vec::new();
    let mut rest = key;
    loop {
        rest = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| bad("a quote is not closed"))?;
            segs.push(Seg::Key(quoted[..end].to_string()));
            &quoted[end + 1..]
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let word = rest[..end].trim();
            if word.is_empty() {
                return Err(bad("a part of the key is empty"));
            }
            segs.push(match word.parse::<usize>() {
                Ok(i) if word.bytes().all(|b| b.is_ascii_digit()) => Seg::Index(i),
                _ => Seg::Key(word.to_string()),
            });
            &rest[end..]
        };
        while let Some(index) = rest.strip_prefix('[') {
            let end = index.find(']').ok_or_else(|| bad("a `[` is not closed"))?;
            let i = index[..end].trim().parse().map_err(|_| bad("expected a number in `[...]`"))?;
            segs.push(Seg::Index(i));
            rest = &index[end + 1..];
        }
        match rest.strip_prefix('.') {
            Some(next) => rest = next,
            None if rest.is_empty() => return Ok(segs),
            None => return Err(bad("expected `.` between the parts of the key")),
        }
    }
}

/// The value as TOML if it parses as one, else as a string; every span set to `span`.
fn parse_value<'a>(text: &'a str, span: &Range<usize>) -> Spanned<DeValue<'a>> {
    match DeValue::parse(text) {
        Ok(v) => respan(v.into_inner(), span),
        Err(_) => Spanned::new(span.clone(), DeValue::String(Cow::Borrowed(text))),
    }
}

fn respan<'a>(value: DeValue<'a>, span: &Range<usize>) -> Spanned<DeValue<'a>> {
    let value = match value {
        DeValue::Array(mut items) => {
            for item in items.iter_mut() {
                let old = std::mem::replace(item, Spanned::new(0..0, DeValue::Boolean(false)));
                *item = respan(old.into_inner(), span);
            }
            DeValue::Array(items)
        }
        DeValue::Table(t) => DeValue::Table(
            t.into_iter()
                .map(|(k, v)| {
                    (Spanned::new(span.clone(), k.into_inner()), respan(v.into_inner(), span))
                })
                .collect(),
        ),
        other => other,
    };
    Spanned::new(span.clone(), value)
}

/// Writes `value` at `path` under `table`, creating missing tables. `done` is the path so far.
fn put_in_table<'a>(
    table: &mut DeTable<'a>,
    path: &[Seg],
    value: Spanned<DeValue<'a>>,
    span: Range<usize>,
    done: &[Seg],
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Err("the key is empty".into());
    };
    let key = match first {
        Seg::Key(k) => k.clone(),
        Seg::Index(i) => i.to_string(),
    };
    if rest.is_empty() {
        // a key already in the file keeps its place (the order of [expect]), not its value
        match table.get_mut(key.as_str()) {
            Some(old) => *old = value,
            None => _ = table.insert(Spanned::new(span, Cow::Owned(key)), value),
        }
        return Ok(());
    }
    if !table.contains_key(key.as_str()) {
        if let Some(Seg::Index(i)) = rest.first() {
            let at = dotted(&[done, &[Seg::Key(key)]].concat());
            return Err(format!("there is no `{at}` in the scenario, so no entry {i} to change"));
        }
        let empty = Spanned::new(span.clone(), DeValue::Table(DeTable::new()));
        table.insert(Spanned::new(span.clone(), Cow::Owned(key.clone())), empty);
    }
    let here = [done, &[Seg::Key(key.clone())]].concat();
    let child = table.get_mut(key.as_str()).ok_or("the key could not be created")?;
    put_in_value(child, rest, value, span, &here)
}

fn put_in_value<'a>(
    node: &mut Spanned<DeValue<'a>>,
    path: &[Seg],
    value: Spanned<DeValue<'a>>,
    span: Range<usize>,
    done: &[Seg],
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    let at = dotted(done);
    match (node.get_mut(), first) {
        (DeValue::Table(t), _) => put_in_table(t, path, value, span, done),
        (DeValue::Array(items), Seg::Index(i)) => {
            let len = items.len();
            let item = items.get_mut(*i).ok_or_else(|| {
                format!("`{at}` has {len} entries, numbered from 0: there is no entry {i}")
            })?;
            let here = [done, &[Seg::Index(*i)]].concat();
            put_in_value(item, rest, value, span, &here)
        }
        (DeValue::Array(_), Seg::Key(k)) => {
            Err(format!("`{at}` is an array: pick an entry first, e.g. `{at}.0.{k}`"))
        }
        (other, _) => Err(format!("`{at}` is a {}, not a table", other.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn paths_take_dots_brackets_and_quotes() {
        assert_eq!(parse_path("consumer.instances"), Ok(vec![key("consumer"), key("instances")]));
        let fault = Ok(vec![key("faults"), Seg::Index(0), key("to")]);
        assert_eq!(parse_path("faults.0.to"), fault);
        assert_eq!(parse_path("faults[0].to"), fault);
        assert_eq!(parse_path("expect.\"a.b\""), Ok(vec![key("expect"), key("a.b")]));
        for bad in ["", "a..b", "a.", "a[", "a[x]", "a[0]b", "\"a", ".a"] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_parse_as_toml_or_fall_back_to_strings() {
        let span = 5..6;
        assert!(matches!(parse_value("8", &span).into_inner(), DeValue::Integer(_)));
        assert!(matches!(parse_value("[\"a\"]", &span).into_inner(), DeValue::Array(_)));
        match parse_value("45m", &span).into_inner() {
            DeValue::String(s) => assert_eq!(s, "45m"),
            other => panic!("{other:?}"),
        }
    }
}
