//! The network layer of `syncobj`.
//!
//! It moves opaque frames between node addresses and knows nothing of Raft. [`Transport`] is
//! what the driver polls; [`tcp::TcpTransport`] implements it over mio, with framing
//! ([`frame`]), a handshake ([`handshake`]) and, when the cluster has a password, encryption
//! ([`secure`]); `syncobj-core` provides an in-memory implementation.

#![deny(missing_docs)]

pub mod frame;
pub mod handshake;
pub mod resolve;
pub mod secure;
pub mod tcp;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// How transports name a connected read-only node: this prefix, then its number in hexadecimal.
pub const READ_ONLY_PREFIX: &str = "readonly:";

/// A frame received from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The address of the node that sent it.
    pub from: String,
    /// The frame's payload.
    pub frame: Bytes,
}

/// Counters of bad input and losses on the wire, for the status report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportCounters {
    /// Connections dropped for a bad frame (oversized, undecodable).
    pub bad_frames: u64,
    /// Connections refused at the handshake, by either side.
    pub refused_handshakes: u64,
    /// Connections dropped for bytes that failed authentication: a hello or reply under another
    /// password, a tampered or replayed record.
    pub auth_failures: u64,
    /// Links dropped for reading nothing within the connection timeout.
    pub link_timeouts: u64,
    /// Frames dropped because a peer was not connected or its send queue was full.
    pub dropped_frames: u64,
    /// Host-name lookups that failed or found no address.
    pub resolve_failures: u64,
}

/// Wakes a thread blocked in [`Transport::poll`], from any thread.
pub trait Wake: Send + Sync {
    /// Makes the current or next `poll` return promptly.
    fn wake(&self);
}

/// Moves frames between this node and its peers, named by address.
///
/// Implementations never block in `send`, bound what they buffer, and drop what they cannot
/// deliver: the protocol above retries.
pub trait Transport: Send + 'static {
    /// Queues `frame` for the node at `to`. Returns `false` if it was dropped (not connected,
    /// buffer full).
    fn send(&mut self, to: &str, frame: Bytes) -> bool;

    /// Waits at most `timeout` for frames (returning early once any arrived or on a
    /// [`Wake::wake`]) and appends them to `out`.
    fn poll(&mut self, timeout: Duration, out: &mut Vec<Incoming>);

    /// A handle other threads use to interrupt [`poll`](Self::poll).
    fn waker(&self) -> Arc<dyn Wake>;

    /// Whether a link to `node` is up.
    fn is_connected(&self, node: &str) -> bool;

    /// Drops the connection to `peer` (it sent a frame the layer above could not decode); the
    /// transport connects again as usual. The layer above logs and counts it. Does nothing if
    /// there is no such connection, or for transports without connections.
    fn disconnect(&mut self, peer: &str) {
        let _ = peer;
    }

    /// The read-only nodes linked now, by the names frames from them carry (they start with
    /// [`READ_ONLY_PREFIX`]); none for transports without read-only nodes.
    fn read_only_peers(&self) -> Vec<String> {
        Vec::new()
    }

    /// Counters of bad input and losses so far; zero for transports that count nothing.
    fn counters(&self) -> TransportCounters {
        TransportCounters::default()
    }

    /// Whether the transport listens where it should: `Ok(true)` bound (or nothing to bind),
    /// `Ok(false)` still trying, `Err` gave up, saying why.
    fn bound(&self) -> Result<bool, String> {
        Ok(true)
    }
}
