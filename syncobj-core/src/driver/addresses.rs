//! Node names and the Raft ids derived from them.
//!
//! Voters are named by their configured addresses; their ids follow the sorted addresses, so
//! that every node derives the same ones. Read-only nodes are named `readonly:` and a number in
//! hexadecimal that the node draws at start and gives in its hello; their id is that number
//! with the top bit set, which no voter id has. Every voter that links to a read-only node
//! derives the same id for it.

use std::collections::BTreeMap;

use syncobj_net::READ_ONLY_PREFIX;

use crate::raft::NodeId;

/// The bit that marks a read-only node's id.
const READ_ONLY_BIT: u64 = 1 << 63;

/// The node's names for itself and its peers, and their Raft ids.
#[derive(Debug)]
pub(crate) struct Addresses {
    pub(crate) by_id: BTreeMap<NodeId, String>,
    pub(crate) by_address: BTreeMap<String, NodeId>,
}

impl Addresses {
    /// The names of a cluster of `voters`.
    pub(crate) fn new(voters: impl IntoIterator<Item = String>) -> Addresses {
        let mut sorted: Vec<String> = voters.into_iter().collect();
        sorted.sort();
        sorted.dedup();
        let by_id: BTreeMap<NodeId, String> = sorted
            .into_iter()
            .enumerate()
            .map(|(i, a)| (NodeId(i as u64 + 1), a))
            .collect();
        let by_address = by_id.iter().map(|(&id, a)| (a.clone(), id)).collect();
        Addresses { by_id, by_address }
    }

    /// The voters' ids and addresses.
    pub(crate) fn voters(&self) -> impl Iterator<Item = (NodeId, &String)> {
        self.by_id
            .iter()
            .filter(|(id, _)| !is_read_only(**id))
            .map(|(&id, a)| (id, a))
    }

    /// Adds the read-only node `name`, returning its id; `None` if the name is not a read-only
    /// node's or is known already.
    pub(crate) fn insert_read_only(&mut self, name: &str) -> Option<NodeId> {
        let id = read_only_id_of(name)?;
        if self.by_id.contains_key(&id) {
            return None;
        }
        self.by_id.insert(id, name.to_owned());
        self.by_address.insert(name.to_owned(), id);
        Some(id)
    }

    /// Forgets the read-only node `id`.
    pub(crate) fn remove_read_only(&mut self, id: NodeId) {
        if is_read_only(id)
            && let Some(name) = self.by_id.remove(&id)
        {
            self.by_address.remove(&name);
        }
    }
}

/// The id of the read-only node that drew `number`.
pub(crate) fn read_only_id(number: u64) -> NodeId {
    NodeId(number | READ_ONLY_BIT)
}

/// The name voters know the read-only node `id` by.
pub(crate) fn read_only_name(id: NodeId) -> String {
    format!("{READ_ONLY_PREFIX}{:016x}", id.0)
}

/// Whether `id` is a read-only node's.
pub(crate) fn is_read_only(id: NodeId) -> bool {
    id.0 & READ_ONLY_BIT != 0
}

/// The id of the read-only node named `name`, if it is one.
fn read_only_id_of(name: &str) -> Option<NodeId> {
    let hex = name.strip_prefix(READ_ONLY_PREFIX)?;
    let number = u64::from_str_radix(hex, 16).ok()?;
    Some(read_only_id(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voter_ids_follow_sorted_addresses() {
        let a = Addresses::new(["b:2".to_owned(), "a:1".to_owned(), "b:2".to_owned()]);
        let voters: Vec<(NodeId, &String)> = a.voters().collect();
        assert_eq!(voters.len(), 2);
        assert_eq!(a.by_address["a:1"], NodeId(1));
        assert_eq!(a.by_address["b:2"], NodeId(2));
    }

    #[test]
    fn read_only_names_round_trip_and_never_clash_with_voters() {
        let mut a = Addresses::new(["a:1".to_owned()]);
        let id = read_only_id(42);
        let name = read_only_name(id);
        assert_eq!(name, "readonly:800000000000002a");
        assert_eq!(a.insert_read_only(&name), Some(id));
        assert_eq!(a.insert_read_only(&name), None, "known already");
        assert_eq!(a.insert_read_only("a:1"), None, "not a read-only name");
        assert_eq!(a.insert_read_only("readonly:zz"), None, "not hexadecimal");
        let read_only = |a: &Addresses| a.by_id.keys().filter(|&&id| is_read_only(id)).count();
        assert_eq!(read_only(&a), 1);
        assert_eq!(a.voters().count(), 1);
        a.remove_read_only(NodeId(1));
        assert_eq!(a.voters().count(), 1, "voters are never removed this way");
        a.remove_read_only(id);
        assert_eq!(read_only(&a), 0);
        assert!(!a.by_address.contains_key(&name));
    }
}
