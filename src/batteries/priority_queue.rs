//! `ReplPriorityQueue`: a replicated queue that hands out its smallest item first.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Replicated, replicated};

/// A replicated priority queue (PySyncObj's `ReplPriorityQueue`): `get` returns the smallest
/// item, and items that compare equal come out in the order they were put.
///
/// The order of equal items is part of the state (each item is stored with the sequence number
/// of its `put`), so it never depends on a heap's layout, which could differ from node to node
/// or after a snapshot. Bounded or not as a [`ReplQueue`](super::ReplQueue): `maxsize` is part
/// of the replicated state (0: unbounded), and `put` on a full queue adds nothing and returns
/// `false`. `len`, `is_empty`, `is_full`, `maxsize`, `peek` and `iter` read this node's copy
/// through `read()`.
///
/// ```
/// use std::time::Duration;
/// use syncobj::batteries::ReplPriorityQueue;
/// use syncobj::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = MemoryNetwork::new();
/// let no_partners: [&str; 0] = [];
/// // Jobs as (priority, name): the lowest priority number first.
/// let node = SyncObj::with_transport(
///     "solo",
///     no_partners,
///     ReplPriorityQueue::<(u8, String)>::default(),
///     SyncObjConf::default(),
///     network.endpoint("solo"),
/// )?;
/// let wait = Duration::from_secs(10);
/// node.put((5, "backup".into())).wait_timeout(wait)?;
/// node.put((1, "page the on-call".into())).wait_timeout(wait)?;
/// assert_eq!(node.read().peek(), Some(&(1, "page the on-call".into())));
/// assert_eq!(node.get().wait_timeout(wait)?, Some((1, "page the on-call".into())));
/// assert_eq!(node.get().wait_timeout(wait)?, Some((5, "backup".into())));
/// assert_eq!(node.get().wait_timeout(wait)?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Replicated)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + Deserialize<'de>"))]
pub struct ReplPriorityQueue<T> {
    /// The items with the sequence number of their `put`: in the order `get` returns them.
    items: BTreeSet<(T, u64)>,
    /// The sequence number of the next `put`; back to 0 whenever the queue empties.
    next_sequence: u64,
    /// The most items it holds; 0 for no limit.
    maxsize: usize,
}

impl<T> Default for ReplPriorityQueue<T> {
    /// An empty, unbounded queue.
    fn default() -> Self {
        ReplPriorityQueue::new(0)
    }
}

impl<T> ReplPriorityQueue<T> {
    /// An empty queue holding at most `maxsize` items; 0 for no limit.
    pub fn new(maxsize: usize) -> ReplPriorityQueue<T> {
        ReplPriorityQueue {
            items: BTreeSet::new(),
            next_sequence: 0,
            maxsize,
        }
    }
}

#[replicated]
impl<T> ReplPriorityQueue<T>
where
    T: Ord + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Adds `item`; returns `false`, adding nothing, when the queue is full.
    #[replicated]
    pub fn put(&mut self, item: T) -> bool {
        if self.is_full() {
            return false;
        }
        let sequence = self.next_sequence;
        // 2^64 puts without the queue ever emptying cannot happen; wrapping keeps even that
        // from panicking.
        self.next_sequence = sequence.wrapping_add(1);
        self.items.insert((item, sequence));
        true
    }

    /// Removes the smallest item (of equal ones, the first put) and returns it; `None` when
    /// the queue is empty.
    #[replicated]
    pub fn get(&mut self) -> Option<T> {
        let (item, _) = self.items.pop_first()?;
        if self.items.is_empty() {
            self.next_sequence = 0;
        }
        Some(item)
    }

    /// The number of items (local; PySyncObj's `qsize`).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items (local; PySyncObj's `empty`).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether `put` would refuse an item (local; PySyncObj's `full`). Never true for an
    /// unbounded queue.
    pub fn is_full(&self) -> bool {
        self.maxsize != 0 && self.items.len() >= self.maxsize
    }

    /// The most items the queue holds; 0 for no limit (local).
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// The item `get` would return next (local).
    pub fn peek(&self) -> Option<&T> {
        self.items.first().map(|(item, _)| item)
    }

    /// The items, in the order `get` would return them (local).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter().map(|(item, _)| item)
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::{Ordering, Reverse};
    use std::collections::BinaryHeap;

    use proptest::prelude::*;

    use super::*;
    use crate::batteries::tests::{call, round_trip};

    /// PySyncObj's `test_ReplPriorityQueue`, on the state directly.
    #[test]
    fn pysyncobj_repl_priority_queue() {
        let mut q = ReplPriorityQueue::<i64>::default();
        assert!(q.put(42));
        assert!(q.put(14));
        assert!(q.put(33));
        assert_eq!(q.get(), Some(14));
        assert_eq!(q.len(), 2);
        assert!(!q.is_empty());
        assert_eq!(q.get(), Some(33));
        assert_eq!(q.get().unwrap_or(-1), 42, "PySyncObj's get(-1)");
        assert_eq!(q.get(), None);
        assert_eq!(q.get().unwrap_or(-1), -1);
        assert!(q.is_empty());

        let mut q = ReplPriorityQueue::<i64>::new(3);
        assert!(q.put(42));
        assert!(q.put(33));
        assert!(!q.is_full());
        assert!(q.put(14));
        assert!(q.is_full());
        assert!(!q.put(19));
        assert_eq!(q.get(), Some(14));
    }

    #[test]
    fn an_unbounded_queue_is_never_full() {
        let mut q = ReplPriorityQueue::<u32>::default();
        assert!(!q.is_full());
        assert!(q.put(3));
        assert!(!q.is_full());
    }

    /// A job ordered by its priority alone: two jobs of one priority compare equal.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Job {
        priority: u8,
        id: u32,
    }

    impl PartialEq for Job {
        fn eq(&self, other: &Job) -> bool {
            self.priority == other.priority
        }
    }

    impl Eq for Job {}

    impl PartialOrd for Job {
        fn partial_cmp(&self, other: &Job) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Ord for Job {
        fn cmp(&self, other: &Job) -> Ordering {
            self.priority.cmp(&other.priority)
        }
    }

    #[test]
    fn equal_items_leave_in_the_order_they_came() {
        let mut q = ReplPriorityQueue::<Job>::default();
        for (id, priority) in [(0, 2), (1, 1), (2, 2), (3, 1), (4, 2)] {
            assert!(q.put(Job { priority, id }));
        }
        let ids: Vec<u32> = std::iter::from_fn(|| q.get()).map(|job| job.id).collect();
        assert_eq!(ids, [1, 3, 0, 2, 4]);
    }

    /// One operation of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Put(u8),
        Get,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![3 => (0u8..4).prop_map(Op::Put), 2 => Just(Op::Get)]
    }

    /// The model: a `BinaryHeap` of `Reverse((priority, put number))`, a min-heap that breaks
    /// ties by arrival; the job's id is its put number.
    struct Model {
        heap: BinaryHeap<Reverse<(u8, u32)>>,
        puts: u32,
        maxsize: usize,
    }

    impl Model {
        fn full(&self) -> bool {
            self.maxsize > 0 && self.heap.len() >= self.maxsize
        }

        fn put(&mut self, priority: u8) -> (Job, bool) {
            let job = Job {
                priority,
                id: self.puts,
            };
            self.puts += 1;
            if self.full() {
                return (job, false);
            }
            self.heap.push(Reverse((priority, job.id)));
            (job, true)
        }

        fn get(&mut self) -> Option<(u8, u32)> {
            self.heap.pop().map(|Reverse(entry)| entry)
        }
    }

    fn get(queue: &mut ReplPriorityQueue<Job>) -> Option<(u8, u32)> {
        call::<_, _, Option<Job>>(queue, "get", ()).map(|job| (job.priority, job.id))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Through the generated `apply`, the queue gives the results of a min-heap with ties
        /// broken by arrival, and after a MessagePack round trip it hands out the rest in the
        /// same order.
        #[test]
        fn behaves_as_a_min_heap_first_in_first_out_on_ties(
            maxsize in 0usize..6,
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let mut queue = ReplPriorityQueue::<Job>::new(maxsize);
            let mut model = Model { heap: BinaryHeap::new(), puts: 0, maxsize };
            for op in ops {
                match op {
                    Op::Put(priority) => {
                        let (job, expected) = model.put(priority);
                        let got: bool = call(&mut queue, "put", (job,));
                        prop_assert_eq!(got, expected);
                    }
                    Op::Get => prop_assert_eq!(get(&mut queue), model.get()),
                }
                prop_assert_eq!(queue.len(), model.heap.len());
                prop_assert_eq!(queue.is_full(), model.full());
                let peeked = queue.peek().map(|job| (job.priority, job.id));
                prop_assert_eq!(peeked, model.heap.peek().map(|&Reverse(entry)| entry));
            }
            let mut copy = round_trip(&queue);
            prop_assert_eq!(copy.maxsize(), maxsize);
            let (job, expected) = model.put(1);
            let got: bool = call(&mut copy, "put", (job,));
            prop_assert_eq!(got, expected);
            let drained: Vec<_> = std::iter::from_fn(|| get(&mut copy)).collect();
            let expected: Vec<_> = std::iter::from_fn(|| model.get()).collect();
            prop_assert_eq!(drained, expected);
        }
    }
}
