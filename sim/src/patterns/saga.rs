//! # Saga: orchestrated steps with compensations, durable state
//!
//! ```text
//!  client ──order──► API ──start──► orchestrator ──► reserve-stock ──► charge-payment ──► ship
//!                                        │                 │ a step fails after its retries
//!                                        │                 ▼  (or is declined)
//!                                        │   compensate the completed steps, in reverse:
//!                                        │   refund-payment ◄── release-stock ◄──┘
//!                                        ▼
//!           durable: [task hub: every saga's history] (outside the process; replayed
//!                    after a crash, as Durable Functions does)
//!           in-memory: the orchestrator's own memory (a crash loses every saga in it)
//! ```
//!
//! Demonstrates:
//! * an orchestrated saga: each step is an activity (one `[services.X]` call); a step that
//!   still fails after its retries (`step_retry`, with the `[retry]` schedule), or that is
//!   declined, starts compensation of every completed step, in reverse order; a
//!   compensation that fails is retried up to `compensation_attempts` times, then counted
//!   in `saga.failed_compensation` (the saga ends *failed*: an operator has to finish it);
//! * `state = "durable"` is Durable Functions: every step is checkpointed to an
//!   append-only history in the task hub; a crash of the `orchestrator` process loses only
//!   what was in memory, and on restart every open saga is replayed from its history and
//!   goes on. Activities are at-least-once: one whose result was not yet recorded when the
//!   process died runs again after the work item's visibility timeout, and if it had
//!   already taken effect, the service did it twice (`saga.step_duplicates`);
//! * `state = "in-memory"` is the baseline: the saga lives in the orchestrator's memory, so
//!   a crash leaves every saga in progress half-done (stock reserved, payment charged,
//!   nothing shipped or compensated): `saga.stuck`, and `messages.lost`.
//!
//! A message is one order: its saga. `messages.completed` counts sagas that reached a
//! consistent end (completed, or fully compensated), `messages.dead_lettered` sagas that
//! ended failed (a compensation gave up), `messages.lost` in-memory sagas a crash wiped
//! out; a durable saga waiting for the orchestrator is in flight. Orders of the workload's
//! `poison` class are declined by the last step (in the sample, the warehouse refuses the
//! shipment: a business failure, not retried) and exercise compensation.
//!
//! Settings, in `[saga]`:
//!
//! ```toml
//! [saga]
//! steps = ["reserve-stock", "charge-payment", "ship"]   # [services.X], in order
//! compensations = { reserve-stock = "release-stock", charge-payment = "refund-payment" }
//! state = "durable"              # durable | in-memory
//! step_retry = true              # retry a failed step with the [retry] schedule
//! compensation_attempts = 10     # tries per compensation before it is given up
//! checkpoint = "exp(mean=10ms)"  # durable: one history write (append + queue message)
//! visibility_timeout = "5m"      # durable: when a dead process's work items reappear
//! ```
//!
//! `steps` defaults to `consumer.calls`. A step with no compensation (a read, the last
//! step) is skipped when compensating. The step retry schedule is `[retry]` (Durable's
//! `RetryOptions`: first retry interval = `base`, backoff coefficient 2 = `exponential`,
//! max retry interval = `max_delay`, max number of attempts = `max_attempts`); without a
//! `[retry]` table it is 3 attempts, 2 s then 4 s apart (Durable has no default: both
//! fields are required). Waits between attempts are durable timers: a crash during one
//! resumes it at its original due time.

use crate::check::{Checker, Violation};
use crate::dist::Dist;
use crate::engine::Sim;
use crate::ledger::{Event, Exit, Holder, Message, TraceEvent};
use crate::model::process::Process;
use crate::model::retry::RetryState;
use crate::model::series::Gauge;
use crate::patterns::{Pattern, SettingsTable};
use crate::results::RunResults;
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{Backoff, PatternKind, RetrySpec, Scenario};
use crate::time::{NS_PER_MIN, NS_PER_MS, NS_PER_S, Nanos, SimTime};
use crate::topology::Topology;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("saga");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "orchestrated saga with compensations: durable history replayed after a crash vs state in memory",
    section: Some("saga"),
    hosted: false,
    table: Some(SettingsTable { name: "saga", read }),
    build,
    checkers,
    processes: &["orchestrator"],
};

/// Where the orchestration's state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// An append-only history in the task hub, replayed after a crash (Durable Functions).
    Durable,
    /// The orchestrator's memory: a crash loses it.
    InMemory,
}

const STATES: [(State, &str); 2] = [(State::Durable, "durable"), (State::InMemory, "in-memory")];

/// `[saga]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The steps, in order: service names.
    pub steps: Option<Vec<String>>,
    /// Each step's compensation, by step name: service names.
    pub compensations: Option<Vec<(String, String)>>,
    /// Durable or in memory.
    pub state: Option<State>,
    /// Whether a failed step is retried with the `[retry]` schedule.
    pub step_retry: Option<bool>,
    /// Tries per compensation before it is given up.
    pub compensation_attempts: Option<u32>,
    /// How long one history write takes (durable).
    pub checkpoint: Option<Dist>,
    /// When the work items of a crashed process become visible again (durable).
    pub visibility_timeout: Option<Nanos>,
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let s = Settings {
        steps: t.strings("steps")?,
        compensations: t.string_map("compensations")?,
        state: t.choice("state", &STATES.map(|s| s.1))?.map(|i| STATES[i].0),
        step_retry: t.boolean("step_retry")?,
        compensation_attempts: t
            .integer("compensation_attempts", 1, u64::from(u32::MAX))?
            .map(|n| n as u32),
        checkpoint: t.dist("checkpoint")?,
        visibility_timeout: t.duration("visibility_timeout")?,
    };
    check(&s, t)?;
    Ok(Arc::new(s))
}

/// Checks across keys, and against `[services]` where the reader has the scenario.
fn check(s: &Settings, t: &dyn TableReader) -> Result<(), TableError> {
    if let Some(steps) = &s.steps {
        if steps.is_empty() {
            return Err(t.invalid("steps", "`steps` must name at least one service"));
        }
        for (i, step) in steps.iter().enumerate() {
            if steps[..i].contains(step) {
                let msg = format!("step \"{step}\" is listed twice: each step runs once");
                return Err(t.invalid("steps", &msg));
            }
        }
    }
    let scenario = t.scenario();
    let steps = s.steps.clone().or_else(|| scenario.map(|sc| sc.consumer.calls.clone()));
    let Some(scenario) = scenario else { return Ok(()) };
    let known: Vec<&str> = scenario.services.keys().map(String::as_str).collect();
    let missing = |name: &str| !scenario.services.contains_key(name);
    let services = |key: &str, name: &str| {
        let msg = format!(
            "`{key}` names no service: \"{name}\" (the services are: {}); add [services.{name}]",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        );
        t.invalid(key, &msg)
    };
    for step in steps.iter().flatten() {
        if missing(step) {
            return Err(services("steps", step));
        }
    }
    if let (Some(comps), Some(steps)) = (&s.compensations, &steps) {
        for (step, _) in comps {
            if !steps.contains(step) {
                let msg = format!(
                    "`compensations` names \"{step}\", which is not a step (the steps are: {})",
                    steps.join(", ")
                );
                return Err(t.invalid("compensations", &msg));
            }
        }
    }
    for (_, comp) in s.compensations.iter().flatten() {
        if missing(comp) {
            return Err(services("compensations", comp));
        }
    }
    if steps.as_ref().is_none_or(Vec::is_empty) {
        let msg = "the saga has no steps: set `steps` (or `consumer.calls`)";
        return Err(t.invalid("steps", msg));
    }
    Ok(())
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(v) = &self.steps {
            out.strings("steps", v);
        }
        if let Some(v) = &self.compensations {
            out.string_map("compensations", v);
        }
        if let Some(v) = self.state {
            out.string("state", STATES.iter().find(|s| s.0 == v).expect("listed").1);
        }
        if let Some(v) = self.step_retry {
            out.boolean("step_retry", v);
        }
        if let Some(v) = self.compensation_attempts {
            out.integer("compensation_attempts", u64::from(v));
        }
        if let Some(v) = &self.checkpoint {
            out.dist("checkpoint", v);
        }
        if let Some(v) = self.visibility_timeout {
            out.duration("visibility_timeout", v);
        }
    }
}

/// The settings in force, defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The steps' services, in order.
    pub steps: Vec<String>,
    /// Each step's compensation (`None`: nothing to undo).
    pub compensations: Vec<Option<String>>,
    /// Durable or in memory.
    pub state: State,
    /// The step retry schedule (`max_attempts = 1` when `step_retry = false`).
    pub step_retry: RetrySpec,
    /// Tries per compensation.
    pub compensation_attempts: u32,
    /// One history write.
    pub checkpoint: Dist,
    /// When a crashed process's work items reappear.
    pub visibility_timeout: Nanos,
}

impl Settings {
    /// The settings in force for `s`.
    pub fn resolve(s: &Scenario) -> Resolved {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        let steps = mine.steps.unwrap_or_else(|| s.consumer.calls.clone());
        let comps = mine.compensations.unwrap_or_default();
        let compensations = steps
            .iter()
            .map(|step| comps.iter().find(|(k, _)| k == step).map(|(_, v)| v.clone()))
            .collect();
        let mut step_retry = s.retry.clone().unwrap_or(RetrySpec {
            backoff: Backoff::Exponential,
            base: 2 * NS_PER_S,
            max_delay: 5 * NS_PER_MIN,
            max_attempts: 3,
            jitter: false,
        });
        if !mine.step_retry.unwrap_or(true) {
            step_retry.max_attempts = 1;
        }
        Resolved {
            steps,
            compensations,
            state: mine.state.unwrap_or(State::Durable),
            step_retry,
            compensation_attempts: mine.compensation_attempts.unwrap_or(10),
            checkpoint: mine.checkpoint.unwrap_or(Dist::Exp { mean: 10 * NS_PER_MS }),
            visibility_timeout: mine.visibility_timeout.unwrap_or(5 * NS_PER_MIN),
        }
    }
}

/// An activity: a step, or a step's compensation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Activity {
    Step(usize),
    Compensate(usize),
}

/// How an activity ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    /// A transient failure (error, timeout, throttling): retried.
    Failed,
    /// A business refusal (the service said no): not retried.
    Declined,
}

/// One event of an orchestration's history (what Durable Functions appends to its
/// history table at each checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    Scheduled(Activity),
    Completed(Activity, Outcome),
    TimerCreated(Nanos),
    TimerFired,
}

/// How a saga ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Completed,
    Compensated,
    Failed,
}

/// One saga: its order and its history.
struct Saga {
    msg: Message,
    history: RefCell<Vec<Recorded>>,
    ended: Cell<bool>,
}

/// The orchestrator: the sagas (in the task hub, or in its memory), the world's record of
/// what each activity did, and the process that runs them.
struct Orchestrator {
    t: Rc<Topology>,
    cfg: Resolved,
    steps: Vec<usize>,
    compensations: Vec<Option<usize>>,
    /// Open sagas by id: the task hub (durable) or the process's memory (in-memory).
    sagas: RefCell<BTreeMap<u64, Rc<Saga>>>,
    /// Times each activity of each saga took effect at its service.
    effects: RefCell<BTreeMap<(u64, Activity), u32>>,
    /// After a crash: when the dead process's work items become visible again.
    redeliver_at: Cell<Nanos>,
    /// The process (weak: the process's start and crash hooks hold this).
    process: RefCell<std::rc::Weak<Process>>,
    open: Gauge,
    rng: RefCell<Rng>,
    poison: Option<u8>,
}

const COUNTERS: [&str; 13] = [
    "started",
    "completed",
    "compensated",
    "failed_compensation",
    "stuck",
    "step_duplicates",
    "failed",
    "lost",
    "rejected",
    "activities",
    "retries",
    "compensations",
    "replays",
];

/// The API (fed by the workload) and the orchestrator process.
fn build(t: &Rc<Topology>) {
    let cfg = Settings::resolve(&t.scenario);
    for c in COUNTERS {
        t.count(&format!("saga.{c}"), 0.0); // in every summary, so `[expect]` can name them
    }
    let index = |name: &String| t.services.index(name).expect("checked by the loader");
    let o = Rc::new(Orchestrator {
        steps: cfg.steps.iter().map(index).collect(),
        compensations: cfg.compensations.iter().map(|c| c.as_ref().map(index)).collect(),
        cfg,
        t: t.clone(),
        sagas: RefCell::new(BTreeMap::new()),
        effects: RefCell::new(BTreeMap::new()),
        redeliver_at: Cell::new(0),
        process: RefCell::new(std::rc::Weak::new()),
        open: t.gauge("saga.open"),
        rng: RefCell::new(t.rng("saga")),
        poison: (0..=u8::MAX).find(|&c| t.is_poison(c)),
    });
    // The hooks hold it weakly (the topology holds the process); a task of the run, not of
    // the process, keeps it (and what it stores) until the engine shuts down.
    let (start, crash) = (Rc::downgrade(&o), Rc::downgrade(&o));
    let process = t.add_process(
        "orchestrator",
        move |p: &Rc<Process>| start.upgrade().iter().for_each(|x| x.started(p)),
        move |_: &Rc<Process>| crash.upgrade().iter().for_each(|x| x.crashed()),
    );
    let keep = o.clone();
    t.sim.spawn(async move {
        let _kept = keep;
        std::future::pending::<()>().await;
    });
    *o.process.borrow_mut() = Rc::downgrade(&process);
    let api = o.clone();
    t.sim.spawn(t.clone().produce(move |msg| api.accept(msg)));
}

impl Orchestrator {
    fn sim(&self) -> &Sim {
        &self.t.sim
    }

    fn durable(&self) -> bool {
        self.cfg.state == State::Durable
    }

    fn holder(&self) -> Holder {
        if self.durable() { Holder::Store } else { Holder::Handler }
    }

    /// The process, when it runs and takes new work.
    fn running(&self) -> Option<Rc<Process>> {
        self.process.borrow().upgrade().filter(|p| p.is_up() && !p.is_stopping())
    }

    /// The API: start a saga for the order. Durable: the start is written to the task hub
    /// (the orchestrator picks it up whenever it runs). In memory: the orchestrator takes
    /// it, or the API answers 503 when the orchestrator is down.
    fn accept(self: &Rc<Self>, mut msg: Message) {
        let t = &self.t;
        let process = self.running();
        if !self.durable() && process.is_none() {
            t.count("saga.rejected", 1.0);
            t.meters.reject(&msg);
            return;
        }
        t.meters.admit(&mut msg, self.holder());
        t.count("saga.started", 1.0);
        t.count("saga.stuck", 1.0); // until it ends: what is left at the end is stuck
        self.open.add(1.0);
        let saga =
            Rc::new(Saga { msg, history: RefCell::new(Vec::new()), ended: Cell::new(false) });
        self.sagas.borrow_mut().insert(msg.id, saga.clone());
        if let Some(p) = process {
            p.spawn(self.clone().orchestrate(saga));
        }
    }

    /// The process (re)starts: a durable orchestrator replays every open saga.
    fn started(self: &Rc<Self>, p: &Rc<Process>) {
        let open: Vec<Rc<Saga>> = self.sagas.borrow().values().cloned().collect();
        for saga in open {
            if !saga.history.borrow().is_empty() {
                self.t.count("saga.replays", 1.0);
            }
            p.spawn(self.clone().orchestrate(saga));
        }
    }

    /// The process died. Durable: the history is intact; the work items it had taken
    /// reappear after their visibility timeout. In memory: every saga in it is gone.
    fn crashed(&self) {
        let t = &self.t;
        let now = self.sim().now_ns();
        if self.durable() {
            self.redeliver_at.set(now + self.cfg.visibility_timeout);
            return;
        }
        let lost = std::mem::take(&mut *self.sagas.borrow_mut());
        for saga in lost.values() {
            t.meters.trace(&saga.msg, Event::Note("saga_lost"));
            t.meters.exit(&saga.msg, Holder::Handler, Exit::Lost);
            t.count("saga.lost", 1.0); // and it stays stuck
            self.open.add(-1.0);
        }
    }

    /// The orchestrator function: the steps in order, then compensation in reverse if
    /// one fails. Run from the start after every crash: what the history holds is replayed,
    /// not done again.
    async fn orchestrate(self: Rc<Self>, saga: Rc<Saga>) {
        let mut ctx = Replay { o: &self, saga: &saga, cursor: 0 };
        let n = self.steps.len();
        let mut done = 0;
        let mut failed = false;
        for i in 0..n {
            match ctx.with_retries(Activity::Step(i), &self.cfg.step_retry).await {
                Outcome::Done => done += 1,
                Outcome::Failed | Outcome::Declined => {
                    failed = true;
                    break;
                }
            }
        }
        let end = if failed {
            let schedule = RetrySpec {
                max_attempts: self.cfg.compensation_attempts,
                ..self.cfg.step_retry.clone()
            };
            let mut gave_up = false;
            for j in (0..done).rev() {
                if self.compensations[j].is_none() {
                    continue;
                }
                if ctx.with_retries(Activity::Compensate(j), &schedule).await != Outcome::Done {
                    gave_up = true;
                }
            }
            if gave_up { End::Failed } else { End::Compensated }
        } else {
            End::Completed
        };
        ctx.checkpoint().await; // the orchestration's completion is written to the hub
        self.finish(&saga, end);
    }

    /// Runs activity `act` once: one call to its service. Effects are counted at the
    /// service, whether or not the orchestrator lives to record them.
    async fn execute(&self, saga: &Saga, act: Activity) -> Outcome {
        let t = &self.t;
        t.count("saga.activities", 1.0);
        let (idx, last_step) = match act {
            Activity::Step(i) => (self.steps[i], i + 1 == self.steps.len()),
            Activity::Compensate(j) => (self.compensations[j].expect("compensable"), false),
        };
        let outcome = t.services.call(self.sim(), idx).await;
        if last_step && self.poison == Some(saga.msg.class) {
            return Outcome::Declined; // the service answered, with a refusal
        }
        if outcome.is_err() {
            return Outcome::Failed;
        }
        let mut effects = self.effects.borrow_mut();
        let n = effects.entry((saga.msg.id, act)).or_default();
        *n += 1;
        if *n > 1 {
            t.count("saga.step_duplicates", 1.0);
            t.meters.trace(&saga.msg, Event::Note("activity_duplicate"));
        }
        Outcome::Done
    }

    /// The saga has ended: settle its order.
    fn finish(&self, saga: &Saga, end: End) {
        let t = &self.t;
        if saga.ended.replace(true) {
            return;
        }
        self.sagas.borrow_mut().remove(&saga.msg.id);
        self.open.add(-1.0);
        t.count("saga.stuck", -1.0);
        let (counter, note, exit) = match end {
            End::Completed => ("saga.completed", "saga_completed", Exit::Completed),
            End::Compensated => ("saga.compensated", "saga_compensated", Exit::Completed),
            End::Failed => ("saga.failed", "saga_failed", Exit::DeadLettered),
        };
        t.count(counter, 1.0);
        t.meters.trace(&saga.msg, Event::Note(note));
        t.meters.exit(&saga.msg, self.holder(), exit);
    }
}

/// One run of the orchestrator function over a saga's history: each await either finds
/// its result in the history (replay) or does the work and records it.
struct Replay<'a> {
    o: &'a Orchestrator,
    saga: &'a Saga,
    cursor: usize,
}

impl Replay<'_> {
    fn next(&self) -> Option<Recorded> {
        self.saga.history.borrow().get(self.cursor).copied()
    }

    /// One history write: it takes `checkpoint` when durable (in memory, nothing is
    /// written).
    async fn checkpoint(&self) {
        if self.o.durable() {
            let d = self.o.cfg.checkpoint.sample(&mut self.o.rng.borrow_mut());
            self.o.sim().sleep(d).await;
        }
    }

    /// Appends `event` to the history (after the write's time: a crash before the write
    /// ends leaves nothing).
    async fn record(&mut self, event: Recorded) {
        self.checkpoint().await;
        self.saga.history.borrow_mut().push(event);
        self.cursor += 1;
        self.note(event);
    }

    fn note(&self, event: Recorded) {
        let t = &self.o.t;
        let what = match event {
            Recorded::Completed(Activity::Step(_), Outcome::Done) => "step_done",
            Recorded::Completed(Activity::Compensate(_), Outcome::Done) => "compensation_done",
            _ => return,
        };
        t.meters.trace(&self.saga.msg, Event::Note(what));
    }

    /// Calls activity `act` (durable: schedule it, run it, record its result), or replays
    /// its recorded result.
    async fn activity(&mut self, act: Activity) -> (Outcome, bool) {
        match self.next() {
            None => self.record(Recorded::Scheduled(act)).await,
            Some(Recorded::Scheduled(a)) if a == act => {
                self.cursor += 1;
                if let Some(Recorded::Completed(a, outcome)) = self.next() {
                    debug_assert_eq!(a, act);
                    self.cursor += 1;
                    return (outcome, false);
                }
                // Scheduled before a crash, result never recorded: its work item comes back
                // after the visibility timeout and the activity runs again.
                let at = self.o.redeliver_at.get();
                self.o.sim().sleep_until(SimTime(at)).await;
            }
            Some(other) => unreachable!("replay diverged: {other:?} where {act:?} was expected"),
        }
        let outcome = self.o.execute(self.saga, act).await;
        self.record(Recorded::Completed(act, outcome)).await;
        (outcome, true)
    }

    /// A durable timer of `delay` (replayed: its original due time).
    async fn timer(&mut self, delay: Nanos) {
        let due = match self.next() {
            None => {
                let due = self.o.sim().now_ns() + delay;
                self.record(Recorded::TimerCreated(due)).await;
                due
            }
            Some(Recorded::TimerCreated(due)) => {
                self.cursor += 1;
                if self.next() == Some(Recorded::TimerFired) {
                    self.cursor += 1;
                    return;
                }
                due
            }
            Some(other) => unreachable!("replay diverged: {other:?} where a timer was expected"),
        };
        self.o.sim().sleep_until(SimTime(due)).await;
        self.record(Recorded::TimerFired).await;
    }

    /// `act` with up to `schedule.max_attempts` attempts (0: no limit), durable timers in
    /// between; a declined activity is not retried.
    async fn with_retries(&mut self, act: Activity, schedule: &RetrySpec) -> Outcome {
        let t = &self.o.t;
        if matches!(act, Activity::Compensate(_)) && self.next().is_none() {
            t.count("saga.compensations", 1.0);
        }
        let mut backoff = RetryState::default();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (outcome, fresh) = self.activity(act).await;
            if outcome != Outcome::Failed || !RetryState::may_retry(schedule, attempts) {
                if fresh && outcome == Outcome::Failed && matches!(act, Activity::Compensate(_)) {
                    t.count("saga.failed_compensation", 1.0);
                    t.meters.trace(&self.saga.msg, Event::Note("compensation_given_up"));
                }
                return outcome;
            }
            if self.next().is_none() {
                t.count("saga.retries", 1.0);
            }
            let delay = backoff.next_delay(schedule, &mut self.o.rng.borrow_mut());
            self.timer(delay).await;
        }
    }
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let r = Settings::resolve(s);
    let compensable = r.compensations.iter().map(Option::is_some).collect();
    vec![Box::new(SagaEnds::new(r.state, compensable))]
}

/// Every saga that ends, ends consistent: completed after all its steps, or compensated
/// after a compensation of every completed step that has one (failed only when a
/// compensation was given up); with durable state, no saga is lost to a crash, and a run
/// that drained left none stuck. The summary's books agree with the events.
#[derive(Debug)]
pub struct SagaEnds {
    state: State,
    compensable: Vec<bool>,
    /// Per open saga: steps done, compensations done, compensations given up.
    open: BTreeMap<u64, (usize, usize, usize)>,
    ended: [u64; 4],
    found: Vec<Violation>,
}

impl SagaEnds {
    /// A checker for sagas whose steps are compensable as `compensable` says.
    pub fn new(state: State, compensable: Vec<bool>) -> SagaEnds {
        SagaEnds { state, compensable, open: BTreeMap::new(), ended: [0; 4], found: Vec::new() }
    }

    fn broken(&mut self, at: Nanos, message: String) {
        if self.found.len() < 100 {
            self.found.push(Violation { checker: "saga-ends", at, message });
        }
    }
}

impl Checker for SagaEnds {
    fn name(&self) -> &'static str {
        "saga-ends"
    }

    fn observe(&mut self, e: &TraceEvent) {
        let Event::Note(what) = e.what else { return };
        let entry = self.open.entry(e.id).or_default();
        match what {
            "step_done" => entry.0 += 1,
            "compensation_done" => entry.1 += 1,
            "compensation_given_up" => entry.2 += 1,
            "saga_completed" | "saga_compensated" | "saga_failed" | "saga_lost" => {
                let (steps, comps, given_up) = self.open.remove(&e.id).unwrap_or_default();
                let owed = self.compensable.iter().take(steps).filter(|c| **c).count();
                let n = self.compensable.len();
                let (k, ok, why) = match what {
                    "saga_completed" => (0, steps == n, format!("after {steps} of {n} steps")),
                    "saga_compensated" => (
                        1,
                        steps < n && comps == owed && given_up == 0,
                        format!("{comps} of {owed} compensations done after {steps} steps"),
                    ),
                    "saga_failed" => (
                        2,
                        given_up > 0 && comps + given_up == owed,
                        format!("{given_up} given up, {comps} done, {owed} owed"),
                    ),
                    _ => (3, self.state == State::InMemory, "durable state lost".to_string()),
                };
                self.ended[k] += 1;
                if !ok {
                    self.broken(e.t, format!("saga {} ended {what}: {why}", e.id));
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
        let Some(section) = r.sections.get("saga") else { return };
        let get = |k: &str| section.get(k).copied().unwrap_or(0.0) as u64;
        let mut broken = |message: String| {
            out.push(Violation { checker: "saga-ends", at: r.sim_time, message });
        };
        let books = [
            ("completed", self.ended[0]),
            ("compensated", self.ended[1]),
            ("failed", self.ended[2]),
            ("lost", self.ended[3]),
        ];
        for (key, seen) in books {
            if get(key) != seen {
                broken(format!("saga.{key} is {} but {seen} sagas ended so", get(key)));
            }
        }
        let ended = self.ended.iter().sum::<u64>() - self.ended[3];
        if get("started") != ended + get("stuck") {
            broken(format!("{} started != {ended} ended + {} stuck", get("started"), get("stuck")));
        }
        if self.state == State::Durable && r.ledger.in_flight == 0 && get("stuck") > 0 {
            broken(format!("durable state, the run drained, yet {} sagas stuck", get("stuck")));
        }
    }
}
