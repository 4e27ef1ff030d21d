//! Sans-IO Raft.
//!
//! [`RaftNode`] is the protocol of one node as a deterministic state machine: it never touches a
//! socket, a thread, the clock or OS randomness. Every input carries the current [`Instant`];
//! every output is drained as one [`Ready`] that separates what must be made durable, what may be
//! sent at once, what may be sent only after persisting, and what to apply.
//!
//! What it implements, with the section of the Raft paper ("In Search of an Understandable
//! Consensus Algorithm", extended version) or of Ongaro's thesis that describes it:
//! - leader election with randomized timeouts (§5.2) and the up-to-date check (§5.4.1);
//! - pre-vote (thesis §9.6) and check-quorum (thesis §6.2, §4.2.3), on by default;
//! - log replication with batching and pipelining (§5.3), a no-op at the start of each term (§8),
//!   commit only by counting replicas of a current-term entry (§5.4.2), truncation only on
//!   conflict and never at or below the commit index;
//! - term and vote handed out for persistence before any message that depends on them (§5.1,
//!   Figure 2 "Persistent state");
//! - non-voting members that receive the log and never count toward a majority (thesis §4.2.1);
//! - observers: read-only nodes outside the membership, replicated to while they are linked.

mod config;
mod election;
mod error;
mod log;
mod membership;
mod message;
mod node;
mod observers;
mod progress;
mod ready;
mod replication;
mod role;
mod timers;
mod types;

pub use config::{RaftConfig, RaftConfigError};
pub use error::{ProposeError, ProtocolViolation, RestoreError, StepError};
pub use membership::Membership;
pub use message::{
    AppendEntries, AppendOutcome, AppendResponse, Envelope, Message, RequestVote, VoteKind,
    VoteResponse,
};
pub use node::{LogPosition, NewNodeError, RaftCounters, RaftNode, Restored};
pub use ready::{PersistAck, Ready};
pub use role::RoleKind;
pub use types::{Entry, EntryKind, HardState, Instant, LogIndex, NodeId, Term};
