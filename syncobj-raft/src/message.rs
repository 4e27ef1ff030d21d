//! The messages Raft nodes exchange: one typed struct per kind, gathered in [`Message`].

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::membership::Membership;
use super::types::{Entry, LogIndex, LogPosition, NodeId, Term};

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
    /// The leader sends one chunk of a snapshot to a follower that needs entries it compacted
    /// (Raft paper §7).
    InstallSnapshot(InstallSnapshot),
    /// The answer to [`Message::InstallSnapshot`].
    InstallSnapshotResponse(InstallSnapshotResponse),
    /// The leader hands its leadership over: the receiver starts an election at once (Raft
    /// thesis §3.10).
    TimeoutNow(TimeoutNow),
}

impl Message {
    /// The term the sender was in when it sent the message.
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendResponse(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotResponse(m) => m.term,
            Message::TimeoutNow(m) => m.term,
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
    /// The election was started by a [`TimeoutNow`] from the leader, which hands its leadership
    /// over: voters do not refuse it for having heard from that leader recently (thesis §3.10,
    /// §4.2.3). Absent in older encodings, read as `false`.
    #[serde(default)]
    pub leadership_transfer: bool,
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

/// One chunk of a snapshot, from the leader (Raft paper §7, Figure 13; thesis §5.3).
///
/// The bytes are opaque to the Raft core: they are whatever the leader's driver streams for the
/// snapshot (the syncobj driver sends its snapshot file, whose header carries the membership and
/// code version, checksummed). Chunks of one transfer are sent one at a time, in order; `offset`
/// is where `data` starts in the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// The leader's term.
    pub term: Term,
    /// The index of the last entry the snapshot covers.
    pub last_index: LogIndex,
    /// That entry's term.
    pub last_term: Term,
    /// Where `data` starts in the snapshot's byte stream.
    pub offset: u64,
    /// The chunk; empty in a keep-alive, or in the question "are you done installing?" that a
    /// leader asks with `done` set once every chunk was confirmed.
    pub data: Bytes,
    /// Whether the stream ends with this chunk.
    pub done: bool,
    /// The configuration in force at the snapshot's last entry (thesis §5.3: the snapshot
    /// carries the latest configuration it covers). The follower adopts it when it installs the
    /// snapshot.
    pub membership: Membership,
}

impl InstallSnapshot {
    /// The snapshot the chunk belongs to.
    pub fn snapshot(&self) -> LogPosition {
        LogPosition {
            index: self.last_index,
            term: self.last_term,
        }
    }
}

/// The answer to an [`InstallSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// The responder's term.
    pub term: Term,
    /// The `last_index` of the snapshot answered.
    pub last_index: LogIndex,
    /// The `last_term` of the snapshot answered.
    pub last_term: Term,
    /// Where the transfer stands on the follower.
    pub outcome: SnapshotOutcome,
}

impl InstallSnapshotResponse {
    /// The snapshot the answer is about.
    pub fn snapshot(&self) -> LogPosition {
        LogPosition {
            index: self.last_index,
            term: self.last_term,
        }
    }
}

/// Where a snapshot transfer stands on the follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotOutcome {
    /// The follower holds the stream's bytes before `next_offset`, in order, and wants the chunk
    /// that starts there. Zero means "start over": the follower has nothing of this snapshot
    /// (it restarted, or it gave up on a failed install). Once the last chunk is in, this is the
    /// length of the stream until the follower has installed the snapshot.
    Continue {
        /// The offset of the chunk the follower expects.
        next_offset: u64,
    },
    /// The snapshot is installed and durable: the follower's log matches the leader's through
    /// `last_index`.
    Installed,
    /// The follower refused the snapshot: it has committed `committed`, at or past the snapshot,
    /// and needs entries from there on instead.
    Stale {
        /// The follower's commit index.
        committed: LogIndex,
    },
}

/// The leader asks the target of a leadership transfer, whose log matches its own, to start an
/// election now without waiting for its timeout and without a pre-vote (Raft thesis §3.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: Term,
}
