//! The settings of a [`TcpTransport`](super::TcpTransport), its bind state and its errors.

use std::io;
use std::time::Duration;

use thiserror::Error;

use crate::BindFailure;
use crate::frame::{FRAME_HEADER_BYTES, READ_CHUNK_BYTES_DEFAULT};
use crate::handshake::{ClusterId, Peer};
use crate::resolve::ResolverSettings;
use crate::secure::{ClusterKey, HANDSHAKE_PAYLOAD_MAX, RECORD_BYTES_MAX};

/// A default for [`TcpSettings::poll_frames_max`].
pub const POLL_FRAMES_MAX_DEFAULT: usize = 4_096;

/// A default for [`TcpSettings::poll_bytes_max`]: 8 MiB.
pub const POLL_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;

/// A default for [`TcpSettings::poll_spin`]: 100 µs, about one round trip between two nodes
/// on one machine, less than a sleeping thread takes to wake on a virtual machine.
pub const POLL_SPIN_DEFAULT: Duration = Duration::from_micros(100);

/// The largest frame a connection accepts before its handshake is done: a hello or reply,
/// encrypted or not. Frames may be larger only once the peer is known.
pub const HANDSHAKE_FRAME_MAX: u32 = 2 * HANDSHAKE_PAYLOAD_MAX as u32;

/// The most bytes one connection in its handshake holds in its buffers: its frame decoder (a
/// handshake frame and one read of at most that much) and, once an encrypted hello was
/// answered, a record received in part and its plaintext.
pub const HANDSHAKE_CONNECTION_BYTES_MAX: usize = 2
    * (HANDSHAKE_FRAME_MAX as usize + FRAME_HEADER_BYTES)
    + READ_CHUNK_BYTES_DEFAULT
    + RECORD_BYTES_MAX;

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
    /// The longest pause between two dial attempts to one peer without a link: the pause starts
    /// at 20 ms and doubles while dials fail ([`tcp`](super) explains the back-off).
    pub connection_retry_time: Duration,
    /// Whether read-only nodes may connect; when not, their hellos are refused (and counted in
    /// `refused_handshakes`).
    pub accept_read_only: bool,
    /// Whether administrators ([`crate::admin`]) may connect without the password from other
    /// addresses than loopback, when the cluster has no password. Dangerous: anyone who
    /// reaches the port may then change the membership. With a password it changes nothing
    /// (the password is what admits them).
    pub admin_from_anywhere: bool,
    /// What strangers may cost this node: the handshake deadline, caps on connections and
    /// read-only nodes, the accept rate, the frame limit of read-only links and the budgets of
    /// bytes held in incoming buffers.
    pub limits: ConnectionLimits,
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
    /// How long a poll that follows activity (a frame sent, or events at the last poll)
    /// checks for events without sleeping, yielding the processor between checks, before it
    /// sleeps: an answer that comes within it is taken without the wake-up of a sleeping
    /// thread, which costs tens of microseconds on a virtual machine. Zero never spins.
    /// [`POLL_SPIN_DEFAULT`] is a good choice where latency matters more than a little
    /// processor time.
    pub poll_spin: Duration,
}

/// What connections may cost a [`TcpTransport`](super::TcpTransport): see the module
/// documentation of [`tcp`](super) for how each limit acts. [`Default`] gives the defaults of
/// `syncobj`'s configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection whose handshake is not done this long after it opened (accepted or
    /// dialled) is closed and counted in `handshake_timeouts`. Default: 3 s.
    pub handshake_timeout: Duration,
    /// The most accepted connections in their handshake at once; one more is closed as soon as
    /// accepted (`unauthenticated_over_cap`). At least 1. Default: 64.
    pub unauthenticated_connections_max: usize,
    /// New connections accepted per second, at most (a token bucket holding one second's
    /// worth): beyond it the listener pauses, and one connection per pause is closed as soon as
    /// accepted (`accepts_rate_limited`). At least 1. Default: 200.
    pub accepts_per_second: u32,
    /// The most read-only nodes linked at once; one more is refused as `Busy`
    /// (`read_only_over_cap`). Default: 32.
    pub read_only_links_max: usize,
    /// The largest frame a read-only node sends (at most the transport's `frame_size_max`): it
    /// sends only acknowledgements and its forwarded calls. A voter drops a read-only link that
    /// announces a longer frame (`bad_frames`); a read-only node's transport drops such a frame
    /// instead of sending it (`dropped_frames`). Frames to read-only nodes keep the transport's
    /// limit. Default: 1 MiB.
    pub read_only_frame_size_max: u32,
    /// The most bytes the read buffers of read-only links hold together: a read-only link
    /// whose next read could pass it waits. At least
    /// [`read_only_bytes_min`]`(read_only_frame_size_max)`. Default: 16 MiB.
    pub read_only_bytes_max: usize,
    /// The most bytes the read buffers of all connections hold together: a connection whose
    /// next read could pass it waits, leaving its bytes in the kernel (TCP then slows its
    /// sender down). At least [`incoming_bytes_min`], so that a voter's largest frame always
    /// fits beside what read-only links and handshakes may hold. Default: 128 MiB.
    pub incoming_bytes_max: usize,
    /// The most administrators' connections ([`crate::admin`]) open at once, past their hello;
    /// one more is refused as `Busy` (`refused_handshakes`). 0 admits none: every admin hello
    /// is refused as `AdminDisabled`. Each may hold a reply of up to
    /// [`ADMIN_REPLY_BYTES_MAX`](crate::admin::ADMIN_REPLY_BYTES_MAX) bytes. Default:
    /// [`ADMIN_CONNECTIONS_MAX`](super::ADMIN_CONNECTIONS_MAX).
    pub admin_connections_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(3),
            unauthenticated_connections_max: 64,
            accepts_per_second: 200,
            read_only_links_max: 32,
            read_only_frame_size_max: 1024 * 1024,
            read_only_bytes_max: 16 * 1024 * 1024,
            incoming_bytes_max: 128 * 1024 * 1024,
            admin_connections_max: super::ADMIN_CONNECTIONS_MAX,
        }
    }
}

/// The most bytes one open link whose messages may reach `frame_size_max` holds in its
/// buffers: its largest message being put together from fragments, its decoder's most (a
/// fragment's frame, which is one read chunk, and one more read chunk), and on an encrypted
/// link one read's plaintext and a record received in part. A message is given all of it
/// before it starts, so a budget below it could never take the largest message.
pub fn link_bytes_max(frame_size_max: u32) -> usize {
    (frame_size_max as usize)
        .saturating_add(3 * READ_CHUNK_BYTES_DEFAULT)
        .saturating_add(RECORD_BYTES_MAX)
}

/// The smallest [`ConnectionLimits::read_only_bytes_max`] with which a read-only node's
/// largest frame can always be read: [`link_bytes_max`]`(read_only_frame_size_max)`.
pub fn read_only_bytes_min(read_only_frame_size_max: u32) -> usize {
    link_bytes_max(read_only_frame_size_max)
}

/// The smallest [`ConnectionLimits::incoming_bytes_max`] with which a voter's largest frame
/// can always be read, whatever read-only links and handshakes hold:
/// [`link_bytes_max`]`(frame_size_max)`, plus `read_only_bytes_max`, plus
/// [`HANDSHAKE_CONNECTION_BYTES_MAX`] per connection in its handshake.
pub fn incoming_bytes_min(
    frame_size_max: u32,
    read_only_bytes_max: usize,
    unauthenticated_connections_max: usize,
) -> usize {
    link_bytes_max(frame_size_max)
        .saturating_add(read_only_bytes_max)
        .saturating_add(
            unauthenticated_connections_max.saturating_mul(HANDSHAKE_CONNECTION_BYTES_MAX),
        )
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
    /// A budget of incoming bytes is too small for the largest frame it must let through.
    #[error("{option} ({bytes} bytes) must be at least {needed} bytes")]
    BudgetTooSmall {
        /// `read_only_bytes_max` or `incoming_bytes_max`.
        option: &'static str,
        /// Its value.
        bytes: usize,
        /// The least it must be.
        needed: usize,
    },
    /// A limit that must be positive is zero.
    #[error("{option} must be greater than zero")]
    Zero {
        /// `unauthenticated_connections_max` or `accepts_per_second`.
        option: &'static str,
    },
    /// More administrators' connections than a transport holds at once.
    #[error("admin_connections_max ({value}) must be at most {max}")]
    AdminConnectionsTooMany {
        /// The configured cap.
        value: usize,
        /// [`ADMIN_CONNECTIONS_LIMIT`](super::ADMIN_CONNECTIONS_LIMIT).
        max: usize,
    },
}

impl TcpSettings {
    /// This node's address, unless it is read-only.
    pub fn self_address(&self) -> Option<&str> {
        match &self.node {
            Peer::Voter(address) => Some(address),
            Peer::ReadOnly(_) | Peer::Admin => None,
        }
    }

    /// The address to listen on, if this node listens.
    pub(crate) fn listen_address(&self) -> Option<&str> {
        self.self_address()
            .map(|me| self.bind_address.as_deref().unwrap_or(me))
    }

    /// The largest frame of a read-only link: its limit, within the transport's.
    pub(crate) fn read_only_frame_max(&self) -> u32 {
        self.limits
            .read_only_frame_size_max
            .min(self.frame_size_max)
    }

    /// Checks the limits that would stall a link for ever or refuse every connection.
    pub(crate) fn check(&self) -> Result<(), TcpError> {
        let limits = &self.limits;
        for (option, zero) in [
            (
                "unauthenticated_connections_max",
                limits.unauthenticated_connections_max == 0,
            ),
            ("accepts_per_second", limits.accepts_per_second == 0),
        ] {
            if zero {
                return Err(TcpError::Zero { option });
            }
        }
        if limits.admin_connections_max > super::ADMIN_CONNECTIONS_LIMIT {
            return Err(TcpError::AdminConnectionsTooMany {
                value: limits.admin_connections_max,
                max: super::ADMIN_CONNECTIONS_LIMIT,
            });
        }
        let read_only = read_only_bytes_min(self.read_only_frame_max());
        let incoming = incoming_bytes_min(
            self.frame_size_max,
            limits.read_only_bytes_max,
            limits.unauthenticated_connections_max,
        );
        for (option, bytes, needed) in [
            ("read_only_bytes_max", limits.read_only_bytes_max, read_only),
            ("incoming_bytes_max", limits.incoming_bytes_max, incoming),
        ] {
            if bytes < needed {
                return Err(TcpError::BudgetTooSmall {
                    option,
                    bytes,
                    needed,
                });
            }
        }
        Ok(())
    }
}
