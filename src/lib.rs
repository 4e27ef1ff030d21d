//! syncobj replicates a plain Rust struct across a cluster of servers with Raft.
//!
//! Write a struct and its methods, mark the methods that change it `#[replicated]`, and call
//! them on any node: every node applies the committed calls in the same order and holds the same
//! state. A call can be waited for, given a callback, awaited, or detached.
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use syncobj::prelude::*;
//!
//! #[derive(Default, Serialize, Deserialize, Replicated)]
//! struct Counter {
//!     value: i64,
//! }
//!
//! #[replicated]
//! impl Counter {
//!     #[replicated]
//!     fn add(&mut self, n: i64) -> i64 {
//!         self.value += n;
//!         self.value
//!     }
//!
//!     fn get(&self) -> i64 {
//!         self.value
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Three nodes in this process, linked by an in-memory network (`SyncObj::new` talks TCP).
//! let network = MemoryNetwork::new();
//! let addresses = ["node-a", "node-b", "node-c"];
//! let nodes = addresses
//!     .iter()
//!     .map(|&me| {
//!         let partners = addresses.iter().filter(|&&a| a != me).copied();
//!         SyncObj::with_transport(me, partners, Counter::default(), SyncObjConf::default(), network.endpoint(me))
//!     })
//!     .collect::<Result<Vec<_>, _>>()?;
//!
//! // A call on any node is replicated; `wait` returns what the method returned on that node.
//! let value = nodes[1].add(5).wait_timeout(Duration::from_secs(10))?;
//! assert_eq!(value, 5);
//! assert_eq!(nodes[1].read().get(), 5);
//! # Ok(())
//! # }
//! ```
//!
//! A real node talks TCP, and with a password every connection is encrypted and authenticated;
//! with a journal it keeps its log, vote and snapshots through crashes. Options are set on a
//! builder, whose `build` checks them all and reports every mistake at once
//! ([`ConfErrors`]):
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! # use syncobj::prelude::*;
//! # #[derive(Default, Serialize, Deserialize, Replicated)]
//! # struct Counter { value: i64 }
//! # #[replicated]
//! # impl Counter {
//! #     #[replicated]
//! #     fn add(&mut self, n: i64) -> i64 { self.value += n; self.value }
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conf = SyncObjConf::builder()
//!     .password("a long shared secret")
//!     .journal_file("counter-data/journal")
//!     .build()?;
//! let node = SyncObj::new(
//!     "10.0.0.1:4321",
//!     ["10.0.0.2:4321", "10.0.0.3:4321"],
//!     Counter::default(),
//!     conf,
//! )?;
//! node.add(1).wait()?;
//! # Ok(())
//! # }
//! ```
//!
//! Every kind of node starts from one builder: a voter ([`SyncObj::builder`]) or a read-only
//! node ([`SyncObj::read_only_builder`]), over TCP (the default), a [`MemoryNetwork`] or a
//! [`transport::Transport`] of your own, with any number of consumers — more replicated objects
//! on the same log (PySyncObj's `consumers=[...]`). Addresses are checked at start:
//!
//! ```no_run
//! # use serde::{Deserialize, Serialize};
//! # use syncobj::prelude::*;
//! # #[derive(Default, Serialize, Deserialize, Replicated)]
//! # struct Counter { value: i64 }
//! # #[replicated]
//! # impl Counter {
//! #     #[replicated]
//! #     fn add(&mut self, n: i64) -> i64 { self.value += n; self.value }
//! # }
//! #[derive(Default, Serialize, Deserialize, Replicated)]
//! struct Names {
//!     names: Vec<String>,
//! }
//!
//! #[replicated]
//! impl Names {
//!     #[replicated]
//!     fn push(&mut self, name: String) -> usize {
//!         self.names.push(name);
//!         self.names.len()
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = SyncObj::builder("10.0.0.1:4321")
//!     .partners(["10.0.0.2:4321", "10.0.0.3:4321"])
//!     .password("a long shared secret")
//!     .journal_file("counter-data/journal")
//!     .consumer(Names::default())
//!     .start(Counter::default())?;
//! let names = node.consumer::<Names>(0).expect("a Names consumer");
//! names.push("ada".into()).wait()?;
//! # Ok(())
//! # }
//! ```
//!
//! Ready-made replicated types — a counter, a dictionary, a list, a set and two queues, usable
//! as a main object or as consumers — are in [`batteries`]. [`testkit`] checks that histories of
//! calls recorded by your own tests are linearizable.
//!
//! # When a call fails
//!
//! A call fails with a [`FailReason`], and [`FailReason::effect`] says what it may have done:
//! [`Effect::None`] (never applied anywhere: a retry is safe), [`Effect::Applied`] (the method
//! ran), or [`Effect::Unknown`] (it may have been applied, or may be later: a retry can apply it
//! twice). Every call ends: `call_timeout` bounds calls waiting for a leader, forwarded or
//! placed alike.
//!
//! # Logs
//!
//! syncobj logs through `tracing`; install a subscriber (for example `tracing-subscriber`) to
//! see elections, refused connections and storage trouble.
//!
//! The deterministic simulator (`syncobj::sim`, feature `sim`, off by default) runs the same
//! engine under simulated faults; `syncobj-sim` runs it over many seeds.

#![deny(missing_docs)]

// The batteries use the crate's own macros, whose generated code names `::syncobj`.
extern crate self as syncobj;

pub mod batteries;
pub mod testkit;

pub use syncobj_core::conf::{self, ConfErrors, FsyncPolicy, SyncObjConf, SyncObjConfBuilder};
/// # Example
///
/// A replicated cache whose entries expire 30 seconds of cluster time after they were put:
///
/// ```
/// use std::collections::BTreeMap;
/// use std::time::Duration;
///
/// use serde::{Deserialize, Serialize};
/// use syncobj::prelude::*;
///
/// const TTL: Duration = Duration::from_secs(30);
///
/// #[derive(Default, Serialize, Deserialize, Replicated)]
/// struct TtlCache {
///     /// Each key's value and the cluster time it expires at.
///     entries: BTreeMap<String, (String, Duration)>,
/// }
///
/// #[replicated]
/// impl TtlCache {
///     /// Puts `value` under `key`, dropping the entries that expired.
///     #[replicated]
///     fn put(&mut self, key: String, value: String) {
///         let now = syncobj::command_time().expect("a replicated method runs");
///         self.entries.retain(|_, (_, expiry)| *expiry > now);
///         self.entries.insert(key, (value, now + TTL));
///     }
///
///     /// Removes and returns the value under `key`, unless it expired.
///     #[replicated]
///     fn take(&mut self, key: String) -> Option<String> {
///         let now = syncobj::command_time().expect("a replicated method runs");
///         let (value, expiry) = self.entries.remove(&key)?;
///         (expiry > now).then_some(value)
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = MemoryNetwork::new();
/// let no_partners: [&str; 0] = [];
/// let conf = SyncObjConf::default();
/// let node = SyncObj::with_transport("a", no_partners, TtlCache::default(), conf, network.endpoint("a"))?;
/// node.put("greeting".into(), "hello".into()).wait_timeout(Duration::from_secs(10))?;
/// let taken = node.take("greeting".into()).wait_timeout(Duration::from_secs(10))?;
/// assert_eq!(taken.as_deref(), Some("hello"));
/// // Outside a replicated method there is no command, so no command time.
/// assert_eq!(syncobj::command_time(), None);
/// # Ok(())
/// # }
/// ```
pub use syncobj_core::driver::command_time;
pub use syncobj_core::driver::{
    AddressRole, BadAddress, BindError, BindFailure, Consumer, Consumers, HaltReason,
    MemoryNetwork, MemoryTransport, NodeBuilder, SnapshotError, SnapshotHook, StartError, SyncObj,
    TickError,
};
pub use syncobj_core::object::{
    Call, Effect, FailReason, MembershipRefusal, Replicated, ReplicatedMethods, ReplicatedState,
    TransferFailure,
};
pub use syncobj_core::raft::NewNodeError;
pub use syncobj_core::serializer::{SerializerState, SnapshotSerializer};
pub use syncobj_core::status::{self, RaftState, Status};
pub use syncobj_core::storage::{ClusterId, Corruption, HardStateRule, Identity, StorageError};
pub use syncobj_macros::{Replicated, replicated};
pub use syncobj_net::resolve::AddressProblem;

/// What a custom transport implements and reports, for
/// [`SyncObj::with_transport`]: the TCP transport and [`MemoryNetwork`] are two such.
pub mod transport {
    pub use syncobj_net::{
        BindFailure, PeerId, READ_ONLY_PREFIX, Transport, TransportCounters, TransportEvent, Wake,
        WireStats,
    };
}

/// The names most programs need: `use syncobj::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Call, Consumers, Effect, FailReason, MemoryNetwork, Replicated, SyncObj, SyncObjConf,
        command_time, replicated,
    };
}

/// What code generated by the macros refers to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use rmp_serde;
    pub use serde;
    pub use syncobj_core::object::{
        ApplyError, Call, Caller, MethodSpec, ReplicatedMethods, ReplicatedState,
    };
}

/// The deterministic simulator (feature `sim`, off by default): the same engine under
/// simulated faults, on a virtual clock, replayable from one seed. `syncobj-sim` runs it over
/// many seeds. Its types and those of the Raft core it drives ([`sim::raft`]) are for tests and
/// tools; they are not part of the stable API.
#[cfg(feature = "sim")]
pub mod sim {
    pub use syncobj_core::raft;
    pub use syncobj_core::sim::*;
}
