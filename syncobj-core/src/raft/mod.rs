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
//! - observers: read-only nodes outside the membership, replicated to while they are linked;
//! - snapshots and log compaction (§7, thesis §5): restart from a snapshot, compaction, and
//!   chunked, resumable snapshot transfer to followers and observers that need compacted entries.
//!
//! # Snapshots: what the driver does
//!
//! The snapshot's bytes belong to the driver: it serializes the user's state, keeps it in its
//! snapshot store, streams it and loads it back. The Raft core runs the protocol and asks for
//! what it needs:
//!
//! - **Compaction.** Once the state at applied index `i` is durably snapshotted, the driver calls
//!   [`RaftNode::compact`]`(i)`; the log then starts after (`i`, term of `i`), its *base*
//!   ([`RaftNode::log_base`]). The driver drops the journal prefix itself.
//! - **Restart.** [`Restored::snapshot`] names the snapshot the driver loaded; the log starts
//!   after it.
//! - **Sending** (leader). A follower or observer whose next entry lies at or below the base is
//!   sent the snapshot instead, one chunk in flight at a time. The node asks for each chunk in
//!   [`Ready::snapshot_reads`]; the driver answers with [`RaftNode::snapshot_chunk`] (or
//!   [`RaftNode::snapshot_unavailable`]), which goes out as an [`InstallSnapshot`]. Unanswered
//!   chunks are sent again at heartbeats; the follower says which offset it expects, so a
//!   transfer resumes after a lost chunk or a dropped connection, and starts over when the
//!   follower lost its partial copy.
//! - **Receiving** (follower). Chunks come in order in [`Ready::snapshot_chunks`]; after the
//!   last one, the driver makes the snapshot durable, loads it and calls
//!   [`RaftNode::snapshot_installed`] (or [`RaftNode::snapshot_failed`]). The node resets its
//!   log ([`Ready::log_reset`] tells the journal), and once that and the new commit index are
//!   durable it tells the leader.
//!
//! The chunks are opaque bytes: the syncobj driver streams its snapshot file, whose checksummed
//! header carries the membership and code version, so the core carries no membership of its own
//! (it is static configuration in the core today).

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
mod reception;
mod replication;
mod restore;
mod role;
mod snapshot;
mod timers;
mod transfer;
mod types;

pub use config::{RaftConfig, RaftConfigError};
pub use error::{
    CompactError, ProposeError, ProtocolViolation, RestoreError, SnapshotError, StepError,
};
pub use membership::Membership;
pub use message::{
    AppendEntries, AppendOutcome, AppendResponse, Envelope, InstallSnapshot,
    InstallSnapshotResponse, Message, RequestVote, SnapshotOutcome, VoteKind, VoteResponse,
};
pub use node::{NewNodeError, RaftCounters, RaftNode, Restored};
pub use ready::{PersistAck, Ready};
pub use role::RoleKind;
pub use snapshot::{IncomingChunk, LogReset, SnapshotCounters, SnapshotRead};
pub use types::{Entry, EntryKind, HardState, Instant, LogIndex, LogPosition, NodeId, Term};
