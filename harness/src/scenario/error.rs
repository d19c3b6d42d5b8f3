//! [`ScenarioError`]: what went wrong, where (file:line:column or the `--set` that caused it),
//! what was expected, and a "did you mean" when a known name is close.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A scenario that cannot be loaded: a syntax error, an unknown key, a value of the wrong
/// type or unit, an impossible setting, a reference to something that does not exist, or a
/// file that cannot be read.
///
/// Its `Display` is the message users see, for example:
///
/// ```text
/// scenarios/x.toml:12:9: error: unknown key `instanse` in [consumer]
///   expected one of: instances, concurrency, batch_size, work, calls, poll_interval
///   did you mean `instances`?
/// ```
///
/// Positions are 1-based; columns count characters. An error caused by a `--set` override
/// names the override instead of a position (`--set consumer.instanse=8: error: ...`). The
/// run cannot go on: fix the input and load again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    inner: Box<Inner>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Inner {
    place: String,
    line_col: Option<(usize, usize)>,
    message: String,
    notes: Vec<String>,
}

impl ScenarioError {
    /// An error at `place` (a file path or `--set key=value`), optionally at a line and column.
    pub(crate) fn new(
        place: impl Into<String>,
        line_col: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let inner =
            Inner { place: place.into(), line_col, message: message.into(), notes: Vec::new() };
        ScenarioError { inner: Box::new(inner) }
    }

    /// Adds a line of explanation under the message.
    pub(crate) fn note(mut self, note: impl Into<String>) -> ScenarioError {
        self.inner.notes.push(note.into());
        self
    }

    /// Adds `expected one of: a, b, c`.
    pub(crate) fn expected_one_of(self, names: &[&str]) -> ScenarioError {
        self.note(format!("expected one of: {}", names.join(", ")))
    }

    /// Adds ``did you mean `name`?`` for the candidate closest to `word`, if one is close.
    pub(crate) fn did_you_mean(self, word: &str, candidates: &[&str]) -> ScenarioError {
        match did_you_mean(word, candidates) {
            Some(guess) => self.note(format!("did you mean `{guess}`?")),
            None => self,
        }
    }

    /// Adds `did you mean "value"?` for a corrected value.
    pub(crate) fn suggest_value(self, value: Option<&str>) -> ScenarioError {
        match value {
            Some(v) => self.note(format!("did you mean {v:?}?")),
            None => self,
        }
    }

    /// The file (as given to `load`) or the `--set key=value` the error is about.
    pub fn place(&self) -> &str {
        &self.inner.place
    }

    /// The 1-based line and column of the offending key or value, when there is one.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.inner.line_col
    }

    /// What went wrong, in one line.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Further lines: what was expected, "did you mean".
    pub fn notes(&self) -> &[String] {
        &self.inner.notes
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.inner;
        f.write_str(&e.place)?;
        if let Some((line, col)) = e.line_col {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": error: {}", e.message)?;
        for note in &e.notes {
            write!(f, "\n  {note}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// The known name closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_lowercase().replace('-', "_");
    if word.is_empty() {
        return None;
    }
    let score = |c: &str| {
        let c = c.to_lowercase().replace('-', "_");
        let dist = strsim::damerau_levenshtein(&word, &c);
        let close = dist <= (word.chars().count().max(c.chars().count()) / 3).max(1);
        let prefix = word.len() >= 3 && (c.starts_with(&word) || word.starts_with(&c));
        (close || prefix || strsim::jaro_winkler(&word, &c) >= 0.9).then_some(dist)
    };
    candidates.iter().filter_map(|c| score(c).map(|d| (d, *c))).min_by_key(|(d, _)| *d).map(|x| x.1)
}

/// `--set` values get spans past any real document: override `i` has the span
/// `SET_BASE + i .. SET_BASE + i + 1`, so an error's span tells which override caused it.
pub(crate) const SET_BASE: usize = usize::MAX / 2;

/// The span given to everything that override `i` creates.
pub(crate) fn set_span(i: usize) -> Range<usize> {
    SET_BASE + i..SET_BASE + i + 1
}

/// The 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The text being loaded and where it came from: turns spans into error positions and
/// resolves paths relative to the scenario file.
pub(crate) struct Source<'a> {
    origin: &'a Path,
    text: &'a str,
    sets: &'a [String],
}

impl<'a> Source<'a> {
    /// A scenario file's text, its path and the `--set` overrides applied to it.
    pub(crate) fn new(origin: &'a Path, text: &'a str, sets: &'a [String]) -> Source<'a> {
        Source { origin, text, sets }
    }

    /// An error at a span of the document (or of a `--set` override).
    pub(crate) fn at(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        match span.start.checked_sub(SET_BASE) {
            Some(i) if i < self.sets.len() => self.at_set(i, message),
            _ => {
                let pos = line_col(self.text, span.start);
                ScenarioError::new(self.origin.display().to_string(), Some(pos), message)
            }
        }
    }

    /// The document's text at a span, if the span is in the document.
    pub(crate) fn text(&self, span: Range<usize>) -> Option<&'a str> {
        self.text.get(span)
    }

    /// An error about the file as a whole, with no position.
    pub(crate) fn whole(&self, message: impl Into<String>) -> ScenarioError {
        ScenarioError::new(self.origin.display().to_string(), None, message)
    }

    /// An error caused by `--set` override `i`.
    pub(crate) fn at_set(&self, i: usize, message: impl Into<String>) -> ScenarioError {
        ScenarioError::new(format!("--set {}", self.sets[i]), None, message)
    }

    /// A path written in the scenario, resolved against the scenario file's folder.
    pub(crate) fn relative(&self, path: &str) -> PathBuf {
        self.origin.parent().unwrap_or(Path::new("")).join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_place_position_message_and_notes() {
        let e = ScenarioError::new("x.toml", Some((12, 9)), "unknown key `instanse` in [consumer]")
            .expected_one_of(&["instances", "concurrency"])
            .did_you_mean("instanse", &["instances", "concurrency"]);
        assert_eq!(
            e.to_string(),
            "x.toml:12:9: error: unknown key `instanse` in [consumer]\n  \
             expected one of: instances, concurrency\n  did you mean `instances`?"
        );
        let e = ScenarioError::new("--set a=1", None, "bad");
        assert_eq!(e.to_string(), "--set a=1: error: bad");
    }

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let keys = ["instances", "concurrency", "batch_size", "work", "calls", "poll_interval"];
        assert_eq!(did_you_mean("instanse", &keys), Some("instances"));
        assert_eq!(did_you_mean("batch-size", &keys), Some("batch_size"));
        assert_eq!(did_you_mean("Concurency", &keys), Some("concurrency"));
        assert_eq!(did_you_mean("poll", &keys), Some("poll_interval"));
        assert_eq!(did_you_mean("color", &keys), None);
        assert_eq!(did_you_mean("", &keys), None);
        assert_eq!(did_you_mean("exponential", &["exp", "normal"]), Some("exp"));
    }

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        let quote = text.find('"').unwrap();
        assert_eq!(line_col(text, quote), (2, 6));
        assert_eq!(line_col(text, 9999), (3, 1));
        assert_eq!(line_col(text, 8), (2, 2)); // inside `é`: backs up to its start
    }
}
