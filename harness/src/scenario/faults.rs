//! `[[faults]]`: every fault has `kind` and `target`, and the keys of its kind.
//!
//! | kind         | target    | keys                                   |
//! | ------------ | --------- | -------------------------------------- |
//! | `outage`     | a service | `from`, `to`                           |
//! | `latency`    | a service | `from`, `to`, `add`                    |
//! | `error-rate` | a service | `from`, `to`, `error_rate`             |
//! | `crash`      | consumer, or a process of the pattern | `at`, `instances`, `restart_after` |
//! | `restart`    | a process of the pattern | `at`, `grace`, `restart_after` |
//! | `renewal-failure` | consumer | `from`, `to`                      |

use super::error::{ScenarioError, Source};
use super::file::{FaultFile, Field, List, Raw, S};
use super::resolve::service_name;
use super::values::*;
use sim::spec::{FaultKind, FaultSpec, Scenario};
use sim::time::{Nanos, format_duration};

/// The fault kinds and the keys each takes (besides `kind` and `target`).
const KINDS: [(&str, &[&str]); 6] = [
    ("outage", &["from", "to"]),
    ("latency", &["from", "to", "add"]),
    ("error-rate", &["from", "to", "error_rate"]),
    ("crash", &["at", "instances", "restart_after"]),
    ("renewal-failure", &["from", "to"]),
    ("restart", &["at", "grace", "restart_after"]),
];

/// Checks and resolves every fault, in file order, against the scenario's services and
/// consumer.
pub(crate) fn faults(
    src: &Source<'_>,
    list: &List<FaultFile>,
    s: &Scenario,
) -> Res<Vec<FaultSpec>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.get_ref().iter().enumerate().map(|(i, f)| fault(src, i, f, s)).collect()
}

/// The context of one fault for messages: its index and table.
struct At<'s, 'a> {
    src: &'s Source<'a>,
    index: usize,
    table: &'s S<FaultFile>,
}

impl At<'_, '_> {
    fn key(&self, k: &str) -> String {
        format!("faults[{}].{k}", self.index)
    }

    fn require<'f>(&self, field: &'f Field, k: &str, example: &str) -> Res<&'f S<Raw>> {
        let table = format!("in [[faults]] (entry {})", self.index + 1);
        require(self.src, field, k, (self.table.span(), &table), example)
    }

    fn duration(&self, field: &Field, k: &str, example: &str) -> Res<Nanos> {
        duration(self.src, self.require(field, k, example)?, &self.key(k))
    }
}

fn fault(src: &Source<'_>, index: usize, table: &S<FaultFile>, s: &Scenario) -> Res<FaultSpec> {
    let at = At { src, index, table };
    let f = table.get_ref();
    let names = KINDS.map(|k| k.0);
    let kind = choice(src, at.require(&f.kind, "kind", "\"outage\"")?, &at.key("kind"), &names)?;
    only_keys_of(&at, kind)?;
    let target_v = at.require(&f.target, "target", "\"payments\"")?;
    let target = target(&at, target_v, kind, s)?;
    let kind = match kind {
        "crash" if target != "consumer" => process_crash(&at)?,
        "crash" => crash(&at, s)?,
        "restart" => restart(&at)?,
        _ => window_fault(&at, kind)?,
    };
    Ok(FaultSpec { target, kind })
}

/// Rejects keys that belong to other kinds of fault.
fn only_keys_of(at: &At<'_, '_>, kind: &str) -> Res<()> {
    let f = at.table.get_ref();
    let given = [
        ("from", &f.from),
        ("to", &f.to),
        ("add", &f.add),
        ("error_rate", &f.error_rate),
        ("at", &f.at),
        ("instances", &f.instances),
        ("restart_after", &f.restart_after),
        ("grace", &f.grace),
    ];
    let takes = KINDS.iter().find(|k| k.0 == kind).map_or(&[][..], |k| k.1);
    for (key, field) in given {
        if let (Some(v), false) = (field, takes.contains(&key)) {
            let all: Vec<&str> = ["kind", "target"].iter().chain(takes).copied().collect();
            let msg = format!("key `{key}` does not apply to a {kind} fault");
            return Err(at.src.at(v.span(), msg).expected_one_of(&all).did_you_mean(key, takes));
        }
    }
    Ok(())
}

/// `target`: `consumer` (or one of the pattern's processes) for a crash, one of the
/// pattern's processes for a restart, a known service otherwise.
fn target(at: &At<'_, '_>, v: &S<Raw>, kind: &str, s: &Scenario) -> Res<String> {
    let key = at.key("target");
    let name = string(at.src, v, &key)?;
    let processes = sim::patterns::lookup(s.pattern).processes;
    if kind == "restart" || (kind == "crash" && name != "consumer") {
        if processes.contains(&name.as_str()) {
            return Ok(name);
        }
        let pattern = s.pattern.name();
        if processes.is_empty() {
            let msg = if kind == "restart" {
                format!("pattern {pattern:?} has no process a restart fault can hit")
            } else {
                format!("a crash fault hits the consumer, not {name:?}")
            };
            let e = at.src.at(v.span(), msg);
            return Err(if kind == "crash" { e.note("set target = \"consumer\"") } else { e });
        }
        let mut known: Vec<&str> = processes.to_vec();
        if kind == "crash" {
            known.insert(0, "consumer");
        }
        let msg = format!("pattern {pattern:?} has no process {name:?} for a {kind} fault");
        return Err(at.src.at(v.span(), msg).expected_one_of(&known).did_you_mean(&name, &known));
    }
    if kind == "crash" || kind == "renewal-failure" {
        if name != "consumer" {
            let msg = format!("a {kind} fault hits the consumer, not {name:?}");
            return Err(at.src.at(v.span(), msg).note("set target = \"consumer\""));
        }
        return Ok(name);
    }
    if name == "consumer" {
        let msg = format!(
            "a {kind} fault hits a service; only a crash or a renewal-failure can hit the consumer"
        );
        return Err(at.src.at(v.span(), msg));
    }
    let known: Vec<&str> = s.services.keys().map(String::as_str).collect();
    service_name(at.src, v, &key, &known)
}

/// `outage`, `latency` and `error-rate`: a `[from, to)` window and the kind's own key.
fn window_fault(at: &At<'_, '_>, kind: &str) -> Res<FaultKind> {
    let f = at.table.get_ref();
    let from = at.duration(&f.from, "from", "\"30m\"")?;
    let to = at.duration(&f.to, "to", "\"40m\"")?;
    if to <= from {
        let msg = format!(
            "`{}` ({}) must be after `from` ({})",
            at.key("to"),
            format_duration(to),
            format_duration(from)
        );
        return Err(at.src.at(f.to.as_ref().map_or(0..0, S::span), msg));
    }
    Ok(match kind {
        "latency" => {
            let v = at.require(&f.add, "add", "\"400ms\"")?;
            FaultKind::Latency { from, to, add: positive_duration(at.src, v, &at.key("add"))? }
        }
        "error-rate" => {
            let v = at.require(&f.error_rate, "error_rate", "0.5")?;
            FaultKind::ErrorRate {
                from,
                to,
                error_rate: probability(at.src, v, &at.key("error_rate"))?,
            }
        }
        "renewal-failure" => FaultKind::RenewalFailure { from, to },
        _ => FaultKind::Outage { from, to },
    })
}

/// `crash`: `at`, `instances` (at most the consumer's), optional `restart_after`.
fn crash(at: &At<'_, '_>, s: &Scenario) -> Res<FaultKind> {
    let f = at.table.get_ref();
    let when = at.duration(&f.at, "at", "\"45m\"")?;
    let v = at.require(&f.instances, "instances", "1")?;
    let instances = count(at.src, v, &at.key("instances"), 1)?;
    let (most, from) = if s.hosting.plan.elastic() {
        (s.hosting.scaling.max_instances, "scaling.max_instances")
    } else {
        (s.consumer.instances, "consumer.instances")
    };
    if instances > most {
        let msg = format!(
            "`{}` is {instances}, but the consumer has only {most} ({from})",
            at.key("instances")
        );
        return Err(too_many(at.src.at(v.span(), msg)));
    }
    Ok(FaultKind::Crash { at: when, instances, restart_after: restart_after(at)? })
}

/// `crash` of one of the pattern's processes: `at`, optional `instances` (a process is one:
/// 1), optional `restart_after`.
fn process_crash(at: &At<'_, '_>) -> Res<FaultKind> {
    let f = at.table.get_ref();
    let when = at.duration(&f.at, "at", "\"45m\"")?;
    if let Some(v) = &f.instances
        && count(at.src, v, &at.key("instances"), 1)? != 1
    {
        let msg = format!("`{}`: a process is one instance", at.key("instances"));
        return Err(at.src.at(v.span(), msg).note("leave `instances` out, or set it to 1"));
    }
    let restart_after = restart_after(at)?;
    Ok(FaultKind::Crash { at: when, instances: 1, restart_after })
}

/// `restart_after`: a duration, or `never` (`None`); absent means never.
fn restart_after(at: &At<'_, '_>) -> Res<Option<Nanos>> {
    let f = at.table.get_ref();
    Ok(opt(&f.restart_after, |v| match v.get_ref() {
        Raw::Str(s) if s.trim() == "never" => Ok(None),
        _ => duration(at.src, v, &at.key("restart_after")).map(Some),
    })?
    .flatten())
}

/// `restart` (a graceful one): `at`, `grace`, optional `restart_after` (default 0: the new
/// process starts as the old one is cut off, as in a deployment).
fn restart(at: &At<'_, '_>) -> Res<FaultKind> {
    let f = at.table.get_ref();
    let when = at.duration(&f.at, "at", "\"45m\"")?;
    let grace = at.duration(&f.grace, "grace", "\"30s\"")?;
    let restart_after = match &f.restart_after {
        None => 0,
        Some(v) => duration(at.src, v, &at.key("restart_after"))?,
    };
    Ok(FaultKind::Restart { at: when, grace, restart_after })
}

fn too_many(e: ScenarioError) -> ScenarioError {
    e.note("crash at most as many instances as [consumer] runs")
}
