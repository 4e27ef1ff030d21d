//! Who is in the cluster: voters, non-voting members that only receive the log, and the
//! address the driver uses to reach each member. Also the one-member changes a leader may make
//! to it (Raft thesis §4.1), and the byte encoding configuration entries carry.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::types::NodeId;

/// The longest address a member may have, in bytes: a host name, a port and some room.
pub const ADDRESS_BYTES_MAX: usize = 1024;

/// The most members (voters and non-voters) a configuration may hold.
pub const MEMBERS_MAX: usize = 1024;

/// The version byte that starts an encoded membership.
const ENCODING_VERSION: u8 = 1;

/// The members of a cluster.
///
/// Voters elect leaders and count toward commit majorities. Non-voters (PySyncObj's read-only
/// nodes, Raft's learners) receive the log and apply it, and never count toward any majority.
/// Each member may carry an opaque address, which the Raft core never interprets: it is how the
/// driver reaches the member, replicated with the configuration so that every node learns the
/// address of a node added at run time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MembershipWire", into = "MembershipWire")]
pub struct Membership {
    voters: BTreeSet<NodeId>,
    non_voters: BTreeSet<NodeId>,
    /// Addresses of members; every key is a member.
    addresses: BTreeMap<NodeId, String>,
}

/// A change of one member, the only kind of change a leader makes at a time (Raft thesis §4.1:
/// any two majorities of configurations that differ by one voter overlap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Makes `id` a voter. A new node is first added as a non-voter, and the leader promotes it
    /// once it has caught up (thesis §4.2.1); an existing non-voter is promoted once caught up.
    AddVoter {
        /// The node.
        id: NodeId,
        /// How the driver reaches it; replaces the address of an existing non-voter.
        address: String,
    },
    /// Adds `id` as a non-voting member: it receives the log, never counts toward a majority.
    AddNonVoter {
        /// The node.
        id: NodeId,
        /// How the driver reaches it.
        address: String,
    },
    /// Removes `id`, voter or not. A leader may remove itself (thesis §4.2.2).
    Remove {
        /// The node.
        id: NodeId,
    },
}

impl MembershipChange {
    /// The node the change is about.
    pub fn id(&self) -> NodeId {
        match self {
            MembershipChange::AddVoter { id, .. }
            | MembershipChange::AddNonVoter { id, .. }
            | MembershipChange::Remove { id } => *id,
        }
    }
}

/// Why an encoded membership (a configuration entry, or a peer's message) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MembershipError {
    /// The bytes end before the membership does, or go on after it.
    #[error("encoded membership has the wrong length")]
    Length,
    /// The first byte is not a version this code knows.
    #[error("encoded membership has unknown version {0}")]
    Version(u8),
    /// More members than [`MEMBERS_MAX`].
    #[error("membership of {0} members, more than the limit")]
    TooManyMembers(usize),
    /// A member is listed twice.
    #[error("{0} is listed twice in the membership")]
    Duplicate(NodeId),
    /// A role byte other than voter or non-voter.
    #[error("unknown member role {0}")]
    Role(u8),
    /// An address longer than [`ADDRESS_BYTES_MAX`], or not UTF-8.
    #[error("address of {0} is too long or not UTF-8")]
    Address(NodeId),
    /// An address given for a node that is not a member.
    #[error("address given for {0}, which is not a member")]
    AddressOfNonMember(NodeId),
}

impl Membership {
    /// A membership of `voters` and `non_voters`, without addresses. A node listed in both is a
    /// voter.
    pub fn new(
        voters: impl IntoIterator<Item = NodeId>,
        non_voters: impl IntoIterator<Item = NodeId>,
    ) -> Membership {
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        let non_voters = non_voters
            .into_iter()
            .filter(|n| !voters.contains(n))
            .collect();
        Membership {
            voters,
            non_voters,
            addresses: BTreeMap::new(),
        }
    }

    /// A membership of `voters` and `non_voters`, each with the address the driver reaches it
    /// at. A node listed in both is a voter, with the voter's address.
    pub fn with_addresses(
        voters: impl IntoIterator<Item = (NodeId, String)>,
        non_voters: impl IntoIterator<Item = (NodeId, String)>,
    ) -> Membership {
        let mut membership = Membership::default();
        for (id, address) in non_voters {
            membership.non_voters.insert(id);
            membership.addresses.insert(id, address);
        }
        for (id, address) in voters {
            membership.non_voters.remove(&id);
            membership.voters.insert(id);
            membership.addresses.insert(id, address);
        }
        membership
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

    /// The address of member `id`, if it has one.
    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.addresses.get(&id).map(String::as_str)
    }

    /// Every member, voters first, in id order within each group.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.non_voters).copied()
    }

    /// Every member but `id`.
    pub fn peers_of(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.members().filter(move |&n| n != id)
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The membership with `id` a voter at `address`.
    pub(crate) fn with_voter(&self, id: NodeId, address: String) -> Membership {
        let mut next = self.clone();
        next.non_voters.remove(&id);
        next.voters.insert(id);
        next.addresses.insert(id, address);
        next
    }

    /// The membership with `id` a non-voter at `address`.
    pub(crate) fn with_non_voter(&self, id: NodeId, address: String) -> Membership {
        let mut next = self.clone();
        next.voters.remove(&id);
        next.non_voters.insert(id);
        next.addresses.insert(id, address);
        next
    }

    /// The membership without `id`.
    pub(crate) fn without(&self, id: NodeId) -> Membership {
        let mut next = self.clone();
        next.voters.remove(&id);
        next.non_voters.remove(&id);
        next.addresses.remove(&id);
        next
    }

    /// The bytes a configuration entry carries: a version byte, the member count (u32), then
    /// per member its id (u64), its role (1 voter, 2 non-voter) and its address (a u32 length,
    /// `u32::MAX` for none, then UTF-8), all little-endian. Costs one pass over the members.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENCODING_VERSION];
        let count = u32::try_from(self.voters.len() + self.non_voters.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for id in self.members() {
            out.extend_from_slice(&id.0.to_le_bytes());
            out.push(if self.is_voter(id) {
                ROLE_VOTER
            } else {
                ROLE_NON_VOTER
            });
            match self.address(id) {
                Some(address) => {
                    let len = u32::try_from(address.len()).unwrap_or(u32::MAX - 1);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(address.as_bytes());
                }
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
        }
        out
    }

    /// Reads what [`encode`](Self::encode) wrote. Never panics and allocates at most in
    /// proportion to `bytes`.
    ///
    /// # Errors
    /// [`MembershipError`] for bytes that are not an encoded membership.
    pub fn decode(bytes: &[u8]) -> Result<Membership, MembershipError> {
        let mut reader = Reader(bytes);
        let version = reader.u8()?;
        if version != ENCODING_VERSION {
            return Err(MembershipError::Version(version));
        }
        let count = usize::try_from(reader.u32()?).unwrap_or(usize::MAX);
        if count > MEMBERS_MAX {
            return Err(MembershipError::TooManyMembers(count));
        }
        let mut wire = MembershipWire::default();
        for _ in 0..count {
            let id = NodeId(reader.u64()?);
            if wire.voters.contains(&id) || wire.non_voters.contains(&id) {
                return Err(MembershipError::Duplicate(id));
            }
            match reader.u8()? {
                ROLE_VOTER => wire.voters.insert(id),
                ROLE_NON_VOTER => wire.non_voters.insert(id),
                role => return Err(MembershipError::Role(role)),
            };
            let len = reader.u32()?;
            if len != u32::MAX {
                let raw = reader.take(usize::try_from(len).unwrap_or(usize::MAX))?;
                let address = std::str::from_utf8(raw).map_err(|_| MembershipError::Address(id))?;
                wire.addresses.insert(id, address.to_owned());
            }
        }
        if !reader.0.is_empty() {
            return Err(MembershipError::Length);
        }
        Membership::try_from(wire)
    }
}

const ROLE_VOTER: u8 = 1;
const ROLE_NON_VOTER: u8 = 2;

/// A cursor over encoded bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MembershipError> {
        if self.0.len() < n {
            return Err(MembershipError::Length);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, MembershipError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MembershipError> {
        let raw = self.take(4)?;
        Ok(u32::from_le_bytes(raw.try_into().expect("took 4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, MembershipError> {
        let raw = self.take(8)?;
        Ok(u64::from_le_bytes(raw.try_into().expect("took 8 bytes")))
    }
}

/// The serde form of a [`Membership`], checked when read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct MembershipWire {
    voters: BTreeSet<NodeId>,
    non_voters: BTreeSet<NodeId>,
    addresses: BTreeMap<NodeId, String>,
}

impl TryFrom<MembershipWire> for Membership {
    type Error = MembershipError;

    fn try_from(wire: MembershipWire) -> Result<Membership, MembershipError> {
        let members = wire.voters.len() + wire.non_voters.len();
        if members > MEMBERS_MAX {
            return Err(MembershipError::TooManyMembers(members));
        }
        if let Some(&id) = wire.voters.intersection(&wire.non_voters).next() {
            return Err(MembershipError::Duplicate(id));
        }
        for (&id, address) in &wire.addresses {
            if !wire.voters.contains(&id) && !wire.non_voters.contains(&id) {
                return Err(MembershipError::AddressOfNonMember(id));
            }
            if address.len() > ADDRESS_BYTES_MAX {
                return Err(MembershipError::Address(id));
            }
        }
        Ok(Membership {
            voters: wire.voters,
            non_voters: wire.non_voters,
            addresses: wire.addresses,
        })
    }
}

impl From<Membership> for MembershipWire {
    fn from(membership: Membership) -> MembershipWire {
        MembershipWire {
            voters: membership.voters,
            non_voters: membership.non_voters,
            addresses: membership.addresses,
        }
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
