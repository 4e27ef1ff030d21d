//! The options of the tick loop and of the calls: who runs the loop, how many calls wait
//! between the caller's thread and the loop, and while no leader is known, and how long a
//! placed call may take.

use std::time::Duration;

use super::error::reject_zeros;
use super::{ConfError, SyncObjConf};

options! {
    /// Whether a thread of the node's own runs the tick loop; if `false` the caller must call
    /// `do_tick` (PySyncObj `autoTick`). Default: `true`.
    auto_tick: bool;

    /// The longest the auto-tick thread waits for events in one tick (PySyncObj
    /// `autoTickPeriod`). Must be positive. Default: 50 ms.
    auto_tick_period: Duration;

    /// The capacity of the queue of calls between the threads that make them and the tick loop
    /// (PySyncObj `commandsQueueSize`): a call made while it is full fails at once with
    /// `QueueFull`. The calls held while no leader is known and the entries a leader holds
    /// uncommitted have limits of their own, `leaderless_calls_max` and
    /// `uncommitted_entries_max`. The queue takes memory as calls wait in it (about 50 bytes
    /// each beside the call's own), not for its capacity up front. Must be positive.
    /// Default: 100 000.
    commands_queue_size: usize;

    /// `true`: calls made while no leader is known wait for one, up to
    /// `leaderless_calls_max` of them; `false`: they fail at once with `MissingLeader`
    /// (PySyncObj `commandsWaitLeader`). Default: `true`.
    commands_wait_leader: bool;

    /// The most calls a node holds while it knows no leader, with `commands_wait_leader`:
    /// they go to the leader once one is known, and a call that finds this many waiting fails
    /// with `MissingLeader`. Bounds the memory a node cut off from the cluster spends on calls
    /// (PySyncObj holds them in its commands queue). syncobj's own. Must be positive while
    /// `commands_wait_leader` is `true`. Default: 100 000.
    leaderless_calls_max: usize;

    /// The deadline of a call once its command was forwarded to the leader or appended: when
    /// it passes without the call's entry being applied here, the call fails with `Timeout`.
    /// `None` waits for the outcome or a leader change. syncobj's own. Must be positive when
    /// set. Default: 30 s.
    call_timeout: Option<Duration>;
}

/// Adds to `errors` every rule of the tick loop and the calls that `conf` breaks.
pub(super) fn check(conf: &SyncObjConf, errors: &mut Vec<ConfError>) {
    reject_zeros(
        errors,
        &[
            ("auto_tick_period", conf.auto_tick_period.is_zero()),
            ("commands_queue_size", conf.commands_queue_size == 0),
            (
                "call_timeout",
                conf.call_timeout.is_some_and(|d| d.is_zero()),
            ),
        ],
    );
    if conf.commands_wait_leader && conf.leaderless_calls_max == 0 {
        errors.push(ConfError::LeaderlessCallsZero);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_names, only_error};
    use super::{ConfError, SyncObjConf};

    /// No room for calls waiting for a leader is an error only while calls are to wait.
    #[test]
    fn leaderless_calls_need_room_only_when_waiting() {
        let error = only_error(SyncObjConf::builder().leaderless_calls_max(0));
        assert_eq!(error, ConfError::LeaderlessCallsZero);
        assert_names(&error, &["leaderless_calls_max", "commands_wait_leader"]);
        let conf = SyncObjConf::builder()
            .leaderless_calls_max(0)
            .commands_wait_leader(false)
            .build();
        assert!(conf.is_ok(), "{conf:?}");
        let conf = SyncObjConf::builder().leaderless_calls_max(1).build();
        assert_eq!(conf.map(|c| c.leaderless_calls_max()).ok(), Some(1));
    }

    /// `None` for the call deadline is accepted: calls wait for their outcome.
    #[test]
    fn absent_call_timeout_builds() {
        let conf = SyncObjConf::builder().call_timeout(None).build();
        assert_eq!(conf.map(|c| c.call_timeout()).ok(), Some(None));
    }
}
