//! The deterministic cluster simulator.
//!
//! [`Cluster`] runs the real [`RaftNode`](crate::raft::RaftNode) code of several nodes on a
//! simulated network under a virtual clock: messages are delayed, reordered, lost, duplicated
//! and cut by partitions, and each node hears of its links going down and up as a transport
//! would (at once when a peer's process dies, after a timeout across a partition); nodes crash and restart from what they had made durable; members are
//! added and removed and the leadership handed over while all of this goes on. Every random
//! choice derives from one seed, so a seed replays its run exactly. After every step the
//! simulator checks election safety, log matching, leader completeness, state machine safety,
//! persist-before-send and monotone terms, commit and applied indexes; the first violation stops
//! the run.
//!
//! [`run_seed`] drives one randomized run: faults, membership changes and client load, then
//! healing, a liveness check and the check that every member ends with the same
//! configuration, then the check that every acknowledged write is on every node. The `syncobj-sim` tool
//! runs many seeds.
//!
//! ```
//! use std::time::Duration;
//! use syncobj_core::sim::{Cluster, ClusterConfig};
//!
//! let mut cluster = Cluster::new(ClusterConfig::new(3, 7));
//! let elected = cluster.run_until_true(Duration::from_secs(10), |c| c.leader().is_some()).unwrap();
//! assert!(elected);
//! ```

mod checker;
mod clocks;
mod cluster;
mod driven;
mod links;
mod net;
mod node;
mod run;
mod trace;

pub use crate::storage::{SimDisk, SimDiskStats};
pub use checker::Violation;
pub use cluster::{CallOutcome, Cluster, ClusterConfig, ClusterStats};
pub use driven::{
    DriverFaults, DriverRunReport, SimClock, SimNode, Workload, run_driver_seed,
    run_driver_workload,
};
pub use net::{NetConfig, NetStats};
pub use run::{Faults, RunReport, SeedFailure, SimConfig, run_seed};
pub use trace::{TraceEvent, TraceSink};
