//! An in-process network: nodes in one process exchange frames through channels.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use syncobj_net::{PeerId, STRANGER_LINKS_MAX, Transport, TransportEvent, Wake, WireStats};

/// The most frames waiting in one node's inbox; more are dropped, as a full socket would.
const INBOX_FRAMES_MAX: usize = 65_536;

/// The most frames one `poll` hands out.
const POLL_FRAMES_MAX: usize = 4_096;

/// Links between nodes of one process. Each link is first-in first-out and loses nothing while
/// both ends are connected; [`isolate`](Self::isolate) cuts a node off, as a partition would.
///
/// Two nodes are linked while both have an endpoint and neither is isolated; each endpoint
/// reports its links going up and down as [`TransportEvent`]s at its next poll.
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    hub: Mutex<Hub>,
    /// Bumped on every change of who is linked to whom; endpoints compare links only when it
    /// moved since they last looked.
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct Hub {
    endpoints: BTreeMap<String, Endpoint>,
    isolated: BTreeSet<String>,
    /// Endpoints made so far: each one's number, so that a replaced endpoint is told apart.
    incarnations: u64,
}

#[derive(Debug)]
struct Endpoint {
    inbox: Sender<Item>,
    incarnation: u64,
}

#[derive(Debug)]
enum Item {
    /// A frame, with its sender's address (shared, not copied).
    Frame {
        from: Arc<str>,
        frame: Bytes,
    },
    Wake,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// The transport of the node at `address`. A second endpoint for one address replaces the
    /// first, as a restarted process would: the first one's links go down, and its peers see
    /// their link to `address` go down and up.
    pub fn endpoint(&self, address: &str) -> MemoryTransport {
        let (sender, inbox) = crossbeam_channel::bounded(INBOX_FRAMES_MAX);
        let mut hub = self.shared.hub.lock();
        hub.incarnations += 1;
        let incarnation = hub.incarnations;
        let endpoint = Endpoint {
            inbox: sender.clone(),
            incarnation,
        };
        hub.endpoints.insert(address.to_owned(), endpoint);
        self.changed(&hub);
        MemoryTransport {
            address: Arc::from(address),
            incarnation,
            network: self.clone(),
            inbox,
            own: sender,
            peers: Vec::new(),
            by_address: BTreeMap::new(),
            seen: None,
            bound_reported: false,
            stats: Arc::default(),
            strangers: false,
            free: Vec::new(),
        }
    }

    /// Cuts `address` off from every other node until [`reconnect`](Self::reconnect).
    pub fn isolate(&self, address: &str) {
        let mut hub = self.shared.hub.lock();
        hub.isolated.insert(address.to_owned());
        self.changed(&hub);
    }

    /// Ends the isolation of `address`.
    pub fn reconnect(&self, address: &str) {
        let mut hub = self.shared.hub.lock();
        hub.isolated.remove(address);
        self.changed(&hub);
    }

    /// Links changed: every endpoint compares its links at its next poll, which returns early.
    fn changed(&self, hub: &Hub) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        for endpoint in hub.endpoints.values() {
            // A full inbox wakes its poller anyway.
            let _ = endpoint.inbox.try_send(Item::Wake);
        }
    }

    fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    fn deliver(&self, from: &Arc<str>, to: &str, frame: Bytes) -> bool {
        let hub = self.shared.hub.lock();
        if hub.isolated.contains(&**from) || hub.isolated.contains(to) {
            return false;
        }
        let Some(endpoint) = hub.endpoints.get(to) else {
            return false;
        };
        let item = Item::Frame {
            from: Arc::clone(from),
            frame,
        };
        endpoint.inbox.try_send(item).is_ok()
    }

    /// Removes endpoint `incarnation` of `address`, unless it was replaced already.
    fn leave(&self, address: &str, incarnation: u64) {
        let mut hub = self.shared.hub.lock();
        if hub
            .endpoints
            .get(address)
            .is_some_and(|e| e.incarnation == incarnation)
        {
            hub.endpoints.remove(address);
            self.changed(&hub);
        }
    }
}

/// One node's end of a [`MemoryNetwork`]. It numbers its peers in the order they are added,
/// links to each while both ends exist and neither is isolated, and hands out at most 4,096
/// frames per poll. A frame from a node that is not its peer is dropped and counted in
/// [`TransportCounters::bad_frames`](syncobj_net::TransportCounters::bad_frames), unless
/// strangers are admitted ([`Transport::admit_strangers`]): then its sender links as a stranger
/// (at most [`STRANGER_LINKS_MAX`] at once; past that each of their frames is dropped and
/// counted in `strangers_refused`). A frame from a peer whose link it sees down, or that it
/// cannot send, is counted in `dropped_frames`.
#[derive(Debug)]
pub struct MemoryTransport {
    address: Arc<str>,
    /// This endpoint's number: a newer endpoint for the same address replaces it.
    incarnation: u64,
    network: MemoryNetwork,
    inbox: Receiver<Item>,
    own: Sender<Item>,
    /// By [`PeerId`].
    peers: Vec<MemoryPeer>,
    by_address: BTreeMap<String, PeerId>,
    /// The network's generation when links were last compared; `None` to compare at the next
    /// poll.
    seen: Option<u64>,
    bound_reported: bool,
    stats: Arc<WireStats>,
    /// Whether strangers are admitted.
    strangers: bool,
    /// The ids of strangers gone, handed out again first.
    free: Vec<PeerId>,
}

#[derive(Debug)]
struct MemoryPeer {
    address: String,
    /// While linked, the incarnation of the peer's endpoint.
    link: Option<u64>,
    /// The peer left the cluster ([`Transport::remove_peer`]), or was a stranger whose link
    /// went down: never linked again.
    removed: bool,
    /// A node that is not a peer, linked until its link goes down or `add_peer` names it.
    stranger: bool,
}

impl MemoryTransport {
    /// Reports every link that went up or down since the last look, if anything changed.
    fn refresh_links(&mut self, events: &mut Vec<TransportEvent>) {
        let generation = self.network.generation();
        if self.seen == Some(generation) {
            return;
        }
        self.seen = Some(generation);
        let hub = self.network.shared.hub.lock();
        let me = &*self.address;
        let current = hub
            .endpoints
            .get(me)
            .is_some_and(|e| e.incarnation == self.incarnation);
        let reachable = current && !hub.isolated.contains(me);
        for (index, peer) in self.peers.iter_mut().enumerate() {
            let link = if peer.removed {
                None
            } else if reachable && !hub.isolated.contains(&peer.address) {
                hub.endpoints.get(&peer.address).map(|e| e.incarnation)
            } else {
                None
            };
            if link == peer.link {
                continue;
            }
            let id = PeerId(index as u32);
            if peer.link.is_some() {
                events.push(TransportEvent::LinkDown(id));
            }
            if link.is_some() {
                events.push(TransportEvent::LinkUp(id));
            }
            peer.link = link;
            if peer.stranger && link.is_none() {
                // A stranger lives as long as its link.
                events.push(TransportEvent::StrangerLeft(id));
                peer.removed = true;
                self.by_address.remove(&peer.address);
                self.free.push(id);
            }
        }
    }

    /// A frame from `from`, which is no peer: links it as a stranger if they are admitted and
    /// it has room, and returns its id.
    fn stranger(&mut self, from: &str, events: &mut Vec<TransportEvent>) -> Option<PeerId> {
        if !self.strangers {
            WireStats::bump(&self.stats.bad_frames);
            tracing::debug!(%from, "frame from a node that is not a peer dropped");
            return None;
        }
        let linked = self.peers.iter().filter(|p| p.stranger && !p.removed);
        if linked.count() >= STRANGER_LINKS_MAX {
            WireStats::bump(&self.stats.strangers_refused);
            tracing::debug!(%from, "frame from a stranger over the cap dropped");
            return None;
        }
        let link = {
            let hub = self.network.shared.hub.lock();
            let isolated = hub.isolated.contains(from) || hub.isolated.contains(&*self.address);
            hub.endpoints
                .get(from)
                .filter(|_| !isolated)
                .map(|e| e.incarnation)
        };
        // Isolated since it sent: its frame is lost, as on a link that went down.
        let Some(link) = link else {
            WireStats::bump(&self.stats.dropped_frames);
            return None;
        };
        let peer = MemoryPeer {
            address: from.to_owned(),
            link: Some(link),
            removed: false,
            stranger: true,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.peers[id.index()] = peer;
                id
            }
            None => {
                self.peers.push(peer);
                PeerId(u32::try_from(self.peers.len() - 1).unwrap_or(u32::MAX))
            }
        };
        self.by_address.insert(from.to_owned(), id);
        WireStats::bump(&self.stats.strangers_linked);
        tracing::info!(%from, "a node of the cluster that is not a peer linked");
        events.push(TransportEvent::StrangerJoined {
            peer: id,
            name: from.to_owned(),
        });
        events.push(TransportEvent::LinkUp(id));
        Some(id)
    }

    /// A frame from `from`: handed out if it is a linked peer, else dropped and counted.
    fn receive(&mut self, from: &str, frame: Bytes, events: &mut Vec<TransportEvent>) {
        let known = self.by_address.get(from).copied();
        let Some(id) = known.or_else(|| self.stranger(from, events)) else {
            return;
        };
        if self.peers[id.index()].link.is_none() {
            // It may have linked since the last look.
            self.refresh_links(events);
        }
        if self.peers[id.index()].link.is_some() {
            events.push(TransportEvent::Frame { from: id, frame });
        } else {
            WireStats::bump(&self.stats.dropped_frames);
        }
    }
}

impl Transport for MemoryTransport {
    /// Numbers a new address after the others; a stranger's address makes it a peer, its id
    /// and link kept.
    fn add_peer(&mut self, address: &str) -> PeerId {
        if let Some(&id) = self.by_address.get(address) {
            self.peers[id.index()].stranger = false;
            return id;
        }
        let id = PeerId(u32::try_from(self.peers.len()).unwrap_or(u32::MAX));
        self.peers.push(MemoryPeer {
            address: address.to_owned(),
            link: None,
            removed: false,
            stranger: false,
        });
        self.by_address.insert(address.to_owned(), id);
        self.seen = None;
        id
    }

    /// Unlinks the peer for good (its link goes down at the next poll); its frames count as
    /// strangers' from then on. A later `add_peer` of its address numbers it anew.
    fn remove_peer(&mut self, peer: PeerId) {
        let Some(slot) = self.peers.get_mut(peer.index()) else {
            return;
        };
        if !slot.removed {
            slot.removed = true;
            self.by_address.remove(&slot.address);
            self.seen = None;
        }
    }

    fn send(&mut self, to: PeerId, frame: Bytes) -> bool {
        let sent = self
            .peers
            .get(to.index())
            .filter(|peer| !peer.removed)
            .is_some_and(|peer| self.network.deliver(&self.address, &peer.address, frame));
        if !sent {
            WireStats::bump(&self.stats.dropped_frames);
        }
        sent
    }

    /// Reports `Bound` at the first poll, then link changes, then at most 4,096 frames, then
    /// the link changes that happened meanwhile. Waits only if it had nothing to report.
    fn poll(&mut self, timeout: Duration, events: &mut Vec<TransportEvent>) {
        let start = events.len();
        if !self.bound_reported {
            self.bound_reported = true;
            events.push(TransportEvent::Bound(Ok(())));
        }
        self.refresh_links(events);
        let mut next = if timeout.is_zero() || events.len() > start {
            self.inbox.try_recv().ok()
        } else {
            self.inbox.recv_timeout(timeout).ok()
        };
        let mut taken = 0;
        while let Some(item) = next {
            if let Item::Frame { from, frame } = item {
                self.receive(&from, frame, events);
            }
            taken += 1;
            if taken == POLL_FRAMES_MAX {
                break;
            }
            next = self.inbox.try_recv().ok();
        }
        self.refresh_links(events);
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(MemoryWaker {
            own: self.own.clone(),
        })
    }

    fn counters(&self) -> Arc<WireStats> {
        Arc::clone(&self.stats)
    }

    fn admit_strangers(&mut self) {
        self.strangers = true;
    }
}

impl Drop for MemoryTransport {
    /// The node is gone: its peers see their links to it go down.
    fn drop(&mut self) {
        self.network.leave(&self.address, self.incarnation);
    }
}

struct MemoryWaker {
    own: Sender<Item>,
}

impl Wake for MemoryWaker {
    fn wake(&self) {
        // A full inbox wakes the poller anyway.
        let _ = self.own.try_send(Item::Wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(transport: &mut MemoryTransport) -> Vec<TransportEvent> {
        let mut events = Vec::new();
        transport.poll(Duration::ZERO, &mut events);
        events
    }

    #[test]
    fn links_follow_endpoints_and_isolation() {
        let network = MemoryNetwork::new();
        let mut a = network.endpoint("a");
        let b_id = a.add_peer("b");
        assert_eq!(a.add_peer("b"), b_id, "idempotent");
        let c_id = a.add_peer("c");
        assert_eq!(poll(&mut a), [TransportEvent::Bound(Ok(()))]);
        let mut b = network.endpoint("b");
        let a_id = b.add_peer("a");
        assert_eq!(poll(&mut a), [TransportEvent::LinkUp(b_id)]);
        assert!(b.send(a_id, Bytes::from_static(b"hi")));
        assert_eq!(
            poll(&mut a),
            [TransportEvent::Frame {
                from: b_id,
                frame: Bytes::from_static(b"hi")
            }]
        );
        network.isolate("b");
        assert!(!b.send(a_id, Bytes::from_static(b"lost")));
        assert_eq!(poll(&mut a), [TransportEvent::LinkDown(b_id)]);
        network.reconnect("b");
        assert_eq!(poll(&mut a), [TransportEvent::LinkUp(b_id)]);
        assert_eq!(
            poll(&mut b),
            [TransportEvent::Bound(Ok(())), TransportEvent::LinkUp(a_id)]
        );
        drop(b);
        assert_eq!(poll(&mut a), [TransportEvent::LinkDown(b_id)]);
        let _c = network.endpoint("c");
        assert_eq!(poll(&mut a), [TransportEvent::LinkUp(c_id)]);
        assert_eq!(poll(&mut a), []);
        assert_eq!(a.counters().snapshot().dropped_frames, 0);
    }

    #[test]
    fn strangers_are_counted_and_polls_are_capped() {
        let network = MemoryNetwork::new();
        let mut a = network.endpoint("a");
        let mut b = network.endpoint("b");
        let mut stranger = network.endpoint("z");
        let to_a = b.add_peer("a");
        a.add_peer("b");
        let stranger_to_a = stranger.add_peer("a");
        assert!(stranger.send(stranger_to_a, Bytes::from_static(b"who")));
        for _ in 0..POLL_FRAMES_MAX + 10 {
            assert!(b.send(to_a, Bytes::from_static(b"x")));
        }
        let frames = |events: &[TransportEvent]| {
            events
                .iter()
                .filter(|e| matches!(e, TransportEvent::Frame { .. }))
                .count()
        };
        let first = poll(&mut a);
        assert!(frames(&first) < POLL_FRAMES_MAX, "{}", frames(&first));
        let second = poll(&mut a);
        assert_eq!(frames(&first) + frames(&second), POLL_FRAMES_MAX + 10);
        assert_eq!(a.counters().snapshot().bad_frames, 1);
    }

    #[test]
    fn strangers_link_when_admitted_up_to_the_cap() {
        let network = MemoryNetwork::new();
        let mut a = network.endpoint("a");
        assert_eq!(poll(&mut a), [TransportEvent::Bound(Ok(()))]);
        let mut others: Vec<MemoryTransport> = (0..=STRANGER_LINKS_MAX)
            .map(|i| network.endpoint(&format!("s{i}")))
            .collect();
        let hi = Bytes::from_static(b"hi");
        let send_all = |others: &mut Vec<MemoryTransport>| {
            for other in others.iter_mut() {
                let to_a = other.add_peer("a");
                poll(other);
                assert!(other.send(to_a, hi.clone()));
            }
        };
        send_all(&mut others);
        let events = poll(&mut a);
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(
            a.counters().snapshot().bad_frames,
            STRANGER_LINKS_MAX as u64 + 1
        );
        a.admit_strangers();
        send_all(&mut others);
        let events = poll(&mut a);
        let first = PeerId(0);
        assert_eq!(
            events[..3],
            [
                TransportEvent::StrangerJoined {
                    peer: first,
                    name: "s0".into()
                },
                TransportEvent::LinkUp(first),
                TransportEvent::Frame {
                    from: first,
                    frame: hi.clone()
                },
            ]
        );
        let stats = a.counters().snapshot();
        assert_eq!(stats.strangers_linked, STRANGER_LINKS_MAX as u64);
        assert_eq!(stats.strangers_refused, 1, "one over the cap");
        assert_eq!(a.add_peer("s0"), first, "a peer now, under the same id");
        drop(others.remove(1));
        drop(others.remove(0));
        assert_eq!(
            poll(&mut a),
            [
                TransportEvent::LinkDown(first),
                TransportEvent::LinkDown(PeerId(1)),
                TransportEvent::StrangerLeft(PeerId(1)),
            ],
            "a stranger made a peer does not leave"
        );
        send_all(&mut others);
        let events = poll(&mut a);
        assert!(
            events.contains(&TransportEvent::StrangerJoined {
                peer: PeerId(1),
                name: format!("s{STRANGER_LINKS_MAX}")
            }),
            "the freed id is handed out again: {events:?}"
        );
    }
}
