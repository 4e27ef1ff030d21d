//! The network options: the password, the addresses and their resolution, connections and
//! sockets, the frame limit, and what strangers may cost (read-only nodes, handshakes, the
//! accept rate, the budgets of incoming bytes).

use std::time::Duration;

use syncobj_net::tcp::{ADMIN_CONNECTIONS_LIMIT, incoming_bytes_min, read_only_bytes_min};

use super::error::reject_zeros;
use super::{ConfError, SyncObjConf, SyncObjConfBuilder};

/// The room a frame must have beyond a full AppendEntries batch or snapshot chunk, in bytes: the
/// message header, the MessagePack framing of the batch and the encryption overhead.
pub const FRAME_OVERHEAD_BYTES: usize = 4096;

options! {
    /// Which address family to prefer when a host name resolves to both (PySyncObj
    /// `preferredAddrType`). Default: [`PreferredAddrType::Ipv4`].
    preferred_addr_type: PreferredAddrType;

    /// A connection is dead after this long without a byte read (PySyncObj
    /// `connectionTimeout`). Must be at least `raft_max_timeout`. Idle links carry empty
    /// keep-alive frames, so only dead links time out. Default: 3.5 s.
    connection_timeout: Duration;

    /// The longest pause between two attempts to dial a node that is not linked (PySyncObj
    /// `connectionRetryTime`): the pause starts at 20 ms and doubles while dials fail, and
    /// starts over when a link with the node opens, whoever dialled. Must be positive.
    /// Default: 5 s.
    connection_retry_time: Duration;

    /// The socket send buffer size, `SO_SNDBUF` (PySyncObj `sendBufferSize`). Must be
    /// positive. Default: 64 KiB.
    send_buffer_size: usize;

    /// The socket receive buffer size, `SO_RCVBUF` (PySyncObj `recvBufferSize`). Must be
    /// positive. Default: 64 KiB.
    recv_buffer_size: usize;

    /// How long a resolved host name is cached (PySyncObj `dnsCacheTime`). Names resolve on a
    /// background thread, never in the tick loop; an expired name keeps its old address until
    /// the new lookup answers. Default: 600 s.
    dns_cache_time: Duration;

    /// How long a failed resolution is cached (PySyncObj `dnsFailCacheTime`). Default: 30 s.
    dns_fail_cache_time: Duration;

    /// The time between two attempts to bind the listening socket (PySyncObj
    /// `bindRetryTime`). Must be positive. Default: 1 s.
    bind_retry_time: Duration;

    /// How many bind attempts fail before `wait_binded` gives up; 0 means unlimited (PySyncObj
    /// `maxBindRetries`). Default: 0.
    max_bind_retries: u32;

    /// PySyncObj `pollerType`. Default: [`PollerType::Auto`].
    ///
    /// Ignored by design: syncobj polls through mio, which always uses the best mechanism of
    /// the platform (epoll, kqueue, IOCP). The other values are accepted so PySyncObj
    /// configurations carry over.
    poller_type: PollerType;

    /// TCP keepalive on every connection, dialled or accepted (PySyncObj `tcp_keepalive`);
    /// `None` turns it off. Its times must be whole seconds, at least one, and its count
    /// positive. Default: idle 16 s, interval 3 s, 5 probes.
    tcp_keepalive: Option<TcpKeepalive>;

    /// The largest frame, in bytes, sent or accepted on a connection; a longer frame drops the
    /// connection, and a call whose command would not fit fails with `TooLarge`. Must hold
    /// `append_entries_batch_size_bytes` and `log_compaction_batch_size` plus
    /// [`FRAME_OVERHEAD_BYTES`], and fit in 32 bits. syncobj's own. Default: 64 MiB.
    frame_size_max: usize;

    /// Whether read-only nodes may link to this node; when not, their hellos are refused
    /// (counted in `refused_handshakes`), and a node started before it is added to the
    /// cluster (with `dynamic_membership_change`) is not replicated to until it is: it
    /// catches up once added, as a non-voter. syncobj's own. Default: true.
    accept_read_only: bool;

    /// Whether `syncobj-admin` may administer this node, when the cluster has no `password`,
    /// from addresses other than loopback. **Dangerous**: anyone who reaches the port can
    /// then read the status, add or remove members and change the code version. Without it,
    /// administration needs the password or a tool on the node's own host (loopback); refused
    /// hellos count in `refused_handshakes`. With a password it changes nothing. syncobj's
    /// own. Default: false.
    admin_from_anywhere: bool;

    /// The most `syncobj-admin` connections open at once on this node, past their hello; one
    /// more is refused as busy (`refused_handshakes`) and the tool exits 2. Each is bounded
    /// (one request of at most 1 KiB, one reply of at most 1 MiB, then closed). 0 disables
    /// administration: every administrator is refused ("administration is disabled"). At most
    /// 64. syncobj's own. Default: 4.
    admin_connections_max: usize;

    /// The most read-only nodes linked to this node at once; one more is refused as busy
    /// (`read_only_over_cap`) and tries again later. Each costs the leader replication work.
    /// Must be positive (turn `accept_read_only` off to refuse them all). syncobj's own.
    /// Default: 32.
    read_only_nodes_max: usize;

    /// The largest frame a read-only node sends, in bytes (at most `frame_size_max` counts): it
    /// sends only acknowledgements and its forwarded calls, so its calls must fit this, less
    /// [`FRAME_OVERHEAD_BYTES`]. A voter drops a read-only link that announces a longer frame
    /// (`bad_frames`); a read-only node drops a longer frame instead of sending it, and the
    /// call waits for its timeout. Frames to read-only nodes keep `frame_size_max`. Must be at
    /// least [`FRAME_OVERHEAD_BYTES`]. syncobj's own. Default: 1 MiB.
    read_only_frame_size_max: usize;

    /// The most bytes the read buffers of all read-only nodes' links hold together; a read that
    /// could pass it waits (TCP then slows the sender down). Must hold one read-only frame and
    /// its reads (about `read_only_frame_size_max` + 192 KiB). syncobj's own. Default: 16 MiB.
    read_only_bytes_max: usize;

    /// A connection whose handshake is not done this long after it was accepted or dialled is
    /// closed (`handshake_timeouts`), however it trickles. Must be positive. syncobj's own.
    /// Default: 3 s.
    handshake_timeout: Duration;

    /// The most accepted connections in their handshake at once (strangers, until their hello
    /// is accepted); one more is reset as soon as accepted (`unauthenticated_over_cap`). Must
    /// be positive. syncobj's own. Default: 64.
    unauthenticated_connections_max: usize;

    /// New connections accepted per second, at most (a token bucket holding one second's
    /// worth). Past it the node stops accepting until the rate allows, resetting one connection
    /// per pause (`accepts_rate_limited`); the others wait in the kernel's backlog. A flood of
    /// connections thus costs the node little, but delays honest ones too. Must be positive.
    /// syncobj's own. Default: 200.
    accepts_per_second: u32;

    /// The most bytes the read buffers of all connections hold together; a read that could
    /// pass it waits (TCP then slows the sender down). Must hold a voter's largest frame beside
    /// what read-only nodes and handshakes may hold: about `frame_size_max` +
    /// `read_only_bytes_max` + 132 KiB per `unauthenticated_connections_max`. syncobj's own.
    /// Default: 128 MiB.
    incoming_bytes_max: usize;
}

impl SyncObjConfBuilder {
    /// Sets the shared secret that authenticates and encrypts every connection (PySyncObj
    /// `password`): every node derives a key from it with Argon2id at start (tens of
    /// milliseconds, 19 MiB) and connections run the Noise protocol under that key. A node with
    /// another password never joins. Must not be empty. Default: none, an unauthenticated,
    /// unencrypted transport (the node says so in its log at start).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.conf.password = Some(password.into());
        self
    }

    /// Sets the `host:port` to listen on (PySyncObj `bindAddress`). Default: none, the self
    /// address itself — not every interface, as PySyncObj does.
    pub fn bind_address(mut self, address: impl Into<String>) -> Self {
        self.conf.bind_address = Some(address.into());
        self
    }
}

impl SyncObjConf {
    /// The `password` option, if set; see [`SyncObjConfBuilder::password`].
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The `bind_address` option, if set; see [`SyncObjConfBuilder::bind_address`].
    pub fn bind_address(&self) -> Option<&str> {
        self.bind_address.as_deref()
    }
}

/// Which address family to use when a host name resolves to both (PySyncObj
/// `preferredAddrType`, whose `'ipv6'` PySyncObj wrongly resolves as IPv4). Default:
/// [`Ipv4`](Self::Ipv4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PreferredAddrType {
    /// Prefer IPv4 addresses (PySyncObj `'ipv4'`). The default.
    #[default]
    Ipv4,
    /// Prefer IPv6 addresses (PySyncObj `'ipv6'`).
    Ipv6,
    /// Use the first address the resolver returns (PySyncObj `None`).
    Any,
}

/// PySyncObj's `pollerType`, accepted and ignored by design: mio always uses the platform's best
/// poller (epoll, kqueue, IOCP). Default: [`Auto`](Self::Auto).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PollerType {
    /// PySyncObj `'auto'`, and what syncobj always does. The default.
    #[default]
    Auto,
    /// PySyncObj `'select'`; accepted, and syncobj still uses mio's poller.
    Select,
    /// PySyncObj `'poll'`; accepted, and syncobj still uses mio's poller.
    Poll,
}

/// TCP keepalive settings (PySyncObj `tcp_keepalive`, a tuple of idle, interval, count).
/// Default: idle 16 s, interval 3 s, 5 probes, as PySyncObj.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpKeepalive {
    /// How long a connection stays idle before the first probe; whole seconds, at least 1.
    pub idle: Duration,
    /// The time between probes; whole seconds, at least 1.
    pub interval: Duration,
    /// How many unanswered probes close the connection; positive.
    pub count: u32,
}

impl Default for TcpKeepalive {
    fn default() -> Self {
        TcpKeepalive {
            idle: Duration::from_secs(16),
            interval: Duration::from_secs(3),
            count: 5,
        }
    }
}

/// Adds to `errors` every network rule `conf` breaks.
pub(super) fn check(conf: &SyncObjConf, errors: &mut Vec<ConfError>) {
    if conf.password.as_deref() == Some("") {
        errors.push(ConfError::EmptyPassword);
    }
    reject_zeros(
        errors,
        &[
            (
                "connection_retry_time",
                conf.connection_retry_time.is_zero(),
            ),
            ("send_buffer_size", conf.send_buffer_size == 0),
            ("recv_buffer_size", conf.recv_buffer_size == 0),
            ("bind_retry_time", conf.bind_retry_time.is_zero()),
            (
                "tcp_keepalive.count",
                conf.tcp_keepalive.is_some_and(|k| k.count == 0),
            ),
        ],
    );
    check_keepalive(conf, errors);
    if conf.connection_timeout < conf.raft_max_timeout {
        errors.push(ConfError::ConnectionTimeoutTooShort {
            connection_timeout: conf.connection_timeout,
            raft_max_timeout: conf.raft_max_timeout,
        });
    }
    check_frames(conf, errors);
    check_limits(conf, errors);
}

/// The connection limits: positive, read-only frames that hold a call's message, and budgets
/// that hold the largest frames they must let through.
fn check_limits(conf: &SyncObjConf, errors: &mut Vec<ConfError>) {
    reject_zeros(
        errors,
        &[
            ("read_only_nodes_max", conf.read_only_nodes_max == 0),
            ("handshake_timeout", conf.handshake_timeout.is_zero()),
            (
                "unauthenticated_connections_max",
                conf.unauthenticated_connections_max == 0,
            ),
            ("accepts_per_second", conf.accepts_per_second == 0),
        ],
    );
    if conf.read_only_frame_size_max < FRAME_OVERHEAD_BYTES {
        errors.push(ConfError::ReadOnlyFrameTooSmall {
            read_only_frame_size_max: conf.read_only_frame_size_max,
        });
    }
    if conf.admin_connections_max > ADMIN_CONNECTIONS_LIMIT {
        errors.push(ConfError::AdminConnectionsTooMany {
            admin_connections_max: conf.admin_connections_max,
            max: ADMIN_CONNECTIONS_LIMIT,
        });
    }
    let read_only = read_only_bytes_min(conf.read_only_frame_max());
    let incoming = incoming_bytes_min(
        conf.frame_max(),
        conf.read_only_bytes_max,
        conf.unauthenticated_connections_max,
    );
    for (option, bytes, needed) in [
        ("read_only_bytes_max", conf.read_only_bytes_max, read_only),
        ("incoming_bytes_max", conf.incoming_bytes_max, incoming),
    ] {
        if bytes < needed {
            errors.push(ConfError::BudgetTooSmall {
                option,
                bytes,
                needed,
            });
        }
    }
}

impl SyncObjConf {
    /// `frame_size_max` as a frame header's 32 bits hold it.
    pub(crate) fn frame_max(&self) -> u32 {
        u32::try_from(self.frame_size_max).unwrap_or(u32::MAX)
    }

    /// The largest frame a read-only node sends: its limit, within `frame_size_max`.
    pub(crate) fn read_only_frame_max(&self) -> u32 {
        u32::try_from(self.read_only_frame_size_max.min(self.frame_size_max)).unwrap_or(u32::MAX)
    }
}

/// Keepalive idle and interval under one second: TCP keepalive counts whole seconds.
fn check_keepalive(conf: &SyncObjConf, errors: &mut Vec<ConfError>) {
    let Some(keepalive) = conf.tcp_keepalive else {
        return;
    };
    for (option, value) in [
        ("tcp_keepalive.idle", keepalive.idle),
        ("tcp_keepalive.interval", keepalive.interval),
    ] {
        if value < Duration::from_secs(1) {
            errors.push(ConfError::KeepaliveTooShort { option, value });
        }
    }
}

/// Every batch fitting in a frame, and the frame limit in a frame header's 32 bits.
fn check_frames(conf: &SyncObjConf, errors: &mut Vec<ConfError>) {
    for (option, size) in [
        (
            "append_entries_batch_size_bytes",
            conf.append_entries_batch_size_bytes,
        ),
        ("log_compaction_batch_size", conf.log_compaction_batch_size),
    ] {
        if size.saturating_add(FRAME_OVERHEAD_BYTES) > conf.frame_size_max {
            errors.push(ConfError::FrameTooSmall {
                frame_size_max: conf.frame_size_max,
                option,
                size,
            });
        }
    }
    if u32::try_from(conf.frame_size_max).is_err() {
        errors.push(ConfError::FrameTooLarge {
            frame_size_max: conf.frame_size_max,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_names, ms, only_error};
    use super::{ConfError, FRAME_OVERHEAD_BYTES, SyncObjConf, TcpKeepalive};
    use syncobj_net::tcp::{ADMIN_CONNECTIONS_LIMIT, ConnectionLimits};

    /// An empty password is rejected; any other is kept, and no password is fine.
    #[test]
    fn password_must_not_be_empty() {
        let error = only_error(SyncObjConf::builder().password(""));
        assert_eq!(error, ConfError::EmptyPassword);
        let conf = SyncObjConf::builder().password("x").build();
        assert_eq!(conf.ok().as_ref().and_then(|c| c.password()), Some("x"));
    }

    /// `None` for keepalive is accepted: no probes.
    #[test]
    fn absent_keepalive_builds() {
        assert!(SyncObjConf::builder().tcp_keepalive(None).build().is_ok());
    }

    /// Keepalive idle and interval under one second are rejected, naming the field and value.
    #[test]
    fn keepalive_times_must_be_whole_seconds() {
        let idle = TcpKeepalive {
            idle: ms(500),
            ..TcpKeepalive::default()
        };
        let error = only_error(SyncObjConf::builder().tcp_keepalive(Some(idle)));
        assert_eq!(
            error,
            ConfError::KeepaliveTooShort {
                option: "tcp_keepalive.idle",
                value: ms(500)
            }
        );
        assert_names(&error, &["tcp_keepalive.idle", "500ms"]);
        let interval = TcpKeepalive {
            interval: ms(999),
            ..TcpKeepalive::default()
        };
        let error = only_error(SyncObjConf::builder().tcp_keepalive(Some(interval)));
        assert_eq!(
            error,
            ConfError::KeepaliveTooShort {
                option: "tcp_keepalive.interval",
                value: ms(999)
            }
        );
    }

    /// `connection_timeout` must be at least `raft_max_timeout`; equal is accepted.
    #[test]
    fn connection_timeout_must_cover_max_election_timeout() {
        let error = only_error(SyncObjConf::builder().connection_timeout(ms(1399)));
        assert_eq!(
            error,
            ConfError::ConnectionTimeoutTooShort {
                connection_timeout: ms(1399),
                raft_max_timeout: ms(1400)
            }
        );
        assert_names(
            &error,
            &["connection_timeout", "raft_max_timeout", "1.399s"],
        );
        let conf = SyncObjConf::builder().connection_timeout(ms(1400)).build();
        assert!(conf.is_ok(), "{conf:?}");
    }

    /// A frame must hold a full batch and a full snapshot chunk plus the overhead; exactly
    /// enough is accepted.
    #[test]
    fn batches_must_fit_in_a_frame() {
        let frame = 64 * 1024 + FRAME_OVERHEAD_BYTES;
        assert!(SyncObjConf::builder().frame_size_max(frame).build().is_ok());
        let errors = SyncObjConf::builder()
            .frame_size_max(frame - 1)
            .build()
            .expect_err("neither batch fits");
        let expected = [
            "append_entries_batch_size_bytes",
            "log_compaction_batch_size",
        ]
        .map(|option| ConfError::FrameTooSmall {
            frame_size_max: frame - 1,
            option,
            size: 64 * 1024,
        });
        assert_eq!(*errors, expected);
        assert_names(
            &errors[0],
            &["frame_size_max", "append_entries_batch_size_bytes", "65536"],
        );
        let error = only_error(
            SyncObjConf::builder()
                .frame_size_max(frame)
                .log_compaction_batch_size(64 * 1024 + 1),
        );
        assert_names(&error, &["frame_size_max", "log_compaction_batch_size"]);
        let error = only_error(SyncObjConf::builder().append_entries_batch_size_bytes(usize::MAX));
        assert!(matches!(error, ConfError::FrameTooSmall { .. }));
    }

    /// A frame limit beyond what a frame header's 32 bits can announce is rejected (with a
    /// budget of incoming bytes that holds such frames).
    #[test]
    fn frame_limit_must_fit_in_32_bits() {
        let largest = u32::MAX as usize;
        let builder = || SyncObjConf::builder().incoming_bytes_max(usize::MAX);
        assert!(builder().frame_size_max(largest).build().is_ok());
        if let Some(beyond) = largest.checked_add(1) {
            let error = only_error(builder().frame_size_max(beyond));
            assert_eq!(
                error,
                ConfError::FrameTooLarge {
                    frame_size_max: beyond
                }
            );
            assert_names(&error, &["frame_size_max", "32 bits"]);
        }
    }

    /// The connection limits' defaults are the transport's, and they build.
    #[test]
    fn connection_limits_default_to_the_transports() {
        let conf = SyncObjConf::builder()
            .build()
            .expect("the defaults are valid");
        let limits = ConnectionLimits::default();
        assert!(conf.accept_read_only());
        assert_eq!(conf.read_only_nodes_max(), limits.read_only_links_max);
        assert_eq!(
            conf.read_only_frame_size_max(),
            limits.read_only_frame_size_max as usize
        );
        assert_eq!(conf.read_only_bytes_max(), limits.read_only_bytes_max);
        assert_eq!(conf.handshake_timeout(), limits.handshake_timeout);
        assert_eq!(
            conf.unauthenticated_connections_max(),
            limits.unauthenticated_connections_max
        );
        assert_eq!(conf.accepts_per_second(), limits.accepts_per_second);
        assert_eq!(conf.incoming_bytes_max(), limits.incoming_bytes_max);
        assert_eq!(conf.admin_connections_max(), limits.admin_connections_max);
        assert!(
            SyncObjConf::builder()
                .accept_read_only(false)
                .build()
                .is_ok_and(|c| !c.accept_read_only())
        );
    }

    /// The administrators' cap: 0 (administration off) and 64 build, 65 does not.
    #[test]
    fn admin_connections_are_capped() {
        for cap in [0, 1, ADMIN_CONNECTIONS_LIMIT] {
            let conf = SyncObjConf::builder().admin_connections_max(cap).build();
            assert_eq!(conf.expect("valid").admin_connections_max(), cap);
        }
        let beyond = ADMIN_CONNECTIONS_LIMIT + 1;
        let error = only_error(SyncObjConf::builder().admin_connections_max(beyond));
        assert_eq!(
            error,
            ConfError::AdminConnectionsTooMany {
                admin_connections_max: beyond,
                max: ADMIN_CONNECTIONS_LIMIT,
            }
        );
        assert_names(&error, &["admin_connections_max", "64"]);
    }

    /// Read-only frames must hold the message around a call.
    #[test]
    fn read_only_frames_must_hold_a_call() {
        let error = only_error(SyncObjConf::builder().read_only_frame_size_max(4095));
        assert_eq!(
            error,
            ConfError::ReadOnlyFrameTooSmall {
                read_only_frame_size_max: 4095
            }
        );
        assert_names(&error, &["read_only_frame_size_max", "4095", "4096"]);
        let conf = SyncObjConf::builder().read_only_frame_size_max(FRAME_OVERHEAD_BYTES);
        assert!(conf.build().is_ok());
    }

    /// Each budget must hold the largest frame it lets through beside what else it holds; a
    /// larger frame limit needs a larger budget.
    #[test]
    fn budgets_must_hold_their_largest_frames() {
        let error = only_error(SyncObjConf::builder().read_only_bytes_max(1024 * 1024));
        let ConfError::BudgetTooSmall { option, needed, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(option, "read_only_bytes_max");
        assert!(needed > 1024 * 1024);
        let conf = SyncObjConf::builder()
            .read_only_bytes_max(needed)
            .build()
            .expect("exactly enough");
        assert_eq!(conf.read_only_bytes_max(), needed);
        let error = only_error(SyncObjConf::builder().frame_size_max(120 * 1024 * 1024));
        assert!(
            matches!(
                error,
                ConfError::BudgetTooSmall {
                    option: "incoming_bytes_max",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_names(&error, &["incoming_bytes_max", "134217728"]);
        let raised = SyncObjConf::builder()
            .frame_size_max(120 * 1024 * 1024)
            .incoming_bytes_max(256 * 1024 * 1024);
        assert!(raised.build().is_ok());
    }
}
