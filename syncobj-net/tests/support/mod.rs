//! What the transport's tests share: free loopback addresses, settings, and a node that checks
//! every event of its transport against the contract as it comes. Each test crate uses part of
//! it.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use syncobj_net::handshake::{ClusterId, Peer};
use syncobj_net::resolve::ResolverSettings;
use syncobj_net::secure::ClusterKey;
use syncobj_net::tcp::{ConnectionLimits, Keepalive, TcpSettings, TcpTransport};
use syncobj_net::{BindFailure, PeerId, Transport, TransportEvent};

/// The cluster every test node belongs to.
pub(crate) const CLUSTER: ClusterId = ClusterId([7; 16]);

/// A loopback address with a port nobody listens on right now.
pub(crate) fn free_address() -> String {
    let listener = StdListener::bind("127.0.0.1:0").expect("loopback has free ports");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    address.to_string()
}

/// The settings of a voter at `me`, or of read-only node 0x5eed without: short timeouts,
/// default limits.
pub(crate) fn settings(me: Option<&str>, voters: &[String]) -> TcpSettings {
    TcpSettings {
        node: me.map_or(Peer::ReadOnly(0x5eed), |me| Peer::Voter(me.to_owned())),
        bind_address: None,
        voters: voters.to_vec(),
        resolver: ResolverSettings::default(),
        cluster: CLUSTER,
        key: None,
        frame_size_max: 1024 * 1024,
        send_queue_bytes_max: 4 * 1024 * 1024,
        connection_timeout: Duration::from_millis(600),
        connection_retry_time: Duration::from_millis(50),
        accept_read_only: true,
        admin_from_anywhere: false,
        limits: ConnectionLimits::default(),
        send_buffer_size: Some(256 * 1024),
        recv_buffer_size: Some(256 * 1024),
        bind_retry_time: Duration::from_millis(50),
        max_bind_retries: 0,
        tcp_keepalive: Some(Keepalive {
            idle: Duration::from_secs(16),
            interval: Duration::from_secs(3),
            count: 5,
        }),
        poll_frames_max: 4096,
        poll_spin: syncobj_net::tcp::POLL_SPIN_DEFAULT,
        poll_bytes_max: 8 * 1024 * 1024,
    }
}

/// A transport and what its events said so far, each event checked against the contract.
pub(crate) struct Node {
    pub(crate) transport: TcpTransport,
    /// Peers whose link is up.
    pub(crate) up: BTreeSet<PeerId>,
    /// Read-only nodes linked, by id.
    pub(crate) read_only: BTreeMap<PeerId, String>,
    /// Strangers linked and not made peers since, by id.
    pub(crate) strangers: BTreeMap<PeerId, String>,
    /// Frames received, in order.
    pub(crate) frames: Vec<(PeerId, Bytes)>,
    /// Every event, in order.
    pub(crate) log: Vec<TransportEvent>,
    pub(crate) bound: Option<Result<(), BindFailure>>,
    /// Frames and bytes (headers included) of each poll that returned frames.
    pub(crate) per_poll: Vec<(usize, usize)>,
}

impl Node {
    pub(crate) fn new(settings: TcpSettings) -> Node {
        Node {
            transport: TcpTransport::bind(settings).expect("the poller starts"),
            up: BTreeSet::new(),
            read_only: BTreeMap::new(),
            strangers: BTreeMap::new(),
            frames: Vec::new(),
            log: Vec::new(),
            bound: None,
            per_poll: Vec::new(),
        }
    }

    pub(crate) fn poll(&mut self) {
        let mut events = Vec::new();
        self.transport.poll(Duration::from_millis(5), &mut events);
        let frames: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                TransportEvent::Frame { frame, .. } => Some(frame.len() + 4),
                _ => None,
            })
            .collect();
        if !frames.is_empty() {
            self.per_poll.push((frames.len(), frames.iter().sum()));
        }
        for event in events {
            self.record(event);
        }
    }

    /// Checks `event` against the contract and remembers what it says.
    pub(crate) fn record(&mut self, event: TransportEvent) {
        if let Some(
            TransportEvent::ReadOnlyJoined { peer, .. }
            | TransportEvent::StrangerJoined { peer, .. },
        ) = self.log.last()
        {
            assert_eq!(
                event,
                TransportEvent::LinkUp(*peer),
                "LinkUp follows a join"
            );
        }
        match &event {
            TransportEvent::Frame { from, frame } => {
                assert!(self.up.contains(from), "a frame from {from} without a link");
                self.frames.push((*from, frame.clone()));
            }
            TransportEvent::LinkUp(peer) => assert!(self.up.insert(*peer), "{peer} up twice"),
            TransportEvent::LinkDown(peer) => {
                assert!(self.up.remove(peer), "{peer} down without being up");
            }
            TransportEvent::ReadOnlyJoined { peer, name } => {
                assert!(!self.up.contains(peer), "{peer} joined while up");
                let known = self.read_only.insert(*peer, name.clone());
                assert_eq!(known, None, "{peer} joined twice");
            }
            TransportEvent::ReadOnlyLeft(peer) => {
                assert!(!self.up.contains(peer), "{peer} left before its LinkDown");
                assert!(
                    self.read_only.remove(peer).is_some(),
                    "{peer} left unjoined"
                );
            }
            TransportEvent::StrangerJoined { peer, name } => {
                assert!(!self.up.contains(peer), "{peer} joined while up");
                let known = self.strangers.insert(*peer, name.clone());
                assert_eq!(known, None, "{peer} joined twice");
            }
            TransportEvent::StrangerLeft(peer) => {
                assert!(!self.up.contains(peer), "{peer} left before its LinkDown");
                assert!(
                    self.strangers.remove(peer).is_some(),
                    "{peer} left unjoined, or after add_peer made it a peer"
                );
            }
            TransportEvent::Bound(bound) => {
                let earlier = self.bound.replace(bound.clone());
                assert_eq!(earlier, None, "Bound comes once");
            }
            TransportEvent::BindRetrying(_) => {
                assert_eq!(self.bound, None, "a retry after Bound");
            }
            TransportEvent::AdminRequest { .. } => {}
        }
        self.log.push(event);
    }

    /// The id of `address`, made a peer (a stranger linked under it becomes one).
    pub(crate) fn id(&mut self, address: &str) -> PeerId {
        let id = self.transport.add_peer(address);
        self.strangers.remove(&id);
        id
    }

    pub(crate) fn linked_to(&mut self, address: &str) -> bool {
        let id = self.id(address);
        self.up.contains(&id)
    }

    pub(crate) fn payloads(&self) -> Vec<&[u8]> {
        self.frames.iter().map(|(_, f)| &f[..]).collect()
    }
}

/// Polls every node until `done` holds; fails after 10 s.
pub(crate) fn poll_until(nodes: &mut [&mut Node], mut done: impl FnMut(&mut [&mut Node]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(nodes) {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        for node in nodes.iter_mut() {
            node.poll();
        }
    }
}

/// Whether the two voters' nodes are linked to each other.
pub(crate) fn linked(nodes: &mut [&mut Node], voters: &[String]) -> bool {
    nodes[0].linked_to(&voters[1]) && nodes[1].linked_to(&voters[0])
}

/// `settings` with the key of `password`.
pub(crate) fn with_password(settings: TcpSettings, password: &str) -> TcpSettings {
    TcpSettings {
        key: Some(ClusterKey::derive(password).expect("a non-empty password")),
        ..settings
    }
}
