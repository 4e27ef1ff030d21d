//! The faults, one at a time: each is made, held a while, undone, and followed by a wait (with
//! a deadline) until every node acknowledges a call again.

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;
use crate::Rng;
use crate::clients::{Op, Recording};
use crate::cluster::{Cluster, Link};
use crate::proxy::Network;

/// How long every node has to acknowledge a call again after a fault is undone.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

/// How often a node that has not acknowledged a call since a fault was undone is probed.
const PROBE_PERIOD: Duration = Duration::from_millis(10);

/// How often a cut-off node is given a new call while it is cut off.
const CUT_PROBE_PERIOD: Duration = Duration::from_millis(25);

/// The client number of the probes in the history.
const PROBE_CLIENT: u64 = 0;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// SIGKILL of a node (the leader when `leader`), restarted on its journal.
    Kill { leader: bool },
    /// SIGSTOP of a node (the leader when `leader`), SIGCONT later.
    Pause { leader: bool },
    /// SIGKILL of every node, all restarted on their journals.
    ClusterKill,
    /// Every link of a node (the leader when `leader`) cut.
    Isolate { leader: bool },
    /// The links between a minority and the majority cut.
    Split,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Kind::Kill { leader: true } => "kill -9 leader",
            Kind::Kill { leader: false } => "kill -9 node",
            Kind::Pause { leader: true } => "pause leader",
            Kind::Pause { leader: false } => "pause node",
            Kind::ClusterKill => "kill -9 cluster",
            Kind::Isolate { leader: true } => "isolate leader",
            Kind::Isolate { leader: false } => "isolate node",
            Kind::Split => "minority/majority split",
        };
        f.write_str(text)
    }
}

/// A fault made: which nodes it hit and when, in µs on the recording's clock.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    pub(crate) kind: Kind,
    /// The nodes killed, paused, or cut off from the majority.
    pub(crate) nodes: Vec<usize>,
    /// When the fault was in place (after the kills, the signal, the cut).
    pub(crate) made: u64,
    /// Just before it was undone (the restart, the resume, the heal).
    pub(crate) undoing: u64,
    /// Just after it was undone.
    pub(crate) undone: u64,
}

/// Picks a fault kind: kills, pauses and cuts in about equal shares, a whole-cluster kill one
/// time in sixteen.
fn pick(rng: &mut Rng) -> Kind {
    match rng.below(16) {
        0 => Kind::ClusterKill,
        1..=2 => Kind::Kill { leader: false },
        3..=4 => Kind::Kill { leader: true },
        5..=6 => Kind::Pause { leader: false },
        7..=8 => Kind::Pause { leader: true },
        9..=10 => Kind::Isolate { leader: false },
        11..=12 => Kind::Isolate { leader: true },
        _ => Kind::Split,
    }
}

/// Makes, holds and undoes one fault, then waits until every node acknowledges again.
pub(crate) fn inflict(
    (cluster, network): (&mut Cluster, &Network),
    recording: &Arc<Recording>,
    rng: &mut Rng,
    probes: &mut Probes,
    hold_max: Duration,
) -> Result<Fault, Error> {
    let n = cluster.len();
    let mut kind = pick(rng);
    let leader = match kind {
        Kind::Kill { leader: true }
        | Kind::Pause { leader: true }
        | Kind::Isolate { leader: true } => cluster.leader(),
        _ => None,
    };
    // No leader agreed on: the fault hits a node at random.
    kind = match (kind, leader) {
        (Kind::Kill { .. }, None) => Kind::Kill { leader: false },
        (Kind::Pause { .. }, None) => Kind::Pause { leader: false },
        (Kind::Isolate { .. }, None) => Kind::Isolate { leader: false },
        (kind, _) => kind,
    };
    let victim = leader.unwrap_or_else(|| rng.below(n));
    let quarter = hold_max / 4;
    let spread = (hold_max - quarter).as_millis() as usize;
    let hold = quarter + Duration::from_millis(rng.below(spread) as u64);
    let nodes = match kind {
        Kind::ClusterKill => (0..n).collect(),
        Kind::Split => minority(n, rng),
        _ => vec![victim],
    };
    let made;
    let undoing;
    match kind {
        Kind::Kill { .. } | Kind::ClusterKill => {
            for &node in &nodes {
                cluster.kill(node);
            }
            made = recording.now();
            std::thread::sleep(hold / 2);
            undoing = recording.now();
            for &node in &nodes {
                cluster.start(node)?;
            }
        }
        Kind::Pause { .. } => {
            cluster.pause(victim, true)?;
            made = recording.now();
            std::thread::sleep(hold);
            undoing = recording.now();
            cluster.pause(victim, false)?;
        }
        Kind::Isolate { .. } | Kind::Split => {
            let pairs: Vec<(usize, usize)> = nodes
                .iter()
                .flat_map(|&a| (0..n).filter(|b| !nodes.contains(b)).map(move |b| (a, b)))
                .collect();
            network.cut(&pairs);
            made = recording.now();
            // New calls on the cut-off nodes throughout the cut: none may be acknowledged.
            let until = Instant::now() + hold;
            while Instant::now() < until {
                for &node in &nodes {
                    probes.start(recording, &cluster.links[node], node, rng);
                }
                std::thread::sleep(CUT_PROBE_PERIOD);
            }
            undoing = recording.now();
            network.heal();
        }
    }
    let undone = recording.now();
    recover(cluster, recording, probes, undone).map_err(|silent| {
        format!(
            "after {kind} of {nodes:?}, nodes {silent:?} acknowledged nothing within \
             {RECOVERY_DEADLINE:?}"
        )
    })?;
    Ok(Fault {
        kind,
        nodes,
        made,
        undoing,
        undone,
    })
}

/// Waits until every node acknowledged a call after `since`, probing every node that has not
/// yet with a read every [`PROBE_PERIOD`] (each on a thread of its own, so that a node's first
/// acknowledgement is not held up by calls its clients made before and still wait on); on
/// timeout, the nodes that did not.
fn recover(
    cluster: &Cluster,
    recording: &Arc<Recording>,
    probes: &mut Probes,
    since: u64,
) -> Result<(), Vec<usize>> {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let all: Vec<usize> = (0..cluster.len()).collect();
    loop {
        let silent = match recording.wait_for_acks(&all, since, PROBE_PERIOD) {
            Ok(()) => return Ok(()),
            Err(silent) if Instant::now() > deadline => return Err(silent),
            Err(silent) => silent,
        };
        for node in silent {
            probes.start(recording, &cluster.links[node], node, &mut Rng::new(since));
        }
    }
}

/// The probes under way.
#[derive(Default)]
pub(crate) struct Probes {
    threads: Vec<JoinHandle<()>>,
}

impl Probes {
    /// Starts a call on `node`, a put or a get of a key at random.
    fn start(&mut self, recording: &Arc<Recording>, link: &Arc<Link>, node: usize, rng: &mut Rng) {
        self.threads.retain(|t| !t.is_finished());
        let (recording, link) = (Arc::clone(recording), Arc::clone(link));
        let key = rng.below(recording.keys() as usize) as u32;
        let op = match rng.below(2) {
            0 => Op::Put { key, value: 0 },
            _ => Op::Get { key },
        };
        self.threads.push(std::thread::spawn(move || {
            recording.call(&link, node, PROBE_CLIENT, op);
        }));
    }

    /// Waits for every probe's answer (or its client's deadline).
    pub(crate) fn join(&mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A random minority of `n` nodes (at least one).
fn minority(n: usize, rng: &mut Rng) -> Vec<usize> {
    let size = 1 + rng.below((n - 1) / 2);
    let mut nodes: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        nodes.swap(i, rng.below(i + 1));
    }
    nodes.truncate(size);
    nodes.sort_unstable();
    nodes
}
