//! A linearizability checker for histories recorded by your own tests.
//!
//! Record what each client asked and what it got back, with times, in a [`History`] (or from
//! many threads with a [`Recorder`]); then [`check`] it against a [`Model`], the object's
//! sequential specification. The history is *linearizable* if its operations can be put in one
//! order, consistent with real time (an operation that ended before another started comes
//! first), in which each returns what the model says it returns. A replicated object whose
//! acknowledged calls and reads are linearizable behaves like a single copy: no stale read, no
//! lost write.
//!
//! Models for a [`Register`], a [`Counter`], a [`Set`] and a key-value map ([`KvMap`]) are
//! provided; implement [`Model`] for your own object.
//!
//! ```
//! use syncobj::testkit::{History, KvInput, KvMap, KvOutput, Verdict, check};
//!
//! # fn main() -> Result<(), syncobj::testkit::HistoryError> {
//! // Times are on any clock the clients share; here, hand-picked numbers.
//! let mut history = History::new();
//! // Client 1 puts x = 1 between times 0 and 10.
//! let put = history.invoke(1, KvInput::Put("x", 1), 0);
//! history.complete(put, KvOutput::Done, 10)?;
//! // Client 2 reads x while the put is under way, and sees the old value (no key): fine.
//! let get = history.invoke(2, KvInput::Get("x"), 5);
//! history.complete(get, KvOutput::Value(None), 8)?;
//! // Client 3 puts y = 2, but times out: it may or may not have taken effect.
//! let lost = history.invoke(3, KvInput::Put("y", 2), 11);
//! history.unknown(lost)?;
//! assert_eq!(check(KvMap::new(), &history), Verdict::Linearizable);
//!
//! // A read of x after the put completed that still sees no key is a stale read.
//! let stale = history.invoke(2, KvInput::Get("x"), 12);
//! history.complete(stale, KvOutput::Value(None), 13)?;
//! let verdict = check(KvMap::new(), &history);
//! let excerpt = verdict.excerpt().expect("a stale read is not linearizable");
//! // The excerpt holds just the put and the stale read: the other key and the earlier read
//! // have nothing to do with the failure.
//! assert_eq!(excerpt.ids(), [put, stale]);
//! assert!(excerpt.is_minimal());
//! println!("{verdict}");
//! # Ok(())
//! # }
//! ```
//!
//! # Unknown outcomes
//!
//! A call that timed out, or failed in a way that may have taken effect
//! ([`Effect::Unknown`](crate::Effect::Unknown)), is recorded with [`History::unknown`] (a call
//! never completed counts the same): the checker lets it take effect at any time after its
//! start, with any output, or never. A call that failed without effect
//! ([`Effect::None`](crate::Effect::None)) is best left out of the history altogether.
//!
//! # Cost
//!
//! Checking linearizability is NP-complete in general. The search (Wing and Gong's, with Lowe's
//! memo of the (operations done, model state) pairs already explored) is fast on histories of a
//! few concurrent clients, and partitioning (a map's keys, a set's elements; see
//! [`Model::partition`]) splits a long history into short ones. Every check is bounded: past
//! its budget of steps it answers [`Verdict::Unknown`] rather than run on ([`Checker`]).
//!
//! What costs most is an operation of unknown outcome that changes the state (a timed-out
//! write): it may take effect at any later point, so a history that fails after many of them
//! makes the search try every combination. A history that passes is usually found quickly all
//! the same. Shrinking a failure is a search per candidate; for a failure deep in a long
//! partition its budget may run out, and the excerpt is then reported as far as it got
//! ([`Excerpt::is_minimal`] is false).
//!
//! # What a failure reports
//!
//! A history that is not linearizable comes with an [`Excerpt`]: operations of one partition
//! that contradict each other whatever the history's other operations returned. The checker
//! starts from the operations invoked before the point where its search could go no further,
//! and *relaxes* as many of them as it can (takes them to have returned anything, or not to
//! have taken effect at all, within their recorded interval) while they still cannot be
//! linearized; the excerpt is the rest. It is not linearizable alone, and when
//! [minimal](Excerpt::is_minimal) none of its operations can be relaxed too. The search for it
//! has a budget of its own.
//!
//! # Testing your own object under faults
//!
//! Run your object on an in-process cluster over a [`MemoryNetwork`](crate::MemoryNetwork),
//! break the network and the nodes while clients call it, record every call, and check the
//! history. The network's faults: [`isolate`](crate::MemoryNetwork::isolate),
//! [`partition`](crate::MemoryNetwork::partition) and [`heal`](crate::MemoryNetwork::heal),
//! one-way cuts ([`block`](crate::MemoryNetwork::block)), seeded loss
//! ([`set_loss`](crate::MemoryNetwork::set_loss)), delay with jitter
//! ([`set_delay`](crate::MemoryNetwork::set_delay), [`Delay`]) and cuts that come and go
//! ([`flap`](crate::MemoryNetwork::flap), [`Cut`], [`Schedule`]), counted in
//! [`fault_counters`](crate::MemoryNetwork::fault_counters). A node can be crashed
//! ([`SyncObj::crash`](crate::SyncObj::crash): no orderly shutdown, its commit index not saved)
//! and started again on the same journal. On a simulated disk (`SimDisk`, feature `sim`,
//! given with `NodeBuilder::sim_disk`) the crash also loses
//! every write the disk did not sync.
//!
//! Read through the log (a `#[replicated]` method that returns the value) rather than with
//! `read()`, which shows this node's copy and may lag: only reads through the log are
//! linearizable. Record a call that failed as unknown: whatever the reason, checking it as
//! possibly applied is sound (a reason of [`Effect::None`](crate::Effect::None) could be left
//! out instead). Wait on events with deadlines (a call's completion, a leader), never on
//! sleeps.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::{Duration, Instant};
//!
//! use serde::{Deserialize, Serialize};
//! use syncobj::prelude::*;
//! use syncobj::testkit::{KvInput, KvMap, KvOutput, Recorder, SimDisk, Verdict, check};
//!
//! #[derive(Default, Serialize, Deserialize, Replicated)]
//! struct Store {
//!     entries: BTreeMap<String, i64>,
//! }
//!
//! #[replicated]
//! impl Store {
//!     #[replicated]
//!     fn put(&mut self, key: String, value: i64) -> Option<i64> {
//!         self.entries.insert(key, value)
//!     }
//!
//!     /// A read through the log.
//!     #[replicated]
//!     fn get(&mut self, key: String) -> Option<i64> {
//!         self.entries.get(&key).copied()
//!     }
//!
//!     #[replicated]
//!     fn delete(&mut self, key: String) -> Option<i64> {
//!         self.entries.remove(&key)
//!     }
//! }
//!
//! const NODES: [&str; 3] = ["a", "b", "c"];
//!
//! fn start(network: &MemoryNetwork, i: usize, disk: &SimDisk) -> SyncObj<Store> {
//!     SyncObj::builder(NODES[i])
//!         .partners(NODES)
//!         .configure(|c| {
//!             c.append_entries_period(Duration::from_millis(20))
//!                 .raft_min_timeout(Duration::from_millis(150))
//!                 .raft_max_timeout(Duration::from_millis(300))
//!         })
//!         .sim_disk(disk.clone())
//!         .memory(network)
//!         .start(Store::default())
//!         .expect("the node starts")
//! }
//!
//! type Log = Recorder<KvInput<String, i64>, KvOutput<i64>>;
//!
//! /// One client's call on `node`, recorded.
//! fn call(log: &Log, client: u64, node: &SyncObj<Store>, input: KvInput<String, i64>) {
//!     let op = log.invoke(client, input.clone());
//!     let outcome = match input {
//!         KvInput::Put(key, value) => node.put(key, value),
//!         KvInput::Get(key) => node.get(key),
//!         KvInput::Delete(key) => node.delete(key),
//!     };
//!     match outcome.wait_timeout(Duration::from_secs(2)) {
//!         Ok(value) => log.complete(op, KvOutput::Value(value)),
//!         Err(_) => log.unknown(op), // it may have been applied
//!     }
//!     .expect("recorded once");
//! }
//!
//! let network = MemoryNetwork::with_seed(1);
//! network.set_loss(0.01)?; // one frame in a hundred is lost, replayably
//! let disks = [1, 2, 3].map(SimDisk::new); // one simulated disk per node
//! let mut nodes: Vec<_> = (0..3).map(|i| start(&network, i, &disks[i])).collect();
//! let log = Log::new();
//!
//! // Wait for a leader: a call completes once there is one.
//! let deadline = Instant::now() + Duration::from_secs(10);
//! while !nodes.iter().any(|n| n.is_leader()) {
//!     assert!(Instant::now() < deadline, "no leader");
//!     let _ = nodes[0].get("x".into()).wait_timeout(Duration::from_millis(100));
//! }
//! call(&log, 1, &nodes[0], KvInput::Put("x".into(), 1));
//!
//! // Node a alone on one side of a partition; b and c go on.
//! network.partition([vec!["a"], vec!["b", "c"]])?;
//! call(&log, 2, &nodes[1], KvInput::Put("x".into(), 2));
//! call(&log, 1, &nodes[0], KvInput::Get("x".into())); // fails, or is old: both are fine
//! network.heal();
//!
//! // Node b crashes (its unsynced writes are lost) and restarts from its disk.
//! let b = nodes.remove(1);
//! b.crash();
//! nodes.insert(1, start(&network, 1, &disks[1]));
//! call(&log, 2, &nodes[1], KvInput::Get("x".into()));
//! call(&log, 3, &nodes[2], KvInput::Put("x".into(), 3));
//!
//! let history = log.into_history();
//! let verdict = check(KvMap::new(), &history);
//! assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Run clients on threads of their own to make calls overlap, as the package's own
//! `tests/faults.rs` does; the checker takes the overlaps into account. A failure names the
//! calls that contradict each other ([`Excerpt`]), and the network's seed and the disks'
//! replay the faults' random draws (the threads' timing is the machine's).

mod checker;
mod history;
mod model;
mod models;

pub use checker::{Checker, Excerpt, Verdict, check};
pub use history::{History, HistoryError, OpId, Operation, Outcome, Recorder};
pub use model::Model;
pub use models::{
    Counter, CounterInput, CounterOutput, KvInput, KvMap, KvOutput, Register, RegisterInput,
    RegisterOutput, Set, SetInput,
};
pub use syncobj_core::driver::{
    Cut, DELAY_MAX, DELAYED_FRAMES_MAX, Delay, FaultCounters, FaultError, Flapping, Schedule,
};
#[cfg(feature = "sim")]
pub use syncobj_core::storage::SimDisk;
