//! The baseline's experiment (b): the leader's main thread makes sequential waited calls, each
//! timed around the call.

use std::time::Duration;

use crate::Error;
use crate::cluster::{self, Setup, SharedChildren, field};

/// One latency run, in milliseconds.
#[derive(Clone, Debug)]
pub(crate) struct LatencyRun {
    pub(crate) calls: u64,
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) mean: f64,
    pub(crate) max: f64,
    pub(crate) cold_commit: f64,
}

impl LatencyRun {
    pub(crate) fn line(&self, setup: &Setup, size: usize) -> String {
        format!(
            "latency system={} nodes={} size={size} conf={:?} calls={} done={} failed={} \
             p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} mean_ms={:.3} max_ms={:.3} cold_start_s={:.3}",
            setup.system.name(),
            setup.nodes,
            setup.conf_name(),
            self.calls,
            self.done,
            self.failed,
            self.p50,
            self.p90,
            self.p99,
            self.mean,
            self.max,
            self.cold_commit,
        )
    }
}

/// Starts a fresh cluster and times `calls` sequential calls of `size` bytes in its leader.
pub(crate) fn run(
    setup: &Setup,
    size: usize,
    calls: u64,
    children: &SharedChildren,
) -> Result<LatencyRun, Error> {
    let cluster::Settled {
        mut cluster,
        leader,
        cold_commit,
        ..
    } = cluster::settled(setup, children)?;
    let budget = cluster.left(10.0).min(45.0);
    let command = format!("latency {size} {calls} {budget:.3}");
    let reply = cluster.call(leader, &command, Duration::from_secs_f64(budget + 8.0))?;
    Ok(LatencyRun {
        calls,
        done: field(&reply, "done")?,
        failed: field(&reply, "failed")?,
        p50: field(&reply, "p50_ms")?,
        p90: field(&reply, "p90_ms")?,
        p99: field(&reply, "p99_ms")?,
        mean: field(&reply, "mean_ms")?,
        max: field(&reply, "max_ms")?,
        cold_commit,
    })
}
