//! The node's side of the transport: who its peers are, which links are up, which read-only
//! nodes are linked (each a Raft observer), what the wire counted, and the frames to send.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use syncobj_net::{Incoming, Transport, TransportCounters};

use crate::driver::addresses::Addresses;
use crate::driver::observed::{PeerLink, Peers};
use crate::driver::wire::NodeMessage;
use crate::raft::{Instant, NodeId, RaftNode};

/// The most read-only nodes a voter replicates to at once; more are ignored, with a warning.
const READ_ONLY_NODES_MAX: usize = 64;

/// Frames to send once the iteration's work is done, by the Raft id of their receiver.
#[derive(Default)]
pub(crate) struct Outbox {
    frames: Vec<(NodeId, Bytes)>,
}

impl Outbox {
    /// Encodes `message` for node `to`.
    pub(crate) fn push(&mut self, to: NodeId, message: &NodeMessage) {
        self.frames.push((to, message.encode()));
    }
}

/// The transport, the peers it links, and what it reported.
pub(crate) struct Links {
    transport: Box<dyn Transport>,
    /// Frames received by the last poll.
    incoming: Vec<Incoming>,
    pub(crate) addresses: Addresses,
    me: NodeId,
    /// Which peers had a live link at the last iteration.
    up: BTreeMap<String, bool>,
    /// Peers that sent a message this node cannot decode: their connections are dropped.
    disconnect: Vec<String>,
    /// Frames that did not decode, or came from unknown addresses.
    pub(crate) bad_frames: u64,
    /// The transport's counters as of the last iteration.
    pub(crate) wire: TransportCounters,
    /// Whether the transport listens, as of the last iteration.
    pub(crate) bound: Result<bool, Arc<str>>,
    /// The peers as last published; rebuilt only when a link or a read-only node changes.
    peers: Arc<Peers>,
}

impl Links {
    pub(crate) fn new(transport: Box<dyn Transport>, addresses: Addresses, me: NodeId) -> Links {
        let up = addresses
            .by_id
            .iter()
            .filter(|&(&id, _)| id != me)
            .map(|(_, a)| (a.clone(), false))
            .collect();
        let peers = Arc::new(Peers {
            me,
            nodes: BTreeMap::new(),
        });
        let mut links = Links {
            transport,
            incoming: Vec::new(),
            addresses,
            me,
            up,
            disconnect: Vec::new(),
            bad_frames: 0,
            wire: TransportCounters::default(),
            bound: Ok(false),
            peers,
        };
        links.peers = Arc::new(links.build_peers());
        links
    }

    /// Waits at most `wait` for frames; returns what arrived, with the sender's Raft id.
    pub(crate) fn poll(&mut self, wait: std::time::Duration) -> Vec<(NodeId, Bytes)> {
        self.transport.poll(wait, &mut self.incoming);
        let mut frames = Vec::with_capacity(self.incoming.len());
        for incoming in self.incoming.drain(..) {
            match self.addresses.by_address.get(&incoming.from) {
                Some(&from) => frames.push((from, incoming.frame)),
                None => {
                    self.bad_frames += 1;
                    tracing::warn!(from = %incoming.from, "frame from an address outside the cluster dropped");
                }
            }
        }
        frames
    }

    /// Drops the link to `peer`, which sent something this node refuses.
    pub(crate) fn refuse(&mut self, peer: NodeId) {
        self.bad_frames += 1;
        if let Some(address) = self.addresses.by_id.get(&peer) {
            self.disconnect.push(address.clone());
        }
    }

    /// Hands the outbox's frames to the transport.
    pub(crate) fn flush(&mut self, outbox: &mut Outbox) {
        for (to, frame) in outbox.frames.drain(..) {
            if let Some(address) = self.addresses.by_id.get(&to) {
                self.transport.send(address, frame);
            }
        }
    }

    /// Drops what the outbox holds: the node halted and sends nothing more.
    pub(crate) fn discard(outbox: &mut Outbox) {
        outbox.frames.clear();
    }

    /// Takes in what the transport knows now: dropped connections, link states, read-only
    /// nodes (each becomes or stops being a Raft observer), counters and the bind.
    pub(crate) fn refresh(&mut self, raft: &mut RaftNode, now: Instant) {
        for peer in self.disconnect.drain(..) {
            self.transport.disconnect(&peer);
        }
        let mut changed = false;
        for (address, up) in &mut self.up {
            let now_up = self.transport.is_connected(address);
            changed |= *up != now_up;
            *up = now_up;
        }
        changed |= self.sync_read_only(raft, now);
        self.wire = self.transport.counters();
        self.bound = self.transport.bound().map_err(Arc::from);
        if changed {
            self.peers = Arc::new(self.build_peers());
        }
    }

    /// Follows the read-only nodes linked now: each new one becomes a Raft observer (the
    /// leader replicates to it), each gone one is dropped. At most [`READ_ONLY_NODES_MAX`].
    /// Returns whether anything changed.
    fn sync_read_only(&mut self, raft: &mut RaftNode, now: Instant) -> bool {
        let linked = self.transport.read_only_peers();
        let gone: Vec<NodeId> = self
            .addresses
            .read_only()
            .filter(|&(id, name)| id != self.me && !linked.contains(name))
            .map(|(id, _)| id)
            .collect();
        let mut changed = !gone.is_empty();
        for id in gone {
            raft.remove_observer(id);
            self.addresses.remove_read_only(id);
        }
        for name in &linked {
            if raft.observers().len() >= READ_ONLY_NODES_MAX {
                tracing::warn!(node = %name, max = READ_ONLY_NODES_MAX, "too many read-only nodes, ignored");
                break;
            }
            if let Some(id) = self.addresses.insert_read_only(name) {
                tracing::info!(node = %name, "read-only node linked");
                raft.add_observer(id, now);
                changed = true;
            }
        }
        changed
    }

    /// The peers and their links, shared with readers until the next change.
    pub(crate) fn peers(&self) -> Arc<Peers> {
        Arc::clone(&self.peers)
    }

    fn build_peers(&self) -> Peers {
        let nodes = self
            .addresses
            .by_id
            .iter()
            .map(|(&id, address)| {
                let connected = self.up.get(address).copied().unwrap_or(false);
                let link = PeerLink {
                    address: address.clone(),
                    connected,
                };
                (id, link)
            })
            .collect();
        Peers { me: self.me, nodes }
    }
}
