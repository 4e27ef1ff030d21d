//! The settings of one Raft node, with validation.

use std::time::Duration;

use thiserror::Error;

/// The settings of one Raft node.
///
/// Defaults follow PySyncObj where it has the option (`raftMinTimeout`, `raftMaxTimeout`,
/// `appendEntriesPeriod`, `appendEntriesBatchSizeBytes`) and safe choices elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// The lower bound of the randomized election timeout (PySyncObj `raftMinTimeout`, 0.4 s).
    pub election_timeout_min: Duration,
    /// The upper bound of the randomized election timeout (PySyncObj `raftMaxTimeout`, 1.4 s).
    pub election_timeout_max: Duration,
    /// How often the leader sends heartbeats and retries (PySyncObj `appendEntriesPeriod`, 0.1 s).
    pub heartbeat_interval: Duration,
    /// With `check_quorum`, a leader that has not heard from a majority of voters for this long
    /// steps down at its next heartbeat (PySyncObj `leaderFallbackTimeout`).
    ///
    /// The default is 0.4 s, the minimum election timeout, where PySyncObj waits 30 s: a leader
    /// cut off from its majority then steps down at about the time that majority can first elect a
    /// successor, so two nodes seldom both believe they lead (and serve stale local reads), while
    /// three lost heartbeats in a row are still tolerated.
    pub leader_fallback_timeout: Duration,
    /// Run a pre-vote round before a real election (Raft thesis §9.6), so that a node that was cut
    /// off cannot disrupt a healthy leader by raising the term when it comes back.
    pub pre_vote: bool,
    /// Leaders step down without a majority (thesis §6.2), and voters that heard from a leader
    /// within the minimum election timeout refuse to vote for anyone else (thesis §4.2.3).
    pub check_quorum: bool,
    /// A follower whose link to its leader the driver reports down
    /// ([`RaftNode::link_down`](super::RaftNode::link_down): the connection was closed or reset,
    /// as when the leader's process dies) starts a pre-vote at once rather than after its
    /// election timeout. Needs `pre_vote`, which keeps it from disturbing a leader that only
    /// lost that one link; without `pre_vote` it is ignored. See `election.rs` for the rule.
    pub fast_failover: bool,
    /// A node that has heard from no leader since it started campaigns (pre-vote first) within
    /// a random time of at most this once the driver reports links up to a majority of voters
    /// ([`RaftNode::link_up`](super::RaftNode::link_up)), rather than after a whole election
    /// timeout. At most half of `election_timeout_min` is used; must be positive; `None` turns
    /// it off; ignored without `pre_vote`.
    pub cold_start_timeout: Option<Duration>,
    /// The most command bytes one AppendEntries carries; a single larger entry is still sent
    /// alone (PySyncObj `appendEntriesBatchSizeBytes`, 64 KiB).
    pub append_entries_batch_size_bytes: usize,
    /// The most AppendEntries in flight to one follower while pipelining.
    pub max_inflight_appends: usize,
    /// The most snapshot bytes one InstallSnapshot carries; a snapshot is sent one chunk at a
    /// time (PySyncObj `logCompactionBatchSize`, 64 KiB).
    pub snapshot_chunk_bytes: usize,
    /// The most entries the node hands out for applying in one [`Ready`](super::Ready).
    pub apply_batch_entries_max: usize,
    /// The most uncommitted entries of its own term a leader holds before it refuses
    /// proposals, so a leader cut off from its followers cannot grow its log without bound.
    pub uncommitted_entries_max: u64,
    /// A non-voter being added as a voter is promoted once its log is within this many entries
    /// of the leader's last one (Raft thesis §4.2.1: catch up before counting toward majorities,
    /// so adding an empty or slow node never stalls commitment).
    pub promotion_lag_entries: u64,
    /// The seed of the node's random number generator, used for election timeouts.
    pub seed: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(1400),
            heartbeat_interval: Duration::from_millis(100),
            leader_fallback_timeout: Duration::from_millis(400),
            pre_vote: true,
            check_quorum: true,
            fast_failover: true,
            cold_start_timeout: Some(Duration::from_millis(50)),
            append_entries_batch_size_bytes: 64 * 1024,
            max_inflight_appends: 64,
            snapshot_chunk_bytes: 64 * 1024,
            apply_batch_entries_max: 4096,
            uncommitted_entries_max: 100_000,
            promotion_lag_entries: 1000,
            seed: 0,
        }
    }
}

impl RaftConfig {
    /// Checks that the settings make sense together.
    ///
    /// # Errors
    /// A [`RaftConfigError`] naming the first setting that is out of range.
    pub fn validate(&self) -> Result<(), RaftConfigError> {
        if self.heartbeat_interval.is_zero() {
            return Err(RaftConfigError::ZeroHeartbeat);
        }
        if self.election_timeout_min <= self.heartbeat_interval * 3 {
            return Err(RaftConfigError::ElectionTimeoutTooShort {
                election_timeout_min: self.election_timeout_min,
                heartbeat_interval: self.heartbeat_interval,
            });
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(RaftConfigError::ElectionTimeoutRange {
                min: self.election_timeout_min,
                max: self.election_timeout_max,
            });
        }
        if self.leader_fallback_timeout <= self.heartbeat_interval {
            return Err(RaftConfigError::FallbackTooShort {
                leader_fallback_timeout: self.leader_fallback_timeout,
                heartbeat_interval: self.heartbeat_interval,
            });
        }
        if self.cold_start_timeout.is_some_and(|t| t.is_zero()) {
            return Err(RaftConfigError::Zero("cold_start_timeout"));
        }
        if self.append_entries_batch_size_bytes == 0 {
            return Err(RaftConfigError::Zero("append_entries_batch_size_bytes"));
        }
        if self.max_inflight_appends == 0 {
            return Err(RaftConfigError::Zero("max_inflight_appends"));
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(RaftConfigError::Zero("snapshot_chunk_bytes"));
        }
        if self.apply_batch_entries_max == 0 {
            return Err(RaftConfigError::Zero("apply_batch_entries_max"));
        }
        if self.uncommitted_entries_max == 0 {
            return Err(RaftConfigError::Zero("uncommitted_entries_max"));
        }
        if self.promotion_lag_entries == 0 {
            // A busy leader's log grows between two answers: a lag of zero may never be met.
            return Err(RaftConfigError::Zero("promotion_lag_entries"));
        }
        Ok(())
    }
}

/// A [`RaftConfig`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RaftConfigError {
    /// `heartbeat_interval` is zero.
    #[error("heartbeat_interval must be greater than zero")]
    ZeroHeartbeat,
    /// The minimum election timeout leaves room for fewer than three heartbeats.
    #[error(
        "election_timeout_min ({election_timeout_min:?}) must be more than three heartbeat_intervals ({heartbeat_interval:?} each)"
    )]
    ElectionTimeoutTooShort {
        /// The configured minimum election timeout.
        election_timeout_min: Duration,
        /// The configured heartbeat interval.
        heartbeat_interval: Duration,
    },
    /// The election timeout range is empty.
    #[error("election_timeout_max ({max:?}) must be greater than election_timeout_min ({min:?})")]
    ElectionTimeoutRange {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// The leader would step down between two heartbeats.
    #[error(
        "leader_fallback_timeout ({leader_fallback_timeout:?}) must be greater than heartbeat_interval ({heartbeat_interval:?})"
    )]
    FallbackTooShort {
        /// The configured fallback timeout.
        leader_fallback_timeout: Duration,
        /// The configured heartbeat interval.
        heartbeat_interval: Duration,
    },
    /// A limit that must be positive is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{RaftConfig, RaftConfigError};

    /// Milliseconds as a `Duration`.
    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// The default configuration is valid.
    #[test]
    fn default_validates() {
        assert_eq!(RaftConfig::default().validate(), Ok(()));
    }

    /// A zero heartbeat interval is rejected as `ZeroHeartbeat`, naming `heartbeat_interval`.
    #[test]
    fn zero_heartbeat_is_rejected() {
        let config = RaftConfig {
            heartbeat_interval: Duration::ZERO,
            ..RaftConfig::default()
        };
        let error = config
            .validate()
            .expect_err("zero heartbeat must be rejected");
        assert_eq!(error, RaftConfigError::ZeroHeartbeat);
        assert!(error.to_string().contains("heartbeat_interval"), "{error}");
    }

    /// A minimum election timeout of three heartbeats or less is rejected, naming both settings;
    /// just above three heartbeats is accepted.
    #[test]
    fn election_timeout_min_must_exceed_three_heartbeats() {
        for min in [ms(300), ms(250), ms(100)] {
            let config = RaftConfig {
                heartbeat_interval: ms(100),
                election_timeout_min: min,
                election_timeout_max: ms(1000),
                ..RaftConfig::default()
            };
            let error = config.validate().expect_err("min timeout <= 3 heartbeats");
            assert_eq!(
                error,
                RaftConfigError::ElectionTimeoutTooShort {
                    election_timeout_min: min,
                    heartbeat_interval: ms(100),
                }
            );
            let text = error.to_string();
            assert!(text.contains("election_timeout_min"), "{text}");
            assert!(text.contains("heartbeat_interval"), "{text}");
        }
        let config = RaftConfig {
            heartbeat_interval: ms(100),
            election_timeout_min: ms(301),
            election_timeout_max: ms(1000),
            ..RaftConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }

    /// A maximum election timeout at or below the minimum is rejected as an empty range, naming
    /// both bounds.
    #[test]
    fn election_timeout_max_must_exceed_min() {
        for max in [ms(400), ms(399), ms(1)] {
            let config = RaftConfig {
                election_timeout_min: ms(400),
                election_timeout_max: max,
                ..RaftConfig::default()
            };
            let error = config.validate().expect_err("max <= min");
            assert_eq!(
                error,
                RaftConfigError::ElectionTimeoutRange { min: ms(400), max }
            );
            let text = error.to_string();
            assert!(text.contains("election_timeout_max"), "{text}");
            assert!(text.contains("election_timeout_min"), "{text}");
        }
    }

    /// A leader fallback timeout at or below the heartbeat interval is rejected, naming both
    /// settings.
    #[test]
    fn fallback_must_exceed_heartbeat() {
        for fallback in [ms(100), ms(50), Duration::ZERO] {
            let config = RaftConfig {
                heartbeat_interval: ms(100),
                leader_fallback_timeout: fallback,
                ..RaftConfig::default()
            };
            let error = config.validate().expect_err("fallback <= heartbeat");
            assert_eq!(
                error,
                RaftConfigError::FallbackTooShort {
                    leader_fallback_timeout: fallback,
                    heartbeat_interval: ms(100),
                }
            );
            let text = error.to_string();
            assert!(text.contains("leader_fallback_timeout"), "{text}");
            assert!(text.contains("heartbeat_interval"), "{text}");
        }
    }

    /// Each limit set to zero is rejected as `Zero` naming exactly that setting.
    #[test]
    fn each_zero_limit_is_rejected_by_name() {
        type SetZero = fn(&mut RaftConfig);
        let cases: [(&str, SetZero); 7] = [
            ("cold_start_timeout", |c| {
                c.cold_start_timeout = Some(Duration::ZERO)
            }),
            ("append_entries_batch_size_bytes", |c| {
                c.append_entries_batch_size_bytes = 0;
            }),
            ("max_inflight_appends", |c| c.max_inflight_appends = 0),
            ("snapshot_chunk_bytes", |c| c.snapshot_chunk_bytes = 0),
            ("apply_batch_entries_max", |c| c.apply_batch_entries_max = 0),
            ("uncommitted_entries_max", |c| c.uncommitted_entries_max = 0),
            ("promotion_lag_entries", |c| c.promotion_lag_entries = 0),
        ];
        for (name, set_zero) in cases {
            let mut config = RaftConfig::default();
            set_zero(&mut config);
            let error = config
                .validate()
                .expect_err("a zero limit must be rejected");
            assert_eq!(error, RaftConfigError::Zero(name));
            assert_eq!(
                error.to_string(),
                format!("{name} must be greater than zero")
            );
        }
    }
}
