//! The node as the tick loop owns it: Raft, persistence, snapshots, calls and links, a plain
//! value that nothing locks. Whoever ticks holds it (the auto-tick thread, or the caller of
//! `do_tick`) and runs [`Engine::iterate`]; other threads reach it only through the command
//! queue, and read what it publishes after each iteration ([`Observed`]).

mod apply;
mod calls;
mod changes;
mod journal;
mod links;
mod snapshots;
mod ticks;

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub(crate) use self::apply::Stall;
use self::calls::Forward;
pub(crate) use self::calls::{CallLimits, Calls, Queued};
pub(crate) use self::changes::{Changes, QueuedChange};
pub(crate) use self::links::{Links, Outbox, Strangers};
use super::cluster_time::ClusterClock;
use super::life::Signals;
use super::objects::ErasedObject;
use super::observed::{Observed, Stalled};
use super::snapshots::Snapshots;
use super::wire::NodeMessage;
use super::writer::Writer;
use crate::conf::{OnCodeVersionChanged, OnReady, OnStateChanged};
use crate::driver::HaltReason;
use crate::driver::addresses::is_read_only;
use crate::object::FailReason;
use crate::raft::{Envelope, Instant, LogIndex, Membership, NodeId, PendingChange, RaftNode};
use crate::status::{MembershipStatus, PendingChangeStatus, RaftState};

/// The user's callbacks from the configuration.
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    pub(crate) on_state_changed: Option<OnStateChanged>,
    pub(crate) on_ready: Option<OnReady>,
    pub(crate) on_code_version_changed: Option<OnCodeVersionChanged>,
}

/// A user callback due at the end of the iteration, by name (for the log if it panics).
type Deferred = (&'static str, Box<dyn FnOnce() + Send>);

/// Everything the tick loop owns.
pub(crate) struct Engine {
    pub(crate) raft: RaftNode,
    links: Links,
    outbox: Outbox,
    calls: Calls,
    changes: Changes,
    /// The main object, then the consumers.
    objects: Vec<Arc<dyn ErasedObject>>,
    /// The highest method version any object's code knows.
    self_code_version: u32,
    callbacks: Callbacks,
    /// Callbacks of this iteration, run once its work is done, so that they may call back
    /// into the node.
    deferred: Vec<Deferred>,
    /// The node caught up this iteration: `ready` is raised once its callbacks ran.
    ready_due: bool,
    signals: Arc<Signals>,
    /// Why this node stopped applying, for good: nothing is applied past that entry.
    stalled: Option<Stall>,
    /// The same, as last published.
    stalled_view: Option<Arc<Stalled>>,
    /// The time of the current iteration, on the driver's clock (zero when the node started).
    now: Instant,
    last_state: RaftState,
    /// The journal's writer, when the node has a journal; without, nothing is durable.
    writer: Option<Writer>,
    /// What the writes in flight hold back, in the order they were handed over.
    held: VecDeque<journal::Held>,
    /// Snapshots: when to take one, the latest, transfers.
    snapshots: Snapshots,
    /// Why the node stopped for good (its journal failed): it then sends nothing and refuses
    /// every call.
    halted: Option<HaltReason>,
    /// The membership as last published, and what it was built from.
    membership_view: (MembershipKey, Arc<MembershipStatus>),
    /// Cluster time: the stamps this node puts on the commands it appends while it leads.
    clock: ClusterClock,
    /// How long recent iterations took (the status's `longest_tick_us`).
    ticks: ticks::TickDurations,
    /// Committed entries applied in the current iteration, against [`APPLIED_PER_ITERATION_MAX`].
    applied_this_iteration: usize,
    /// The last iteration stopped at its apply budget with Raft work left: the next one
    /// should come at once, without waiting for the network.
    more_ready: bool,
}

/// The most committed entries one iteration applies. A node catching up (after a snapshot
/// paused applying, or a follower handed a long run of entries) spreads the work over
/// several iterations, so the loop keeps answering its peers, taking calls and completing
/// the settled ones in between.
pub(crate) const APPLIED_PER_ITERATION_MAX: usize = 16_384;

/// What the published membership view depends on.
type MembershipKey = Option<(Membership, Option<PendingChange>, LogIndex)>;

/// The parts an engine is made of, as the assembly puts them together.
pub(crate) struct Parts {
    pub(crate) raft: RaftNode,
    pub(crate) links: Links,
    pub(crate) calls: Calls,
    pub(crate) changes: Changes,
    pub(crate) objects: Vec<Arc<dyn ErasedObject>>,
    pub(crate) callbacks: Callbacks,
    pub(crate) signals: Arc<Signals>,
    /// The journal's writer, when the node has a journal.
    pub(crate) writer: Option<Writer>,
    pub(crate) snapshots: Snapshots,
    /// The stamp of the last command the recovered snapshot covers (0 without one).
    pub(crate) command_time: u64,
}

impl Engine {
    pub(crate) fn new(parts: Parts) -> Engine {
        let Parts {
            raft,
            links,
            calls,
            changes,
            objects,
            callbacks,
            signals,
            writer,
            snapshots,
            command_time,
        } = parts;
        let self_code_version = objects.iter().map(|o| o.code_version()).max().unwrap_or(0);
        Engine {
            raft,
            links,
            outbox: Outbox::default(),
            calls,
            changes,
            objects,
            self_code_version,
            callbacks,
            deferred: Vec::new(),
            ready_due: false,
            signals,
            stalled: None,
            stalled_view: None,
            now: Instant::ZERO,
            last_state: RaftState::Follower,
            writer,
            held: VecDeque::new(),
            snapshots,
            halted: None,
            membership_view: (None, Arc::default()),
            clock: ClusterClock::new(command_time),
            ticks: ticks::TickDurations::new(),
            applied_this_iteration: 0,
            more_ready: false,
        }
    }

    /// One iteration of the tick loop: wait at most `max_wait` for the network (less if a
    /// timer is due sooner), handle what arrived, take in queued calls, fire timers, do what
    /// Raft asks, complete the calls that settled, run the user's callbacks, and publish what
    /// the node now looks like. `clock` reads the driver's clock.
    pub(crate) fn iterate(&mut self, max_wait: Duration, clock: &dyn Fn() -> Instant) {
        let wait = self.poll_wait(clock(), max_wait);
        let frames = self.links.poll(wait, &mut self.raft, self.now);
        // Measured from the end of the wait: what the loop could not react during.
        let busy = std::time::Instant::now();
        self.run(clock(), frames);
        self.finish_iteration();
        self.ticks.record(busy);
    }

    /// How long the next poll may wait: at most `max_wait`, less if a Raft timer or a periodic
    /// sync is due sooner.
    fn poll_wait(&self, now: Instant, max_wait: Duration) -> Duration {
        if self.calls.queued() || self.changes.queued() {
            // Left over from the last iteration's limit: no wake comes for them.
            return Duration::ZERO;
        }
        let sync = self.writer.as_ref().and_then(Writer::next_sync);
        [self.next_deadline(), sync]
            .into_iter()
            .flatten()
            .fold(max_wait, |wait, due| {
                wait.min(due.saturating_duration_since(now))
            })
    }

    /// Whether the node halted (its journal failed): it takes no more calls.
    #[cfg(feature = "sim")]
    pub(crate) fn is_halted(&self) -> bool {
        self.halted.is_some()
    }

    /// When the Raft node next needs a tick, if ever: never once the node halted (its timers
    /// would otherwise fire, undone, for ever).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.halted.is_some() {
            return None;
        }
        if self.more_ready {
            return Some(self.now);
        }
        self.raft.next_deadline()
    }

    fn run(&mut self, now: Instant, frames: Vec<(NodeId, Bytes)>) {
        self.now = self.now.max(now);
        self.applied_this_iteration = 0;
        self.more_ready = false;
        self.signals.rearm_queue_wake();
        if self.halted.is_some() {
            self.calls.fail_all(&FailReason::Shutdown);
            self.changes.fail_all(&FailReason::Shutdown);
            return;
        }
        for (from, frame) in frames {
            self.on_frame(from, &frame);
        }
        if self
            .signals
            .force_compaction
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            self.snapshots.force();
        }
        self.raft.tick(self.now);
        self.clock.watch(&self.raft, self.now);
        if self.is_removed() {
            self.calls.refuse_queued(&FailReason::Removed);
        } else {
            let links = &self.links;
            let linked = |node| links.is_up(node);
            let raft = (&mut self.raft, &mut self.clock);
            self.calls.take(raft, &mut self.outbox, linked, self.now);
        }
        self.take_changes();
        self.process_ready();
        self.compact_if_due();
        self.process_ready();
        self.sync_if_due();
        if self.halted.is_some() {
            Links::discard(&mut self.outbox);
            self.calls.fail_all(&FailReason::Shutdown);
            self.changes.fail_all(&FailReason::Shutdown);
            return;
        }
        self.take_admin_requests();
        self.links.follow(&mut self.raft);
        self.calls.watch(self.raft.leader(), self.now);
        self.watch_transfers();
        self.report_changes();
        self.links.flush(&mut self.outbox, &mut self.raft);
        if self.links.bound.is_some() {
            self.signals.bind_settled.raise();
        }
    }

    /// Publishes what the node looks like now, completes the calls that settled, and runs the
    /// user's callbacks (a panic in one is logged and contained).
    fn finish_iteration(&mut self) {
        // Published first: a caller whose call completes sees the node as it was then (the
        // leader a transfer made, the index its entry was applied at).
        self.publish();
        self.calls.complete_settled();
        self.answer_admins();
        for (name, callback) in self.deferred.drain(..) {
            if catch_unwind(AssertUnwindSafe(callback)).is_err() {
                tracing::error!(
                    callback = name,
                    "a user callback panicked; it was contained"
                );
            }
        }
        // Raised after `on_ready` ran, so a caller that sees `is_ready()` also sees its effects.
        if std::mem::take(&mut self.ready_due) {
            self.signals.ready.raise();
        }
    }

    /// Swaps in a fresh [`Observed`] for getters and `status()` to read.
    fn publish(&mut self) {
        let mut observed =
            Observed::capture(&self.raft, self.links.peers(), self.now - Instant::ZERO);
        if self.stalled.is_some() && self.stalled_view.is_none() {
            self.stalled_view = self.stalled.as_ref().map(|s| Arc::new(s.view()));
        }
        observed.stalled = self.stalled_view.clone();
        observed.halted = self.halted.as_ref().map(|h| Arc::from(h.to_string()));
        observed.bound = self.links.bound.clone();
        observed.bind_retrying = self.links.bind_retrying.clone();
        observed.bad_frames = self.links.bad_frames;
        observed.wire = Arc::clone(&self.links.wire);
        observed.membership = self.membership_view();
        if self.is_removed() {
            // No leader speaks to a removed node any more: the one it heard last (for ever,
            // since it never campaigns) is not its leader, and may lead no longer.
            observed.leader = None;
        }
        observed.snapshots.snapshot_bytes = self.snapshots.latest_bytes();
        observed.longest_tick = self.ticks.longest();
        if let Some(writer) = &self.writer {
            observed.journal = writer.status();
        }
        self.signals.observed.store(Arc::new(observed));
    }

    /// The membership in force as the status shows it, rebuilt only when it changed.
    fn membership_view(&mut self) -> Arc<MembershipStatus> {
        let membership = self.raft.membership();
        let pending = self.raft.pending_change();
        let last = match pending {
            Some(PendingChange::CatchingUp { .. }) => self.raft.last_index(),
            _ => LogIndex::ZERO,
        };
        let fresh = self
            .membership_view
            .0
            .as_ref()
            .is_some_and(|(m, p, l)| m == membership && *p == pending && *l == last);
        if !fresh {
            let name = |id: NodeId| {
                membership
                    .address(id)
                    .map(str::to_owned)
                    .or_else(|| self.links.addresses.by_id.get(&id).cloned())
                    .unwrap_or_else(|| id.to_string())
            };
            let names = |ids: &std::collections::BTreeSet<NodeId>| {
                let mut names: Vec<String> = ids.iter().map(|&id| name(id)).collect();
                names.sort_unstable();
                names
            };
            let view = MembershipStatus {
                voters: names(membership.voters()),
                non_voters: names(membership.non_voters()),
                pending: pending.map(|p| match p {
                    PendingChange::Uncommitted(index) => {
                        PendingChangeStatus::Uncommitted { index: index.0 }
                    }
                    PendingChange::CatchingUp { id, match_index } => {
                        PendingChangeStatus::CatchingUp {
                            node: name(id),
                            match_index: match_index.0,
                            lag: last.0.saturating_sub(match_index.0),
                        }
                    }
                }),
                is_member: membership.contains(self.raft.id()) && !is_read_only(self.raft.id()),
                dynamic_membership_change: false,
            };
            self.membership_view = (Some((membership.clone(), pending, last)), Arc::new(view));
        }
        Arc::clone(&self.membership_view.1)
    }

    /// Runs `on_state_changed` on a role change and `on_ready` on the first catch-up (the
    /// `ready` flag follows at the end of the iteration, after the callback).
    fn report_changes(&mut self) {
        let state = RaftState::from(self.raft.role());
        if state != self.last_state {
            let old = std::mem::replace(&mut self.last_state, state);
            if let Some(callback) = self.callbacks.on_state_changed.clone() {
                self.defer("on_state_changed", move || callback(old, state));
            }
        }
        let caught_up = self.raft.leader().is_some()
            && self.raft.commit_index() > LogIndex::ZERO
            && self.raft.applied_index() >= self.raft.commit_index();
        if caught_up && !self.ready_due && !self.signals.ready.is_raised() {
            self.ready_due = true;
            if let Some(callback) = self.callbacks.on_ready.clone() {
                self.defer("on_ready", move || callback());
            }
        }
    }

    fn on_frame(&mut self, from: NodeId, frame: &[u8]) {
        let now = self.now;
        match NodeMessage::decode(frame) {
            Ok(NodeMessage::Raft(envelope)) => self.on_raft(from, envelope),
            Ok(NodeMessage::Forward {
                term,
                session,
                request,
                command,
            }) => {
                let forward = Forward {
                    from,
                    term,
                    session,
                    request,
                    command,
                };
                let raft = (&mut self.raft, &mut self.clock);
                self.calls.on_forward(raft, &mut self.outbox, forward, now);
            }
            Ok(NodeMessage::Placed {
                session,
                request,
                outcome,
            }) => {
                let applied = self.raft.applied_index();
                self.calls.on_placed((session, request), outcome, applied);
            }
            Ok(NodeMessage::Change {
                term,
                session,
                request,
                change,
            }) => self.on_change(from, term, (session, request), &change),
            Ok(NodeMessage::Changed {
                session,
                request,
                outcome,
            }) => self.on_changed((session, request), outcome),
            Err(error) => {
                tracing::warn!(%from, %error, "undecodable message: dropping the connection");
                self.links.refuse(from);
            }
        }
    }

    fn on_raft(&mut self, from: NodeId, envelope: Envelope) {
        if envelope.from != from {
            tracing::warn!(%from, claimed = %envelope.from, "raft message with a forged sender: dropping the connection");
            self.links.refuse(from);
            return;
        }
        if let Err(error) = self.raft.step(envelope, self.now) {
            tracing::warn!(%error, "raft message refused");
        }
    }

    /// Plays every `Ready`: messages that may leave at once go to the outbox, the writes go to
    /// the journal writer, and the messages that need them wait, with Raft's acknowledgement,
    /// until the writer says they are durable (at once without a journal); then the entries
    /// to apply. Takes the writer's answers first. Stops once the iteration applied
    /// [`APPLIED_PER_ITERATION_MAX`] entries; the next iteration goes on at once.
    fn process_ready(&mut self) {
        self.take_persisted();
        while self.halted.is_none() && self.raft.has_ready() {
            if self.applied_this_iteration >= APPLIED_PER_ITERATION_MAX {
                self.more_ready = true;
                return;
            }
            let mut ready = self.raft.ready();
            for envelope in std::mem::take(&mut ready.messages) {
                self.outbox.push(envelope.to, &NodeMessage::Raft(envelope));
            }
            let writes = journal::Writes {
                reset: ready.log_reset.take(),
                hard_state: ready.hard_state.take(),
                entries: std::mem::take(&mut ready.entries),
                ack: ready.ack,
            };
            if !self.persist(writes, std::mem::take(&mut ready.persisted_messages)) {
                return;
            }
            self.applied_this_iteration += ready.committed_entries.len();
            self.apply(ready.committed_entries);
            self.serve_snapshot_reads(ready.snapshot_reads);
            self.receive_snapshot_chunks(ready.snapshot_chunks);
            self.on_raft_events(ready.events);
        }
    }

    /// Starts serving the administrators' requests of this iteration's poll.
    fn take_admin_requests(&mut self) {
        if self.links.admin_requests.is_empty() {
            return;
        }
        let waker = self.links.waker();
        for (id, request) in std::mem::take(&mut self.links.admin_requests) {
            self.signals.admin.take(id, &request, Arc::clone(&waker));
        }
    }

    /// Sends the administrators' answers that are ready; the transport closes each
    /// connection once its answer is written.
    fn answer_admins(&mut self) {
        for (id, reply) in self.signals.admin.answers() {
            self.links.admin_reply(id, Bytes::from(reply.encode()));
        }
    }

    fn defer(&mut self, name: &'static str, callback: impl FnOnce() + Send + 'static) {
        self.deferred.push((name, Box::new(callback)));
    }

    /// Fails every call the node holds with `reason`: its loop is giving up on it.
    pub(crate) fn abandon(&mut self, reason: &FailReason) {
        self.calls.fail_all(reason);
        self.changes.fail_all(reason);
    }

    /// A one-line summary for diagnostics.
    #[cfg(feature = "sim")]
    pub(crate) fn describe(&self) -> String {
        format!(
            "{:?} {} leader {:?} base {} snapshot {:?} halted {} last {} commit {} applied {} {} progress {:?}",
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
            self.raft.progress()
        )
    }
}
