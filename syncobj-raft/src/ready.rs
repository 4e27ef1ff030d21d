//! The output of the Raft core: what to persist, what to send and when, what to apply.

use super::handover::TransferOutcome;
use super::message::Envelope;
use super::snapshot::{IncomingChunk, LogReset, SnapshotRead};
use super::types::{Entry, HardState, LogIndex, LogPosition, NodeId, Term};

/// Everything the node wants done, drained at once with [`RaftNode::ready`](super::RaftNode::ready).
///
/// The driver must, in this order:
/// 1. send [`messages`](Self::messages) (they depend on nothing unsaved; this may overlap with 2);
/// 2. durably apply [`log_reset`](Self::log_reset) to the journal, then write
///    [`hard_state`](Self::hard_state) and [`entries`](Self::entries);
/// 3. only then send [`persisted_messages`](Self::persisted_messages) and call
///    [`RaftNode::on_persisted`](super::RaftNode::on_persisted) with [`ack`](Self::ack);
/// 4. apply [`committed_entries`](Self::committed_entries) in order;
/// 5. answer each of [`snapshot_reads`](Self::snapshot_reads) with
///    [`RaftNode::snapshot_chunk`](super::RaftNode::snapshot_chunk) (now or later);
/// 6. write [`snapshot_chunks`](Self::snapshot_chunks) in order, and after the last chunk of a
///    snapshot install it and call
///    [`RaftNode::snapshot_installed`](super::RaftNode::snapshot_installed) (now or later);
/// 7. act on [`events`](Self::events) (complete or fail the membership change or leadership
///    transfer the user asked for).
///
/// Writes of successive Readys must become durable in the order the Readys were drained. The
/// driver may go on stepping the node while a write is in flight: until `on_persisted`, every
/// message that depends on the unsaved term, vote or entries lands in a later Ready's
/// `persisted_messages`.
#[derive(Debug, Default)]
#[must_use = "a Ready holds work the driver must do"]
pub struct Ready {
    /// The log was reset to a snapshot the driver installed: the journal drops the entries it
    /// names before anything else of this Ready is written (see [`LogReset`]).
    pub log_reset: Option<LogReset>,
    /// Term, vote and commit index to save, if they changed.
    pub hard_state: Option<HardState>,
    /// Entries to append. Storage drops every entry it holds at or after `entries[0].index`
    /// first: that is how a follower's conflicting suffix is replaced.
    pub entries: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages: Vec<Envelope>,
    /// Messages that may leave only after `hard_state` and `entries` are durable: vote grants,
    /// append acknowledgements, and anything sent in a term not yet saved.
    pub persisted_messages: Vec<Envelope>,
    /// Committed, durable entries to apply to the state machine, in log order. Never an entry
    /// a snapshot covers; empty while a received snapshot awaits installation.
    pub committed_entries: Vec<Entry>,
    /// Leader: snapshot bytes to read for followers, at most one read per follower. Answer each
    /// with [`RaftNode::snapshot_chunk`](super::RaftNode::snapshot_chunk) (see
    /// [`SnapshotRead`]).
    pub snapshot_reads: Vec<SnapshotRead>,
    /// Follower: chunks of a snapshot from the leader, in stream order, to write to the snapshot
    /// store (see [`IncomingChunk`]).
    pub snapshot_chunks: Vec<IncomingChunk>,
    /// What happened to membership changes and leadership transfers this node started, in
    /// order.
    pub events: Vec<RaftEvent>,
    /// The token to hand to [`RaftNode::on_persisted`](super::RaftNode::on_persisted) once
    /// `hard_state` and `entries` are durable. The same as [`ack`](Self::ack); a field too, so a
    /// driver that moves the other fields out of the Ready can still take it.
    pub ack: PersistAck,
}

impl Ready {
    /// The token to hand to [`RaftNode::on_persisted`](super::RaftNode::on_persisted) once
    /// `hard_state` and `entries` are durable.
    pub fn ack(&self) -> PersistAck {
        self.ack
    }

    /// Whether the driver has to write anything (log reset, hard state, entries) before sending
    /// `persisted_messages`.
    pub fn must_persist(&self) -> bool {
        self.log_reset.is_some() || self.hard_state.is_some() || !self.entries.is_empty()
    }
}

/// Something the driver may want to tell the user about a change it asked the leader for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftEvent {
    /// The leader appended the configuration that makes `id`, a non-voter that caught up, a
    /// voter (thesis §4.2.1): the `AddVoter` change that asked for it is done when the entry at
    /// `at` is applied with that term.
    PromotionAppended {
        /// The promoted node.
        id: NodeId,
        /// Where the configuration entry was appended.
        at: LogPosition,
    },
    /// The leader gave up promoting `id`: it stopped leading, or `id` was removed meanwhile.
    /// `id` stays a non-voter; asking again for `AddVoter` resumes.
    PromotionAbandoned {
        /// The node that was to be promoted.
        id: NodeId,
    },
    /// A leadership transfer this node started (as leader) ended.
    TransferEnded {
        /// Its target.
        to: NodeId,
        /// How it ended.
        outcome: TransferOutcome,
    },
}

/// Proof that the writes of one [`Ready`] are durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistAck {
    /// The hard state handed out, if the Ready carried one.
    pub(crate) hard_state: Option<HardState>,
    /// The last entry handed out, if the Ready carried entries.
    pub(crate) last_entry: Option<(LogIndex, Term)>,
}
