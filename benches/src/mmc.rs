//! One M/M/c model, four implementations.
//!
//! Customers arrive in a Poisson stream, wait in one FIFO queue and are served by `c`
//! identical exponential servers; a run stops at the `customers`-th service completion.
//!
//! [`sluice_engine`], [`simcore()`] and [`bare`] draw inter-arrival times from the stream
//! `arrivals` and service times from the stream `service` (both `sim::rng::Rng`, sampled with
//! `sim::dist::Dist::Exp`, i.e. libm), a service time when the service starts. Event times
//! are integer nanoseconds (simcore's `f64` clock holds them exactly below 2^53 ns, about
//! 104 days), and all three break ties in the order events were scheduled, so they serve
//! the same customers at the same instants: their [`Outcome`]s are equal. [`whole_run`]
//! is the same model as a `sim::run` scenario (with its own streams and meters), so it
//! agrees with the others and with Erlang C statistically.

use sim::dist::Dist;
use sim::engine::{Sim, WaitList};
use sim::rng::Rng;
use sim::spec::*;
use sim::time::*;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

/// The model's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Servers (c).
    pub servers: u32,
    /// Mean time between arrivals (1/λ), ns.
    pub interarrival_mean_ns: Nanos,
    /// Mean service time (1/μ), ns.
    pub service_mean_ns: Nanos,
    /// The run stops at this many service completions.
    pub customers: u64,
    /// Seed of the random streams.
    pub seed: u64,
}

impl Params {
    /// M/M/10 at ρ = 0.9: 90 arrivals/s, service 100 ms (`scenarios/validation/mmc.toml`).
    pub fn standard(customers: u64) -> Params {
        Params {
            servers: 10,
            interarrival_mean_ns: 11_111_111,
            service_mean_ns: 100 * NS_PER_MS,
            customers,
            seed: 1,
        }
    }

    /// Arrivals per second.
    pub fn lambda_per_s(&self) -> f64 {
        NS_PER_S as f64 / self.interarrival_mean_ns as f64
    }

    /// Offered load per server.
    pub fn rho(&self) -> f64 {
        self.service_mean_ns as f64 / self.interarrival_mean_ns as f64 / f64::from(self.servers)
    }

    /// Erlang C: the probability that an arriving customer waits.
    pub fn p_wait(&self) -> f64 {
        erlang_c(self.servers, self.service_mean_ns as f64 / self.interarrival_mean_ns as f64)
    }

    /// Erlang C mean wait in queue, ns: `P(wait) / (cμ - λ)`.
    pub fn theory_wait_ns(&self) -> f64 {
        let lambda = 1.0 / self.interarrival_mean_ns as f64;
        let mu = 1.0 / self.service_mean_ns as f64;
        self.p_wait() / (f64::from(self.servers) * mu - lambda)
    }

    /// How far (relative) a run's mean wait may lie from Erlang C: five standard errors at
    /// ρ = 0.9, c = 10, plus 1 % for the bias of starting empty. Waits are strongly
    /// correlated near saturation: the mean wait of n customers has a relative standard error
    /// of about `31 / sqrt(n)` (measured with [`bare`] over 40 seeds: 25.6/√n at n = 1e5,
    /// 30.7/√n at n = 1e6), i.e. 3 % at a million customers.
    pub fn wait_tolerance(&self) -> f64 {
        155.0 / (self.customers as f64).sqrt() + 0.01
    }

    fn streams(&self) -> (Stream, Stream) {
        (
            Stream {
                rng: Rng::stream(self.seed, "arrivals"),
                dist: Dist::Exp { mean: self.interarrival_mean_ns },
            },
            Stream {
                rng: Rng::stream(self.seed, "service"),
                dist: Dist::Exp { mean: self.service_mean_ns },
            },
        )
    }
}

/// Erlang C, P(wait > 0) for `c` servers at offered load `a` (Erlangs), by the stable
/// recursion on Erlang B.
pub fn erlang_c(c: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(c);
    c * b / (c - a * (1.0 - b))
}

struct Stream {
    rng: Rng,
    dist: Dist,
}

impl Stream {
    #[inline]
    fn next(&mut self) -> Nanos {
        self.dist.sample(&mut self.rng)
    }
}

/// What one run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Service completions (the stop condition).
    pub completed: u64,
    /// Customers whose service started.
    pub started: u64,
    /// Sum of the waits of the customers whose service started, ns.
    pub wait_sum_ns: u64,
    /// How many of them waited at all.
    pub waited: u64,
    /// Simulated time at the end, ns.
    pub end_ns: Nanos,
}

impl Outcome {
    /// Mean wait in queue, ns.
    pub fn mean_wait_ns(&self) -> f64 {
        self.wait_sum_ns as f64 / self.started.max(1) as f64
    }

    /// Share of customers that waited.
    pub fn p_wait(&self) -> f64 {
        self.waited as f64 / self.started.max(1) as f64
    }

    #[inline]
    fn start(&mut self, wait: Nanos) {
        self.started += 1;
        self.wait_sum_ns += wait;
        self.waited += u64::from(wait > 0);
    }
}

// ---------------------------------------------------------------------------------------
// 1. sluice's engine, written like the patterns are: async processes, a wait list, a FIFO.

struct Station {
    queue: RefCell<VecDeque<Nanos>>,
    idle: WaitList,
    service: RefCell<Stream>,
    out: Cell<Outcome>,
    customers: u64,
}

async fn arrivals(sim: Sim, st: Rc<Station>, mut stream: Stream) {
    loop {
        sim.sleep(stream.next()).await;
        st.queue.borrow_mut().push_back(sim.now_ns());
        st.idle.notify_one(&sim);
    }
}

async fn server(sim: Sim, st: Rc<Station>) {
    loop {
        let arrived = loop {
            let next = st.queue.borrow_mut().pop_front();
            match next {
                Some(t) => break t,
                None => st.idle.wait(&sim).await,
            }
        };
        let mut out = st.out.get();
        out.start(sim.now_ns() - arrived);
        st.out.set(out);
        let service = st.service.borrow_mut().next();
        sim.sleep(service).await;
        let mut out = st.out.get();
        out.completed += 1;
        st.out.set(out);
        if out.completed == st.customers {
            sim.stop(); // takes effect at the next await: end the process here
            return;
        }
    }
}

/// M/M/c on sluice's engine: one arrival process and `c` server processes that take
/// customers from a FIFO and wait on a [`WaitList`] while it is empty.
pub fn sluice_engine(p: &Params) -> Outcome {
    let sim = Sim::new();
    let (arr, svc) = p.streams();
    let st = Rc::new(Station {
        queue: RefCell::new(VecDeque::with_capacity(1024)),
        idle: WaitList::new(),
        service: RefCell::new(svc),
        out: Cell::new(Outcome::default()),
        customers: p.customers,
    });
    sim.spawn(arrivals(sim.clone(), st.clone(), arr));
    for _ in 0..p.servers {
        sim.spawn(server(sim.clone(), st.clone()));
    }
    sim.run_until(SimTime::NEVER);
    let mut out = st.out.get();
    out.end_ns = sim.now_ns();
    sim.shutdown();
    out
}

// ---------------------------------------------------------------------------------------
// 2. simcore (DSLab), callback style: one component handling Arrival and Departure events.

mod dslab {
    use super::{Outcome, Params, Stream};
    use serde::Serialize;
    use simcore::{Event, EventHandler, Simulation, SimulationContext, cast};
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::rc::Rc;

    #[derive(Clone, Serialize)]
    struct Arrival {}

    #[derive(Clone, Serialize)]
    struct Departure {}

    struct Station {
        ctx: SimulationContext,
        arrivals: Stream,
        service: Stream,
        queue: VecDeque<f64>,
        idle: u32,
        out: Outcome,
        customers: u64,
        done: Rc<Cell<bool>>,
    }

    impl Station {
        fn start_service(&mut self, arrived: f64) {
            let now = self.ctx.time();
            self.out.start((now - arrived) as u64);
            let d = self.service.next();
            self.ctx.emit_self(Departure {}, d as f64);
        }

        fn on_arrival(&mut self) {
            let now = self.ctx.time();
            let d = self.arrivals.next();
            self.ctx.emit_self(Arrival {}, d as f64);
            if self.idle > 0 {
                self.idle -= 1;
                self.start_service(now);
            } else {
                self.queue.push_back(now);
            }
        }

        fn on_departure(&mut self) {
            self.out.completed += 1;
            if self.out.completed == self.customers {
                self.out.end_ns = self.ctx.time() as u64;
                self.done.set(true);
                return;
            }
            match self.queue.pop_front() {
                Some(arrived) => self.start_service(arrived),
                None => self.idle += 1,
            }
        }
    }

    impl EventHandler for Station {
        fn on(&mut self, event: Event) {
            cast!(match event.data {
                Arrival {} => {
                    self.on_arrival()
                }
                Departure {} => {
                    self.on_departure()
                }
            })
        }
    }

    pub fn run(p: &Params) -> Outcome {
        let mut sim = Simulation::new(p.seed);
        let (arrivals, service) = p.streams();
        let ctx = sim.create_context("station");
        let done = Rc::new(Cell::new(false));
        let mut st = Station {
            ctx,
            arrivals,
            service,
            queue: VecDeque::with_capacity(1024),
            idle: p.servers,
            out: Outcome::default(),
            customers: p.customers,
            done: done.clone(),
        };
        let first = st.arrivals.next();
        st.ctx.emit_self(Arrival {}, first as f64);
        let st = Rc::new(RefCell::new(st));
        sim.add_handler("station", st.clone());
        while !done.get() && sim.step() {}
        st.borrow().out
    }
}

/// M/M/c on simcore, the DSLab discrete-event engine (callback style, `f64` clock).
pub fn simcore(p: &Params) -> Outcome {
    dslab::run(p)
}

// ---------------------------------------------------------------------------------------
// 3. The limit: a bare event loop, a binary heap of (time, sequence, kind), no framework.

/// M/M/c as a hand-written loop: a `BinaryHeap` of events plus the random draws.
pub fn bare(p: &Params) -> Outcome {
    const ARRIVAL: u8 = 0;
    const DEPARTURE: u8 = 1;
    let (mut arr, mut svc) = p.streams();
    let mut heap: BinaryHeap<Reverse<(Nanos, u64, u8)>> = BinaryHeap::with_capacity(64);
    let mut queue: VecDeque<Nanos> = VecDeque::with_capacity(1024);
    let mut seq = 0u64;
    let mut idle = p.servers;
    let mut out = Outcome::default();
    heap.push(Reverse((arr.next(), seq, ARRIVAL)));
    while let Some(Reverse((now, _, kind))) = heap.pop() {
        if kind == ARRIVAL {
            seq += 1;
            heap.push(Reverse((now + arr.next(), seq, ARRIVAL)));
            if idle > 0 {
                idle -= 1;
                out.start(0);
                seq += 1;
                heap.push(Reverse((now + svc.next(), seq, DEPARTURE)));
            } else {
                queue.push_back(now);
            }
        } else {
            out.completed += 1;
            if out.completed == p.customers {
                out.end_ns = now;
                break;
            }
            match queue.pop_front() {
                Some(arrived) => {
                    out.start(now - arrived);
                    seq += 1;
                    heap.push(Reverse((now + svc.next(), seq, DEPARTURE)));
                }
                None => idle += 1,
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// 4. A whole run: the same model as a scenario, through the pattern code and the meters.

/// The M/M/c model as a `competing-consumers` scenario (design.md's setup: Service Bus,
/// `batch_size = 1`, `concurrency = 1`, one instance per server, Poisson arrivals,
/// exponential work), producing `p.customers` messages on average.
pub fn scenario(p: &Params) -> Scenario {
    Scenario {
        name: "mmc-bench".into(),
        seed: p.seed,
        duration: p.customers * p.interarrival_mean_ns,
        interval: 10 * NS_PER_MIN,
        workload: WorkloadSpec {
            arrivals: Arrivals::Poisson,
            rate_per_s: p.lambda_per_s(),
            ..Default::default()
        },
        queue: QueueSpec::service_bus(),
        consumer: ConsumerSpec {
            instances: p.servers,
            concurrency: 1,
            batch_size: 1,
            work: Dist::Exp { mean: p.service_mean_ns },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// What a whole run of [`scenario`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunOutcome {
    /// Messages completed.
    pub completed: u64,
    /// Mean `queue_wait`, ns.
    pub mean_wait_ns: f64,
    /// Share of messages that waited.
    pub p_wait: f64,
}

/// A whole `sim::run` of [`scenario`], meters and time series included.
pub fn whole_run(p: &Params) -> RunOutcome {
    let r = sim::run(&scenario(p), sim::RunOptions::default(), &mut |_| {}).results;
    assert!(r.ledger.balances());
    let w = &r.latency["queue_wait"];
    RunOutcome {
        completed: r.ledger.completed,
        mean_wait_ns: w.mean_ns(),
        p_wait: w.nonzero_share(),
    }
}

/// Panics unless `mean_wait_ns` is within the run's tolerance of Erlang C.
pub fn assert_erlang_c(p: &Params, what: &str, mean_wait_ns: f64) {
    let theory = p.theory_wait_ns();
    let rel = (mean_wait_ns - theory).abs() / theory;
    assert!(
        rel <= p.wait_tolerance(),
        "{what}: mean wait {:.3} ms vs Erlang C {:.3} ms ({:.2} % off, tolerance {:.2} %)",
        mean_wait_ns / 1e6,
        theory / 1e6,
        rel * 100.0,
        p.wait_tolerance() * 100.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_the_validation_scenario() {
        let p = Params::standard(1);
        assert!((p.p_wait() - 0.6687).abs() < 1e-3, "{}", p.p_wait());
        assert!((p.theory_wait_ns() / 1e6 - 66.87).abs() < 0.05);
        assert!((p.rho() - 0.9).abs() < 1e-6);
    }

    #[test]
    fn three_implementations_agree_exactly_and_with_erlang_c() {
        for seed in [1, 2] {
            let p = Params { seed, ..Params::standard(100_000) };
            let b = bare(&p);
            assert_eq!(b.completed, p.customers);
            assert_eq!(sluice_engine(&p), b, "sluice engine vs bare loop");
            assert_eq!(simcore(&p), b, "simcore vs bare loop");
            assert_erlang_c(&p, "bare loop", b.mean_wait_ns());
        }
    }

    #[test]
    fn whole_run_agrees_with_erlang_c() {
        let p = Params::standard(100_000);
        let r = whole_run(&p);
        assert!(r.completed.abs_diff(p.customers) < 2_000, "{}", r.completed);
        assert_erlang_c(&p, "whole run", r.mean_wait_ns);
    }
}
