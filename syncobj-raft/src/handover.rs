//! Leadership transfer (Raft thesis §3.10): the leader stops taking proposals, brings the
//! target's log up to its own, and tells it to start an election at once with
//! [`TimeoutNow`]. The target skips pre-vote, and its vote requests say that the leader handed
//! over, so voters grant them although they heard from that leader recently. The transfer is
//! abandoned after one (minimum) election timeout, and the leader takes proposals again.

use super::error::TransferError;
use super::message::{Message, TimeoutNow};
use super::node::RaftNode;
use super::ready::RaftEvent;
use super::role::Role;
use super::timers::Timer;
use super::types::{Instant, NodeId};

/// A transfer under way, held by the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handover {
    /// The voter taking over.
    pub(crate) to: NodeId,
    /// Whether [`TimeoutNow`] went out since the last heartbeat (it goes once the target's
    /// log matches the leader's, and again at each heartbeat).
    pub(crate) told: bool,
}

/// How a leadership transfer ended, reported in [`RaftEvent::TransferEnded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The target started its election in a later term, and this node stepped down. The target
    /// normally wins it: its log was as up to date as the leader's. The new leader is learned
    /// as usual, from its first append.
    Succeeded,
    /// The target did not take over within the minimum election timeout; this node leads on
    /// and takes proposals again.
    TimedOut,
    /// The target stopped being a voter (a configuration entry removed it); this node leads on.
    TargetNotVoter,
    /// This node stopped leading for another reason (a higher term from another node, or lost
    /// contact with a majority).
    Interrupted,
}

impl RaftNode {
    /// Hands the leadership over to the voter `to`, or with `None` to the voter whose log is the
    /// most up to date (the lowest id among equals). The leader takes no proposal and no
    /// membership change until the transfer ends, brings the target's log up to its own, then
    /// sends it [`TimeoutNow`]. The outcome comes in [`RaftEvent::TransferEnded`]; it is
    /// abandoned after `election_timeout_min`. Returns the target.
    ///
    /// # Errors
    /// [`TransferError::NotLeader`] on any other node; [`TransferError::InProgress`] while a
    /// transfer is under way; [`TransferError::TargetIsLeader`] for this node;
    /// [`TransferError::TargetNotVoter`] for a node that is not a voter of the configuration in
    /// force; [`TransferError::NoOtherVoter`] for `None` in a one-voter cluster.
    pub fn transfer_leadership(
        &mut self,
        to: Option<NodeId>,
        now: Instant,
    ) -> Result<NodeId, TransferError> {
        let Role::Leader { handover, .. } = &self.role else {
            return Err(TransferError::NotLeader {
                leader: self.leader(),
            });
        };
        if let Some(h) = handover {
            return Err(TransferError::InProgress { to: h.to });
        }
        let to = match to {
            Some(id) if id == self.id => return Err(TransferError::TargetIsLeader(id)),
            Some(id) if !self.membership().is_voter(id) => {
                return Err(TransferError::TargetNotVoter(id));
            }
            Some(id) => id,
            None => self
                .most_up_to_date_voter()
                .ok_or(TransferError::NoOtherVoter)?,
        };
        if let Role::Leader { handover, .. } = &mut self.role {
            *handover = Some(Handover { to, told: false });
        }
        tracing::info!(node = %self.id, term = %self.term, %to, "handing leadership over");
        self.timers
            .set(Timer::Transfer, now + self.config.election_timeout_min);
        self.maybe_tell_target();
        Ok(to)
    }

    /// The target of the leadership transfer under way, if this node leads and hands over.
    pub fn transfer_target(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader { handover, .. } => handover.map(|h| h.to),
            _ => None,
        }
    }

    /// The other voter with the highest match index, the lowest id among equals.
    fn most_up_to_date_voter(&self) -> Option<NodeId> {
        let Role::Leader { progress, .. } = &self.role else {
            return None;
        };
        self.membership()
            .voters()
            .iter()
            .filter(|&&v| v != self.id)
            .filter_map(|v| progress.get(v).map(|p| (p.match_index, *v)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, v)| v)
    }

    /// Sends [`TimeoutNow`] to the target once its log matches the leader's, durably; ends the
    /// transfer if the target is no voter any more.
    pub(crate) fn maybe_tell_target(&mut self) {
        let last = self.log.last_index();
        let Role::Leader {
            progress,
            handover: Some(h),
            ..
        } = &self.role
        else {
            return;
        };
        let (to, told) = (h.to, h.told);
        let matched = progress.get(&to).is_some_and(|p| p.match_index == last);
        if !self.membership().is_voter(to) {
            self.end_transfer(TransferOutcome::TargetNotVoter);
            return;
        }
        if told || !matched {
            return;
        }
        if let Role::Leader {
            handover: Some(h), ..
        } = &mut self.role
        {
            h.told = true;
        }
        self.send(to, Message::TimeoutNow(TimeoutNow { term: self.term }));
    }

    /// At a heartbeat: sends [`TimeoutNow`] again if the target matches, in case it was lost.
    /// A target that already started its election ignores it (its term moved on).
    pub(crate) fn retell_target(&mut self) {
        if let Role::Leader {
            handover: Some(h), ..
        } = &mut self.role
        {
            h.told = false;
        }
        self.maybe_tell_target();
    }

    /// The transfer's deadline passed: the leader takes proposals again.
    pub(crate) fn on_transfer_timeout(&mut self) {
        self.timers.stop(Timer::Transfer);
        self.end_transfer(TransferOutcome::TimedOut);
    }

    /// Ends the transfer under way, if any, with `outcome`.
    pub(crate) fn end_transfer(&mut self, outcome: TransferOutcome) {
        let Role::Leader { handover, .. } = &mut self.role else {
            return;
        };
        let Some(h) = handover.take() else {
            return;
        };
        self.timers.stop(Timer::Transfer);
        tracing::info!(node = %self.id, term = %self.term, to = %h.to, ?outcome, "leadership transfer ended");
        self.events
            .push(RaftEvent::TransferEnded { to: h.to, outcome });
    }

    /// A [`TimeoutNow`] from the leader of this term: start a real election now, if a voter.
    pub(crate) fn on_timeout_now(&mut self, from: NodeId, now: Instant) {
        if self.leader() != Some(from) || !self.membership().is_voter(self.id) {
            tracing::debug!(node = %self.id, %from, "ignoring TimeoutNow");
            return;
        }
        self.start_election(true, now);
    }
}
