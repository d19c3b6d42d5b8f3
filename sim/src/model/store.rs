//! The store: a database with transactions, unique constraints and crash atomicity (Azure
//! SQL Database, Cosmos DB's transactional batch), for the patterns that keep durable state:
//! the outbox table, the idempotent consumer's processed-messages table, saga state.
//!
//! ```text
//!  process (a future)                       store (outside every process: durable)
//!  ──────────────────                       ──────────────────────────────────────
//!  get / query ──── one round trip ───────► committed rows
//!  let mut tx = store.begin();
//!  tx.insert(..) tx.put(..) tx.update(..)   (buffered in the caller's future)
//!  store.commit(tx) ── a round trip per ──► all or nothing, in one step, at the end:
//!                      statement + commit   a unique key taken -> Conflict, nothing applied
//! ```
//!
//! Semantics:
//! * A transaction's writes are buffered in the [`Tx`] the caller holds, and applied in one
//!   step when [`Store::commit`] returns. A process that crashes before that (its future is
//!   dropped) leaves nothing behind; once `commit` has returned, everything is durable,
//!   whatever happens to the process next.
//! * [`Tx::insert`] is an insert under a unique constraint (a primary key): if the key is
//!   taken when the transaction commits (by a committed row, or by an earlier insert of the
//!   same transaction), the whole transaction rolls back and `commit` returns a
//!   [`Conflict`]. Two concurrent transactions inserting the same key: the first to commit
//!   wins, the second gets the conflict (as the blocked insert of a real database does once
//!   the first commits). This is the idempotent consumer's "insert if absent".
//! * Every statement costs one round trip (`[store] latency`), a commit adds the log flush
//!   (`[store] commit_latency`). Reads see committed rows only.
//! * Rows live in typed [`Table`]s, in key order, so a query ("the first 100 unsent rows")
//!   is a scan from the lowest key.
//!
//! What is not modelled: lock waits and deadlocks between transactions (a commit is
//! instantaneous once its latency has passed), isolation levels below serializable, and
//! store outages.

use crate::dist::Dist;
use crate::engine::Sim;
use crate::rng::Rng;
use crate::spec::StoreSpec;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// A table of rows of type `R`, by key (a primary key: one row per key).
pub struct Table<R> {
    name: &'static str,
    rows: RefCell<BTreeMap<u64, R>>,
}

impl<R: Clone + 'static> Table<R> {
    /// An empty table.
    pub fn new(name: &'static str) -> Rc<Table<R>> {
        Rc::new(Table { name, rows: RefCell::new(BTreeMap::new()) })
    }

    /// The table's name (in conflicts).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Rows committed now. An observer's view (a gauge, a test): no round trip.
    pub fn len(&self) -> usize {
        self.rows.borrow().len()
    }

    /// Whether no row is committed.
    pub fn is_empty(&self) -> bool {
        self.rows.borrow().is_empty()
    }

    /// The committed row at `key`, seen by an observer (no round trip).
    pub fn peek(&self, key: u64) -> Option<R> {
        self.rows.borrow().get(&key).cloned()
    }

    /// Whether a row is committed at `key`, seen by an observer (no round trip).
    pub fn contains(&self, key: u64) -> bool {
        self.rows.borrow().contains_key(&key)
    }
}

/// Why a transaction rolled back: an insert found its key taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The table of the unique constraint.
    pub table: &'static str,
    /// The key that was taken.
    pub key: u64,
}

/// An undo of one applied write (run in reverse order when a later write conflicts).
type Undo = Box<dyn FnOnce()>;

/// One buffered write.
trait Write {
    /// Applies the write, or reports the conflict that rolls the transaction back.
    fn apply(self: Box<Self>) -> Result<Undo, Conflict>;
}

/// The new row of an upsert, from the row there at commit.
type Merge<R> = Box<dyn FnOnce(Option<&R>) -> R>;

enum Change<R> {
    Insert(R),
    Put(R),
    Upsert(Merge<R>),
    Update(Box<dyn FnOnce(&mut R)>),
    Delete,
}

struct RowWrite<R> {
    table: Rc<Table<R>>,
    key: u64,
    change: Change<R>,
}

impl<R: Clone + 'static> Write for RowWrite<R> {
    fn apply(self: Box<Self>) -> Result<Undo, Conflict> {
        let RowWrite { table, key, change } = *self;
        let before = table.rows.borrow().get(&key).cloned();
        {
            let mut rows = table.rows.borrow_mut();
            match change {
                Change::Insert(row) => {
                    if before.is_some() {
                        return Err(Conflict { table: table.name, key });
                    }
                    rows.insert(key, row);
                }
                Change::Put(row) => {
                    rows.insert(key, row);
                }
                Change::Upsert(f) => {
                    let row = f(before.as_ref());
                    rows.insert(key, row);
                }
                Change::Update(f) => {
                    if let Some(row) = rows.get_mut(&key) {
                        f(row);
                    }
                }
                Change::Delete => {
                    rows.remove(&key);
                }
            }
        }
        Ok(Box::new(move || {
            let mut rows = table.rows.borrow_mut();
            match before {
                Some(row) => rows.insert(key, row),
                None => rows.remove(&key),
            };
        }))
    }
}

/// A transaction being built: its writes, buffered in the caller's future until
/// [`Store::commit`]. Dropping it (a crash) applies nothing.
#[derive(Default)]
pub struct Tx {
    writes: Vec<Box<dyn Write>>,
}

impl Tx {
    /// Inserts `row` at `key` under the table's unique key: the commit fails with a
    /// [`Conflict`] if the key is taken.
    pub fn insert<R: Clone + 'static>(&mut self, table: &Rc<Table<R>>, key: u64, row: R) {
        self.push(table, key, Change::Insert(row));
    }

    /// Inserts or replaces the row at `key` (an upsert).
    pub fn put<R: Clone + 'static>(&mut self, table: &Rc<Table<R>>, key: u64, row: R) {
        self.push(table, key, Change::Put(row));
    }

    /// Writes `f(row)` at `key`, given the row there when the transaction commits (`None`
    /// if absent): an insert-or-update (`MERGE`), such as a counter that goes up by one.
    pub fn upsert<R: Clone + 'static>(
        &mut self,
        table: &Rc<Table<R>>,
        key: u64,
        f: impl FnOnce(Option<&R>) -> R + 'static,
    ) {
        self.push(table, key, Change::Upsert(Box::new(f)));
    }

    /// Changes the row at `key` with `f` (an update of one row; none if it is absent).
    pub fn update<R: Clone + 'static>(
        &mut self,
        table: &Rc<Table<R>>,
        key: u64,
        f: impl FnOnce(&mut R) + 'static,
    ) {
        self.push(table, key, Change::Update(Box::new(f)));
    }

    /// Deletes the row at `key` (none if it is absent).
    pub fn delete<R: Clone + 'static>(&mut self, table: &Rc<Table<R>>, key: u64) {
        self.push(table, key, Change::Delete);
    }

    /// Statements buffered.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    fn push<R: Clone + 'static>(&mut self, table: &Rc<Table<R>>, key: u64, change: Change<R>) {
        self.writes.push(Box::new(RowWrite { table: table.clone(), key, change }));
    }
}

/// What a store did, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Statements run (reads, queries, writes inside transactions).
    pub statements: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Transactions rolled back by a unique-key conflict.
    pub conflicts: u64,
}

/// A database.
pub struct Store {
    sim: Sim,
    latency: Dist,
    commit_latency: Dist,
    rng: RefCell<Rng>,
    stats: Cell<StoreStats>,
}

impl Store {
    /// A store with `spec`'s latencies, drawing them from `rng`.
    pub fn new(sim: Sim, spec: &StoreSpec, rng: Rng) -> Rc<Store> {
        Rc::new(Store {
            sim,
            latency: spec.latency.clone(),
            commit_latency: spec.commit_latency.clone(),
            rng: RefCell::new(rng),
            stats: Cell::new(StoreStats::default()),
        })
    }

    /// What the store has done so far.
    pub fn stats(&self) -> StoreStats {
        self.stats.get()
    }

    fn count(&self, f: impl FnOnce(&mut StoreStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// One statement's round trip.
    async fn round_trip(&self) {
        let d = self.latency.sample(&mut self.rng.borrow_mut());
        self.count(|s| s.statements += 1);
        self.sim.sleep(d).await;
    }

    /// Reads the committed row at `key` (one round trip; the row as of the answer).
    pub async fn get<R: Clone + 'static>(&self, table: &Table<R>, key: u64) -> Option<R> {
        self.round_trip().await;
        table.peek(key)
    }

    /// The first `limit` committed rows, in key order, for which `keep` holds (one round
    /// trip: `SELECT TOP (limit) ... WHERE ... ORDER BY key`).
    pub async fn query<R: Clone + 'static>(
        &self,
        table: &Table<R>,
        limit: usize,
        keep: impl Fn(&R) -> bool,
    ) -> Vec<(u64, R)> {
        self.round_trip().await;
        let rows = table.rows.borrow();
        rows.iter().filter(|(_, r)| keep(r)).take(limit).map(|(k, r)| (*k, r.clone())).collect()
    }

    /// Starts a transaction.
    pub fn begin(&self) -> Tx {
        Tx::default()
    }

    /// Commits `tx`: a round trip per statement, then the commit's log flush; when that has
    /// passed, every write is applied in one step, or none if an insert finds its key taken.
    /// A caller that is dropped before this returns has committed nothing.
    pub async fn commit(&self, tx: Tx) -> Result<(), Conflict> {
        let mut wait = 0;
        {
            let mut rng = self.rng.borrow_mut();
            for _ in 0..tx.writes.len() {
                wait += self.latency.sample(&mut rng);
            }
            wait += self.commit_latency.sample(&mut rng);
        }
        let n = tx.writes.len() as u64;
        self.count(|s| s.statements += n);
        self.sim.sleep(wait).await;
        let result = Self::apply(tx);
        self.count(|s| match result {
            Ok(()) => s.commits += 1,
            Err(_) => s.conflicts += 1,
        });
        result
    }

    /// Applies every write, or undoes those applied and reports the conflict.
    fn apply(tx: Tx) -> Result<(), Conflict> {
        let mut undo: Vec<Undo> = Vec::with_capacity(tx.writes.len());
        for w in tx.writes {
            match w.apply() {
                Ok(u) => undo.push(u),
                Err(c) => {
                    for u in undo.into_iter().rev() {
                        u();
                    }
                    return Err(c);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{NS_PER_MS, SimTime};

    fn store(sim: &Sim) -> Rc<Store> {
        let spec = StoreSpec {
            latency: Dist::Const(5 * NS_PER_MS),
            commit_latency: Dist::Const(2 * NS_PER_MS),
        };
        Store::new(sim.clone(), &spec, Rng::stream(1, "store"))
    }

    #[test]
    fn a_commit_applies_every_write_at_its_end_and_costs_its_round_trips() {
        let sim = Sim::new();
        let s = store(&sim);
        let orders: Rc<Table<u32>> = Table::new("orders");
        let outbox: Rc<Table<&'static str>> = Table::new("outbox");
        let seen = Rc::new(Cell::new((0, 0)));
        {
            let (s, orders, outbox, seen) =
                (s.clone(), orders.clone(), outbox.clone(), seen.clone());
            sim.spawn(async move {
                let mut tx = s.begin();
                tx.insert(&orders, 7, 100);
                tx.insert(&outbox, 7, "order-placed");
                assert_eq!(tx.len(), 2);
                assert_eq!(s.commit(tx).await, Ok(()));
                seen.set((s.sim.now_ns(), orders.len() + outbox.len()));
            });
        }
        // halfway through the commit nothing is visible
        {
            let (orders, sim2) = (orders.clone(), sim.clone());
            sim.spawn(async move {
                sim2.sleep(11 * NS_PER_MS).await;
                assert!(orders.is_empty(), "uncommitted rows are invisible");
            });
        }
        sim.run_until(SimTime(NS_PER_MS * 1000));
        // two statements (5 ms each) and the commit (2 ms)
        assert_eq!(seen.get(), (12 * NS_PER_MS, 2));
        assert_eq!(outbox.peek(7), Some("order-placed"));
        assert_eq!(s.stats(), StoreStats { statements: 2, commits: 1, conflicts: 0 });
    }

    #[test]
    fn a_crash_before_the_commit_returns_leaves_nothing() {
        let sim = Sim::new();
        let s = store(&sim);
        let orders: Rc<Table<u32>> = Table::new("orders");
        let task = {
            let (s, orders) = (s.clone(), orders.clone());
            sim.spawn(async move {
                let mut tx = s.begin();
                tx.insert(&orders, 1, 1);
                tx.insert(&orders, 2, 2);
                let _ = s.commit(tx).await;
            })
        };
        {
            let sim2 = sim.clone();
            sim.spawn(async move {
                sim2.sleep(11 * NS_PER_MS).await; // 1 ms before the commit's end
                sim2.abort(task);
            });
        }
        sim.run_until(SimTime(NS_PER_MS * 1000));
        assert!(orders.is_empty());
        assert_eq!(s.stats().commits, 0);
    }

    #[test]
    fn a_taken_unique_key_rolls_the_whole_transaction_back() {
        let sim = Sim::new();
        let s = store(&sim);
        let processed: Rc<Table<()>> = Table::new("processed");
        let effects: Rc<Table<u32>> = Table::new("effects");
        let results = Rc::new(RefCell::new(Vec::new()));
        // two consumers handle copies of message 9 at once: check-and-effect in one
        // transaction each; exactly one effect
        for _ in 0..2 {
            let (s, processed, effects, results) =
                (s.clone(), processed.clone(), effects.clone(), results.clone());
            sim.spawn(async move {
                let mut tx = s.begin();
                tx.insert(&processed, 9, ());
                tx.put(&effects, 9, 1);
                let r = s.commit(tx).await;
                results.borrow_mut().push(r);
            });
        }
        sim.run_until(SimTime(NS_PER_MS * 1000));
        assert_eq!(*results.borrow(), [Ok(()), Err(Conflict { table: "processed", key: 9 })]);
        assert_eq!(effects.len(), 1);
        assert_eq!(s.stats().conflicts, 1);
    }

    #[test]
    fn a_conflict_later_in_the_transaction_undoes_the_earlier_writes() {
        let sim = Sim::new();
        let s = store(&sim);
        let t: Rc<Table<u32>> = Table::new("t");
        let r = Rc::new(Cell::new(None));
        {
            let (s, t, r) = (s.clone(), t.clone(), r.clone());
            sim.spawn(async move {
                let mut tx = s.begin();
                tx.put(&t, 1, 10);
                s.commit(tx).await.unwrap();
                let mut tx = s.begin();
                tx.update(&t, 1, |v| *v += 1); // would make 11
                tx.upsert(&t, 3, |v| v.map_or(1, |v| v + 1)); // would make 1
                tx.insert(&t, 2, 20);
                tx.delete(&t, 1);
                tx.insert(&t, 2, 21); // taken by this transaction's own insert
                r.set(Some(s.commit(tx).await));
            });
        }
        sim.run_until(SimTime(NS_PER_MS * 1000));
        assert_eq!(r.get(), Some(Err(Conflict { table: "t", key: 2 })));
        assert_eq!((t.peek(1), t.peek(2), t.peek(3)), (Some(10), None, None));
    }

    #[test]
    fn queries_scan_committed_rows_in_key_order_and_updates_mark_them() {
        let sim = Sim::new();
        let s = store(&sim);
        let outbox: Rc<Table<bool>> = Table::new("outbox"); // row: sent?
        let got = Rc::new(RefCell::new(Vec::new()));
        {
            let (s, outbox, got) = (s.clone(), outbox.clone(), got.clone());
            sim.spawn(async move {
                let mut tx = s.begin();
                for k in [5, 1, 3, 4, 2] {
                    tx.insert(&outbox, k, false);
                }
                s.commit(tx).await.unwrap();
                let t0 = s.sim.now_ns();
                let batch = s.query(&outbox, 3, |sent| !sent).await;
                assert_eq!(s.sim.now_ns() - t0, 5 * NS_PER_MS, "one round trip");
                let mut tx = s.begin();
                for (k, _) in &batch {
                    tx.update(&outbox, *k, |sent| *sent = true);
                }
                tx.update(&outbox, 99, |sent| *sent = true); // no such row: no effect
                tx.upsert(&outbox, 5, |sent| !sent.copied().unwrap_or(true)); // 5: unsent -> sent
                s.commit(tx).await.unwrap();
                got.borrow_mut().push(batch.iter().map(|(k, _)| *k).collect::<Vec<_>>());
                let rest = s.query(&outbox, 10, |sent| !sent).await;
                got.borrow_mut().push(rest.iter().map(|(k, _)| *k).collect());
                assert_eq!(s.get(&outbox, 1).await, Some(true));
            });
        }
        sim.run_until(SimTime(NS_PER_MS * 1000));
        assert_eq!(*got.borrow(), [vec![1, 2, 3], vec![4]]);
        assert_eq!(outbox.len(), 5);
        assert!(!outbox.contains(99));
    }
}
