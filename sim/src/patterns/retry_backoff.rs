//! # Retry with backoff: store the intent, poll for due jobs
//!
//! ```text
//!  client ──request──► API ──store job──► [job store: due time ──► job]
//!            ◄──202── (at once)                 ▲            │
//!                                               │   every poll_interval: take due jobs
//!                       next try = now + backoff(k)          │
//!                                               └─ failure ◄─┴─► call services ──► done
//! ```
//!
//! Demonstrates:
//! * the API never waits for the flaky downstream: it stores the job and returns;
//! * a background loop wakes every `poll_interval`, calls the downstream for every job whose
//!   time has come, and on failure schedules the job's next try (`base = 2s`,
//!   `max_delay = 5m`: 2, 4, 8, ... 256, 300, 300 s between tries);
//! * every job completes once the outage ends; the summary counts the calls it took
//!   (`services.<name>.calls`) and the attempts per job (`extra.retry.*`).
//!
//! Settings, in `[retry_backoff]`:
//!
//! ```toml
//! [retry_backoff]
//! poll_interval = "5s"        # how often the loop looks for due jobs
//! backoff = "exponential"     # constant | linear | exponential | decorrelated-jitter
//! base = "2s"
//! max_delay = "5m"
//! max_attempts = 0            # 0 = no limit; then the job is dead-lettered
//! jitter = false
//! ```
//!
//! Earlier scenario files put these in `consumer.poll_interval` and `[retry]`; those still
//! work under this pattern, and a key of `[retry_backoff]` wins over them. (Elsewhere
//! `[retry]` means in-process retries of one downstream call.)
//!
//! A job that has used `max_attempts` attempts (when not 0) is dead-lettered.
//! At most `consumer.instances × consumer.concurrency` jobs are in progress at once; due jobs
//! beyond that wait for the next poll.

use crate::check::Checker;
use crate::ledger::{Exit, Holder, Message};
use crate::model::meters::{Event, Lat};
use crate::model::retry::RetryState;
use crate::model::service::Downstream;
use crate::patterns::{Pattern, SettingsTable};
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{Backoff, PatternKind, RetrySpec, Scenario};
use crate::time::Nanos;
use crate::topology::Topology;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("retry-backoff");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "store the intent, poll for due jobs, exponential backoff",
    section: None,
    processes: &[],
    hosted: false,
    table: Some(SettingsTable { name: "retry_backoff", read }),
    build,
    checkers,
};

/// `[retry_backoff]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// How often the background loop looks for due jobs.
    pub poll_interval: Option<Nanos>,
    /// How delays between a job's attempts grow.
    pub backoff: Option<Backoff>,
    /// The first delay.
    pub base: Option<Nanos>,
    /// The cap on any delay.
    pub max_delay: Option<Nanos>,
    /// Attempts in all before the job is dead-lettered; 0 = no limit.
    pub max_attempts: Option<u32>,
    /// Randomise the delays.
    pub jitter: Option<bool>,
}

const BACKOFFS: [Backoff; 4] =
    [Backoff::Constant, Backoff::Linear, Backoff::Exponential, Backoff::DecorrelatedJitter];

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let names = BACKOFFS.map(Backoff::name);
    let s = Settings {
        poll_interval: t.duration("poll_interval")?,
        backoff: t.choice("backoff", &names)?.map(|i| BACKOFFS[i]),
        base: t.duration("base")?,
        max_delay: t.duration("max_delay")?,
        max_attempts: t.integer("max_attempts", 0, u64::from(u32::MAX))?.map(|n| n as u32),
        jitter: t.boolean("jitter")?,
    };
    if s.poll_interval == Some(0) {
        return Err(t.invalid("poll_interval", "`poll_interval` must be longer than 0"));
    }
    if s.base == Some(0) {
        return Err(t.invalid("base", "`base` must be longer than 0"));
    }
    if let (Some(base), Some(max)) = (s.base, s.max_delay)
        && max < base
    {
        return Err(t.invalid("max_delay", "`max_delay` must be at least `base`"));
    }
    Ok(Arc::new(s))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(v) = self.poll_interval {
            out.duration("poll_interval", v);
        }
        if let Some(v) = self.backoff {
            out.string("backoff", v.name());
        }
        if let Some(v) = self.base {
            out.duration("base", v);
        }
        if let Some(v) = self.max_delay {
            out.duration("max_delay", v);
        }
        if let Some(v) = self.max_attempts {
            out.integer("max_attempts", u64::from(v));
        }
        if let Some(v) = self.jitter {
            out.boolean("jitter", v);
        }
    }
}

impl Settings {
    /// The settings in force for `s`: `[retry_backoff]`, then the legacy
    /// `consumer.poll_interval` and `[retry]`, then the defaults. Returns the poll interval
    /// and the job schedule.
    pub fn resolve(s: &Scenario) -> (Nanos, RetrySpec) {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        let mut r = s.retry.clone().unwrap_or_default();
        r.backoff = mine.backoff.unwrap_or(r.backoff);
        r.base = mine.base.unwrap_or(r.base);
        r.max_delay = mine.max_delay.unwrap_or(r.max_delay);
        r.max_attempts = mine.max_attempts.unwrap_or(r.max_attempts);
        r.jitter = mine.jitter.unwrap_or(r.jitter);
        (mine.poll_interval.unwrap_or(s.consumer.poll_interval), r)
    }
}

/// A stored job.
#[derive(Clone, Copy, Debug)]
struct Job {
    msg: Message,
    attempts: u32,
    backoff: RetryState,
}

/// The job store and the worker that polls it.
struct Jobs {
    t: Rc<Topology>,
    /// Jobs keyed by (next try time, id), so "due jobs" is a range.
    due: RefCell<BTreeMap<(Nanos, u64), Job>>,
    running: Cell<u32>,
    rng: RefCell<Rng>,
    calls: Downstream,
    poll_interval: Nanos,
    schedule: RetrySpec,
}

/// The API (fed by the workload) and the background poll loop.
fn build(t: &Rc<Topology>) {
    let (poll_interval, schedule) = Settings::resolve(&t.scenario);
    let jobs = Rc::new(Jobs {
        poll_interval,
        schedule,
        t: t.clone(),
        due: RefCell::new(BTreeMap::new()),
        running: Cell::new(0),
        rng: RefCell::new(t.rng("retry-backoff")),
        calls: t.downstream(&t.scenario.consumer.calls),
    });
    for counter in ["retry.jobs_finished", "retry.attempts_total", "retry.attempts_max"] {
        t.count(counter, 0.0); // in every summary, so `[expect]` can name them
    }
    let j = jobs.clone();
    t.sim.spawn(t.clone().produce(move |msg| j.accept(msg)));
    t.sim.spawn(jobs.poll_loop());
}

fn checkers(_: &Scenario) -> Vec<Box<dyn Checker>> {
    Vec::new()
}

impl Jobs {
    /// The API: store the job, due at once, and answer.
    fn accept(&self, mut msg: Message) {
        self.t.meters.admit(&mut msg, Holder::Store);
        let job = Job { msg, attempts: 0, backoff: RetryState::default() };
        self.due.borrow_mut().insert((msg.accepted_at, msg.id), job);
    }

    /// The background loop: every `poll_interval`, start an attempt for each due job.
    async fn poll_loop(self: Rc<Self>) {
        let t = &self.t;
        let c = &t.scenario.consumer;
        let limit = c.instances * c.concurrency;
        loop {
            t.sim.sleep(self.poll_interval).await;
            let now = t.sim.now_ns();
            while self.running.get() < limit {
                let Some(((due, id), job)) = self.due.borrow_mut().pop_first() else {
                    break;
                };
                if due > now {
                    self.due.borrow_mut().insert((due, id), job);
                    break;
                }
                self.running.set(self.running.get() + 1);
                t.sim.spawn(self.clone().attempt(job));
            }
        }
    }

    /// One try of one job: call the services; on failure, store it again for its next try.
    async fn attempt(self: Rc<Self>, mut job: Job) {
        let t = &self.t;
        job.attempts += 1;
        t.meters.trace(&job.msg, Event::Note("attempt"));
        t.meters.delivered();
        if job.attempts == 1 {
            let waited = t.sim.now_ns() - job.msg.accepted_at;
            t.meters.latency(Lat::QueueWait, job.msg.accepted_at, waited);
        }
        let started = t.sim.now_ns();
        // One call per service per attempt: here `[retry]` spaces the attempts of the job,
        // it does not retry inside one.
        let ok = self.calls.call_all_once().await.is_ok();
        t.meters.latency(Lat::Handler, job.msg.accepted_at, t.sim.now_ns() - started);
        self.running.set(self.running.get() - 1);
        let retry = &self.schedule;
        if ok {
            self.finish(&job);
            t.meters.exit(&job.msg, Holder::Store, Exit::Completed);
        } else if RetryState::may_retry(retry, job.attempts) {
            t.meters.failed();
            let delay = job.backoff.next_delay(retry, &mut self.rng.borrow_mut());
            let due = t.sim.now_ns() + delay;
            t.meters.trace(&job.msg, Event::Note("retry_scheduled"));
            self.due.borrow_mut().insert((due, job.msg.id), job);
        } else {
            t.meters.failed();
            self.finish(&job);
            t.meters.exit(&job.msg, Holder::Store, Exit::DeadLettered);
        }
    }

    /// A job leaves the store for good.
    fn finish(&self, job: &Job) {
        let t = &self.t;
        t.count("retry.jobs_finished", 1.0);
        t.count("retry.attempts_total", f64::from(job.attempts));
        t.record_max("retry.attempts_max", f64::from(job.attempts));
    }
}
