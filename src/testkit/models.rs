//! Ready-made models: a register, a counter, a set and a key-value map.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;

use super::Model;

/// A hash of `value` that is the same in every run (a partition number).
fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// An operation on a [`Register`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput<V> {
    /// Reads the value.
    Read,
    /// Replaces the value.
    Write(V),
    /// Replaces the value with `new` if it is `expected`.
    Cas {
        /// The value the register must hold.
        expected: V,
        /// The value it then holds.
        new: V,
    },
}

/// What an operation on a [`Register`] returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput<V> {
    /// A read's value.
    Read(V),
    /// A write's acknowledgement.
    Written,
    /// Whether a compare-and-set swapped.
    Cas(bool),
}

/// A single value that can be read, written and compared-and-set. An output of the wrong
/// kind for its input (a read that returned `Written`) never matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Register<V> {
    initial: V,
}

impl<V> Register<V> {
    /// A register that holds `initial` before the first write.
    pub fn new(initial: V) -> Self {
        Register { initial }
    }
}

impl<V: Clone + Debug + Eq + Hash> Model for Register<V> {
    type State = V;
    type Input = RegisterInput<V>;
    type Output = RegisterOutput<V>;

    fn init(&self) -> V {
        self.initial.clone()
    }

    fn step(
        &self,
        state: &V,
        input: &RegisterInput<V>,
        output: Option<&RegisterOutput<V>>,
    ) -> Option<V> {
        match (input, output) {
            (RegisterInput::Read, None) => Some(state.clone()),
            (RegisterInput::Read, Some(RegisterOutput::Read(value))) => {
                (value == state).then(|| state.clone())
            }
            (RegisterInput::Write(value), None | Some(RegisterOutput::Written)) => {
                Some(value.clone())
            }
            (RegisterInput::Cas { expected, new }, None) => Some(if expected == state {
                new.clone()
            } else {
                state.clone()
            }),
            (RegisterInput::Cas { expected, new }, Some(RegisterOutput::Cas(swapped))) => {
                match (*swapped, expected == state) {
                    (true, true) => Some(new.clone()),
                    (false, false) => Some(state.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// An operation on a [`Counter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterInput {
    /// Adds a number (wrapping around on overflow, as
    /// [`ReplCounter`](crate::batteries::ReplCounter) does).
    Add(i64),
    /// Reads the value.
    Read,
}

/// What an operation on a [`Counter`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterOutput {
    /// An add's acknowledgement, without a value.
    Done,
    /// A read's value, or the value an add left (as `ReplCounter::add` returns it).
    Value(i64),
}

/// An `i64` counter that starts at 0 (or a given value) and is added to and read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    initial: i64,
}

impl Counter {
    /// A counter that starts at `initial`.
    pub fn new(initial: i64) -> Self {
        Counter { initial }
    }
}

impl Model for Counter {
    type State = i64;
    type Input = CounterInput;
    type Output = CounterOutput;

    fn init(&self) -> i64 {
        self.initial
    }

    fn step(
        &self,
        state: &i64,
        input: &CounterInput,
        output: Option<&CounterOutput>,
    ) -> Option<i64> {
        match (input, output) {
            (CounterInput::Add(n), None | Some(CounterOutput::Done)) => {
                Some(state.wrapping_add(*n))
            }
            (CounterInput::Add(n), Some(CounterOutput::Value(value))) => {
                let next = state.wrapping_add(*n);
                (next == *value).then_some(next)
            }
            (CounterInput::Read, None) => Some(*state),
            (CounterInput::Read, Some(CounterOutput::Value(value))) => {
                (value == state).then_some(*state)
            }
            (CounterInput::Read, Some(CounterOutput::Done)) => None,
        }
    }
}

/// An operation on a [`Set`]; each returns a `bool`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SetInput<T> {
    /// Adds an element; returns whether it was absent.
    Add(T),
    /// Removes an element; returns whether it was present.
    Remove(T),
    /// Returns whether an element is present.
    Contains(T),
}

impl<T> SetInput<T> {
    /// The element the operation is about.
    pub fn element(&self) -> &T {
        match self {
            SetInput::Add(element) | SetInput::Remove(element) | SetInput::Contains(element) => {
                element
            }
        }
    }
}

/// A set of elements, starting empty, with `std`'s `insert`/`remove`/`contains` results.
///
/// Operations on different elements never affect each other, so the checker checks each
/// element's operations alone (its partition is a hash of the element).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Set<T> {
    elements: PhantomData<fn() -> T>,
}

impl<T> Set<T> {
    /// The model of a set that starts empty.
    pub fn new() -> Self {
        Set {
            elements: PhantomData,
        }
    }
}

impl<T> Default for Set<T> {
    fn default() -> Self {
        Set::new()
    }
}

impl<T: Clone + Debug + Ord + Hash> Model for Set<T> {
    type State = BTreeSet<T>;
    type Input = SetInput<T>;
    type Output = bool;

    fn init(&self) -> BTreeSet<T> {
        BTreeSet::new()
    }

    fn step(
        &self,
        state: &BTreeSet<T>,
        input: &SetInput<T>,
        output: Option<&bool>,
    ) -> Option<BTreeSet<T>> {
        let present = state.contains(input.element());
        let result = match input {
            SetInput::Add(_) => !present,
            SetInput::Remove(_) | SetInput::Contains(_) => present,
        };
        if output.is_some_and(|returned| *returned != result) {
            return None;
        }
        let mut next = state.clone();
        match input {
            SetInput::Add(element) => {
                next.insert(element.clone());
            }
            SetInput::Remove(element) => {
                next.remove(element);
            }
            SetInput::Contains(_) => {}
        }
        Some(next)
    }

    fn partition(&self, input: &SetInput<T>) -> u64 {
        stable_hash(input.element())
    }
}

/// An operation on a [`KvMap`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput<K, V> {
    /// Sets the value under a key.
    Put(K, V),
    /// Reads the value under a key.
    Get(K),
    /// Removes a key.
    Delete(K),
}

impl<K, V> KvInput<K, V> {
    /// The key the operation is about.
    pub fn key(&self) -> &K {
        match self {
            KvInput::Put(key, _) | KvInput::Get(key) | KvInput::Delete(key) => key,
        }
    }
}

/// What an operation on a [`KvMap`] returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput<V> {
    /// A put's or delete's acknowledgement, without a value.
    Done,
    /// A get's value (`None`: no such key), or the value a put or delete replaced (as
    /// `HashMap::insert` and `remove` return it).
    Value(Option<V>),
}

/// A key-value map, starting empty. Operations on different keys never affect each other, so
/// the checker checks each key's operations alone (its partition is a hash of the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvMap<K, V> {
    entries: PhantomData<fn() -> (K, V)>,
}

impl<K, V> KvMap<K, V> {
    /// The model of a map that starts empty.
    pub fn new() -> Self {
        KvMap {
            entries: PhantomData,
        }
    }
}

impl<K, V> Default for KvMap<K, V> {
    fn default() -> Self {
        KvMap::new()
    }
}

impl<K, V> Model for KvMap<K, V>
where
    K: Clone + Debug + Ord + Hash,
    V: Clone + Debug + Eq + Hash,
{
    type State = BTreeMap<K, V>;
    type Input = KvInput<K, V>;
    type Output = KvOutput<V>;

    fn init(&self) -> BTreeMap<K, V> {
        BTreeMap::new()
    }

    fn step(
        &self,
        state: &BTreeMap<K, V>,
        input: &KvInput<K, V>,
        output: Option<&KvOutput<V>>,
    ) -> Option<BTreeMap<K, V>> {
        let current = state.get(input.key());
        match (input, output) {
            (KvInput::Get(_), None) => return Some(state.clone()),
            (KvInput::Get(_), Some(KvOutput::Value(value))) => {
                return (value.as_ref() == current).then(|| state.clone());
            }
            (KvInput::Get(_), Some(KvOutput::Done)) => return None,
            (_, Some(KvOutput::Value(previous))) if previous.as_ref() != current => return None,
            _ => {}
        }
        let mut next = state.clone();
        match input {
            KvInput::Put(key, value) => {
                next.insert(key.clone(), value.clone());
            }
            KvInput::Delete(key) => {
                next.remove(key);
            }
            KvInput::Get(_) => {}
        }
        Some(next)
    }

    fn partition(&self, input: &KvInput<K, V>) -> u64 {
        stable_hash(input.key())
    }
}
