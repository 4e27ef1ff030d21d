//! The baseline's experiments (c) and (d): cold start (the driver's time just before the first
//! spawn → a member becomes leader → its first call commits), then, after the settle time,
//! failover: the driver SIGKILLs the leader and waits for another member's leader commit
//! (→ new leader elected → new leader committed). Also each member's idle peak memory and the
//! leader's CPU time up to the kill.

use std::time::{Duration, Instant};

use crate::Error;
use crate::cluster::{self, Setup, SharedChildren, cpu_seconds, peak_rss_mib};
use crate::throughput::slashed;

/// One lifecycle run, in seconds and MiB.
#[derive(Clone, Debug)]
pub(crate) struct LifecycleRun {
    pub(crate) cold_leader: f64,
    pub(crate) cold_commit: f64,
    pub(crate) failover_elect: f64,
    pub(crate) failover_commit: f64,
    /// `VmHWM` of every member after the settle time.
    pub(crate) idle_rss: Vec<f64>,
    /// The old leader's CPU time from its start to the kill.
    pub(crate) leader_cpu: f64,
}

impl LifecycleRun {
    pub(crate) fn line(&self, setup: &Setup) -> String {
        let rss: Vec<String> = self.idle_rss.iter().map(|r| format!("{r:.1}")).collect();
        format!(
            "lifecycle system={} nodes={} conf={:?} cold_leader_s={:.3} cold_commit_s={:.3} \
             failover_elect_s={:.3} failover_commit_s={:.3} idle_peak_rss_mib={} \
             leader_cpu_s={:.2}",
            setup.system.name(),
            setup.nodes,
            setup.conf_name(),
            self.cold_leader,
            self.cold_commit,
            self.failover_elect,
            self.failover_commit,
            slashed(&rss),
            self.leader_cpu,
        )
    }
}

/// Seconds from `from` to `to`, negative if `to` is earlier.
fn seconds(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64(),
        None => -(from - to).as_secs_f64(),
    }
}

/// Starts a fresh cluster, times its cold start, kills its leader and times the failover.
pub(crate) fn run(setup: &Setup, children: &SharedChildren) -> Result<LifecycleRun, Error> {
    if setup.nodes < 3 {
        return Err("failover needs at least 3 members".into());
    }
    let cluster::Settled {
        mut cluster,
        leader,
        cold_leader,
        cold_commit,
        ..
    } = cluster::settled(setup, children)?;
    let idle_rss: Vec<f64> = cluster.pids.iter().map(|&p| peak_rss_mib(p)).collect();
    let leader_cpu = cpu_seconds(cluster.pids[leader]);
    let killed = cluster.kill(leader)?;
    let timeout = Duration::from_secs_f64(cluster.left(2.0).min(40.0));
    let (_, became, committed) = cluster.leader_commit(killed, Some(leader), timeout)?;
    Ok(LifecycleRun {
        cold_leader,
        cold_commit,
        failover_elect: seconds(killed, became),
        failover_commit: seconds(killed, committed),
        idle_rss,
        leader_cpu,
    })
}
