//! The role a node plays, each holding the state only that role needs.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::handover::Handover;
use super::progress::Progress;
use super::types::{LogIndex, NodeId};

/// A node's role, with its own state.
#[derive(Debug)]
pub(crate) enum Role {
    Follower {
        /// The leader of the current term, once heard from.
        leader: Option<NodeId>,
        /// The highest index this node's log is known to share with that leader's: the last
        /// entry of an append it accepted from it in this term. A leader never changes its log
        /// within its term, so this holds however the leader's messages are reordered, and
        /// the commit index may follow the leader's up to it.
        matched: LogIndex,
    },
    /// Running a pre-vote round (Raft thesis §9.6); the term is not raised yet.
    PreCandidate {
        votes: Votes,
        /// Started by a fast path (the link to the leader lost, a cold start), where several
        /// nodes start at the same instant: concurrent pre-candidates then give way to one
        /// another in (log, id) order rather than all win and split the real vote. A round the
        /// election timer started does not, so that a node stuck pre-voting (its requests
        /// lost) never holds back the others for longer than one election timeout.
        fast: bool,
        /// A fast round that met a concurrent pre-candidate outranking this node: it gave way,
        /// so it starts no election even if it collects a majority (others may have granted
        /// both before they heard of the better one); it waits for its election timer.
        yielded: bool,
    },
    Candidate {
        votes: Votes,
    },
    Leader {
        /// One entry per other member, voter or not, and per observer; while a configuration
        /// entry is uncommitted, also per member of the configuration before it.
        progress: BTreeMap<NodeId, Progress>,
        /// The non-voter to promote once it caught up (thesis §4.2.1), and its address.
        promotion: Option<Promotion>,
        /// The leadership transfer under way (thesis §3.10).
        handover: Option<Handover>,
        /// The last entry it inherited from earlier terms: what lies above is its own.
        inherited: LogIndex,
    },
}

/// A non-voter the leader promotes to voter once its log is close enough to the leader's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Promotion {
    pub(crate) id: NodeId,
    pub(crate) address: String,
}

impl Role {
    pub(crate) fn kind(&self) -> RoleKind {
        match self {
            Role::Follower { .. } => RoleKind::Follower,
            Role::PreCandidate { .. } => RoleKind::PreCandidate,
            Role::Candidate { .. } => RoleKind::Candidate,
            Role::Leader { .. } => RoleKind::Leader,
        }
    }
}

/// The votes a (pre-)candidate has collected from voters, its own included.
#[derive(Debug, Default)]
pub(crate) struct Votes {
    granted: BTreeSet<NodeId>,
    refused: BTreeSet<NodeId>,
}

impl Votes {
    pub(crate) fn record(&mut self, from: NodeId, granted: bool) {
        if granted {
            self.granted.insert(from);
        } else {
            self.refused.insert(from);
        }
    }

    /// The election's outcome given `quorum`: `Some(true)` won, `Some(false)` lost.
    pub(crate) fn outcome(&self, quorum: usize) -> Option<bool> {
        if self.granted.len() >= quorum {
            Some(true)
        } else if self.refused.len() >= quorum {
            Some(false)
        } else {
            None
        }
    }
}

/// The role of a node, without its state; what status reports show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoleKind {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asks whether it could win an election, without raising the term.
    PreCandidate,
    /// Runs an election.
    Candidate,
    /// Leads the cluster in the current term.
    Leader,
}
