//! The baseline's experiments (c) and (d): cold start (the driver's time just before the first
//! spawn → a member becomes leader → its first call commits), then, after the settle time,
//! failover: the driver SIGKILLs the leader and waits for another member's leader commit
//! (→ new leader elected → new leader committed). Also each member's idle peak memory and the
//! leader's CPU time up to the kill. Then, on a second fresh cluster, a silent leader: the
//! driver SIGSTOPs the leader (its process lives on and its connections stay open, so nothing
//! tells the others it is gone) and times the same two steps; the stopped member is continued
//! and killed at the end.

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
    /// The leader SIGSTOPped → another member elected, and its first commit.
    pub(crate) silent_elect: f64,
    pub(crate) silent_commit: f64,
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
             failover_elect_s={:.3} failover_commit_s={:.3} silent_elect_s={:.3} \
             silent_commit_s={:.3} idle_peak_rss_mib={} leader_cpu_s={:.2}",
            setup.system.name(),
            setup.nodes,
            setup.conf_name(),
            self.cold_leader,
            self.cold_commit,
            self.failover_elect,
            self.failover_commit,
            self.silent_elect,
            self.silent_commit,
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

/// Starts a fresh cluster, times its cold start, kills its leader and times the failover; then
/// the same with the leader stopped on another fresh cluster.
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
    drop(cluster);
    crate::between_runs();
    let (silent_elect, silent_commit) = silent_leader(setup, children)?;
    Ok(LifecycleRun {
        cold_leader,
        cold_commit,
        failover_elect: seconds(killed, became),
        failover_commit: seconds(killed, committed),
        silent_elect,
        silent_commit,
        idle_rss,
        leader_cpu,
    })
}

/// On a fresh cluster past its settle time: SIGSTOP → another member elected, and → its first
/// commit, in seconds. Dropping the cluster continues and kills the stopped leader.
fn silent_leader(setup: &Setup, children: &SharedChildren) -> Result<(f64, f64), Error> {
    let cluster::Settled {
        mut cluster,
        leader,
        ..
    } = cluster::settled(setup, children)?;
    let stopped = cluster.stop(leader)?;
    let timeout = Duration::from_secs_f64(cluster.left(2.0).min(40.0));
    let (_, became, committed) = cluster.leader_commit(stopped, Some(leader), timeout)?;
    Ok((seconds(stopped, became), seconds(stopped, committed)))
}
