//! A pattern's own settings table (`[retry_backoff]`, `[breaker]`, `[saga]`, ...), read and
//! printed back by the pattern itself.
//!
//! The pattern module says which keys its table has by reading them through a
//! [`TableReader`] and printing them through a [`TableWriter`]; the harness implements both
//! over the scenario file (units, spans, "did you mean", unknown keys), so a pattern's keys
//! get the same checks and messages as every other key without the pattern knowing about
//! files. The settings themselves travel in the [`Scenario`] type-erased
//! ([`PatternTable`]) so that `spec` does not depend on the patterns.

use crate::dist::Dist;
use crate::spec::Scenario;
use crate::time::Nanos;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Why a pattern table could not be read. It carries the reader's own error (the harness's
/// positioned scenario error); the pattern only passes it on.
#[derive(Debug)]
pub struct TableError(pub Box<dyn std::error::Error + Send + Sync>);

/// Reads the keys of one table. Every method returns `Ok(None)` when the key is absent and
/// an error (positioned at the value) when it is present with a wrong type, unit or range.
/// Keys that the pattern never asks for are reported by the reader as unknown.
pub trait TableReader {
    /// A duration (`"250ms"`, `"5m"`).
    fn duration(&mut self, key: &str) -> Result<Option<Nanos>, TableError>;
    /// An integer in `min..=max`.
    fn integer(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, TableError>;
    /// A number in `min..=max`.
    fn number(&mut self, key: &str, min: f64, max: f64) -> Result<Option<f64>, TableError>;
    /// `true` or `false`.
    fn boolean(&mut self, key: &str) -> Result<Option<bool>, TableError>;
    /// One of `options`; returns its index.
    fn choice(&mut self, key: &str, options: &[&str]) -> Result<Option<usize>, TableError>;
    /// A distribution (`"exp(mean=50ms)"`).
    fn dist(&mut self, key: &str) -> Result<Option<Dist>, TableError>;
    /// A string.
    fn string(&mut self, key: &str) -> Result<Option<String>, TableError>;
    /// An array of strings.
    fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, TableError>;
    /// A table of strings by name (`key = { a = "x", b = "y" }`), in name order.
    fn string_map(&mut self, key: &str) -> Result<Option<Vec<(String, String)>>, TableError> {
        Err(self.invalid(key, "tables of strings are not read here"))
    }
    /// An error about `key` (for checks across keys), positioned at its value when present,
    /// else at the table.
    fn invalid(&self, key: &str, message: &str) -> TableError;
    /// The named sub-tables of `key` (`[<table>.<key>.<name>]`, e.g. `[priority.pools.high]`):
    /// `read(name, reader)` reads each with a reader of its own, which reports its unknown
    /// keys like any table's. `Ok(false)` when `key` is absent.
    fn tables(&mut self, key: &str, read: &mut SubTables<'_>) -> Result<bool, TableError> {
        let _ = read;
        Err(self.invalid(key, "sub-tables are not read here"))
    }
    /// The text of the file named by the string at `key`, read relative to the scenario
    /// file's folder, as `(the name as written, text)`. `Ok(None)` when `key` is absent.
    fn file(&mut self, key: &str) -> Result<Option<(String, String)>, TableError> {
        Err(self.invalid(key, "files are not read here"))
    }
    /// The one sub-table `key` (`[<table>.<key>]`, e.g. `[stream.breaker]`): `read(reader)`
    /// reads it with a reader of its own, which reports its unknown keys like any table's.
    /// `Ok(false)` when `key` is absent. Print its keys back as `<key>.<name>`.
    fn table(&mut self, key: &str, read: &mut SubTable<'_>) -> Result<bool, TableError> {
        let _ = read;
        Err(self.invalid(key, "sub-tables are not read here"))
    }

    /// The tables of the array `key` (`[[<table>.<key>]]`, e.g. `[[fan_out.subscriptions]]`),
    /// in file order: `read(index, reader)` reads each (`index` is `"0"`, `"1"`, ...) with a
    /// reader of its own, which reports its unknown keys like any table's. `Ok(false)` when
    /// `key` is absent.
    fn array_of_tables(&mut self, key: &str, read: &mut SubTables<'_>) -> Result<bool, TableError> {
        let _ = read;
        Err(self.invalid(key, "arrays of tables are not read here"))
    }
    /// The rest of the scenario, already validated (for checks against other tables, such
    /// as a `target` that must name a service, or `order` naming classes); `None` where the
    /// reader has none.
    fn scenario(&self) -> Option<&Scenario> {
        None
    }
}

/// Reads one named sub-table (see [`TableReader::tables`]).
pub type SubTables<'r> = dyn FnMut(&str, &mut dyn TableReader) -> Result<(), TableError> + 'r;

/// Reads the one sub-table of [`TableReader::table`].
pub type SubTable<'r> = dyn FnMut(&mut dyn TableReader) -> Result<(), TableError> + 'r;

/// Prints the keys of one table back, in the file's units.
pub trait TableWriter {
    /// `key = "<duration>"`.
    fn duration(&mut self, key: &str, value: Nanos);
    /// `key = <integer>`.
    fn integer(&mut self, key: &str, value: u64);
    /// `key = <number>`.
    fn number(&mut self, key: &str, value: f64);
    /// `key = true|false`.
    fn boolean(&mut self, key: &str, value: bool);
    /// `key = "<string>"` (choices too).
    fn string(&mut self, key: &str, value: &str);
    /// `key = "<distribution>"`.
    fn dist(&mut self, key: &str, value: &Dist);
    /// `key = ["a", "b"]`.
    fn strings(&mut self, key: &str, value: &[String]);
    /// `key = [{ ... }, { ... }]`: an array of `len` tables (`[[<table>.<key>]]`), the
    /// `i`-th written by `write(i, writer)`. A writer that cannot print arrays of tables
    /// leaves them out.
    fn array_of_tables(
        &mut self,
        key: &str,
        len: usize,
        write: &mut dyn FnMut(usize, &mut dyn TableWriter),
    ) {
        let _ = (key, len, write);
    }

    /// `key = { a = "x", b = "y" }`.
    fn string_map(&mut self, key: &str, value: &[(String, String)]);
}

/// What a settings type gets from being `PartialEq + 'static`, so that a pattern's settings
/// need implement only [`PatternSettings::write`].
pub trait AnySettings {
    /// The settings as `Any`, for the pattern to get its own type back.
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` holds settings of the same type, equal to these.
    fn same_as(&self, other: &dyn Any) -> bool;
}

impl<T: PartialEq + Any> AnySettings for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same_as(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>() == Some(self)
    }
}

/// A pattern's settings, as the pattern module defines them.
pub trait PatternSettings:
    AnySettings
    + fmt::Debug
    + Send
    + Sync
    + std::panic::RefUnwindSafe
    + std::panic::UnwindSafe
    + 'static
{
    /// Prints the table back (every key the pattern read, with its value).
    fn write(&self, out: &mut dyn TableWriter);
}

/// The settings of the scenario's pattern table (`None`: the pattern has no table, or the
/// file leaves it out and the pattern's defaults apply).
#[derive(Clone, Debug, Default)]
pub struct PatternTable(pub Option<Arc<dyn PatternSettings>>);

impl PatternTable {
    /// The settings as the pattern's own type `T`, if they are of that type.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|s| s.as_any().downcast_ref::<T>())
    }
}

impl PartialEq for PatternTable {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_as(b.as_any()),
            _ => false,
        }
    }
}
