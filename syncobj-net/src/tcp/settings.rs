//! The settings of a [`TcpTransport`](super::TcpTransport), its bind state and its errors.

use std::io;
use std::time::Duration;

use thiserror::Error;

use crate::BindFailure;
use crate::handshake::{ClusterId, Peer};
use crate::resolve::ResolverSettings;
use crate::secure::ClusterKey;

/// A default for [`TcpSettings::poll_frames_max`].
pub const POLL_FRAMES_MAX_DEFAULT: usize = 4_096;

/// A default for [`TcpSettings::poll_bytes_max`]: 8 MiB.
pub const POLL_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;

/// Settings of a [`TcpTransport`](super::TcpTransport).
#[derive(Clone, Debug)]
pub struct TcpSettings {
    /// This node: a voter's address as the others know it, or a read-only node's number.
    pub node: Peer,
    /// The address to listen on; defaults to `self_address`. Read-only nodes do not listen.
    pub bind_address: Option<String>,
    /// Every voter's address, this node's included. The others are this transport's first
    /// peers, numbered from 0 in this order ([`crate::PeerId`]); repeats count once.
    pub voters: Vec<String>,
    /// How host names are resolved: cache times and address family ([`crate::resolve`]).
    pub resolver: ResolverSettings,
    /// The cluster's identity: nodes of other clusters are refused.
    pub cluster: ClusterId,
    /// The key derived from the cluster's password: with one, every connection is encrypted
    /// and authenticated ([`crate::secure`]) and peers without it are refused; without one,
    /// the transport is unauthenticated and unencrypted.
    pub key: Option<ClusterKey>,
    /// The largest frame accepted or sent, in bytes.
    pub frame_size_max: u32,
    /// The most bytes queued for one peer before frames to it are dropped.
    pub send_queue_bytes_max: usize,
    /// A link that reads nothing for this long is dropped.
    pub connection_timeout: Duration,
    /// The pause between two dial attempts to one peer.
    pub connection_retry_time: Duration,
    /// Whether read-only nodes may connect.
    pub accept_read_only: bool,
    /// `SO_SNDBUF` of every connection, in bytes; `None` keeps the system's.
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF` of every connection, in bytes; `None` keeps the system's.
    pub recv_buffer_size: Option<usize>,
    /// TCP keepalive of every connection, dialled and accepted alike; `None` leaves it off.
    pub tcp_keepalive: Option<Keepalive>,
    /// The pause between two attempts to bind the listening address.
    pub bind_retry_time: Duration,
    /// How many bind attempts before giving up; 0 retries for ever (PySyncObj's default).
    pub max_bind_retries: u32,
    /// The most frames one [`poll`](crate::Transport::poll) takes off the connections (frames
    /// of the handshake and empty keep-alives included), at least 1;
    /// [`POLL_FRAMES_MAX_DEFAULT`] is a good choice.
    pub poll_frames_max: usize,
    /// The most bytes of frames (headers included) one poll takes off the connections; a
    /// single frame larger than this is still taken, alone. [`POLL_BYTES_MAX_DEFAULT`] is a
    /// good choice.
    pub poll_bytes_max: usize,
}

/// Where binding the listening address stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindState {
    /// Bound, or nothing to bind (a read-only node).
    Bound,
    /// Not bound yet; another attempt comes after `bind_retry_time`.
    Retrying {
        /// Attempts so far.
        attempts: u32,
        /// Why the last one failed; `None` before the first.
        last: Option<BindFailure>,
    },
    /// `max_bind_retries` attempts failed; the node cannot be reached.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        failure: BindFailure,
    },
}

/// TCP keepalive probing: after `idle` without traffic, `count` probes `interval` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is closed.
    pub count: u32,
}

/// Why a transport could not start.
#[derive(Debug, Error)]
pub enum TcpError {
    /// The poller could not be created.
    #[error("cannot create the poller: {0}")]
    Poll(io::Error),
}

impl TcpSettings {
    /// This node's address, unless it is read-only.
    pub fn self_address(&self) -> Option<&str> {
        match &self.node {
            Peer::Voter(address) => Some(address),
            Peer::ReadOnly(_) => None,
        }
    }

    /// The address to listen on, if this node listens.
    pub(crate) fn listen_address(&self) -> Option<&str> {
        self.self_address()
            .map(|me| self.bind_address.as_deref().unwrap_or(me))
    }
}
