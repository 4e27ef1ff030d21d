//! The faults, one at a time: each is made, held a while, undone, and followed by a wait (with
//! a deadline) until every node acknowledges a call again.

use std::fmt;
use std::time::Duration;

use crate::Error;
use crate::Rng;
use crate::clients::Recording;
use crate::cluster::Cluster;
use crate::proxy::Network;

/// How long every node has to acknowledge a call again after a fault is undone.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

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
    cluster: &mut Cluster,
    network: &Network,
    recording: &Recording,
    rng: &mut Rng,
) -> Result<Fault, Error> {
    let n = cluster.len();
    let mut kind = pick(rng);
    let leader = match kind {
        Kind::Kill { leader: true } | Kind::Pause { leader: true } | Kind::Isolate { leader: true } => {
            cluster.leader()
        }
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
    let hold = Duration::from_millis(200 + rng.below(600) as u64);
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
            std::thread::sleep(hold);
            undoing = recording.now();
            network.heal();
        }
    }
    let undone = recording.now();
    let all: Vec<usize> = (0..n).collect();
    if let Err(silent) = recording.wait_for_acks(&all, undone, RECOVERY_DEADLINE) {
        return Err(format!(
            "after {kind} of {nodes:?}, nodes {silent:?} acknowledged nothing within \
             {RECOVERY_DEADLINE:?}"
        )
        .into());
    }
    Ok(Fault {
        kind,
        nodes,
        made,
        undoing,
        undone,
    })
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
