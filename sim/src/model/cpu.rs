//! An instance's vCPUs, shared by the CPU-bound work running on it (`[consumer] cpu_bound`).
//!
//! Up to `cpus` pieces of work run at full speed; beyond that they share the vCPUs equally
//! (processor sharing), so 16 handlers on one vCPU each run at 1/16 of the speed and take 16
//! times as long, together finishing no sooner than one after the other.
//!
//! # How it is computed
//!
//! With `n` pieces of work running, each receives `r(n) = min(1, cpus / n)` ns of CPU per ns.
//! All of them progress at the same rate, so a single clock of *attained service* `V` (the CPU
//! time each running piece has received since the start) describes them all: `V` grows at
//! `r(n)` between changes of `n`, and a piece that arrives at `V = a` with `w` ns of work ends
//! when `V = a + w`. One scheduler process per CPU sleeps until the next piece's end and is
//! woken at each arrival or departure, when it projects again; the pieces themselves only
//! wait to be told they are done (no timers of theirs, so nothing wakes them early).

use crate::engine::{Sim, TaskId};
use crate::time::{Nanos, SimTime};
use std::cell::RefCell;
use std::rc::Rc;

/// The vCPUs of one instance.
pub struct Cpu {
    sim: Sim,
    cpus: f64,
    inner: RefCell<Inner>,
}

/// A running piece of work.
struct Piece {
    id: u64,
    /// The attained service at which it is done.
    end: f64,
    /// The process waiting for it.
    task: TaskId,
}

#[derive(Default)]
struct Inner {
    /// Attained service per running piece since the start, ns of CPU.
    attained: f64,
    /// When `attained` was last brought up to date.
    at: Nanos,
    running: Vec<Piece>,
    /// Pieces done but not yet seen by their process.
    done: Vec<u64>,
    next_id: u64,
    /// The scheduler process, while pieces run.
    scheduler: Option<TaskId>,
}

impl Inner {
    fn rate(&self, cpus: f64) -> f64 {
        let n = self.running.len() as f64;
        if n <= cpus { 1.0 } else { cpus / n }
    }

    fn advance(&mut self, now: Nanos, cpus: f64) {
        if !self.running.is_empty() {
            self.attained += (now - self.at) as f64 * self.rate(cpus);
        }
        self.at = now;
    }
}

impl Cpu {
    /// `cpus` vCPUs (more than 0; fractions allowed, such as 0.5 for half a core).
    pub fn new(sim: Sim, cpus: f64) -> Rc<Cpu> {
        assert!(cpus > 0.0, "a CPU needs a positive number of vCPUs");
        Rc::new(Cpu { sim, cpus, inner: RefCell::new(Inner::default()) })
    }

    /// Pieces of work running now.
    pub fn running(&self) -> usize {
        self.inner.borrow().running.len()
    }

    /// Runs `work` ns of CPU work, sharing the vCPUs with whatever else runs on them; returns
    /// when it is done. Dropping the future (a crash, a timeout) takes the work off the CPU.
    pub async fn run(self: &Rc<Self>, work: Nanos) {
        if work == 0 {
            return;
        }
        let id = {
            let mut c = self.inner.borrow_mut();
            c.advance(self.sim.now_ns(), self.cpus);
            let id = c.next_id;
            c.next_id += 1;
            let end = c.attained + work as f64;
            c.running.push(Piece { id, end, task: self.sim.current() });
            id
        };
        let _leave = Leave { cpu: self.clone(), id };
        self.reschedule();
        loop {
            self.sim.suspend().await;
            let mut c = self.inner.borrow_mut();
            if let Some(i) = c.done.iter().position(|d| *d == id) {
                c.done.swap_remove(i);
                break;
            }
        }
    }

    /// Tells the scheduler that the pieces changed (starting it if none runs).
    fn reschedule(self: &Rc<Self>) {
        let running = self.inner.borrow().scheduler;
        match running {
            Some(t) => self.sim.wake(t),
            None => {
                let cpu = self.clone();
                let t = self.sim.spawn(async move { cpu.schedule().await });
                self.inner.borrow_mut().scheduler = Some(t);
            }
        }
    }

    /// The scheduler: ends the pieces whose work is done, sleeps until the next end; exits
    /// when nothing runs.
    async fn schedule(self: Rc<Self>) {
        loop {
            let (eta, ended) = {
                let mut c = self.inner.borrow_mut();
                let now = self.sim.now_ns();
                c.advance(now, self.cpus);
                let attained = c.attained;
                let (ended, running): (Vec<Piece>, Vec<Piece>) = std::mem::take(&mut c.running)
                    .into_iter()
                    .partition(|p| p.end - attained < 0.5);
                c.running = running;
                c.done.extend(ended.iter().map(|p| p.id));
                let next = c.running.iter().map(|p| p.end).fold(f64::INFINITY, f64::min);
                let eta = next
                    .is_finite()
                    .then(|| now + ((next - attained) / c.rate(self.cpus)).ceil() as Nanos);
                if eta.is_none() {
                    c.scheduler = None;
                }
                (eta, ended)
            };
            for p in &ended {
                self.sim.wake(p.task);
            }
            let Some(eta) = eta else { return };
            self.sim.wake_at(SimTime(eta));
            self.sim.suspend().await;
        }
    }
}

/// Takes a piece of work off the CPU when its future is dropped (ended or aborted).
struct Leave {
    cpu: Rc<Cpu>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let changed = {
            let mut c = self.cpu.inner.borrow_mut();
            c.advance(self.cpu.sim.now_ns(), self.cpu.cpus);
            let before = c.running.len();
            c.running.retain(|p| p.id != self.id);
            c.done.retain(|d| *d != self.id);
            c.running.len() != before
        };
        if changed {
            self.cpu.reschedule();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NS_PER_S;
    use std::cell::RefCell;

    /// Starts pieces of `work` at the given times on `cpus` vCPUs; returns their end times.
    fn ends(cpus: f64, pieces: &[(Nanos, Nanos)]) -> Vec<Nanos> {
        let sim = Sim::new();
        let cpu = Cpu::new(sim.clone(), cpus);
        let out = Rc::new(RefCell::new(vec![0; pieces.len()]));
        for (i, &(at, work)) in pieces.iter().enumerate() {
            let (s, c, o) = (sim.clone(), cpu.clone(), out.clone());
            sim.spawn(async move {
                s.sleep_until(SimTime(at)).await;
                c.run(work).await;
                o.borrow_mut()[i] = s.now_ns();
            });
        }
        sim.run_until(SimTime(1000 * NS_PER_S));
        assert_eq!(cpu.running(), 0);
        Rc::try_unwrap(out).unwrap().into_inner()
    }

    #[test]
    fn up_to_cpus_pieces_run_at_full_speed() {
        assert_eq!(ends(2.0, &[(0, NS_PER_S), (0, NS_PER_S)]), [NS_PER_S, NS_PER_S]);
    }

    #[test]
    fn beyond_cpus_pieces_share_them() {
        // 16 one-second pieces on one vCPU: all end together at 16 s.
        let pieces = vec![(0, NS_PER_S); 16];
        assert!(ends(1.0, &pieces).iter().all(|&t| t.abs_diff(16 * NS_PER_S) <= 16));
        // 1 s and 3 s from 0 on one vCPU: half speed each until 2 s, when the first ends;
        // the second has 2 s left and runs alone: ends at 4 s.
        let e = ends(1.0, &[(0, NS_PER_S), (0, 3 * NS_PER_S)]);
        assert!(e[0].abs_diff(2 * NS_PER_S) <= 2 && e[1].abs_diff(4 * NS_PER_S) <= 2, "{e:?}");
        // A late arrival slows the running one: 2 s from 0, 1 s from 1 s, on one vCPU:
        // the first has 1 s left at 1 s, then both at half speed: the second ends at 3 s,
        // the first too (1 s left each at 1 s).
        let e = ends(1.0, &[(0, 2 * NS_PER_S), (NS_PER_S, NS_PER_S)]);
        assert!(e.iter().all(|&t| t.abs_diff(3 * NS_PER_S) <= 2), "{e:?}");
    }

    #[test]
    fn half_a_vcpu_runs_one_piece_at_half_speed() {
        let e = ends(0.5, &[(0, NS_PER_S)]);
        assert!(e[0].abs_diff(2 * NS_PER_S) <= 1, "{e:?}");
    }

    #[test]
    fn a_dropped_piece_leaves_its_share_to_the_others() {
        let sim = Sim::new();
        let cpu = Cpu::new(sim.clone(), 1.0);
        let (s, c) = (sim.clone(), cpu.clone());
        let victim = sim.spawn(async move { c.run(10 * NS_PER_S).await });
        let done = Rc::new(RefCell::new(0));
        let (c, d) = (cpu.clone(), done.clone());
        sim.spawn(async move {
            c.run(2 * NS_PER_S).await;
            *d.borrow_mut() = s.now_ns();
        });
        let s = sim.clone();
        sim.spawn(async move {
            s.sleep(2 * NS_PER_S).await;
            s.abort(victim); // 1 s of the 2 s done at half speed: 1 s left, alone
        });
        sim.run_until(SimTime(100 * NS_PER_S));
        assert!(done.borrow().abs_diff(3 * NS_PER_S) <= 2, "{}", done.borrow());
        assert_eq!(cpu.running(), 0);
    }
}
