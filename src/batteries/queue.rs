//! `ReplQueue`: a replicated first-in-first-out queue.

use std::collections::VecDeque;
use std::collections::vec_deque;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Replicated, replicated};

/// A replicated first-in-first-out queue (PySyncObj's `ReplQueue`), bounded or not.
///
/// Its bound, `maxsize`, is part of the replicated state (0: unbounded); `put` on a full queue
/// adds nothing and returns `false`. `len`, `is_empty`, `is_full`, `maxsize`, `peek` and `iter`
/// read this node's copy through `read()`.
///
/// ```
/// use std::time::Duration;
/// use syncobj::batteries::ReplQueue;
/// use syncobj::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = MemoryNetwork::new();
/// let no_partners: [&str; 0] = [];
/// let node = SyncObj::with_transport(
///     "solo",
///     no_partners,
///     ReplQueue::<String>::new(2),
///     SyncObjConf::default(),
///     network.endpoint("solo"),
/// )?;
/// let wait = Duration::from_secs(10);
/// assert!(node.put("first".into()).wait_timeout(wait)?);
/// assert!(node.put("second".into()).wait_timeout(wait)?);
/// assert!(!node.put("third".into()).wait_timeout(wait)?, "full");
/// assert!(node.read().is_full());
/// assert_eq!(node.get().wait_timeout(wait)?.as_deref(), Some("first"));
/// assert_eq!(node.read().peek().map(String::as_str), Some("second"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Replicated)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct ReplQueue<T> {
    /// The items, the next to leave first.
    items: VecDeque<T>,
    /// The most items it holds; 0 for no limit.
    maxsize: usize,
}

impl<T> Default for ReplQueue<T> {
    /// An empty, unbounded queue.
    fn default() -> Self {
        ReplQueue::new(0)
    }
}

impl<T> ReplQueue<T> {
    /// An empty queue holding at most `maxsize` items; 0 for no limit.
    pub fn new(maxsize: usize) -> ReplQueue<T> {
        ReplQueue {
            items: VecDeque::new(),
            maxsize,
        }
    }
}

#[replicated]
impl<T> ReplQueue<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Adds `item` at the back; returns `false`, adding nothing, when the queue is full.
    #[replicated]
    pub fn put(&mut self, item: T) -> bool {
        if self.is_full() {
            return false;
        }
        self.items.push_back(item);
        true
    }

    /// Removes the item at the front and returns it; `None` when the queue is empty.
    #[replicated]
    pub fn get(&mut self) -> Option<T> {
        self.items.pop_front()
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
        self.items.front()
    }

    /// The items, in the order `get` would return them (local).
    pub fn iter(&self) -> vec_deque::Iter<'_, T> {
        self.items.iter()
    }
}

impl<'a, T> IntoIterator for &'a ReplQueue<T> {
    type Item = &'a T;
    type IntoIter = vec_deque::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::batteries::tests::{call, round_trip};

    /// PySyncObj's `test_ReplQueue`, on the state directly.
    #[test]
    fn pysyncobj_repl_queue() {
        let mut q = ReplQueue::<i64>::default();
        assert!(q.put(42));
        assert!(q.put(33));
        assert!(q.put(14));
        assert_eq!(q.get(), Some(42));
        assert_eq!(q.len(), 2);
        assert!(!q.is_empty());
        assert_eq!(q.get(), Some(33));
        assert_eq!(q.get().unwrap_or(-1), 14, "PySyncObj's get(-1)");
        assert_eq!(q.get(), None);
        assert_eq!(q.get().unwrap_or(-1), -1);
        assert!(q.is_empty());

        let mut q = ReplQueue::<i64>::new(3);
        assert!(q.put(42));
        assert!(q.put(33));
        assert!(!q.is_full());
        assert!(q.put(14));
        assert!(q.is_full());
        assert!(!q.put(19));
        assert_eq!(q.get(), Some(42));
        assert_eq!(q.maxsize(), 3);
    }

    /// PySyncObj's `full()` is true for an empty unbounded queue; here an unbounded queue is
    /// never full.
    #[test]
    fn an_unbounded_queue_is_never_full() {
        let mut q = ReplQueue::<u32>::default();
        assert_eq!(q.maxsize(), 0);
        assert!(!q.is_full());
        for i in 0..1000 {
            assert!(q.put(i));
        }
        assert!(!q.is_full());
        assert_eq!(q.peek(), Some(&0));
        assert!(q.iter().copied().eq(0..1000));
    }

    /// One operation of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Put(i32),
        Get,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![3 => any::<i32>().prop_map(Op::Put), 2 => Just(Op::Get)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Through the generated `apply`, the queue gives the results of a `VecDeque` bounded
        /// to `maxsize`, holds the same items, and survives a MessagePack round trip (bound
        /// included).
        #[test]
        fn behaves_as_a_bounded_vec_deque(
            maxsize in 0usize..6,
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let mut queue = ReplQueue::<i32>::new(maxsize);
            let mut model = VecDeque::new();
            let full = |model: &VecDeque<i32>| maxsize > 0 && model.len() >= maxsize;
            for op in ops {
                match op {
                    Op::Put(x) => {
                        let got: bool = call(&mut queue, "put", (x,));
                        let expected = !full(&model);
                        if expected {
                            model.push_back(x);
                        }
                        prop_assert_eq!(got, expected);
                    }
                    Op::Get => {
                        let got: Option<i32> = call(&mut queue, "get", ());
                        prop_assert_eq!(got, model.pop_front());
                    }
                }
                prop_assert!(queue.iter().eq(model.iter()));
                prop_assert_eq!(queue.is_full(), full(&model));
                prop_assert_eq!(queue.peek(), model.front());
            }
            let mut copy = round_trip(&queue);
            prop_assert_eq!(&copy, &queue);
            prop_assert_eq!(copy.maxsize(), maxsize);
            let got: bool = call(&mut copy, "put", (7i32,));
            prop_assert_eq!(got, !full(&model));
            let drained: Vec<i32> = std::iter::from_fn(|| call(&mut copy, "get", ())).collect();
            let mut expected: Vec<i32> = model.into_iter().collect();
            if got {
                expected.push(7);
            }
            prop_assert_eq!(drained, expected);
        }
    }
}
