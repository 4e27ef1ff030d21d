//! What nodes send each other through the transport: Raft messages and forwarded calls.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::object::{FailReason, MembershipRefusal};
use crate::raft::{Envelope, LogIndex, Message, NodeId, Term};

/// One frame's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NodeMessage {
    /// A Raft message.
    Raft(Envelope),
    /// A follower hands a call to the leader.
    Forward {
        /// The term in which the follower saw the receiver lead; a leader refuses forwards of
        /// other terms, so a stale or duplicated frame cannot place a call twice.
        term: Term,
        /// The follower's incarnation: request numbers restart with it.
        session: u64,
        /// The follower's number for the call.
        request: u64,
        /// The encoded command.
        command: Bytes,
    },
    /// The leader's answer to a [`NodeMessage::Forward`].
    Placed {
        /// The follower's incarnation, as the forward gave it: an answer meant for an earlier
        /// incarnation of the same node (which numbered its calls from the start too) is
        /// ignored.
        session: u64,
        /// The follower's number for the call.
        request: u64,
        /// Where the leader appended the command, or why it did not.
        outcome: Result<(LogIndex, Term), Refusal>,
    },
    /// A follower hands a membership change or a leadership transfer to the leader, under
    /// the same rules as [`NodeMessage::Forward`] (term, session, request, duplicates).
    Change {
        /// The term in which the follower saw the receiver lead.
        term: Term,
        /// The follower's incarnation.
        session: u64,
        /// The follower's number for the request (shared with its forwarded calls).
        request: u64,
        /// What is asked.
        change: ChangeRequest,
    },
    /// The leader's answer to a [`NodeMessage::Change`]: for a new member, sent once its
    /// promotion is appended (it catches up first).
    Changed {
        /// The follower's incarnation, as the request gave it.
        session: u64,
        /// The follower's number for the request.
        request: u64,
        /// What the leader did, or why it did not.
        outcome: Result<ChangeAnswer, Refusal>,
    },
}

/// A membership change or leadership transfer a user asked for, naming nodes by address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ChangeRequest {
    /// Make the node at this address a voter (catching it up first).
    Add(String),
    /// Remove the member at this address.
    Remove(String),
    /// Hand the leadership to the voter at this address, or to the most up-to-date one.
    Transfer(Option<String>),
}

/// What the leader did with a [`ChangeRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ChangeAnswer {
    /// The configuration entry that makes the change is at (index, term): the request is
    /// done when it is applied with that term.
    Placed(LogIndex, Term),
    /// The leader is handing its leadership to this voter: the request is done when it leads.
    Transferring(NodeId),
}

/// Why a leader did not take a forwarded call or change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// The receiver is not the leader.
    NotLeader,
    /// The leader holds too many uncommitted entries.
    QueueFull,
    /// The leader refused the change.
    Denied(MembershipRefusal),
    /// The leader added the new member as a non-voter, then gave up promoting it.
    Abandoned,
}

impl Refusal {
    /// Why the call or change failed, for its caller.
    pub(crate) fn reason(self) -> FailReason {
        match self {
            Refusal::NotLeader => FailReason::NotLeader,
            Refusal::QueueFull => FailReason::QueueFull,
            Refusal::Denied(refusal) => FailReason::MembershipRefused(refusal),
            Refusal::Abandoned => FailReason::PromotionAbandoned,
        }
    }
}

impl NodeMessage {
    /// Whether the message is small and may overtake bulk data on its way
    /// ([`Transport::send_control`](syncobj_net::Transport::send_control)): votes, answers,
    /// and appends that carry no entry (heartbeats). Entries, snapshot chunks (one at a time
    /// in flight) and forwarded calls keep their order.
    ///
    /// An empty append may arrive before appends sent earlier because the leader checks the
    /// log at what the follower is known to match in it, never past what may be in flight.
    pub(crate) fn is_control(&self) -> bool {
        match self {
            NodeMessage::Raft(envelope) => match &envelope.message {
                Message::AppendEntries(append) => append.entries.is_empty(),
                Message::InstallSnapshot(_) => false,
                Message::RequestVote(_)
                | Message::VoteResponse(_)
                | Message::AppendResponse(_)
                | Message::InstallSnapshotResponse(_)
                | Message::TimeoutNow(_) => true,
            },
            NodeMessage::Forward { .. } | NodeMessage::Change { .. } => false,
            NodeMessage::Placed { .. } | NodeMessage::Changed { .. } => true,
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(rmp_serde::to_vec(self).expect("node messages always encode"))
    }

    pub(crate) fn decode(frame: &[u8]) -> Result<NodeMessage, rmp_serde::decode::Error> {
        rmp_serde::from_slice(frame)
    }
}
