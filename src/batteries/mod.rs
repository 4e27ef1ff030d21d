//! Ready-made replicated data structures: PySyncObj's "batteries".
//!
//! Each battery is a plain replicated type, written with [`Replicated`](crate::Replicated) and
//! [`replicated`](crate::replicated) exactly as a user would write their own. Use one as a
//! node's main object, or as one of its consumers next to other objects on the same log:
//!
//! ```
//! use std::time::Duration;
//! use syncobj::batteries::{ReplCounter, ReplDict};
//! use syncobj::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MemoryNetwork::new();
//! // A node of one, with a counter as its main object and a dictionary as consumer 0.
//! let node = SyncObj::builder("solo")
//!     .memory(&network)
//!     .consumer(ReplDict::<String, i64>::default())
//!     .start(ReplCounter::default())?;
//! let scores = node.consumer::<ReplDict<String, i64>>(0).expect("consumer 0 is the dictionary");
//!
//! let wait = Duration::from_secs(10);
//! assert_eq!(node.inc().wait_timeout(wait)?, 1);
//! assert_eq!(scores.set("ada".into(), 3).wait_timeout(wait)?, None);
//! assert_eq!(node.read().get(), 1);
//! assert_eq!(scores.read().get("ada"), Some(&3));
//! # Ok(())
//! # }
//! ```
//!
//! # What is replicated, what is local
//!
//! A method that changes a battery is replicated: it is called through a node's handle
//! (`node.inc()`) or a consumer's (`scores.set(k, v)`), goes through the log, runs on every node
//! in the same order, and its [`Call`](crate::Call) yields what it returned on the calling node.
//! A method that only reads is local: it reads this node's copy through `read()`, which may lag
//! behind the leader's (as in PySyncObj, a local read is not linearizable).
//!
//! # Failures
//!
//! Where PySyncObj raises inside a replicated method (which stops every replica at that log
//! entry, for ever), a battery returns `Err(`[`BatteryError`]`)` as the method's result: the
//! caller receives it, nothing changed, and the cluster goes on. Where PySyncObj returns a
//! default value, a battery returns an `Option` (`None` for "nothing there").
//!
//! # Determinism
//!
//! Every node must compute the same result from the same commands, so nothing depends on a
//! hash order, a clock or the memory layout: dictionaries and sets are a `BTreeMap` and a
//! `BTreeSet` (iteration in key order, `ReplSet::pop` takes the smallest); the priority queue
//! hands out equal items in the order they were put, also after a snapshot; the list's `sort`
//! is a stable merge sort of its own that gives one order even for incomparable items (see
//! [`ReplList::sort`]); the counter wraps around on overflow.
//!
//! # Locks
//!
//! [`ReplLockManager`] acquires, holds and releases named locks kept in a [`LockTable`], with
//! auto-unlock judged on the cluster time the leader stamps on each command, never on a
//! client's clock. The [`lock`] module documents the holding rule, the guarantee it gives (two
//! clients never hold one lock at once), its proof, and what it does not cover.
//!
//! # From PySyncObj
//!
//! Every PySyncObj battery method and its syncobj name (R: replicated, L: local):
//!
//! | PySyncObj | syncobj | |
//! |---|---|---|
//! | `ReplCounter()` | [`ReplCounter::default`] | |
//! | `set(v)`, `add(v)`, `sub(v)`, `inc()` | `set(v)`, `add(v)`, `sub(v)`, `inc()` | R, return the new value |
//! | `get()` | [`ReplCounter::get`] | L |
//! | `ReplList()` | [`ReplList::default`] | |
//! | `reset(l)`, `append(x)`, `extend(l)` | `reset(v)`, `append(x)`, `extend(v)` | R |
//! | `set(i, x)`, `l[i] = x` (needs version 1) | `set(i, x)`: [`BatteryError::IndexOutOfRange`] | R, version 0 |
//! | `insert(i, x)` | `insert(i, x)`: `IndexOutOfRange` past the end | R |
//! | `remove(x)` (raises if missing) | `remove(x)`: [`BatteryError::NotFound`] | R |
//! | `pop()` (fails in Python 3), `pop(i)` | `pop()`: [`BatteryError::Empty`], `pop_at(i)` | R |
//! | `sort(reverse)` | `sort(reverse)` | R |
//! | `get(i)`, `l[i]` | [`ReplList::get`] | L |
//! | `index(x)`, `count(x)`, `len(l)`, `rawData()` | [`ReplList::index`], [`ReplList::count`], [`ReplList::len`], [`ReplList::raw_data`] | L |
//! | `ReplDict()` | [`ReplDict::default`] | |
//! | `reset(d)`, `update(d)`, `clear()` | `reset(m)`, `update(m)`, `clear()` | R |
//! | `set(k, v)`, `d[k] = v` | `set(k, v)`: the previous value | R |
//! | `setdefault(k, d)` | `setdefault(k, d)`: the value now stored | R |
//! | `pop(k, default)` | `pop(k)`: `Option` | R |
//! | `d[k]`, `get(k, default)` | [`ReplDict::get`]: `Option` | L |
//! | `len(d)`, `k in d` | [`ReplDict::len`], [`ReplDict::contains_key`] | L |
//! | `keys()`, `values()`, `items()`, `rawData()` | [`ReplDict::keys`], [`ReplDict::values`], [`ReplDict::iter`], [`ReplDict::raw_data`] | L |
//! | `ReplSet()` | [`ReplSet::default`] | |
//! | `reset(s)`, `add(x)`, `discard(x)`, `clear()`, `update(s)` | `reset(s)`, `add(x)`, `discard(x)`, `clear()`, `update(v)` | R |
//! | `remove(x)` (raises if missing) | `remove(x)`: `NotFound` | R |
//! | `pop()` (raises if empty) | `pop()`: the smallest, or `Empty` | R |
//! | `len(s)`, `x in s`, `rawData()` | [`ReplSet::len`], [`ReplSet::contains`], [`ReplSet::raw_data`] | L |
//! | `ReplQueue(maxsize)` | [`ReplQueue::new`] (0: unbounded), [`ReplQueue::default`] | |
//! | `put(x)` | `put(x)`: `false` when full | R |
//! | `get(default)` | `get()`: `Option`, first in first out | R |
//! | `qsize()`, `len(q)`, `empty()` | [`ReplQueue::len`], [`ReplQueue::is_empty`] | L |
//! | `full()` (true when empty and unbounded) | [`ReplQueue::is_full`] (never true when unbounded) | L |
//! | `ReplPriorityQueue(maxsize)` | [`ReplPriorityQueue::new`], [`ReplPriorityQueue::default`] | |
//! | `put(x)`, `get(default)` | `put(x)`, `get()`: the smallest, equal items first in first out | R |
//! | `qsize()`, `len(q)`, `empty()`, `full()` | [`ReplPriorityQueue::len`], [`ReplPriorityQueue::is_empty`], [`ReplPriorityQueue::is_full`] | L |
//! | `ReplLockManager(autoUnlockTime, selfID)` | [`ReplLockManager::new`] on a [`LockTable::new`] | |
//! | `tryAcquire(lock)`, `release(lock)` | `try_acquire(lock)`, `release(lock)` | R |
//! | `isAcquired(lock)` | `is_acquired(lock)` | L |
//!
//! Beyond PySyncObj, the collections have the usual Rust readers: `is_empty`, `contains`,
//! `iter`, and for the queues `peek` and `iter` in the order `get` would return the items.

mod counter;
mod dict;
mod list;
pub mod lock;
mod priority_queue;
mod queue;
mod set;

use serde::{Deserialize, Serialize};

pub use counter::ReplCounter;
pub use dict::ReplDict;
pub use list::ReplList;
pub use lock::{LockTable, LockTableCalls, LockTableCommand, ReplLockManager, TryAcquire};
pub use priority_queue::ReplPriorityQueue;
pub use queue::ReplQueue;
pub use set::ReplSet;

/// Why a battery's replicated method did nothing: returned to the caller as the method's
/// result, where PySyncObj raises (and stops its cluster).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BatteryError {
    /// The index is not a position of the list (`len` is its length then).
    #[error("index {index} is out of range for a length of {len}")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The list's length when the command was applied.
        len: usize,
    },
    /// The item is not in the collection.
    #[error("the item is not in the collection")]
    NotFound,
    /// The collection is empty.
    #[error("the collection is empty")]
    Empty,
}

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers of the batteries' unit tests.

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::ReplicatedMethods;

    /// Runs the replicated method `name` (its highest version) on `state` through the generated
    /// `apply`, with `args` MessagePack-encoded as a node's caller encodes them, and decodes
    /// its result.
    pub(crate) fn call<S, A, R>(state: &mut S, name: &str, args: A) -> R
    where
        S: ReplicatedMethods,
        A: Serialize,
        R: DeserializeOwned,
    {
        let spec = S::METHODS
            .iter()
            .filter(|spec| spec.name == name)
            .max_by_key(|spec| spec.version)
            .expect("the battery has a replicated method of that name");
        let args = rmp_serde::to_vec(&args).expect("the arguments encode");
        let result = state.apply(spec.id, &args).expect("the command applies");
        rmp_serde::from_slice(&result).expect("the result decodes")
    }

    /// `state` after a MessagePack round trip, as in a snapshot.
    pub(crate) fn round_trip<S: Serialize + DeserializeOwned>(state: &S) -> S {
        let bytes = rmp_serde::to_vec(state).expect("the state encodes");
        rmp_serde::from_slice(&bytes).expect("the state decodes")
    }
}
