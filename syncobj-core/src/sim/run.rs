//! Randomized runs: one seed drives a cluster through client load and faults, then requires it
//! to recover, and checks that no acknowledged write was lost.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::checker::Violation;
use super::cluster::{Cluster, ClusterConfig};
use super::net::{NetConfig, NetStats};
use super::trace::TraceSink;
use crate::raft::{Instant, LogPosition, MembershipChange, NodeId, RaftConfig};

/// Spare nodes a run with membership changes can add.
const SPARES: usize = 2;

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Crash nodes (losing everything not durable) and restart them later.
    pub crashes: bool,
    /// Split the network into groups that cannot talk.
    pub partitions: bool,
    /// Lose, duplicate, delay and reorder messages.
    pub lossy_network: bool,
    /// Make a node's disk fail (driver level): the node halts until it is restarted.
    pub disk_failures: bool,
    /// Change the membership while everything else goes on (Raft level): start spare nodes and
    /// add them, remove members (the leader too), promote non-voters, hand the leadership over,
    /// and stop removed nodes.
    pub membership_changes: bool,
}

impl Faults {
    /// Every fault the simulator knows.
    pub fn all() -> Faults {
        Faults {
            crashes: true,
            partitions: true,
            lossy_network: true,
            disk_failures: true,
            membership_changes: true,
        }
    }

    /// No faults: a reliable network and no crashes.
    pub fn none() -> Faults {
        Faults {
            crashes: false,
            partitions: false,
            lossy_network: false,
            disk_failures: false,
            membership_changes: false,
        }
    }
}

/// The shape of a randomized run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Voting nodes.
    pub nodes: usize,
    /// Non-voting nodes; `None` picks 0 or 1 from the seed.
    pub non_voters: Option<usize>,
    /// How long (virtual time) faults are injected.
    pub fault_duration: Duration,
    /// How long (virtual time) the healed cluster has to elect a leader and commit a new entry.
    pub liveness_timeout: Duration,
    /// Which faults to inject.
    pub faults: Faults,
    /// The longest pause between two client proposals.
    pub propose_interval_max: Duration,
    /// The Raft settings of every node.
    pub raft: RaftConfig,
    /// Let each seed shrink the batch size and the pipelining window, so that appends split
    /// entries at every boundary and runs cover probing, back-off and single-entry batches; and
    /// switch pre-vote or check-quorum off for a quarter of the seeds each.
    pub vary_replication: bool,
    /// Let three seeds in four snapshot and compact every node's log every few entries, with a
    /// snapshot chunk size and an install mode (at once or deferred) drawn per seed, so that
    /// lagging and restarted nodes catch up by snapshot transfers (Raft paper §7).
    pub vary_snapshots: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 5,
            non_voters: None,
            fault_duration: Duration::from_secs(20),
            liveness_timeout: Duration::from_secs(20),
            faults: Faults::all(),
            propose_interval_max: Duration::from_millis(20),
            raft: RaftConfig::default(),
            vary_replication: true,
            vary_snapshots: true,
        }
    }
}

/// What one seed did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub steps: u64,
    /// Entries committed (the highest committed index at the end).
    pub committed: u64,
    /// Client calls acknowledged, every one of them checked present on every node at the end.
    pub acknowledged: u64,
    /// What the network did.
    pub net: NetStats,
    /// Snapshots taken and log compactions, all nodes together.
    pub compactions: u64,
    /// Snapshot chunks leaders read for followers.
    pub snapshot_chunks: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Membership changes a leader accepted.
    pub membership_changes: u64,
    /// Leadership transfers a leader started.
    pub transfers: u64,
}

/// A seed that broke an invariant (or panicked), with what is needed to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedFailure {
    /// The seed that replays the failure.
    pub seed: u64,
    /// Voting nodes in the run.
    pub nodes: usize,
    /// What broke.
    pub violation: Violation,
    /// Extra `syncobj-sim` flags that select the kind of run that failed.
    pub replay_flags: &'static str,
}

impl fmt::Display for SeedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} violation {}\n  replay: cargo run --release --features sim --bin syncobj-sim -- --seed {} --nodes {}{}",
            self.seed, self.violation, self.seed, self.nodes, self.replay_flags
        )
    }
}

/// Runs one seed: faults and client load for `fault_duration`, then healing, a liveness check
/// and the check that every acknowledged write is on every node. A panic inside the run counts
/// as a violation.
///
/// # Errors
/// The [`SeedFailure`] naming the first violation.
pub fn run_seed(
    seed: u64,
    config: &SimConfig,
    trace: Option<(TraceSink, bool)>,
) -> Result<RunReport, SeedFailure> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut runner = Runner::new(seed, config);
        if let Some((sink, messages)) = trace {
            runner.cluster.set_trace(sink, messages);
        }
        runner.run()
    }));
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => Err(Violation {
            at: Instant::ZERO,
            what: format!("panic: {}", panic_message(&panic)),
        }),
    };
    result.map_err(|violation| SeedFailure {
        seed,
        nodes: config.nodes,
        violation,
        replay_flags: " --level raft",
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The Raft settings of one seed.
fn raft_config(config: &SimConfig, rng: &mut ChaCha8Rng) -> RaftConfig {
    let mut raft = config.raft.clone();
    if config.vary_replication {
        // (batch bytes, window): 1 byte means one entry per append. Each pair keeps enough
        // entries in flight for the backlog of a run to drain within the liveness timeout.
        const SHAPES: [(usize, usize); 8] = [
            (1, 8),
            (1, 64),
            (100, 4),
            (1000, 1),
            (1000, 2),
            (65536, 1),
            (65536, 2),
            (65536, 8),
        ];
        let (batch, window) = SHAPES[rng.random_range(0..SHAPES.len())];
        raft.append_entries_batch_size_bytes = batch;
        raft.max_inflight_appends = window;
        // Some seeds run without the election guards, whose elections are rougher.
        raft.pre_vote = rng.random_bool(0.75);
        raft.check_quorum = rng.random_bool(0.75);
        // The fast paths, on by default, are off in some seeds.
        let mut fast = ChaCha8Rng::seed_from_u64(rng.random::<u64>() ^ 0xFA57_E1EC);
        raft.fast_failover = fast.random_bool(0.8);
        raft.cold_start_timeout = fast.random_bool(0.8).then(|| {
            let min = raft.election_timeout_min.as_millis().max(2);
            let millis = fast.random_range(1..min);
            Duration::from_millis(u64::try_from(millis).unwrap_or(1))
        });
    }
    raft
}

/// Snapshot settings for one seed, from a generator of their own so that the seed's faults and
/// load stay what they were without snapshots.
fn vary_snapshots(seed: u64, config: &mut ClusterConfig) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05AA_9540_7000_u64);
    if rng.random_bool(0.25) {
        return;
    }
    const EVERY: [u64; 4] = [5, 20, 100, 500];
    const CHUNK_BYTES: [usize; 3] = [1024, 8192, 65536];
    config.compact_every = Some(EVERY[rng.random_range(0..EVERY.len())]);
    config.raft.snapshot_chunk_bytes = CHUNK_BYTES[rng.random_range(0..CHUNK_BYTES.len())];
    config.defer_installs = rng.random_bool(0.5);
}

struct Runner<'a> {
    config: &'a SimConfig,
    seed: u64,
    cluster: Cluster,
    rng: ChaCha8Rng,
    restarts: BTreeMap<NodeId, Instant>,
    next_propose: Instant,
    next_fault: Instant,
    payloads: u64,
    /// Membership changes, on a generator and a schedule of their own so that a seed's other
    /// faults stay what they are without them.
    churn: Option<Churn>,
}

/// The schedule of membership changes.
struct Churn {
    rng: ChaCha8Rng,
    next: Instant,
}

impl<'a> Runner<'a> {
    fn new(seed: u64, config: &'a SimConfig) -> Runner<'a> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005E_ED0F_FA17_u64);
        let non_voters = config.non_voters.unwrap_or_else(|| rng.random_range(0..=1));
        // Drawn apart, so that the other choices of a seed stay what they were.
        let observers = ChaCha8Rng::seed_from_u64(seed ^ 0x0B5E_0BE5).random_range(0..=1);
        let mut cluster_config = ClusterConfig {
            voters: config.nodes,
            non_voters,
            observers,
            seed,
            raft: raft_config(config, &mut rng),
            net: NetConfig::reliable(),
            compact_every: None,
            defer_installs: false,
            // Drawn apart too; a few seeds run over transports that report no links.
            report_links: ChaCha8Rng::seed_from_u64(seed ^ 0x11_4C5E).random_bool(0.9),
            spares: if config.faults.membership_changes {
                SPARES
            } else {
                0
            },
        };
        if config.vary_snapshots {
            vary_snapshots(seed, &mut cluster_config);
        }
        Runner {
            config,
            seed,
            cluster: Cluster::new(cluster_config),
            rng,
            restarts: BTreeMap::new(),
            next_propose: Instant::ZERO,
            next_fault: Instant::ZERO + Duration::from_millis(500),
            payloads: 0,
            churn: config.faults.membership_changes.then(|| Churn {
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0xC4A9_6E5E_7000),
                next: Instant::ZERO + Duration::from_millis(1000),
            }),
        }
    }

    fn run(&mut self) -> Result<RunReport, Violation> {
        self.fault_phase()?;
        self.liveness_phase()?;
        let acknowledged = self.check_acknowledged()?;
        let stats = self.cluster.stats();
        Ok(RunReport {
            seed: self.seed,
            steps: stats.steps,
            committed: self.cluster.highest_committed().0,
            acknowledged,
            net: stats.net,
            compactions: stats.compactions,
            snapshot_chunks: stats.snapshot_chunks,
            snapshots_installed: stats.snapshots_installed,
            membership_changes: stats.membership_changes,
            transfers: stats.transfers,
        })
    }

    fn fault_phase(&mut self) -> Result<(), Violation> {
        let end = self.cluster.now() + self.config.fault_duration;
        loop {
            let next_restart = self.restarts.values().min().copied().unwrap_or(end);
            let next_churn = self.churn.as_ref().map_or(end, |c| c.next);
            let next = self
                .next_propose
                .min(self.next_fault)
                .min(next_restart)
                .min(next_churn)
                .min(end);
            self.cluster.run_until(next)?;
            let now = self.cluster.now();
            if now >= end {
                return Ok(());
            }
            let due: Vec<NodeId> = self
                .restarts
                .iter()
                .filter(|&(_, &at)| at <= now)
                .map(|(&n, _)| n)
                .collect();
            for node in due {
                self.restarts.remove(&node);
                self.cluster.restart(node)?;
            }
            if now >= self.next_propose {
                self.propose_somewhere();
                let max = self.config.propose_interval_max.as_micros().max(1) as u64;
                self.next_propose = now + Duration::from_micros(self.rng.random_range(1..=max));
            }
            if now >= self.next_fault {
                self.inject_fault();
                // Now and then a storm: faults milliseconds apart catch elections and commits
                // half done.
                let gap_ms = if self.rng.random_bool(0.3) {
                    1..=50
                } else {
                    100..=3000
                };
                self.next_fault = now + Duration::from_millis(self.rng.random_range(gap_ms));
            }
            if now >= next_churn {
                self.change_membership()?;
            }
        }
    }

    /// One membership operation on the leader of the highest term, if there is one: add a
    /// spare or a removed node (as a voter, or a non-voter now and then), promote a non-voter,
    /// remove a member (the leader itself a third of the time), or hand the leadership over.
    /// Removed nodes are stopped, now and then, once their removal is committed and the leader
    /// leads the highest term any running node knows.
    fn change_membership(&mut self) -> Result<(), Violation> {
        let Some(churn) = self.churn.as_mut() else {
            return Ok(());
        };
        let rng = &mut churn.rng;
        let gap_ms = if rng.random_bool(0.3) {
            1..=100
        } else {
            200..=4000
        };
        churn.next = self.cluster.now() + Duration::from_millis(rng.random_range(gap_ms));
        let Some(leader) = self.cluster.leader() else {
            return Ok(());
        };
        let Some(node) = self.cluster.node(leader) else {
            return Ok(());
        };
        let membership = node.membership().clone();
        // Only a leader of the highest term knows the removal is for good: a deposed leader
        // that has not heard of it yet may have committed a removal that a later leader
        // undid (seed 14 of 5 voters stopped a member of the final configuration that way).
        let settled = node.pending_change().is_none() && node.term() == self.cluster.max_term();
        let outside: Vec<NodeId> = self
            .cluster
            .node_ids()
            .into_iter()
            .filter(|&n| !membership.contains(n) && !self.cluster.observers().contains(&n))
            .collect();
        if settled {
            for &n in &outside {
                if self.cluster.node(n).is_some() && churn.rng.random_bool(0.5) {
                    self.cluster.crash(n);
                    self.restarts.remove(&n);
                }
            }
        }
        let rng = &mut churn.rng;
        let voters: Vec<NodeId> = membership.voters().iter().copied().collect();
        let members: Vec<NodeId> = membership.members().collect();
        let non_voters: Vec<NodeId> = membership.non_voters().iter().copied().collect();
        match rng.random_range(0..10) {
            0..=3 if !outside.is_empty() => {
                let id = outside[rng.random_range(0..outside.len())];
                let address = format!("sim-{id}");
                let change = if rng.random_bool(0.8) {
                    MembershipChange::AddVoter { id, address }
                } else {
                    MembershipChange::AddNonVoter { id, address }
                };
                self.cluster.join(id)?;
                let _ = self.cluster.change_membership(leader, change);
            }
            0..=4 if !non_voters.is_empty() => {
                let id = non_voters[rng.random_range(0..non_voters.len())];
                let address = format!("sim-{id}");
                let change = MembershipChange::AddVoter { id, address };
                let _ = self.cluster.change_membership(leader, change);
            }
            0..=7 => {
                let id = if rng.random_bool(0.3) {
                    leader
                } else {
                    members[rng.random_range(0..members.len())]
                };
                let voters_min = (self.config.nodes / 2).max(1);
                if membership.is_voter(id) && voters.len() <= voters_min {
                    return Ok(());
                }
                let _ = self
                    .cluster
                    .change_membership(leader, MembershipChange::Remove { id });
            }
            _ => {
                let to = (rng.random_bool(0.7) && voters.len() > 1)
                    .then(|| voters[rng.random_range(0..voters.len())])
                    .filter(|&v| v != leader);
                let _ = self.cluster.transfer_leadership(leader, to);
            }
        }
        Ok(())
    }

    /// A burst of client calls made at a random node, which forwards them to the leader it knows
    /// of (as the driver will); they are lost if neither believes it leads.
    fn propose_somewhere(&mut self) {
        let ids = self.cluster.node_ids();
        let mut node = ids[self.rng.random_range(0..ids.len())];
        if let Some(leader) = self.cluster.node(node).and_then(|n| n.leader()) {
            node = leader;
        }
        let burst = if self.rng.random_bool(0.1) {
            self.rng.random_range(1..=64)
        } else {
            1
        };
        for _ in 0..burst {
            self.payloads += 1;
            let padding = self.rng.random_range(0..=32);
            let mut data = BytesMut::with_capacity(8 + padding);
            data.put_u64_le(self.payloads);
            data.put_bytes(0xAB, padding);
            if self.cluster.propose(node, data.freeze()).is_err() {
                return;
            }
        }
    }

    fn inject_fault(&mut self) {
        let faults = self.config.faults;
        let mut menu = Vec::new();
        if faults.crashes {
            menu.extend(["crash", "crash"]);
        }
        if faults.partitions {
            menu.extend(["partition", "heal"]);
        }
        if faults.lossy_network {
            menu.extend(["lossy", "calm"]);
        }
        let Some(&fault) = menu.get(self.rng.random_range(0..menu.len().max(1))) else {
            return;
        };
        match fault {
            "crash" => self.crash_one(),
            "partition" => self.partition_randomly(),
            "heal" => self.cluster.heal(),
            "lossy" => self.cluster.set_net(NetConfig::random(&mut self.rng)),
            _ => self.cluster.set_net(NetConfig::reliable()),
        }
    }

    fn crash_one(&mut self) {
        let up: Vec<NodeId> = self.cluster.running().map(|n| n.id()).collect();
        let Some(&node) = up.get(self.rng.random_range(0..up.len().max(1))) else {
            return;
        };
        self.cluster.crash(node);
        // Half the crashes are quick bounces, as a supervisor restarting a process would give.
        let down_ms = if self.rng.random_bool(0.5) {
            1..=100
        } else {
            100..=5000
        };
        let down = Duration::from_millis(self.rng.random_range(down_ms));
        self.restarts.insert(node, self.cluster.now() + down);
    }

    fn partition_randomly(&mut self) {
        let mut ids = self.cluster.node_ids();
        ids.shuffle(&mut self.rng);
        let groups = self.rng.random_range(2..=3).min(ids.len());
        let mut split: Vec<Vec<NodeId>> = vec![Vec::new(); groups];
        for (i, id) in ids.into_iter().enumerate() {
            let group = if i < groups {
                i
            } else {
                self.rng.random_range(0..groups)
            };
            split[group].push(id);
        }
        self.cluster.partition(&split);
    }

    /// Heals everything; the cluster must then elect a leader and commit and apply a new entry
    /// on every node within `liveness_timeout`.
    fn liveness_phase(&mut self) -> Result<(), Violation> {
        self.cluster.heal();
        self.cluster.set_net(NetConfig::reliable());
        for node in std::mem::take(&mut self.restarts).into_keys() {
            self.cluster.restart(node)?;
        }
        let deadline = self.cluster.now() + self.config.liveness_timeout;
        // A marker proposed to a leader that is then deposed may never resolve; propose a new one
        // to each new leader and succeed when any marker is applied everywhere.
        let mut markers: Vec<(NodeId, LogPosition)> = Vec::new();
        while self.cluster.now() < deadline {
            if let Some(leader) = self.cluster.leader()
                && markers.last().is_none_or(|&(node, p)| {
                    (node, Some(p.term)) != (leader, self.cluster.node(leader).map(|n| n.term()))
                })
                && let Ok(position) = self
                    .cluster
                    .propose(leader, Bytes::from_static(b"liveness marker"))
            {
                markers.push((leader, position));
            }
            let marker_applied = markers.iter().any(|&(_, p)| self.all_applied(p));
            if marker_applied && self.all_caught_up() && self.configuration_settled() {
                return Ok(());
            }
            self.cluster.run_for(Duration::from_millis(5))?;
        }
        Err(Violation {
            at: self.cluster.now(),
            what: format!(
                "liveness: no new entry applied on every node, or no configuration agreed by every member, within {:?} of healing (leader {:?}, max term {}, {})",
                self.config.liveness_timeout,
                self.cluster.leader(),
                self.cluster.max_term(),
                self.describe_configurations()
            ),
        })
    }

    /// The nodes that must hold every committed entry at the end: the members of the leader's
    /// configuration, and the observers. (A removed node keeps what it had.)
    fn followers_at_end(&self) -> Vec<NodeId> {
        let leader = self.cluster.leader().and_then(|l| self.cluster.node(l));
        let Some(membership) = leader.map(|l| l.membership()) else {
            return self.cluster.node_ids();
        };
        let observers = self.cluster.observers().iter().copied();
        membership.members().chain(observers).collect()
    }

    /// The leader has no membership change under way, and every member runs the leader's
    /// configuration.
    fn configuration_settled(&self) -> bool {
        let Some(leader) = self.cluster.leader().and_then(|l| self.cluster.node(l)) else {
            return false;
        };
        let membership = leader.membership();
        leader.pending_change().is_none()
            && membership.members().all(|id| {
                self.cluster
                    .node(id)
                    .is_some_and(|n| n.membership() == membership)
            })
    }

    /// Each running node's configuration and pending change, for a liveness failure.
    fn describe_configurations(&self) -> String {
        let nodes: Vec<String> = self
            .cluster
            .running()
            .map(|n| {
                let m = n.membership();
                format!(
                    "{}: voters {:?} non-voters {:?} pending {:?} applied {}",
                    n.id(),
                    m.voters(),
                    m.non_voters(),
                    n.pending_change(),
                    n.applied_index()
                )
            })
            .collect();
        nodes.join("; ")
    }

    fn all_applied(&self, position: LogPosition) -> bool {
        let slot = usize::try_from(position.index.0 - 1).unwrap_or(usize::MAX);
        self.followers_at_end().into_iter().all(|id| {
            self.cluster
                .applied(id)
                .get(slot)
                .is_some_and(|e| e.term == position.term)
        })
    }

    /// Every node has applied everything known committed.
    fn all_caught_up(&self) -> bool {
        let committed = self.cluster.highest_committed().0;
        self.followers_at_end()
            .into_iter()
            .all(|id| self.cluster.applied(id).len() as u64 >= committed)
    }

    /// Every acknowledged call is applied, unchanged, on every node.
    fn check_acknowledged(&self) -> Result<u64, Violation> {
        let mut count = 0;
        for (node, position, data) in self.cluster.acknowledged() {
            count += 1;
            let slot = usize::try_from(position.index.0 - 1).unwrap_or(usize::MAX);
            for id in self.followers_at_end() {
                let held = self.cluster.applied(id).get(slot);
                if !held.is_some_and(|e| e.term == position.term && e.data == data) {
                    return Err(Violation {
                        at: self.cluster.now(),
                        what: format!(
                            "acknowledged write lost: {node}'s call at {} in {} is not on {id} (holds {:?})",
                            position.index,
                            position.term,
                            held.map(|e| e.term)
                        ),
                    });
                }
            }
        }
        Ok(count)
    }
}
