//! An in-process network: nodes in one process exchange frames through channels.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use syncobj_net::{PeerId, STRANGER_LINKS_MAX, Transport, TransportEvent, Wake, WireStats};

use super::link_faults::{Counters, Delay, Fate, FaultCounters, FaultError, LinkFaults};

/// The most frames waiting in one node's inbox; more are dropped, as a full socket would.
const INBOX_FRAMES_MAX: usize = 65_536;

/// The most frames one `poll` hands out.
const POLL_FRAMES_MAX: usize = 4_096;

/// The most delayed frames one node holds before they are due; more are dropped and counted
/// ([`FaultCounters::delay_overflow`]).
pub const DELAYED_FRAMES_MAX: usize = 65_536;

/// Links between nodes of one process, with the faults a test puts between them.
///
/// Each link is first-in first-out and loses nothing while both ends are connected and no
/// fault is set. Two nodes are linked while both have an endpoint and no fault separates them;
/// each endpoint reports its links going up and down as [`TransportEvent`]s at its next poll.
///
/// # Faults
///
/// - [`isolate`](Self::isolate) cuts one node off; [`partition`](Self::partition) splits the
///   nodes into groups. Either way the links across go down at once on both sides and every
///   frame sent across is dropped, as when a node learns its TCP connection broke.
/// - [`block`](Self::block) cuts one direction only: frames from `a` to `b` vanish, frames
///   from `b` to `a` flow, and both ends keep their link up, as a TCP connection whose packets
///   one way are black-holed stays established until the protocol above times out.
/// - [`heal`](Self::heal) ends all three.
/// - [`set_loss`](Self::set_loss) drops each frame with a probability, and
///   [`set_delay`](Self::set_delay) holds each frame a fixed time plus a random jitter,
///   keeping each link in order unless asked to reorder. Both draw per link from the seed
///   given to [`with_seed`](Self::with_seed), so a run replays link by link.
/// - [`flap`](Self::flap) applies a cut and lifts it again and again on a schedule, from a
///   thread the returned [`Flapping`](super::Flapping) owns.
///
/// A frame still delayed when a cut comes between its ends is dropped when due. What the
/// faults did is counted in [`fault_counters`](Self::fault_counters).
///
/// ```
/// use std::time::Duration;
/// use syncobj_core::driver::{Delay, MemoryNetwork};
///
/// let network = MemoryNetwork::with_seed(7);
/// network.partition([vec!["a", "b"], vec!["c"]])?; // c alone
/// network.block("a", "b"); // and a cannot reach b, though b reaches a
/// network.heal(); // everyone reaches everyone again
/// network.set_loss(0.1)?;
/// network.set_delay(Delay { fixed: Duration::from_millis(2), ..Delay::default() })?;
/// # Ok::<(), syncobj_core::driver::FaultError>(())
/// ```
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
    counters: Counters,
}

#[derive(Debug, Default)]
struct Hub {
    endpoints: BTreeMap<String, Endpoint>,
    faults: LinkFaults,
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
    /// A frame, with its sender's address (shared, not copied), and when it is due if it
    /// was delayed.
    Frame {
        from: Arc<str>,
        frame: Bytes,
        due: Option<Instant>,
    },
    Wake,
}

impl MemoryNetwork {
    /// An empty network, without faults; its random draws (loss, jitter) start from seed 0.
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// An empty network whose random draws (loss, jitter) come from `seed`: each link draws
    /// the same sequence in every run with the same seed.
    pub fn with_seed(seed: u64) -> MemoryNetwork {
        let network = MemoryNetwork::default();
        network.shared.hub.lock().faults = LinkFaults::new(seed);
        network
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
            held: BinaryHeap::new(),
            sequence: 0,
        }
    }

    /// Cuts `address` off from every other node until [`reconnect`](Self::reconnect) (or
    /// [`heal`](Self::heal)).
    pub fn isolate(&self, address: &str) {
        self.change(|faults| faults.isolate(address, true));
    }

    /// Ends the isolation of `address`.
    pub fn reconnect(&self, address: &str) {
        self.change(|faults| faults.isolate(address, false));
    }

    /// Splits the nodes into `groups`, replacing any partition before: two nodes stay linked
    /// only if one group names both. A node named in no group (one started later included) is
    /// cut off from every other until [`heal`](Self::heal).
    ///
    /// # Errors
    /// [`FaultError::TwoGroups`] if a node is named in two groups; nothing changes then.
    pub fn partition<G, A>(&self, groups: impl IntoIterator<Item = G>) -> Result<(), FaultError>
    where
        G: IntoIterator<Item = A>,
        A: AsRef<str>,
    {
        let groups = groups
            .into_iter()
            .map(|g| g.into_iter().map(|a| a.as_ref().to_owned()).collect())
            .collect();
        let mut hub = self.shared.hub.lock();
        hub.faults.partition(groups)?;
        self.changed(&hub);
        Ok(())
    }

    /// Cuts the direction from `from` to `to` only, until [`unblock`](Self::unblock) (or
    /// [`heal`](Self::heal)): `from`'s frames to `to` are dropped (sending them still
    /// succeeds, as on a black-holed connection), `to`'s frames to `from` flow, and both keep
    /// their link up.
    pub fn block(&self, from: &str, to: &str) {
        self.change(|faults| faults.block(from, to, true));
    }

    /// Lifts the one-way cut from `from` to `to`.
    pub fn unblock(&self, from: &str, to: &str) {
        self.change(|faults| faults.block(from, to, false));
    }

    /// Ends every partition, one-way cut and isolation (loss and delay stay as set).
    pub fn heal(&self) {
        self.change(LinkFaults::heal);
    }

    /// Drops each frame with `probability` (0.0, the default, drops none; 1.0 drops all), drawn
    /// per link from the network's seed. Sending a lost frame still succeeds, as on a real
    /// network.
    ///
    /// # Errors
    /// [`FaultError::Probability`] outside 0.0 ..= 1.0.
    pub fn set_loss(&self, probability: f64) -> Result<(), FaultError> {
        self.shared.hub.lock().faults.set_loss(probability)
    }

    /// Holds every frame sent from now on for `delay` (the default, zero, delivers at once).
    /// Each receiver holds at most [`DELAYED_FRAMES_MAX`] delayed frames; more are dropped and
    /// counted.
    ///
    /// # Errors
    /// [`FaultError::DelayTooLong`] above [`DELAY_MAX`](super::DELAY_MAX).
    pub fn set_delay(&self, delay: Delay) -> Result<(), FaultError> {
        self.shared.hub.lock().faults.set_delay(delay)
    }

    /// What the faults did to frames so far.
    pub fn fault_counters(&self) -> FaultCounters {
        self.shared.counters.snapshot()
    }

    /// Changes the faults that decide who is linked, and tells every endpoint.
    pub(super) fn change(&self, change: impl FnOnce(&mut LinkFaults)) {
        let mut hub = self.shared.hub.lock();
        change(&mut hub.faults);
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

    /// Sends `frame` from `from` to `to`; `false` if their link is down (a frame lost or cut
    /// one way counts as sent).
    fn deliver(&self, from: &Arc<str>, to: &str, frame: Bytes) -> bool {
        let mut hub = self.shared.hub.lock();
        if !hub.faults.linked(from, to) {
            self.shared.counters.cut();
            return false;
        }
        let due = match hub.faults.fate(from, to, &self.shared.counters) {
            Fate::Cut | Fate::Lost => return true,
            Fate::Deliver(due) => due,
        };
        let Some(endpoint) = hub.endpoints.get(to) else {
            return false;
        };
        let item = Item::Frame {
            from: Arc::clone(from),
            frame,
            due,
        };
        endpoint.inbox.try_send(item).is_ok()
    }

    /// Whether a frame from `from` may reach `to` now (no cut between them).
    fn passes(&self, from: &str, to: &str) -> bool {
        self.shared.hub.lock().faults.passes(from, to)
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
/// links to each while both ends exist and no cut separates them, and hands out at most 4,096
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
    /// Delayed frames not yet due, earliest first (ties in arrival order).
    held: BinaryHeap<Reverse<Held>>,
    /// Numbers the frames held, in arrival order.
    sequence: u64,
}

/// A delayed frame, ordered by when it is due, then by arrival.
#[derive(Debug)]
struct Held {
    due: Instant,
    sequence: u64,
    from: Arc<str>,
    frame: Bytes,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Held) -> std::cmp::Ordering {
        (self.due, self.sequence).cmp(&(other.due, other.sequence))
    }
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
        for (index, peer) in self.peers.iter_mut().enumerate() {
            let link = if peer.removed {
                None
            } else if current && hub.faults.linked(me, &peer.address) {
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
            let linked = hub.faults.linked(from, &self.address);
            hub.endpoints
                .get(from)
                .filter(|_| linked)
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

impl MemoryTransport {
    /// Takes a frame from the inbox: holds it if delayed, else hands it out after the held
    /// frames already due (which were sent before it).
    fn take(
        &mut self,
        from: Arc<str>,
        frame: Bytes,
        due: Option<Instant>,
        events: &mut Vec<TransportEvent>,
    ) {
        match due {
            Some(_) if self.held.len() >= DELAYED_FRAMES_MAX => {
                self.network.shared.counters.delay_overflow();
            }
            Some(due) => {
                self.sequence += 1;
                let sequence = self.sequence;
                self.held.push(Reverse(Held {
                    due,
                    sequence,
                    from,
                    frame,
                }));
            }
            None => {
                self.release_due(events);
                self.receive(&from, frame, events);
            }
        }
    }

    /// Hands out the held frames that are due, earliest first, at most 4,096 at a time (the
    /// rest are due at once at the next poll); drops those a cut now stands in the way of.
    fn release_due(&mut self, events: &mut Vec<TransportEvent>) {
        if self.held.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut released = 0;
        while released < POLL_FRAMES_MAX && self.held.peek().is_some_and(|Reverse(h)| h.due <= now)
        {
            released += 1;
            let Some(Reverse(held)) = self.held.pop() else {
                break;
            };
            if self.network.passes(&held.from, &self.address) {
                self.receive(&held.from, held.frame, events);
            } else {
                self.network.shared.counters.cut();
            }
        }
    }

    /// How long a poll may wait: `timeout`, or less if a held frame falls due sooner.
    fn wait_for(&self, timeout: Duration) -> Duration {
        self.held.peek().map_or(timeout, |Reverse(h)| {
            timeout.min(h.due.saturating_duration_since(Instant::now()))
        })
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
        self.release_due(events);
        let wait = self.wait_for(timeout);
        let mut next = if wait.is_zero() || events.len() > start {
            self.inbox.try_recv().ok()
        } else {
            self.inbox.recv_timeout(wait).ok()
        };
        let mut taken = 0;
        while let Some(item) = next {
            if let Item::Frame { from, frame, due } = item {
                self.take(from, frame, due, events);
            }
            taken += 1;
            if taken == POLL_FRAMES_MAX {
                break;
            }
            next = self.inbox.try_recv().ok();
        }
        self.release_due(events);
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
    use super::super::{Cut, Schedule};
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

    /// Two linked endpoints "a" and "b", each with the other's id, past their first events.
    fn pair(network: &MemoryNetwork) -> (MemoryTransport, PeerId, MemoryTransport, PeerId) {
        let (mut a, mut b) = (network.endpoint("a"), network.endpoint("b"));
        let (to_b, to_a) = (a.add_peer("b"), b.add_peer("a"));
        poll(&mut a);
        poll(&mut b);
        (a, to_b, b, to_a)
    }

    fn frames(events: &[TransportEvent]) -> Vec<Bytes> {
        events
            .iter()
            .filter_map(|e| match e {
                TransportEvent::Frame { frame, .. } => Some(frame.clone()),
                _ => None,
            })
            .collect()
    }

    /// Polls until `count` frames came or five seconds passed.
    fn frames_within(transport: &mut MemoryTransport, count: usize) -> Vec<Bytes> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < count && Instant::now() < deadline {
            let mut events = Vec::new();
            transport.poll(Duration::from_millis(100), &mut events);
            got.extend(frames(&events));
        }
        got
    }

    #[test]
    fn a_one_way_cut_blocks_one_direction_only() {
        let network = MemoryNetwork::new();
        let (mut a, to_b, mut b, to_a) = pair(&network);
        network.block("a", "b");
        assert!(
            a.send(to_b, Bytes::from_static(b"vanishes")),
            "sent, as TCP would"
        );
        assert!(b.send(to_a, Bytes::from_static(b"flows")));
        assert_eq!(poll(&mut b), [], "the link stays up, the frame is gone");
        assert_eq!(frames(&poll(&mut a)), [Bytes::from_static(b"flows")]);
        network.unblock("a", "b");
        assert!(a.send(to_b, Bytes::from_static(b"back")));
        assert_eq!(frames(&poll(&mut b)), [Bytes::from_static(b"back")]);
        assert_eq!(network.fault_counters().cut, 1);
    }

    #[test]
    fn a_partition_takes_links_across_it_down_until_healed() {
        let network = MemoryNetwork::new();
        let (mut a, to_b, mut b, to_a) = pair(&network);
        network.partition([["a"], ["b"]]).expect("valid");
        assert_eq!(poll(&mut a), [TransportEvent::LinkDown(to_b)]);
        assert_eq!(poll(&mut b), [TransportEvent::LinkDown(to_a)]);
        assert!(!a.send(to_b, Bytes::from_static(b"cut")));
        network.heal();
        assert_eq!(poll(&mut a), [TransportEvent::LinkUp(to_b)]);
        assert!(a.send(to_b, Bytes::from_static(b"healed")));
        assert_eq!(
            poll(&mut b),
            [
                TransportEvent::LinkUp(to_a),
                TransportEvent::Frame {
                    from: to_a,
                    frame: Bytes::from_static(b"healed")
                }
            ]
        );
        assert_eq!(
            network.partition([vec!["a", "b"], vec!["b"]]),
            Err(FaultError::TwoGroups("b".into()))
        );
    }

    #[test]
    fn loss_of_one_drops_every_frame_and_zero_none() {
        let network = MemoryNetwork::with_seed(11);
        let (mut a, to_b, mut b, _) = pair(&network);
        network.set_loss(1.0).expect("valid");
        for _ in 0..100 {
            assert!(a.send(to_b, Bytes::from_static(b"x")));
        }
        assert_eq!(poll(&mut b), []);
        assert_eq!(network.fault_counters().lost, 100);
        network.set_loss(0.0).expect("valid");
        assert!(a.send(to_b, Bytes::from_static(b"y")));
        assert_eq!(frames(&poll(&mut b)).len(), 1);
        assert_eq!(network.set_loss(-0.1), Err(FaultError::Probability(-0.1)));
    }

    #[test]
    fn delay_holds_frames_and_keeps_their_order() {
        let network = MemoryNetwork::with_seed(5);
        let (mut a, to_b, mut b, _) = pair(&network);
        let long = Delay {
            fixed: Duration::from_secs(600),
            ..Delay::default()
        };
        network.set_delay(long).expect("valid");
        assert!(a.send(to_b, Bytes::from_static(b"late")));
        assert_eq!(poll(&mut b), [], "not due for ten minutes");
        let short = Delay {
            fixed: Duration::from_millis(1),
            jitter: Duration::from_millis(20),
            reorder: false,
        };
        network.set_delay(short).expect("valid");
        let sent: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i])).collect();
        for frame in &sent {
            assert!(a.send(to_b, frame.clone()));
        }
        // Sent after the ten-minute frame on the same link: in order, they wait for it.
        assert_eq!(poll(&mut b), []);
        let (mut c, to_d, mut d, _) = {
            let (mut c, mut d) = (network.endpoint("c"), network.endpoint("d"));
            let (to_d, to_c) = (c.add_peer("d"), d.add_peer("c"));
            poll(&mut c);
            poll(&mut d);
            (c, to_d, d, to_c)
        };
        for frame in &sent {
            assert!(c.send(to_d, frame.clone()));
        }
        assert_eq!(
            frames_within(&mut d, sent.len()),
            sent,
            "delivered, in order"
        );
        assert_eq!(network.fault_counters().delayed, 101);
        drop(c);
    }

    #[test]
    fn delay_reorders_frames_only_when_asked() {
        let network = MemoryNetwork::with_seed(9);
        let (mut a, to_b, mut b, _) = pair(&network);
        let shuffle = Delay {
            fixed: Duration::ZERO,
            jitter: Duration::from_millis(30),
            reorder: true,
        };
        network.set_delay(shuffle).expect("valid");
        let sent: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i])).collect();
        for frame in &sent {
            assert!(a.send(to_b, frame.clone()));
        }
        let mut got = frames_within(&mut b, sent.len());
        assert_ne!(got, sent, "some frame overtook another");
        got.sort();
        assert_eq!(got, sent, "none lost");
    }

    #[test]
    fn delayed_frames_past_the_bound_are_dropped_and_counted() {
        let network = MemoryNetwork::new();
        let (mut a, to_b, mut b, _) = pair(&network);
        let long = Delay {
            fixed: Duration::from_secs(600),
            ..Delay::default()
        };
        network.set_delay(long).expect("valid");
        let mut sent = 0;
        while sent < DELAYED_FRAMES_MAX + 10 {
            for _ in 0..POLL_FRAMES_MAX.min(DELAYED_FRAMES_MAX + 10 - sent) {
                assert!(a.send(to_b, Bytes::from_static(b"x")));
                sent += 1;
            }
            assert_eq!(poll(&mut b), []);
        }
        assert_eq!(network.fault_counters().delay_overflow, 10);
        assert_eq!(b.held.len(), DELAYED_FRAMES_MAX);
    }

    #[test]
    fn a_flapping_cut_is_lifted_when_dropped() {
        let network = MemoryNetwork::new();
        let (mut a, to_b, _b, _) = pair(&network);
        let schedule = Schedule {
            down: Duration::from_millis(5),
            up: Duration::from_millis(5),
        };
        let flapping = network
            .flap(Cut::Isolate("b".into()), schedule)
            .expect("starts");
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut downs, mut ups) = (0, 0);
        while (downs < 2 || ups < 2) && Instant::now() < deadline {
            let mut events = Vec::new();
            a.poll(Duration::from_millis(20), &mut events);
            downs += events
                .iter()
                .filter(|e| **e == TransportEvent::LinkDown(to_b))
                .count();
            ups += events
                .iter()
                .filter(|e| **e == TransportEvent::LinkUp(to_b))
                .count();
        }
        assert!(downs >= 2 && ups >= 2, "{downs} downs, {ups} ups");
        assert!(flapping.times_applied() >= 2);
        drop(flapping);
        poll(&mut a);
        assert!(a.send(to_b, Bytes::from_static(b"up")), "lifted for good");
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
