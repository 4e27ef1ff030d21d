//! Whose files these are: the node and the cluster that wrote them, recorded in the hard-state
//! file and every log segment and snapshot, and checked when they are read back.

use std::fmt;

use crate::raft::NodeId;

/// The node and the cluster a data directory belongs to.
///
/// A node records its identity in every file it writes and refuses, at start, a file that
/// carries another one ([`StorageError::ForeignFile`](super::StorageError::ForeignFile)): a
/// hard state copied from another node could make it vote twice in one term, and log entries
/// or a state copied from another cluster would mix two histories.
///
/// The [`Default`] identity (node 0 of cluster 0) is that of a journal used outside a node,
/// by tools and tests.
///
/// ```
/// use syncobj_core::raft::NodeId;
/// use syncobj_core::storage::{ClusterId, Identity};
///
/// let me = Identity { node: NodeId(7), cluster: ClusterId::from_name("orders") };
/// assert_eq!(me.cluster, ClusterId::from_name("orders"));
/// assert_ne!(me.cluster, ClusterId::from_name("billing"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The node's id: a voter's is a hash of its address. A read-only node draws a new id at
    /// every start, so all read-only nodes record the same one (only the read-only mark).
    pub node: NodeId,
    /// The cluster's id: a hash of its name.
    pub cluster: ClusterId,
}

impl Default for Identity {
    fn default() -> Identity {
        Identity {
            node: NodeId(0),
            cluster: ClusterId(0),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} of cluster {}", self.node, self.cluster)
    }
}

/// A cluster's id: the 64-bit FNV-1a hash of its name (the `cluster_name` option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(pub u64);

impl ClusterId {
    /// The id of the cluster named `name`: the same on every node and at every start.
    pub fn from_name(name: &str) -> ClusterId {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        ClusterId(hash)
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names hash as FNV-1a (the empty name to the offset basis); an identity prints the node
    /// id as the logs do and the cluster id in hexadecimal.
    #[test]
    fn cluster_ids_are_fnv1a_of_the_name() {
        assert_eq!(ClusterId::from_name(""), ClusterId(0xcbf2_9ce4_8422_2325));
        assert_eq!(ClusterId::from_name("a"), ClusterId(0xaf63_dc4c_8601_ec8c));
        let identity = Identity {
            node: NodeId(0xab),
            cluster: ClusterId(0x12),
        };
        assert_eq!(
            identity.to_string(),
            "node n171 of cluster 0000000000000012"
        );
    }
}
