//! The network layer of `syncobj`.
//!
//! It moves opaque frames between peers and knows nothing of Raft. [`Transport`] is what the
//! driver polls: it numbers peers with [`PeerId`]s and reports frames, links going up and down,
//! read-only nodes and the bind as [`TransportEvent`]s, a bounded amount per poll.
//! [`tcp::TcpTransport`] implements it over mio, with framing ([`frame`]), a handshake
//! ([`handshake`]) and, when the cluster has a password, encryption ([`secure`]);
//! `syncobj-core` provides an in-memory implementation.

#![deny(missing_docs)]

pub mod admin;
pub mod frame;
pub mod handshake;
pub mod resolve;
pub mod secure;
pub mod tcp;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

/// How transports name a connected read-only node: this prefix, then its number in hexadecimal.
pub const READ_ONLY_PREFIX: &str = "readonly:";

/// The most strangers a transport links at once ([`Transport::admit_strangers`]): nodes of the
/// same cluster that are not its peers. One more is refused as busy and counted in
/// `strangers_refused`; it may try again later.
pub const STRANGER_LINKS_MAX: usize = 4;

/// A peer's number on this node's transport: dense, small, assigned by
/// [`Transport::add_peer`] (the same address always gets the same id) or, for read-only nodes,
/// when one links ([`TransportEvent::ReadOnlyJoined`]), and for strangers, when one links
/// ([`TransportEvent::StrangerJoined`]).
///
/// Ids are local to one transport: two nodes may number the same peer differently. A
/// read-only node's or a stranger's id may be given to another after
/// [`TransportEvent::ReadOnlyLeft`] or [`TransportEvent::StrangerLeft`]; a peer added with
/// `add_peer` keeps its id for the transport's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u32);

impl PeerId {
    /// The id as an index into a table of peers.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {}", self.0)
    }
}

/// What happened on the transport since the last poll, in the order it happened.
///
/// For each peer the events follow its link's life: `LinkUp`, then its frames, then `LinkDown`
/// (and again if the link comes back). A `Frame` only comes from a peer whose link is up, a
/// `LinkDown` only after a `LinkUp`, and neither is ever repeated without the other between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A frame from a peer (its payload shares the receive buffer; no copy, no `String`).
    Frame {
        /// Who sent it.
        from: PeerId,
        /// The payload.
        frame: Bytes,
    },
    /// The link to a peer is up (after the handshake): frames sent to it may arrive.
    LinkUp(PeerId),
    /// The link to a peer went down: frames queued for it are lost, and
    /// [`Transport::send`] to it fails until the next `LinkUp`.
    LinkDown(PeerId),
    /// A read-only node linked and is `peer` until [`ReadOnlyLeft`](Self::ReadOnlyLeft).
    /// `name` is what every voter calls it: [`READ_ONLY_PREFIX`] and its number in
    /// hexadecimal. A `LinkUp(peer)` always follows at once, before any frame from it.
    ReadOnlyJoined {
        /// Its id while it stays linked.
        peer: PeerId,
        /// Its name, the same on every voter.
        name: String,
    },
    /// A read-only node's link is gone (its `LinkDown` came just before); its id may be reused
    /// after this event.
    ReadOnlyLeft(PeerId),
    /// A stranger linked: a voter of the same cluster (its hello passed the cluster identity
    /// and the password) that is not a peer of this node, accepted because the layer above
    /// admits strangers ([`Transport::admit_strangers`]). It is `peer` until
    /// [`StrangerLeft`](Self::StrangerLeft), or until [`Transport::add_peer`] of `name` makes
    /// it an ordinary peer under the same id, its link kept (no event then; a later
    /// `LinkDown` is not followed by `StrangerLeft`). A `LinkUp(peer)` always follows at once,
    /// before any frame from it. Strangers are never dialled.
    StrangerJoined {
        /// Its id while it stays linked.
        peer: PeerId,
        /// The address its hello gave.
        name: String,
    },
    /// A stranger's link is gone (its `LinkDown` came just before); its id may be reused after
    /// this event.
    StrangerLeft(PeerId),
    /// The listener settled: bound (or nothing to bind), or gave up after its retries. Comes
    /// exactly once per transport.
    Bound(Result<(), BindFailure>),
    /// A bind attempt failed and the transport will try again (after `bind_retry_time`):
    /// why, so that a node waiting to be bound can say. At most one per attempt.
    BindRetrying(BindFailure),
    /// An administrator's request ([`admin`]): the layer above answers it once with
    /// [`Transport::admin_reply`] under the same `id`, after which the transport closes the
    /// connection. An administrator is never a peer. If its connection closes first, the
    /// answer is dropped.
    AdminRequest {
        /// The connection's number for the answer, never reused by this transport.
        id: u64,
        /// The encoded [`admin::AdminRequest`], at most [`admin::ADMIN_REQUEST_BYTES_MAX`]
        /// bytes.
        request: Bytes,
    },
}

/// Why a transport gave up binding: the address and the last error.
///
/// Equal to another failure with the same address and [`kind`](Self::kind) of error.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot bind {address}: {error}")]
pub struct BindFailure {
    /// The address it tried to listen on.
    pub address: String,
    /// The last attempt's error (a name that does not resolve is an error of the kind the
    /// lookup failed with, holding the resolver's error).
    pub error: Arc<io::Error>,
}

impl BindFailure {
    /// The kind of the last error, e.g. [`io::ErrorKind::AddrInUse`].
    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }
}

impl PartialEq for BindFailure {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address && self.kind() == other.kind()
    }
}

impl Eq for BindFailure {}

/// Defines [`TransportCounters`] with the fields listed (each a `u64`, documented), and
/// [`WireStats`] with the same fields as atomics, its `snapshot` and the counters' names.
macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of bad input, losses and connection endings on the wire, for the status
        /// report: a copy of [`WireStats`] at one moment.
        ///
        /// Every connection a transport took in ends in exactly one of `handshake_timeouts`,
        /// `handshake_closes`, `refused_handshakes`, `auth_failures`, `bad_frames`,
        /// `read_only_over_cap`, `strangers_refused`, `dial_failures`, `link_failures`, `link_timeouts`,
        /// `links_replaced`, `links_removed` or `admin_connections` (or, dropped at the request of the layer above, in that layer's
        /// count); `unauthenticated_over_cap` and `accepts_rate_limited` count connections
        /// closed as soon as they were accepted.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct TransportCounters {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// The counters a transport keeps, readable from any thread while it runs: the fields
        /// of [`TransportCounters`], as atomics. The transport adds to them (relaxed ordering:
        /// each counter is exact, but two counters read together may be a few events apart);
        /// [`snapshot`](Self::snapshot) reads them.
        #[derive(Debug, Default)]
        pub struct WireStats {
            $(
                #[doc = concat!("See [`TransportCounters::", stringify!($name), "`].")]
                pub $name: AtomicU64,
            )*
        }

        impl WireStats {
            /// The counters now, as plain numbers: one relaxed load each.
            pub fn snapshot(&self) -> TransportCounters {
                TransportCounters {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }

        impl TransportCounters {
            /// Each counter's name (its field's) and value, in declaration order.
            pub fn named(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// Connections dropped for a bad frame (oversized for the link, undecodable), and frames
    /// dropped for coming from a node that is not a peer (a transport without handshakes sees
    /// those).
    bad_frames,
    /// Connections whose hello was refused, by either side: another cluster or protocol, an
    /// unknown node, a read-only node where none is accepted, a password on one side only.
    refused_handshakes,
    /// Connections dropped for bytes that failed authentication: a hello or reply under another
    /// password, a tampered or replayed record.
    auth_failures,
    /// Links (handshake done) dropped for reading nothing within the connection timeout.
    link_timeouts,
    /// Frames dropped because a peer was not connected, its send queue was full, or the frame
    /// was larger than its link takes.
    dropped_frames,
    /// Host-name lookups that failed or found no address.
    resolve_failures,
    /// Connections accepted and taken in for a handshake.
    connections_accepted,
    /// Connections closed because their handshake was not done within the handshake timeout:
    /// a peer that trickles its hello, or sends nothing.
    handshake_timeouts,
    /// Connections the peer closed or reset, or that failed on a socket error, before their
    /// handshake was done (a connect-and-close).
    handshake_closes,
    /// Dials that could not connect.
    dial_failures,
    /// Links (handshake done) that the peer closed or reset, or that failed on a socket error.
    link_failures,
    /// Connections closed because another connection of the same peer is its link: a newer one
    /// replaced them, or the peer's link dialled the usual way (by the address that sorts
    /// higher) was up when they opened.
    links_replaced,
    /// Links closed because their peer left the cluster ([`Transport::remove_peer`]); its
    /// later connections are refused (`refused_handshakes`).
    links_removed,
    /// Connections closed as soon as accepted because as many connections as allowed were in
    /// their handshake already.
    unauthenticated_over_cap,
    /// Read-only nodes refused (`Busy`) because as many as allowed were linked already.
    read_only_over_cap,
    /// Connections closed as soon as accepted because they came faster than the accept rate;
    /// the listener then pauses until the rate allows more (connections that arrive meanwhile
    /// wait in the kernel's backlog, which drops what overflows).
    accepts_rate_limited,
    /// Times reading from a connection paused because its next read could pass the budget of
    /// bytes held in incoming buffers; it resumes when the budget has room.
    reads_paused,
    /// Administrators' connections (`syncobj-admin`) that ended after their handshake, answered
    /// or not; their refused hellos count in `refused_handshakes`.
    admin_connections,
    /// Strangers linked ([`Transport::admit_strangers`]): nodes of the cluster that were not
    /// peers of this node when they linked.
    strangers_linked,
    /// Strangers refused (`Busy`) because [`STRANGER_LINKS_MAX`] were linked already.
    strangers_refused,
}

impl WireStats {
    /// The block every transport that counts nothing returns: all zero, shared, never written
    /// (whoever holds it must not add to it). Allocates once per process.
    pub fn zero() -> Arc<WireStats> {
        static ZERO: OnceLock<Arc<WireStats>> = OnceLock::new();
        Arc::clone(ZERO.get_or_init(Arc::default))
    }

    /// Adds one to `counter`, a field of this block.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Wakes a thread blocked in [`Transport::poll`], from any thread.
pub trait Wake: Send + Sync {
    /// Makes the current or next `poll` return promptly.
    fn wake(&self);
}

/// Moves frames between this node and its peers, which it numbers with [`PeerId`]s, and
/// reports what happens as [`TransportEvent`]s.
///
/// Implementations never block in `send`, bound what they buffer, and drop what they cannot
/// deliver: the protocol above retries. Each [`poll`](Self::poll) hands out a bounded amount of
/// input, so that one flooding peer cannot grow the caller's buffer or starve the others.
pub trait Transport: Send + 'static {
    /// Makes `address` a peer of this node and returns its id; idempotent (the same address
    /// always gets the same id). A stranger linked under that address becomes the peer, with
    /// its id and its link. The transport then links to it as it does to its configured
    /// peers, reporting [`TransportEvent::LinkUp`] once the link is up. Costs a map lookup, and
    /// an insertion for a new address.
    fn add_peer(&mut self, address: &str) -> PeerId;

    /// Queues `frame` for `to`. Returns `false` if it was dropped: no link, a full send
    /// buffer, or an id this transport never gave out. Never blocks. Frames sent this way
    /// arrive in the order they were sent, if at all.
    fn send(&mut self, to: PeerId, frame: Bytes) -> bool;

    /// Queues a small control frame (a vote, an acknowledgement, a heartbeat) for `to`, which
    /// may overtake the frames queued with [`send`](Self::send) before it: a transport that
    /// can should not make it wait behind bulk data. Control frames keep their order among
    /// themselves. Returns `false` if it was dropped, as `send` does. By default it is `send`.
    fn send_control(&mut self, to: PeerId, frame: Bytes) -> bool {
        self.send(to, frame)
    }

    /// Waits at most `timeout` for something to happen (returning early on input, or on a
    /// [`Wake::wake`]) and appends what happened to `events`, in order. One call appends at
    /// most a bounded number of frames and bytes (each implementation documents its caps);
    /// the rest stays with the transport, and the next call returns at once with more.
    fn poll(&mut self, timeout: Duration, events: &mut Vec<TransportEvent>);

    /// A handle other threads use to interrupt [`poll`](Self::poll).
    fn waker(&self) -> Arc<dyn Wake>;

    /// Drops the link to `peer` (it sent a frame the layer above could not decode): a
    /// [`TransportEvent::LinkDown`] follows at the next poll, and the transport links again as
    /// usual. The layer above logs and counts it. Does nothing if there is no such link, or for
    /// transports without connections.
    fn disconnect(&mut self, peer: PeerId) {
        let _ = peer;
    }

    /// Forgets `peer`, a member that left the cluster: its link is closed (a
    /// [`TransportEvent::LinkDown`] follows at the next poll), it is no longer dialled, and
    /// its connections are refused from then on (or taken as a stranger's when the transport
    /// admits strangers). Frames for it are dropped. A later
    /// [`add_peer`](Self::add_peer) of the same address makes it a peer again, maybe under
    /// another id. By default it does nothing (a transport without a peer table).
    fn remove_peer(&mut self, peer: PeerId) {
        let _ = peer;
    }

    /// From now on, accepts links from strangers: nodes of the same cluster (same identity and
    /// password) that are not peers, at most [`STRANGER_LINKS_MAX`] at once. Each is reported
    /// with [`TransportEvent::StrangerJoined`], and its frames are handed up like a peer's:
    /// the layer above judges them (a node whose membership lags must hear a leader it never
    /// heard of). A peer removed with [`remove_peer`](Self::remove_peer) may come back as a
    /// stranger. By default it does nothing (a transport that never checks its peers'
    /// names, or the caller does not want strangers).
    fn admit_strangers(&mut self) {}

    /// The transport's counters, shared with any thread: whoever builds a status report reads
    /// them then ([`WireStats::snapshot`]). Call it once and keep the `Arc`; a transport that
    /// counts nothing returns [`WireStats::zero`].
    fn counters(&self) -> Arc<WireStats> {
        WireStats::zero()
    }

    /// Answers the administrator's request `id` ([`TransportEvent::AdminRequest`]) with
    /// `reply` (an encoded [`admin::AdminReply`]), then closes its connection once the reply is
    /// written. Does nothing for an `id` whose connection is gone, or for transports that take
    /// no administrators (the default).
    fn admin_reply(&mut self, id: u64, reply: Bytes) {
        let _ = (id, reply);
    }
}
