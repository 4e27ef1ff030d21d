//! The options of the tick loop and of the calls: who runs the loop, how many calls wait
//! between the caller's thread and the loop, and how long a placed call may take.

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
    /// `QueueFull`. It also bounds the calls held while no leader is known, and the
    /// uncommitted entries a leader holds. Must be positive. Default: 100 000.
    commands_queue_size: usize;

    /// `true`: calls made while no leader is known wait for one; `false`: they fail at once
    /// with `MissingLeader` (PySyncObj `commandsWaitLeader`). Default: `true`.
    commands_wait_leader: bool;

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
}

#[cfg(test)]
mod tests {
    use super::SyncObjConf;

    /// `None` for the call deadline is accepted: calls wait for their outcome.
    #[test]
    fn absent_call_timeout_builds() {
        let conf = SyncObjConf::builder().call_timeout(None).build();
        assert_eq!(conf.map(|c| c.call_timeout()).ok(), Some(None));
    }
}
