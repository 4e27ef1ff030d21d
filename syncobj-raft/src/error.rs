//! The errors of the Raft core.

use thiserror::Error;

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
