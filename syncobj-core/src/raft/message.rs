//! The messages Raft nodes exchange: one typed struct per kind, gathered in [`Message`].

use serde::{Deserialize, Serialize};

use super::types::{Entry, LogIndex, NodeId, Term};

/// A message together with its sender and receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that sent the message.
    pub from: NodeId,
    /// The node the message is for.
    pub to: NodeId,
    /// The message itself.
    pub message: Message,
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A candidate asks for a vote, or a pre-candidate asks whether it could win one.
    RequestVote(RequestVote),
    /// The answer to [`Message::RequestVote`].
    VoteResponse(VoteResponse),
    /// The leader replicates entries, or sends an empty heartbeat.
    AppendEntries(AppendEntries),
    /// The answer to [`Message::AppendEntries`].
    AppendResponse(AppendResponse),
}

impl Message {
    /// The term the sender was in when it sent the message.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendResponse(m) => m.term,
        }
    }
}

/// Whether a vote request is the real thing or a pre-vote (Raft thesis §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VoteKind {
    /// A pre-vote: "would you vote for me in `term`?" Neither side changes its term or vote.
    PreVote,
    /// A real vote in `term` (Raft paper §5.2).
    Vote,
}

/// A request for a vote (Raft paper §5.2, §5.4.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// Pre-vote or vote.
    pub kind: VoteKind,
    /// The term of the election. For a pre-vote it is the term the sender would start.
    pub term: Term,
    /// The index of the sender's last entry.
    pub last_log_index: LogIndex,
    /// The term of the sender's last entry.
    pub last_log_term: Term,
}

/// The answer to a [`RequestVote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// Pre-vote or vote, as in the request.
    pub kind: VoteKind,
    /// For a granted vote, the term of the request; for a refusal, the responder's own term,
    /// so that a candidate behind the times learns the current term.
    pub term: Term,
    /// Whether the vote was granted.
    pub granted: bool,
}

/// Entries from the leader, or a heartbeat when `entries` is empty (Raft paper §5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: Term,
    /// The index of the entry just before `entries`.
    pub prev_log_index: LogIndex,
    /// The term of that entry.
    pub prev_log_term: Term,
    /// The entries to append, in order, starting at `prev_log_index + 1`.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
}

/// The answer to an [`AppendEntries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// The responder's term.
    pub term: Term,
    /// What the responder did with the entries.
    pub outcome: AppendOutcome,
}

/// The result of an append on the follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's up to `match_index`, and those entries are durable.
    Accepted {
        /// The last index known to match the leader's log.
        match_index: LogIndex,
    },
    /// The follower's log has no entry matching `prev_log_index` / `prev_log_term`.
    Rejected {
        /// The `prev_log_index` of the rejected request.
        rejected: LogIndex,
        /// The leader may resume from `hint + 1`: every follower entry after `hint` up to
        /// `rejected` is missing or carries a term that cannot match.
        hint: LogIndex,
    },
}
