//! Sans-IO Raft: the consensus protocol of syncobj as a deterministic state machine.
//!
//! [`RaftNode`] is the protocol of one node. It never touches a socket, a thread, the clock or
//! OS randomness: every input carries the current [`Instant`], its only randomness (election
//! timeouts) comes from a generator seeded by [`RaftConfig::seed`], and every output is drained
//! as one [`Ready`] that separates what must be made durable, what may be sent at once, what may
//! be sent only after persisting, and what to apply. The same inputs give the same outputs, which
//! is what lets syncobj's simulator replay a failing run from its seed.
//!
//! This crate depends on no IO crate, and CI keeps it so: `.ci/run` fails if mio, socket2, a
//! crossbeam or parking_lot crate, getrandom, libc or the like enters its dependency tree. The
//! journal, the transport, the clock and the tick loop belong to the driver (syncobj-core's
//! `SyncObj`, or the simulator).
//!
//! # Driving a node
//!
//! A driver calls [`RaftNode::tick`] at [`RaftNode::next_deadline`], hands it every message
//! that arrives ([`RaftNode::step`]) and every command to replicate ([`RaftNode::propose`]),
//! and after each input drains [`RaftNode::ready`] and does what the [`Ready`] says, in the
//! order its documentation gives. A single-node cluster, with a journal and a network that
//! have nothing to do:
//!
//! ```
//! use bytes::Bytes;
//! use syncobj_raft::{
//!     Entry, EntryKind, Instant, Membership, NodeId, RaftConfig, RaftNode, Restored,
//! };
//!
//! /// Does what the node asks: here there is no peer to send to and no disk to write to.
//! fn drive(node: &mut RaftNode, applied: &mut Vec<Entry>) {
//!     while node.has_ready() {
//!         let ready = node.ready();
//!         // Send `ready.messages`; write `ready.hard_state` and `ready.entries` durably; then:
//!         node.on_persisted(ready.ack());
//!         // Send `ready.persisted_messages`; apply the committed entries in order.
//!         applied.extend(ready.committed_entries);
//!     }
//! }
//!
//! let me = NodeId(1);
//! let membership = Membership::new([me], []);
//! let config = RaftConfig::default();
//! let mut node = RaftNode::new(me, membership, config, Restored::default(), Instant::ZERO)?;
//! let mut applied = Vec::new();
//! let mut now = Instant::ZERO;
//! while !node.is_leader() {
//!     // A real driver waits on its sockets until the deadline; virtual time jumps to it.
//!     now = node.next_deadline().expect("a voter always runs an election or heartbeat timer");
//!     node.tick(now);
//!     drive(&mut node, &mut applied);
//! }
//! let at = node.propose(Bytes::from_static(b"add 5"), now)?;
//! drive(&mut node, &mut applied);
//! assert_eq!(applied[0].kind, EntryKind::Noop, "a new leader commits a no-op first (§8)");
//! let last = applied.last().expect("the proposal is applied");
//! assert_eq!((last.index, last.term, &last.data[..]), (at.index, at.term, &b"add 5"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it implements
//!
//! The protocol, with the section of the Raft paper ("In Search of an Understandable
//! Consensus Algorithm", extended version) or of Ongaro's thesis that describes it:
//! - leader election with randomized timeouts (§5.2) and the up-to-date check (§5.4.1);
//! - pre-vote (thesis §9.6) and check-quorum (thesis §6.2, §4.2.3), on by default;
//! - log replication with batching and pipelining (§5.3), a no-op at the start of each term (§8),
//!   commit only by counting replicas of a current-term entry (§5.4.2), truncation only on
//!   conflict and never at or below the commit index;
//! - term and vote handed out for persistence before any message that depends on them (§5.1,
//!   Figure 2 "Persistent state");
//! - non-voting members that receive the log and never count toward a majority (thesis §4.2.1);
//! - membership changes one member at a time (thesis §4.1–§4.2), and leadership transfer
//!   (thesis §3.10): see below;
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
//! header carries the code version and the membership. The core sends the membership at the
//! snapshot's last entry along with the chunks too ([`InstallSnapshot::membership`]), so a
//! follower adopts it when it installs the snapshot whatever the driver's format.
//!
//! # Membership
//!
//! The [`Membership`] (voters, non-voters, and an opaque address per member that only the
//! driver reads) is replicated in configuration entries ([`EntryKind::Membership`]). A
//! configuration is in force on a node as soon as the entry is in its log, committed or not
//! (thesis §4.1); if the entry is truncated, the previous configuration in the log is in force
//! again. Which membership a node uses, by precedence:
//!
//! 1. the latest configuration entry in its log;
//! 2. else the membership at the snapshot its log starts after: what [`RaftNode::compact`]
//!    returned (or [`RaftNode::membership_at`] gave) when the driver took the snapshot, handed
//!    back in [`Restored::membership`], or what the leader sent with an installed snapshot;
//! 3. else the membership given to [`RaftNode::new`].
//!
//! Changes go through the leader, one member at a time ([`RaftNode::change_membership`],
//! [`MembershipChange`]):
//! - a leader changes nothing before it has committed an entry of its own term, and nothing
//!   while a configuration entry is uncommitted or a new voter is catching up
//!   ([`ChangeError`]); the first rule is Ongaro's 2015 correction of single-server changes;
//! - `AddVoter` of a node that is not a member adds it as a non-voter; the leader appends its
//!   promotion itself once the node's log is within [`RaftConfig::promotion_lag_entries`] of its
//!   own ([`ChangeStarted::CatchingUp`], [`RaftEvent::PromotionAppended`]), so an empty or
//!   unreachable node never costs the quorum (thesis §4.2.1);
//! - a leader may remove itself: it goes on replicating without counting itself, and steps
//!   down once the entry is committed (thesis §4.2.2);
//! - a node that is not a voter of the configuration in force never campaigns, a voter ignores
//!   vote requests from non-voters, and with pre-vote and check-quorum a removed node cannot
//!   depose a working leader (thesis §4.2.3).
//!
//! The driver completes a user's change when the entry at the returned position is applied
//! with its term (or, for a promotion, the one [`RaftEvent::PromotionAppended`] names), and
//! fails it on [`RaftEvent::PromotionAbandoned`] or a change of leader. It learns the
//! addresses of new members from [`RaftNode::membership`].
//!
//! # Leadership transfer
//!
//! [`RaftNode::transfer_leadership`] hands the leadership to a voter (thesis §3.10): the leader
//! refuses proposals and membership changes meanwhile, brings the target's log up to its own,
//! and sends it [`TimeoutNow`]; the target starts an election at once, without pre-vote, and its
//! vote requests carry [`RequestVote::leadership_transfer`] so that voters grant them although
//! they heard from the leader recently. The transfer is abandoned after
//! [`RaftConfig::election_timeout_min`]; [`RaftEvent::TransferEnded`] says how it ended.

#![deny(missing_docs)]

mod config;
mod configs;
mod election;
mod error;
mod handover;
mod log;
mod membership;
mod message;
mod node;
mod observers;
mod progress;
mod ready;
mod reception;
mod reconfig;
mod replication;
mod restore;
mod role;
mod snapshot;
mod timers;
mod transfer;
mod types;

pub use config::{RaftConfig, RaftConfigError};
pub use error::{
    ChangeError, CompactError, ProposeError, ProtocolViolation, RestoreError, SnapshotError,
    StepError, TransferError,
};
pub use handover::TransferOutcome;
pub use membership::{
    ADDRESS_BYTES_MAX, MEMBERS_MAX, Membership, MembershipChange, MembershipError,
};
pub use message::{
    AppendEntries, AppendOutcome, AppendResponse, Envelope, InstallSnapshot,
    InstallSnapshotResponse, Message, RequestVote, SnapshotOutcome, TimeoutNow, VoteKind,
    VoteResponse,
};
pub use node::{NewNodeError, RaftCounters, RaftNode, Restored};
pub use ready::{PersistAck, RaftEvent, Ready};
pub use reconfig::{ChangeStarted, PendingChange};
pub use role::RoleKind;
pub use snapshot::{Compacted, IncomingChunk, LogReset, SnapshotCounters, SnapshotRead};
pub use types::{Entry, EntryKind, HardState, Instant, LogIndex, LogPosition, NodeId, Term};
