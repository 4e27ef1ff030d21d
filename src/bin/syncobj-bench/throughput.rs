//! The baseline's experiment (a), "burst K", and the sustained load: the leader's main thread
//! makes calls with a callback each, as fast as the node takes them, and the driver reads the
//! members' CPU time and peak memory around it.

use std::thread;
use std::time::Duration;

use crate::Error;
use crate::cluster::{self, Setup, SharedChildren, cpu_seconds, field, peak_rss_mib};

/// What the leader submits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    /// Payload bytes.
    pub(crate) size: usize,
    /// Calls (K); 0 with `seconds`: as many as fit.
    pub(crate) count: u64,
    /// Keep submitting this long (the sustained mode); 0: until `count` calls were made.
    pub(crate) seconds: f64,
    /// Most calls in flight; 0: no limit (the baseline's burst).
    pub(crate) window: u64,
}

impl Load {
    /// The baseline's K for a payload size.
    pub(crate) fn baseline_count(size: usize) -> u64 {
        match size {
            0..=10 => 100_000,
            11..=1000 => 20_000,
            1001..=10_000 => 5_000,
            _ => 1_000,
        }
    }

    /// The sustained mode's default window: 20 000 calls (a fifth of the leader's queue,
    /// `commands_queue_size`), and at most about 64 MiB of payloads in flight.
    pub(crate) fn default_window(size: usize) -> u64 {
        ((64 << 20) / (size as u64 + 19)).clamp(1, 20_000)
    }

    /// How the baseline's tables name the load's size: K, or the seconds and the window.
    pub(crate) fn shape(&self) -> String {
        match (self.seconds > 0.0, self.window) {
            (true, w) => format!("{} s, window {w}", self.seconds),
            (false, 0) => self.count.to_string(),
            (false, w) => format!("{}, window {w}", self.count),
        }
    }
}

/// One throughput run.
#[derive(Clone, Debug)]
pub(crate) struct ThroughputRun {
    pub(crate) ok: u64,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    /// From before the first call to the last successful callback.
    pub(crate) elapsed: f64,
    pub(crate) submit: f64,
    pub(crate) rate: f64,
    pub(crate) timed_out: bool,
    pub(crate) reasons: String,
    pub(crate) leader_cpu: f64,
    pub(crate) max_follower_cpu: f64,
    pub(crate) leader_rss: f64,
    pub(crate) max_follower_rss: f64,
    /// Largest `VmHWM` of any member before the load (after the settle time).
    pub(crate) idle_rss: f64,
    pub(crate) cold_commit: f64,
    pub(crate) links: Vec<usize>,
    /// Each member's applied count half a second after the load.
    pub(crate) applied: Vec<u64>,
}

impl ThroughputRun {
    /// One line per run, ending in `<number> commits/s`.
    pub(crate) fn line(&self, setup: &Setup, load: &Load) -> String {
        format!(
            "throughput system={} nodes={} size={} load={:?} conf={:?} ok={} sent={} failed={} \
             reasons={} timed_out={} seconds={:.3} submit_s={:.3} leader_cpu_s={:.2} \
             max_follower_cpu_s={:.2} leader_peak_rss_mib={:.1} max_follower_peak_rss_mib={:.1} \
             idle_peak_rss_mib={:.1} cold_start_s={:.3} links_before={} applied={} {:.0} commits/s",
            setup.system.name(),
            setup.nodes,
            load.size,
            load.shape(),
            setup.conf_name(),
            self.ok,
            self.sent,
            self.failed,
            self.reasons,
            u8::from(self.timed_out),
            self.elapsed,
            self.submit,
            self.leader_cpu,
            self.max_follower_cpu,
            self.leader_rss,
            self.max_follower_rss,
            self.idle_rss,
            self.cold_commit,
            slashed(&self.links),
            slashed(&self.applied),
            self.rate,
        )
    }
}

/// `a/b/c`.
pub(crate) fn slashed<T: ToString>(values: &[T]) -> String {
    let values: Vec<String> = values.iter().map(ToString::to_string).collect();
    values.join("/")
}

/// Largest finite value, NaN if none.
pub(crate) fn max_of(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(f64::NAN, f64::max)
}

/// Starts a fresh cluster, applies `load` in its leader, and reads the figures.
pub(crate) fn run(
    setup: &Setup,
    load: &Load,
    children: &SharedChildren,
) -> Result<ThroughputRun, Error> {
    let cluster::Settled {
        mut cluster,
        leader,
        cold_commit,
        links,
        ..
    } = cluster::settled(setup, children)?;
    let pids = cluster.pids.clone();
    let idle_rss = max_of(pids.iter().map(|&p| peak_rss_mib(p)));
    let cpu0: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let timeout = cluster.left(5.0).min(50.0 + load.seconds);
    if timeout < 1.0 + load.seconds {
        return Err("--time-limit leaves no time for the load".into());
    }
    let command = format!(
        "load {} {} {} {} {timeout:.3}",
        load.size, load.count, load.seconds, load.window
    );
    let reply = cluster.call(leader, &command, Duration::from_secs_f64(timeout + 3.0))?;
    let cpu1: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let rss: Vec<f64> = pids.iter().map(|&p| peak_rss_mib(p)).collect();
    let ok: u64 = field(&reply, "ok")?;
    let elapsed: f64 = field(&reply, "elapsed")?;
    thread::sleep(Duration::from_millis(500));
    let applied = cluster
        .statuses()?
        .into_iter()
        .map(|s| s.map_or(0, |(count, _)| count))
        .collect();
    let followers = (0..setup.nodes).filter(|&i| i != leader);
    Ok(ThroughputRun {
        ok,
        sent: field(&reply, "sent")?,
        failed: field(&reply, "failed")?,
        elapsed,
        submit: field(&reply, "submit")?,
        rate: if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        },
        timed_out: field::<u8>(&reply, "timed_out")? != 0,
        reasons: field(&reply, "reasons")?,
        leader_cpu: cpu1[leader] - cpu0[leader],
        max_follower_cpu: max_of(followers.clone().map(|i| cpu1[i] - cpu0[i])),
        leader_rss: rss[leader],
        max_follower_rss: max_of(followers.map(|i| rss[i])),
        idle_rss,
        cold_commit,
        links,
        applied,
    })
}
