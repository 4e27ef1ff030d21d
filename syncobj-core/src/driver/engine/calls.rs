//! The life of calls on one node: taken from the queue, appended (on the leader) or forwarded
//! (on a follower), held while no leader is known, placed, and settled when their entry is
//! applied, their leader changes or their deadline passes.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::Outbox;
use crate::driver::cluster_time::{ClusterClock, stamped};
use crate::driver::inflight::{InFlight, Outcome, PlacedForwards, Settled};
use crate::driver::queue::QueueReceiver;
use crate::driver::wire::{ChangeRequest, NodeMessage, Refusal};
use crate::object::{Completion, FailReason};
use crate::raft::{Instant, LogIndex, NodeId, ProposeError, RaftNode, Term};

/// The most queued commands one iteration takes in, so a flood cannot starve the network.
const COMMANDS_PER_TICK_MAX: usize = 10_000;

/// A queued call: the encoded command and where its outcome goes.
pub(crate) type Queued = (Bytes, Completion);

/// A call a follower forwarded to this node.
pub(crate) struct Forward {
    pub(crate) from: NodeId,
    /// The term in which the follower saw this node lead.
    pub(crate) term: Term,
    /// The follower's incarnation and its number for the call.
    pub(crate) session: u64,
    pub(crate) request: u64,
    pub(crate) command: Bytes,
}

/// What governs calls, from the configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallLimits {
    /// Hold calls while no leader is known (PySyncObj `commands_wait_leader`).
    pub(crate) wait_leader: bool,
    /// The most calls held while no leader is known.
    pub(crate) leaderless_calls_max: usize,
    /// How long a call may wait for its outcome.
    pub(crate) call_timeout: Option<Duration>,
}

/// The calls of one node: queued, held, forwarded, placed, and those settled this iteration.
pub(crate) struct Calls {
    queue: QueueReceiver<Queued>,
    limits: CallLimits,
    /// Calls held until a leader is known (`commands_wait_leader`), each until its deadline.
    backlog: VecDeque<(Queued, Option<Instant>)>,
    /// The calls this node made that have not completed.
    in_flight: InFlight,
    /// This incarnation's number, sent with forwarded calls.
    session: u64,
    /// On the leader: forwarded calls placed in the current term, to answer duplicates.
    placed_forwards: PlacedForwards,
    last_leader: Option<NodeId>,
    /// Calls settled in this iteration, completed once it ends.
    settled: Vec<Settled>,
}

impl Calls {
    pub(crate) fn new(queue: QueueReceiver<Queued>, limits: CallLimits, session: u64) -> Calls {
        Calls {
            queue,
            limits,
            backlog: VecDeque::new(),
            in_flight: InFlight::default(),
            session,
            placed_forwards: PlacedForwards::default(),
            last_leader: None,
            settled: Vec::new(),
        }
    }

    /// Takes queued calls: the leader appends them, a follower forwards them, and without a
    /// leader they wait (or fail, per `commands_wait_leader`) until their deadline
    /// (`call_timeout`), then fail with `MissingLeader`: they never left this node.
    ///
    /// A follower whose link to the leader is down (`linked` says) holds its calls as if no
    /// leader were known, rather than forward them into the void: a call that never left
    /// fails with a reason that says so, not with an unknown outcome.
    pub(crate) fn take(
        &mut self,
        (raft, clock): (&mut RaftNode, &mut ClusterClock),
        outbox: &mut Outbox,
        linked: impl Fn(NodeId) -> bool,
        now: Instant,
    ) {
        let deadline = self.deadline(now);
        let queued = self.queue.try_iter().take(COMMANDS_PER_TICK_MAX);
        let queued: Vec<_> = queued.map(|call| (call, deadline)).collect();
        let mut calls = std::mem::take(&mut self.backlog);
        calls.extend(queued);
        let me = raft.id();
        let leader = raft.leader().filter(|&l| l == me || linked(l));
        while let Some(((command, completion), deadline)) = calls.pop_front() {
            match leader {
                Some(leader) if leader == me => {
                    self.propose((raft, clock), (command, completion), deadline, now)
                }
                Some(leader) => self.forward(raft, outbox, leader, (command, completion), deadline),
                None if self.limits.wait_leader
                    && self.backlog.len() < self.limits.leaderless_calls_max
                    && deadline.is_none_or(|d| now < d) =>
                {
                    self.backlog.push_back(((command, completion), deadline));
                }
                None => self.finish(completion, Err(FailReason::MissingLeader)),
            }
        }
    }

    /// Whether calls wait in the queue (more than one iteration takes in).
    pub(crate) fn queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Fails every queued and held call with `reason` at once: this node takes no calls (it
    /// was removed from the cluster).
    pub(crate) fn refuse_queued(&mut self, reason: &FailReason) {
        let queued: Vec<Queued> = self.queue.try_iter().take(COMMANDS_PER_TICK_MAX).collect();
        let held = self.backlog.drain(..).map(|(call, _)| call);
        let refused: Vec<Completion> = held.chain(queued).map(|(_, c)| c).collect();
        for completion in refused {
            self.finish(completion, Err(reason.clone()));
        }
    }

    /// Hands a membership change or transfer to the leader, numbered like a forwarded call
    /// (the leader's answer settles it, a change of leader fails it with `LeaderChanged`).
    pub(crate) fn forward_change(
        &mut self,
        raft: &RaftNode,
        outbox: &mut Outbox,
        leader: NodeId,
        (change, completion): (ChangeRequest, Completion),
        deadline: Option<Instant>,
    ) {
        let request = self.in_flight.forwarded(leader, completion, deadline);
        let message = NodeMessage::Change {
            term: raft.term(),
            session: self.session,
            request,
            change,
        };
        outbox.push(leader, &message);
    }

    /// The completion and deadline of this node's forwarded request `request`, if the answer
    /// is meant for this incarnation and the request still waits.
    pub(crate) fn answered(
        &mut self,
        session: u64,
        request: u64,
    ) -> Option<(Completion, Option<Instant>)> {
        if session != self.session {
            return None;
        }
        self.in_flight.answered(request)
    }

    /// Appends a call of this node's own (this node leads), stamped with the cluster time; it
    /// must be applied by `deadline`.
    fn propose(
        &mut self,
        (raft, clock): (&mut RaftNode, &mut ClusterClock),
        (command, completion): Queued,
        deadline: Option<Instant>,
        now: Instant,
    ) {
        let command = stamped(command, clock.stamp(raft, now));
        match raft.propose(command, now) {
            Ok(position) => {
                let at = (position.index, position.term);
                self.place(at, completion, raft.applied_index(), deadline);
            }
            // A leader handing over takes no proposal: as for a follower, the caller retries.
            Err(ProposeError::NotLeader { .. } | ProposeError::TransferInProgress { .. }) => {
                self.finish(completion, Err(FailReason::NotLeader))
            }
            Err(ProposeError::TooManyUncommitted { .. }) => {
                self.finish(completion, Err(FailReason::QueueFull))
            }
        }
    }

    /// Hands a call to the leader; it must be applied here by `deadline`.
    fn forward(
        &mut self,
        raft: &RaftNode,
        outbox: &mut Outbox,
        leader: NodeId,
        (command, completion): Queued,
        deadline: Option<Instant>,
    ) {
        let request = self.in_flight.forwarded(leader, completion, deadline);
        let message = NodeMessage::Forward {
            term: raft.term(),
            session: self.session,
            request,
            command,
        };
        outbox.push(leader, &message);
    }

    /// The leader places a follower's call and tells it where.
    pub(crate) fn on_forward(
        &mut self,
        raft: (&mut RaftNode, &mut ClusterClock),
        outbox: &mut Outbox,
        forward: Forward,
        now: Instant,
    ) {
        let Forward {
            from,
            term,
            session,
            request,
            command,
        } = forward;
        let outcome = self.place_forwarded(raft, from, term, (session, request), command, now);
        let answer = NodeMessage::Placed {
            session,
            request,
            outcome,
        };
        outbox.push(from, &answer);
    }

    /// Appends a forwarded call once, stamped with the cluster time: a duplicate of a call
    /// forwarded before gets the first answer back, placement or refusal.
    fn place_forwarded(
        &mut self,
        raft: (&mut RaftNode, &mut ClusterClock),
        from: NodeId,
        term: Term,
        (session, request): (u64, u64),
        command: Bytes,
        now: Instant,
    ) -> Result<(LogIndex, Term), Refusal> {
        let key = (from, session, request);
        if let Some(answer) = self.placed_forwards.get(key) {
            return answer;
        }
        let answer = place_new(raft, term, command, now);
        self.placed_forwards.remember(key, answer.clone());
        answer
    }

    /// The leader's answer to one of this node's forwarded calls.
    pub(crate) fn on_placed(
        &mut self,
        (session, request): (u64, u64),
        outcome: Result<(LogIndex, Term), Refusal>,
        applied: LogIndex,
    ) {
        if session != self.session {
            // An answer to an earlier incarnation of this node: its request numbers are not
            // ours.
            return;
        }
        let Some((completion, deadline)) = self.in_flight.answered(request) else {
            return;
        };
        match outcome {
            Ok(at) => self.place(at, completion, applied, deadline),
            Err(refusal) => self.finish(completion, Err(refusal.reason())),
        }
    }

    /// Waits for (index, term) to be applied here, or for the call's deadline.
    pub(crate) fn place(
        &mut self,
        (index, term): (LogIndex, Term),
        completion: Completion,
        applied: LogIndex,
        deadline: Option<Instant>,
    ) {
        if let Some(settled) = self
            .in_flight
            .place(index, term, completion, deadline, applied)
        {
            self.settled.push(settled);
        }
    }

    /// The entry at (index, term) was applied with `outcome`.
    pub(crate) fn applied(&mut self, index: LogIndex, term: Term, outcome: Outcome) {
        self.in_flight
            .applied(index, term, outcome, &mut self.settled);
    }

    /// Fails forwarded calls whose leader changed (they will never hear back) and calls whose
    /// deadline passed.
    pub(crate) fn watch(&mut self, leader: Option<NodeId>, now: Instant) {
        if leader != self.last_leader {
            self.last_leader = leader;
            let lost = self.in_flight.leader_changed(leader);
            self.settled.extend(lost);
        }
        let expired = self.in_flight.expire(now);
        self.settled.extend(expired);
    }

    pub(crate) fn deadline(&self, now: Instant) -> Option<Instant> {
        self.limits.call_timeout.map(|t| now + t)
    }

    pub(crate) fn finish(&mut self, completion: Completion, outcome: Outcome) {
        self.settled.push((completion, outcome));
    }

    /// Completes the calls settled since the last time (their `on_done` callbacks run here).
    pub(crate) fn complete_settled(&mut self) {
        for (completion, outcome) in std::mem::take(&mut self.settled) {
            completion.complete(outcome);
        }
    }

    /// Fails every call the node holds, and every one still queued, with `reason`.
    pub(crate) fn fail_all(&mut self, reason: &FailReason) {
        self.complete_settled();
        let queued: Vec<Queued> = self.queue.try_iter().collect();
        let held = self.backlog.drain(..).map(|(call, _)| call);
        let held = held.chain(queued).map(|(_, c)| c);
        let completions: Vec<Completion> = held.chain(self.in_flight.drain()).collect();
        for completion in completions {
            completion.complete(Err(reason.clone()));
        }
    }

    /// A one-line summary for diagnostics.
    #[cfg(feature = "sim")]
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} backlog {} queued {}",
            self.in_flight.describe(),
            self.backlog.len(),
            self.queue.len()
        )
    }
}

/// Appends a forwarded call made in `term`, stamped with the cluster time, if this node leads
/// in that term and takes proposals.
fn place_new(
    (raft, clock): (&mut RaftNode, &mut ClusterClock),
    term: Term,
    command: Bytes,
    now: Instant,
) -> Result<(LogIndex, Term), Refusal> {
    if term != raft.term() || !raft.is_leader() {
        return Err(Refusal::NotLeader);
    }
    let command = stamped(command, clock.stamp(raft, now));
    match raft.propose(command, now) {
        Ok(position) => Ok((position.index, position.term)),
        Err(ProposeError::NotLeader { .. } | ProposeError::TransferInProgress { .. }) => {
            Err(Refusal::NotLeader)
        }
        Err(ProposeError::TooManyUncommitted { .. }) => Err(Refusal::QueueFull),
    }
}
