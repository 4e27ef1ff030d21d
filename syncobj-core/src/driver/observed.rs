//! What the tick loop publishes after each iteration for other threads to read: role, leader,
//! term, indexes, links and counters. Getters and `status()` read it without waiting for the
//! loop, whatever the loop is doing (a journal sync, a snapshot).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use syncobj_net::{BindFailure, WireStats};

use super::addresses::is_read_only;

use crate::raft::{LogIndex, NodeId, RaftCounters, RaftNode, RoleKind, Term};
use crate::status::{
    JournalStatus, MembershipStatus, PeerStatus, RaftState, SnapshotStatus, Status, WireCounters,
};

/// One iteration's view of the node.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    /// The node's clock when it was taken: how long the node has run.
    pub(crate) uptime: Duration,
    pub(crate) role: RoleKind,
    pub(crate) term: Term,
    pub(crate) leader: Option<NodeId>,
    pub(crate) commit: LogIndex,
    pub(crate) applied: LogIndex,
    pub(crate) log_len: u64,
    /// The snapshots; the driver fills in the latest one's size.
    pub(crate) snapshots: SnapshotStatus,
    /// The journal's size, as the journal knows it; the driver fills it in.
    pub(crate) journal: JournalStatus,
    pub(crate) counters: RaftCounters,
    /// On a leader: each peer's (next, match) index.
    pub(crate) progress: Vec<(NodeId, LogIndex, LogIndex)>,
    /// The node's peers and their links; shared between iterations until a link changes.
    pub(crate) peers: Arc<Peers>,
    /// Why the node stopped applying, if it did.
    pub(crate) stalled: Option<Arc<Stalled>>,
    /// Why the node stopped for good, if it did.
    pub(crate) halted: Option<Arc<str>>,
    /// Whether the transport listens: `None` while it still tries, then bound or gave up.
    pub(crate) bound: Option<Result<(), BindFailure>>,
    /// Why the last bind attempt failed, while the transport still tries.
    pub(crate) bind_retrying: Option<BindFailure>,
    /// Messages that did not decode, or came from outside the cluster.
    pub(crate) bad_frames: u64,
    /// The transport's counters, read live when a status is built.
    pub(crate) wire: Arc<WireStats>,
    /// The membership in force; shared between iterations until it changes.
    pub(crate) membership: Arc<MembershipStatus>,
    /// The longest iteration of the tick loop lately; the driver fills it in.
    pub(crate) longest_tick: Duration,
}

/// Why a node stopped applying, as the status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stalled {
    /// The code version the cluster enabled that this code lacks, if that is why.
    pub(crate) code_version: Option<u32>,
    /// The reason, in words.
    pub(crate) reason: String,
}

/// This node and its peers: names, ids, and whether each link is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peers {
    pub(crate) me: NodeId,
    /// Every node this one knows, itself included, by id.
    pub(crate) nodes: BTreeMap<NodeId, PeerLink>,
}

/// One node's name and link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerLink {
    pub(crate) address: String,
    pub(crate) connected: bool,
}

/// What a status needs beyond the observed value: fixed for the node's life, or read live.
pub(crate) struct StatusContext {
    pub(crate) self_code_version: u32,
    pub(crate) enabled_code_version: u32,
    /// Why the loop died, if it did.
    pub(crate) failure: Option<String>,
    /// Whether the node allows membership changes.
    pub(crate) dynamic_membership_change: bool,
}

impl Observed {
    /// What a node looks like before its first iteration.
    pub(crate) fn initial(raft: &RaftNode, peers: Arc<Peers>) -> Observed {
        Observed::capture(raft, peers, Duration::ZERO)
    }

    /// The Raft node's side of the view; the driver fills in the rest.
    pub(crate) fn capture(raft: &RaftNode, peers: Arc<Peers>, uptime: Duration) -> Observed {
        let counters = raft.snapshot_counters();
        Observed {
            uptime,
            role: raft.role(),
            term: raft.term(),
            leader: raft.leader(),
            commit: raft.commit_index(),
            applied: raft.applied_index(),
            log_len: raft.log_len() as u64,
            snapshots: SnapshotStatus {
                snapshot_index: raft.log_base().index.0,
                snapshot_bytes: 0,
                compactions: counters.compactions,
                snapshots_sent: counters.transfers_started,
                snapshots_installed: counters.installed,
            },
            journal: JournalStatus::default(),
            counters: raft.counters(),
            progress: raft.progress(),
            peers,
            stalled: None,
            halted: None,
            bound: None,
            bind_retrying: None,
            bad_frames: 0,
            wire: WireStats::zero(),
            membership: Arc::default(),
            longest_tick: Duration::ZERO,
        }
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.role == RoleKind::Leader
    }

    /// The leader's address, as far as this node knows.
    pub(crate) fn leader_address(&self) -> Option<String> {
        self.leader.and_then(|id| self.peers.address(id))
    }

    /// Whether this node and the voters linked to it make a majority (PySyncObj `hasQuorum`).
    pub(crate) fn has_quorum(&self) -> bool {
        let voters = self.peers.voters().count();
        let linked = self
            .peers
            .voters()
            .filter(|&(id, link)| id == self.peers.me || link.connected)
            .count();
        linked > voters / 2
    }

    /// The status report.
    pub(crate) fn status(&self, context: StatusContext) -> Status {
        let progress: BTreeMap<NodeId, (LogIndex, LogIndex)> = self
            .progress
            .iter()
            .map(|&(id, next, matched)| (id, (next, matched)))
            .collect();
        let me = self.peers.me;
        let peer = |(id, link): (NodeId, &PeerLink)| PeerStatus {
            node: link.address.clone(),
            connected: is_read_only(id) || link.connected,
            next_index: progress.get(&id).map(|p| p.0.0),
            match_index: progress.get(&id).map(|p| p.1.0),
        };
        let others = |read_only: bool| {
            let mut peers: Vec<PeerStatus> = self
                .peers
                .nodes
                .iter()
                .map(|(&id, link)| (id, link))
                .filter(|&(id, _)| id != me && is_read_only(id) == read_only)
                .map(peer)
                .collect();
            peers.sort_unstable_by(|a, b| a.node.cmp(&b.node));
            peers
        };
        let wire = self.wire.snapshot();
        let halted = context
            .failure
            .map(|reason| format!("the tick loop died: {reason}"))
            .or_else(|| self.halted.as_deref().map(str::to_owned));
        Status {
            self_node: self.peers.address(me),
            state: RaftState::from(self.role),
            leader: self.leader_address(),
            has_quorum: self.has_quorum(),
            partner_nodes: others(false),
            readonly_nodes: others(true),
            log_len: self.log_len,
            last_applied: self.applied.0,
            commit_index: self.commit.0,
            raft_term: self.term.0,
            leader_commit_index: self.commit.0,
            uptime: self.uptime,
            longest_tick: self.longest_tick,
            self_code_version: context.self_code_version,
            enabled_code_version: context.enabled_code_version,
            stalled_at_code_version: self.stalled.as_ref().and_then(|s| s.code_version),
            stalled_on: self.stalled.as_ref().map(|s| s.reason.clone()),
            halted,
            snapshots: self.snapshots,
            journal: self.journal,
            counters: self.counters.into(),
            wire: WireCounters::new(wire, self.bad_frames),
            membership: MembershipStatus {
                dynamic_membership_change: context.dynamic_membership_change,
                ..(*self.membership).clone()
            },
            ..Status::default()
        }
    }
}

impl Peers {
    /// The name of node `id`, if known.
    pub(crate) fn address(&self, id: NodeId) -> Option<String> {
        self.nodes.get(&id).map(|link| link.address.clone())
    }

    /// The voters, this node included if it is one.
    pub(crate) fn voters(&self) -> impl Iterator<Item = (NodeId, &PeerLink)> {
        self.nodes
            .iter()
            .filter(|(id, _)| !is_read_only(**id))
            .map(|(&id, link)| (id, link))
    }

    /// Whether the link to `address` is up.
    pub(crate) fn is_connected(&self, address: &str) -> bool {
        self.nodes
            .values()
            .any(|link| link.address == address && link.connected)
    }
}
