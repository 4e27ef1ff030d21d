//! The Raft options: election and heartbeat timers, batching and pipelining, the leader's
//! bound on uncommitted entries, pre-vote and check-quorum, the seed; and how they map to the
//! core's [`RaftConfig`].

use std::time::Duration;

use super::error::reject_zeros;
use super::{ConfError, SyncObjConf, SyncObjConfBuilder};
use crate::raft::RaftConfig;

options! {
    /// The lower bound of the randomized election timeout (PySyncObj `raftMinTimeout`). Must
    /// exceed three `append_entries_period`s. Default: 400 ms.
    raft_min_timeout: Duration;

    /// The upper bound of the randomized election timeout (PySyncObj `raftMaxTimeout`). Must
    /// exceed `raft_min_timeout`. Default: 1.4 s.
    raft_max_timeout: Duration;

    /// How often the leader sends heartbeats (PySyncObj `appendEntriesPeriod`). Must be
    /// positive. Default: 100 ms.
    append_entries_period: Duration;

    /// A leader that has not heard from a majority of voters for this long steps down
    /// (PySyncObj `leaderFallbackTimeout`). Must exceed `append_entries_period`.
    ///
    /// Default: 400 ms, the default minimum election timeout, where PySyncObj waits 30 s: a
    /// leader cut off from its majority then steps down at about the time that majority can
    /// first elect a successor, so two nodes seldom both believe they lead (and serve stale
    /// local reads), while three lost heartbeats in a row are still tolerated.
    leader_fallback_timeout: Duration;

    /// PySyncObj `appendEntriesUseBatch`: `true` sends new entries only every
    /// `append_entries_period`, `false` right after each append. Default: `true`.
    ///
    /// Ignored by design: syncobj's leader sends new entries when the tick loop has drained a
    /// batch of proposals, pipelined up to `max_inflight_appends`, which gives PySyncObj's
    /// batched throughput without its period-long latency. Both values behave that way.
    append_entries_use_batch: bool;

    /// The most command bytes (plus a small per-entry overhead) one AppendEntries carries; a
    /// single larger entry is still sent alone (PySyncObj `appendEntriesBatchSizeBytes`). Must
    /// be positive and fit in a frame (`frame_size_max`). Default: 64 KiB.
    append_entries_batch_size_bytes: usize;

    /// The most AppendEntries in flight to one follower while pipelining. syncobj's own. Must
    /// be positive. Default: 64.
    max_inflight_appends: usize;

    /// The most entries a leader holds appended in its term but not yet committed: a call made
    /// on the leader, or forwarded to it, while it holds this many fails with `QueueFull`, so
    /// that a leader cut off from its followers cannot grow its log and its memory without
    /// bound. Entries it inherited from earlier terms do not count (they commit with its
    /// first). syncobj's own (PySyncObj's log grows without bound). Must be positive. Default: 100 000.
    uncommitted_entries_max: u64;

    /// Run a pre-vote round before a real election (Raft thesis §9.6), so a node that was cut
    /// off cannot disrupt a healthy leader when it comes back. syncobj's own. Default: `true`.
    pre_vote: bool;

    /// Leaders step down after `leader_fallback_timeout` without a majority, and voters that
    /// heard from a leader recently refuse to vote for another (thesis §6.2, §4.2.3).
    /// syncobj's own. Default: `true`.
    check_quorum: bool;

    /// A follower whose connection to its leader is closed or reset (the leader's process
    /// died, which the transport learns at once) starts a pre-vote at once instead of waiting
    /// for its election timeout. Voters still linked to a live leader refuse that pre-vote, so
    /// a leader that lost one link is not disturbed; see the Raft core's `election` module
    /// for the rule. Needs `pre_vote`, and does nothing without it. syncobj's own. Default:
    /// `true`.
    fast_failover: bool;

    /// A node that has heard from no leader since it started campaigns (pre-vote first) within
    /// a random time of at most this once it is linked to a majority of voters, instead of
    /// waiting for a whole election timeout, so a cluster started together elects its leader
    /// in milliseconds. In a running cluster, the voters that follow the leader refuse the
    /// pre-vote of a restarted node, so nothing changes. At most half of `raft_min_timeout` is
    /// used. `None` turns it off; it does nothing without `pre_vote`. Must be positive.
    /// syncobj's own. Default: 50 ms.
    cold_start_timeout: Option<Duration>;

    /// Allow adding and removing nodes and handing the leadership over at run time
    /// (PySyncObj `dynamicMembershipChange`): `SyncObj::add_node_to_cluster`,
    /// `remove_node_from_cluster` and `transfer_leadership`. Off, those calls fail at once
    /// with `FailReason::MembershipRefused(MembershipRefusal::DynamicMembershipOff)`.
    /// Default: `false`.
    ///
    /// Every node of a cluster must set it alike. On, the TCP handshake's cluster identity no
    /// longer hashes the configured voters (a node added later is configured with another
    /// list): it is one fixed value, so it only tells a dynamic cluster from a fixed one. A
    /// node links to the members of the membership in force, to read-only nodes, and to a few
    /// voters of the cluster outside its membership (strangers): a lagging node must hear a
    /// leader it never heard of, and a node started before it is added (a standby) follows
    /// the log with no vote, so `add_node_to_cluster` promotes it caught up. Against nodes
    /// of other clusters, set a `password`.
    dynamic_membership_change: bool;
}

impl SyncObjConfBuilder {
    /// Sets the seed of the election timeout RNG, to replay a run; without one, the node draws
    /// a seed when it starts. syncobj's own. Default: none.
    pub fn seed(mut self, seed: u64) -> Self {
        self.conf.seed = Some(seed);
        self
    }
}

impl SyncObjConf {
    /// The `seed` option, if set; see [`SyncObjConfBuilder::seed`].
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The Raft settings these options give, with `seed` for the election timeout RNG.
    ///
    /// The driver passes the `seed` option when it is set and a seed of its own otherwise. The
    /// result is valid, as every built configuration is.
    pub(crate) fn raft_config(&self, seed: u64) -> RaftConfig {
        RaftConfig {
            election_timeout_min: self.raft_min_timeout,
            election_timeout_max: self.raft_max_timeout,
            heartbeat_interval: self.append_entries_period,
            leader_fallback_timeout: self.leader_fallback_timeout,
            pre_vote: self.pre_vote,
            check_quorum: self.check_quorum,
            fast_failover: self.fast_failover,
            cold_start_timeout: self.cold_start_timeout,
            append_entries_batch_size_bytes: self.append_entries_batch_size_bytes,
            max_inflight_appends: self.max_inflight_appends,
            snapshot_chunk_bytes: self.log_compaction_batch_size,
            apply_batch_entries_max: RaftConfig::default().apply_batch_entries_max,
            uncommitted_entries_max: self.uncommitted_entries_max,
            promotion_lag_entries: RaftConfig::default().promotion_lag_entries,
            seed,
        }
    }
}

/// Adds to `errors` every Raft rule `conf` breaks: PySyncObj's rules on the election and
/// fallback timeouts, and the limits that must be positive.
pub(super) fn check(conf: &SyncObjConf, errors: &mut Vec<ConfError>) {
    reject_zeros(
        errors,
        &[
            (
                "append_entries_period",
                conf.append_entries_period.is_zero(),
            ),
            (
                "append_entries_batch_size_bytes",
                conf.append_entries_batch_size_bytes == 0,
            ),
            ("max_inflight_appends", conf.max_inflight_appends == 0),
            ("uncommitted_entries_max", conf.uncommitted_entries_max == 0),
            (
                "cold_start_timeout",
                conf.cold_start_timeout.is_some_and(|t| t.is_zero()),
            ),
        ],
    );
    let three_periods = conf.append_entries_period.checked_mul(3);
    if three_periods.is_none_or(|three| conf.raft_min_timeout <= three) {
        errors.push(ConfError::ElectionTimeoutTooShort {
            raft_min_timeout: conf.raft_min_timeout,
            append_entries_period: conf.append_entries_period,
        });
    }
    if conf.raft_max_timeout <= conf.raft_min_timeout {
        errors.push(ConfError::ElectionTimeoutRange {
            raft_min_timeout: conf.raft_min_timeout,
            raft_max_timeout: conf.raft_max_timeout,
        });
    }
    if conf.leader_fallback_timeout <= conf.append_entries_period {
        errors.push(ConfError::FallbackTooShort {
            leader_fallback_timeout: conf.leader_fallback_timeout,
            append_entries_period: conf.append_entries_period,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{assert_names, ms, only_error};
    use super::{ConfError, RaftConfig, SyncObjConf};

    /// `raft_min_timeout` must exceed three `append_entries_period`s; just above is accepted,
    /// and a period so long that tripling it overflows is rejected rather than panicking.
    #[test]
    fn min_timeout_must_exceed_three_periods() {
        for min in [ms(300), ms(250)] {
            let error = only_error(SyncObjConf::builder().raft_min_timeout(min));
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
        let conf = SyncObjConf::builder()
            .raft_min_timeout(ms(301))
            .leader_fallback_timeout(ms(301))
            .build();
        assert!(conf.is_ok(), "{conf:?}");
        let errors = SyncObjConf::builder()
            .append_entries_period(Duration::MAX)
            .build()
            .expect_err("an endless period is rejected");
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ConfError::ElectionTimeoutTooShort { .. }))
        );
    }

    /// `raft_max_timeout` must exceed `raft_min_timeout`.
    #[test]
    fn max_timeout_must_exceed_min() {
        let error = only_error(SyncObjConf::builder().raft_max_timeout(ms(400)));
        assert_eq!(
            error,
            ConfError::ElectionTimeoutRange {
                raft_min_timeout: ms(400),
                raft_max_timeout: ms(400)
            }
        );
        assert_names(&error, &["raft_max_timeout", "raft_min_timeout"]);
    }

    /// `leader_fallback_timeout` must exceed `append_entries_period`.
    #[test]
    fn fallback_must_exceed_period() {
        let error = only_error(SyncObjConf::builder().leader_fallback_timeout(ms(100)));
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

    /// `cold_start_timeout` must be positive; `None`, and any length (the core uses at most
    /// half of `raft_min_timeout`), are accepted, so short election timeouts need no change.
    #[test]
    fn cold_start_timeout_must_be_positive() {
        let error = only_error(SyncObjConf::builder().cold_start_timeout(Some(Duration::ZERO)));
        assert_eq!(
            error,
            ConfError::Zero {
                option: "cold_start_timeout"
            }
        );
        for timeout in [None, Some(ms(1)), Some(ms(400)), Some(ms(5000))] {
            let conf = SyncObjConf::builder().cold_start_timeout(timeout).build();
            assert!(conf.is_ok(), "{conf:?}");
        }
        let conf = SyncObjConf::builder()
            .raft_min_timeout(ms(40))
            .raft_max_timeout(ms(80))
            .append_entries_period(ms(10))
            .leader_fallback_timeout(ms(40))
            .build()
            .expect("the default cold start suits short timeouts");
        assert_eq!(conf.raft_config(1).validate(), Ok(()));
    }

    /// `raft_config` carries every Raft option over, and the seed it is given; the leader's
    /// bound on uncommitted entries is its own option, not the command queue's size.
    #[test]
    fn raft_config_maps_every_field() {
        let conf = SyncObjConf::builder()
            .raft_min_timeout(ms(500))
            .raft_max_timeout(ms(900))
            .append_entries_period(ms(50))
            .leader_fallback_timeout(ms(700))
            .pre_vote(false)
            .check_quorum(false)
            .fast_failover(false)
            .cold_start_timeout(Some(ms(77)))
            .append_entries_batch_size_bytes(1234)
            .max_inflight_appends(7)
            .log_compaction_batch_size(2345)
            .commands_queue_size(4321)
            .uncommitted_entries_max(5432)
            .seed(99)
            .build()
            .expect("valid");
        let expected = RaftConfig {
            election_timeout_min: ms(500),
            election_timeout_max: ms(900),
            heartbeat_interval: ms(50),
            leader_fallback_timeout: ms(700),
            pre_vote: false,
            check_quorum: false,
            fast_failover: false,
            cold_start_timeout: Some(ms(77)),
            append_entries_batch_size_bytes: 1234,
            max_inflight_appends: 7,
            snapshot_chunk_bytes: 2345,
            apply_batch_entries_max: RaftConfig::default().apply_batch_entries_max,
            uncommitted_entries_max: 5432,
            promotion_lag_entries: RaftConfig::default().promotion_lag_entries,
            seed: 42,
        };
        assert_eq!(conf.raft_config(42), expected);
        assert_eq!(conf.raft_config(42).validate(), Ok(()));
        assert_eq!(conf.seed(), Some(99));
    }

    /// The default configuration gives the core's default Raft settings.
    #[test]
    fn default_raft_config_matches_the_core_default() {
        assert_eq!(SyncObjConf::default().raft_config(0), RaftConfig::default());
    }
}
