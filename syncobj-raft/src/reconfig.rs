//! Membership changes, one member at a time (Raft thesis §4.1–§4.2): the leader's checks, the
//! catch-up of a new voter as a non-voter first, the leader that removes itself, and keeping
//! every node's configuration in step with its log.

use bytes::Bytes;

use super::error::{ChangeError, ProtocolViolation};
use super::membership::{ADDRESS_BYTES_MAX, MEMBERS_MAX, Membership, MembershipChange};
use super::node::RaftNode;
use super::progress::{Mode, Progress};
use super::ready::RaftEvent;
use super::role::{Promotion, Role};
use super::types::{Entry, EntryKind, Instant, LogIndex, LogPosition, NodeId};

/// What [`RaftNode::change_membership`] started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeStarted {
    /// The configuration that makes the change was appended at this position: the change is
    /// done when that entry is applied with that term.
    Appended(LogPosition),
    /// `AddVoter` of a node that has yet to catch up: it was added as a non-voter at this
    /// position (`None` if it was one already), and the leader promotes it once its log is
    /// within `promotion_lag_entries` of the leader's, reporting the promotion's position in
    /// [`RaftEvent::PromotionAppended`].
    CatchingUp(Option<LogPosition>),
}

/// A membership change the leader has not finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingChange {
    /// The configuration entry at this index is in force but not committed yet.
    Uncommitted(LogIndex),
    /// The leader waits for the non-voter `id` to catch up before promoting it.
    CatchingUp {
        /// The non-voter.
        id: NodeId,
        /// The highest index its log is known to share with the leader's.
        match_index: LogIndex,
    },
}

impl RaftNode {
    /// Asks the leader to change the membership by one member (thesis §4.1): the new
    /// configuration is appended to the log and is in force at once on each node that appends
    /// it. `AddVoter` of a node that is not a voter yet adds it as a non-voter first and lets
    /// it catch up (thesis §4.2.1); `Remove` of the leader itself makes it step down once the
    /// entry is committed (thesis §4.2.2), and `Remove` of the non-voter being caught up
    /// cancels its promotion. Costs one configuration entry (the membership's encoding).
    ///
    /// # Errors
    /// [`ChangeError::NotLeader`] on any other node; [`ChangeError::TransferInProgress`] while
    /// handing the leadership over; [`ChangeError::LeaderNotReady`] until the leader committed
    /// an entry of its term; [`ChangeError::ChangeInProgress`] while a configuration entry is
    /// uncommitted or a non-voter catches up; [`ChangeError::AlreadyMember`],
    /// [`ChangeError::NotMember`], [`ChangeError::WouldDemote`],
    /// [`ChangeError::WouldLeaveNoVoters`], [`ChangeError::AddressTooLong`] and
    /// [`ChangeError::TooManyMembers`] for a change that makes no sense.
    pub fn change_membership(
        &mut self,
        change: MembershipChange,
        now: Instant,
    ) -> Result<ChangeStarted, ChangeError> {
        let cancels_promotion = matches!(change, MembershipChange::Remove { id }
            if self.promotion_target() == Some(id));
        self.check_may_change(cancels_promotion)?;
        let current = self.membership();
        let id = change.id();
        let next = match change {
            MembershipChange::AddVoter { id, address } => return self.add_voter(id, address, now),
            MembershipChange::AddNonVoter { id, address } => {
                if current.is_voter(id) {
                    return Err(ChangeError::WouldDemote(id));
                }
                if current.contains(id) {
                    return Err(ChangeError::AlreadyMember(id));
                }
                check_new_member(current, id, &address)?;
                current.with_non_voter(id, address)
            }
            MembershipChange::Remove { id } => {
                if !current.contains(id) {
                    return Err(ChangeError::NotMember(id));
                }
                if current.is_voter(id) && current.voters().len() == 1 {
                    return Err(ChangeError::WouldLeaveNoVoters(id));
                }
                current.without(id)
            }
        };
        if cancels_promotion {
            self.abandon_promotion();
        }
        tracing::info!(node = %self.id, term = %self.term, member = %id, "membership change");
        Ok(ChangeStarted::Appended(self.append_config(next, now)))
    }

    /// The membership change the leader has not finished, if any: an uncommitted configuration
    /// entry (on any node: the one in force), or, on the leader, a non-voter catching up.
    pub fn pending_change(&self) -> Option<PendingChange> {
        let index = self.configs.current_index();
        if index > self.log.committed() {
            return Some(PendingChange::Uncommitted(index));
        }
        let Role::Leader {
            progress,
            promotion: Some(promotion),
            ..
        } = &self.role
        else {
            return None;
        };
        let match_index = progress
            .get(&promotion.id)
            .map_or(LogIndex::ZERO, |p| p.match_index);
        Some(PendingChange::CatchingUp {
            id: promotion.id,
            match_index,
        })
    }

    /// The membership in force once the log ends at `index`: the latest configuration entry at
    /// or before it, else the snapshot's. `None` below the log's base, which the node no
    /// longer knows. A driver writing a snapshot of its state at `index` stores this with it.
    pub fn membership_at(&self, index: LogIndex) -> Option<&Membership> {
        (index >= self.log.base_index()).then(|| self.configs.at(index))
    }

    /// Refuses a change while the leader cannot make one (see `change_membership`).
    fn check_may_change(&self, cancels_promotion: bool) -> Result<(), ChangeError> {
        let Role::Leader {
            handover,
            promotion,
            ..
        } = &self.role
        else {
            return Err(ChangeError::NotLeader {
                leader: self.leader(),
            });
        };
        if let Some(h) = handover {
            return Err(ChangeError::TransferInProgress { to: h.to });
        }
        // Ongaro's fix (raft-dev, 2015): a leader changes the membership only once it has
        // committed an entry of its own term, so that no configuration of an earlier leader
        // can still be pending in some log.
        if self.log.term(self.log.committed()) != Some(self.term) {
            return Err(ChangeError::LeaderNotReady);
        }
        let index = self.configs.current_index();
        if index > self.log.committed() || (promotion.is_some() && !cancels_promotion) {
            return Err(ChangeError::ChangeInProgress {
                index,
                promoting: promotion.as_ref().map(|p| p.id),
            });
        }
        Ok(())
    }

    /// `AddVoter`: promotes a caught-up non-voter at once, else adds the node as a non-voter
    /// (unless it is one) and promotes it once it caught up.
    fn add_voter(
        &mut self,
        id: NodeId,
        address: String,
        now: Instant,
    ) -> Result<ChangeStarted, ChangeError> {
        let current = self.membership();
        if current.is_voter(id) {
            return Err(ChangeError::AlreadyMember(id));
        }
        if address.len() > ADDRESS_BYTES_MAX {
            return Err(ChangeError::AddressTooLong(id));
        }
        if current.contains(id) && self.caught_up(id) {
            let next = current.with_voter(id, address);
            return Ok(ChangeStarted::Appended(self.append_config(next, now)));
        }
        let added = if current.contains(id) {
            None
        } else {
            check_new_member(current, id, &address)?;
            let next = current.with_non_voter(id, address.clone());
            Some(self.append_config(next, now))
        };
        if let Role::Leader { promotion, .. } = &mut self.role {
            *promotion = Some(Promotion { id, address });
        }
        tracing::info!(node = %self.id, term = %self.term, member = %id, "catching a new voter up");
        Ok(ChangeStarted::CatchingUp(added))
    }

    /// Whether the leader's replica `id` answered and its log is within
    /// `promotion_lag_entries` of the leader's.
    fn caught_up(&self, id: NodeId) -> bool {
        let Role::Leader { progress, .. } = &self.role else {
            return false;
        };
        let last = self.log.last_index();
        progress.get(&id).is_some_and(|p| {
            matches!(p.mode, Mode::Replicate { .. })
                && p.match_index.0 + self.config.promotion_lag_entries >= last.0
        })
    }

    fn promotion_target(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader { promotion, .. } => promotion.as_ref().map(|p| p.id),
            _ => None,
        }
    }

    /// Appends the leader's promotion of the non-voter it catches up, once the configuration
    /// in force is committed and the non-voter caught up (thesis §4.2.1).
    pub(crate) fn maybe_promote(&mut self, now: Instant) {
        let Some(id) = self.promotion_target() else {
            return;
        };
        if !self.membership().contains(id) || self.membership().is_voter(id) {
            self.abandon_promotion();
            return;
        }
        let ready = self.configs.current_index() <= self.log.committed()
            && self.transfer_target().is_none()
            && self.caught_up(id);
        if !ready {
            return;
        }
        let Role::Leader { promotion, .. } = &mut self.role else {
            return;
        };
        let address = promotion.take().expect("a promotion is pending").address;
        let next = self.configs.current().with_voter(id, address);
        let at = self.append_config(next, now);
        tracing::info!(node = %self.id, term = %self.term, member = %id, %at, "promoting a caught-up non-voter");
        self.events.push(RaftEvent::PromotionAppended { id, at });
    }

    /// Drops the pending promotion, if any, and reports it.
    pub(crate) fn abandon_promotion(&mut self) {
        let Role::Leader { promotion, .. } = &mut self.role else {
            return;
        };
        if let Some(p) = promotion.take() {
            self.events.push(RaftEvent::PromotionAbandoned { id: p.id });
        }
    }

    /// Appends `next`, a configuration one member away from the one in force, as leader.
    fn append_config(&mut self, next: Membership, now: Instant) -> LogPosition {
        let current = self.membership();
        assert!(
            self.configs.current_index() <= self.log.committed(),
            "at most one uncommitted configuration entry (thesis §4.1)"
        );
        assert!(
            one_member_apart(current, &next),
            "a configuration differs from the previous one by one member: {current:?} -> {next:?}"
        );
        assert!(!next.voters().is_empty(), "a configuration has a voter");
        let data = Bytes::from(next.encode());
        self.append_own(EntryKind::Membership, data, now)
    }

    /// Appends `entry` to the log; a configuration entry takes effect at once (thesis §4.1).
    /// The caller checked that a configuration entry's data decodes.
    pub(crate) fn push_entry(&mut self, entry: Entry, now: Instant) {
        let config = (entry.kind == EntryKind::Membership).then(|| {
            let membership = Membership::decode(&entry.data)
                .expect("configuration entries are checked before they are appended");
            (entry.index, membership)
        });
        self.log.push(entry);
        if let Some((index, membership)) = config {
            self.configs.appended(index, membership);
            self.on_config_changed(now);
        }
    }

    /// Removes the log's entries from `from` on; a configuration among them is no longer in
    /// force, and the previous one in the log is again (thesis §4.1).
    pub(crate) fn truncate_log_from(&mut self, from: LogIndex, now: Instant) {
        let reverts = self.configs.current_index() >= from;
        self.log.truncate_from(from);
        self.configs.truncated_from(from);
        if reverts {
            tracing::info!(node = %self.id, term = %self.term, %from, "configuration entry truncated, previous one back in force");
            self.on_config_changed(now);
        }
    }

    /// The configuration in force changed: a leader replicates to the new members.
    pub(crate) fn on_config_changed(&mut self, now: Instant) {
        if self.is_leader() {
            self.sync_progress(now);
            self.maybe_tell_target();
        }
    }

    /// A configuration entry was committed (the commit index reached the one in force): the
    /// leader tells removed members the commit once, stops replicating to them, and steps
    /// down if it removed itself (thesis §4.2.2).
    pub(crate) fn on_config_committed(&mut self, now: Instant) {
        if !self.is_leader() {
            return;
        }
        self.tell_removed_members();
        if !self.membership().is_voter(self.id) {
            tracing::info!(node = %self.id, term = %self.term, "the configuration removing this leader is committed, stepping down");
            self.become_follower(self.term, None, now);
            assert!(!self.is_leader(), "a removed leader stepped down");
            return;
        }
        self.sync_progress(now);
        self.maybe_promote(now);
    }

    /// Sends each member the committed configuration removed a last append carrying the
    /// commit: a removed node that holds the entry removing it but not its commit may still
    /// stand for election (see `may_campaign`), which its commit ends. Nothing is lost if the
    /// append is: its campaigns cannot win, since every voter holding the removal ignores them.
    fn tell_removed_members(&mut self) {
        let Role::Leader { progress, .. } = &self.role else {
            return;
        };
        let current = self.configs.current();
        let removed: Vec<NodeId> = progress
            .keys()
            .copied()
            .filter(|&id| !current.contains(id) && !self.observers.contains(&id))
            .collect();
        for peer in removed {
            if !self.sends_snapshot_to(peer) {
                self.send_append(peer, true);
            }
        }
    }

    /// Makes the leader's replicas those it must replicate to: the members of the configuration
    /// in force, those of the previous one while it is uncommitted (so that a removed node
    /// learns it was removed), and the observers.
    pub(crate) fn sync_progress(&mut self, now: Instant) {
        let next = self.log.last_index().next();
        let uncommitted = self.configs.current_index() > self.log.committed();
        let mut wanted: Vec<NodeId> = self.configs.current().members().collect();
        if let Some(previous) = self.configs.previous().filter(|_| uncommitted) {
            wanted.extend(previous.members());
        }
        wanted.extend(self.observers.iter().copied());
        wanted.retain(|&n| n != self.id);
        let Role::Leader { progress, .. } = &mut self.role else {
            return;
        };
        progress.retain(|id, _| wanted.contains(id));
        for id in wanted {
            progress
                .entry(id)
                .or_insert_with(|| Progress::new(next, now));
        }
    }

    /// Checks that every configuration entry of an append from the leader holds a membership.
    pub(crate) fn check_configs(entries: &[Entry]) -> Result<(), ProtocolViolation> {
        for entry in entries.iter().filter(|e| e.kind == EntryKind::Membership) {
            Membership::decode(&entry.data).map_err(|error| ProtocolViolation::BadMembership {
                index: entry.index,
                error,
            })?;
        }
        Ok(())
    }
}

/// Refuses a new member with an address too long, or one more member than the limit.
fn check_new_member(current: &Membership, id: NodeId, address: &str) -> Result<(), ChangeError> {
    if address.len() > ADDRESS_BYTES_MAX {
        return Err(ChangeError::AddressTooLong(id));
    }
    if current.members().count() >= MEMBERS_MAX {
        return Err(ChangeError::TooManyMembers);
    }
    Ok(())
}

/// Whether `next` differs from `current` by at most one member's role (thesis §4.1): any
/// majority of one then overlaps any majority of the other.
fn one_member_apart(current: &Membership, next: &Membership) -> bool {
    let voters = current.voters().symmetric_difference(next.voters()).count();
    let members = current
        .members()
        .filter(|&n| !next.contains(n))
        .chain(next.members().filter(|&n| !current.contains(n)))
        .count();
    voters <= 1 && members <= 1
}
