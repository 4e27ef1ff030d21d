//! [`Cluster`]: simulated nodes on a simulated network under a virtual clock, checked after every
//! step.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::checker::{Checker, Violation};
use super::links::{Cause, SimLinks};
use super::net::{NetConfig, NetStats, SimNet};
use super::node::{Durable, Incoming, SimNode, SimSnapshot};
use super::trace::{TraceEvent, TraceSink};
use crate::raft::{
    ChangeError, ChangeStarted, Entry, Envelope, IncomingChunk, Instant, LogIndex, LogPosition,
    Membership, MembershipChange, NodeId, ProposeError, RaftConfig, RaftNode, Ready, Restored,
    RoleKind, SnapshotRead, Term, TransferError,
};

/// The most Ready rounds one step may take before the simulator calls it a livelock.
const READY_ROUNDS_MAX: usize = 1_000;

/// The shape of a simulated cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Voting members, with ids `1..=voters`.
    pub voters: usize,
    /// Non-voting members, numbered after the voters.
    pub non_voters: usize,
    /// Observers (read-only nodes), numbered after the non-voters: outside the membership, each
    /// sees itself as a non-voter, and every other node registers it with
    /// [`RaftNode::add_observer`] whenever it starts, as a voter's driver does for a linked
    /// read-only node.
    pub observers: usize,
    /// Spare nodes, numbered after the observers: outside the cluster and stopped until
    /// [`Cluster::join`] starts them, to be added with [`Cluster::change_membership`].
    pub spares: usize,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The Raft settings of every node (each node's `seed` is derived from the cluster's).
    pub raft: RaftConfig,
    /// How the network behaves.
    pub net: NetConfig,
    /// Each node snapshots its state machine and compacts its log whenever it has applied this
    /// many entries past its latest snapshot (Raft paper §7); `None` never compacts.
    pub compact_every: Option<u64>,
    /// A node installs a received snapshot after one to eight more of its inputs rather than at
    /// once, as a driver writing snapshots on a helper thread would: the node runs on meanwhile.
    pub defer_installs: bool,
    /// Each node's transport reports its links going down and up, as TCP would (see
    /// `sim/links.rs`): at once when a peer's process dies, after a silence across a
    /// partition. Without it nodes learn of nothing but messages, as over a transport that
    /// reports no links.
    pub report_links: bool,
}

impl ClusterConfig {
    /// `voters` voting nodes with default Raft settings on a reliable network, no compaction.
    pub fn new(voters: usize, seed: u64) -> ClusterConfig {
        ClusterConfig {
            voters,
            non_voters: 0,
            observers: 0,
            spares: 0,
            seed,
            raft: RaftConfig::default(),
            net: NetConfig::reliable(),
            compact_every: None,
            defer_installs: false,
            report_links: true,
        }
    }
}

/// What a client call made on a node became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Not applied yet on the node that made it.
    Pending,
    /// Applied at its position: the write is acknowledged.
    Applied,
    /// Another entry was applied at its position: the write was lost before it committed.
    Discarded,
    /// The node crashed before it applied the entry; the outcome is unknown to the client.
    Unknown,
}

#[derive(Clone, Debug)]
struct Call {
    node: NodeId,
    position: LogPosition,
    data: Bytes,
    outcome: CallOutcome,
}

/// Counters of one simulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Events processed: message deliveries and timer ticks.
    pub steps: u64,
    /// What the network did.
    pub net: NetStats,
    /// Snapshots taken and log compactions, all nodes together.
    pub compactions: u64,
    /// Snapshot chunks read for followers by leaders (re-sends of a chunk in flight not counted).
    pub snapshot_chunks: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Membership changes a leader accepted.
    pub membership_changes: u64,
    /// Leadership transfers a leader started.
    pub transfers: u64,
}

/// A simulated cluster running the real [`RaftNode`] code.
///
/// Time is virtual and advances only from event to event. Every random choice comes from
/// generators derived from [`ClusterConfig::seed`], so one seed always replays the same run. After
/// every step the invariants of the Raft paper are checked (see `docs/architecture.md`); the first
/// violation stops the cluster and is returned by every later call.
pub struct Cluster {
    config: ClusterConfig,
    /// The membership the cluster starts with.
    membership: Membership,
    /// The read-only nodes: never members.
    observers: Vec<NodeId>,
    now: Instant,
    rng: ChaCha8Rng,
    nodes: BTreeMap<NodeId, SimNode>,
    net: SimNet,
    /// What each node's transport reports of its links.
    links: SimLinks,
    checker: Checker,
    calls: Vec<Call>,
    pending_calls: BTreeMap<(NodeId, LogIndex), usize>,
    steps: u64,
    snapshot_stats: (u64, u64, u64),
    /// Membership changes and transfers started.
    operations: (u64, u64),
    violation: Option<Violation>,
    trace: Option<TraceSink>,
    trace_messages: bool,
}

impl Cluster {
    /// A cluster whose nodes all start empty at time zero.
    ///
    /// # Panics
    /// If `config.raft` is invalid or there are no voters.
    pub fn new(config: ClusterConfig) -> Cluster {
        assert!(config.voters > 0, "a cluster needs a voter");
        let count = |n: usize| u64::try_from(n).expect("count fits u64");
        let voters = count(config.voters);
        let members = voters + count(config.non_voters);
        let observers = members + count(config.observers);
        let spares = observers + count(config.spares);
        let membership =
            Membership::new((1..=voters).map(NodeId), (voters + 1..=members).map(NodeId));
        let mut cluster = Cluster {
            observers: (members + 1..=observers).map(NodeId).collect(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            net: SimNet::new(config.net.clone()),
            links: SimLinks::new(ChaCha8Rng::seed_from_u64(config.seed ^ 0x11_4C5E_7000)),
            config,
            membership,
            now: Instant::ZERO,
            nodes: BTreeMap::new(),
            checker: Checker::default(),
            calls: Vec::new(),
            pending_calls: BTreeMap::new(),
            steps: 0,
            snapshot_stats: (0, 0, 0),
            operations: (0, 0),
            violation: None,
            trace: None,
            trace_messages: false,
        };
        for id in (1..=spares).map(NodeId) {
            let given = cluster.membership_seen_by(id, &cluster.membership);
            cluster.nodes.insert(id, SimNode::new(given));
        }
        // Every node exists before any starts: the others register the observers as they start.
        for id in (1..=observers).map(NodeId) {
            cluster.start(id);
        }
        cluster
    }

    /// The membership `id` is started with when `membership` is the cluster's: a node outside it
    /// (an observer, or a spare about to be added) sees itself as a non-voter, so that it never
    /// campaigns before a configuration makes it a voter.
    fn membership_seen_by(&self, id: NodeId, membership: &Membership) -> Membership {
        if membership.contains(id) {
            return membership.clone();
        }
        let voters = membership.voters().iter().copied();
        let others = membership.non_voters().iter().copied();
        Membership::new(voters, others.chain([id]))
    }

    /// Sends every event to `sink`; with `messages`, every delivered message too.
    pub fn set_trace(&mut self, sink: impl FnMut(Instant, &TraceEvent) + 'static, messages: bool) {
        self.trace = Some(Box::new(sink));
        self.trace_messages = messages;
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The ids of every node, running or not: members, observers and spares.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The membership the cluster started with.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The observers (read-only nodes).
    pub fn observers(&self) -> &[NodeId] {
        &self.observers
    }

    /// The Raft state of `id`, unless it is crashed.
    pub fn node(&self, id: NodeId) -> Option<&RaftNode> {
        self.nodes.get(&id).and_then(|n| n.raft.as_ref())
    }

    /// The state machine of `id`: the entries it applied, from index 1 (those of its snapshot
    /// first, after a restart or an install), in order.
    pub fn applied(&self, id: NodeId) -> &[Entry] {
        self.nodes.get(&id).map_or(&[], |n| n.applied.as_slice())
    }

    /// The running node that leads the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.running()
            .filter(|n| n.is_leader())
            .max_by_key(|n| n.term())
            .map(RaftNode::id)
    }

    /// The highest term of any running node.
    pub fn max_term(&self) -> Term {
        self.running().map(RaftNode::term).max().unwrap_or_default()
    }

    /// The running nodes.
    pub fn running(&self) -> impl Iterator<Item = &RaftNode> {
        self.nodes.values().filter_map(|n| n.raft.as_ref())
    }

    /// The first invariant that broke, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Counters of the run so far.
    pub fn stats(&self) -> ClusterStats {
        let (compactions, snapshot_chunks, snapshots_installed) = self.snapshot_stats;
        ClusterStats {
            steps: self.steps,
            net: self.net.stats,
            compactions,
            snapshot_chunks,
            snapshots_installed,
            membership_changes: self.operations.0,
            transfers: self.operations.1,
        }
    }

    /// The highest index known committed on any node.
    pub fn highest_committed(&self) -> LogIndex {
        self.checker.highest_committed()
    }

    /// Changes how the network behaves from now on.
    pub fn set_net(&mut self, net: NetConfig) {
        self.emit(TraceEvent::NetworkChanged {
            description: format!("{net:?}"),
        });
        self.net.config = net;
    }

    /// Processes every event up to `deadline`, then sets the clock to it.
    ///
    /// # Errors
    /// The first [`Violation`] of the run.
    pub fn run_until(&mut self, deadline: Instant) -> Result<(), Violation> {
        while let Some(at) = self.next_event_time() {
            if at > deadline {
                break;
            }
            self.step()?;
        }
        self.now = self.now.max(deadline);
        self.violation.clone().map_or(Ok(()), Err)
    }

    /// Runs for `duration` of virtual time.
    ///
    /// # Errors
    /// The first [`Violation`] of the run.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), Violation> {
        self.run_until(self.now + duration)
    }

    /// Runs until `done` holds, checking it after every step, for at most `limit` of virtual time.
    /// Returns whether `done` held.
    ///
    /// # Errors
    /// The first [`Violation`] of the run.
    pub fn run_until_true(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> Result<bool, Violation> {
        let deadline = self.now + limit;
        while !done(self) {
            match self.next_event_time() {
                Some(at) if at <= deadline => {
                    self.step()?;
                }
                _ => {
                    self.now = self.now.max(deadline);
                    return Ok(done(self));
                }
            }
        }
        Ok(true)
    }

    /// Processes the next event: the earliest message arrival or timer. Returns `false` if there
    /// was none.
    ///
    /// # Errors
    /// The first [`Violation`] of the run.
    pub fn step(&mut self) -> Result<bool, Violation> {
        if let Some(violation) = &self.violation {
            return Err(violation.clone());
        }
        let arrival = self.net.next_arrival();
        let timer = self.next_timer();
        let link = self.links.next_due();
        if let Some(at) = link
            && arrival.is_none_or(|a| at < a)
            && timer.is_none_or(|(t, _)| at < t)
        {
            self.steps += 1;
            let result = self.deliver_link(at);
            result.map_err(|what| self.fail(what))?;
            return Ok(true);
        }
        let result = match (arrival, timer) {
            (Some(at), Some((t, _))) if at <= t => self.deliver_next(at),
            (Some(at), None) => self.deliver_next(at),
            (_, Some((t, id))) => self.tick(id, t),
            (None, None) => return Ok(false),
        };
        self.steps += 1;
        result.map_err(|what| self.fail(what))?;
        Ok(true)
    }

    /// Hands a command to `node`, as a client would; only a leader accepts it.
    ///
    /// # Errors
    /// The node's [`ProposeError`]; [`ProposeError::NotLeader`] for a crashed node too.
    pub fn propose(&mut self, node: NodeId, data: Bytes) -> Result<LogPosition, ProposeError> {
        let now = self.now;
        let raft = self
            .nodes
            .get_mut(&node)
            .and_then(|n| n.raft.as_mut())
            .ok_or(ProposeError::NotLeader { leader: None })?;
        let position = raft.propose(data.clone(), now)?;
        self.emit(TraceEvent::Proposed {
            node,
            index: position.index,
            term: position.term,
        });
        self.pending_calls
            .insert((node, position.index), self.calls.len());
        self.calls.push(Call {
            node,
            position,
            data,
            outcome: CallOutcome::Pending,
        });
        if let Err(what) = self.drain(node) {
            return Err(self.fail_propose(what));
        }
        Ok(position)
    }

    /// What became of the call `node` made at `position`.
    pub fn call_outcome(&self, node: NodeId, position: LogPosition) -> Option<CallOutcome> {
        self.calls
            .iter()
            .rev()
            .find(|c| c.node == node && c.position == position)
            .map(|c| c.outcome)
    }

    /// Every acknowledged call: (node, position, data).
    pub fn acknowledged(&self) -> impl Iterator<Item = (NodeId, LogPosition, &Bytes)> {
        self.calls
            .iter()
            .filter(|c| c.outcome == CallOutcome::Applied)
            .map(|c| (c.node, c.position, &c.data))
    }

    /// Delivers `envelope` to its addressee now, bypassing the network: for tests that forge
    /// messages.
    ///
    /// # Errors
    /// The first [`Violation`] of the run.
    pub fn inject(&mut self, envelope: Envelope) -> Result<(), Violation> {
        if let Some(violation) = &self.violation {
            return Err(violation.clone());
        }
        let at = self.now;
        self.deliver(envelope, at).map_err(|what| self.fail(what))
    }

    /// Stops `node`: everything not durable is lost, messages to it are dropped.
    pub fn crash(&mut self, node: NodeId) {
        let Some(sim) = self.nodes.get_mut(&node) else {
            return;
        };
        if !sim.crash() {
            return;
        }
        for call in &mut self.calls {
            if call.node == node && call.outcome == CallOutcome::Pending {
                call.outcome = CallOutcome::Unknown;
            }
        }
        self.pending_calls.retain(|&(n, _), _| n != node);
        self.links.forget(node);
        self.relink(Cause::Process);
        self.emit(TraceEvent::Crashed { node });
    }

    /// Starts a crashed `node` again from its durable state.
    ///
    /// # Errors
    /// The first [`Violation`] of the run (a node that cannot restart from its own durable state
    /// is one).
    pub fn restart(&mut self, node: NodeId) -> Result<(), Violation> {
        if self.nodes.get(&node).is_some_and(SimNode::is_up) {
            return Ok(());
        }
        self.start(node);
        self.violation.clone().map_or(Ok(()), Err)
    }

    /// Starts the spare `node` outside the cluster, as an operator starts a new server before
    /// adding it: with a fresh disk it is given the membership of the leader of the highest term
    /// (else the one the cluster started with) and sees itself in it as a non-voter; a node that
    /// ran before restarts from its disk with what it was given then. Does nothing to a running
    /// node or an observer.
    ///
    /// # Errors
    /// The first [`Violation`] of the run.
    pub fn join(&mut self, node: NodeId) -> Result<(), Violation> {
        let known = self
            .leader()
            .and_then(|l| self.node(l))
            .map_or_else(|| self.membership.clone(), |l| l.membership().clone());
        let given = self.membership_seen_by(node, &known);
        match self.nodes.get_mut(&node) {
            Some(sim) if !sim.is_up() && !self.observers.contains(&node) => {
                if sim.starts == 0 {
                    sim.given = given;
                }
            }
            _ => return self.violation.clone().map_or(Ok(()), Err),
        }
        self.emit(TraceEvent::Joined { node });
        self.restart(node)
    }

    /// Asks `node` to change the membership by one member, as an operator's call reaching it
    /// would, and carries out what follows.
    ///
    /// # Errors
    /// The node's [`ChangeError`]; [`ChangeError::NotLeader`] for a node that is down.
    pub fn change_membership(
        &mut self,
        node: NodeId,
        change: MembershipChange,
    ) -> Result<ChangeStarted, ChangeError> {
        let now = self.now;
        let result = self
            .nodes
            .get_mut(&node)
            .and_then(|n| n.raft.as_mut())
            .ok_or(ChangeError::NotLeader { leader: None })
            .and_then(|raft| raft.change_membership(change.clone(), now));
        self.operations.0 += u64::from(result.is_ok());
        self.emit(TraceEvent::ChangeAsked {
            node,
            change,
            result: result.clone(),
        });
        self.after_operation(node);
        result
    }

    /// Asks `node` to hand its leadership over to `to` (`None`: the most up-to-date voter), and
    /// carries out what follows.
    ///
    /// # Errors
    /// The node's [`TransferError`]; [`TransferError::NotLeader`] for a node that is down.
    pub fn transfer_leadership(
        &mut self,
        node: NodeId,
        to: Option<NodeId>,
    ) -> Result<NodeId, TransferError> {
        let now = self.now;
        let result = self
            .nodes
            .get_mut(&node)
            .and_then(|n| n.raft.as_mut())
            .ok_or(TransferError::NotLeader { leader: None })
            .and_then(|raft| raft.transfer_leadership(to, now));
        self.operations.1 += u64::from(result.is_ok());
        self.emit(TraceEvent::TransferAsked { node, to, result });
        self.after_operation(node);
        result
    }

    /// Carries out what an operation on `node` started: its messages, its log write.
    fn after_operation(&mut self, node: NodeId) {
        let Some(raft) = self.node(node) else {
            return;
        };
        let before = (raft.role(), raft.term(), raft.commit_index());
        if let Err(what) = self.after_input(node, before) {
            self.fail(what);
        }
    }

    /// Splits the network into `groups`; nodes not listed form one more group.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        let listed: Vec<NodeId> = groups.iter().flatten().copied().collect();
        let rest: Vec<NodeId> = self
            .nodes
            .keys()
            .copied()
            .filter(|n| !listed.contains(n))
            .collect();
        let mut all = groups.to_vec();
        if !rest.is_empty() {
            all.push(rest);
        }
        self.net.partition(&all);
        self.relink(Cause::Network);
        self.emit(TraceEvent::Partitioned { groups: all });
    }

    /// Cuts `node` off from every other node.
    pub fn isolate(&mut self, node: NodeId) {
        self.partition(&[vec![node]]);
    }

    /// Ends every partition (the network's loss and delay settings stay).
    pub fn heal(&mut self) {
        self.net.heal();
        self.relink(Cause::Network);
        self.emit(TraceEvent::Healed);
    }

    fn start(&mut self, id: NodeId) {
        let observers = self.observers.clone();
        let Some(sim) = self.nodes.get_mut(&id) else {
            return;
        };
        sim.starts += 1;
        let mut raft_config = self.config.raft.clone();
        raft_config.seed = derive_seed(self.config.seed, id.0, sim.starts);
        let restored = Restored {
            hard_state: sim.durable.hard_state,
            entries: sim.durable.log.clone(),
            snapshot: sim.durable.snapshot.as_ref().map(|s| s.point),
            membership: sim
                .durable
                .snapshot
                .as_ref()
                .and_then(|s| s.membership.clone()),
        };
        // The driver loads its snapshot into the state machine.
        sim.applied = sim
            .durable
            .snapshot
            .as_ref()
            .map_or_else(Vec::new, |s| s.state.to_vec());
        match RaftNode::new(id, sim.given.clone(), raft_config, restored, self.now) {
            Ok(mut raft) => {
                if !observers.contains(&id) {
                    for observer in observers {
                        raft.add_observer(observer, self.now);
                    }
                }
                let (term, entries, commit) = (raft.term(), raft.log_len(), raft.commit_index());
                if sim.starts > 1 {
                    self.emit(TraceEvent::Restarted {
                        node: id,
                        term,
                        entries,
                        commit,
                    });
                }
                self.install(id, raft);
            }
            Err(error) => {
                self.fail(format!(
                    "{id} cannot restart from its durable state: {error}"
                ));
            }
        }
    }

    fn install(&mut self, id: NodeId, raft: RaftNode) {
        let check = self.checker.on_restart(&raft, false);
        if let Some(sim) = self.nodes.get_mut(&id) {
            sim.raft = Some(raft);
        }
        // A new process: it knows no link yet, and the others link to it.
        self.links.forget(id);
        self.relink(Cause::Process);
        let result = check.and_then(|()| self.drain(id));
        if let Err(what) = result {
            self.fail(what);
        }
    }

    fn next_timer(&self) -> Option<(Instant, NodeId)> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.raft.as_ref()?.next_deadline().map(|t| (t, id)))
            .min()
    }

    fn next_event_time(&self) -> Option<Instant> {
        let earliest = match (self.net.next_arrival(), self.next_timer()) {
            (Some(a), Some((t, _))) => Some(a.min(t)),
            (a, t) => a.or(t.map(|(t, _)| t)),
        };
        match (earliest, self.links.next_due()) {
            (Some(e), Some(l)) => Some(e.min(l)),
            (e, l) => e.or(l),
        }
    }

    /// Tells a node what its transport saw of a link, if the event is still current.
    fn deliver_link(&mut self, at: Instant) -> Result<(), String> {
        self.now = self.now.max(at);
        let now = self.now;
        let Some(event) = self.links.pop() else {
            return Ok(());
        };
        let Some(raft) = self
            .nodes
            .get_mut(&event.node)
            .and_then(|n| n.raft.as_mut())
        else {
            return Ok(());
        };
        let before = (raft.role(), raft.term(), raft.commit_index());
        if event.up {
            raft.link_up(event.peer, now);
        } else {
            raft.link_down(event.peer, now);
        }
        self.emit(TraceEvent::Link {
            node: event.node,
            peer: event.peer,
            up: event.up,
        });
        self.after_input(event.node, before)
    }

    /// Schedules what each node's transport will report after a change of the processes or of
    /// the network: links between running nodes on the same side are up, others down.
    fn relink(&mut self, cause: Cause) {
        if !self.config.report_links {
            return;
        }
        let running: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.raft.is_some())
            .map(|(&id, _)| id)
            .collect();
        let net = &self.net;
        self.links.update(
            &running,
            self.now,
            cause,
            |a, b| net.connected(a, b),
            |from, to| net.last_arrival(from, to),
        );
    }

    fn deliver_next(&mut self, at: Instant) -> Result<(), String> {
        self.now = self.now.max(at);
        match self.net.pop() {
            Some(envelope) => self.deliver(envelope, self.now),
            None => Ok(()),
        }
    }

    fn deliver(&mut self, envelope: Envelope, now: Instant) -> Result<(), String> {
        let to = envelope.to;
        if self.trace_messages {
            self.emit(TraceEvent::Delivered {
                envelope: envelope.clone(),
            });
        }
        let Some(raft) = self.nodes.get_mut(&to).and_then(|n| n.raft.as_mut()) else {
            self.net.stats.dropped += 1;
            return Ok(());
        };
        self.net.stats.delivered += 1;
        let before = (raft.role(), raft.term(), raft.commit_index());
        if let Err(error) = raft.step(envelope, now) {
            self.emit(TraceEvent::Refused { node: to, error });
        }
        self.after_input(to, before)
    }

    fn tick(&mut self, id: NodeId, at: Instant) -> Result<(), String> {
        self.now = self.now.max(at);
        let now = self.now;
        let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
            return Ok(());
        };
        let before = (raft.role(), raft.term(), raft.commit_index());
        raft.tick(now);
        self.after_input(id, before)
    }

    /// Drains the node's work, then checks it and reports what changed.
    fn after_input(
        &mut self,
        id: NodeId,
        before: (RoleKind, Term, LogIndex),
    ) -> Result<(), String> {
        self.drain(id)?;
        let Some(raft) = self.nodes.get(&id).and_then(|n| n.raft.as_ref()) else {
            return Ok(());
        };
        let after = (raft.role(), raft.term(), raft.commit_index());
        self.checker.after_step(raft)?;
        if (after.0, after.1) != (before.0, before.1) {
            self.emit(TraceEvent::RoleChanged {
                node: id,
                term: after.1,
                role: after.0,
            });
        }
        if after.2 > before.2 {
            self.emit(TraceEvent::Committed {
                node: id,
                index: after.2,
            });
        }
        Ok(())
    }

    /// Plays the driver: persist, send, apply, compact, serve and install snapshots, until the
    /// node has nothing more to do.
    fn drain(&mut self, id: NodeId) -> Result<(), String> {
        self.install_deferred(id)?;
        for _ in 0..READY_ROUNDS_MAX {
            let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
                return Ok(());
            };
            if !raft.has_ready() {
                return Ok(());
            }
            let mut ready = raft.ready();
            let reads = std::mem::take(&mut ready.snapshot_reads);
            let chunks = std::mem::take(&mut ready.snapshot_chunks);
            self.persist_and_send(id, ready)?;
            self.maybe_compact(id)?;
            self.serve_reads(id, reads)?;
            self.receive_chunks(id, chunks)?;
        }
        Err(format!(
            "{id} still had work after {READY_ROUNDS_MAX} Ready rounds"
        ))
    }

    /// Steps 1 to 4 of a [`Ready`]: send, persist, send what waited, apply.
    fn persist_and_send(&mut self, id: NodeId, ready: Ready) -> Result<(), String> {
        let now = self.now;
        let Some(sim) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        let base = sim
            .raft
            .as_ref()
            .map_or(LogIndex::ZERO, |r| r.log_base().index);
        let net = &mut self.net;
        send_checked(net, &mut self.rng, &sim.durable, base, ready.messages, now)?;
        if let Some(reset) = ready.log_reset {
            if sim.durable.base() != reset.snapshot {
                return Err(format!(
                    "{id} reset its log to {} but its durable snapshot is {}",
                    reset.snapshot,
                    sim.durable.base()
                ));
            }
            sim.durable.reset_log(reset);
        }
        if let Some(hard_state) = ready.hard_state {
            sim.durable.hard_state = hard_state;
        }
        sim.durable.append(&ready.entries);
        self.checker.on_persist(id, &sim.durable, &ready.entries)?;
        if sim.durable.hard_state.commit > sim.durable.last_index() {
            return Err(format!(
                "{id} saved commit {} past its log",
                sim.durable.hard_state.commit
            ));
        }
        let messages = ready.persisted_messages;
        send_checked(net, &mut self.rng, &sim.durable, base, messages, now)?;
        if let Some(raft) = sim.raft.as_mut() {
            raft.on_persisted(ready.ack);
        }
        for entry in ready.committed_entries {
            self.checker.on_apply(id, &entry)?;
            self.complete_call(id, &entry);
            if let Some(sim) = self.nodes.get_mut(&id) {
                sim.applied.push(entry);
            }
        }
        Ok(())
    }

    /// Snapshots the state machine and compacts the log once enough entries were applied past
    /// the latest snapshot.
    fn maybe_compact(&mut self, id: NodeId) -> Result<(), String> {
        let Some(every) = self.config.compact_every else {
            return Ok(());
        };
        let Some(sim) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        let Some(raft) = sim.raft.as_mut() else {
            return Ok(());
        };
        let applied = raft.applied_index();
        if applied.0 < raft.log_base().index.0 + every {
            return Ok(());
        }
        let last = sim
            .applied
            .last()
            .expect("applied entries exist past the base");
        if last.index != applied {
            return Err(format!(
                "{id}: state machine at {} but applied index {applied}",
                last.index
            ));
        }
        let point = LogPosition {
            index: applied,
            term: last.term,
        };
        // Every commit is recorded before the entries go.
        self.checker.after_step(raft)?;
        // The membership is stored with the snapshot before the log entry naming it goes.
        let membership = raft.membership_at(applied).cloned();
        let snapshot = SimSnapshot {
            point,
            state: Rc::new(sim.applied.clone()),
            membership,
        };
        Checker::on_snapshot(id, &snapshot)?;
        sim.durable.compact(snapshot);
        let handed = raft
            .compact(applied)
            .map_err(|e| format!("{id} could not compact: {e}"))?;
        if sim
            .durable
            .snapshot
            .as_ref()
            .and_then(|s| s.membership.as_ref())
            != Some(&handed.membership)
        {
            return Err(format!(
                "{id} compacted to {applied} handing over another membership than the one in force there"
            ));
        }
        self.snapshot_stats.0 += 1;
        self.emit(TraceEvent::Compacted {
            node: id,
            index: applied,
        });
        Ok(())
    }

    /// Leader: answers the snapshot reads from the snapshot each transfer started with.
    fn serve_reads(&mut self, id: NodeId, reads: Vec<SnapshotRead>) -> Result<(), String> {
        let now = self.now;
        let Some(sim) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        for read in reads {
            let Some(raft) = sim.raft.as_mut() else {
                return Ok(());
            };
            let stream = match sim.serving.get(&read.to) {
                Some((point, bytes)) if *point == read.snapshot => bytes.clone(),
                _ => match &sim.durable.snapshot {
                    Some(snapshot) if snapshot.point == read.snapshot => {
                        let bytes = snapshot.encode();
                        sim.serving.insert(read.to, (read.snapshot, bytes.clone()));
                        bytes
                    }
                    _ => {
                        raft.snapshot_unavailable(read.to, read.snapshot);
                        continue;
                    }
                },
            };
            let start = usize::try_from(read.offset).map_or(stream.len(), |o| o.min(stream.len()));
            let end = start.saturating_add(read.len).min(stream.len());
            let data = stream.slice(start..end);
            self.snapshot_stats.1 += 1;
            raft.snapshot_chunk(
                read.to,
                read.snapshot,
                read.offset,
                data,
                end == stream.len(),
                now,
            )
            .map_err(|e| format!("{id} refused its own snapshot chunk: {e}"))?;
        }
        Ok(())
    }

    /// Follower: writes received chunks; installs a snapshot after its last chunk.
    fn receive_chunks(&mut self, id: NodeId, chunks: Vec<IncomingChunk>) -> Result<(), String> {
        for chunk in chunks {
            let Some(sim) = self.nodes.get_mut(&id) else {
                return Ok(());
            };
            if chunk.offset == 0 {
                sim.incoming = Some(Incoming {
                    snapshot: chunk.snapshot,
                    bytes: Vec::new(),
                });
            }
            let incoming = sim
                .incoming
                .as_mut()
                .filter(|i| i.snapshot == chunk.snapshot && i.bytes.len() as u64 == chunk.offset)
                .ok_or_else(|| {
                    format!(
                        "{id} was handed chunk {} of {} out of order",
                        chunk.offset, chunk.snapshot
                    )
                })?;
            incoming.bytes.extend_from_slice(&chunk.data);
            if !chunk.done {
                continue;
            }
            let bytes = std::mem::take(&mut incoming.bytes);
            sim.incoming = None;
            let snapshot = SimSnapshot::decode(chunk.snapshot, &bytes)?;
            if self.config.defer_installs {
                sim.pending_install = Some((snapshot, self.rng.random_range(1..=8)));
            } else {
                self.install_snapshot(id, snapshot)?;
            }
        }
        Ok(())
    }

    fn install_deferred(&mut self, id: NodeId) -> Result<(), String> {
        let Some(sim) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        match sim.pending_install.take() {
            Some((snapshot, 0)) => self.install_snapshot(id, snapshot),
            Some((snapshot, wait)) => {
                sim.pending_install = Some((snapshot, wait - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Makes a received snapshot durable, with the membership the leader sent with it, loads it
    /// into the state machine and tells the node.
    fn install_snapshot(&mut self, id: NodeId, mut snapshot: SimSnapshot) -> Result<(), String> {
        let now = self.now;
        let point = snapshot.point;
        snapshot.membership = self
            .nodes
            .get(&id)
            .and_then(|n| n.raft.as_ref())
            .and_then(|raft| raft.incoming_snapshot_membership(point))
            .cloned();
        Checker::on_snapshot(id, &snapshot)?;
        self.checker.on_install(id, point, &snapshot.state)?;
        let pending: Vec<LogIndex> = self
            .pending_calls
            .keys()
            .filter(|&&(node, index)| node == id && index <= point.index)
            .map(|&(_, index)| index)
            .collect();
        for index in pending {
            let slot = usize::try_from(index.0 - 1).expect("fits usize");
            self.complete_call(id, &snapshot.state[slot]);
        }
        let Some(sim) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        sim.applied = snapshot.state.to_vec();
        sim.durable.snapshot = Some(snapshot);
        if let Some(raft) = sim.raft.as_mut() {
            raft.snapshot_installed(point, now)
                .map_err(|e| format!("{id} refused the snapshot it received: {e}"))?;
        }
        self.snapshot_stats.2 += 1;
        self.emit(TraceEvent::SnapshotInstalled {
            node: id,
            snapshot: point,
        });
        Ok(())
    }

    fn complete_call(&mut self, node: NodeId, entry: &Entry) {
        let Some(call) = self.pending_calls.remove(&(node, entry.index)) else {
            return;
        };
        let call = &mut self.calls[call];
        call.outcome = if call.position.term == entry.term && call.data == entry.data {
            CallOutcome::Applied
        } else {
            CallOutcome::Discarded
        };
    }

    fn emit(&mut self, event: TraceEvent) {
        if let Some(trace) = &mut self.trace {
            trace(self.now, &event);
        }
    }

    fn fail(&mut self, what: String) -> Violation {
        let at = self.now;
        self.violation.get_or_insert(Violation { at, what }).clone()
    }

    fn fail_propose(&mut self, what: String) -> ProposeError {
        self.fail(what);
        ProposeError::NotLeader { leader: None }
    }

    /// The checker's record of the committed term at `index`.
    pub fn committed_term(&self, index: LogIndex) -> Option<Term> {
        self.checker.committed_term(index)
    }
}

/// Puts messages on the wire, each after checking that the state it depends on is durable and
/// that no append starts below the sender's log `base`.
fn send_checked(
    net: &mut SimNet,
    rng: &mut ChaCha8Rng,
    durable: &Durable,
    base: LogIndex,
    envelopes: Vec<Envelope>,
    now: Instant,
) -> Result<(), String> {
    for envelope in envelopes {
        Checker::on_send(&envelope.message, envelope.to, durable, base)?;
        net.send(envelope, now, rng);
    }
    Ok(())
}

/// A seed for one node's life, derived from the cluster seed (SplitMix64 finalizer).
fn derive_seed(seed: u64, node: u64, start: u64) -> u64 {
    let mut z =
        seed ^ node.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ start.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
