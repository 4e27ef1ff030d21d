//! The engine of `syncobj`.
//!
//! - [`raft`]: the sans-IO Raft state machine: the `syncobj-raft` crate, re-exported here.
//! - [`storage`]: the journal (log and hard state) and snapshot files, with crash recovery.
//! - `sim` (feature `sim`): the deterministic cluster simulator that drives it and checks the
//!   protocol's invariants after every step.
//!
//! Users depend on the `syncobj` crate, which re-exports what they need from here.

#![deny(missing_docs)]

pub use syncobj_raft as raft;

pub mod conf;
pub mod driver;
pub mod object;
pub mod serializer;
pub mod status;
pub mod storage;

#[cfg(feature = "sim")]
pub mod sim;
