//! `ReplDict`: a replicated `BTreeMap`.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::collections::btree_map;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Replicated, replicated};

/// A replicated dictionary (PySyncObj's `ReplDict`): a `BTreeMap`, so that keys, values and
/// entries are always listed in key order, the same on every node.
///
/// The replicated methods change it; `get`, `len`, `contains_key`, `keys`, `values`, `iter` and
/// `raw_data` read this node's copy through `read()`.
///
/// ```
/// use std::time::Duration;
/// use syncobj::batteries::ReplDict;
/// use syncobj::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = MemoryNetwork::new();
/// let no_partners: [&str; 0] = [];
/// let node = SyncObj::with_transport(
///     "solo",
///     no_partners,
///     ReplDict::<String, u32>::default(),
///     SyncObjConf::default(),
///     network.endpoint("solo"),
/// )?;
/// let wait = Duration::from_secs(10);
/// assert_eq!(node.set("ada".into(), 1815).wait_timeout(wait)?, None);
/// // `setdefault` keeps a value already there and returns it.
/// assert_eq!(node.setdefault("ada".into(), 0).wait_timeout(wait)?, 1815);
/// assert_eq!(node.setdefault("alan".into(), 1912).wait_timeout(wait)?, 1912);
/// assert_eq!(node.pop("nobody".into()).wait_timeout(wait)?, None);
///
/// let dict = node.read();
/// assert_eq!(dict.get("alan"), Some(&1912));
/// assert_eq!(dict.keys().collect::<Vec<_>>(), ["ada", "alan"]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Replicated)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: Ord + Deserialize<'de>, V: Deserialize<'de>"
))]
pub struct ReplDict<K, V> {
    /// The entries.
    data: BTreeMap<K, V>,
}

impl<K, V> Default for ReplDict<K, V> {
    fn default() -> Self {
        ReplDict {
            data: BTreeMap::new(),
        }
    }
}

#[replicated]
impl<K, V> ReplDict<K, V>
where
    K: Ord + Serialize + DeserializeOwned + Send + Sync + 'static,
    V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Replaces every entry with those of `data`.
    #[replicated]
    pub fn reset(&mut self, data: BTreeMap<K, V>) {
        self.data = data;
    }

    /// Sets `key` to `value`; returns the value it had before, if any (PySyncObj's `set` and
    /// `d[key] = value`).
    #[replicated]
    pub fn set(&mut self, key: K, value: V) -> Option<V> {
        self.data.insert(key, value)
    }

    /// Sets `key` to `default` unless it has a value already; returns the value `key` has now.
    #[replicated]
    pub fn setdefault(&mut self, key: K, default: V) -> V {
        self.data.entry(key).or_insert(default).clone()
    }

    /// Sets every entry of `data`, replacing the values of keys already there.
    #[replicated]
    pub fn update(&mut self, data: BTreeMap<K, V>) {
        self.data.extend(data);
    }

    /// Removes `key`; returns its value, or `None` when it had none.
    #[replicated]
    pub fn pop(&mut self, key: K) -> Option<V> {
        self.data.remove(&key)
    }

    /// Removes every entry.
    #[replicated]
    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// The value of `key` on this node (local).
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.data.get(key)
    }

    /// The number of entries (local).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no entries (local).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether `key` has a value (local; PySyncObj's `key in d`).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.data.contains_key(key)
    }

    /// The keys, in order (local).
    pub fn keys(&self) -> btree_map::Keys<'_, K, V> {
        self.data.keys()
    }

    /// The values, in the order of their keys (local).
    pub fn values(&self) -> btree_map::Values<'_, K, V> {
        self.data.values()
    }

    /// The entries, in key order (local; PySyncObj's `items`).
    pub fn iter(&self) -> btree_map::Iter<'_, K, V> {
        self.data.iter()
    }

    /// The whole map (local; PySyncObj's `rawData`).
    pub fn raw_data(&self) -> &BTreeMap<K, V> {
        &self.data
    }
}

impl<'a, K, V> IntoIterator for &'a ReplDict<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = btree_map::Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.data.iter()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::batteries::tests::{call, round_trip};

    /// PySyncObj's `test_ReplDict`, on the state directly.
    #[test]
    fn pysyncobj_repl_dict() {
        let mut d = ReplDict::<i64, i64>::default();
        d.reset(BTreeMap::from([(1, 1), (2, 22)]));
        assert_eq!(d.raw_data(), &BTreeMap::from([(1, 1), (2, 22)]));
        // PySyncObj's `d[1] = 10`: the same replicated `set`.
        assert_eq!(d.set(1, 10), Some(1));
        assert_eq!(d.raw_data(), &BTreeMap::from([(1, 10), (2, 22)]));
        assert_eq!(d.set(1, 20), Some(10));
        assert_eq!(d.raw_data(), &BTreeMap::from([(1, 20), (2, 22)]));
        assert_eq!(d.setdefault(1, 50), 20);
        assert_eq!(d.setdefault(3, 50), 50);
        d.update(BTreeMap::from([(5, 5), (6, 7)]));
        let expected = BTreeMap::from([(1, 20), (2, 22), (3, 50), (5, 5), (6, 7)]);
        assert_eq!(d.raw_data(), &expected);
        assert_eq!(d.pop(3), Some(50));
        assert_eq!(d.pop(6), Some(7));
        assert_eq!(d.pop(6), None);
        assert_eq!(d.pop(6).unwrap_or(0), 0, "PySyncObj's pop(6, 0)");
        assert_eq!(d.raw_data(), &BTreeMap::from([(1, 20), (2, 22), (5, 5)]));
        assert_eq!(d.get(&1), Some(&20));
        assert_eq!(d.get(&2), Some(&22));
        assert_eq!(d.get(&22), None);
        assert_eq!(
            d.get(&22).copied().unwrap_or(10),
            10,
            "PySyncObj's get(22, 10)"
        );
        assert_eq!(d.len(), 3);
        assert!(d.contains_key(&2));
        assert!(!d.contains_key(&22));
        assert_eq!(d.keys().copied().collect::<Vec<_>>(), [1, 2, 5]);
        assert_eq!(d.values().copied().collect::<Vec<_>>(), [20, 22, 5]);
        assert!(d.iter().eq(d.raw_data().iter()));
        assert!((&d).into_iter().eq(d.raw_data().iter()));
        d.clear();
        assert_eq!(d.len(), 0);
        assert!(d.is_empty());
    }

    /// One operation of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Reset(BTreeMap<u8, i32>),
        Set(u8, i32),
        SetDefault(u8, i32),
        Update(BTreeMap<u8, i32>),
        Pop(u8),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        let map = || prop::collection::btree_map(0u8..16, any::<i32>(), 0..6);
        prop_oneof![
            1 => map().prop_map(Op::Reset),
            6 => (0u8..16, any::<i32>()).prop_map(|(k, v)| Op::Set(k, v)),
            3 => (0u8..16, any::<i32>()).prop_map(|(k, v)| Op::SetDefault(k, v)),
            2 => map().prop_map(Op::Update),
            4 => (0u8..16).prop_map(Op::Pop),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Through the generated `apply`, the dictionary gives the results of a `BTreeMap`,
        /// holds the same entries, and survives a MessagePack round trip.
        #[test]
        fn behaves_as_a_btree_map(ops in prop::collection::vec(op(), 0..40)) {
            let mut dict = ReplDict::<u8, i32>::default();
            let mut model = BTreeMap::<u8, i32>::new();
            for op in ops {
                match op {
                    Op::Reset(data) => {
                        let () = call(&mut dict, "reset", (data.clone(),));
                        model = data;
                    }
                    Op::Set(k, v) => {
                        let got: Option<i32> = call(&mut dict, "set", (k, v));
                        prop_assert_eq!(got, model.insert(k, v));
                    }
                    Op::SetDefault(k, v) => {
                        let got: i32 = call(&mut dict, "setdefault", (k, v));
                        prop_assert_eq!(got, *model.entry(k).or_insert(v));
                    }
                    Op::Update(data) => {
                        let () = call(&mut dict, "update", (data.clone(),));
                        model.extend(data);
                    }
                    Op::Pop(k) => {
                        let got: Option<i32> = call(&mut dict, "pop", (k,));
                        prop_assert_eq!(got, model.remove(&k));
                    }
                    Op::Clear => {
                        let () = call(&mut dict, "clear", ());
                        model.clear();
                    }
                }
                prop_assert_eq!(dict.raw_data(), &model);
                prop_assert_eq!(dict.len(), model.len());
            }
            let mut copy = round_trip(&dict);
            prop_assert_eq!(&copy, &dict);
            let got: Option<i32> = call(&mut copy, "set", (3u8, 7i32));
            prop_assert_eq!(got, model.insert(3, 7));
            prop_assert_eq!(copy.raw_data(), &model);
        }
    }
}
