//! Membership changes and leadership transfers the user asked for
//! (`SyncObj::add_node_to_cluster`, `remove_node_from_cluster`, `transfer_leadership`): taken
//! from their queue, started on the leader or forwarded to it like calls, and settled when the
//! configuration entry that makes the change is applied, or when the target of a transfer
//! leads.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::Engine;
use crate::driver::addresses::{is_read_only, voter_id};
use crate::driver::queue::QueueReceiver;
use crate::driver::wire::{ChangeAnswer, ChangeRequest, NodeMessage, Refusal};
use crate::object::{Completion, FailReason, MembershipRefusal, TransferFailure};
use crate::raft::{
    ChangeError, ChangeStarted, Instant, LogPosition, MembershipChange, NodeId, RaftEvent,
    TransferError, TransferOutcome,
};

/// The most queued changes one iteration takes in.
const CHANGES_PER_TICK_MAX: usize = 64;

/// The most answers to forwarded changes a leader remembers, for duplicates.
const ANSWERS_MAX: usize = 1_024;

/// A queued change: what is asked, and where its outcome goes.
pub(crate) type QueuedChange = (ChangeRequest, Completion);

/// Who asked for a change the leader started.
enum Requester {
    /// A user of this node.
    Local {
        completion: Completion,
        deadline: Option<Instant>,
    },
    /// A follower that forwarded it.
    Remote {
        from: NodeId,
        session: u64,
        request: u64,
    },
}

/// What the leader started for a change.
enum Started {
    /// The configuration entry that makes the change is at this position.
    Placed(LogPosition),
    /// The node catches up as a non-voter; its promotion comes later.
    CatchingUp(NodeId),
    /// The leader hands its leadership to this voter.
    Transferring(NodeId),
}

/// A transfer asked on this node, done when `target` leads.
struct TransferWatch {
    target: NodeId,
    /// The leader when the transfer started: it may lead on meanwhile.
    origin: Option<NodeId>,
    completion: Completion,
    deadline: Instant,
}

/// The changes of one node: queued, waiting for a promotion, waiting for a new leader, and
/// (on the leader) the answers given to forwarded ones.
pub(crate) struct Changes {
    queue: QueueReceiver<QueuedChange>,
    /// Whether the node allows changes (`dynamic_membership_change`).
    allowed: bool,
    /// Additions whose node catches up: settled when its promotion is appended.
    promotions: Vec<(NodeId, Requester)>,
    transfers: Vec<TransferWatch>,
    /// How long a transfer may take before its caller hears it failed.
    transfer_wait: Duration,
    answers: BTreeMap<(NodeId, u64, u64), Result<ChangeAnswer, Refusal>>,
    answer_order: VecDeque<(NodeId, u64, u64)>,
}

impl Changes {
    pub(crate) fn new(
        queue: QueueReceiver<QueuedChange>,
        allowed: bool,
        transfer_wait: Duration,
    ) -> Changes {
        Changes {
            queue,
            allowed,
            promotions: Vec::new(),
            transfers: Vec::new(),
            transfer_wait,
            answers: BTreeMap::new(),
            answer_order: VecDeque::new(),
        }
    }

    fn remember(&mut self, key: (NodeId, u64, u64), answer: Result<ChangeAnswer, Refusal>) {
        if self.answers.insert(key, answer).is_none() {
            self.answer_order.push_back(key);
        }
        if self.answer_order.len() > ANSWERS_MAX
            && let Some(oldest) = self.answer_order.pop_front()
        {
            self.answers.remove(&oldest);
        }
    }

    /// Whether changes wait in the queue (more than one iteration takes in).
    pub(crate) fn queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Every change still waiting, emptied out with `reason` (the node is stopping).
    pub(crate) fn fail_all(&mut self, reason: &FailReason) {
        let queued = self.queue.try_iter().map(|(_, c)| c);
        let promoting = self.promotions.drain(..).filter_map(|(_, r)| match r {
            Requester::Local { completion, .. } => Some(completion),
            Requester::Remote { .. } => None,
        });
        let transferring = self.transfers.drain(..).map(|w| w.completion);
        let all: Vec<Completion> = queued.chain(promoting).chain(transferring).collect();
        for completion in all {
            completion.complete(Err(reason.clone()));
        }
    }
}

impl Engine {
    /// Whether this node is a voter that the membership in force no longer holds.
    pub(crate) fn is_removed(&self) -> bool {
        let me = self.raft.id();
        !is_read_only(me) && !self.raft.membership().contains(me)
    }

    /// Takes queued changes: the leader starts them, a follower forwards them to the leader.
    pub(super) fn take_changes(&mut self) {
        let queued: Vec<QueuedChange> = self
            .changes
            .queue
            .try_iter()
            .take(CHANGES_PER_TICK_MAX)
            .collect();
        for (request, completion) in queued {
            let deadline = self.calls.deadline(self.now);
            if !self.changes.allowed {
                let refusal = MembershipRefusal::DynamicMembershipOff;
                self.calls
                    .finish(completion, Err(FailReason::MembershipRefused(refusal)));
                continue;
            }
            if self.is_removed() {
                self.calls.finish(completion, Err(FailReason::Removed));
                continue;
            }
            let me = self.raft.id();
            let links = &self.links;
            let leader = self.raft.leader().filter(|&l| l == me || links.is_up(l));
            match leader {
                Some(leader) if leader == me => {
                    let requester = Requester::Local {
                        completion,
                        deadline,
                    };
                    self.start_change(&request, requester);
                }
                Some(leader) => self.calls.forward_change(
                    &self.raft,
                    &mut self.outbox,
                    leader,
                    (request, completion),
                    deadline,
                ),
                None => self
                    .calls
                    .finish(completion, Err(FailReason::MissingLeader)),
            }
        }
    }

    /// A follower's forwarded change: started once per (follower, session, request) if it
    /// comes in this leader's term; a duplicate gets the first answer again, or none while
    /// the node it adds catches up.
    pub(super) fn on_change(
        &mut self,
        from: NodeId,
        term: crate::raft::Term,
        (session, request): (u64, u64),
        change: &ChangeRequest,
    ) {
        let key = (from, session, request);
        if let Some(answer) = self.changes.answers.get(&key).cloned() {
            let answer = NodeMessage::Changed {
                session,
                request,
                outcome: answer,
            };
            self.outbox.push(from, &answer);
            return;
        }
        let waiting = self.changes.promotions.iter().any(|(_, r)| {
            matches!(r, Requester::Remote { from: f, session: s, request: q }
                if (*f, *s, *q) == key)
        });
        if waiting {
            return;
        }
        let requester = Requester::Remote {
            from,
            session,
            request,
        };
        if term != self.raft.term() || !self.raft.is_leader() {
            self.answer(requester, Err(Refusal::NotLeader));
            return;
        }
        self.start_change(change, requester);
    }

    /// A follower's own forwarded change was answered by the leader.
    pub(super) fn on_changed(
        &mut self,
        (session, request): (u64, u64),
        outcome: Result<ChangeAnswer, Refusal>,
    ) {
        let Some((completion, deadline)) = self.calls.answered(session, request) else {
            return;
        };
        let leader = self.raft.leader();
        self.settle_change(completion, deadline, leader, outcome);
    }

    /// Starts `request` as leader and answers whoever asked, or waits for the promotion.
    fn start_change(&mut self, request: &ChangeRequest, requester: Requester) {
        match self.leader_change(request) {
            Ok(Started::Placed(at)) => {
                self.answer(requester, Ok(ChangeAnswer::Placed(at.index, at.term)))
            }
            Ok(Started::Transferring(to)) => {
                self.answer(requester, Ok(ChangeAnswer::Transferring(to)))
            }
            Ok(Started::CatchingUp(id)) => self.changes.promotions.push((id, requester)),
            Err(refusal) => self.answer(requester, Err(refusal)),
        }
    }

    /// Asks the Raft core for the change, as leader.
    fn leader_change(&mut self, request: &ChangeRequest) -> Result<Started, Refusal> {
        let now = self.now;
        let membership = self.raft.membership();
        // An id held by another address: the two cannot both be members.
        let holder = |address: &str| {
            membership
                .address(voter_id(address))
                .filter(|&held| held != address)
                .map(str::to_owned)
        };
        match request {
            ChangeRequest::Add(address) => {
                if let Some(member) = holder(address) {
                    let address = address.clone();
                    return Err(Refusal::Denied(MembershipRefusal::IdCollision {
                        address,
                        member,
                    }));
                }
                let id = voter_id(address);
                let change = MembershipChange::AddVoter {
                    id,
                    address: address.clone(),
                };
                match self.raft.change_membership(change, now) {
                    Ok(ChangeStarted::Appended(at)) => Ok(Started::Placed(at)),
                    Ok(ChangeStarted::CatchingUp(_)) => Ok(Started::CatchingUp(id)),
                    Err(error) => Err(change_refusal(error, address)),
                }
            }
            ChangeRequest::Remove(address) => {
                if holder(address).is_some() {
                    let refusal = MembershipRefusal::NotMember(address.clone());
                    return Err(Refusal::Denied(refusal));
                }
                let id = voter_id(address);
                match self
                    .raft
                    .change_membership(MembershipChange::Remove { id }, now)
                {
                    Ok(ChangeStarted::Appended(at)) => Ok(Started::Placed(at)),
                    Ok(ChangeStarted::CatchingUp(_)) => Ok(Started::CatchingUp(id)),
                    Err(error) => Err(change_refusal(error, address)),
                }
            }
            ChangeRequest::Transfer(to) => {
                if let Some(address) = to.as_deref().filter(|a| holder(a).is_some()) {
                    let refusal = MembershipRefusal::TargetNotVoter(address.to_owned());
                    return Err(Refusal::Denied(refusal));
                }
                let to_id = to.as_deref().map(voter_id);
                match self.raft.transfer_leadership(to_id, now) {
                    Ok(target) => Ok(Started::Transferring(target)),
                    Err(error) => Err(self.transfer_refusal(error, to.as_deref())),
                }
            }
        }
    }

    /// Tells whoever asked what the leader did.
    fn answer(&mut self, requester: Requester, outcome: Result<ChangeAnswer, Refusal>) {
        match requester {
            Requester::Local {
                completion,
                deadline,
            } => {
                let me = Some(self.raft.id());
                self.settle_change(completion, deadline, me, outcome);
            }
            Requester::Remote {
                from,
                session,
                request,
            } => {
                self.changes
                    .remember((from, session, request), outcome.clone());
                let answer = NodeMessage::Changed {
                    session,
                    request,
                    outcome,
                };
                self.outbox.push(from, &answer);
            }
        }
    }

    /// Waits for what the leader did to take effect here, or fails the change.
    fn settle_change(
        &mut self,
        completion: Completion,
        deadline: Option<Instant>,
        origin: Option<NodeId>,
        outcome: Result<ChangeAnswer, Refusal>,
    ) {
        match outcome {
            Ok(ChangeAnswer::Placed(index, term)) => {
                let applied = self.raft.applied_index();
                self.calls
                    .place((index, term), completion, applied, deadline);
            }
            Ok(ChangeAnswer::Transferring(target)) => {
                let wait = self.now + self.changes.transfer_wait;
                self.changes.transfers.push(TransferWatch {
                    target,
                    origin,
                    completion,
                    deadline: deadline.map_or(wait, |d| d.min(wait)),
                });
            }
            Err(refusal) => self.calls.finish(completion, Err(refusal.reason())),
        }
    }

    /// Acts on what the Raft core reports of the changes it started: a promotion appended or
    /// abandoned, a transfer that ended without success.
    pub(super) fn on_raft_events(&mut self, events: Vec<RaftEvent>) {
        for event in events {
            match event {
                RaftEvent::PromotionAppended { id, at } => {
                    for requester in self.promotions_of(id) {
                        self.answer(requester, Ok(ChangeAnswer::Placed(at.index, at.term)));
                    }
                }
                RaftEvent::PromotionAbandoned { id } => {
                    for requester in self.promotions_of(id) {
                        self.answer(requester, Err(Refusal::Abandoned));
                    }
                }
                RaftEvent::TransferEnded { to, outcome } => {
                    let failure = match outcome {
                        TransferOutcome::Succeeded => continue,
                        TransferOutcome::TimedOut => TransferFailure::TimedOut,
                        TransferOutcome::TargetNotVoter => TransferFailure::TargetNotVoter,
                        TransferOutcome::Interrupted => TransferFailure::Interrupted,
                    };
                    let me = Some(self.raft.id());
                    let (ended, waiting) = std::mem::take(&mut self.changes.transfers)
                        .into_iter()
                        .partition(|w| w.target == to && w.origin == me);
                    self.changes.transfers = waiting;
                    for watch in ended {
                        let reason = FailReason::TransferFailed(failure);
                        self.calls.finish(watch.completion, Err(reason));
                    }
                }
            }
        }
    }

    fn promotions_of(&mut self, id: NodeId) -> Vec<Requester> {
        let (taken, kept) = std::mem::take(&mut self.changes.promotions)
            .into_iter()
            .partition(|(n, _)| *n == id);
        self.changes.promotions = kept;
        taken.into_iter().map(|(_, r)| r).collect()
    }

    /// Settles the transfers whose target leads now, or that another leader or their
    /// deadline ended.
    pub(super) fn watch_transfers(&mut self) {
        if self.changes.transfers.is_empty() {
            return;
        }
        let (leader, now) = (self.raft.leader(), self.now);
        for watch in std::mem::take(&mut self.changes.transfers) {
            let outcome = match leader {
                Some(l) if l == watch.target => Ok(rmp_serde::to_vec(&()).expect("unit encodes")),
                Some(l) if Some(l) != watch.origin => {
                    Err(FailReason::TransferFailed(TransferFailure::Interrupted))
                }
                _ if now >= watch.deadline => {
                    Err(FailReason::TransferFailed(TransferFailure::TimedOut))
                }
                _ => {
                    self.changes.transfers.push(watch);
                    continue;
                }
            };
            self.calls.finish(watch.completion, outcome);
        }
    }

    /// The refusal for a transfer the Raft core refused.
    fn transfer_refusal(&self, error: TransferError, to: Option<&str>) -> Refusal {
        let name = |id: NodeId| {
            to.map(str::to_owned)
                .or_else(|| self.links.addresses.by_id.get(&id).cloned())
                .unwrap_or_else(|| id.to_string())
        };
        Refusal::Denied(match error {
            TransferError::NotLeader { .. } => return Refusal::NotLeader,
            TransferError::InProgress { .. } => MembershipRefusal::TransferInProgress,
            TransferError::TargetNotVoter(id) => MembershipRefusal::TargetNotVoter(name(id)),
            TransferError::TargetIsLeader(id) => MembershipRefusal::TargetIsLeader(name(id)),
            TransferError::NoOtherVoter => MembershipRefusal::NoOtherVoter,
        })
    }
}

/// The refusal for a change of `address` the Raft core refused.
fn change_refusal(error: ChangeError, address: &str) -> Refusal {
    let address = address.to_owned();
    Refusal::Denied(match error {
        ChangeError::NotLeader { .. } => return Refusal::NotLeader,
        ChangeError::LeaderNotReady => MembershipRefusal::LeaderNotReady,
        ChangeError::ChangeInProgress { .. } => MembershipRefusal::ChangeInProgress,
        ChangeError::TransferInProgress { .. } => MembershipRefusal::TransferInProgress,
        ChangeError::AlreadyMember(_) | ChangeError::WouldDemote(_) => {
            MembershipRefusal::AlreadyMember(address)
        }
        ChangeError::NotMember(_) => MembershipRefusal::NotMember(address),
        ChangeError::WouldLeaveNoVoters(_) => MembershipRefusal::WouldLeaveNoVoters(address),
        ChangeError::AddressTooLong(_) => MembershipRefusal::AddressTooLong(address),
        ChangeError::TooManyMembers => MembershipRefusal::TooManyMembers,
    })
}
