//! Who is in the cluster: voters, and non-voting members that only receive the log.

use std::collections::BTreeSet;

use super::types::NodeId;

/// The members of a cluster.
///
/// Voters elect leaders and count toward commit majorities. Non-voters (PySyncObj's read-only
/// nodes, Raft's learners) receive the log and apply it, and never count toward any majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    voters: BTreeSet<NodeId>,
    non_voters: BTreeSet<NodeId>,
}

impl Membership {
    /// A membership of `voters` and `non_voters`. A node listed in both is a voter.
    pub fn new(
        voters: impl IntoIterator<Item = NodeId>,
        non_voters: impl IntoIterator<Item = NodeId>,
    ) -> Membership {
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        let non_voters = non_voters
            .into_iter()
            .filter(|n| !voters.contains(n))
            .collect();
        Membership { voters, non_voters }
    }

    /// The voting members.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// The non-voting members.
    pub fn non_voters(&self) -> &BTreeSet<NodeId> {
        &self.non_voters
    }

    /// Whether `id` is a voter.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Whether `id` is a member at all.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.non_voters.contains(&id)
    }

    /// Every member but `id`.
    pub fn peers_of(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.voters
            .iter()
            .chain(&self.non_voters)
            .copied()
            .filter(move |&n| n != id)
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}
