//! `ReplList`: a replicated `Vec`.

use std::cmp::Ordering;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::batteries::BatteryError;
use crate::{Replicated, replicated};

/// A replicated list (PySyncObj's `ReplList`): a `Vec`.
///
/// A replicated method that cannot do what it is asked (an index past the end, an item that is
/// not there, an empty list) changes nothing and returns a [`BatteryError`] to its caller.
/// `get`, `len`, `index`, `count`, `contains`, `iter` and `raw_data` read this node's copy
/// through `read()`.
///
/// ```
/// use std::time::Duration;
/// use syncobj::batteries::{BatteryError, ReplList};
/// use syncobj::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = MemoryNetwork::new();
/// let no_partners: [&str; 0] = [];
/// let node = SyncObj::with_transport(
///     "solo",
///     no_partners,
///     ReplList::<i32>::default(),
///     SyncObjConf::default(),
///     network.endpoint("solo"),
/// )?;
/// let wait = Duration::from_secs(10);
/// node.extend(vec![3, 1, 2]).wait_timeout(wait)?;
/// node.sort(false).wait_timeout(wait)?;
/// assert_eq!(node.pop().wait_timeout(wait)?, Ok(3));
/// // A failing method is an error for its caller, not for the cluster.
/// assert_eq!(node.remove(7).wait_timeout(wait)?, Err(BatteryError::NotFound));
/// assert_eq!(node.read().raw_data(), [1, 2]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Replicated)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct ReplList<T> {
    /// The items.
    data: Vec<T>,
}

impl<T> Default for ReplList<T> {
    fn default() -> Self {
        ReplList { data: Vec::new() }
    }
}

#[replicated]
impl<T> ReplList<T>
where
    T: PartialOrd + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Replaces every item with those of `data`.
    #[replicated]
    pub fn reset(&mut self, data: Vec<T>) {
        self.data = data;
    }

    /// Replaces the item at `index` with `value` (PySyncObj's `set` and `l[index] = value`).
    ///
    /// # Errors
    /// [`BatteryError::IndexOutOfRange`] when `index` is not below the length.
    #[replicated]
    pub fn set(&mut self, index: usize, value: T) -> Result<(), BatteryError> {
        let len = self.data.len();
        let item = self
            .data
            .get_mut(index)
            .ok_or(BatteryError::IndexOutOfRange { index, len })?;
        *item = value;
        Ok(())
    }

    /// Adds `value` at the end.
    #[replicated]
    pub fn append(&mut self, value: T) {
        self.data.push(value);
    }

    /// Adds the items of `values` at the end, in order.
    #[replicated]
    pub fn extend(&mut self, values: Vec<T>) {
        self.data.extend(values);
    }

    /// Inserts `value` at `index`, shifting the items after it; `index` may be the length (the
    /// end).
    ///
    /// # Errors
    /// [`BatteryError::IndexOutOfRange`] when `index` is above the length (Python's `insert`
    /// would append).
    #[replicated]
    pub fn insert(&mut self, index: usize, value: T) -> Result<(), BatteryError> {
        let len = self.data.len();
        if index > len {
            return Err(BatteryError::IndexOutOfRange { index, len });
        }
        self.data.insert(index, value);
        Ok(())
    }

    /// Removes the first item equal to `value`.
    ///
    /// # Errors
    /// [`BatteryError::NotFound`] when no item equals it.
    #[replicated]
    pub fn remove(&mut self, value: T) -> Result<(), BatteryError> {
        let index = self.index(&value).ok_or(BatteryError::NotFound)?;
        self.data.remove(index);
        Ok(())
    }

    /// Removes the last item and returns it.
    ///
    /// # Errors
    /// [`BatteryError::Empty`] when the list is empty.
    #[replicated]
    pub fn pop(&mut self) -> Result<T, BatteryError> {
        self.data.pop().ok_or(BatteryError::Empty)
    }

    /// Removes the item at `index` and returns it (PySyncObj's `pop(index)`).
    ///
    /// # Errors
    /// [`BatteryError::IndexOutOfRange`] when `index` is not below the length.
    #[replicated]
    pub fn pop_at(&mut self, index: usize) -> Result<T, BatteryError> {
        let len = self.data.len();
        if index >= len {
            return Err(BatteryError::IndexOutOfRange { index, len });
        }
        Ok(self.data.remove(index))
    }

    /// Sorts the items in ascending order, or descending with `reverse`; equal items keep
    /// their order either way (a stable sort, as Python's).
    ///
    /// The order is total whatever `T`'s `PartialOrd` says, so every node sorts alike: an item
    /// that is not comparable with itself (a NaN) sorts after all others, and two items
    /// otherwise incomparable count as equal. The sort is a merge sort of this crate's own,
    /// whose result depends on the comparisons alone (not on the standard library's
    /// version), and never panics: O(n log n) comparisons and moves.
    #[replicated]
    pub fn sort(&mut self, reverse: bool) {
        let data = std::mem::take(&mut self.data);
        self.data = if reverse {
            merge_sort(data, &|a: &T, b: &T| total_cmp(b, a))
        } else {
            merge_sort(data, &|a: &T, b: &T| total_cmp(a, b))
        };
    }

    /// The item at `index` on this node, if there is one (local; PySyncObj's `get` and
    /// `l[index]`).
    pub fn get(&self, index: usize) -> Option<&T> {
        self.data.get(index)
    }

    /// The number of items (local).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no items (local).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The position of the first item equal to `value` (local).
    pub fn index(&self, value: &T) -> Option<usize> {
        self.data.iter().position(|item| item == value)
    }

    /// How many items equal `value` (local).
    pub fn count(&self, value: &T) -> usize {
        self.data.iter().filter(|&item| item == value).count()
    }

    /// Whether an item equals `value` (local).
    pub fn contains(&self, value: &T) -> bool {
        self.index(value).is_some()
    }

    /// The items, in order (local).
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.data.iter()
    }

    /// The items as a slice (local; PySyncObj's `rawData`).
    pub fn raw_data(&self) -> &[T] {
        &self.data
    }
}

impl<'a, T> IntoIterator for &'a ReplList<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.data.iter()
    }
}

/// A total order built on `PartialOrd`: items not comparable with themselves (NaN) come last
/// and equal one another; other incomparable pairs are equal.
fn total_cmp<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    let unordered = |x: &T| x.partial_cmp(x).is_none();
    a.partial_cmp(b)
        .unwrap_or_else(|| unordered(a).cmp(&unordered(b)))
}

/// A stable top-down merge sort by `cmp`: its result is a function of `cmp`'s answers alone,
/// and it cannot panic even if `cmp` is not a total order.
fn merge_sort<T>(mut items: Vec<T>, cmp: &dyn Fn(&T, &T) -> Ordering) -> Vec<T> {
    if items.len() < 2 {
        return items;
    }
    let right = items.split_off(items.len() / 2);
    let left = merge_sort(items, cmp);
    let right = merge_sort(right, cmp);
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        // Take from the right only when strictly smaller: equal items keep their order.
        let take_right = match (left.peek(), right.peek()) {
            (Some(a), Some(b)) => cmp(b, a) == Ordering::Less,
            (None, _) => true,
            (_, None) => false,
        };
        let next = if take_right {
            right.next()
        } else {
            left.next()
        };
        match next {
            Some(item) => merged.push(item),
            None => break,
        }
    }
    merged.extend(left);
    merged.extend(right);
    merged
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ReplicatedMethods;
    use crate::batteries::tests::{call, round_trip};

    /// PySyncObj's `test_ReplList`, on the state directly.
    #[test]
    fn pysyncobj_repl_list() {
        let mut l = ReplList::<i64>::default();
        l.reset(vec![1, 2, 3]);
        assert_eq!(l.raw_data(), [1, 2, 3]);
        assert_eq!(l.set(1, 10), Ok(()));
        assert_eq!(l.raw_data(), [1, 10, 3]);
        l.append(42);
        assert_eq!(l.raw_data(), [1, 10, 3, 42]);
        l.extend(vec![5, 6]);
        assert_eq!(l.raw_data(), [1, 10, 3, 42, 5, 6]);
        assert_eq!(l.insert(2, 66), Ok(()));
        assert_eq!(l.raw_data(), [1, 10, 66, 3, 42, 5, 6]);
        assert_eq!(l.remove(66), Ok(()));
        assert_eq!(l.raw_data(), [1, 10, 3, 42, 5, 6]);
        assert_eq!(l.pop_at(1), Ok(10));
        assert_eq!(l.raw_data(), [1, 3, 42, 5, 6]);
        l.sort(true);
        assert_eq!(l.raw_data(), [42, 6, 5, 3, 1]);
        assert_eq!(l.index(&6), Some(1));
        assert_eq!(l.count(&42), 1);
        assert_eq!(l.get(2), Some(&5));
        assert_eq!(l.get(4), Some(&1));
        assert_eq!(l.len(), 5);
        // PySyncObj's `l[0] = 43`.
        assert_eq!(l.set(0, 43), Ok(()));
        assert_eq!(l.get(0), Some(&43));
    }

    /// PySyncObj raised (and stopped the cluster) on these; here they are errors for the caller
    /// and leave the list as it was.
    #[test]
    fn failures_are_errors_and_change_nothing() {
        let mut l = ReplList::<i64>::default();
        assert_eq!(l.pop(), Err(BatteryError::Empty));
        assert_eq!(l.remove(1), Err(BatteryError::NotFound));
        l.extend(vec![1, 2]);
        let out = |index| BatteryError::IndexOutOfRange { index, len: 2 };
        assert_eq!(l.remove(3), Err(BatteryError::NotFound));
        assert_eq!(l.set(2, 0), Err(out(2)));
        assert_eq!(l.insert(3, 0), Err(out(3)));
        assert_eq!(l.pop_at(2), Err(out(2)));
        assert_eq!(l.pop_at(usize::MAX), Err(out(usize::MAX)));
        assert_eq!(l.raw_data(), [1, 2]);
        assert_eq!(l.insert(2, 3), Ok(()), "inserting at the end");
        assert_eq!(l.pop(), Ok(3), "pop() without an index takes the last");
        assert_eq!(l.raw_data(), [1, 2]);
    }

    /// Item assignment is a version-0 method: no code version to enable first.
    #[test]
    fn set_needs_no_code_version() {
        let set = ReplList::<i64>::METHODS
            .iter()
            .find(|spec| spec.name == "set")
            .expect("a replicated set");
        assert_eq!(set.version, 0);
        assert_eq!(ReplList::<i64>::code_version(), 0);
    }

    #[test]
    fn sort_orders_nan_last_and_is_stable() {
        let mut l = ReplList::<f64>::default();
        l.reset(vec![2.0, f64::NAN, -0.0, 1.0, f64::NAN, 0.0, -1.0]);
        l.sort(false);
        let bits: Vec<String> = l.iter().map(|x| format!("{x:?}")).collect();
        // -0.0 == 0.0: they keep their order.
        assert_eq!(bits, ["-1.0", "-0.0", "0.0", "1.0", "2.0", "NaN", "NaN"]);
        l.sort(true);
        let bits: Vec<String> = l.iter().map(|x| format!("{x:?}")).collect();
        assert_eq!(bits, ["NaN", "NaN", "2.0", "1.0", "-0.0", "0.0", "-1.0"]);
    }

    /// An item whose order is only partial and not even transitive cannot make `sort` panic,
    /// and its result is the same every time.
    #[test]
    fn sort_survives_an_inconsistent_order() {
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        struct Odd(u8);
        impl PartialOrd for Odd {
            fn partial_cmp(&self, other: &Odd) -> Option<Ordering> {
                // Rock-paper-scissors on the value modulo 3.
                match (self.0 % 3 + 3 - other.0 % 3) % 3 {
                    0 => Some(Ordering::Equal),
                    1 => Some(Ordering::Greater),
                    _ => Some(Ordering::Less),
                }
            }
        }
        let items: Vec<Odd> = (0..200u8).map(|i| Odd(i.wrapping_mul(37))).collect();
        let mut first = ReplList::default();
        first.reset(items.clone());
        first.sort(false);
        let mut second = ReplList::default();
        second.reset(items);
        second.sort(false);
        assert_eq!(first, second);
        assert_eq!(first.len(), 200);
    }

    /// An item with an order on a key only, to see stability.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Keyed {
        key: u8,
        tag: u8,
    }

    impl PartialOrd for Keyed {
        fn partial_cmp(&self, other: &Keyed) -> Option<Ordering> {
            Some(self.key.cmp(&other.key))
        }
    }

    /// One operation of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Reset(Vec<Keyed>),
        Set(usize, Keyed),
        Append(Keyed),
        Extend(Vec<Keyed>),
        Insert(usize, Keyed),
        Remove(Keyed),
        Pop,
        PopAt(usize),
        Sort(bool),
    }

    fn keyed() -> impl Strategy<Value = Keyed> {
        (0u8..4, 0u8..3).prop_map(|(key, tag)| Keyed { key, tag })
    }

    fn op() -> impl Strategy<Value = Op> {
        let items = || prop::collection::vec(keyed(), 0..6);
        prop_oneof![
            1 => items().prop_map(Op::Reset),
            2 => (0usize..10, keyed()).prop_map(|(i, x)| Op::Set(i, x)),
            4 => keyed().prop_map(Op::Append),
            2 => items().prop_map(Op::Extend),
            2 => (0usize..10, keyed()).prop_map(|(i, x)| Op::Insert(i, x)),
            2 => keyed().prop_map(Op::Remove),
            2 => Just(Op::Pop),
            2 => (0usize..10).prop_map(Op::PopAt),
            2 => any::<bool>().prop_map(Op::Sort),
        ]
    }

    /// Applies `op` to the battery through `apply` and to the `Vec` model; checks the results
    /// agree.
    fn step(
        list: &mut ReplList<Keyed>,
        model: &mut Vec<Keyed>,
        op: Op,
    ) -> Result<(), TestCaseError> {
        type Unit = Result<(), BatteryError>;
        type Item = Result<Keyed, BatteryError>;
        let out = |index: usize, len: usize| BatteryError::IndexOutOfRange { index, len };
        match op {
            Op::Reset(items) => {
                let () = call(list, "reset", (items.clone(),));
                *model = items;
            }
            Op::Set(i, x) => {
                let got: Unit = call(list, "set", (i, x.clone()));
                let expected = match model.get_mut(i) {
                    Some(slot) => {
                        *slot = x;
                        Ok(())
                    }
                    None => Err(out(i, model.len())),
                };
                prop_assert_eq!(got, expected);
            }
            Op::Append(x) => {
                let () = call(list, "append", (x.clone(),));
                model.push(x);
            }
            Op::Extend(items) => {
                let () = call(list, "extend", (items.clone(),));
                model.extend(items);
            }
            Op::Insert(i, x) => {
                let got: Unit = call(list, "insert", (i, x.clone()));
                let expected = if i <= model.len() {
                    model.insert(i, x);
                    Ok(())
                } else {
                    Err(out(i, model.len()))
                };
                prop_assert_eq!(got, expected);
            }
            Op::Remove(x) => {
                let got: Unit = call(list, "remove", (x.clone(),));
                let expected = match model.iter().position(|item| *item == x) {
                    Some(i) => {
                        model.remove(i);
                        Ok(())
                    }
                    None => Err(BatteryError::NotFound),
                };
                prop_assert_eq!(got, expected);
            }
            Op::Pop => {
                let got: Item = call(list, "pop", ());
                prop_assert_eq!(got, model.pop().ok_or(BatteryError::Empty));
            }
            Op::PopAt(i) => {
                let got: Item = call(list, "pop_at", (i,));
                let expected = if i < model.len() {
                    Ok(model.remove(i))
                } else {
                    Err(out(i, model.len()))
                };
                prop_assert_eq!(got, expected);
            }
            Op::Sort(reverse) => {
                let () = call(list, "sort", (reverse,));
                // The std stable sort, on a key that is a total order.
                if reverse {
                    model.sort_by_key(|item| std::cmp::Reverse(item.key));
                } else {
                    model.sort_by_key(|item| item.key);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Through the generated `apply`, the list gives the results of a `Vec` (errors where
        /// the `Vec` would panic), holds the same items in the same order (a stable sort), and
        /// survives a MessagePack round trip.
        #[test]
        fn behaves_as_a_vec(ops in prop::collection::vec(op(), 0..40)) {
            let mut list = ReplList::<Keyed>::default();
            let mut model = Vec::new();
            for op in ops {
                step(&mut list, &mut model, op)?;
                prop_assert_eq!(list.raw_data(), &model[..]);
            }
            let mut copy = round_trip(&list);
            prop_assert_eq!(&copy, &list);
            step(&mut copy, &mut model, Op::Sort(true))?;
            step(&mut copy, &mut model, Op::Pop)?;
            prop_assert_eq!(copy.raw_data(), &model[..]);
        }
    }
}
