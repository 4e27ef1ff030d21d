//! The errors of the Raft core.

use thiserror::Error;

use super::membership::MembershipError;
use super::types::{LogIndex, LogPosition, NodeId, Term};

/// A message the node refused to process. The node's state is unchanged; the driver logs it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StepError {
    /// The sender is not a member of the cluster.
    #[error("message from {0}, which is not a member of the cluster")]
    UnknownSender(NodeId),
    /// The message was addressed to another node.
    #[error("message for {to} delivered to {this}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        this: NodeId,
    },
    /// The message breaks the protocol; it is counted in [`RaftCounters::protocol_errors`](super::RaftCounters).
    #[error("protocol violation from {from}: {violation}")]
    Protocol {
        /// The sender.
        from: NodeId,
        /// What was wrong.
        violation: ProtocolViolation,
    },
}

/// A way a peer broke the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProtocolViolation {
    /// An append would have replaced a committed entry.
    #[error("append conflicts with committed entry {index} (commit index {committed})")]
    TruncateCommitted {
        /// The conflicting index.
        index: LogIndex,
        /// This node's commit index.
        committed: LogIndex,
    },
    /// Another node claims to lead the term this node leads.
    #[error("a second leader in {term}")]
    SecondLeader {
        /// The term with two leaders.
        term: Term,
    },
    /// An append's entries are not contiguous after its previous index.
    #[error("append entries are not contiguous after {prev}")]
    NonContiguous {
        /// The append's previous index.
        prev: LogIndex,
    },
    /// An acknowledgement claims entries the leader never had.
    #[error("acknowledgement of {claimed} beyond the leader's last index {last}")]
    AckBeyondLog {
        /// The acknowledged index.
        claimed: LogIndex,
        /// The leader's last index.
        last: LogIndex,
    },
    /// A snapshot claims to cover an entry of a term later than the leader's own.
    #[error("snapshot {snapshot} from a leader of {term}")]
    SnapshotFromTheFuture {
        /// The snapshot's last entry.
        snapshot: LogPosition,
        /// The leader's term.
        term: Term,
    },
    /// A follower claims snapshot bytes the leader never sent.
    #[error("snapshot {snapshot}: offset {claimed} confirmed, only {sent} bytes sent")]
    SnapshotOffsetBeyondSent {
        /// The snapshot being sent.
        snapshot: LogPosition,
        /// The offset the follower confirmed.
        claimed: u64,
        /// The end of the furthest chunk sent.
        sent: u64,
    },
    /// A configuration entry whose data is not an encoded membership.
    #[error("configuration entry {index} does not hold a membership: {error}")]
    BadMembership {
        /// The entry's index.
        index: LogIndex,
        /// What is wrong with it.
        error: MembershipError,
    },
}

/// Why a proposal was not appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader appends; `leader` is the one this node knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader as far as this node knows.
        leader: Option<NodeId>,
    },
    /// The leader holds too many uncommitted entries already.
    #[error("{uncommitted} uncommitted entries, the limit")]
    TooManyUncommitted {
        /// How many entries are uncommitted.
        uncommitted: u64,
    },
    /// The leader is handing its leadership over to `to` and takes no proposal until the
    /// transfer ends (Raft thesis §3.10).
    #[error("leadership transfer to {to} under way")]
    TransferInProgress {
        /// The target of the transfer.
        to: NodeId,
    },
}

/// Why [`RaftNode::change_membership`](super::RaftNode::change_membership) refused a change.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChangeError {
    /// Only the leader changes the membership; `leader` is the one this node knows of, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader as far as this node knows.
        leader: Option<NodeId>,
    },
    /// The leader has not committed an entry of its own term yet. Until it has, a configuration
    /// of an earlier leader may still be in some logs uncommitted, and a second one-member
    /// change could form a majority disjoint from it (Ongaro, raft-dev, 2015).
    #[error("the leader has not committed an entry of its term yet")]
    LeaderNotReady,
    /// A configuration entry is not committed yet, or a non-voter is catching up before its
    /// promotion: one change at a time (thesis §4.1).
    #[error("membership change under way: {}", change_under_way(*.index, *.promoting))]
    ChangeInProgress {
        /// The latest configuration entry.
        index: LogIndex,
        /// The non-voter the leader will promote once it caught up, if any.
        promoting: Option<NodeId>,
    },
    /// The leader is handing its leadership over.
    #[error("leadership transfer to {to} under way")]
    TransferInProgress {
        /// The target of the transfer.
        to: NodeId,
    },
    /// The node is already a member in the role asked for.
    #[error("{0} is already a member in that role")]
    AlreadyMember(NodeId),
    /// The node is not a member.
    #[error("{0} is not a member")]
    NotMember(NodeId),
    /// Removing the node would leave no voter.
    #[error("removing {0} would leave no voter")]
    WouldLeaveNoVoters(NodeId),
    /// A non-voter cannot be added as a non-voter by demoting a voter; remove it first.
    #[error("{0} is a voter; demotion is not supported, remove it instead")]
    WouldDemote(NodeId),
    /// The address is longer than [`ADDRESS_BYTES_MAX`](super::ADDRESS_BYTES_MAX).
    #[error("the address of {0} is too long")]
    AddressTooLong(NodeId),
    /// The membership would exceed [`MEMBERS_MAX`](super::MEMBERS_MAX).
    #[error("the membership is full")]
    TooManyMembers,
}

/// Why [`RaftNode::transfer_leadership`](super::RaftNode::transfer_leadership) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TransferError {
    /// Only the leader hands its leadership over.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader as far as this node knows.
        leader: Option<NodeId>,
    },
    /// A transfer is already under way.
    #[error("leadership transfer to {to} already under way")]
    InProgress {
        /// Its target.
        to: NodeId,
    },
    /// The target is not a voter of the configuration in force.
    #[error("{0} is not a voter")]
    TargetNotVoter(NodeId),
    /// The target is this node, the leader already.
    #[error("{0} leads already")]
    TargetIsLeader(NodeId),
    /// No voter but this one to hand over to.
    #[error("no other voter to hand the leadership to")]
    NoOtherVoter,
}

/// Durable state that cannot be the state of a node.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// Entries are not numbered one after the other from 1.
    #[error("restored entry {found} where {expected} was expected")]
    Gap {
        /// The expected index.
        expected: LogIndex,
        /// The index found.
        found: LogIndex,
    },
    /// An entry's term is lower than its predecessor's, or higher than the saved term.
    #[error("restored entry {index} has term {term}, out of order")]
    TermOrder {
        /// The entry's index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The saved commit index is beyond the last entry.
    #[error("saved commit index {commit} is beyond the last entry {last}")]
    CommitBeyondLog {
        /// The saved commit index.
        commit: LogIndex,
        /// The last restored entry.
        last: LogIndex,
    },
    /// The node's own id is not among the members.
    #[error("{0} is not a member of the cluster")]
    NotAMember(NodeId),
    /// The snapshot covers an entry of a term later than the saved term.
    #[error("snapshot {snapshot} is ahead of the saved term {term}")]
    SnapshotAheadOfTerm {
        /// The snapshot's last entry.
        snapshot: LogPosition,
        /// The saved term.
        term: Term,
    },
    /// A restored configuration entry does not hold a membership.
    #[error("restored configuration entry {index} does not hold a membership: {error}")]
    BadMembership {
        /// The entry's index.
        index: LogIndex,
        /// What is wrong with it.
        error: MembershipError,
    },
}

/// Why [`RaftNode::compact`](super::RaftNode::compact) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CompactError {
    /// Only applied entries can be in a snapshot of the state machine.
    #[error("cannot compact to {up_to}: only {applied} is applied")]
    BeyondApplied {
        /// The index asked for.
        up_to: LogIndex,
        /// The node's applied index.
        applied: LogIndex,
    },
    /// The log is already compacted that far.
    #[error("cannot compact to {up_to}: the log starts after {base} already")]
    AlreadyCompacted {
        /// The index asked for.
        up_to: LogIndex,
        /// The last entry the latest snapshot covers.
        base: LogIndex,
    },
}

/// A snapshot input the node cannot take: the driver's bug, not the network's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// A chunk longer than the `len` the node asked for.
    #[error("snapshot chunk of {bytes} bytes where at most {max} were asked for")]
    ChunkTooLarge {
        /// The chunk's length.
        bytes: usize,
        /// The length asked for.
        max: usize,
    },
    /// An empty chunk that does not end the stream: the transfer could not progress.
    #[error("empty snapshot chunk at offset {offset} that is not the last")]
    EmptyChunk {
        /// Where the chunk was to start.
        offset: u64,
    },
    /// The node was not waiting for this snapshot to be installed: it handed out no completed
    /// snapshot with that position, or the install was already reported.
    #[error("snapshot {0} was not awaiting installation")]
    NotAwaitingInstall(LogPosition),
}

/// What a [`ChangeError::ChangeInProgress`] waits for, in words.
fn change_under_way(index: LogIndex, promoting: Option<NodeId>) -> String {
    match promoting {
        Some(id) => format!("{id} is catching up to be promoted (configuration entry {index})"),
        None => format!("configuration entry {index} is not committed yet"),
    }
}
