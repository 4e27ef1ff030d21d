//! [`RaftNode`]: the sans-IO Raft state machine of one node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{RaftConfig, RaftConfigError};
use super::configs::Configs;
use super::error::{ProposeError, RestoreError, StepError};
use super::log::RaftLog;
use super::membership::Membership;
use super::message::{AppendOutcome, Envelope, Message, SnapshotOutcome};
use super::ready::{PersistAck, RaftEvent, Ready};
use super::reception::Reception;
use super::restore::restore_log;
use super::role::{Role, RoleKind};
use super::snapshot::{IncomingChunk, LogReset, SnapshotCounters};
use super::timers::{Timer, Timers};
use super::types::{Entry, EntryKind, HardState, Instant, LogIndex, LogPosition, NodeId, Term};

/// The Raft state machine of one node: no sockets, threads, clocks or OS randomness.
///
/// Inputs ([`step`](Self::step), [`tick`](Self::tick), [`propose`](Self::propose),
/// [`on_persisted`](Self::on_persisted)) carry the current [`Instant`]; outputs are drained with
/// [`ready`](Self::ready). The driver calls `tick` at [`next_deadline`](Self::next_deadline) or
/// later.
#[derive(Debug)]
pub struct RaftNode {
    pub(crate) id: NodeId,
    pub(crate) config: RaftConfig,
    /// The configurations in the log and the one in force ([`super::configs`]).
    pub(crate) configs: Configs,
    /// Read-only nodes linked to this one, outside the membership ([`super::observers`]).
    pub(crate) observers: BTreeSet<NodeId>,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) role: Role,
    pub(crate) timers: Timers,
    rng: ChaCha8Rng,
    /// When this node last heard from the leader of its term (followers) or confirmed its
    /// quorum (leaders). Voters refuse to help depose a leader they heard from recently.
    pub(crate) leader_contact: Option<Instant>,
    /// What the driver last reported of each peer's link ([`link_up`](Self::link_up),
    /// [`link_down`](Self::link_down)); a peer it never reported is absent. A follower whose
    /// link to its leader is down no longer counts that leader as heard from recently.
    pub(crate) links: BTreeMap<NodeId, bool>,
    /// Armed when the node starts and disarmed at the first reset of its election timer (it
    /// heard from a leader, voted, or campaigned) or once used: while armed, links up to a
    /// majority of voters shorten the election timer to the cold-start timeout.
    pub(crate) cold_start: bool,
    /// The election timer was brought forward by the cold start: the round it starts is a
    /// fast one (see [`Role::PreCandidate`]). Cleared with any reset of the timer.
    pub(crate) cold_start_round: bool,
    /// The best-ranked pre-candidate of a fast round this node refused while it still held its
    /// lease (its link to the leader was up), and when: if its own link goes down soon after,
    /// its fast round gives way to that one at once (see `election.rs`).
    pub(crate) outranked_by: Option<(crate::election::Rank, Instant)>,
    /// The latest instant an input carried; for work triggered by inputs without one
    /// ([`on_persisted`](Self::on_persisted) committing a configuration entry).
    pub(crate) latest: Instant,
    /// The hard state last handed out in a [`Ready`].
    handed_out: HardState,
    /// The hard state the driver last reported durable; messages that depend on a newer term
    /// or vote wait for the next persist.
    persisted: HardState,
    outbox: Outbox,
    /// The commit index rose; caught-up followers should hear of it without waiting for a
    /// heartbeat.
    pub(crate) commit_broadcast_pending: bool,
    pub(crate) counters: RaftCounters,
    /// The snapshot being received from a leader, if any ([`super::reception`]).
    pub(crate) receiving: Option<Reception>,
    /// Received snapshot chunks not yet handed to the driver, in stream order.
    pub(crate) incoming_chunks: Vec<IncomingChunk>,
    /// The log reset to an installed snapshot, not yet handed to the driver.
    pub(crate) log_reset: Option<LogReset>,
    pub(crate) snapshot_counters: SnapshotCounters,
    /// Events for the driver, not yet handed out.
    pub(crate) events: Vec<RaftEvent>,
    /// The driver asked for no entries to apply for now ([`pause_applying`](Self::pause_applying)).
    driver_paused: bool,
}

/// What a restarted node recovered from durable storage.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// The saved term, vote and commit index.
    pub hard_state: HardState,
    /// The saved log, in order: from index 1 without a snapshot; with one, from any index up to
    /// the one right after it (entries the snapshot covers are skipped, see `snapshot`).
    pub entries: Vec<Entry>,
    /// The last entry covered by the snapshot the driver loaded into the state machine, if any
    /// (Raft paper §7). The log starts after it; commit and applied index start at least at it.
    /// If `entries` hold that index with another term (a crash in the middle of installing a
    /// leader's snapshot), the entries after it are discarded.
    pub snapshot: Option<LogPosition>,
    /// The membership in force at the snapshot's last entry, which the driver saved with the
    /// snapshot (see [`RaftNode::compact`]). It replaces the membership given to
    /// [`RaftNode::new`]; a configuration entry in `entries` after the snapshot replaces both.
    pub membership: Option<Membership>,
}

/// Counters of notable events, for the status report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftCounters {
    /// Messages that broke the protocol and were dropped.
    pub protocol_errors: u64,
    /// Messages from non-members or for other nodes, dropped.
    pub misdirected_messages: u64,
    /// Elections (real votes) this node started.
    pub elections_started: u64,
    /// Pre-vote rounds this node started.
    pub pre_votes_started: u64,
    /// Times this node stepped down as leader because it lost contact with a majority.
    pub check_quorum_step_downs: u64,
    /// Vote requests ignored because a leader was heard from recently.
    pub votes_ignored_in_lease: u64,
}

#[derive(Debug, Default)]
struct Outbox {
    now: Vec<Envelope>,
    after_persist: Vec<Envelope>,
}

impl RaftNode {
    /// A node starting from `restored` state (use `Restored::default()` for a new node).
    ///
    /// `membership` is the configuration the node starts with when its durable state names
    /// none. The membership in force is, by precedence: the latest configuration entry in the
    /// restored log, else the snapshot's ([`Restored::membership`]), else `membership`. A node
    /// may restart outside the membership in force (it was removed): it then never campaigns.
    ///
    /// # Errors
    /// [`NewNodeError`] if the configuration is invalid, `id` is not a member of `membership`,
    /// or the restored state is inconsistent.
    pub fn new(
        id: NodeId,
        membership: Membership,
        config: RaftConfig,
        mut restored: Restored,
        now: Instant,
    ) -> Result<RaftNode, NewNodeError> {
        config.validate()?;
        if !membership.contains(id) {
            return Err(RestoreError::NotAMember(id).into());
        }
        let hard_state = restored.hard_state;
        let base_membership = restored.membership.take().unwrap_or(membership);
        let log = restore_log(restored)?;
        let configs = restore_configs(base_membership, &log.entries)?;
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut node = RaftNode {
            id,
            config,
            configs,
            observers: BTreeSet::new(),
            term: hard_state.term,
            vote: hard_state.vote,
            log: RaftLog::restored_after(log.base, log.entries, log.committed),
            role: Role::Follower {
                leader: None,
                matched: LogIndex::ZERO,
            },
            timers: Timers::default(),
            rng,
            leader_contact: None,
            links: BTreeMap::new(),
            cold_start: false,
            cold_start_round: false,
            outranked_by: None,
            latest: now,
            handed_out: hard_state,
            persisted: hard_state,
            outbox: Outbox::default(),
            commit_broadcast_pending: false,
            counters: RaftCounters::default(),
            receiving: None,
            incoming_chunks: Vec::new(),
            log_reset: None,
            snapshot_counters: SnapshotCounters::default(),
            events: Vec::new(),
            driver_paused: false,
        };
        node.reset_election_timer(now);
        node.cold_start = true;
        // A lone voter is its own majority: no link will come up to tell it so.
        node.maybe_cold_start(now);
        Ok(node)
    }

    /// Handles a message from a peer.
    ///
    /// # Errors
    /// [`StepError`] when the message was refused: it comes from a node that is neither a
    /// member (of the configuration in force or of the last one committed) nor an observer
    /// (a leader's appends and snapshots are taken from anyone), is addressed to another node,
    /// or breaks the protocol. The node's state is unchanged and the event is
    /// counted.
    pub fn step(&mut self, envelope: Envelope, now: Instant) -> Result<(), StepError> {
        self.saw(now);
        if envelope.to != self.id {
            self.counters.misdirected_messages += 1;
            return Err(StepError::WrongRecipient {
                to: envelope.to,
                this: self.id,
            });
        }
        if envelope.from == self.id || !self.welcomes(envelope.from, &envelope.message) {
            self.counters.misdirected_messages += 1;
            return Err(StepError::UnknownSender(envelope.from));
        }
        let from = envelope.from;
        let result = self.step_message(from, envelope.message, now);
        if let Err(violation) = result {
            self.counters.protocol_errors += 1;
            return Err(StepError::Protocol { from, violation });
        }
        Ok(())
    }

    /// Fires the timers that are due at `now`.
    pub fn tick(&mut self, now: Instant) {
        self.saw(now);
        if self.timers.expired(Timer::Election, now) {
            self.on_election_timeout(now);
        }
        if self.timers.expired(Timer::Heartbeat, now) {
            self.on_heartbeat_timeout(now);
        }
        if self.timers.expired(Timer::Transfer, now) {
            self.on_transfer_timeout();
        }
    }

    /// Appends a command to the log, if this node is the leader.
    ///
    /// The entry is sent with the next [`ready`](Self::ready), batched with the other entries
    /// proposed before it. Being appended is no promise: the entry commits only if it is applied
    /// at the returned position with the returned term.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] on any other node; [`ProposeError::TooManyUncommitted`] when
    /// the leader already holds `uncommitted_entries_max` uncommitted entries of its own term;
    /// [`ProposeError::TransferInProgress`] while it hands its leadership over.
    pub fn propose(&mut self, data: Bytes, now: Instant) -> Result<LogPosition, ProposeError> {
        self.saw(now);
        let Role::Leader { inherited, .. } = self.role else {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        };
        if let Some(to) = self.transfer_target() {
            return Err(ProposeError::TransferInProgress { to });
        }
        // Its own entries only: a leader that inherited a long uncommitted tail (a restart
        // that recovered an old commit index) takes calls at once; the tail commits with its
        // first entry.
        let floor = self.log.committed().max(inherited);
        let uncommitted = self.log.last_index().0 - floor.0;
        if uncommitted >= self.config.uncommitted_entries_max {
            return Err(ProposeError::TooManyUncommitted { uncommitted });
        }
        Ok(self.append_own(EntryKind::Command, data, now))
    }

    /// Whether [`ready`](Self::ready) would return any work.
    pub fn has_ready(&self) -> bool {
        self.hard_state() != self.handed_out
            || self.log.has_unpersisted()
            || !self.outbox.now.is_empty()
            || !self.outbox.after_persist.is_empty()
            || (self.log.has_applicable() && !self.applying_blocked())
            || self.has_appends_to_send()
            || self.has_snapshot_reads()
            || !self.incoming_chunks.is_empty()
            || self.log_reset.is_some()
            || !self.events.is_empty()
    }

    /// Drains the work the node has for its driver. See [`Ready`] for what to do with it.
    pub fn ready(&mut self) -> Ready {
        self.send_pending_appends();
        let hard_state = self.hard_state();
        let changed = hard_state != self.handed_out;
        self.handed_out = hard_state;
        let entries = self.log.take_unpersisted();
        let hard_state = changed.then_some(hard_state);
        let ack = PersistAck {
            hard_state,
            last_entry: entries.last().map(|e| (e.index, e.term)),
        };
        let committed_entries = if self.applying_blocked() {
            Vec::new()
        } else {
            self.log
                .take_applicable(self.config.apply_batch_entries_max)
        };
        Ready {
            log_reset: self.log_reset.take(),
            hard_state,
            entries,
            messages: std::mem::take(&mut self.outbox.now),
            persisted_messages: std::mem::take(&mut self.outbox.after_persist),
            committed_entries,
            snapshot_reads: self.take_snapshot_reads(),
            snapshot_chunks: std::mem::take(&mut self.incoming_chunks),
            events: std::mem::take(&mut self.events),
            ack,
        }
    }

    /// Records that the writes of the [`Ready`] that returned `ack` are durable.
    pub fn on_persisted(&mut self, ack: PersistAck) {
        if let Some(hard_state) = ack.hard_state {
            self.persisted = hard_state;
        }
        if let Some((index, term)) = ack.last_entry {
            self.log.persisted_to(index, term);
            self.maybe_commit();
        }
    }

    /// Tells a leader that messages to `peer` may have been lost (its link went down, or a
    /// message could not be queued): replication to it starts again from what it is known to
    /// hold, at once rather than after the resend timeout (etcd's `ReportUnreachable`). Does
    /// nothing on a follower or for an unknown peer.
    pub fn report_unreachable(&mut self, peer: NodeId) {
        if let Role::Leader { progress, .. } = &mut self.role
            && let Some(p) = progress.get_mut(&peer)
        {
            p.unreachable();
        }
    }

    /// Tells the node that the driver's link to `peer` is up (the transport connected, or
    /// connected again). Linked to a majority of voters before it heard from any leader, a node
    /// that just started campaigns after a short random wait ([`RaftConfig::cold_start_timeout`]).
    pub fn link_up(&mut self, peer: NodeId, now: Instant) {
        self.saw(now);
        if peer == self.id {
            return;
        }
        self.record_link(peer, true);
        self.maybe_cold_start(now);
    }

    /// Tells the node that the driver's link to `peer` went down: the connection was closed
    /// or reset, which a transport learns at once when the peer's process dies. Messages to it
    /// may have been lost ([`report_unreachable`](Self::report_unreachable)); a follower of
    /// `peer` no longer counts it as a live leader, and starts a pre-vote at once
    /// ([`RaftConfig::fast_failover`]).
    ///
    /// Report only what the transport saw of the connection: a message that could not be
    /// queued is [`report_unreachable`](Self::report_unreachable), not a lost link.
    pub fn link_down(&mut self, peer: NodeId, now: Instant) {
        self.saw(now);
        if peer == self.id {
            return;
        }
        self.record_link(peer, false);
        self.report_unreachable(peer);
        self.on_leader_link_lost(peer, now);
    }

    /// Records the state of the link to `peer` if it is a member (of the configuration in
    /// force or of the last committed one), and forgets those of nodes that are no longer
    /// members: read-only nodes and strangers come and go, and the table stays bounded.
    fn record_link(&mut self, peer: NodeId, up: bool) {
        let committed = self.configs.at(self.log.committed());
        let current = self.configs.current();
        let member = |id: &NodeId| current.contains(*id) || committed.contains(*id);
        let keep = member(&peer);
        let links = &mut self.links;
        links.retain(|id, _| member(id));
        if keep {
            links.insert(peer, up);
        }
    }

    /// Stops handing out committed entries for good: the driver met an entry its code cannot
    /// apply (a code version it lacks) and must stop rather than diverge. The node goes on
    /// replicating, voting and committing.
    pub fn hold_applying(&mut self) {
        self.log.hold_applying();
    }

    /// Stops handing out committed entries while `paused`, and hands them out again once
    /// called with `false`: the driver is reading its state machine at the applied index (a
    /// snapshot being serialized) and must not change it meanwhile. Everything else goes on:
    /// replicating, persisting, voting and committing; only the applied index waits.
    pub fn pause_applying(&mut self, paused: bool) {
        self.driver_paused = paused;
    }

    /// Whether no committed entry may be handed out now: a received snapshot is being
    /// installed, or the driver paused applying.
    fn applying_blocked(&self) -> bool {
        self.driver_paused || self.applying_paused()
    }

    /// The earliest instant at which [`tick`](Self::tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The role this node plays now.
    pub fn role(&self) -> RoleKind {
        self.role.kind()
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// The leader of the current term as far as this node knows.
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            Role::Follower { leader, .. } => leader,
            Role::Leader { .. } => Some(self.id),
            Role::PreCandidate { .. } | Role::Candidate { .. } => None,
        }
    }

    /// The highest index known to be committed.
    pub fn commit_index(&self) -> LogIndex {
        self.log.committed()
    }

    /// The highest index handed out for applying.
    pub fn applied_index(&self) -> LogIndex {
        self.log.applied()
    }

    /// The highest index reported durable.
    pub fn persisted_index(&self) -> LogIndex {
        self.log.persisted()
    }

    /// The index of the last entry in the log.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The number of entries held in memory.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// The entry at `index`, if the log holds it.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.get(index)
    }

    /// Every entry the log holds, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.log.iter()
    }

    /// The members of the cluster: the configuration in force on this node, the latest in its
    /// log, committed or not (Raft thesis §4.1).
    pub fn membership(&self) -> &Membership {
        self.configs.current()
    }

    /// Counters of notable events.
    pub fn counters(&self) -> RaftCounters {
        self.counters
    }

    /// On the leader, the (next index, match index) of each other member.
    pub fn progress(&self) -> Vec<(NodeId, LogIndex, LogIndex)> {
        match &self.role {
            Role::Leader { progress, .. } => progress
                .iter()
                .map(|(&id, p)| (id, p.next_index, p.match_index))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    /// Queues a message, holding it back until the next persist if it depends on unsaved state.
    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        let acknowledges_log = match &message {
            Message::AppendResponse(r) => matches!(r.outcome, AppendOutcome::Accepted { .. }),
            Message::InstallSnapshotResponse(r) => r.outcome == SnapshotOutcome::Installed,
            _ => false,
        };
        let unsaved_term = (self.term, self.vote) != (self.persisted.term, self.persisted.vote);
        let envelope = Envelope {
            from: self.id,
            to,
            message,
        };
        if acknowledges_log || unsaved_term {
            self.outbox.after_persist.push(envelope);
        } else {
            self.outbox.now.push(envelope);
        }
    }

    /// Appends an entry of the current term as leader and returns its position.
    pub(crate) fn append_own(&mut self, kind: EntryKind, data: Bytes, now: Instant) -> LogPosition {
        debug_assert!(self.is_leader(), "only the leader appends its own entries");
        let position = LogPosition {
            index: self.log.last_index().next(),
            term: self.term,
        };
        let entry = Entry {
            index: position.index,
            term: position.term,
            kind,
            data,
        };
        self.push_entry(entry, now);
        position
    }

    /// Records the instant an input carried.
    pub(crate) fn saw(&mut self, now: Instant) {
        self.latest = self.latest.max(now);
    }

    pub(crate) fn reset_election_timer(&mut self, now: Instant) {
        self.cold_start = false;
        self.cold_start_round = false;
        let timeout = self.random_election_timeout();
        self.timers.set(Timer::Election, now + timeout);
    }

    /// Brings the election timer forward to at most `limit` from `now`, at a uniformly random
    /// point, unless it is due sooner.
    pub(crate) fn shorten_election_timer(&mut self, now: Instant, limit: Duration) {
        let nanos = self.rng.random_range(0..=limit.as_nanos());
        let at = now + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        if self
            .timers
            .deadline(Timer::Election)
            .is_none_or(|due| at < due)
        {
            self.timers.set(Timer::Election, at);
        }
    }

    fn random_election_timeout(&mut self) -> Duration {
        let min = self.config.election_timeout_min.as_nanos();
        let max = self.config.election_timeout_max.as_nanos();
        let nanos = self.rng.random_range(min..=max);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The configurations of a restored log: `base` at its start, then its configuration entries.
fn restore_configs(base: Membership, entries: &[Entry]) -> Result<Configs, RestoreError> {
    let mut configs = Configs::new(base);
    for entry in entries.iter().filter(|e| e.kind == EntryKind::Membership) {
        let membership =
            Membership::decode(&entry.data).map_err(|error| RestoreError::BadMembership {
                index: entry.index,
                error,
            })?;
        configs.appended(entry.index, membership);
    }
    Ok(configs)
}

/// Why a node could not be created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NewNodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] RaftConfigError),
    /// The restored state is inconsistent.
    #[error(transparent)]
    Restore(#[from] RestoreError),
}
