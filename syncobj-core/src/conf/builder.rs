//! [`SyncObjConfBuilder`]: the options as given, until [`build`](SyncObjConfBuilder::build)
//! checks them all.

use super::{ConfErrors, SyncObjConf, calls, network, raft, storage};

/// Builds a [`SyncObjConf`]: one setter per option, named as the option, then
/// [`build`](Self::build), which checks every rule at once.
///
/// Starts from the defaults ([`SyncObjConf::builder`]) or from a built configuration
/// ([`SyncObjConf::to_builder`]). Setters only store their value; nothing is checked before
/// `build`, so the order of the calls does not matter. `Debug` never prints the password.
///
/// ```
/// use std::time::Duration;
/// use syncobj_core::conf::SyncObjConf;
///
/// let conf = SyncObjConf::builder()
///     .append_entries_period(Duration::from_millis(20))
///     .raft_min_timeout(Duration::from_millis(150))
///     .raft_max_timeout(Duration::from_millis(300))
///     .leader_fallback_timeout(Duration::from_millis(150))
///     .build()
///     .expect("the timers fit together");
/// assert_eq!(conf.append_entries_period(), Duration::from_millis(20));
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SyncObjConfBuilder {
    /// The options set so far, not checked yet.
    pub(super) conf: SyncObjConf,
}

impl SyncObjConfBuilder {
    /// Checks every rule and returns the configuration.
    ///
    /// Costs a few comparisons per option; allocates only for the errors.
    ///
    /// # Errors
    /// [`ConfErrors`] listing every rule broken, each naming its options and their values: a
    /// limit or period that must be positive is zero; calls are to wait for a leader with no
    /// room to wait; the password is empty; a TCP keepalive time is under a second; the
    /// election timeouts leave no room for three heartbeats or form an empty range; the leader
    /// would step down between two heartbeats; a connection would time out before an election
    /// could replace its leader; a batch or snapshot chunk does not fit in a frame, or the
    /// frame limit does not fit in 32 bits; compaction would run on a one-entry log.
    pub fn build(self) -> Result<SyncObjConf, ConfErrors> {
        let conf = self.conf;
        let mut errors = Vec::new();
        calls::check(&conf, &mut errors);
        raft::check(&conf, &mut errors);
        network::check(&conf, &mut errors);
        storage::check(&conf, &mut errors);
        match ConfErrors::from_vec(errors) {
            Some(errors) => Err(errors),
            None => Ok(conf),
        }
    }
}
