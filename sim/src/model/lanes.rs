//! The waiting line of a queue, split by message class, and a watch on how long each class
//! waits with nothing of it received.
//!
//! ```text
//!  lane 0 (highest)  [h3 h4 h5]  ──┐
//!  lane 1            [m1]        ──┼──► receive: the front of the highest non-empty lane
//!  lane 2 (lowest)   [l7 l8 ...] ──┘
//!  a released message (abandoned, lock lapsed) goes to the back of its own lane
//! ```
//!
//! A plain queue has one lane ([`Lanes::one`]): one FIFO line, exactly as before. A strict
//! priority consumer that always receives from the highest non-empty class queue sees its
//! class queues as the lanes of one line ([`Lanes::by_class`]).
//!
//! [`Starvation`] follows, per class, the messages waiting (visible) and the stretches of
//! time during which the class had messages waiting and none of them was received: the
//! longest such stretch is `priority.starved_s`.

use crate::time::Nanos;
use std::collections::VecDeque;

/// Where a message that becomes visible again goes in its lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// To the front (Service Bus: it keeps its sequence number and is delivered next).
    Front,
    /// To the back (storage queues; a retried message of a priority class).
    Back,
}

/// The waiting messages of a queue (by their slot), in lanes of descending priority.
#[derive(Clone, Debug)]
pub struct Lanes {
    lanes: Vec<VecDeque<u32>>,
    /// Lane of each class (classes past the end go to the last lane).
    lane_of: Vec<usize>,
    /// Where released messages go; `None`: as the queue kind says.
    requeue: Option<Requeue>,
    len: usize,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes::one()
    }
}

impl Lanes {
    /// One FIFO lane for every class.
    pub fn one() -> Lanes {
        Lanes { lanes: vec![VecDeque::new()], lane_of: Vec::new(), requeue: None, len: 0 }
    }

    /// A lane per rank: class `c` waits in lane `lane_of[c]` (0 = highest). Lanes are as
    /// many as the highest rank + 1.
    pub fn by_class(lane_of: Vec<usize>) -> Lanes {
        let count = lane_of.iter().max().map_or(1, |m| m + 1);
        Lanes { lanes: vec![VecDeque::new(); count], lane_of, requeue: None, len: 0 }
    }

    /// Released messages go where `requeue` says, whatever the queue kind.
    pub fn with_requeue(mut self, requeue: Requeue) -> Lanes {
        self.requeue = Some(requeue);
        self
    }

    /// Where released messages go (`None`: the queue kind decides).
    pub fn requeue(&self) -> Option<Requeue> {
        self.requeue
    }

    /// The lane of `class`.
    pub fn lane(&self, class: u8) -> usize {
        self.lane_of.get(class as usize).copied().unwrap_or(self.lanes.len() - 1)
    }

    /// How many lanes there are.
    pub fn count(&self) -> usize {
        self.lanes.len()
    }

    /// Messages waiting in every lane.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `slot` (a message of `class`) joins the back of its lane.
    pub fn push_back(&mut self, slot: u32, class: u8) {
        let lane = self.lane(class);
        self.lanes[lane].push_back(slot);
        self.len += 1;
    }

    /// `slot` (a message of `class`) goes to the front of its lane.
    pub fn push_front(&mut self, slot: u32, class: u8) {
        let lane = self.lane(class);
        self.lanes[lane].push_front(slot);
        self.len += 1;
    }

    /// Takes the front of the highest non-empty lane, with that lane.
    pub fn pop_front(&mut self) -> Option<(u32, usize)> {
        if self.len == 0 {
            return None;
        }
        let (lane, q) = self.lanes.iter_mut().enumerate().find(|(_, q)| !q.is_empty())?;
        self.len -= 1;
        Some((q.pop_front().expect("non-empty lane"), lane))
    }

    /// The front of lane `lane`.
    pub fn front_of(&self, lane: usize) -> Option<u32> {
        self.lanes[lane].front().copied()
    }

    /// Takes the front of lane `lane`.
    pub fn pop_front_of(&mut self, lane: usize) -> Option<u32> {
        let slot = self.lanes[lane].pop_front()?;
        self.len -= 1;
        Some(slot)
    }

    /// Replaces lane `lane` (it must hold `slots.len()` fewer or more messages than before:
    /// the total follows).
    pub fn replace_lane(&mut self, lane: usize, slots: VecDeque<u32>) {
        self.len = self.len - self.lanes[lane].len() + slots.len();
        self.lanes[lane] = slots;
    }
}

/// One class's waiting messages and its current stretch without a receive.
#[derive(Clone, Copy, Debug, Default)]
struct ClassWait {
    waiting: u64,
    /// Start of the current stretch: since the class became non-empty, or since its last
    /// receive while messages of it kept waiting.
    since: Option<Nanos>,
    longest: Nanos,
}

/// How long each class waits with messages visible and none of them received.
///
/// `on_stretch(class, length)` is told every stretch that ends (a receive, or the class
/// running empty), so the longest one is known even if the run stops at once.
pub struct Starvation {
    classes: Vec<ClassWait>,
    on_stretch: Box<dyn Fn(u8, Nanos)>,
}

impl std::fmt::Debug for Starvation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starvation").field("classes", &self.classes).finish()
    }
}

impl Starvation {
    /// A watch over `classes` classes, reporting each stretch that ends to `on_stretch`.
    pub fn new(classes: usize, on_stretch: Box<dyn Fn(u8, Nanos)>) -> Starvation {
        Starvation { classes: vec![ClassWait::default(); classes], on_stretch }
    }

    fn class(&mut self, class: u8) -> &mut ClassWait {
        let i = class as usize;
        if i >= self.classes.len() {
            self.classes.resize(i + 1, ClassWait::default());
        }
        &mut self.classes[i]
    }

    /// A message of `class` became visible at `now` (sent, or released again).
    pub fn visible(&mut self, class: u8, now: Nanos) {
        let c = self.class(class);
        c.waiting += 1;
        if c.waiting == 1 {
            c.since = Some(now);
        }
    }

    /// A visible message of `class` stopped waiting at `now`: received (`received`), or
    /// dropped (expired).
    pub fn gone(&mut self, class: u8, now: Nanos, received: bool) {
        let c = self.class(class);
        c.waiting = c.waiting.saturating_sub(1);
        if !received && c.waiting > 0 {
            return; // the stretch goes on: nothing of the class was received
        }
        let Some(since) = c.since else { return };
        let stretch = now.saturating_sub(since);
        c.longest = c.longest.max(stretch);
        c.since = (c.waiting > 0).then_some(now);
        (self.on_stretch)(class, stretch);
    }

    /// The longest stretch of `class` so far, the one still open at `now` included.
    pub fn longest(&self, class: u8, now: Nanos) -> Nanos {
        self.classes.get(class as usize).map_or(0, |c| {
            let open = c.since.map_or(0, |s| now.saturating_sub(s));
            c.longest.max(open)
        })
    }

    /// How long `class` has been waiting now without a receive (0 when none of it waits):
    /// the open stretch, for a time-series column.
    pub fn open(&self, class: u8, now: Nanos) -> Nanos {
        self.classes.get(class as usize).and_then(|c| c.since).map_or(0, |s| now.saturating_sub(s))
    }

    /// Messages of `class` waiting now.
    pub fn waiting(&self, class: u8) -> u64 {
        self.classes.get(class as usize).map_or(0, |c| c.waiting)
    }

    /// Reports the stretches still open at `now` (the end of the run) as if they ended.
    pub fn close_open(&mut self, now: Nanos) {
        for (i, c) in self.classes.iter_mut().enumerate() {
            if let Some(since) = c.since {
                let stretch = now.saturating_sub(since);
                c.longest = c.longest.max(stretch);
                (self.on_stretch)(i as u8, stretch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn one_lane_is_one_fifo_line() {
        let mut l = Lanes::one();
        for (slot, class) in [(1, 0), (2, 3), (3, 1)] {
            l.push_back(slot, class);
        }
        l.push_front(9, 2);
        let order: Vec<u32> = std::iter::from_fn(|| l.pop_front().map(|(s, _)| s)).collect();
        assert_eq!(order, [9, 1, 2, 3]);
        assert!(l.is_empty());
    }

    #[test]
    fn the_highest_non_empty_lane_is_served_first_and_each_lane_is_fifo() {
        // class 0 = "high" in lane 0, class 1 = "low" in lane 1
        let mut l = Lanes::by_class(vec![0, 1]);
        l.push_back(10, 1);
        l.push_back(11, 1);
        l.push_back(20, 0);
        assert_eq!(l.pop_front(), Some((20, 0)));
        l.push_back(21, 0);
        l.push_back(12, 1);
        let order: Vec<(u32, usize)> = std::iter::from_fn(|| l.pop_front()).collect();
        assert_eq!(order, [(21, 0), (10, 1), (11, 1), (12, 1)]);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn classes_past_the_ranks_wait_in_the_lowest_lane() {
        let l = Lanes::by_class(vec![1, 0]);
        assert_eq!((l.count(), l.lane(0), l.lane(1), l.lane(7)), (2, 1, 0, 1));
    }

    type Seen = Rc<RefCell<Vec<(u8, Nanos)>>>;

    fn watch() -> (Starvation, Seen) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        (Starvation::new(2, Box::new(move |c, n| s.borrow_mut().push((c, n)))), seen)
    }

    #[test]
    fn a_stretch_runs_from_the_first_waiting_message_to_the_next_receive() {
        let (mut w, seen) = watch();
        w.visible(1, 100);
        w.visible(1, 150);
        assert_eq!(w.longest(1, 400), 300, "the open stretch counts");
        assert_eq!((w.open(1, 400), w.open(0, 400), w.waiting(1)), (300, 0, 2));
        w.gone(1, 400, true); // received: 300 without a receive; one still waits
        w.gone(1, 450, true); // 50 since the last receive
        assert_eq!(*seen.borrow(), [(1, 300), (1, 50)]);
        assert_eq!((w.longest(1, 10_000), w.waiting(1)), (300, 0));
        assert_eq!(w.longest(0, 10_000), 0, "class 0 never waited");
    }

    #[test]
    fn an_expiry_does_not_end_a_stretch_unless_the_class_runs_empty() {
        let (mut w, seen) = watch();
        w.visible(0, 0);
        w.visible(0, 0);
        w.gone(0, 70, false);
        assert!(seen.borrow().is_empty(), "one still waits, nothing was received");
        w.gone(0, 90, false);
        assert_eq!(*seen.borrow(), [(0, 90)]);
        w.visible(0, 1_000);
        w.close_open(1_500);
        assert_eq!(*seen.borrow(), [(0, 90), (0, 500)]);
        assert_eq!(w.longest(0, 1_500), 500);
    }
}
