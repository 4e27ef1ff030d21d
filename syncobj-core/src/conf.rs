//! The settings of a `SyncObj` node: every PySyncObj option, validated, and mapped to [`RaftConfig`].
//!
//! [`SyncObjConf`] carries every option of PySyncObj's `SyncObjConf` under its snake_case name,
//! with [`Duration`]s instead of float seconds, plus a few of syncobj's own. An option whose
//! subsystem a later release builds is accepted now and documented as "pending" on its field,
//! and [`SyncObjConf::pending_options`] names those a caller changed, so the driver can warn
//! about each one instead of ignoring it silently. Only one is left: `dynamic_membership_change`,
//! for *the membership release* (adding and removing nodes at run time).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::raft::RaftConfig;
use crate::serializer::SnapshotSerializer;
use crate::status::RaftState;

/// The room a frame must have beyond a full AppendEntries batch or snapshot chunk, in bytes: the
/// message header, the MessagePack framing of the batch and the encryption overhead.
pub const FRAME_OVERHEAD_BYTES: usize = 4096;

/// Called with the old and the new state on every Raft state change, on the tick thread.
pub type OnStateChanged = Arc<dyn Fn(RaftState, RaftState) + Send + Sync>;

/// Called once, on the tick thread, when the node has first caught up with the leader's commit
/// index.
pub type OnReady = Arc<dyn Fn() + Send + Sync>;

/// Called with the old and the new enabled code version when a version entry is applied, on the
/// tick thread.
pub type OnCodeVersionChanged = Arc<dyn Fn(u32, u32) + Send + Sync>;

/// The settings of one `SyncObj` node (PySyncObj `SyncObjConf`).
///
/// Build one with [`Default`] and the `with_*` setters, or with struct-update syntax; every field
/// is public. [`validate`](Self::validate) checks the settings against each other.
/// `Debug` never prints the password. Cloning is cheap except for the strings and paths; the
/// callbacks are shared.
#[derive(Clone)]
pub struct SyncObjConf {
    /// The shared secret that authenticates and encrypts every connection (PySyncObj
    /// `password`): every node derives a key from it with Argon2id at start (tens of
    /// milliseconds, 19 MiB) and connections run the Noise protocol under that key. A node with
    /// another password never joins. Must not be empty. Default: `None`, an unauthenticated,
    /// unencrypted transport (the node says so in its log at start).
    pub password: Option<String>,
    /// Whether a thread of the node's own runs the tick loop; if `false` the caller must call
    /// `do_tick` (PySyncObj `autoTick`). Default: `true`.
    pub auto_tick: bool,
    /// The longest the auto-tick thread waits for events in one tick (PySyncObj `autoTickPeriod`).
    /// Must be positive. Default: 50 ms.
    pub auto_tick_period: Duration,
    /// The capacity of the local command queue; a full queue fails a call at once with
    /// `QueueFull` (PySyncObj `commandsQueueSize`). It also bounds the uncommitted entries a
    /// leader holds ([`RaftConfig::uncommitted_entries_max`]). Must be positive. Default: 100 000.
    pub commands_queue_size: usize,
    /// The lower bound of the randomized election timeout (PySyncObj `raftMinTimeout`). Must
    /// exceed three `append_entries_period`s. Default: 400 ms.
    pub raft_min_timeout: Duration,
    /// The upper bound of the randomized election timeout (PySyncObj `raftMaxTimeout`). Must
    /// exceed `raft_min_timeout`. Default: 1.4 s.
    pub raft_max_timeout: Duration,
    /// How often the leader sends heartbeats (PySyncObj `appendEntriesPeriod`). Must be positive.
    /// Default: 100 ms.
    pub append_entries_period: Duration,
    /// A connection is dead after this long without a byte read (PySyncObj `connectionTimeout`).
    /// Must be at least `raft_max_timeout`. Idle links carry empty keep-alive frames, so only
    /// dead links time out. Default: 3.5 s.
    pub connection_timeout: Duration,
    /// The least time between two attempts to dial a node (PySyncObj `connectionRetryTime`).
    /// Must be positive. Default: 5 s.
    pub connection_retry_time: Duration,
    /// A leader that has not heard from a majority of voters for this long steps down
    /// (PySyncObj `leaderFallbackTimeout`). Must exceed `append_entries_period`.
    ///
    /// Default: 400 ms, the default minimum election timeout, where PySyncObj waits 30 s: a leader
    /// cut off from its majority then steps down at about the time that majority can first elect
    /// a successor, so two nodes seldom both believe they lead (and serve stale local reads),
    /// while three lost heartbeats in a row are still tolerated.
    pub leader_fallback_timeout: Duration,
    /// PySyncObj `appendEntriesUseBatch`: `true` sends new entries only every
    /// `append_entries_period`, `false` right after each append. Default: `true`.
    ///
    /// Ignored by design: syncobj's leader sends new entries when the tick loop has drained a
    /// batch of proposals, pipelined up to `max_inflight_appends`, which gives PySyncObj's
    /// batched throughput without its period-long latency. Both values behave that way.
    pub append_entries_use_batch: bool,
    /// The most command bytes (plus a small per-entry overhead) one AppendEntries carries; a
    /// single larger entry is still sent alone (PySyncObj `appendEntriesBatchSizeBytes`). Must be
    /// positive and fit in a frame. Default: 64 KiB.
    pub append_entries_batch_size_bytes: usize,
    /// The `host:port` to listen on (PySyncObj `bindAddress`). Default: `None`, the self
    /// address itself — not every interface, as PySyncObj does.
    pub bind_address: Option<String>,
    /// Which address family to prefer when a host name resolves to both (PySyncObj
    /// `preferredAddrType`). Default: [`PreferredAddrType::Ipv4`].
    pub preferred_addr_type: PreferredAddrType,
    /// The socket send buffer size, `SO_SNDBUF` (PySyncObj `sendBufferSize`). Must be positive.
    /// Default: 64 KiB.
    pub send_buffer_size: usize,
    /// The socket receive buffer size, `SO_RCVBUF` (PySyncObj `recvBufferSize`). Must be
    /// positive. Default: 64 KiB.
    pub recv_buffer_size: usize,
    /// How long a resolved host name is cached (PySyncObj `dnsCacheTime`). Names resolve on a
    /// background thread, never in the tick loop; an expired name keeps its old address until
    /// the new lookup answers. Default: 600 s.
    pub dns_cache_time: Duration,
    /// How long a failed resolution is cached (PySyncObj `dnsFailCacheTime`). Default: 30 s.
    pub dns_fail_cache_time: Duration,
    /// Take a snapshot and compact the log once this many entries were applied since the last
    /// one (PySyncObj `logCompactionMinEntries`). At least 2. Default: 5000.
    pub log_compaction_min_entries: u64,
    /// … or when this long has passed since the last snapshot (PySyncObj `logCompactionMinTime`).
    /// Must be positive. Default: 300 s.
    pub log_compaction_min_time: Duration,
    /// Stagger compaction so that nodes take their snapshots in separate time windows (PySyncObj
    /// `logCompactionSplit`): the time trigger fires for the n-th of N voters only in the n-th
    /// N-th of each `log_compaction_min_time`. Default: `false`.
    pub log_compaction_split: bool,
    /// The chunk size, in bytes, in which a snapshot is sent to a follower that is too far behind
    /// (PySyncObj `logCompactionBatchSize`). Must be positive and fit in a frame. Default: 64 KiB.
    pub log_compaction_batch_size: usize,
    /// `true`: commands wait in the queue until a leader is known; `false`: they fail at once
    /// with `MissingLeader` when none is (PySyncObj `commandsWaitLeader`). Default: `true`.
    pub commands_wait_leader: bool,
    /// The directory where snapshots are kept (PySyncObj `fullDumpFile`); a node restarts from
    /// the latest one. Default: `None`: beside the journal (`<journal_file>.snapshots`) when
    /// there is one, else in memory only (a restarted node is refilled by the leader).
    pub full_dump_file: Option<PathBuf>,
    /// Where the log and the hard state (term, vote, commit index) are kept (PySyncObj
    /// `journalFile`): a directory of segment files, created if missing. A node restarted on
    /// it recovers its vote and log and re-applies its committed entries at once, before any
    /// leader is known. Default: `None`: in memory only, and a restarted node starts empty and
    /// is refilled by the leader (PySyncObj without a journal).
    pub journal_file: Option<PathBuf>,
    /// When the journal waits for the disk (not in PySyncObj, whose journal never syncs). Only
    /// [`FsyncPolicy::Always`] keeps every acknowledged write through a power cut. Default:
    /// `Always`.
    pub journal_fsync: FsyncPolicy,
    /// The time between two attempts to bind the listening socket (PySyncObj `bindRetryTime`).
    /// Must be positive. Default: 1 s.
    pub bind_retry_time: Duration,
    /// How many bind attempts fail before `wait_binded` gives up; 0 means unlimited (PySyncObj
    /// `maxBindRetries`). Default: 0.
    pub max_bind_retries: u32,
    /// Allow adding and removing nodes at run time (PySyncObj `dynamicMembershipChange`).
    /// Default: `false`.
    /// Pending: the membership release.
    pub dynamic_membership_change: bool,
    /// PySyncObj `pollerType`. Default: [`PollerType::Auto`].
    ///
    /// Ignored by design: syncobj polls through mio, which always uses the best mechanism of the
    /// platform (epoll, kqueue, IOCP). The other values are accepted so PySyncObj configurations
    /// carry over.
    pub poller_type: PollerType,
    /// PySyncObj `useFork`: write snapshots from a forked child. Default: `true`.
    ///
    /// Ignored by design: Rust has no fork-based snapshots; syncobj writes a snapshot from a copy
    /// of the state on a helper thread, so the tick loop never waits for the disk.
    pub use_fork: bool,
    /// TCP keepalive on every connection, dialled or accepted (PySyncObj `tcp_keepalive`); `None`
    /// turns it off. Default: idle 16 s, interval 3 s, 5 probes.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Run a pre-vote round before a real election (Raft thesis §9.6), so a node that was cut off
    /// cannot disrupt a healthy leader when it comes back. syncobj's own. Default: `true`.
    pub pre_vote: bool,
    /// Leaders step down after `leader_fallback_timeout` without a majority, and voters that
    /// heard from a leader recently refuse to vote for another (thesis §6.2, §4.2.3). syncobj's
    /// own. Default: `true`.
    pub check_quorum: bool,
    /// The most AppendEntries in flight to one follower while pipelining. syncobj's own. Must be
    /// positive. Default: 64.
    pub max_inflight_appends: usize,
    /// The deadline of a call whose command was forwarded to the leader: when it passes without
    /// an answer, the call fails with a timeout. `None` waits for the leader's answer or a leader
    /// change. syncobj's own. Must be positive when set. Default: 30 s.
    pub call_timeout: Option<Duration>,
    /// The largest frame, in bytes, sent or accepted on a connection; a longer frame drops the
    /// connection. Must hold `append_entries_batch_size_bytes` and `log_compaction_batch_size`
    /// plus [`FRAME_OVERHEAD_BYTES`], and fit in 32 bits. syncobj's own. Default: 64 MiB.
    pub frame_size_max: usize,
    /// The seed of the election timeout RNG; `None` draws one from the OS when the node is built.
    /// Set it to replay a run. syncobj's own. Default: `None`.
    pub seed: Option<u64>,
    /// Called on every Raft state change with the old and new state, on the tick thread; keep it
    /// short (PySyncObj `onStateChanged`, which passes the integer codes of
    /// [`RaftState::code`]). Default: `None`.
    pub on_state_changed: Option<OnStateChanged>,
    /// Called once, on the tick thread, when the node has first applied everything the leader
    /// had committed (PySyncObj `onReady`). Default: `None`.
    pub on_ready: Option<OnReady>,
    /// Called with the old and new version when a code version entry is applied, on the tick
    /// thread (PySyncObj `onCodeVersionChanged`). Default: `None`.
    pub on_code_version_changed: Option<OnCodeVersionChanged>,
    /// Custom snapshots: your code writes and reads the snapshot files instead of syncobj
    /// serializing the objects (PySyncObj `serializer`, `deserializer` and `serializeChecker`,
    /// as one [`SnapshotSerializer`]). Default: `None`: syncobj serializes every object with
    /// serde.
    pub serializer: Option<Arc<dyn SnapshotSerializer>>,
}

/// Generates `with_*` setters that replace one field each.
macro_rules! setters {
    ($($setter:ident => $field:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
            #[must_use]
            pub fn $setter(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

/// `[("field", conf.field != default.field), …]` for each field named, in order.
macro_rules! changed {
    ($conf:expr, $default:expr; $($field:ident),* $(,)?) => {
        [$((stringify!($field), $conf.$field != $default.$field)),*]
    };
}

impl SyncObjConf {
    setters! {
        with_auto_tick => auto_tick: bool,
        with_auto_tick_period => auto_tick_period: Duration,
        with_commands_queue_size => commands_queue_size: usize,
        with_raft_min_timeout => raft_min_timeout: Duration,
        with_raft_max_timeout => raft_max_timeout: Duration,
        with_append_entries_period => append_entries_period: Duration,
        with_connection_timeout => connection_timeout: Duration,
        with_connection_retry_time => connection_retry_time: Duration,
        with_leader_fallback_timeout => leader_fallback_timeout: Duration,
        with_append_entries_use_batch => append_entries_use_batch: bool,
        with_append_entries_batch_size_bytes => append_entries_batch_size_bytes: usize,
        with_preferred_addr_type => preferred_addr_type: PreferredAddrType,
        with_send_buffer_size => send_buffer_size: usize,
        with_recv_buffer_size => recv_buffer_size: usize,
        with_dns_cache_time => dns_cache_time: Duration,
        with_dns_fail_cache_time => dns_fail_cache_time: Duration,
        with_log_compaction_min_entries => log_compaction_min_entries: u64,
        with_log_compaction_min_time => log_compaction_min_time: Duration,
        with_log_compaction_split => log_compaction_split: bool,
        with_log_compaction_batch_size => log_compaction_batch_size: usize,
        with_commands_wait_leader => commands_wait_leader: bool,
        with_bind_retry_time => bind_retry_time: Duration,
        with_max_bind_retries => max_bind_retries: u32,
        with_dynamic_membership_change => dynamic_membership_change: bool,
        with_poller_type => poller_type: PollerType,
        with_use_fork => use_fork: bool,
        with_tcp_keepalive => tcp_keepalive: Option<TcpKeepalive>,
        with_pre_vote => pre_vote: bool,
        with_check_quorum => check_quorum: bool,
        with_max_inflight_appends => max_inflight_appends: usize,
        with_call_timeout => call_timeout: Option<Duration>,
        with_frame_size_max => frame_size_max: usize,
        with_journal_fsync => journal_fsync: FsyncPolicy,
    }

    /// Sets [`password`](Self::password).
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets [`bind_address`](Self::bind_address), a `host:port`.
    #[must_use]
    pub fn with_bind_address(mut self, address: impl Into<String>) -> Self {
        self.bind_address = Some(address.into());
        self
    }

    /// Sets [`full_dump_file`](Self::full_dump_file).
    #[must_use]
    pub fn with_full_dump_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.full_dump_file = Some(path.into());
        self
    }

    /// Sets [`journal_file`](Self::journal_file).
    #[must_use]
    pub fn with_journal_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal_file = Some(path.into());
        self
    }

    /// Sets [`seed`](Self::seed), making election timeouts reproducible.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets [`on_state_changed`](Self::on_state_changed).
    #[must_use]
    pub fn with_on_state_changed(
        mut self,
        callback: impl Fn(RaftState, RaftState) + Send + Sync + 'static,
    ) -> Self {
        self.on_state_changed = Some(Arc::new(callback));
        self
    }

    /// Sets [`on_ready`](Self::on_ready).
    #[must_use]
    pub fn with_on_ready(mut self, callback: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_ready = Some(Arc::new(callback));
        self
    }

    /// Sets [`on_code_version_changed`](Self::on_code_version_changed).
    #[must_use]
    pub fn with_on_code_version_changed(
        mut self,
        callback: impl Fn(u32, u32) + Send + Sync + 'static,
    ) -> Self {
        self.on_code_version_changed = Some(Arc::new(callback));
        self
    }

    /// Sets [`serializer`](Self::serializer).
    #[must_use]
    pub fn with_serializer(mut self, serializer: impl SnapshotSerializer) -> Self {
        self.serializer = Some(Arc::new(serializer));
        self
    }

    /// Checks the settings against each other, in PySyncObj's rules and syncobj's own.
    ///
    /// Costs a few comparisons; allocates nothing.
    ///
    /// # Errors
    /// The [`ConfError`] of the first rule broken: a limit that must be positive is zero, the
    /// election timeouts leave no room for heartbeats, a connection would time out before an
    /// election, the leader would step down between heartbeats, compaction would run on a
    /// one-entry log, a keepalive time is under a second, or a batch does not fit in a frame.
    pub fn validate(&self) -> Result<(), ConfError> {
        self.check_positive()?;
        if self.password.as_deref() == Some("") {
            return Err(ConfError::EmptyPassword);
        }
        self.check_keepalive()?;
        self.check_timeouts()?;
        self.check_sizes()
    }

    /// The Raft settings these options give, with `seed` for the election timeout RNG.
    ///
    /// The driver passes [`seed`](Self::seed) when it is set and a seed drawn from the OS
    /// otherwise. The result is valid whenever [`validate`](Self::validate) succeeds.
    pub fn raft_config(&self, seed: u64) -> RaftConfig {
        RaftConfig {
            election_timeout_min: self.raft_min_timeout,
            election_timeout_max: self.raft_max_timeout,
            heartbeat_interval: self.append_entries_period,
            leader_fallback_timeout: self.leader_fallback_timeout,
            pre_vote: self.pre_vote,
            check_quorum: self.check_quorum,
            append_entries_batch_size_bytes: self.append_entries_batch_size_bytes,
            max_inflight_appends: self.max_inflight_appends,
            snapshot_chunk_bytes: self.log_compaction_batch_size,
            apply_batch_entries_max: RaftConfig::default().apply_batch_entries_max,
            uncommitted_entries_max: u64::try_from(self.commands_queue_size).unwrap_or(u64::MAX),
            seed,
        }
    }

    /// The options set to a non-default value whose subsystem is not built yet, in field order;
    /// the driver logs a warning for each. Empty for the default configuration.
    pub fn pending_options(&self) -> Vec<&'static str> {
        let d = Self::default();
        names_of_true(&changed!(self, d;
            dynamic_membership_change,
        ))
    }

    /// The options set to a non-default value that syncobj accepts but ignores by design
    /// (`append_entries_use_batch`, `poller_type`, `use_fork`; see each field), so the driver can
    /// say so in its log. Empty for the default configuration.
    pub fn ignored_options(&self) -> Vec<&'static str> {
        let d = Self::default();
        names_of_true(&changed!(self, d; append_entries_use_batch, poller_type, use_fork))
    }

    /// Rejects a zero where a limit must be positive.
    fn check_positive(&self) -> Result<(), ConfError> {
        let is_zero = [
            (
                "append_entries_period",
                self.append_entries_period.is_zero(),
            ),
            ("auto_tick_period", self.auto_tick_period.is_zero()),
            ("commands_queue_size", self.commands_queue_size == 0),
            (
                "append_entries_batch_size_bytes",
                self.append_entries_batch_size_bytes == 0,
            ),
            (
                "log_compaction_batch_size",
                self.log_compaction_batch_size == 0,
            ),
            (
                "log_compaction_min_time",
                self.log_compaction_min_time.is_zero(),
            ),
            ("max_inflight_appends", self.max_inflight_appends == 0),
            ("send_buffer_size", self.send_buffer_size == 0),
            ("recv_buffer_size", self.recv_buffer_size == 0),
            (
                "connection_retry_time",
                self.connection_retry_time.is_zero(),
            ),
            ("bind_retry_time", self.bind_retry_time.is_zero()),
            (
                "call_timeout",
                self.call_timeout.is_some_and(|d| d.is_zero()),
            ),
            (
                "tcp_keepalive.count",
                self.tcp_keepalive.is_some_and(|k| k.count == 0),
            ),
        ];
        match names_of_true(&is_zero).first() {
            Some(&option) => Err(ConfError::Zero { option }),
            None => Ok(()),
        }
    }

    /// Rejects keepalive times under one second: TCP keepalive counts whole seconds.
    fn check_keepalive(&self) -> Result<(), ConfError> {
        let Some(keepalive) = self.tcp_keepalive else {
            return Ok(());
        };
        for (option, value) in [
            ("tcp_keepalive.idle", keepalive.idle),
            ("tcp_keepalive.interval", keepalive.interval),
        ] {
            if value < Duration::from_secs(1) {
                return Err(ConfError::KeepaliveTooShort { option, value });
            }
        }
        Ok(())
    }

    /// PySyncObj's rules on the election, connection and fallback timeouts.
    fn check_timeouts(&self) -> Result<(), ConfError> {
        let three_periods = self.append_entries_period.checked_mul(3);
        if three_periods.is_none_or(|three| self.raft_min_timeout <= three) {
            return Err(ConfError::ElectionTimeoutTooShort {
                raft_min_timeout: self.raft_min_timeout,
                append_entries_period: self.append_entries_period,
            });
        }
        if self.raft_max_timeout <= self.raft_min_timeout {
            return Err(ConfError::ElectionTimeoutRange {
                raft_min_timeout: self.raft_min_timeout,
                raft_max_timeout: self.raft_max_timeout,
            });
        }
        if self.connection_timeout < self.raft_max_timeout {
            return Err(ConfError::ConnectionTimeoutTooShort {
                connection_timeout: self.connection_timeout,
                raft_max_timeout: self.raft_max_timeout,
            });
        }
        if self.leader_fallback_timeout <= self.append_entries_period {
            return Err(ConfError::FallbackTooShort {
                leader_fallback_timeout: self.leader_fallback_timeout,
                append_entries_period: self.append_entries_period,
            });
        }
        Ok(())
    }

    /// The compaction threshold, and every batch fitting in a frame.
    fn check_sizes(&self) -> Result<(), ConfError> {
        if self.log_compaction_min_entries < 2 {
            return Err(ConfError::CompactionMinEntriesTooSmall {
                log_compaction_min_entries: self.log_compaction_min_entries,
            });
        }
        for (option, size) in [
            (
                "append_entries_batch_size_bytes",
                self.append_entries_batch_size_bytes,
            ),
            ("log_compaction_batch_size", self.log_compaction_batch_size),
        ] {
            if size.saturating_add(FRAME_OVERHEAD_BYTES) > self.frame_size_max {
                return Err(ConfError::FrameTooSmall {
                    frame_size_max: self.frame_size_max,
                    option,
                    size,
                });
            }
        }
        Ok(())
    }
}

impl Default for SyncObjConf {
    fn default() -> Self {
        SyncObjConf {
            password: None,
            auto_tick: true,
            auto_tick_period: Duration::from_millis(50),
            commands_queue_size: 100_000,
            raft_min_timeout: Duration::from_millis(400),
            raft_max_timeout: Duration::from_millis(1400),
            append_entries_period: Duration::from_millis(100),
            connection_timeout: Duration::from_millis(3500),
            connection_retry_time: Duration::from_secs(5),
            leader_fallback_timeout: Duration::from_millis(400),
            append_entries_use_batch: true,
            append_entries_batch_size_bytes: 64 * 1024,
            bind_address: None,
            preferred_addr_type: PreferredAddrType::Ipv4,
            send_buffer_size: 64 * 1024,
            recv_buffer_size: 64 * 1024,
            dns_cache_time: Duration::from_secs(600),
            dns_fail_cache_time: Duration::from_secs(30),
            log_compaction_min_entries: 5000,
            log_compaction_min_time: Duration::from_secs(300),
            log_compaction_split: false,
            log_compaction_batch_size: 64 * 1024,
            commands_wait_leader: true,
            full_dump_file: None,
            journal_file: None,
            journal_fsync: FsyncPolicy::Always,
            bind_retry_time: Duration::from_secs(1),
            max_bind_retries: 0,
            dynamic_membership_change: false,
            poller_type: PollerType::Auto,
            use_fork: true,
            tcp_keepalive: Some(TcpKeepalive::default()),
            pre_vote: true,
            check_quorum: true,
            max_inflight_appends: 64,
            call_timeout: Some(Duration::from_secs(30)),
            frame_size_max: 64 * 1024 * 1024,
            seed: None,
            on_state_changed: None,
            on_ready: None,
            on_code_version_changed: None,
            serializer: None,
        }
    }
}

impl fmt::Debug for SyncObjConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncObjConf")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("auto_tick", &self.auto_tick)
            .field("auto_tick_period", &self.auto_tick_period)
            .field("commands_queue_size", &self.commands_queue_size)
            .field("raft_min_timeout", &self.raft_min_timeout)
            .field("raft_max_timeout", &self.raft_max_timeout)
            .field("append_entries_period", &self.append_entries_period)
            .field("connection_timeout", &self.connection_timeout)
            .field("connection_retry_time", &self.connection_retry_time)
            .field("leader_fallback_timeout", &self.leader_fallback_timeout)
            .field("append_entries_use_batch", &self.append_entries_use_batch)
            .field(
                "append_entries_batch_size_bytes",
                &self.append_entries_batch_size_bytes,
            )
            .field("bind_address", &self.bind_address)
            .field("preferred_addr_type", &self.preferred_addr_type)
            .field("send_buffer_size", &self.send_buffer_size)
            .field("recv_buffer_size", &self.recv_buffer_size)
            .field("dns_cache_time", &self.dns_cache_time)
            .field("dns_fail_cache_time", &self.dns_fail_cache_time)
            .field(
                "log_compaction_min_entries",
                &self.log_compaction_min_entries,
            )
            .field("log_compaction_min_time", &self.log_compaction_min_time)
            .field("log_compaction_split", &self.log_compaction_split)
            .field("log_compaction_batch_size", &self.log_compaction_batch_size)
            .field("commands_wait_leader", &self.commands_wait_leader)
            .field("full_dump_file", &self.full_dump_file)
            .field("journal_file", &self.journal_file)
            .field("journal_fsync", &self.journal_fsync)
            .field("bind_retry_time", &self.bind_retry_time)
            .field("max_bind_retries", &self.max_bind_retries)
            .field("dynamic_membership_change", &self.dynamic_membership_change)
            .field("poller_type", &self.poller_type)
            .field("use_fork", &self.use_fork)
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("pre_vote", &self.pre_vote)
            .field("check_quorum", &self.check_quorum)
            .field("max_inflight_appends", &self.max_inflight_appends)
            .field("call_timeout", &self.call_timeout)
            .field("frame_size_max", &self.frame_size_max)
            .field("seed", &self.seed)
            .field(
                "on_state_changed",
                &callback(self.on_state_changed.as_ref()),
            )
            .field("on_ready", &callback(self.on_ready.as_ref()))
            .field(
                "on_code_version_changed",
                &callback(self.on_code_version_changed.as_ref()),
            )
            .field("serializer", &callback(self.serializer.as_ref()))
            .finish()
    }
}

/// Which address family to use when a host name resolves to both (PySyncObj `preferredAddrType`,
/// whose `'ipv6'` PySyncObj wrongly resolves as IPv4). Default: [`Ipv4`](Self::Ipv4).
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

/// When the journal makes its writes durable ([`SyncObjConf::journal_fsync`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FsyncPolicy {
    /// Every batch of writes is synced before anything that depends on it is acknowledged or
    /// sent: one sync per tick, however many calls it carries (group commit). Nothing
    /// acknowledged is lost, whatever crashes. The default.
    #[default]
    Always,
    /// Writes reach the operating system at once and the disk at most this long after: a
    /// crash of the process loses nothing, a power cut may lose what was acknowledged in the
    /// last period, votes included.
    Periodic(Duration),
    /// Writes reach the operating system and the disk only when it chooses: PySyncObj's
    /// behaviour and speed. **Unsafe**: a power cut may lose acknowledged writes and votes.
    Never,
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

/// A [`SyncObjConf`] that cannot work: the rule it breaks, naming the options and their values.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfError {
    /// The password is set and empty: leave it unset for an unauthenticated transport.
    #[error(
        "password is empty: set a non-empty password, or none for an unauthenticated transport"
    )]
    EmptyPassword,
    /// A limit or period that must be positive is zero.
    #[error("{option} must be greater than zero")]
    Zero {
        /// The option, `tcp_keepalive.count` for a keepalive field.
        option: &'static str,
    },
    /// A TCP keepalive time is under one second, which TCP cannot express.
    #[error("{option} ({value:?}) must be at least one second")]
    KeepaliveTooShort {
        /// `tcp_keepalive.idle` or `tcp_keepalive.interval`.
        option: &'static str,
        /// The configured time.
        value: Duration,
    },
    /// The minimum election timeout leaves room for three heartbeats or fewer.
    #[error(
        "raft_min_timeout ({raft_min_timeout:?}) must be more than three append_entries_periods ({append_entries_period:?} each)"
    )]
    ElectionTimeoutTooShort {
        /// The configured minimum election timeout.
        raft_min_timeout: Duration,
        /// The configured heartbeat period.
        append_entries_period: Duration,
    },
    /// The election timeout range is empty.
    #[error(
        "raft_max_timeout ({raft_max_timeout:?}) must be greater than raft_min_timeout ({raft_min_timeout:?})"
    )]
    ElectionTimeoutRange {
        /// The configured minimum.
        raft_min_timeout: Duration,
        /// The configured maximum.
        raft_max_timeout: Duration,
    },
    /// A silent connection would be dropped before an election could replace its leader.
    #[error(
        "connection_timeout ({connection_timeout:?}) must be at least raft_max_timeout ({raft_max_timeout:?})"
    )]
    ConnectionTimeoutTooShort {
        /// The configured connection timeout.
        connection_timeout: Duration,
        /// The configured maximum election timeout.
        raft_max_timeout: Duration,
    },
    /// The leader would step down between two heartbeats.
    #[error(
        "leader_fallback_timeout ({leader_fallback_timeout:?}) must be greater than append_entries_period ({append_entries_period:?})"
    )]
    FallbackTooShort {
        /// The configured fallback timeout.
        leader_fallback_timeout: Duration,
        /// The configured heartbeat period.
        append_entries_period: Duration,
    },
    /// Compaction would leave fewer than two entries in the log.
    #[error("log_compaction_min_entries ({log_compaction_min_entries}) must be at least 2")]
    CompactionMinEntriesTooSmall {
        /// The configured threshold.
        log_compaction_min_entries: u64,
    },
    /// A full batch or snapshot chunk would not fit in one frame.
    #[error(
        "frame_size_max ({frame_size_max} bytes) must hold {option} ({size} bytes) plus {overhead} bytes of message overhead",
        overhead = FRAME_OVERHEAD_BYTES
    )]
    FrameTooSmall {
        /// The configured frame limit.
        frame_size_max: usize,
        /// `append_entries_batch_size_bytes` or `log_compaction_batch_size`.
        option: &'static str,
        /// That option's value.
        size: usize,
    },
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::{
        ConfError, FRAME_OVERHEAD_BYTES, PollerType, PreferredAddrType, RaftState, SyncObjConf,
        TcpKeepalive,
    };
    use crate::raft::RaftConfig;

    /// Milliseconds as a `Duration`.
    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// The error `conf` fails validation with.
    fn error_of(conf: &SyncObjConf) -> ConfError {
        conf.validate()
            .expect_err("the configuration must be rejected")
    }

    /// Asserts that `error`'s message names every one of `names`.
    fn assert_names(error: &ConfError, names: &[&str]) {
        let text = error.to_string();
        for name in names {
            assert!(text.contains(name), "{text:?} does not name {name}");
        }
    }

    /// The defaults are PySyncObj's, except the 400 ms leader fallback, and they validate; the
    /// Raft settings they give validate too.
    #[test]
    fn defaults_follow_pysyncobj_and_validate() {
        let conf = SyncObjConf::default();
        assert_eq!(conf.validate(), Ok(()));
        assert_eq!(conf.raft_config(7).validate(), Ok(()));
        assert_eq!(conf.auto_tick_period, ms(50));
        assert_eq!(conf.commands_queue_size, 100_000);
        assert_eq!(
            (conf.raft_min_timeout, conf.raft_max_timeout),
            (ms(400), ms(1400))
        );
        assert_eq!(conf.append_entries_period, ms(100));
        assert_eq!(conf.connection_timeout, ms(3500));
        assert_eq!(conf.leader_fallback_timeout, conf.raft_min_timeout);
        assert_eq!(conf.preferred_addr_type, PreferredAddrType::Ipv4);
        assert_eq!(conf.poller_type, PollerType::Auto);
        assert_eq!(conf.log_compaction_min_entries, 5000);
        assert_eq!(conf.max_bind_retries, 0);
        assert_eq!(
            conf.tcp_keepalive,
            Some(TcpKeepalive {
                idle: Duration::from_secs(16),
                interval: Duration::from_secs(3),
                count: 5
            })
        );
        assert_eq!(conf.call_timeout, Some(Duration::from_secs(30)));
        assert_eq!(conf.frame_size_max, 64 * 1024 * 1024);
        assert!(conf.pre_vote && conf.check_quorum && conf.use_fork && conf.commands_wait_leader);
        assert_eq!(conf.seed, None);
        assert!(conf.pending_options().is_empty());
        assert!(conf.ignored_options().is_empty());
    }

    /// Each option that must be positive is rejected as `Zero` naming exactly that option.
    #[test]
    fn each_zero_limit_is_rejected_by_name() {
        type SetZero = fn(SyncObjConf) -> SyncObjConf;
        let cases: [(&str, SetZero); 13] = [
            ("append_entries_period", |c| {
                c.with_append_entries_period(Duration::ZERO)
            }),
            ("auto_tick_period", |c| {
                c.with_auto_tick_period(Duration::ZERO)
            }),
            ("commands_queue_size", |c| c.with_commands_queue_size(0)),
            ("append_entries_batch_size_bytes", |c| {
                c.with_append_entries_batch_size_bytes(0)
            }),
            ("log_compaction_batch_size", |c| {
                c.with_log_compaction_batch_size(0)
            }),
            ("log_compaction_min_time", |c| {
                c.with_log_compaction_min_time(Duration::ZERO)
            }),
            ("max_inflight_appends", |c| c.with_max_inflight_appends(0)),
            ("send_buffer_size", |c| c.with_send_buffer_size(0)),
            ("recv_buffer_size", |c| c.with_recv_buffer_size(0)),
            ("connection_retry_time", |c| {
                c.with_connection_retry_time(Duration::ZERO)
            }),
            ("bind_retry_time", |c| {
                c.with_bind_retry_time(Duration::ZERO)
            }),
            ("call_timeout", |c| {
                c.with_call_timeout(Some(Duration::ZERO))
            }),
            ("tcp_keepalive.count", |c| {
                let keepalive = TcpKeepalive {
                    count: 0,
                    ..TcpKeepalive::default()
                };
                c.with_tcp_keepalive(Some(keepalive))
            }),
        ];
        for (option, set_zero) in cases {
            let error = error_of(&set_zero(SyncObjConf::default()));
            assert_eq!(error, ConfError::Zero { option });
            assert_eq!(
                error.to_string(),
                format!("{option} must be greater than zero")
            );
        }
    }

    /// `None` for the optional limits is accepted: no call deadline, no keepalive.
    #[test]
    fn absent_call_timeout_and_keepalive_validate() {
        let conf = SyncObjConf::default()
            .with_call_timeout(None)
            .with_tcp_keepalive(None);
        assert_eq!(conf.validate(), Ok(()));
    }

    /// Keepalive idle and interval under one second are rejected, naming the field and value.
    #[test]
    fn keepalive_times_must_be_whole_seconds() {
        let idle = TcpKeepalive {
            idle: ms(500),
            ..TcpKeepalive::default()
        };
        let error = error_of(&SyncObjConf::default().with_tcp_keepalive(Some(idle)));
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
        let error = error_of(&SyncObjConf::default().with_tcp_keepalive(Some(interval)));
        assert_eq!(
            error,
            ConfError::KeepaliveTooShort {
                option: "tcp_keepalive.interval",
                value: ms(999)
            }
        );
    }

    /// `raft_min_timeout` must exceed three `append_entries_period`s; just above is accepted,
    /// and a period so long that tripling it overflows is rejected rather than panicking.
    #[test]
    fn min_timeout_must_exceed_three_periods() {
        for min in [ms(300), ms(250)] {
            let conf = SyncObjConf::default().with_raft_min_timeout(min);
            let error = error_of(&conf);
            assert_eq!(
                error,
                ConfError::ElectionTimeoutTooShort {
                    raft_min_timeout: min,
                    append_entries_period: ms(100)
                }
            );
            assert_names(
                &error,
                &["raft_min_timeout", "append_entries_period", "100ms"],
            );
        }
        let conf = SyncObjConf::default().with_raft_min_timeout(ms(301));
        assert_eq!(
            conf.clone()
                .with_leader_fallback_timeout(ms(301))
                .validate(),
            Ok(())
        );
        let conf = SyncObjConf::default().with_append_entries_period(Duration::MAX);
        assert!(matches!(
            error_of(&conf),
            ConfError::ElectionTimeoutTooShort { .. }
        ));
    }

    /// `raft_max_timeout` must exceed `raft_min_timeout`.
    #[test]
    fn max_timeout_must_exceed_min() {
        let conf = SyncObjConf::default().with_raft_max_timeout(ms(400));
        let error = error_of(&conf);
        assert_eq!(
            error,
            ConfError::ElectionTimeoutRange {
                raft_min_timeout: ms(400),
                raft_max_timeout: ms(400)
            }
        );
        assert_names(&error, &["raft_max_timeout", "raft_min_timeout"]);
    }

    /// `connection_timeout` must be at least `raft_max_timeout`; equal is accepted.
    #[test]
    fn connection_timeout_must_cover_max_election_timeout() {
        let conf = SyncObjConf::default().with_connection_timeout(ms(1399));
        let error = error_of(&conf);
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
        let conf = SyncObjConf::default().with_connection_timeout(ms(1400));
        assert_eq!(conf.validate(), Ok(()));
    }

    /// `leader_fallback_timeout` must exceed `append_entries_period`.
    #[test]
    fn fallback_must_exceed_period() {
        let conf = SyncObjConf::default().with_leader_fallback_timeout(ms(100));
        let error = error_of(&conf);
        assert_eq!(
            error,
            ConfError::FallbackTooShort {
                leader_fallback_timeout: ms(100),
                append_entries_period: ms(100)
            }
        );
        assert_names(
            &error,
            &["leader_fallback_timeout", "append_entries_period"],
        );
    }

    /// `log_compaction_min_entries` must be at least 2.
    #[test]
    fn compaction_needs_two_entries() {
        let error = error_of(&SyncObjConf::default().with_log_compaction_min_entries(1));
        assert_eq!(
            error,
            ConfError::CompactionMinEntriesTooSmall {
                log_compaction_min_entries: 1
            }
        );
        assert_names(&error, &["log_compaction_min_entries", "1"]);
        let conf = SyncObjConf::default().with_log_compaction_min_entries(2);
        assert_eq!(conf.validate(), Ok(()));
    }

    /// A frame must hold a full batch and a full snapshot chunk plus the overhead; exactly
    /// enough is accepted.
    #[test]
    fn batches_must_fit_in_a_frame() {
        let frame = 64 * 1024 + FRAME_OVERHEAD_BYTES;
        assert_eq!(
            SyncObjConf::default().with_frame_size_max(frame).validate(),
            Ok(())
        );
        let error = error_of(&SyncObjConf::default().with_frame_size_max(frame - 1));
        assert_eq!(
            error,
            ConfError::FrameTooSmall {
                frame_size_max: frame - 1,
                option: "append_entries_batch_size_bytes",
                size: 64 * 1024,
            }
        );
        assert_names(
            &error,
            &["frame_size_max", "append_entries_batch_size_bytes", "65536"],
        );
        let conf = SyncObjConf::default()
            .with_frame_size_max(frame)
            .with_log_compaction_batch_size(64 * 1024 + 1);
        assert_names(
            &error_of(&conf),
            &["frame_size_max", "log_compaction_batch_size"],
        );
        let conf = SyncObjConf::default().with_append_entries_batch_size_bytes(usize::MAX);
        assert!(matches!(error_of(&conf), ConfError::FrameTooSmall { .. }));
    }

    /// `raft_config` carries every Raft option over, and the seed it is given.
    #[test]
    fn raft_config_maps_every_field() {
        let conf = SyncObjConf::default()
            .with_raft_min_timeout(ms(500))
            .with_raft_max_timeout(ms(900))
            .with_append_entries_period(ms(50))
            .with_leader_fallback_timeout(ms(700))
            .with_pre_vote(false)
            .with_check_quorum(false)
            .with_append_entries_batch_size_bytes(1234)
            .with_max_inflight_appends(7)
            .with_log_compaction_batch_size(2345)
            .with_commands_queue_size(4321)
            .with_seed(99);
        assert_eq!(conf.validate(), Ok(()));
        let expected = RaftConfig {
            election_timeout_min: ms(500),
            election_timeout_max: ms(900),
            heartbeat_interval: ms(50),
            leader_fallback_timeout: ms(700),
            pre_vote: false,
            check_quorum: false,
            append_entries_batch_size_bytes: 1234,
            max_inflight_appends: 7,
            snapshot_chunk_bytes: 2345,
            apply_batch_entries_max: RaftConfig::default().apply_batch_entries_max,
            uncommitted_entries_max: 4321,
            seed: 42,
        };
        assert_eq!(conf.raft_config(42), expected);
        assert_eq!(conf.raft_config(42).validate(), Ok(()));
    }

    /// The default configuration gives the core's default Raft settings.
    #[test]
    fn default_raft_config_matches_the_core_default() {
        assert_eq!(SyncObjConf::default().raft_config(0), RaftConfig::default());
    }

    /// `Debug` shows that a password is set but never the password, and shows every option.
    #[test]
    fn debug_hides_the_password() {
        let conf = SyncObjConf::default()
            .with_password("hunter2-secret")
            .with_on_ready(|| {});
        let text = format!("{conf:?}");
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(text.contains("password: Some(\"<redacted>\")"), "{text}");
        assert!(text.contains("on_ready: Some(\"<callback>\")"), "{text}");
        assert!(text.contains("on_state_changed: None"), "{text}");
        assert!(format!("{:#?}", conf).matches('\n').count() > 40, "{text}");
        assert!(format!("{:?}", SyncObjConf::default()).contains("password: None"));
    }

    /// `pending_options` lists exactly the not-yet-built options that were changed, in field
    /// order; built options and options ignored by design are not listed.
    #[test]
    fn pending_options_lists_exactly_what_was_set() {
        let conf = SyncObjConf::default()
            .with_password("p")
            .with_full_dump_file("/tmp/dump")
            .with_dynamic_membership_change(true)
            .with_tcp_keepalive(None)
            .with_auto_tick(false)
            .with_commands_queue_size(10)
            .with_poller_type(PollerType::Select);
        assert_eq!(conf.pending_options(), ["dynamic_membership_change"]);
        assert_eq!(conf.ignored_options(), ["poller_type"]);
    }

    /// Each pending option, changed alone, is the only one listed.
    #[test]
    fn each_pending_option_is_listed_alone() {
        type Set = fn(SyncObjConf) -> SyncObjConf;
        let cases: [(&str, Set); 1] = [("dynamic_membership_change", |c| {
            c.with_dynamic_membership_change(true)
        })];
        for (option, set) in cases {
            assert_eq!(set(SyncObjConf::default()).pending_options(), [option]);
        }
    }

    /// The options ignored by design are each reported by `ignored_options`, never as pending.
    #[test]
    fn ignored_options_are_reported_separately() {
        let conf = SyncObjConf::default()
            .with_append_entries_use_batch(false)
            .with_poller_type(PollerType::Poll)
            .with_use_fork(false);
        assert_eq!(
            conf.ignored_options(),
            ["append_entries_use_batch", "poller_type", "use_fork"]
        );
        assert!(conf.pending_options().is_empty());
        assert_eq!(conf.validate(), Ok(()));
    }

    /// The callbacks are stored and shared by clones.
    #[test]
    fn callbacks_are_stored_and_shared() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        let conf = SyncObjConf::default()
            .with_on_state_changed(move |old, new| {
                seen.fetch_add(
                    u32::from(old.code()) * 10 + u32::from(new.code()),
                    Ordering::SeqCst,
                );
            })
            .with_on_code_version_changed(|old, new| assert!(new > old));
        let copy = conf.clone();
        let on_state_changed = copy.on_state_changed.expect("the callback was set");
        on_state_changed(RaftState::Candidate, RaftState::Leader);
        assert_eq!(calls.load(Ordering::SeqCst), 12);
        (conf.on_code_version_changed.expect("the callback was set"))(1, 2);
    }
}
