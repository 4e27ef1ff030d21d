//! Tables in the shape of the baseline's (`pysyncobj-baseline.md`): one row per
//! configuration, each figure as `median (min–max, n=runs)`.

use crate::cluster::Setup;
use crate::latency::LatencyRun;
use crate::lifecycle::LifecycleRun;
use crate::stats::{Shown, Summary};
use crate::throughput::{Load, ThroughputRun, slashed};

/// Runs of one throughput configuration.
pub(crate) struct ThroughputRows<'a> {
    pub(crate) setup: &'a Setup,
    pub(crate) load: &'a Load,
    pub(crate) runs: &'a [ThroughputRun],
}

pub(crate) fn throughput_table(rows: &[ThroughputRows<'_>]) -> String {
    let mut out = String::from(
        "| system | nodes | payload B | K | transport, conf | ok per run | commits/s median (min–max) \
         | elapsed s | leader peak RSS MiB | max follower peak RSS MiB | leader CPU s | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let runs = row.runs;
        let ok: Vec<String> = runs.iter().map(|r| format!("{}", r.ok)).collect();
        let errors: Vec<&str> = runs
            .iter()
            .map(|r| r.reasons.as_str())
            .filter(|r| *r != "none")
            .collect();
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.setup.system.name(),
            row.setup.nodes,
            row.load.size,
            row.load.shape(),
            row.setup.conf_name(),
            slashed(&ok),
            Shown(&Summary::of(runs.iter().map(|r| r.rate)), 0),
            Shown(&Summary::of(runs.iter().map(|r| r.elapsed)), 2),
            Shown(&Summary::of(runs.iter().map(|r| r.leader_rss)), 1),
            Shown(&Summary::of(runs.iter().map(|r| r.max_follower_rss)), 1),
            Shown(&Summary::of(runs.iter().map(|r| r.leader_cpu)), 2),
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join("; ")
            },
        );
    }
    out
}

/// Runs of one latency configuration.
pub(crate) struct LatencyRows<'a> {
    pub(crate) setup: &'a Setup,
    /// Payload bytes.
    pub(crate) size: usize,
    pub(crate) runs: &'a [LatencyRun],
}

pub(crate) fn latency_table(rows: &[LatencyRows<'_>]) -> String {
    let mut out = String::from(
        "| system | nodes | payload B | conf | calls per run | p50 ms | p90 ms | p99 ms | mean ms \
         | max ms |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let runs = row.runs;
        let done: Vec<String> = runs.iter().map(|r| r.done.to_string()).collect();
        let calls = runs.first().map_or(0, |r| r.calls);
        let show =
            |f: fn(&LatencyRun) -> f64| Shown(&Summary::of(runs.iter().map(f)), 3).to_string();
        out += &format!(
            "| {} | {} | {} | {} | {calls} (done: {}) | {} | {} | {} | {} | {} |\n",
            row.setup.system.name(),
            row.setup.nodes,
            row.size,
            row.setup.conf_name(),
            slashed(&done),
            show(|r| r.p50),
            show(|r| r.p90),
            show(|r| r.p99),
            show(|r| r.mean),
            show(|r| r.max),
        );
    }
    out
}

/// Runs of one lifecycle configuration.
pub(crate) struct LifecycleRows<'a> {
    pub(crate) setup: &'a Setup,
    pub(crate) runs: &'a [LifecycleRun],
}

pub(crate) fn lifecycle_table(rows: &[LifecycleRows<'_>]) -> String {
    let mut out = String::from(
        "| system | nodes | cold: leader elected | cold: first commit | failover: new leader \
         elected | failover: new leader committed | silent leader: new leader elected | silent \
         leader: new leader committed | idle peak RSS MiB (all nodes) | leader CPU s to the kill \
         |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let runs = row.runs;
        let show =
            |f: fn(&LifecycleRun) -> f64| Shown(&Summary::of(runs.iter().map(f)), 3).to_string();
        let rss = Summary::of(runs.iter().flat_map(|r| r.idle_rss.iter().copied()));
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.setup.system.name(),
            row.setup.nodes,
            show(|r| r.cold_leader),
            show(|r| r.cold_commit),
            show(|r| r.failover_elect),
            show(|r| r.failover_commit),
            show(|r| r.silent_elect),
            show(|r| r.silent_commit),
            Shown(&rss, 1),
            show(|r| r.leader_cpu),
        );
    }
    out
}
