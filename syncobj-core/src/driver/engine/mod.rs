//! The tick loop's state: the Raft node, the transport, the user's state and the calls in
//! flight. Exactly one thread at a time runs [`Engine::run`].

mod journal;
mod snapshots;

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::Receiver;
use syncobj_net::{Incoming, Transport, TransportCounters};

use crate::conf::{OnCodeVersionChanged, OnReady, OnStateChanged};
use crate::driver::HaltReason;
pub(crate) use crate::driver::addresses::Addresses;
use crate::driver::addresses::is_read_only;
use crate::driver::inflight::{InFlight, Outcome, PlacedForwards, Settled};
use crate::driver::objects::{ErasedObject, SET_CODE_VERSION, SYSTEM_OBJECT};
use crate::driver::persistence::Persistence;
use crate::driver::snapshots::Snapshots;
use crate::driver::wire::{NodeMessage, Refusal};
use crate::object::{CommandHeader, Completion, FailReason};
use crate::raft::{
    Entry, EntryKind, Envelope, Instant, LogIndex, NodeId, ProposeError, RaftNode, Term,
};
use crate::status::{PeerStatus, RaftState, SnapshotStatus, Status, WireCounters};

/// The most queued commands one tick takes in, so a flood cannot starve the network.
const COMMANDS_PER_TICK_MAX: usize = 10_000;

/// The most read-only nodes a voter replicates to at once; more are ignored, with a warning.
const READ_ONLY_NODES_MAX: usize = 64;

/// A queued call: the encoded command and where its outcome goes.
pub(crate) type Queued = (Bytes, Completion);

/// Settings the engine reads on every tick.
#[derive(Clone)]
pub(crate) struct EngineSettings {
    pub(crate) commands_wait_leader: bool,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) backlog_max: usize,
    pub(crate) on_state_changed: Option<OnStateChanged>,
    pub(crate) on_ready: Option<OnReady>,
    pub(crate) on_code_version_changed: Option<OnCodeVersionChanged>,
    /// Set once the node has caught up with the leader the first time (PySyncObj `isReady`).
    pub(crate) ready: Arc<ReadySignal>,
    /// The code version the cluster enabled, as applied here; callers read it.
    pub(crate) code_version: Arc<AtomicU32>,
    /// Raised once the transport is bound or gave up binding.
    pub(crate) bind_settled: Arc<ReadySignal>,
    /// A number that differs between incarnations of the node (random, or from the seed).
    pub(crate) session: u64,
}

/// A flag raised once, that threads can wait for.
#[derive(Debug, Default)]
pub(crate) struct ReadySignal {
    raised: AtomicBool,
    lock: parking_lot::Mutex<()>,
    changed: parking_lot::Condvar,
}

impl ReadySignal {
    /// Raises the flag; returns whether this call raised it.
    pub(crate) fn set(&self) -> bool {
        let _guard = self.lock.lock();
        let first = !self.raised.swap(true, Ordering::AcqRel);
        self.changed.notify_all();
        first
    }

    pub(crate) fn is_set(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Waits until the flag is raised or `deadline` passes; returns whether it is raised.
    pub(crate) fn wait_until(&self, deadline: std::time::Instant) -> bool {
        let mut guard = self.lock.lock();
        while !self.is_set() {
            if self.changed.wait_until(&mut guard, deadline).timed_out() {
                return self.is_set();
            }
        }
        true
    }
}

/// Everything the tick loop owns.
pub(crate) struct Engine {
    pub(crate) raft: RaftNode,
    pub(crate) addresses: Addresses,
    /// Frames for the transport, sent by the tick loop after each iteration.
    outbox: Vec<(String, Bytes)>,
    /// Peers that sent a message this node cannot decode: their connections are dropped.
    disconnect: Vec<String>,
    /// Completions and callbacks of this iteration, run once the engine is unlocked so that
    /// user code may call back into the node.
    deferred: Vec<Deferred>,
    /// Which peers had a live link at the last iteration.
    links: BTreeMap<String, bool>,
    /// The transport's counters as of the last iteration.
    wire: TransportCounters,
    /// Whether the transport listens, as of the last iteration.
    pub(crate) bound: Result<bool, String>,
    /// The main object, then the consumers.
    objects: Vec<Arc<dyn ErasedObject>>,
    queue: Receiver<Queued>,
    settings: EngineSettings,
    /// Why this node stopped applying, for good: nothing is applied past that entry.
    stalled: Option<Stall>,
    /// The time of the current iteration, on the driver's clock (zero when the node started).
    now: Instant,
    /// Calls held until a leader is known (`commands_wait_leader`).
    backlog: VecDeque<Queued>,
    /// The calls this node made that have not completed.
    calls: InFlight,
    /// This incarnation's number, sent with forwarded calls.
    session: u64,
    /// On the leader: forwarded calls placed in the current term, to answer duplicates.
    placed_forwards: PlacedForwards,
    last_leader: Option<NodeId>,
    last_state: RaftState,
    /// Frames that did not decode, or came from unknown addresses.
    pub(crate) bad_frames: u64,
    /// The journal, when the node has one; without, nothing is durable.
    persistence: Option<Persistence>,
    /// Snapshots: when to take one, the latest, transfers.
    snapshots: Snapshots,
    /// Why the node stopped for good (its journal failed): it then sends nothing and refuses
    /// every call.
    halted: Option<HaltReason>,
}

impl Engine {
    pub(crate) fn new(
        raft: RaftNode,
        addresses: Addresses,
        objects: Vec<Arc<dyn ErasedObject>>,
        queue: Receiver<Queued>,
        settings: EngineSettings,
        persistence: Option<Persistence>,
        snapshots: Snapshots,
    ) -> Engine {
        let session = settings.session;
        let me = raft.id();
        let links = addresses
            .by_id
            .iter()
            .filter(|&(&id, _)| id != me)
            .map(|(_, a)| (a.clone(), false))
            .collect();
        Engine {
            raft,
            addresses,
            outbox: Vec::new(),
            disconnect: Vec::new(),
            deferred: Vec::new(),
            links,
            wire: TransportCounters::default(),
            bound: Ok(false),
            objects,
            queue,
            settings,
            stalled: None,
            now: Instant::ZERO,
            backlog: VecDeque::new(),
            calls: InFlight::default(),
            session,
            placed_forwards: PlacedForwards::default(),
            last_leader: None,
            last_state: RaftState::Follower,
            bad_frames: 0,
            persistence,
            snapshots,
            halted: None,
        }
    }

    fn now(&self) -> Instant {
        self.now
    }

    /// How long the next poll may wait: at most `max_wait`, less if a Raft timer or a periodic
    /// sync is due sooner.
    pub(crate) fn poll_wait(&self, now: Instant, max_wait: Duration) -> Duration {
        let sync = self.persistence.as_ref().and_then(Persistence::next_sync);
        [self.next_deadline(), sync]
            .into_iter()
            .flatten()
            .fold(max_wait, |wait, due| {
                wait.min(due.saturating_duration_since(now))
            })
    }

    /// When the Raft node next needs a tick, if ever: never once the node halted (its timers
    /// would otherwise fire, undone, for ever).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.halted.is_some() {
            return None;
        }
        self.raft.next_deadline()
    }

    /// One iteration after a poll: handle the frames that arrived, take in queued calls, fire
    /// timers, do what Raft asks, and leave the frames to send in the outbox.
    pub(crate) fn run(
        &mut self,
        now: Instant,
        incoming: &mut Vec<Incoming>,
        transport: &mut dyn Transport,
    ) {
        self.now = self.now.max(now);
        if self.halted.is_some() {
            incoming.clear();
            self.shut_down();
            return;
        }
        for frame in incoming.drain(..) {
            self.on_frame(frame);
        }
        let now = self.now();
        self.raft.tick(now);
        self.take_calls();
        self.process_ready(transport);
        self.compact_if_due();
        self.process_ready(transport);
        self.sync_if_due();
        if self.halted.is_some() {
            self.outbox.clear();
            self.shut_down();
            return;
        }
        self.watch_leader();
        let expired = self.calls.expire(self.now);
        self.settle(expired);
        self.report_changes();
        self.flush_outbox(transport);
        for peer in self.disconnect.drain(..) {
            transport.disconnect(&peer);
        }
        for (address, up) in &mut self.links {
            *up = transport.is_connected(address);
        }
        self.sync_read_only(&transport.read_only_peers());
        self.wire = transport.counters();
        self.bound = transport.bound();
        if !matches!(self.bound, Ok(false)) {
            self.settings.bind_settled.set();
        }
    }

    /// Runs `on_state_changed` on a role change and `on_ready` on the first catch-up.
    fn report_changes(&mut self) {
        let state = RaftState::from(self.raft.role());
        if state != self.last_state {
            let old = std::mem::replace(&mut self.last_state, state);
            if let Some(callback) = self.settings.on_state_changed.clone() {
                self.defer("on_state_changed", move || callback(old, state));
            }
        }
        let caught_up = self.raft.leader().is_some()
            && self.raft.commit_index() > LogIndex::ZERO
            && self.raft.applied_index() >= self.raft.commit_index();
        if caught_up
            && self.settings.ready.set()
            && let Some(callback) = self.settings.on_ready.clone()
        {
            self.defer("on_ready", move || callback());
        }
    }

    /// Whether this node and the voters linked to it make a majority (PySyncObj `hasQuorum`).
    pub(crate) fn has_quorum(&self) -> bool {
        let me = self.raft.id();
        let voters = self.raft.membership().voters();
        let linked = self
            .addresses
            .voters()
            .filter(|&(id, address)| id == me || self.is_connected(address))
            .count();
        linked > voters.len() / 2
    }

    /// Follows the read-only nodes linked now: each new one becomes a Raft observer (the
    /// leader replicates to it), each gone one is dropped. At most [`READ_ONLY_NODES_MAX`].
    fn sync_read_only(&mut self, linked: &[String]) {
        let me = self.raft.id();
        let gone: Vec<NodeId> = self
            .addresses
            .read_only()
            .filter(|&(id, name)| id != me && !linked.contains(name))
            .map(|(id, _)| id)
            .collect();
        for id in gone {
            self.raft.remove_observer(id);
            self.addresses.remove_read_only(id);
        }
        for name in linked {
            if self.raft.observers().len() >= READ_ONLY_NODES_MAX {
                tracing::warn!(node = %name, max = READ_ONLY_NODES_MAX, "too many read-only nodes, ignored");
                break;
            }
            if let Some(id) = self.addresses.insert_read_only(name) {
                tracing::info!(node = %name, "read-only node linked");
                self.raft.add_observer(id, self.now);
            }
        }
    }

    /// The node's status report.
    pub(crate) fn status(&self) -> Status {
        let raft = &self.raft;
        let progress: BTreeMap<NodeId, (LogIndex, LogIndex)> = raft
            .progress()
            .into_iter()
            .map(|(id, next, matched)| (id, (next, matched)))
            .collect();
        let peer = |(id, address): (NodeId, &String)| PeerStatus {
            node: address.clone(),
            connected: is_read_only(id) || self.is_connected(address),
            next_index: progress.get(&id).map(|p| p.0.0),
            match_index: progress.get(&id).map(|p| p.1.0),
        };
        let partner_nodes = self
            .addresses
            .voters()
            .filter(|&(id, _)| id != raft.id())
            .map(peer)
            .collect();
        let readonly_nodes = self
            .addresses
            .read_only()
            .filter(|&(id, _)| id != raft.id())
            .map(peer)
            .collect();
        Status {
            self_node: (!is_read_only(raft.id()))
                .then(|| self.addresses.by_id.get(&raft.id()).cloned())
                .flatten(),
            state: raft.role().into(),
            leader: raft
                .leader()
                .and_then(|id| self.addresses.by_id.get(&id).cloned()),
            has_quorum: self.has_quorum(),
            partner_nodes,
            readonly_nodes,
            log_len: raft.log_len() as u64,
            last_applied: raft.applied_index().0,
            commit_index: raft.commit_index().0,
            raft_term: raft.term().0,
            leader_commit_index: raft.commit_index().0,
            uptime: self.now - Instant::ZERO,
            self_code_version: self.self_code_version(),
            enabled_code_version: self.settings.code_version.load(Ordering::Acquire),
            stalled_at_code_version: match &self.stalled {
                Some(Stall::CodeVersion(version)) => Some(*version),
                _ => None,
            },
            stalled_on: self.stalled.as_ref().map(ToString::to_string),
            halted: self.halted.as_ref().map(ToString::to_string),
            snapshots: {
                let counters = raft.snapshot_counters();
                SnapshotStatus {
                    snapshot_index: raft.log_base().index.0,
                    compactions: counters.compactions,
                    snapshots_sent: counters.transfers_started,
                    snapshots_installed: counters.installed,
                }
            },
            counters: raft.counters().into(),
            wire: WireCounters {
                bad_frames: self.wire.bad_frames + self.bad_frames,
                refused_handshakes: self.wire.refused_handshakes,
                auth_failures: self.wire.auth_failures,
                link_timeouts: self.wire.link_timeouts,
                dropped_frames: self.wire.dropped_frames,
                resolve_failures: self.wire.resolve_failures,
            },
            ..Status::default()
        }
    }

    fn on_frame(&mut self, incoming: Incoming) {
        let Some(&from) = self.addresses.by_address.get(&incoming.from) else {
            self.bad_frames += 1;
            tracing::warn!(from = %incoming.from, "frame from an address outside the cluster dropped");
            return;
        };
        match NodeMessage::decode(&incoming.frame) {
            Ok(NodeMessage::Raft(envelope)) => self.on_raft(from, envelope),
            Ok(NodeMessage::Forward {
                term,
                session,
                request,
                command,
            }) => self.on_forward(from, term, (session, request), command),
            Ok(NodeMessage::Placed {
                session,
                request,
                outcome,
            }) => self.on_placed(session, request, outcome),
            Err(error) => {
                self.bad_frames += 1;
                tracing::warn!(from = %incoming.from, %error, "undecodable message: dropping the connection");
                self.disconnect.push(incoming.from);
            }
        }
    }

    fn on_raft(&mut self, from: NodeId, envelope: Envelope) {
        if envelope.from != from {
            self.bad_frames += 1;
            tracing::warn!(%from, claimed = %envelope.from, "raft message with a forged sender: dropping the connection");
            if let Some(address) = self.addresses.by_id.get(&from) {
                self.disconnect.push(address.clone());
            }
            return;
        }
        let now = self.now();
        if let Err(error) = self.raft.step(envelope, now) {
            tracing::warn!(%error, "raft message refused");
        }
    }

    /// The leader places a follower's call and tells it where.
    fn on_forward(&mut self, from: NodeId, term: Term, id: (u64, u64), command: Bytes) {
        let outcome = self.place_forwarded(from, term, id, command);
        let (session, request) = id;
        self.send_to(
            from,
            &NodeMessage::Placed {
                session,
                request,
                outcome,
            },
        );
    }

    /// Appends a forwarded call once: a duplicate of a call already placed in this term gets
    /// the first placement back.
    fn place_forwarded(
        &mut self,
        from: NodeId,
        term: Term,
        (session, request): (u64, u64),
        command: Bytes,
    ) -> Result<(LogIndex, Term), Refusal> {
        if term != self.raft.term() || !self.raft.is_leader() {
            return Err(Refusal::NotLeader);
        }
        let key = (from, session, request);
        if let Some(placement) = self.placed_forwards.get(term, key) {
            return Ok(placement);
        }
        let position = match self.raft.propose(command, self.now) {
            Ok(position) => (position.index, position.term),
            Err(ProposeError::NotLeader { .. }) => return Err(Refusal::NotLeader),
            Err(ProposeError::TooManyUncommitted { .. }) => return Err(Refusal::QueueFull),
        };
        self.placed_forwards.remember(key, position);
        Ok(position)
    }

    fn on_placed(
        &mut self,
        session: u64,
        request: u64,
        outcome: Result<(LogIndex, Term), Refusal>,
    ) {
        if session != self.session {
            // An answer to an earlier incarnation of this node: its request numbers are not
            // ours.
            return;
        }
        let Some(completion) = self.calls.answered(request) else {
            return;
        };
        match outcome {
            Ok((index, term)) => self.place(index, term, completion),
            Err(Refusal::NotLeader) => self.finish(completion, Err(FailReason::NotLeader)),
            Err(Refusal::QueueFull) => self.finish(completion, Err(FailReason::QueueFull)),
        }
    }

    /// Waits for (index, term) to be applied here, or for the call's deadline.
    fn place(&mut self, index: LogIndex, term: Term, completion: Completion) {
        let deadline = self.settings.call_timeout.map(|t| self.now + t);
        let applied = self.raft.applied_index();
        if let Some((completion, outcome)) =
            self.calls.place(index, term, completion, deadline, applied)
        {
            self.finish(completion, outcome);
        }
    }

    /// Takes queued calls: the leader appends them, a follower forwards them, and without a
    /// leader they wait (or fail, per `commands_wait_leader`).
    fn take_calls(&mut self) {
        let queued: Vec<Queued> = self.queue.try_iter().take(COMMANDS_PER_TICK_MAX).collect();
        let mut calls = std::mem::take(&mut self.backlog);
        calls.extend(queued);
        while let Some((command, completion)) = calls.pop_front() {
            match self.raft.leader() {
                Some(leader) if leader == self.raft.id() => self.propose_own(command, completion),
                Some(leader) => self.forward(leader, command, completion),
                None if self.settings.commands_wait_leader
                    && self.backlog.len() < self.settings.backlog_max =>
                {
                    self.backlog.push_back((command, completion));
                }
                None => self.finish(completion, Err(FailReason::MissingLeader)),
            }
        }
    }

    fn propose_own(&mut self, command: Bytes, completion: Completion) {
        let now = self.now();
        match self.raft.propose(command, now) {
            Ok(position) => {
                self.place(position.index, position.term, completion);
            }
            Err(ProposeError::NotLeader { .. }) => {
                self.finish(completion, Err(FailReason::NotLeader))
            }
            Err(ProposeError::TooManyUncommitted { .. }) => {
                self.finish(completion, Err(FailReason::QueueFull))
            }
        }
    }

    fn forward(&mut self, leader: NodeId, command: Bytes, completion: Completion) {
        let deadline = self.settings.call_timeout.map(|t| self.now + t);
        let request = self.calls.forwarded(leader, completion, deadline);
        let (term, session) = (self.raft.term(), self.session);
        self.send_to(
            leader,
            &NodeMessage::Forward {
                term,
                session,
                request,
                command,
            },
        );
    }

    /// A forwarded call whose leader changed will never hear back: fail it.
    fn watch_leader(&mut self) {
        let leader = self.raft.leader();
        if leader == self.last_leader {
            return;
        }
        self.last_leader = leader;
        let lost = self.calls.leader_changed(leader);
        self.settle(lost);
    }

    /// Plays every `Ready`: messages that may leave at once go to the transport before the
    /// write (a leader's appends travel while it writes its own copy), then the journal write,
    /// then the messages that needed it, the acknowledgement, and the entries to apply.
    fn process_ready(&mut self, transport: &mut dyn Transport) {
        while self.raft.has_ready() {
            let ready = self.raft.ready();
            let (ack, must_persist) = (ready.ack(), ready.must_persist());
            for envelope in ready.messages {
                self.send_to(envelope.to, &NodeMessage::Raft(envelope));
            }
            if must_persist && self.persistence.is_some() {
                self.flush_outbox(transport);
                let persisted = self
                    .reset_journal(ready.log_reset)
                    .and_then(|()| self.persist(ready.hard_state, &ready.entries));
                if let Err(error) = persisted {
                    self.halt(error);
                    return;
                }
            }
            for envelope in ready.persisted_messages {
                self.send_to(envelope.to, &NodeMessage::Raft(envelope));
            }
            self.raft.on_persisted(ack);
            self.apply(ready.committed_entries);
            self.serve_snapshot_reads(ready.snapshot_reads);
            self.receive_snapshot_chunks(ready.snapshot_chunks);
        }
    }

    fn flush_outbox(&mut self, transport: &mut dyn Transport) {
        for (to, frame) in self.outbox.drain(..) {
            transport.send(&to, frame);
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if self.stalled.is_some() {
                return;
            }
            let outcome = match entry.kind {
                EntryKind::Command => self.apply_command(&entry.data),
                EntryKind::Noop => Err(FailReason::Discarded),
            };
            if self.stalled.is_some() {
                return;
            }
            let settled = self.calls.applied(entry.index, entry.term, outcome);
            self.settle(settled);
        }
    }

    /// Runs one command on the object it names. A command this code cannot run (unknown
    /// object or method, another signature) fails the same way on every node with that code.
    fn apply_command(&mut self, command: &[u8]) -> Result<Vec<u8>, FailReason> {
        let (header, args) =
            CommandHeader::decode(command).map_err(|e| FailReason::BadArguments(e.to_string()))?;
        if header.object == SYSTEM_OBJECT {
            return self.apply_system(header.method, args);
        }
        let object = match self.objects.get(usize::from(header.object)) {
            Some(object) => Arc::clone(object),
            None => {
                return self.stall(Stall::UnknownCommand(format!(
                    "no replicated object number {}",
                    header.object
                )));
            }
        };
        match object.check(header) {
            Ok(()) => object.apply(header, args),
            Err(reason) => self.stall(Stall::UnknownCommand(reason)),
        }
    }

    /// Stops applying for good: this code cannot run the log as the other nodes do, and
    /// running something else would diverge (PySyncObj's rule for code versions).
    fn stall(&mut self, stall: Stall) -> Result<Vec<u8>, FailReason> {
        tracing::error!(%stall, "this node stops applying until its code is upgraded");
        self.stalled = Some(stall);
        self.raft.hold_applying();
        Err(FailReason::RequestDenied)
    }

    fn apply_system(&mut self, method: u16, args: &[u8]) -> Result<Vec<u8>, FailReason> {
        if method != SET_CODE_VERSION {
            return Err(FailReason::BadArguments(format!(
                "no system command {method}"
            )));
        }
        let (version,): (u32,) =
            rmp_serde::from_slice(args).map_err(|e| FailReason::BadArguments(e.to_string()))?;
        let enabled = self.settings.code_version.load(Ordering::Acquire);
        if version < enabled {
            return Err(FailReason::RequestDenied);
        }
        if version > self.self_code_version() {
            return self.stall(Stall::CodeVersion(version));
        }
        self.settings.code_version.store(version, Ordering::Release);
        if version != enabled
            && let Some(callback) = self.settings.on_code_version_changed.clone()
        {
            self.defer("on_code_version_changed", move || {
                callback(enabled, version)
            });
        }
        Ok(rmp_serde::to_vec(&()).expect("unit encodes"))
    }

    /// The highest method version any object of this node knows (PySyncObj `self_code_version`).
    pub(crate) fn self_code_version(&self) -> u32 {
        self.objects
            .iter()
            .map(|o| o.code_version())
            .max()
            .unwrap_or(0)
    }

    fn send_to(&mut self, to: NodeId, message: &NodeMessage) {
        if let Some(address) = self.addresses.by_id.get(&to) {
            self.outbox.push((address.clone(), message.encode()));
        }
    }

    fn settle(&mut self, settled: Vec<Settled>) {
        for (completion, outcome) in settled {
            self.finish(completion, outcome);
        }
    }

    fn finish(&mut self, completion: Completion, outcome: Outcome) {
        self.deferred.push(Deferred::Complete(completion, outcome));
    }

    fn defer(&mut self, name: &'static str, callback: impl FnOnce() + Send + 'static) {
        self.deferred
            .push(Deferred::Callback(name, Box::new(callback)));
    }

    /// The completions and callbacks of the last iteration, to run without the engine locked.
    pub(crate) fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.deferred)
    }

    /// Fails every call in flight: the node is shutting down.
    fn shut_down(&mut self) {
        let queued: Vec<Queued> = self.queue.try_iter().collect();
        for (_, completion) in self.backlog.drain(..).chain(queued) {
            completion.complete(Err(FailReason::Shutdown));
        }
        for completion in self.calls.drain() {
            completion.complete(Err(FailReason::Shutdown));
        }
    }

    /// A one-line summary for diagnostics.
    #[cfg(feature = "sim")]
    pub(crate) fn describe(&self) -> String {
        format!(
            "{:?} {} leader {:?} base {} snapshot {:?} halted {} last {} commit {} applied {} {} backlog {} queued {} progress {:?}",
            self.raft.role(),
            self.raft.term(),
            self.raft.leader(),
            self.raft.log_base(),
            self.snapshots.latest_position(),
            self.halted.is_some(),
            self.raft.last_index(),
            self.raft.commit_index(),
            self.raft.applied_index(),
            self.calls.describe(),
            self.backlog.len(),
            self.queue.len(),
            self.raft.progress()
        )
    }

    /// Whether `address` had a live link at the last iteration.
    pub(crate) fn is_connected(&self, address: &str) -> bool {
        self.links.get(address).copied().unwrap_or(false)
    }
}

/// Why a node stopped applying.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stall {
    /// The cluster enabled a code version this code lacks.
    CodeVersion(u32),
    /// A command this code does not know (unknown object or method, other signature).
    UnknownCommand(String),
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::CodeVersion(version) => write!(
                f,
                "code version {version} is enabled but this code lacks it"
            ),
            Stall::UnknownCommand(reason) => write!(f, "unknown command: {reason}"),
        }
    }
}

/// Work left for the tick thread to do once the engine is unlocked.
pub(crate) enum Deferred {
    /// Complete a call (its `on_done` callback, if any, runs now).
    Complete(Completion, Result<Vec<u8>, FailReason>),
    /// Run a configuration callback.
    Callback(&'static str, Box<dyn FnOnce() + Send>),
}

impl Deferred {
    /// Does the work; a panic in a user callback is logged and contained.
    pub(crate) fn run(self) {
        match self {
            Deferred::Complete(completion, outcome) => completion.complete(outcome),
            Deferred::Callback(name, callback) => {
                if catch_unwind(AssertUnwindSafe(callback)).is_err() {
                    tracing::error!(
                        callback = name,
                        "a user callback panicked; it was contained"
                    );
                }
            }
        }
    }
}
