//! Node names and the Raft ids derived from them.
//!
//! Voters are named by their configured addresses; a voter's id is a hash of its address
//! ([`voter_id`]: FNV-1a, top bit cleared, never 0), so that every node derives the same one
//! whatever list it was configured with, and a voter keeps its id while members come and go.
//! Two addresses whose ids collide cannot both be members: a start or a membership change that
//! would make them so is refused. Read-only nodes are named `readonly:` and a number in
//! hexadecimal that the node draws at start and gives in its hello; their id is that number
//! with the top bit set, which no voter id has. Every voter that links to a read-only node
//! derives the same id for it.

use std::collections::BTreeMap;

use syncobj_net::READ_ONLY_PREFIX;

use super::network::fnv1a;
use crate::raft::NodeId;

/// The bit that marks a read-only node's id.
const READ_ONLY_BIT: u64 = 1 << 63;

/// The FNV-1a offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Two voter addresses that hash to the same id: they cannot both be members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Collision {
    /// The address that holds the id.
    pub(crate) member: String,
    /// The address that would take it too.
    pub(crate) address: String,
}

/// The node's names for itself and its peers, and their Raft ids.
#[derive(Debug)]
pub(crate) struct Addresses {
    pub(crate) by_id: BTreeMap<NodeId, String>,
    pub(crate) by_address: BTreeMap<String, NodeId>,
}

impl Addresses {
    /// The names of a cluster of `voters`.
    ///
    /// # Errors
    /// [`Collision`] if two distinct addresses have the same id.
    pub(crate) fn new(voters: impl IntoIterator<Item = String>) -> Result<Addresses, Collision> {
        let mut addresses = Addresses {
            by_id: BTreeMap::new(),
            by_address: BTreeMap::new(),
        };
        for voter in voters {
            addresses.insert_voter(&voter)?;
        }
        Ok(addresses)
    }

    /// Adds voter `address` (nothing if known), returning its id.
    ///
    /// # Errors
    /// [`Collision`] if another address holds its id.
    pub(crate) fn insert_voter(&mut self, address: &str) -> Result<NodeId, Collision> {
        let id = voter_id(address);
        match self.by_id.get(&id) {
            Some(known) if known == address => return Ok(id),
            Some(known) => {
                return Err(Collision {
                    member: known.clone(),
                    address: address.to_owned(),
                });
            }
            None => {}
        }
        self.by_id.insert(id, address.to_owned());
        self.by_address.insert(address.to_owned(), id);
        Ok(id)
    }

    /// Forgets voter `id` (a member that left).
    pub(crate) fn remove_voter(&mut self, id: NodeId) {
        if !is_read_only(id)
            && let Some(address) = self.by_id.remove(&id)
        {
            self.by_address.remove(&address);
        }
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

/// The id of the voter at `address`: FNV-1a of the address with the top bit (the read-only
/// mark) cleared, and never 0. The same on every node, whatever its configuration.
pub(crate) fn voter_id(address: &str) -> NodeId {
    let hash = fnv1a(FNV_OFFSET, address.as_bytes()) & !READ_ONLY_BIT;
    NodeId(hash.max(1))
}

/// The node id `id`'s files record: a voter's own; for a read-only node, which draws a new
/// number at every start, the read-only mark alone (every read-only node records the same).
pub(crate) fn disk_id(id: NodeId) -> NodeId {
    match is_read_only(id) {
        true => NodeId(READ_ONLY_BIT),
        false => id,
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
    fn voter_ids_are_a_function_of_the_address_alone() {
        let a = Addresses::new(["b:2".to_owned(), "a:1".to_owned(), "b:2".to_owned()])
            .expect("no collision");
        let voters: Vec<(NodeId, &String)> = a.voters().collect();
        assert_eq!(voters.len(), 2);
        assert_eq!(a.by_address["a:1"], voter_id("a:1"));
        assert_eq!(a.by_address["b:2"], voter_id("b:2"));
        let b = Addresses::new(["c:3".to_owned(), "b:2".to_owned()]).expect("no collision");
        assert_eq!(
            b.by_address["b:2"], a.by_address["b:2"],
            "whatever the other voters"
        );
        for address in ["a:1", "b:2", "", "127.0.0.1:4321"] {
            let id = voter_id(address);
            assert!(!is_read_only(id) && id.0 != 0, "{address}");
        }
    }

    #[test]
    fn colliding_addresses_are_refused_and_members_can_leave() {
        let mut a = Addresses::new(["a:1".to_owned()]).expect("no collision");
        let id = voter_id("a:1");
        // Forge a collision: another address recorded under a:1's id.
        a.by_id.insert(id, "other:9".to_owned());
        let collision = a.insert_voter("a:1").expect_err("the id is taken");
        assert_eq!(collision.member, "other:9");
        a.by_id.insert(id, "a:1".to_owned());
        assert_eq!(a.insert_voter("a:1"), Ok(id), "known already");
        let b = a.insert_voter("b:2").expect("no collision");
        a.remove_voter(b);
        assert!(!a.by_address.contains_key("b:2"));
        assert_eq!(a.voters().count(), 1);
    }

    #[test]
    fn read_only_names_round_trip_and_never_clash_with_voters() {
        let mut a = Addresses::new(["a:1".to_owned()]).expect("no collision");
        let id = read_only_id(42);
        let name = read_only_name(id);
        assert_eq!(name, "readonly:800000000000002a");
        assert_eq!(
            disk_id(id),
            disk_id(read_only_id(7)),
            "one for every read-only node"
        );
        assert_eq!(disk_id(voter_id("a:1")), voter_id("a:1"));
        assert_eq!(a.insert_read_only(&name), Some(id));
        assert_eq!(a.insert_read_only(&name), None, "known already");
        assert_eq!(a.insert_read_only("a:1"), None, "not a read-only name");
        assert_eq!(a.insert_read_only("readonly:zz"), None, "not hexadecimal");
        let read_only = |a: &Addresses| a.by_id.keys().filter(|&&id| is_read_only(id)).count();
        assert_eq!(read_only(&a), 1);
        assert_eq!(a.voters().count(), 1);
        a.remove_read_only(voter_id("a:1"));
        assert_eq!(a.voters().count(), 1, "voters are never removed this way");
        a.remove_read_only(id);
        assert_eq!(read_only(&a), 0);
        assert!(!a.by_address.contains_key(&name));
    }
}
