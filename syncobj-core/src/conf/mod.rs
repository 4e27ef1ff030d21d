//! The settings of a `SyncObj` node: every PySyncObj option, parsed once into a valid
//! [`SyncObjConf`], and mapped to the Raft core's settings.
//!
//! [`SyncObjConf::builder`] has one setter per option, named as the option: PySyncObj's names in
//! snake_case, with [`Duration`]s instead of float seconds, plus a few of
//! syncobj's own. [`build`](SyncObjConfBuilder::build) checks every rule and reports every broken
//! one at once ([`ConfErrors`]), so a [`SyncObjConf`] is always valid. Read an option back with
//! the accessor of the same name; change a built configuration through
//! [`to_builder`](SyncObjConf::to_builder).
//!
//! ```
//! use std::time::Duration;
//! use syncobj_core::conf::{ConfError, SyncObjConf};
//!
//! # fn main() -> Result<(), syncobj_core::conf::ConfErrors> {
//! let conf = SyncObjConf::builder()
//!     .password("a long shared secret")
//!     .journal_file("data/journal")
//!     .raft_min_timeout(Duration::from_millis(500))
//!     .build()?;
//! assert_eq!(conf.raft_min_timeout(), Duration::from_millis(500));
//!
//! // Every broken rule is reported, not only the first one.
//! let errors = SyncObjConf::builder()
//!     .commands_queue_size(0)
//!     .password("")
//!     .build()
//!     .unwrap_err();
//! assert_eq!(
//!     errors.into_vec(),
//!     [ConfError::Zero { option: "commands_queue_size" }, ConfError::EmptyPassword]
//! );
//! # Ok(())
//! # }
//! ```
//!
//! The options come in groups, each with its setters, accessors and rules: the tick loop and
//! the calls (`auto_tick`, `commands_queue_size`, `call_timeout`…), Raft (timeouts, batching,
//! pre-vote…), the network (password, addresses, sockets, frames, what strangers may cost),
//! storage (journal, snapshots, compaction) and the callbacks.
//!
//! An option whose subsystem a later release builds is accepted now and documented as
//! "pending" on its setter, and the driver logs a warning for each one a caller changed instead
//! of ignoring it silently. None is left today.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use syncobj_net::tcp::ConnectionLimits;

use crate::serializer::SnapshotSerializer;

/// Defines, for each option listed with its documentation and type, a setter of that name on
/// [`SyncObjConfBuilder`] that stores the value as given, and an accessor of that name on
/// [`SyncObjConf`] that returns it (the option's type must be `Copy`).
macro_rules! options {
    ($($(#[$doc:meta])* $option:ident: $ty:ty;)*) => {
        impl $crate::conf::SyncObjConfBuilder {
            $(
                $(#[$doc])*
                pub fn $option(mut self, value: $ty) -> Self {
                    self.conf.$option = value;
                    self
                }
            )*
        }

        impl $crate::conf::SyncObjConf {
            $(
                #[doc = concat!(
                    "The `", stringify!($option), "` option; see [`SyncObjConfBuilder::",
                    stringify!($option), "`](crate::conf::SyncObjConfBuilder::",
                    stringify!($option), ")."
                )]
                pub fn $option(&self) -> $ty {
                    self.$option
                }
            )*
        }
    };
}

mod builder;
mod callbacks;
mod calls;
mod error;
mod network;
mod raft;
mod storage;

pub use builder::SyncObjConfBuilder;
pub use callbacks::{OnCodeVersionChanged, OnReady, OnStateChanged};
pub use error::{ConfError, ConfErrors};
pub use network::{FRAME_OVERHEAD_BYTES, PollerType, PreferredAddrType, TcpKeepalive};
pub use storage::FsyncPolicy;

/// The settings of one `SyncObj` node (PySyncObj `SyncObjConf`), checked: every value of this
/// type satisfies every rule of [`SyncObjConfBuilder::build`].
///
/// Make one with [`SyncObjConf::builder`]; [`Default`] gives the defaults, which are valid.
/// Each option has a read accessor of its own name, documented on the builder's setter of that
/// name; [`to_builder`](Self::to_builder) starts a changed copy. `Debug` never prints the
/// password. Cloning is cheap except for the strings and paths; the callbacks are shared.
#[derive(Clone)]
pub struct SyncObjConf {
    // The tick loop and the calls (`calls.rs`).
    pub(crate) auto_tick: bool,
    pub(crate) auto_tick_period: Duration,
    pub(crate) commands_queue_size: usize,
    pub(crate) commands_wait_leader: bool,
    pub(crate) leaderless_calls_max: usize,
    pub(crate) call_timeout: Option<Duration>,
    // Raft (`raft.rs`).
    pub(crate) raft_min_timeout: Duration,
    pub(crate) raft_max_timeout: Duration,
    pub(crate) append_entries_period: Duration,
    pub(crate) leader_fallback_timeout: Duration,
    pub(crate) append_entries_use_batch: bool,
    pub(crate) append_entries_batch_size_bytes: usize,
    pub(crate) max_inflight_appends: usize,
    pub(crate) uncommitted_entries_max: u64,
    pub(crate) pre_vote: bool,
    pub(crate) check_quorum: bool,
    pub(crate) fast_failover: bool,
    pub(crate) cold_start_timeout: Option<Duration>,
    pub(crate) seed: Option<u64>,
    pub(crate) dynamic_membership_change: bool,
    // The network (`network.rs`).
    pub(crate) password: Option<String>,
    pub(crate) bind_address: Option<String>,
    pub(crate) preferred_addr_type: PreferredAddrType,
    pub(crate) connection_timeout: Duration,
    pub(crate) connection_retry_time: Duration,
    pub(crate) send_buffer_size: usize,
    pub(crate) recv_buffer_size: usize,
    pub(crate) dns_cache_time: Duration,
    pub(crate) dns_fail_cache_time: Duration,
    pub(crate) bind_retry_time: Duration,
    pub(crate) max_bind_retries: u32,
    pub(crate) poller_type: PollerType,
    pub(crate) tcp_keepalive: Option<TcpKeepalive>,
    pub(crate) frame_size_max: usize,
    pub(crate) accept_read_only: bool,
    pub(crate) admin_from_anywhere: bool,
    pub(crate) admin_connections_max: usize,
    pub(crate) read_only_nodes_max: usize,
    pub(crate) read_only_frame_size_max: usize,
    pub(crate) read_only_bytes_max: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) unauthenticated_connections_max: usize,
    pub(crate) accepts_per_second: u32,
    pub(crate) incoming_bytes_max: usize,
    // Storage: the journal and snapshots (`storage.rs`).
    pub(crate) cluster_name: Option<String>,
    pub(crate) journal_file: Option<PathBuf>,
    pub(crate) journal_fsync: FsyncPolicy,
    pub(crate) full_dump_file: Option<PathBuf>,
    pub(crate) log_compaction_min_entries: u64,
    pub(crate) log_compaction_min_time: Duration,
    pub(crate) log_compaction_split: bool,
    pub(crate) log_compaction_batch_size: usize,
    pub(crate) use_fork: bool,
    pub(crate) serializer: Option<Arc<dyn SnapshotSerializer>>,
    // Callbacks (`callbacks.rs`).
    pub(crate) on_state_changed: Option<OnStateChanged>,
    pub(crate) on_ready: Option<OnReady>,
    pub(crate) on_code_version_changed: Option<OnCodeVersionChanged>,
}

/// `[("field", conf.field != default.field), …]` for each field named, in order.
macro_rules! changed {
    ($conf:expr, $default:expr; $($field:ident),* $(,)?) => {
        [$((stringify!($field), $conf.$field != $default.$field)),*]
    };
}

impl SyncObjConf {
    /// A builder holding the default of every option.
    pub fn builder() -> SyncObjConfBuilder {
        SyncObjConfBuilder::default()
    }

    /// A builder holding this configuration's options, to build a changed copy.
    ///
    /// Costs a clone of the configuration.
    pub fn to_builder(&self) -> SyncObjConfBuilder {
        SyncObjConfBuilder { conf: self.clone() }
    }

    /// The options set to a non-default value whose subsystem is not built yet, in field order;
    /// the driver logs a warning for each. Empty for the default configuration.
    pub(crate) fn pending_options(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The options set to a non-default value that syncobj accepts but ignores by design
    /// (`append_entries_use_batch`, `poller_type`, `use_fork`; see each setter), so the driver
    /// can say so in its log. Empty for the default configuration.
    pub(crate) fn ignored_options(&self) -> Vec<&'static str> {
        let d = Self::default();
        names_of_true(&changed!(self, d; append_entries_use_batch, poller_type, use_fork))
    }
}

impl Default for SyncObjConf {
    fn default() -> Self {
        let limits = ConnectionLimits::default();
        SyncObjConf {
            auto_tick: true,
            auto_tick_period: Duration::from_millis(50),
            commands_queue_size: 100_000,
            commands_wait_leader: true,
            leaderless_calls_max: 100_000,
            call_timeout: Some(Duration::from_secs(30)),
            raft_min_timeout: Duration::from_millis(400),
            raft_max_timeout: Duration::from_millis(1400),
            append_entries_period: Duration::from_millis(100),
            leader_fallback_timeout: Duration::from_millis(400),
            append_entries_use_batch: true,
            append_entries_batch_size_bytes: 64 * 1024,
            max_inflight_appends: 64,
            uncommitted_entries_max: 100_000,
            pre_vote: true,
            check_quorum: true,
            fast_failover: true,
            cold_start_timeout: Some(Duration::from_millis(50)),
            seed: None,
            dynamic_membership_change: false,
            password: None,
            bind_address: None,
            preferred_addr_type: PreferredAddrType::Ipv4,
            connection_timeout: Duration::from_millis(3500),
            connection_retry_time: Duration::from_secs(5),
            send_buffer_size: 64 * 1024,
            recv_buffer_size: 64 * 1024,
            dns_cache_time: Duration::from_secs(600),
            dns_fail_cache_time: Duration::from_secs(30),
            bind_retry_time: Duration::from_secs(1),
            max_bind_retries: 0,
            poller_type: PollerType::Auto,
            tcp_keepalive: Some(TcpKeepalive::default()),
            frame_size_max: 64 * 1024 * 1024,
            accept_read_only: true,
            admin_from_anywhere: false,
            admin_connections_max: limits.admin_connections_max,
            read_only_nodes_max: limits.read_only_links_max,
            read_only_frame_size_max: limits.read_only_frame_size_max as usize,
            read_only_bytes_max: limits.read_only_bytes_max,
            handshake_timeout: limits.handshake_timeout,
            unauthenticated_connections_max: limits.unauthenticated_connections_max,
            accepts_per_second: limits.accepts_per_second,
            incoming_bytes_max: limits.incoming_bytes_max,
            cluster_name: None,
            journal_file: None,
            journal_fsync: FsyncPolicy::Always,
            full_dump_file: None,
            log_compaction_min_entries: 5000,
            log_compaction_min_time: Duration::from_secs(300),
            log_compaction_split: false,
            log_compaction_batch_size: 64 * 1024,
            use_fork: true,
            serializer: None,
            on_state_changed: None,
            on_ready: None,
            on_code_version_changed: None,
        }
    }
}

impl fmt::Debug for SyncObjConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("SyncObjConf");
        s.field("auto_tick", &self.auto_tick)
            .field("auto_tick_period", &self.auto_tick_period)
            .field("commands_queue_size", &self.commands_queue_size)
            .field("commands_wait_leader", &self.commands_wait_leader)
            .field("leaderless_calls_max", &self.leaderless_calls_max)
            .field("call_timeout", &self.call_timeout);
        s.field("raft_min_timeout", &self.raft_min_timeout)
            .field("raft_max_timeout", &self.raft_max_timeout)
            .field("append_entries_period", &self.append_entries_period)
            .field("leader_fallback_timeout", &self.leader_fallback_timeout)
            .field("append_entries_use_batch", &self.append_entries_use_batch)
            .field(
                "append_entries_batch_size_bytes",
                &self.append_entries_batch_size_bytes,
            )
            .field("max_inflight_appends", &self.max_inflight_appends)
            .field("uncommitted_entries_max", &self.uncommitted_entries_max)
            .field("pre_vote", &self.pre_vote)
            .field("check_quorum", &self.check_quorum)
            .field("fast_failover", &self.fast_failover)
            .field("cold_start_timeout", &self.cold_start_timeout)
            .field("seed", &self.seed)
            .field("dynamic_membership_change", &self.dynamic_membership_change);
        s.field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("bind_address", &self.bind_address)
            .field("preferred_addr_type", &self.preferred_addr_type)
            .field("connection_timeout", &self.connection_timeout)
            .field("connection_retry_time", &self.connection_retry_time)
            .field("send_buffer_size", &self.send_buffer_size)
            .field("recv_buffer_size", &self.recv_buffer_size)
            .field("dns_cache_time", &self.dns_cache_time)
            .field("dns_fail_cache_time", &self.dns_fail_cache_time)
            .field("bind_retry_time", &self.bind_retry_time)
            .field("max_bind_retries", &self.max_bind_retries)
            .field("poller_type", &self.poller_type)
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("frame_size_max", &self.frame_size_max)
            .field("accept_read_only", &self.accept_read_only)
            .field("admin_from_anywhere", &self.admin_from_anywhere)
            .field("admin_connections_max", &self.admin_connections_max)
            .field("read_only_nodes_max", &self.read_only_nodes_max)
            .field("read_only_frame_size_max", &self.read_only_frame_size_max)
            .field("read_only_bytes_max", &self.read_only_bytes_max)
            .field("handshake_timeout", &self.handshake_timeout)
            .field(
                "unauthenticated_connections_max",
                &self.unauthenticated_connections_max,
            )
            .field("accepts_per_second", &self.accepts_per_second)
            .field("incoming_bytes_max", &self.incoming_bytes_max);
        s.field("cluster_name", &self.cluster_name)
            .field("journal_file", &self.journal_file)
            .field("journal_fsync", &self.journal_fsync)
            .field("full_dump_file", &self.full_dump_file)
            .field(
                "log_compaction_min_entries",
                &self.log_compaction_min_entries,
            )
            .field("log_compaction_min_time", &self.log_compaction_min_time)
            .field("log_compaction_split", &self.log_compaction_split)
            .field("log_compaction_batch_size", &self.log_compaction_batch_size)
            .field("use_fork", &self.use_fork)
            .field("serializer", &callback(self.serializer.as_ref()));
        s.field(
            "on_state_changed",
            &callback(self.on_state_changed.as_ref()),
        )
        .field("on_ready", &callback(self.on_ready.as_ref()))
        .field(
            "on_code_version_changed",
            &callback(self.on_code_version_changed.as_ref()),
        )
        .finish()
    }
}

/// The names whose flag is set, in order.
fn names_of_true(flags: &[(&'static str, bool)]) -> Vec<&'static str> {
    flags
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect()
}

/// How `Debug` shows a callback, which has no `Debug` of its own.
fn callback<T: ?Sized>(value: Option<&Arc<T>>) -> Option<&'static str> {
    value.map(|_| "<callback>")
}

/// What the tests of every group of options share.
#[cfg(test)]
mod testing {
    use std::time::Duration;

    use super::{ConfError, SyncObjConfBuilder};

    /// Milliseconds as a `Duration`.
    pub(super) fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// The one error `builder` fails to build with.
    pub(super) fn only_error(builder: SyncObjConfBuilder) -> ConfError {
        let errors = builder
            .build()
            .expect_err("the configuration must be rejected")
            .into_vec();
        match <[ConfError; 1]>::try_from(errors) {
            Ok([error]) => error,
            Err(errors) => panic!("one error expected, got {errors:?}"),
        }
    }

    /// Asserts that `error`'s message names every one of `names`.
    pub(super) fn assert_names(error: &ConfError, names: &[&str]) {
        let text = error.to_string();
        for name in names {
            assert!(text.contains(name), "{text:?} does not name {name}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::testing::{ms, only_error};
    use super::{
        ConfError, FRAME_OVERHEAD_BYTES, FsyncPolicy, PollerType, PreferredAddrType, SyncObjConf,
        SyncObjConfBuilder, TcpKeepalive,
    };
    use crate::status::RaftState;

    /// The defaults are PySyncObj's, except the 400 ms leader fallback, and they build; the
    /// Raft settings they give validate too.
    #[test]
    fn defaults_follow_pysyncobj_and_build() {
        let conf = SyncObjConf::builder()
            .build()
            .expect("the defaults are valid");
        assert_eq!(conf.raft_config(7).validate(), Ok(()));
        assert_eq!(conf.auto_tick_period(), ms(50));
        assert_eq!(conf.commands_queue_size(), 100_000);
        assert_eq!(conf.leaderless_calls_max(), 100_000);
        assert_eq!(conf.uncommitted_entries_max(), 100_000);
        assert_eq!(
            (conf.raft_min_timeout(), conf.raft_max_timeout()),
            (ms(400), ms(1400))
        );
        assert_eq!(conf.append_entries_period(), ms(100));
        assert_eq!(conf.connection_timeout(), ms(3500));
        assert_eq!(conf.leader_fallback_timeout(), conf.raft_min_timeout());
        assert_eq!(conf.preferred_addr_type(), PreferredAddrType::Ipv4);
        assert_eq!(conf.poller_type(), PollerType::Auto);
        assert_eq!(conf.log_compaction_min_entries(), 5000);
        assert_eq!(conf.max_bind_retries(), 0);
        assert_eq!(conf.tcp_keepalive(), Some(TcpKeepalive::default()));
        assert_eq!(conf.call_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(conf.frame_size_max(), 64 * 1024 * 1024);
        assert_eq!(conf.journal_fsync(), FsyncPolicy::Always);
        assert!(conf.pre_vote() && conf.check_quorum() && conf.use_fork());
        assert!(conf.fast_failover());
        assert_eq!(conf.cold_start_timeout(), Some(ms(50)));
        assert!(conf.commands_wait_leader() && conf.auto_tick());
        assert_eq!(conf.seed(), None);
        assert_eq!(conf.password(), None);
        assert_eq!(conf.journal_file(), None);
        assert!(conf.on_ready().is_none() && conf.serializer().is_none());
        assert!(conf.pending_options().is_empty());
        assert!(conf.ignored_options().is_empty());
    }

    /// A builder that breaks every rule but `FrameTooLarge` (a frame limit too large for 32
    /// bits holds every batch), each once.
    fn breaking_every_rule() -> SyncObjConfBuilder {
        let keepalive = TcpKeepalive {
            idle: ms(500),
            interval: ms(999),
            count: 0,
        };
        SyncObjConf::builder()
            .auto_tick_period(Duration::ZERO)
            .commands_queue_size(0)
            .leaderless_calls_max(0)
            .call_timeout(Some(Duration::ZERO))
            .raft_min_timeout(ms(300))
            .raft_max_timeout(ms(200))
            .leader_fallback_timeout(ms(100))
            .max_inflight_appends(0)
            .uncommitted_entries_max(0)
            .password("")
            .connection_timeout(ms(199))
            .connection_retry_time(Duration::ZERO)
            .send_buffer_size(0)
            .recv_buffer_size(0)
            .bind_retry_time(Duration::ZERO)
            .tcp_keepalive(Some(keepalive))
            .append_entries_batch_size_bytes(0)
            .log_compaction_batch_size(0)
            .frame_size_max(1000)
            .log_compaction_min_entries(1)
            .log_compaction_min_time(Duration::ZERO)
    }

    /// The errors of [`breaking_every_rule`], in the order of the groups: calls, Raft,
    /// network, storage.
    fn every_error() -> Vec<ConfError> {
        let zero = |option| ConfError::Zero { option };
        let keepalive = |option, value| ConfError::KeepaliveTooShort { option, value };
        let frame = |option| ConfError::FrameTooSmall {
            frame_size_max: 1000,
            option,
            size: 0,
        };
        vec![
            zero("auto_tick_period"),
            zero("commands_queue_size"),
            zero("call_timeout"),
            ConfError::LeaderlessCallsZero,
            zero("append_entries_batch_size_bytes"),
            zero("max_inflight_appends"),
            zero("uncommitted_entries_max"),
            ConfError::ElectionTimeoutTooShort {
                raft_min_timeout: ms(300),
                append_entries_period: ms(100),
            },
            ConfError::ElectionTimeoutRange {
                raft_min_timeout: ms(300),
                raft_max_timeout: ms(200),
            },
            ConfError::FallbackTooShort {
                leader_fallback_timeout: ms(100),
                append_entries_period: ms(100),
            },
            ConfError::EmptyPassword,
            zero("connection_retry_time"),
            zero("send_buffer_size"),
            zero("recv_buffer_size"),
            zero("bind_retry_time"),
            zero("tcp_keepalive.count"),
            keepalive("tcp_keepalive.idle", ms(500)),
            keepalive("tcp_keepalive.interval", ms(999)),
            ConfError::ConnectionTimeoutTooShort {
                connection_timeout: ms(199),
                raft_max_timeout: ms(200),
            },
            frame("append_entries_batch_size_bytes"),
            frame("log_compaction_batch_size"),
            zero("log_compaction_batch_size"),
            zero("log_compaction_min_time"),
            ConfError::CompactionMinEntriesTooSmall {
                log_compaction_min_entries: 1,
            },
        ]
    }

    /// Breaking every rule at once yields every error, in the order of the groups, and
    /// `Display` puts each on its own line.
    #[test]
    fn every_broken_rule_is_reported_at_once() {
        let errors = breaking_every_rule()
            .build()
            .expect_err("every rule is broken");
        let expected = every_error();
        assert_eq!(*errors, expected);
        let text = errors.to_string();
        assert_eq!(text.lines().count(), expected.len(), "{text}");
        for (line, error) in text.lines().zip(&expected) {
            assert_eq!(line, error.to_string());
        }
        assert_eq!(errors.into_vec(), expected);
    }

    /// Each option that must be positive is rejected as `Zero` naming exactly that option.
    #[test]
    fn each_zero_limit_is_rejected_by_name() {
        type SetZero = fn(SyncObjConfBuilder) -> SyncObjConfBuilder;
        let keepalive = |b: SyncObjConfBuilder| {
            let keepalive = TcpKeepalive {
                count: 0,
                ..TcpKeepalive::default()
            };
            b.tcp_keepalive(Some(keepalive))
        };
        let cases: [(&str, SetZero); 18] = [
            ("auto_tick_period", |b| b.auto_tick_period(Duration::ZERO)),
            ("append_entries_period", |b| {
                b.append_entries_period(Duration::ZERO)
            }),
            ("commands_queue_size", |b| b.commands_queue_size(0)),
            ("call_timeout", |b| b.call_timeout(Some(Duration::ZERO))),
            ("append_entries_batch_size_bytes", |b| {
                b.append_entries_batch_size_bytes(0)
            }),
            ("max_inflight_appends", |b| b.max_inflight_appends(0)),
            ("uncommitted_entries_max", |b| b.uncommitted_entries_max(0)),
            ("connection_retry_time", |b| {
                b.connection_retry_time(Duration::ZERO)
            }),
            ("send_buffer_size", |b| b.send_buffer_size(0)),
            ("recv_buffer_size", |b| b.recv_buffer_size(0)),
            ("bind_retry_time", |b| b.bind_retry_time(Duration::ZERO)),
            ("tcp_keepalive.count", keepalive),
            ("log_compaction_batch_size", |b| {
                b.log_compaction_batch_size(0)
            }),
            ("log_compaction_min_time", |b| {
                b.log_compaction_min_time(Duration::ZERO)
            }),
            ("read_only_nodes_max", |b| b.read_only_nodes_max(0)),
            ("handshake_timeout", |b| b.handshake_timeout(Duration::ZERO)),
            ("unauthenticated_connections_max", |b| {
                b.unauthenticated_connections_max(0)
            }),
            ("accepts_per_second", |b| b.accepts_per_second(0)),
        ];
        for (option, set_zero) in cases {
            let error = only_error(set_zero(SyncObjConf::builder()));
            assert_eq!(error, ConfError::Zero { option });
            assert_eq!(
                error.to_string(),
                format!("{option} must be greater than zero")
            );
        }
    }

    /// `to_builder` gives back every option: built again, the copy is the same configuration,
    /// and a change made through it leaves the original alone.
    #[test]
    fn to_builder_round_trips() {
        let conf = SyncObjConf::builder()
            .password("secret")
            .journal_file("journal")
            .full_dump_file("dump")
            .bind_address("127.0.0.1:4321")
            .seed(7)
            .raft_min_timeout(ms(500))
            .leaderless_calls_max(10)
            .uncommitted_entries_max(20)
            .journal_fsync(FsyncPolicy::Never)
            .on_ready(|| {})
            .build()
            .expect("valid");
        let copy = conf.to_builder().build().expect("still valid");
        assert_eq!(format!("{copy:?}"), format!("{conf:?}"));
        assert_eq!(copy.password(), Some("secret"));
        assert_eq!(copy.bind_address(), Some("127.0.0.1:4321"));
        assert_eq!(copy.journal_file(), Some(std::path::Path::new("journal")));
        assert_eq!(copy.full_dump_file(), Some(std::path::Path::new("dump")));
        assert_eq!(copy.seed(), Some(7));
        assert!(Arc::ptr_eq(
            conf.on_ready().expect("set"),
            copy.on_ready().expect("kept")
        ));
        let changed = conf
            .to_builder()
            .raft_min_timeout(ms(600))
            .build()
            .expect("valid");
        assert_eq!(changed.raft_min_timeout(), ms(600));
        assert_eq!(conf.raft_min_timeout(), ms(500));
        assert!(conf.to_builder().password("").build().is_err());
    }

    /// `Debug` of the configuration and of its builder shows that a password is set but never
    /// the password, and shows every option.
    #[test]
    fn debug_hides_the_password() {
        let builder = SyncObjConf::builder()
            .password("hunter2-secret")
            .on_ready(|| {});
        let conf = builder.clone().build().expect("valid");
        for text in [format!("{conf:?}"), format!("{builder:?}")] {
            assert!(!text.contains("hunter2-secret"), "{text}");
            assert!(text.contains("password: Some(\"<redacted>\")"), "{text}");
            assert!(text.contains("on_ready: Some(\"<callback>\")"), "{text}");
            assert!(text.contains("on_state_changed: None"), "{text}");
        }
        assert!(format!("{conf:#?}").matches('\n').count() > 44);
        assert!(format!("{:?}", SyncObjConf::default()).contains("password: None"));
    }

    /// `pending_options` lists exactly the not-yet-built options that were changed, in field
    /// order; built options and options ignored by design are not listed.
    #[test]
    fn pending_options_lists_exactly_what_was_set() {
        let conf = SyncObjConf::builder()
            .password("p")
            .full_dump_file("dump")
            .dynamic_membership_change(true)
            .tcp_keepalive(None)
            .auto_tick(false)
            .commands_queue_size(10)
            .poller_type(PollerType::Select)
            .build()
            .expect("valid");
        assert!(conf.pending_options().is_empty(), "every option is built");
        assert_eq!(conf.ignored_options(), ["poller_type"]);
    }

    /// The options ignored by design are each reported by `ignored_options`, never as pending.
    #[test]
    fn ignored_options_are_reported_separately() {
        let conf = SyncObjConf::builder()
            .append_entries_use_batch(false)
            .poller_type(PollerType::Poll)
            .use_fork(false)
            .build()
            .expect("valid");
        assert_eq!(
            conf.ignored_options(),
            ["append_entries_use_batch", "poller_type", "use_fork"]
        );
        assert!(conf.pending_options().is_empty());
    }

    /// The callbacks are stored and shared by clones.
    #[test]
    fn callbacks_are_stored_and_shared() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        let conf = SyncObjConf::builder()
            .on_state_changed(move |old, new| {
                seen.fetch_add(
                    u32::from(old.code()) * 10 + u32::from(new.code()),
                    Ordering::SeqCst,
                );
            })
            .on_code_version_changed(|old, new| assert!(new > old))
            .build()
            .expect("valid");
        let copy = conf.clone();
        let on_state_changed = copy.on_state_changed().expect("the callback was set");
        on_state_changed(RaftState::Candidate, RaftState::Leader);
        assert_eq!(calls.load(Ordering::SeqCst), 12);
        (conf
            .on_code_version_changed()
            .expect("the callback was set"))(1, 2);
    }

    /// A frame limit of exactly a batch plus the overhead is accepted.
    #[test]
    fn the_smallest_frame_that_holds_a_batch_builds() {
        let frame = 64 * 1024 + FRAME_OVERHEAD_BYTES;
        assert!(SyncObjConf::builder().frame_size_max(frame).build().is_ok());
    }
}
