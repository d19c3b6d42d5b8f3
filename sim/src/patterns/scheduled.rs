//! # Scheduled: cron ticks with a lease lock
//!
//! ```text
//!   schedule (6-field NCRONTAB) ── tick ──► instance 0 ─┐ acquire the lease ──► run the job
//!                                      └──► instance 1 ─┤ (held: poll every lock_poll;   │
//!                                      └──► instance N ─┘  the tick already ran: skip)   │
//!        [lease] [schedule status: last tick run] ◄── status written, lease released ◄───┘
//!        (both in storage, outside the process)
//! ```
//!
//! Demonstrates:
//! * a Functions timer trigger on several instances: every instance's timer fires each tick,
//!   and a lease lock (the host's singleton lock on a blob) lets one of them run it; the
//!   others wait for the lease and, once they get it, find in the schedule status that the
//!   tick has run, and skip it;
//! * `renew_lease = false`: a job that outlives its lease lets a waiting instance take the
//!   lease, find the tick not yet marked done, and run it a second time, next to the
//!   first (`schedule.duplicate_runs`, `schedule.overlapping`); `lock = "none"` runs every
//!   tick on every instance;
//! * ticks that come due while every instance is down are missed (`schedule.missed`); on
//!   restart the schedule monitor (Functions `useMonitor`) finds the schedule past due and
//!   `run_on_startup_if_missed` runs one catch-up run for them, as the timer trigger's
//!   `IsPastDue` invocation does. A crash mid-job leaves the lease held until it expires
//!   and the status unwritten: the tick is run again by that catch-up (the timer trigger
//!   itself never retries a run).
//!
//! A message is one tick: produced when the tick comes due, taken by the first run that
//! starts on it, completed when that run succeeds (`messages.dead_lettered`: the run failed,
//! and a timer trigger does not retry), lost when the schedule moves past it without a run
//! (`schedule.skipped`: missed and not caught up, or overrun by a long job on the only
//! instance awake). A second run of a tick is counted as a duplicate effect
//! (`messages.duplicates`), not as a second message. The workload's arrivals are not used.
//!
//! Settings, in `[schedule]`:
//!
//! ```toml
//! [schedule]
//! cron = "0 */5 * * * *"       # {second} {minute} {hour} {day} {month} {day-of-week}
//! job = "lognormal(mean=2m, p99=8m)"
//! lock = "lease"               # lease | none
//! lease = "60s"                # the lease's duration (Functions: 60 s listener lock)
//! renew_lease = true           # renew at half the lease while the job runs
//! run_on_startup_if_missed = true   # useMonitor: default true when ticks are >= 1 min apart
//! lock_poll = "5s"             # an instance waiting for the lease tries again this often
//! lease_kind = "blob"          # blob | redis: whether an expired lease can still be renewed
//! ```
//!
//! The instances are `consumer.instances`, all in one process, `scheduler`: a crash fault
//! (`target = "scheduler"`) stops every instance (the function app). The job's work is `job`,
//! then one call to each of `consumer.calls` (retried as `[retry]` says). Simulated time 0
//! is Monday 2024-01-01 00:00:00 UTC, the time zone UTC (the default `WEBSITE_TIME_ZONE`).

use crate::check::{Checker, Violation};
use crate::dist::Dist;
use crate::engine::Sim;
use crate::ledger::{Event, Exit, Holder, Message, TraceEvent};
use crate::model::lease::{Flavour, Grant, Lease, Owner};
use crate::model::process::Process;
use crate::model::series::Gauge;
use crate::model::service::Downstream;
use crate::patterns::{Pattern, SettingsTable};
use crate::results::RunResults;
use crate::rng::Rng;
use crate::spec::table::{PatternSettings, TableError, TableReader, TableWriter};
use crate::spec::{PatternKind, Scenario};
use crate::time::{NS_PER_MIN, NS_PER_S, Nanos, SimTime};
use crate::topology::Topology;
use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The pattern's name in scenario files.
pub const KIND: PatternKind = PatternKind::named("scheduled");

/// The registry entry.
pub const PATTERN: Pattern = Pattern {
    kind: KIND,
    about: "cron ticks on several instances under a lease lock: one run per tick, missed ticks, catch-up",
    section: Some("schedule"),
    hosted: false,
    table: Some(SettingsTable { name: "schedule", read }),
    build,
    checkers,
    processes: &["scheduler"],
};

/// How instances keep a tick to one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// A lease in storage, held while the job runs.
    Lease,
    /// No lock: every instance runs every tick.
    None,
}

const LOCKS: [(Lock, &str); 2] = [(Lock::Lease, "lease"), (Lock::None, "none")];
const FLAVOURS: [(Flavour, &str); 2] = [(Flavour::Blob, "blob"), (Flavour::Redis, "redis")];

/// `[schedule]`: each key is optional (see the module docs for the defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The 6-field NCRONTAB expression.
    pub cron: Option<String>,
    /// How long a run's job takes.
    pub job: Option<Dist>,
    /// Lease or none.
    pub lock: Option<Lock>,
    /// The lease's duration.
    pub lease: Option<Nanos>,
    /// Renew the lease while the job runs.
    pub renew_lease: Option<bool>,
    /// Run one catch-up when the schedule is past due at start.
    pub run_on_startup_if_missed: Option<bool>,
    /// How often an instance waiting for the lease tries again.
    pub lock_poll: Option<Nanos>,
    /// Blob or Redis rules for the lease.
    pub lease_kind: Option<Flavour>,
}

/// The default schedule: every five minutes.
pub const DEFAULT_CRON: &str = "0 */5 * * * *";

/// Parses a 6-field NCRONTAB expression as the Functions timer trigger reads it: seconds
/// first, no year, days of the week 0-6 from Sunday (names allowed), and a day that must
/// match both the day-of-month and the day-of-week fields when both are given (NCrontab
/// checks the day of the week after the date).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "\"{expr}\" has {fields} fields; an NCRONTAB expression has 6: {{second}} {{minute}} \
             {{hour}} {{day}} {{month}} {{day-of-week}} (add the seconds: \"0 {expr}\")"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("\"{expr}\" is not a valid NCRONTAB expression: {e}"))
}

/// Simulated time 0 on the wall clock: Monday 2024-01-01 00:00:00 UTC.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("a valid date")
}

/// The first occurrence of `cron` strictly after `after` (simulated time).
pub fn next_tick(cron: &Cron, after: Nanos) -> Option<Nanos> {
    let e = epoch();
    let at = e + chrono::Duration::seconds((after / NS_PER_S) as i64);
    let next = cron.find_next_occurrence(&at, false).ok()?;
    let secs = (next - e).num_seconds();
    u64::try_from(secs).ok().map(|s| s * NS_PER_S)
}

/// The last occurrence of `cron` at or before `at` (simulated time), if any after time 0.
pub fn previous_tick(cron: &Cron, at: Nanos) -> Option<Nanos> {
    let e = epoch();
    let t = e + chrono::Duration::seconds((at / NS_PER_S) as i64);
    let prev = cron.find_previous_occurrence(&t, true).ok()?;
    u64::try_from((prev - e).num_seconds()).ok().filter(|&s| s > 0).map(|s| s * NS_PER_S)
}

fn read(t: &mut dyn TableReader) -> Result<Arc<dyn PatternSettings>, TableError> {
    let s = Settings {
        cron: t.string("cron")?,
        job: t.dist("job")?,
        lock: t.choice("lock", &LOCKS.map(|l| l.1))?.map(|i| LOCKS[i].0),
        lease: t.duration("lease")?,
        renew_lease: t.boolean("renew_lease")?,
        run_on_startup_if_missed: t.boolean("run_on_startup_if_missed")?,
        lock_poll: t.duration("lock_poll")?,
        lease_kind: t.choice("lease_kind", &FLAVOURS.map(|l| l.1))?.map(|i| FLAVOURS[i].0),
    };
    if let Some(expr) = &s.cron {
        let cron = parse_cron(expr).map_err(|e| t.invalid("cron", &e))?;
        if next_tick(&cron, 0).is_none() {
            let msg = format!("\"{expr}\" never comes due");
            return Err(t.invalid("cron", &msg));
        }
    }
    for key in ["lease", "lock_poll"] {
        let v = if key == "lease" { s.lease } else { s.lock_poll };
        if v == Some(0) {
            return Err(t.invalid(key, &format!("`{key}` must be longer than 0")));
        }
    }
    if s.lock == Some(Lock::None) {
        for (key, set) in [
            ("lease", s.lease.is_some()),
            ("renew_lease", s.renew_lease.is_some()),
            ("lease_kind", s.lease_kind.is_some()),
        ] {
            if set {
                let msg =
                    format!("`{key}` needs lock = \"lease\" (this table has lock = \"none\")");
                return Err(t.invalid(key, &msg));
            }
        }
    }
    Ok(Arc::new(s))
}

impl PatternSettings for Settings {
    fn write(&self, out: &mut dyn TableWriter) {
        if let Some(v) = &self.cron {
            out.string("cron", v);
        }
        if let Some(v) = &self.job {
            out.dist("job", v);
        }
        if let Some(v) = self.lock {
            out.string("lock", LOCKS.iter().find(|l| l.0 == v).expect("listed").1);
        }
        if let Some(v) = self.lease {
            out.duration("lease", v);
        }
        if let Some(v) = self.renew_lease {
            out.boolean("renew_lease", v);
        }
        if let Some(v) = self.run_on_startup_if_missed {
            out.boolean("run_on_startup_if_missed", v);
        }
        if let Some(v) = self.lock_poll {
            out.duration("lock_poll", v);
        }
        if let Some(v) = self.lease_kind {
            out.string("lease_kind", FLAVOURS.iter().find(|l| l.0 == v).expect("listed").1);
        }
    }
}

/// The settings in force, defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The expression.
    pub cron: String,
    /// The job's duration.
    pub job: Dist,
    /// Lease or none.
    pub lock: Lock,
    /// The lease's duration.
    pub lease: Nanos,
    /// Renew while the job runs.
    pub renew_lease: bool,
    /// One catch-up run when past due at start.
    pub catch_up: bool,
    /// Lease polling interval.
    pub lock_poll: Nanos,
    /// Blob or Redis rules.
    pub lease_kind: Flavour,
}

impl Settings {
    /// The settings in force for `s`.
    pub fn resolve(s: &Scenario) -> Resolved {
        let mine = s.pattern_table.get::<Settings>().cloned().unwrap_or_default();
        let cron = mine.cron.unwrap_or_else(|| DEFAULT_CRON.to_string());
        let parsed = parse_cron(&cron).expect("checked by the loader");
        // useMonitor's default: on for schedules whose ticks are at least a minute apart.
        let monitor = match next_tick(&parsed, 0) {
            Some(first) => {
                next_tick(&parsed, first).is_none_or(|second| second - first >= NS_PER_MIN)
            }
            None => true,
        };
        Resolved {
            cron,
            job: mine.job.unwrap_or_else(|| {
                Dist::lognormal(2 * NS_PER_MIN, 8 * NS_PER_MIN).expect("a valid distribution")
            }),
            lock: mine.lock.unwrap_or(Lock::Lease),
            lease: mine.lease.unwrap_or(60 * NS_PER_S),
            renew_lease: mine.renew_lease.unwrap_or(true),
            catch_up: mine.run_on_startup_if_missed.unwrap_or(monitor),
            lock_poll: mine.lock_poll.unwrap_or(5 * NS_PER_S),
            lease_kind: mine.lease_kind.unwrap_or(Flavour::Blob),
        }
    }
}

/// A tick's message and the runs on it.
struct Tick {
    msg: Message,
    /// The run that holds the message (took it out of the schedule), if one runs.
    holder: Option<u64>,
    /// Runs in progress on this tick.
    live: u32,
    /// A run ended on it.
    ran: bool,
    /// The schedule moved past it before any run: its message left as lost.
    skipped: bool,
}

/// The schedule, its lease and status (in storage), and the instances' process.
struct Scheduler {
    t: Rc<Topology>,
    cfg: Resolved,
    cron: Cron,
    lease: Rc<RefCell<Lease>>,
    /// The schedule monitor's status: the last tick whose run ended (`Last`).
    last_run: Cell<Option<Nanos>>,
    ticks: RefCell<BTreeMap<Nanos, Tick>>,
    /// Runs in progress: run id -> tick.
    running: RefCell<BTreeMap<u64, Nanos>>,
    next_run: Cell<u64>,
    incarnation: Cell<u64>,
    /// The process (weak: the process's start and crash hooks hold this).
    process: RefCell<std::rc::Weak<Process>>,
    gauge: Gauge,
    calls: Downstream,
    rng: RefCell<Rng>,
}

const COUNTERS: [&str; 11] = [
    "ticks",
    "runs",
    "missed",
    "overlapping",
    "duplicate_runs",
    "catch_up_runs",
    "skipped",
    "failed",
    "crashed_runs",
    "lease_waits",
    "lease_takeovers",
];

/// The schedule's clock and the `scheduler` process with its instances.
fn build(t: &Rc<Topology>) {
    let cfg = Settings::resolve(&t.scenario);
    for c in COUNTERS {
        t.count(&format!("schedule.{c}"), 0.0); // in every summary, so `[expect]` can name them
    }
    let s = Rc::new(Scheduler {
        cron: parse_cron(&cfg.cron).expect("checked by the loader"),
        lease: Rc::new(RefCell::new(Lease::new(cfg.lease_kind))),
        cfg,
        t: t.clone(),
        last_run: Cell::new(None),
        ticks: RefCell::new(BTreeMap::new()),
        running: RefCell::new(BTreeMap::new()),
        next_run: Cell::new(0),
        incarnation: Cell::new(0),
        process: RefCell::new(std::rc::Weak::new()),
        gauge: t.gauge("schedule.running"),
        calls: t.downstream(&t.scenario.consumer.calls),
        rng: RefCell::new(t.rng("schedule")),
    });
    // The hooks hold it weakly (the topology holds the process); a task of the run, not of
    // the process, keeps it (and what it stores) until the engine shuts down.
    let (start, crash) = (Rc::downgrade(&s), Rc::downgrade(&s));
    let process = t.add_process(
        "scheduler",
        move |p: &Rc<Process>| start.upgrade().iter().for_each(|x| x.started(p)),
        move |_: &Rc<Process>| crash.upgrade().iter().for_each(|x| x.crashed()),
    );
    let keep = s.clone();
    t.sim.spawn(async move {
        let _kept = keep;
        std::future::pending::<()>().await;
    });
    *s.process.borrow_mut() = Rc::downgrade(&process);
    t.sim.spawn(s.clone().clock());
}

impl Scheduler {
    fn sim(&self) -> &Sim {
        &self.t.sim
    }

    fn awake(&self) -> bool {
        self.process.borrow().upgrade().is_some_and(|p| p.is_up() && !p.is_stopping())
    }

    /// The schedule's own clock (outside every process): each tick in the run's duration
    /// comes due, whether or not an instance is up to see it.
    async fn clock(self: Rc<Self>) {
        let end = self.t.scenario.duration;
        let mut at = 0;
        while let Some(tick) = next_tick(&self.cron, at).filter(|&k| k < end) {
            self.sim().sleep_until(SimTime(tick)).await;
            self.due(tick);
            if !self.awake() {
                self.t.count("schedule.missed", 1.0);
                let msg = self.ticks.borrow()[&tick].msg;
                self.t.meters.trace(&msg, Event::Note("missed"));
            }
            at = tick;
        }
        self.sim().sleep_until(SimTime(end)).await;
        self.t.meters.production_ended();
    }

    /// Tick `tick` has come due: its message enters the schedule (once).
    fn due(&self, tick: Nanos) {
        let t = &self.t;
        if self.ticks.borrow().contains_key(&tick) {
            return;
        }
        let mut msg = t.meters.produce(0);
        t.meters.admit(&mut msg, Holder::Store);
        t.count("schedule.ticks", 1.0);
        let state = Tick { msg, holder: None, live: 0, ran: false, skipped: false };
        self.ticks.borrow_mut().insert(tick, state);
    }

    /// The process (re)starts: its instances start their timers.
    fn started(self: &Rc<Self>, p: &Rc<Process>) {
        let n = self.incarnation.get() + 1;
        self.incarnation.set(n);
        for i in 0..self.t.scenario.consumer.instances {
            let owner: Owner = n * 1_000_000 + u64::from(i);
            p.spawn(self.clone().instance(owner));
        }
    }

    /// The process died: its runs are gone mid-job. Each tick they held goes back to the
    /// schedule (its status was never written); the lease stays held until it expires.
    fn crashed(&self) {
        let t = &self.t;
        let runs = std::mem::take(&mut *self.running.borrow_mut());
        let killed = runs.len() as u64;
        let mut ticks = self.ticks.borrow_mut();
        for (run, tick) in runs {
            t.count("schedule.crashed_runs", 1.0);
            let k = ticks.get_mut(&tick).expect("a run's tick");
            k.live -= 1;
            t.meters.trace(&k.msg, Event::Note("run_killed"));
            if k.holder == Some(run) {
                k.holder = None;
                t.meters.hand_over(&mut k.msg, Holder::Handler, Holder::Store);
            }
        }
        self.gauge.set(0.0);
        drop(ticks);
        t.meters.executions_ended(killed);
    }

    /// One instance's timer: on start, the schedule monitor's past-due check (one catch-up
    /// run when missed ticks are found and `run_on_startup_if_missed`), then each tick.
    async fn instance(self: Rc<Self>, owner: Owner) {
        let end = self.t.scenario.duration;
        let start = self.sim().now_ns();
        if self.cfg.catch_up
            && let Some(tick) = self.past_due(start)
        {
            self.fire(owner, tick, true).await;
        }
        let mut base = start;
        while let Some(tick) = next_tick(&self.cron, base).filter(|&k| k < end) {
            self.sim().sleep_until(SimTime(tick)).await;
            if !self.awake() {
                return; // stopping: no new runs
            }
            let fired = self.sim().now_ns();
            self.fire(owner, tick, false).await;
            // As the timer listener: the next tick is the first after this invocation
            // started (a run that overran ticks fires once, late, for the next of them).
            base = fired.max(tick);
        }
    }

    /// The tick to catch up at `now`: the last one due, when the status shows a tick due
    /// since the last run (none at the very first start, as the monitor's initial status).
    fn past_due(&self, now: Nanos) -> Option<Nanos> {
        let from = self.last_run.get()?;
        let next = next_tick(&self.cron, from)?;
        let latest = previous_tick(&self.cron, now)?;
        (next <= now && latest < self.t.scenario.duration).then_some(latest)
    }

    /// Whether the status shows `tick` (or a later one) run.
    fn ran(&self, tick: Nanos) -> bool {
        self.last_run.get().is_some_and(|last| last >= tick)
    }

    /// The timer fired for `tick` on `owner`: take the lease (waiting for it while
    /// another instance holds it) and run the tick, unless the status shows it ran.
    async fn fire(&self, owner: Owner, tick: Nanos, catch_up: bool) {
        self.due(tick);
        if self.cfg.lock == Lock::None {
            if !self.ran(tick) {
                self.run(tick, None, catch_up).await;
            }
            return;
        }
        let mut waited = false;
        loop {
            if self.ran(tick) || !self.awake() {
                return;
            }
            let now = self.sim().now_ns();
            let grant = {
                let mut lease = self.lease.borrow_mut();
                let before = lease.stats().2;
                let g = lease.acquire(owner, now, self.cfg.lease);
                if lease.stats().2 > before {
                    // taken after it expired under a holder that never released it
                    self.t.count("schedule.lease_takeovers", 1.0);
                }
                g
            };
            match grant {
                Some(grant) => {
                    if self.ran(tick) {
                        let _ = self.lease.borrow_mut().release(&grant);
                        return;
                    }
                    self.run(tick, Some(grant), catch_up).await;
                    return;
                }
                None => {
                    if !waited {
                        waited = true;
                        self.t.count("schedule.lease_waits", 1.0);
                    }
                    self.sim().sleep(self.cfg.lock_poll).await;
                }
            }
        }
    }

    /// One run of the job for `tick`, holding `grant` (renewed at half the lease while it
    /// runs, when `renew_lease`).
    async fn run(&self, tick: Nanos, grant: Option<Grant>, catch_up: bool) {
        let id = self.next_run.get();
        self.next_run.set(id + 1);
        self.start_run(id, tick, catch_up);
        let renewing = Rc::new(Cell::new(true));
        if let (Some(g), true) = (grant, self.cfg.renew_lease)
            && let Some(p) = self.process.borrow().upgrade()
        {
            let (sim, lease) = (self.sim().clone(), self.lease.clone());
            p.spawn(renew(sim, lease, g, self.cfg.lease, renewing.clone()));
        }
        let work = self.cfg.job.sample(&mut self.rng.borrow_mut());
        self.sim().sleep(work).await;
        let ok = self.calls.call_all().await.is_ok();
        renewing.set(false);
        self.end_run(id, tick, ok);
        if let Some(g) = grant {
            // Refused when the lease expired and another instance took it.
            let _ = self.lease.borrow_mut().release(&g);
        }
    }

    /// A run starts: counted, and the tick's message taken (first run) or the run counted
    /// as a duplicate; ticks before it that never ran are skipped for good.
    fn start_run(&self, id: u64, tick: Nanos, catch_up: bool) {
        let t = &self.t;
        t.count("schedule.runs", 1.0);
        if catch_up {
            t.count("schedule.catch_up_runs", 1.0);
        }
        if !self.running.borrow().is_empty() {
            t.count("schedule.overlapping", 1.0);
        }
        self.running.borrow_mut().insert(id, tick);
        self.gauge.add(1.0);
        t.meters.execution_started(); // the run does not end while a job runs
        let mut ticks = self.ticks.borrow_mut();
        for (_, k) in ticks.range_mut(..tick) {
            if !k.ran && !k.skipped && k.live == 0 {
                k.skipped = true;
                t.count("schedule.skipped", 1.0);
                t.meters.trace(&k.msg, Event::Note("skipped"));
                t.meters.exit(&k.msg, Holder::Store, Exit::Lost);
            }
        }
        let k = ticks.get_mut(&tick).expect("the tick came due");
        t.meters.trace(&k.msg, Event::Note("run_started"));
        if k.ran || k.live > 0 {
            t.count("schedule.duplicate_runs", 1.0);
        } else if !k.skipped {
            k.holder = Some(id);
            t.meters.hand_over(&mut k.msg, Holder::Store, Holder::Handler);
            t.meters.delivered();
        }
        k.live += 1;
    }

    /// A run ends: the status is written (`Last` = its tick), and the tick's message
    /// settles with the run that holds it; a duplicate that succeeds is a duplicate effect.
    fn end_run(&self, id: u64, tick: Nanos, ok: bool) {
        let t = &self.t;
        self.running.borrow_mut().remove(&id);
        self.gauge.add(-1.0);
        self.last_run.set(Some(self.last_run.get().map_or(tick, |l| l.max(tick))));
        if !ok {
            t.count("schedule.failed", 1.0);
            t.meters.failed();
        }
        let mut ticks = self.ticks.borrow_mut();
        let k = ticks.get_mut(&tick).expect("the tick came due");
        k.live -= 1;
        t.meters.trace(&k.msg, Event::Note("run_ended"));
        let duplicate = k.ran || k.holder.is_some_and(|h| h != id);
        k.ran = true;
        if k.holder == Some(id) {
            k.holder = None;
            let exit = if ok { Exit::Completed } else { Exit::DeadLettered };
            t.meters.exit(&k.msg, Holder::Handler, exit);
        } else if ok && duplicate {
            t.meters.duplicate();
        }
        drop(ticks);
        t.meters.executions_ended(1);
    }
}

/// Renews `grant` every half lease while `renewing` (a task of the process: a crash ends
/// the renewals, and the lease runs out).
async fn renew(
    sim: Sim,
    lease: Rc<RefCell<Lease>>,
    grant: Grant,
    d: Nanos,
    renewing: Rc<Cell<bool>>,
) {
    loop {
        sim.sleep((d / 2).max(1)).await;
        if !renewing.get() || lease.borrow_mut().renew(&grant, sim.now_ns(), d).is_err() {
            return;
        }
    }
}

fn checkers(s: &Scenario) -> Vec<Box<dyn Checker>> {
    let r = Settings::resolve(s);
    vec![Box::new(OneRunPerTick::new(r.lock == Lock::Lease && r.renew_lease))]
}

/// Recounts the runs from their events: a run that starts on a tick that has a run in
/// progress, or whose run already ended, is a duplicate; with a renewed lease there must be
/// none, and no two runs at once. The summary's books must agree.
#[derive(Debug)]
pub struct OneRunPerTick {
    exclusive: bool,
    /// Per tick: runs in progress, and whether a run ended.
    ticks: BTreeMap<u64, (u32, bool)>,
    in_progress: u32,
    runs: u64,
    duplicates: u64,
    overlapping: u64,
    found: Vec<Violation>,
}

impl OneRunPerTick {
    /// A checker; `exclusive`: the design promises one run per tick and no overlap.
    pub fn new(exclusive: bool) -> OneRunPerTick {
        OneRunPerTick {
            exclusive,
            ticks: BTreeMap::new(),
            in_progress: 0,
            runs: 0,
            duplicates: 0,
            overlapping: 0,
            found: Vec::new(),
        }
    }
}

impl Checker for OneRunPerTick {
    fn name(&self) -> &'static str {
        "one-run-per-tick"
    }

    fn observe(&mut self, e: &TraceEvent) {
        let Event::Note(what) = e.what else { return };
        let tick = self.ticks.entry(e.id).or_default();
        match what {
            "run_started" => {
                self.runs += 1;
                let duplicate = tick.0 > 0 || tick.1;
                tick.0 += 1;
                if self.in_progress > 0 {
                    self.overlapping += 1;
                }
                self.in_progress += 1;
                if duplicate {
                    self.duplicates += 1;
                    if self.exclusive && self.found.len() < 100 {
                        self.found.push(Violation {
                            checker: "one-run-per-tick",
                            at: e.t,
                            message: format!(
                                "tick {} run a second time under a renewed lease",
                                e.id
                            ),
                        });
                    }
                }
            }
            "run_ended" => {
                tick.0 -= 1;
                tick.1 = true;
                self.in_progress -= 1;
            }
            "run_killed" => {
                tick.0 -= 1;
                self.in_progress -= 1;
            }
            _ => {}
        }
    }

    fn finish(&mut self, r: &RunResults, out: &mut Vec<Violation>) {
        out.append(&mut self.found);
        let Some(section) = r.sections.get("schedule") else { return };
        let get = |k: &str| section.get(k).copied().unwrap_or(0.0) as u64;
        let books = [
            ("runs", self.runs),
            ("duplicate_runs", self.duplicates),
            ("overlapping", self.overlapping),
        ];
        for (key, seen) in books {
            if get(key) != seen {
                out.push(Violation {
                    checker: "one-run-per-tick",
                    at: r.sim_time,
                    message: format!(
                        "schedule.{key} is {} but the runs' events say {seen}",
                        get(key)
                    ),
                });
            }
        }
        if self.exclusive && self.overlapping > 0 {
            out.push(Violation {
                checker: "one-run-per-tick",
                at: r.sim_time,
                message: format!("{} runs overlapped under a renewed lease", self.overlapping),
            });
        }
    }
}
