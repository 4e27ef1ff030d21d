//! The TCP transport a node starts with: its settings from the configuration, the cluster's
//! identity, the key derived from the password.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use syncobj_net::handshake::{ClusterId, Peer};
use syncobj_net::resolve::{AddrPreference, ResolverSettings};
use syncobj_net::secure::ClusterKey;
use syncobj_net::tcp::{
    ConnectionLimits, Keepalive, POLL_BYTES_MAX_DEFAULT, POLL_FRAMES_MAX_DEFAULT,
    POLL_SPIN_DEFAULT, TcpSettings, TcpTransport,
};

use super::StartError;
use crate::conf::{PreferredAddrType, SyncObjConf};

/// Starts the TCP transport of `node` in the cluster of `voters` (every voter, `node` included
/// if it is one), deriving the key from the password if there is one.
pub(super) fn tcp_transport(
    node: Peer,
    voters: &[String],
    conf: &SyncObjConf,
) -> Result<TcpTransport, StartError> {
    let key = match conf.password.as_deref() {
        Some(password) => Some(ClusterKey::derive(password).map_err(StartError::Password)?),
        None => {
            tracing::warn!(
                node = ?node,
                "no password: the transport is unauthenticated and unencrypted"
            );
            None
        }
    };
    let settings = TcpSettings {
        node,
        bind_address: conf.bind_address.clone(),
        cluster: match conf.dynamic_membership_change {
            true => ClusterId::dynamic_membership(),
            false => ClusterId::of_voters(voters),
        },
        key,
        voters: voters.to_vec(),
        resolver: ResolverSettings {
            preference: match conf.preferred_addr_type {
                PreferredAddrType::Ipv4 => AddrPreference::Ipv4,
                PreferredAddrType::Ipv6 => AddrPreference::Ipv6,
                PreferredAddrType::Any => AddrPreference::Any,
            },
            cache_time: conf.dns_cache_time,
            fail_cache_time: conf.dns_fail_cache_time,
            // Every voter and this node's bind address, with room to spare.
            cache_entries_max: voters.len().saturating_mul(2).max(16),
            ..ResolverSettings::default()
        },
        frame_size_max: conf.frame_max(),
        send_queue_bytes_max: conf.frame_size_max.saturating_mul(2),
        connection_timeout: conf.connection_timeout,
        connection_retry_time: conf.connection_retry_time,
        accept_read_only: conf.accept_read_only,
        admin_from_anywhere: conf.admin_from_anywhere,
        limits: ConnectionLimits {
            handshake_timeout: conf.handshake_timeout,
            unauthenticated_connections_max: conf.unauthenticated_connections_max,
            accepts_per_second: conf.accepts_per_second,
            read_only_links_max: conf.read_only_nodes_max,
            read_only_frame_size_max: conf.read_only_frame_max(),
            read_only_bytes_max: conf.read_only_bytes_max,
            incoming_bytes_max: conf.incoming_bytes_max,
            admin_connections_max: conf.admin_connections_max,
        },
        send_buffer_size: Some(conf.send_buffer_size),
        recv_buffer_size: Some(conf.recv_buffer_size),
        tcp_keepalive: conf.tcp_keepalive.map(|k| Keepalive {
            idle: k.idle,
            interval: k.interval,
            count: k.count,
        }),
        bind_retry_time: conf.bind_retry_time,
        max_bind_retries: conf.max_bind_retries,
        poll_frames_max: POLL_FRAMES_MAX_DEFAULT,
        poll_bytes_max: POLL_BYTES_MAX_DEFAULT,
        poll_spin: POLL_SPIN_DEFAULT,
    };
    Ok(TcpTransport::bind(settings)?)
}

/// A number no other node is likely to draw: a read-only node's name.
pub(super) fn random_number() -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // `RandomState` is keyed from the OS's randomness.
    RandomState::new().hash_one(clock)
}

pub(crate) fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
