//! The node's side of the transport: who its peers are (each a Raft id and a transport
//! [`PeerId`]), which links are up, which read-only nodes are linked (each a Raft observer),
//! which strangers are linked (nodes outside the membership this node knows, whose frames go
//! to Raft, which judges them; each a Raft observer too, unless the node refuses read-only
//! nodes), whether the listener is bound, and the frames to send. It reacts to the
//! transport's events rather than asking for its state.
//!
//! A stranger is observed so that a node started with its own address before it is added
//! follows the log as a read-only node would (a standby): when the membership names it, it
//! is caught up already and the leader promotes it without sending its log again. A member
//! removed that keeps running dials its old partners and is observed the same way while it
//! runs: it costs a replication stream, no vote, and at most [`syncobj_net::STRANGER_LINKS_MAX`] of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use syncobj_net::{BindFailure, PeerId, Transport, TransportEvent, Wake, WireStats};

use crate::driver::addresses::{Addresses, is_read_only, voter_id};
use crate::driver::observed::{PeerLink, Peers};
use crate::driver::wire::NodeMessage;
use crate::raft::{Instant, Membership, NodeId, RaftNode};

/// The most read-only nodes a voter replicates to at once; more are ignored, with a warning.
const READ_ONLY_NODES_MAX: usize = 64;

/// What a node does with strangers: voters of its cluster outside the memberships it follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strangers {
    /// Refused by the transport: the membership never changes.
    Refused,
    /// Linked, their frames handed to Raft, which judges them; not replicated to (this node
    /// refuses read-only nodes, and a stranger would follow the log like one).
    Linked,
    /// Linked and observed: as leader, this node replicates the log to them.
    Observed,
}

/// Frames to send once the iteration's work is done, by the Raft id of their receiver, each
/// with whether it is a control frame ([`NodeMessage::is_control`]).
#[derive(Default)]
pub(crate) struct Outbox {
    frames: Vec<(NodeId, Bytes, bool)>,
}

impl Outbox {
    /// Encodes `message` for node `to`.
    pub(crate) fn push(&mut self, to: NodeId, message: &NodeMessage) {
        self.frames
            .push((to, message.encode(), message.is_control()));
    }
}

/// The transport, the peers it links, and what it reported.
pub(crate) struct Links {
    transport: Box<dyn Transport>,
    /// What the last poll reported.
    events: Vec<TransportEvent>,
    pub(crate) addresses: Addresses,
    me: NodeId,
    /// Each transport peer's Raft id, by its dense number.
    nodes: Vec<Option<NodeId>>,
    /// Each Raft id's transport peer.
    peer_ids: BTreeMap<NodeId, PeerId>,
    /// The nodes whose link is up.
    up: BTreeMap<NodeId, bool>,
    /// The strangers linked: voters outside the memberships followed, by their Raft id (a
    /// hash of their address, as for any voter), each a Raft observer if `observe`. At most
    /// the transport's cap.
    strangers: BTreeSet<NodeId>,
    /// Whether strangers are Raft observers ([`Strangers::Observed`]).
    observe: bool,
    /// Frames that did not decode, or came from unknown peers.
    pub(crate) bad_frames: u64,
    /// The transport's counters, shared with readers of the status.
    pub(crate) wire: Arc<WireStats>,
    /// Whether the transport listens: `None` while it still tries.
    pub(crate) bound: Option<Result<(), BindFailure>>,
    /// Why the last bind attempt failed, while the transport still tries.
    pub(crate) bind_retrying: Option<BindFailure>,
    /// Administrators' requests of the last poll, by the transport's number: at most one per
    /// administrator's connection.
    pub(crate) admin_requests: Vec<(u64, Bytes)>,
    /// The peers as last published; rebuilt only when a link or a read-only node changes.
    peers: Arc<Peers>,
    /// Whether a link or a read-only node changed since the last publication.
    changed: bool,
    /// The memberships the peers were last made to follow: the one in force and the last
    /// committed one.
    followed: (Membership, Option<Membership>),
}

impl Links {
    /// Links `me` to the voters of `addresses` through `transport`; unless `strangers` are
    /// refused (the membership may change), the transport admits nodes outside the membership
    /// too: one whose membership lags must hear a leader it never heard of (Raft thesis §4.1),
    /// and one not added yet follows the log when they are observed.
    pub(crate) fn new(
        mut transport: Box<dyn Transport>,
        addresses: Addresses,
        me: NodeId,
        strangers: Strangers,
    ) -> Links {
        if strangers != Strangers::Refused {
            transport.admit_strangers();
        }
        let wire = transport.counters();
        let mut links = Links {
            transport,
            events: Vec::new(),
            addresses,
            me,
            nodes: Vec::new(),
            peer_ids: BTreeMap::new(),
            up: BTreeMap::new(),
            strangers: BTreeSet::new(),
            observe: strangers == Strangers::Observed,
            bad_frames: 0,
            wire,
            bound: None,
            bind_retrying: None,
            admin_requests: Vec::new(),
            peers: Arc::new(Peers {
                me,
                nodes: BTreeMap::new(),
            }),
            changed: true,
            followed: (Membership::default(), None),
        };
        let voters: Vec<(NodeId, String)> = links
            .addresses
            .voters()
            .filter(|&(id, _)| id != me)
            .map(|(id, address)| (id, address.clone()))
            .collect();
        for (id, address) in voters {
            let peer = links.transport.add_peer(&address);
            links.map(peer, id);
        }
        links.peers = Arc::new(links.build_peers());
        links
    }

    /// Waits at most `wait` for the transport, takes in what it reports (links, read-only
    /// nodes, the bind), and returns the frames that arrived, by the sender's Raft id.
    pub(crate) fn poll(
        &mut self,
        wait: std::time::Duration,
        raft: &mut RaftNode,
        now: Instant,
    ) -> Vec<(NodeId, Bytes)> {
        self.transport.poll(wait, &mut self.events);
        let mut frames = Vec::new();
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            match event {
                TransportEvent::Frame { from, frame } => match self.node(from) {
                    Some(node) => frames.push((node, frame)),
                    None => {
                        self.bad_frames += 1;
                        tracing::warn!(%from, "frame from a peer outside the cluster dropped");
                    }
                },
                TransportEvent::LinkUp(peer) => {
                    self.set_link(peer, true);
                    // A node just started may campaign early once linked to a majority.
                    if let Some(node) = self.node(peer) {
                        raft.link_up(node, now);
                    }
                }
                TransportEvent::LinkDown(peer) => {
                    self.set_link(peer, false);
                    // What was queued on the link is lost with it, and a follower whose link
                    // to its leader closed or reset (its process died) campaigns at once.
                    if let Some(node) = self.node(peer) {
                        raft.link_down(node, now);
                    }
                }
                TransportEvent::ReadOnlyJoined { peer, name } => {
                    self.read_only_joined(peer, &name, raft, now)
                }
                TransportEvent::ReadOnlyLeft(peer) => self.read_only_left(peer, raft),
                TransportEvent::StrangerJoined { peer, name } => {
                    self.stranger_joined(peer, &name, raft, now)
                }
                TransportEvent::StrangerLeft(peer) => self.stranger_left(peer, raft),
                TransportEvent::Bound(outcome) => {
                    self.bound = Some(outcome);
                    self.bind_retrying = None;
                }
                TransportEvent::BindRetrying(failure) => self.bind_retrying = Some(failure),
                TransportEvent::AdminRequest { id, request } => {
                    self.admin_requests.push((id, request));
                }
            }
        }
        // The buffer keeps its capacity for the next poll.
        self.events = events;
        frames
    }

    /// Answers an administrator's request through the transport.
    pub(crate) fn admin_reply(&mut self, id: u64, reply: Bytes) {
        self.transport.admin_reply(id, reply);
    }

    /// A handle that wakes the loop's poll.
    pub(crate) fn waker(&self) -> Arc<dyn Wake> {
        self.transport.waker()
    }

    /// Makes the peers the members of the membership in force and of the last committed one
    /// (a member being removed hears of it before the removal commits): new members become
    /// transport peers, those that left are removed from the transport (which then refuses
    /// their connections). A stranger the membership names is no longer observed: Raft keeps
    /// its progress as a member's. Costs a comparison of the memberships when nothing changed.
    pub(crate) fn follow(&mut self, raft: &mut RaftNode) {
        let current = raft.membership();
        let committed = raft.membership_at(raft.commit_index());
        if self.followed.0 == *current && self.followed.1.as_ref() == committed {
            return;
        }
        let current = current.clone();
        let committed = committed.cloned();
        self.followed = (current.clone(), committed.clone());
        let committed = committed.as_ref();
        let mut wanted: BTreeMap<NodeId, String> = BTreeMap::new();
        for membership in [Some(&current), committed].into_iter().flatten() {
            for id in membership.members() {
                if let Some(address) = membership.address(id) {
                    wanted.insert(id, address.to_owned());
                }
            }
        }
        for (&id, address) in &wanted {
            if id == self.me || is_read_only(id) || self.addresses.by_id.contains_key(&id) {
                continue;
            }
            match self.addresses.insert_voter(address) {
                Ok(_) => {
                    tracing::info!(node = %address, "a new member: linking to it");
                    // A stranger linked under that address becomes the peer, link and all.
                    let peer = self.transport.add_peer(address);
                    if self.strangers.remove(&id) && current.contains(id) {
                        raft.remove_observer(id);
                    }
                    self.map(peer, id);
                    self.changed = true;
                }
                Err(collision) => {
                    tracing::warn!(
                        ?collision,
                        "a member whose id another address holds: ignored"
                    );
                }
            }
        }
        let member = |id| current.contains(id) || committed.is_some_and(|m| m.contains(id));
        let gone: Vec<NodeId> = self
            .addresses
            .voters()
            .map(|(id, _)| id)
            .filter(|&id| id != self.me && !member(id))
            .collect();
        for id in gone {
            tracing::info!(node = ?self.addresses.by_id.get(&id), "a member left: unlinking it");
            if let Some(&peer) = self.peer_ids.get(&id) {
                self.transport.remove_peer(peer);
                self.unmap(peer);
            }
            // Observed while it was a stranger, if the membership naming it was not in force.
            raft.remove_observer(id);
            self.addresses.remove_voter(id);
            self.changed = true;
        }
    }

    /// Drops the link to `node`, which sent something this node refuses.
    pub(crate) fn refuse(&mut self, node: NodeId) {
        self.bad_frames += 1;
        if let Some(&peer) = self.peer_ids.get(&node) {
            self.transport.disconnect(peer);
        }
    }

    /// Hands the outbox's frames to the transport: control frames ahead of bulk data. A frame
    /// the transport drops (no link, a full queue) is reported to Raft, which sends again
    /// from what the peer is known to hold.
    pub(crate) fn flush(&mut self, outbox: &mut Outbox, raft: &mut RaftNode) {
        for (to, frame, control) in outbox.frames.drain(..) {
            let Some(&peer) = self.peer_ids.get(&to) else {
                continue;
            };
            let queued = match control {
                true => self.transport.send_control(peer, frame),
                false => self.transport.send(peer, frame),
            };
            if !queued {
                raft.report_unreachable(to);
            }
        }
    }

    /// Drops what the outbox holds: the node halted and sends nothing more.
    pub(crate) fn discard(outbox: &mut Outbox) {
        outbox.frames.clear();
    }

    /// The peers and their links, shared with readers until the next change.
    pub(crate) fn peers(&mut self) -> Arc<Peers> {
        if std::mem::take(&mut self.changed) {
            self.peers = Arc::new(self.build_peers());
        }
        Arc::clone(&self.peers)
    }

    /// Whether the link to `node` is up.
    pub(crate) fn is_up(&self, node: NodeId) -> bool {
        self.up.get(&node).copied().unwrap_or(false)
    }

    fn node(&self, peer: PeerId) -> Option<NodeId> {
        self.nodes.get(peer.index()).copied().flatten()
    }

    fn map(&mut self, peer: PeerId, node: NodeId) {
        if self.nodes.len() <= peer.index() {
            self.nodes.resize(peer.index() + 1, None);
        }
        self.nodes[peer.index()] = Some(node);
        self.peer_ids.insert(node, peer);
    }

    fn unmap(&mut self, peer: PeerId) -> Option<NodeId> {
        let node = self.nodes.get_mut(peer.index())?.take()?;
        self.peer_ids.remove(&node);
        self.up.remove(&node);
        Some(node)
    }

    fn set_link(&mut self, peer: PeerId, up: bool) {
        if let Some(node) = self.node(peer) {
            self.up.insert(node, up);
            self.changed = true;
        }
    }

    /// A read-only node linked: it becomes a Raft observer (the leader replicates to it), up
    /// to [`READ_ONLY_NODES_MAX`] (strangers, observed too, do not count).
    fn read_only_joined(&mut self, peer: PeerId, name: &str, raft: &mut RaftNode, now: Instant) {
        let read_only = raft.observers().iter().filter(|&&id| is_read_only(id));
        if read_only.count() >= READ_ONLY_NODES_MAX {
            tracing::warn!(node = %name, max = READ_ONLY_NODES_MAX, "too many read-only nodes, ignored");
            return;
        }
        let Some(id) = self.addresses.insert_read_only(name) else {
            tracing::warn!(node = %name, "read-only node with a bad or duplicate name ignored");
            return;
        };
        tracing::info!(node = %name, "read-only node linked");
        self.map(peer, id);
        raft.add_observer(id, now);
        self.changed = true;
    }

    fn read_only_left(&mut self, peer: PeerId, raft: &mut RaftNode) {
        if let Some(id) = self.unmap(peer) {
            raft.remove_observer(id);
            self.addresses.remove_read_only(id);
            self.changed = true;
        }
    }

    /// A stranger linked: a voter of the cluster outside the memberships followed. Its frames
    /// go to Raft under the id its address gives, which accepts a leader's appends and
    /// snapshots from it and ignores its votes, and, when strangers are observed, it becomes a
    /// Raft observer: as leader, this node replicates the log to it, as to a read-only node,
    /// until the membership names it or it leaves. One whose id a known node holds (a collision) is unlinked.
    fn stranger_joined(&mut self, peer: PeerId, name: &str, raft: &mut RaftNode, now: Instant) {
        let id = voter_id(name);
        if id == self.me || self.addresses.by_id.contains_key(&id) || self.strangers.contains(&id) {
            tracing::warn!(node = %name, "a stranger whose id a known node holds: unlinked");
            self.bad_frames += 1;
            self.transport.disconnect(peer);
            return;
        }
        tracing::info!(
            node = %name,
            "a node outside this node's membership linked: Raft judges its messages"
        );
        self.map(peer, id);
        self.strangers.insert(id);
        if self.observe {
            raft.add_observer(id, now);
        }
    }

    /// A stranger's link is gone: it is observed no more (Raft keeps the progress of one that
    /// became a member meanwhile).
    fn stranger_left(&mut self, peer: PeerId, raft: &mut RaftNode) {
        if let Some(id) = self.unmap(peer)
            && self.strangers.remove(&id)
        {
            raft.remove_observer(id);
        }
    }

    fn build_peers(&self) -> Peers {
        let nodes = self
            .addresses
            .by_id
            .iter()
            .map(|(&id, address)| {
                let link = PeerLink {
                    address: address.clone(),
                    connected: self.up.get(&id).copied().unwrap_or(false),
                };
                (id, link)
            })
            .collect();
        Peers { me: self.me, nodes }
    }
}
