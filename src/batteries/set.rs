//! `ReplSet`: a replicated `BTreeSet`.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::collections::btree_set;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::batteries::BatteryError;
use crate::{Replicated, replicated};

/// A replicated set (PySyncObj's `ReplSet`): a `BTreeSet`, so that its items are listed in
/// order and `pop` takes the smallest, the same on every node.
///
/// `len`, `contains`, `iter` and `raw_data` read this node's copy through `read()`.
///
/// ```
/// use std::time::Duration;
/// use syncobj::batteries::{BatteryError, ReplSet};
/// use syncobj::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = MemoryNetwork::new();
/// let no_partners: [&str; 0] = [];
/// let node = SyncObj::with_transport(
///     "solo",
///     no_partners,
///     ReplSet::<u32>::default(),
///     SyncObjConf::default(),
///     network.endpoint("solo"),
/// )?;
/// let wait = Duration::from_secs(10);
/// assert!(node.add(7).wait_timeout(wait)?);
/// assert!(!node.add(7).wait_timeout(wait)?, "already there");
/// node.update(vec![3, 9]).wait_timeout(wait)?;
/// assert_eq!(node.pop().wait_timeout(wait)?, Ok(3));
/// assert_eq!(node.remove(4).wait_timeout(wait)?, Err(BatteryError::NotFound));
/// assert!(node.read().contains(&9));
/// assert_eq!(node.read().iter().collect::<Vec<_>>(), [&7, &9]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Replicated)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + Deserialize<'de>"))]
pub struct ReplSet<T> {
    /// The items.
    data: BTreeSet<T>,
}

impl<T> Default for ReplSet<T> {
    fn default() -> Self {
        ReplSet {
            data: BTreeSet::new(),
        }
    }
}

#[replicated]
impl<T> ReplSet<T>
where
    T: Ord + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Replaces every item with those of `data`.
    #[replicated]
    pub fn reset(&mut self, data: BTreeSet<T>) {
        self.data = data;
    }

    /// Adds `value`; returns whether it was not there before.
    #[replicated]
    pub fn add(&mut self, value: T) -> bool {
        self.data.insert(value)
    }

    /// Removes `value`.
    ///
    /// # Errors
    /// [`BatteryError::NotFound`] when it is not there (see `discard` for no error).
    #[replicated]
    pub fn remove(&mut self, value: T) -> Result<(), BatteryError> {
        if self.data.remove(&value) {
            Ok(())
        } else {
            Err(BatteryError::NotFound)
        }
    }

    /// Removes `value` if it is there; returns whether it was.
    #[replicated]
    pub fn discard(&mut self, value: T) -> bool {
        self.data.remove(&value)
    }

    /// Removes the smallest item and returns it.
    ///
    /// # Errors
    /// [`BatteryError::Empty`] when the set is empty.
    #[replicated]
    pub fn pop(&mut self) -> Result<T, BatteryError> {
        self.data.pop_first().ok_or(BatteryError::Empty)
    }

    /// Removes every item.
    #[replicated]
    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// Adds every item of `values`.
    #[replicated]
    pub fn update(&mut self, values: Vec<T>) {
        self.data.extend(values);
    }

    /// The number of items (local).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no items (local).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether `value` is there (local; PySyncObj's `value in s`).
    pub fn contains<Q>(&self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.data.contains(value)
    }

    /// The items, in ascending order (local).
    pub fn iter(&self) -> btree_set::Iter<'_, T> {
        self.data.iter()
    }

    /// The whole set (local; PySyncObj's `rawData`).
    pub fn raw_data(&self) -> &BTreeSet<T> {
        &self.data
    }
}

impl<'a, T> IntoIterator for &'a ReplSet<T> {
    type Item = &'a T;
    type IntoIter = btree_set::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.data.iter()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::batteries::tests::{call, round_trip};

    /// PySyncObj's `test_ReplSet`, on the state directly.
    #[test]
    fn pysyncobj_repl_set() {
        let mut s = ReplSet::<i64>::default();
        s.reset(BTreeSet::from([1, 4]));
        assert_eq!(s.raw_data(), &BTreeSet::from([1, 4]));
        assert!(s.add(10));
        assert_eq!(s.raw_data(), &BTreeSet::from([1, 4, 10]));
        assert_eq!(s.remove(1), Ok(()));
        assert!(s.discard(10));
        assert_eq!(s.raw_data(), &BTreeSet::from([4]));
        assert_eq!(s.pop(), Ok(4));
        assert!(s.add(48));
        s.update(vec![9, 2, 3]);
        assert_eq!(s.raw_data(), &BTreeSet::from([9, 2, 3, 48]));
        assert_eq!(s.len(), 4);
        assert!(s.contains(&9));
        assert!(!s.contains(&42));
        s.clear();
        assert_eq!(s.len(), 0);
        assert!(!s.contains(&9));
        assert!(s.is_empty());
    }

    /// PySyncObj raised (and stopped the cluster) on these; here they are errors for the caller.
    #[test]
    fn failures_are_errors_and_change_nothing() {
        let mut s = ReplSet::<i64>::default();
        assert_eq!(s.pop(), Err(BatteryError::Empty));
        assert_eq!(s.remove(1), Err(BatteryError::NotFound));
        assert!(!s.discard(1));
        assert!(s.add(2));
        assert!(!s.add(2));
        assert_eq!(s.remove(1), Err(BatteryError::NotFound));
        assert_eq!(s.raw_data(), &BTreeSet::from([2]));
    }

    #[test]
    fn pop_takes_the_smallest() {
        let mut s = ReplSet::<String>::default();
        s.update(vec!["pear".into(), "apple".into(), "fig".into()]);
        assert_eq!(s.pop(), Ok("apple".to_owned()));
        assert_eq!(s.pop(), Ok("fig".to_owned()));
        assert!(s.contains("pear"));
    }

    /// One operation of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Reset(BTreeSet<u8>),
        Add(u8),
        Remove(u8),
        Discard(u8),
        Pop,
        Clear,
        Update(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => prop::collection::btree_set(0u8..16, 0..6).prop_map(Op::Reset),
            5 => (0u8..16).prop_map(Op::Add),
            3 => (0u8..16).prop_map(Op::Remove),
            3 => (0u8..16).prop_map(Op::Discard),
            3 => Just(Op::Pop),
            1 => Just(Op::Clear),
            2 => prop::collection::vec(0u8..16, 0..6).prop_map(Op::Update),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Through the generated `apply`, the set gives the results of a `BTreeSet`, holds the
        /// same items, and survives a MessagePack round trip.
        #[test]
        fn behaves_as_a_btree_set(ops in prop::collection::vec(op(), 0..40)) {
            let mut set = ReplSet::<u8>::default();
            let mut model = BTreeSet::<u8>::new();
            for op in ops {
                match op {
                    Op::Reset(items) => {
                        let () = call(&mut set, "reset", (items.clone(),));
                        model = items;
                    }
                    Op::Add(x) => {
                        let got: bool = call(&mut set, "add", (x,));
                        prop_assert_eq!(got, model.insert(x));
                    }
                    Op::Remove(x) => {
                        let got: Result<(), BatteryError> = call(&mut set, "remove", (x,));
                        let expected = if model.remove(&x) { Ok(()) } else { Err(BatteryError::NotFound) };
                        prop_assert_eq!(got, expected);
                    }
                    Op::Discard(x) => {
                        let got: bool = call(&mut set, "discard", (x,));
                        prop_assert_eq!(got, model.remove(&x));
                    }
                    Op::Pop => {
                        let got: Result<u8, BatteryError> = call(&mut set, "pop", ());
                        prop_assert_eq!(got, model.pop_first().ok_or(BatteryError::Empty));
                    }
                    Op::Clear => {
                        let () = call(&mut set, "clear", ());
                        model.clear();
                    }
                    Op::Update(items) => {
                        let () = call(&mut set, "update", (items.clone(),));
                        model.extend(items);
                    }
                }
                prop_assert_eq!(set.raw_data(), &model);
            }
            let mut copy = round_trip(&set);
            prop_assert_eq!(&copy, &set);
            let got: Result<u8, BatteryError> = call(&mut copy, "pop", ());
            prop_assert_eq!(got, model.pop_first().ok_or(BatteryError::Empty));
            prop_assert_eq!(copy.raw_data(), &model);
        }
    }
}
