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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Membership;
    use crate::types::NodeId;

    /// Node ids `from..=to`.
    fn ids(from: u64, to: u64) -> impl Iterator<Item = NodeId> {
        (from..=to).map(NodeId)
    }

    /// A majority of 1..=7 voters is 1, 2, 2, 3, 3, 4, 4 (Raft §5.2).
    #[test]
    fn quorum_is_a_strict_majority_of_voters() {
        let expected = [1, 2, 2, 3, 3, 4, 4];
        for (voters, quorum) in (1..=7).zip(expected) {
            let m = Membership::new(ids(1, voters), []);
            assert_eq!(m.quorum(), quorum, "{voters} voters");
            assert!(2 * m.quorum() > m.voters().len(), "{voters} voters");
        }
    }

    /// Non-voters never change the quorum (thesis §4.2.1).
    #[test]
    fn non_voters_never_change_the_quorum() {
        for voters in 1..=7 {
            let alone = Membership::new(ids(1, voters), []).quorum();
            for non_voters in 1..=5 {
                let m = Membership::new(ids(1, voters), ids(100, 99 + non_voters));
                assert_eq!(
                    m.non_voters().len(),
                    usize::try_from(non_voters).expect("small")
                );
                assert_eq!(
                    m.quorum(),
                    alone,
                    "{voters} voters, {non_voters} non-voters"
                );
            }
        }
    }

    /// A node listed both as voter and as non-voter is a voter only.
    #[test]
    fn node_listed_as_both_is_a_voter() {
        let m = Membership::new(ids(1, 3), [NodeId(3), NodeId(4)]);
        assert!(m.is_voter(NodeId(3)));
        assert!(m.contains(NodeId(3)));
        assert!(!m.non_voters().contains(&NodeId(3)));
        assert_eq!(m.non_voters(), &BTreeSet::from([NodeId(4)]));
        assert_eq!(m.voters().len(), 3);
        assert_eq!(m.quorum(), 2);
        assert_eq!(m.peers_of(NodeId(1)).filter(|&n| n == NodeId(3)).count(), 1);
    }

    /// `peers_of` lists every voter and non-voter except the node itself.
    #[test]
    fn peers_of_excludes_self() {
        let m = Membership::new(ids(1, 3), [NodeId(10), NodeId(11)]);
        let peers: Vec<NodeId> = m.peers_of(NodeId(2)).collect();
        assert_eq!(peers, [1, 3, 10, 11].map(NodeId));
        let peers: Vec<NodeId> = m.peers_of(NodeId(10)).collect();
        assert_eq!(peers, [1, 2, 3, 11].map(NodeId));
        let peers: Vec<NodeId> = m.peers_of(NodeId(99)).collect();
        assert_eq!(
            peers,
            [1, 2, 3, 10, 11].map(NodeId),
            "a non-member has every member as peer"
        );
        let single = Membership::new([NodeId(1)], []);
        assert_eq!(single.peers_of(NodeId(1)).count(), 0);
    }
}
