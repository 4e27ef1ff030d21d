//! syncobj replicates a plain Rust struct across a cluster of servers with Raft.
//!
//! This is the foundation release: the sans-IO Raft core ([`raft`]) and the deterministic
//! simulator that proves it ([`sim`], feature `sim`, on by default). The replicated-object
//! macros, the `SyncObj` driver, the TCP transport and durable storage come next; see the
//! README for the road.
//!
//! ```
//! use std::time::Duration;
//! use syncobj::sim::{Cluster, ClusterConfig};
//!
//! // Three simulated nodes elect a leader and commit a command, in virtual time.
//! let mut cluster = Cluster::new(ClusterConfig::new(3, 1));
//! cluster.run_until_true(Duration::from_secs(10), |c| c.leader().is_some()).unwrap();
//! let leader = cluster.leader().unwrap();
//! let position = cluster.propose(leader, "hello".into()).unwrap();
//! let committed = cluster
//!     .run_until_true(Duration::from_secs(1), |c| {
//!         c.node_ids().iter().all(|&id| c.applied(id).len() as u64 >= position.index.0)
//!     })
//!     .unwrap();
//! assert!(committed);
//! ```

#![deny(missing_docs)]

pub use syncobj_core::raft;

#[cfg(feature = "sim")]
pub use syncobj_core::sim;
