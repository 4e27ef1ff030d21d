//! What the simulator reports as it runs: readable events for traces, the demo and tests.

use std::fmt;

use crate::raft::{
    ChangeError, ChangeStarted, Envelope, Instant, LogIndex, LogPosition, MembershipChange,
    Message, NodeId, RoleKind, StepError, Term, TransferError,
};

/// Where a simulation sends its [`TraceEvent`]s, with the virtual time of each.
pub type TraceSink = Box<dyn FnMut(Instant, &TraceEvent)>;

/// Something that happened in a simulated cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceEvent {
    /// A node changed role or term.
    RoleChanged {
        /// The node.
        node: NodeId,
        /// Its term now.
        term: Term,
        /// Its role now.
        role: RoleKind,
    },
    /// A node's commit index rose.
    Committed {
        /// The node.
        node: NodeId,
        /// Its new commit index.
        index: LogIndex,
    },
    /// A client command was appended on a leader.
    Proposed {
        /// The leader.
        node: NodeId,
        /// Where the command went.
        index: LogIndex,
        /// In which term.
        term: Term,
    },
    /// A node snapshotted its state machine and compacted its log (Raft paper §7).
    Compacted {
        /// The node.
        node: NodeId,
        /// The last entry the snapshot covers.
        index: LogIndex,
    },
    /// A node installed a snapshot received from the leader.
    SnapshotInstalled {
        /// The node.
        node: NodeId,
        /// The last entry the snapshot covers.
        snapshot: LogPosition,
    },
    /// A node crashed, losing everything not durable.
    Crashed {
        /// The node.
        node: NodeId,
    },
    /// A node restarted from its durable state.
    Restarted {
        /// The node.
        node: NodeId,
        /// The term it recovered.
        term: Term,
        /// The number of log entries it recovered.
        entries: usize,
        /// The commit index it recovered.
        commit: LogIndex,
    },
    /// A spare node started, outside the cluster until a membership change adds it.
    Joined {
        /// The node.
        node: NodeId,
    },
    /// A node was asked to change the membership.
    ChangeAsked {
        /// The node asked (a leader, if it was accepted).
        node: NodeId,
        /// The change.
        change: MembershipChange,
        /// What the node answered.
        result: Result<ChangeStarted, ChangeError>,
    },
    /// A node was asked to hand its leadership over.
    TransferAsked {
        /// The node asked.
        node: NodeId,
        /// The target asked for, if any.
        to: Option<NodeId>,
        /// The target chosen, or why the node refused.
        result: Result<NodeId, TransferError>,
    },
    /// The network was split into groups that cannot talk to each other.
    Partitioned {
        /// The groups.
        groups: Vec<Vec<NodeId>>,
    },
    /// Every partition ended and the network became reliable.
    Healed,
    /// The network's loss, duplication and delay changed.
    NetworkChanged {
        /// A short description.
        description: String,
    },
    /// A node refused a message.
    Refused {
        /// The node.
        node: NodeId,
        /// Why.
        error: StepError,
    },
    /// A node's transport reported its link to a peer up or down.
    Link {
        /// The node.
        node: NodeId,
        /// The peer.
        peer: NodeId,
        /// Whether the link is up now.
        up: bool,
    },
    /// A message was delivered (only in message-level traces).
    Delivered {
        /// The message.
        envelope: Envelope,
    },
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::RoleChanged { node, term, role } => {
                write!(f, "{node} is {role:?} in {term}")
            }
            TraceEvent::Committed { node, index } => write!(f, "{node} commits up to {index}"),
            TraceEvent::Proposed { node, index, term } => {
                write!(f, "{node} appends a command at {index} in {term}")
            }
            TraceEvent::Compacted { node, index } => {
                write!(f, "{node} snapshots and compacts its log up to {index}")
            }
            TraceEvent::SnapshotInstalled { node, snapshot } => {
                write!(f, "{node} installs snapshot {snapshot}")
            }
            TraceEvent::Crashed { node } => write!(f, "{node} crashes"),
            TraceEvent::Restarted {
                node,
                term,
                entries,
                commit,
            } => {
                write!(
                    f,
                    "{node} restarts in {term} with {entries} entries, commit {commit}"
                )
            }
            TraceEvent::Joined { node } => write!(f, "{node} starts outside the cluster"),
            TraceEvent::ChangeAsked {
                node,
                change,
                result,
            } => match result {
                Ok(started) => write!(f, "{node} starts {change:?}: {started:?}"),
                Err(error) => write!(f, "{node} refuses {change:?}: {error}"),
            },
            TraceEvent::TransferAsked { node, to, result } => match result {
                Ok(target) => write!(f, "{node} hands its leadership over to {target}"),
                Err(error) => write!(f, "{node} refuses to hand over to {to:?}: {error}"),
            },
            TraceEvent::Partitioned { groups } => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect();
                write!(f, "network partitioned into [{}]", groups.join("] ["))
            }
            TraceEvent::Healed => write!(f, "network healed"),
            TraceEvent::NetworkChanged { description } => write!(f, "network now {description}"),
            TraceEvent::Refused { node, error } => write!(f, "{node} refuses a message: {error}"),
            TraceEvent::Link { node, peer, up } => {
                let state = if *up { "up" } else { "down" };
                write!(f, "{node}'s link to {peer} is {state}")
            }
            TraceEvent::Delivered { envelope } => {
                write!(
                    f,
                    "{} -> {}: {}",
                    envelope.from,
                    envelope.to,
                    describe(&envelope.message)
                )
            }
        }
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::RequestVote(m) => format!(
            "{:?} request {} (last {} {})",
            m.kind, m.term, m.last_log_index, m.last_log_term
        ),
        Message::VoteResponse(m) => format!(
            "{:?} {} in {}",
            m.kind,
            if m.granted { "granted" } else { "refused" },
            m.term
        ),
        Message::AppendEntries(m) => format!(
            "append {} after {} {} +{} commit {}",
            m.term,
            m.prev_log_index,
            m.prev_log_term,
            m.entries.len(),
            m.leader_commit
        ),
        Message::AppendResponse(m) => format!("append response {} {:?}", m.term, m.outcome),
        Message::InstallSnapshot(m) => format!(
            "snapshot {} chunk {} at {} +{}{}",
            m.snapshot(),
            m.term,
            m.offset,
            m.data.len(),
            if m.done { " done" } else { "" }
        ),
        Message::InstallSnapshotResponse(m) => format!(
            "snapshot {} response {} {:?}",
            m.snapshot(),
            m.term,
            m.outcome
        ),
        Message::TimeoutNow(m) => format!("timeout now {}", m.term),
    }
}
