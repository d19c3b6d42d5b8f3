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

use crate::model::meters::Lat;
use crate::model::retry::RetryState;
use crate::rng::Rng;
use crate::time::Nanos;
use crate::world::World;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// A stored job.
#[derive(Clone, Copy, Debug)]
struct Job {
    id: u64,
    accepted_at: Nanos,
    attempts: u32,
    backoff: RetryState,
}

/// The job store: jobs keyed by (next try time, id), so "due jobs" is a range.
struct Store {
    due: RefCell<BTreeMap<(Nanos, u64), Job>>,
    next_id: Cell<u64>,
    running: Cell<u32>,
    rng: RefCell<Rng>,
}

/// Starts the API (fed by the workload) and the background poll loop.
pub fn start(world: &Rc<World>) {
    let store = Rc::new(Store {
        due: RefCell::new(BTreeMap::new()),
        next_id: Cell::new(0),
        running: Cell::new(0),
        rng: RefCell::new(Rng::stream(world.scenario.seed, "retry-backoff")),
    });
    for counter in ["retry.jobs_finished", "retry.attempts_total", "retry.attempts_max"] {
        world.count(counter, 0.0); // in every summary, so `[expect]` can name them
    }
    let s = store.clone();
    world.sim.spawn(world.clone().produce(move |w, _class| accept(w, &s)));
    world.sim.spawn(poll_loop(world.clone(), store));
}

/// The API: store the job, due at once, and answer.
fn accept(w: &World, store: &Store) {
    let id = store.next_id.get();
    store.next_id.set(id + 1);
    let now = w.sim.now_ns();
    let job = Job { id, accepted_at: now, attempts: 0, backoff: RetryState::default() };
    store.due.borrow_mut().insert((now, id), job);
    w.held_elsewhere.set(w.held_elsewhere.get() + 1);
    w.meters.entered();
    w.meters.trace(id, "stored");
}

/// The background loop: every `poll_interval`, start an attempt for each due job.
async fn poll_loop(w: Rc<World>, store: Rc<Store>) {
    let c = &w.scenario.consumer;
    let limit = c.instances * c.concurrency;
    loop {
        w.sim.sleep(c.poll_interval).await;
        let now = w.sim.now_ns();
        while store.running.get() < limit {
            let Some(((due, id), job)) = store.due.borrow_mut().pop_first() else {
                break;
            };
            if due > now {
                store.due.borrow_mut().insert((due, id), job);
                break;
            }
            store.running.set(store.running.get() + 1);
            w.sim.spawn(attempt(w.clone(), store.clone(), job));
        }
    }
}

/// One try of one job: call the services; on failure, store it again for its next try.
async fn attempt(w: Rc<World>, store: Rc<Store>, mut job: Job) {
    job.attempts += 1;
    w.meters.trace(job.id, "attempt");
    if job.attempts == 1 {
        w.meters.delivered();
        let waited = w.sim.now_ns() - job.accepted_at;
        w.meters.latency(crate::model::meters::Lat::QueueWait, job.accepted_at, waited);
    } else {
        w.meters.delivered();
    }
    let started = w.sim.now_ns();
    // One call per service per attempt: here `[retry]` spaces the attempts of the job, it
    // does not retry inside one.
    let ok = w.call_all_once().await.is_ok();
    w.meters.latency(Lat::Handler, job.accepted_at, w.sim.now_ns() - started);
    store.running.set(store.running.get() - 1);
    let retry = w.scenario.retry.clone().unwrap_or_default();
    if ok {
        finish(&w, &job);
        w.meters.completed(job.accepted_at);
    } else if RetryState::may_retry(&retry, job.attempts) {
        w.meters.failed();
        let delay = job.backoff.next_delay(&retry, &mut store.rng.borrow_mut());
        let due = w.sim.now_ns() + delay;
        w.meters.trace(job.id, "retry_scheduled");
        store.due.borrow_mut().insert((due, job.id), job);
    } else {
        w.meters.failed();
        finish(&w, &job);
        w.meters.dead_lettered();
    }
}

/// A job leaves the store for good.
fn finish(w: &World, job: &Job) {
    w.held_elsewhere.set(w.held_elsewhere.get() - 1);
    w.count("retry.jobs_finished", 1.0);
    w.count("retry.attempts_total", f64::from(job.attempts));
    w.record_max("retry.attempts_max", f64::from(job.attempts));
}
