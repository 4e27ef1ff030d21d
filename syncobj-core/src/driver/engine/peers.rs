//! The transport's numbers for this node's peers ([`PeerId`]) and their names, both ways.

use std::collections::BTreeMap;

use syncobj_net::{PeerId, READ_ONLY_PREFIX};

/// Each peer's name (a voter's address, a read-only node's name) by its transport number, and
/// back: the voters from [`Transport::add_peer`](syncobj_net::Transport::add_peer) at start,
/// the read-only nodes while they are linked.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    names: BTreeMap<PeerId, String>,
    ids: BTreeMap<String, PeerId>,
}

impl PeerTable {
    /// Records that the transport calls `name` `peer`.
    pub(crate) fn insert(&mut self, peer: PeerId, name: String) {
        self.ids.insert(name.clone(), peer);
        self.names.insert(peer, name);
    }

    /// Forgets `peer` (a read-only node that left).
    pub(crate) fn remove(&mut self, peer: PeerId) {
        if let Some(name) = self.names.remove(&peer) {
            self.ids.remove(&name);
        }
    }

    /// The name of `peer`, if known.
    pub(crate) fn name(&self, peer: PeerId) -> Option<&String> {
        self.names.get(&peer)
    }

    /// The transport's number for `name`, if known.
    pub(crate) fn id(&self, name: &str) -> Option<PeerId> {
        self.ids.get(name).copied()
    }

    /// The names of the read-only nodes linked now.
    pub(crate) fn read_only_names(&self) -> Vec<String> {
        self.names
            .values()
            .filter(|name| name.starts_with(READ_ONLY_PREFIX))
            .cloned()
            .collect()
    }
}
