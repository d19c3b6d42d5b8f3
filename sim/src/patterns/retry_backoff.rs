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
//! * a background loop wakes every `consumer.poll_interval`, calls the downstream for every
//!   job whose time has come, and on failure schedules the job's next try with `[retry]`
//!   (`base = 2s`, `max_delay = 5m`: 2, 4, 8, ... 256, 300, 300 s between tries);
//! * every job completes once the outage ends; the summary counts the calls it took
//!   (`services.<name>.calls`) and the attempts per job (`extra.retry.*`).
//!
//! A job that has used `max_attempts` attempts (when not 0) is dead-lettered.
//! At most `consumer.instances × consumer.concurrency` jobs are in progress at once; due jobs
//! beyond that wait for the next poll.

use crate::check::Checker;
use crate::ledger::{Exit, Holder, Message};
use crate::model::meters::{Event, Lat};
use crate::model::retry::RetryState;
use crate::model::service::Downstream;
use crate::patterns::Pattern;
use crate::rng::Rng;
use crate::spec::{PatternKind, Scenario};
use crate::time::Nanos;
use crate::topology::Topology;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: PatternKind::RetryBackoff,
    about: "store the intent, poll for due jobs, exponential backoff",
    build,
    checkers,
};

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
}

/// The API (fed by the workload) and the background poll loop.
fn build(t: &Rc<Topology>) {
    let jobs = Rc::new(Jobs {
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
            t.sim.sleep(c.poll_interval).await;
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
        let retry = t.scenario.retry.clone().unwrap_or_default();
        if ok {
            self.finish(&job);
            t.meters.exit(&job.msg, Holder::Store, Exit::Completed);
        } else if RetryState::may_retry(&retry, job.attempts) {
            t.meters.failed();
            let delay = job.backoff.next_delay(&retry, &mut self.rng.borrow_mut());
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
