//! `[workload]`: the arrival process, rate phases and message classes.

use super::datafile::{self, Kind};
use super::diagnose::key_text;
use super::error::Source;
use super::file::{List, Named, PhaseFile, Raw, S, WorkloadFile};
use super::values::*;
use sim::spec::{Arrivals, Phase, WorkloadSpec};
use sim::time::{Nanos, format_duration};
use std::ops::Range;

/// The arrival processes, by scenario-file name.
const ARRIVALS: [&str; 3] = ["constant", "poisson", "trace"];

/// Checks and resolves `[workload]`.
pub(crate) fn workload(src: &Source<'_>, w: &S<WorkloadFile>) -> Res<WorkloadSpec> {
    let f = w.get_ref();
    let d = WorkloadSpec::default();
    let arrivals = arrivals(src, f)?;
    let phases = phases(src, &f.phases)?;
    if let (Arrivals::Trace { .. }, Some(list), false) = (&arrivals, &f.phases, phases.is_empty()) {
        let why = "phases change the rate, and a trace replays recorded times: remove one";
        return Err(src.at(list.span(), "phases do not apply to trace arrivals").note(why));
    }
    Ok(WorkloadSpec {
        arrivals,
        rate_per_s: opt(&f.rate, |v| rate(src, v, "workload.rate"))?.unwrap_or(d.rate_per_s),
        phases,
        class_work: Vec::new(),
        classes: classes(src, &f.classes)?.unwrap_or(d.classes),
    })
    .and_then(|mut w| {
        w.class_work = class_work(src, &f.class_work, &w.classes)?;
        Ok(w)
    })
}

/// `[workload.class_work]`: `class = "dist"` for classes of `[workload.classes]`.
fn class_work(
    src: &Source<'_>,
    named: &Named<Raw>,
    classes: &[(String, f64)],
) -> Res<Vec<(String, sim::dist::Dist)>> {
    let Some(table) = named else { return Ok(Vec::new()) };
    let known: Vec<&str> = classes.iter().map(|(n, _)| n.as_str()).collect();
    let mut out = Vec::new();
    for (name, v) in table.get_ref() {
        let key = format!("workload.class_work.{}", key_text(name.get_ref()));
        if !known.contains(&name.get_ref().as_str()) {
            let msg = format!("`{key}`: {:?} is not a class of [workload.classes]", name.get_ref());
            return Err(src
                .at(name.span(), msg)
                .expected_one_of(&known)
                .did_you_mean(name.get_ref(), &known));
        }
        out.push((name.get_ref().clone(), dist(src, v, &key)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `arrivals` and `trace`; a `trace` alone implies `arrivals = "trace"`.
fn arrivals(src: &Source<'_>, f: &WorkloadFile) -> Res<Arrivals> {
    let name = opt(&f.arrivals, |v| choice(src, v, "workload.arrivals", &ARRIVALS))?;
    match (name, &f.trace) {
        (None | Some("trace"), Some(t)) => {
            let file = string(src, t, "workload.trace")?;
            let times = datafile::read(src, t.span(), &file, Kind::Trace)?;
            Ok(Arrivals::Trace { source: file, times })
        }
        (Some("trace"), None) => {
            let span = f.arrivals.as_ref().map_or(0..0, S::span);
            Err(src
                .at(span, "arrivals = \"trace\" needs a `trace` file in [workload]")
                .note("e.g. trace = \"traces/black-friday.csv\""))
        }
        (Some(other), Some(t)) => {
            let msg =
                format!("`workload.trace` applies only to arrivals = \"trace\", not {other:?}");
            Err(src.at(t.span(), msg))
        }
        (Some("constant"), None) => Ok(Arrivals::Constant),
        _ => Ok(Arrivals::Poisson),
    }
}

/// `[[workload.phases]]`, sorted by `from`; they must not overlap.
fn phases(src: &Source<'_>, list: &List<PhaseFile>) -> Res<Vec<Phase>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, p) in list.get_ref().iter().enumerate() {
        out.push(phase(src, i, p)?);
    }
    out.sort_by_key(|(p, _)| p.from);
    for pair in out.windows(2) {
        let ((a, _), (b, b_from)) = (&pair[0], &pair[1]);
        if b.from < a.to {
            let msg =
                format!("phase {} overlaps phase {}", window(b.from, b.to), window(a.from, a.to));
            return Err(src.at(b_from.clone(), msg).note("phases must not overlap"));
        }
    }
    Ok(out.into_iter().map(|(p, _)| p).collect())
}

/// `[from, to)` for messages.
fn window(from: Nanos, to: Nanos) -> String {
    format!("[{}, {})", format_duration(from), format_duration(to))
}

/// One phase, and the span of its `from` (for overlap errors).
fn phase(src: &Source<'_>, i: usize, p: &S<PhaseFile>) -> Res<(Phase, Range<usize>)> {
    let f = p.get_ref();
    let table = format!("in [[workload.phases]] (entry {})", i + 1);
    let key = |k: &str| format!("workload.phases[{i}].{k}");
    let from_v = require(src, &f.from, "from", (p.span(), &table), "\"10m\"")?;
    let to_v = require(src, &f.to, "to", (p.span(), &table), "\"15m\"")?;
    let rate_v = require(src, &f.rate, "rate", (p.span(), &table), "\"2000/s\"")?;
    let from = duration(src, from_v, &key("from"))?;
    let to = duration(src, to_v, &key("to"))?;
    if to <= from {
        let (t, fr) = (format_duration(to), format_duration(from));
        return Err(
            src.at(to_v.span(), format!("`{}` ({t}) must be after `from` ({fr})", key("to")))
        );
    }
    let rate_per_s = rate(src, rate_v, &key("rate"))?;
    Ok((Phase { from, to, rate_per_s }, from_v.span()))
}

/// `[workload.classes]`: weights at least 0, not all 0; sorted by name.
fn classes(src: &Source<'_>, named: &Named<Raw>) -> Res<Option<Vec<(String, f64)>>> {
    let Some(table) = named else { return Ok(None) };
    let mut out = Vec::new();
    for (name, v) in table.get_ref() {
        let key = format!("workload.classes.{}", key_text(name.get_ref()));
        out.push((name.get_ref().clone(), number(src, v, &key, 0.0, f64::MAX)?));
    }
    if out.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
        let msg = "[workload.classes] needs at least one class with a weight above 0";
        return Err(src.at(table.span(), msg).note("e.g. normal = 0.999 and poison = 0.001"));
    }
    Ok(Some(out))
}
