//! Terms, votes and role changes: leader election (Raft paper §5.2, §5.4.1), pre-vote (thesis
//! §9.6) and check-quorum (thesis §6.2, §4.2.3), and the two fast paths that use what the
//! driver knows of its links.
//!
//! # Fast failover
//!
//! When a leader's process dies, its followers' connections to it are closed or reset, and the
//! transport reports that at once ([`RaftNode::link_down`]). Waiting for an election timeout
//! (0.4 s to 1.4 s by default) then only wastes time, so a follower whose link to its leader
//! goes down starts a pre-vote at once. Two rules make that round succeed when the leader is
//! really gone, and fail when it is not:
//!
//! - **The lease ends with the link.** A voter refuses pre-votes (and, with check-quorum, real
//!   votes) while it heard from its leader within the minimum election timeout (thesis §4.2.3,
//!   §9.6) *and its own link to that leader is not reported down*. A voter whose connection to
//!   the leader was reset knows as much as the candidate does: it grants if the candidate's log
//!   is at least as up to date as its own. A voter still linked to the leader keeps its lease
//!   and refuses.
//! - **Concurrent pre-candidates give way to one another in a fixed order.** Every follower of a
//!   dead leader sees its link reset at about the same instant, so several start pre-votes
//!   together; if each granted the others, several would raise the term together and split the
//!   vote, and the cluster would wait a whole election timeout. So a pre-candidate grants a
//!   concurrent pre-candidate only if that one's log is more up to date, or as up to date with a
//!   higher node id; it refuses the others and sends its own request again to each one it
//!   refused (which, a pre-candidate too, grants it). Among concurrent pre-candidates the one
//!   with the best (log, id) collects every grant; and a pre-candidate that meets one
//!   outranking it gives way for good: it starts no election from that round even if a
//!   majority grants it, since voters that granted it before hearing of the better candidate
//!   grant that one too (with five voters, the second best could otherwise win with the two
//!   lowest while the best wins with them as well, and the real vote splits). A voter that
//!   learns of the leader's death late refused the better pre-candidates' requests in lease,
//!   and they will not ask again: it remembers the best one it refused, and a fast round of
//!   its own within the minimum election timeout starts having given way to it (with five
//!   voters, the fourth to see its link reset could otherwise win the two lowest and split the
//!   vote; the simulator's seed 24 in `fast_election.rs`). Only rounds a
//!   fast path started hold back
//!   this way, and only until their election timer fires (the next round is an ordinary one):
//!   a node stuck pre-voting, say one whose messages are lost on the way out, would otherwise
//!   refuse every node it outranks for ever (found by `membership.rs`'s
//!   `a_change_waits_for_the_leaders_own_term_commit`, whose slow node loses its requests).
//!
//! Why it stays safe: a pre-vote changes no term and no vote, so whatever it grants cannot
//! break election safety; the real election that follows keeps every rule of Raft (one vote per
//! term, durable before it is sent; the up-to-date check). Voiding a lease on a lost link only
//! lets a vote happen earlier than it would have, which Raft always allows; syncobj serves no
//! reads under a leader lease, so nothing relies on it for correctness.
//!
//! Why it does not disturb a healthy leader: the pre-vote wins only with the grants of a
//! majority, and every voter still linked to the leader refuses (its lease holds), as does the
//! leader itself. So it wins only if a majority of voters lost their link to the leader (or never
//! had one), in which case the leader cannot commit anything anyway and steps down by check-quorum
//! within `leader_fallback_timeout`. A follower that lost only its own link fails its
//! pre-vote, keeps its term, and follows the leader again at its next append over the
//! reconnected link. A partitioned minority never reaches a majority at all.
//!
//! No livelock: the fast pre-vote starts only on a link-down event, and only on a follower of
//! that very peer; the round resets the election timer to a whole random timeout, so a failed
//! attempt is retried on the ordinary schedule, and a resent request answers a received one,
//! once.
//!
//! # Cold start
//!
//! A node that just started and has heard from no leader ([`RaftNode::link_up`]) draws a short
//! timeout, uniform up to `cold_start_timeout` (at most half the minimum election timeout), as soon as the links it has reported cover a
//! majority of voters (itself included), rather than waiting out a whole election timeout. It
//! campaigns through a pre-vote like any node, so in a running cluster (a restart) the voters
//! that follow the leader refuse and nothing changes; in a cluster starting together,
//! concurrent pre-candidates give way as above. The shortcut is taken once: any reset of the
//! election timer (a leader heard, a vote granted, a campaign started) disarms it.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::error::ProtocolViolation;
use super::handover::TransferOutcome;
use super::message::{
    AppendOutcome, AppendResponse, InstallSnapshotResponse, Message, RequestVote, SnapshotOutcome,
    VoteKind, VoteResponse,
};
use super::node::RaftNode;
use super::role::{Role, RoleKind, Votes};
use super::timers::Timer;
use super::types::{EntryKind, Instant, LogIndex, NodeId, Term};

/// Where a pre-candidate stands among concurrent ones: its last log term and index, then its
/// id. Higher ranks first.
pub(crate) type Rank = (Term, LogIndex, NodeId);

fn rank_of(from: NodeId, request: &RequestVote) -> Rank {
    (request.last_log_term, request.last_log_index, from)
}

impl RaftNode {
    /// Dispatches a message from a member, after the term rules of §5.1.
    pub(crate) fn step_message(
        &mut self,
        from: NodeId,
        message: Message,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let term = message.term();
        if term > self.term && !self.accept_higher_term(from, &message, now) {
            return Ok(());
        }
        if term < self.term {
            self.answer_stale_term(from, &message);
            return Ok(());
        }
        match message {
            Message::RequestVote(request) => self.on_request_vote(from, &request, now),
            Message::VoteResponse(response) => self.on_vote_response(from, &response, now),
            Message::AppendEntries(append) => return self.on_append_entries(from, append, now),
            Message::AppendResponse(response) => {
                return self.on_append_response(from, response, now);
            }
            Message::InstallSnapshot(chunk) => return self.on_install_snapshot(from, chunk, now),
            Message::InstallSnapshotResponse(response) => {
                return self.on_install_snapshot_response(from, &response, now);
            }
            Message::TimeoutNow(_) => self.on_timeout_now(from, now),
        }
        Ok(())
    }

    /// A message from a later term: adopt the term (§5.1) unless it is a pre-vote, a vote
    /// request from a node that is not a voter here, or a vote request arriving while a leader
    /// is known to be alive (thesis §4.2.3). Returns whether to go on.
    fn accept_higher_term(&mut self, from: NodeId, message: &Message, now: Instant) -> bool {
        match message {
            Message::RequestVote(request) => {
                if !self.may_stand(from) {
                    // A removed node (or one not added yet) would never get this node's vote:
                    // its term must not depose a leader either (thesis §4.2.3).
                    tracing::debug!(node = %self.id, %from, "vote request from a non-voter ignored");
                    return false;
                }
                let handed_over = request.kind == VoteKind::Vote && request.leadership_transfer;
                let lease_applies =
                    !handed_over && (request.kind == VoteKind::PreVote || self.config.check_quorum);
                if lease_applies && self.heard_from_leader_recently(now) {
                    self.counters.votes_ignored_in_lease += 1;
                    if request.kind == VoteKind::PreVote {
                        self.refuse_vote(from, VoteKind::PreVote);
                        self.note_outranked(rank_of(from, request), now);
                    }
                    return false;
                }
                if request.kind == VoteKind::Vote {
                    if handed_over && self.transfer_target() == Some(from) {
                        self.end_transfer(TransferOutcome::Succeeded);
                    }
                    self.become_follower(request.term, None, now);
                }
            }
            // A granted pre-vote echoes the term we would start; we adopt it only on winning.
            Message::VoteResponse(response)
                if response.kind == VoteKind::PreVote && response.granted => {}
            Message::AppendEntries(append) => self.become_follower(append.term, Some(from), now),
            Message::InstallSnapshot(chunk) => self.become_follower(chunk.term, Some(from), now),
            other => self.become_follower(other.term(), None, now),
        }
        true
    }

    /// A message from an earlier term. Tell a stale leader or pre-candidate the current term so
    /// it steps down; drop everything else.
    fn answer_stale_term(&mut self, from: NodeId, message: &Message) {
        match message {
            Message::AppendEntries(append) => {
                let outcome = AppendOutcome::Rejected {
                    rejected: append.prev_log_index,
                    hint: append.prev_log_index,
                };
                self.send(
                    from,
                    Message::AppendResponse(AppendResponse {
                        term: self.term,
                        outcome,
                    }),
                );
            }
            Message::InstallSnapshot(chunk) => {
                let response = InstallSnapshotResponse {
                    term: self.term,
                    last_index: chunk.last_index,
                    last_term: chunk.last_term,
                    outcome: SnapshotOutcome::Continue { next_offset: 0 },
                };
                self.send(from, Message::InstallSnapshotResponse(response));
            }
            Message::RequestVote(request) if request.kind == VoteKind::PreVote => {
                self.refuse_vote(from, VoteKind::PreVote);
            }
            _ => {}
        }
    }

    fn on_request_vote(&mut self, from: NodeId, request: &RequestVote, now: Instant) {
        if request.kind == VoteKind::PreVote
            && let Role::PreCandidate {
                fast: true,
                yielded,
                ..
            } = self.role
        {
            if !self.ranks_above(from, request) {
                // Concurrent pre-candidates: this one gives way to the better (log, id).
                if let Role::PreCandidate { yielded, .. } = &mut self.role {
                    *yielded = true;
                }
            } else {
                // Only the best gets the others' grants: refuse, and ask for this node's own
                // (unless it gave way already).
                self.refuse_vote(from, VoteKind::PreVote);
                if !yielded && self.membership().is_voter(from) {
                    let again = RequestVote {
                        kind: VoteKind::PreVote,
                        term: self.term.next(),
                        last_log_index: self.log.last_index(),
                        last_log_term: self.log.last_term(),
                        leadership_transfer: false,
                    };
                    self.send(from, Message::RequestVote(again));
                }
                return;
            }
        }
        let free = self.vote == Some(from) || (self.vote.is_none() && self.leader().is_none());
        let may_vote = match request.kind {
            VoteKind::Vote => free,
            VoteKind::PreVote => free || request.term > self.term,
        };
        // Whether this node votes in its own configuration does not matter (thesis §4.1): the
        // candidate counts the vote only if its configuration makes this node a voter, and a
        // node that has yet to learn of its promotion may hold the vote that decides.
        let grant = may_vote
            && self.may_stand(from)
            && self
                .log
                .is_up_to_date(request.last_log_index, request.last_log_term);
        if !grant {
            self.refuse_vote(from, request.kind);
            return;
        }
        if request.kind == VoteKind::Vote {
            self.vote = Some(from);
            self.reset_election_timer(now);
        }
        let response = VoteResponse {
            kind: request.kind,
            term: request.term,
            granted: true,
        };
        self.send(from, Message::VoteResponse(response));
    }

    /// Whether this node should have a concurrent pre-candidate's grant rather than give its
    /// own: its log is more up to date, or as up to date and its id is higher. A total order,
    /// so of two pre-candidates exactly one gives way.
    fn ranks_above(&self, from: NodeId, request: &RequestVote) -> bool {
        self.rank() > rank_of(from, request)
    }

    /// Where this node stands among concurrent pre-candidates.
    fn rank(&self) -> Rank {
        (self.log.last_term(), self.log.last_index(), self.id)
    }

    /// Remembers a pre-candidate refused in lease that outranks this node, the best one if
    /// several: should this node's link to the leader go down soon after, it gives way to it.
    fn note_outranked(&mut self, rival: Rank, now: Instant) {
        if rival > self.rank() && self.outranked_by.is_none_or(|(best, _)| rival >= best) {
            self.outranked_by = Some((rival, now));
        }
    }

    fn refuse_vote(&mut self, to: NodeId, kind: VoteKind) {
        let response = VoteResponse {
            kind,
            term: self.term,
            granted: false,
        };
        self.send(to, Message::VoteResponse(response));
    }

    fn on_vote_response(&mut self, from: NodeId, response: &VoteResponse, now: Instant) {
        if !self.membership().is_voter(from) {
            return;
        }
        let quorum = self.membership().quorum();
        let outcome = match (&mut self.role, response.kind) {
            (Role::PreCandidate { votes, yielded, .. }, VoteKind::PreVote) => {
                if response.granted && response.term != self.term.next() {
                    return;
                }
                votes.record(from, response.granted);
                match votes.outcome(quorum) {
                    Some(true) if *yielded => None,
                    outcome => outcome,
                }
            }
            (Role::Candidate { votes }, VoteKind::Vote) => {
                votes.record(from, response.granted);
                votes.outcome(quorum)
            }
            _ => return,
        };
        match (outcome, self.role.kind()) {
            (Some(true), RoleKind::PreCandidate) => self.start_election(false, now),
            (Some(true), _) => self.become_leader(now),
            (Some(false), _) => self.become_follower(self.term, None, now),
            (None, _) => {}
        }
    }

    /// Only a node that [may campaign](Self::may_campaign) does (thesis §4.2.3); one whose
    /// removal is pending always starts with a pre-vote, so that a hopeless campaign (its
    /// log behind, its removal committed elsewhere) never raises anyone's term.
    pub(crate) fn on_election_timeout(&mut self, now: Instant) {
        if !self.may_campaign() {
            self.reset_election_timer(now);
        } else if self.config.pre_vote || !self.membership().is_voter(self.id) {
            let fast = std::mem::take(&mut self.cold_start_round);
            self.become_pre_candidate(fast, now);
        } else {
            self.start_election(false, now);
        }
    }

    /// Whether `candidate` may stand for election as far as this node knows: it is a voter of
    /// the configuration in force, or of the last one committed. A configuration removing it
    /// that is not committed yet may be truncated: a node that appended it must not refuse the
    /// vote that may elect the leader who truncates it (thesis §4.1; found by the simulator,
    /// seed 1463 of 5 voters, with two uncommitted removals each excluding the other's node).
    pub(crate) fn may_stand(&self, candidate: NodeId) -> bool {
        self.membership().is_voter(candidate)
            || self.configs.at(self.log.committed()).is_voter(candidate)
    }

    /// Whether this node may stand for election: it is a voter of the configuration in force,
    /// or that configuration removes it but is not committed yet and the previous one makes it
    /// a voter. A leader that removed itself and lost its leadership before the removal
    /// committed may hold the only log that can win (thesis §4.2.2: it may become leader again);
    /// it counts the votes of the configuration in force, its own not among them, and steps
    /// down once the removal commits. Non-voters, observers and nodes whose removal committed
    /// never campaign (thesis §4.2.3).
    pub(crate) fn may_campaign(&self) -> bool {
        let removal_pending = self.configs.current_index() > self.log.committed()
            && self
                .configs
                .previous()
                .is_some_and(|previous| previous.is_voter(self.id));
        self.membership().is_voter(self.id) || removal_pending
    }

    pub(crate) fn on_heartbeat_timeout(&mut self, now: Instant) {
        if self.config.check_quorum && !self.quorum_heard_within_fallback(now) {
            self.counters.check_quorum_step_downs += 1;
            tracing::info!(node = %self.id, term = %self.term, "leader lost contact with a majority, stepping down");
            self.become_follower(self.term, None, now);
            return;
        }
        self.send_heartbeats(now);
        self.retell_target();
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
    }

    /// Whether a majority of voters (this leader included) answered within the fallback timeout.
    fn quorum_heard_within_fallback(&self, now: Instant) -> bool {
        let Role::Leader { progress, .. } = &self.role else {
            return false;
        };
        let fallback = self.config.leader_fallback_timeout;
        let heard = self
            .membership()
            .voters()
            .iter()
            .filter(|&&v| {
                v == self.id
                    || progress
                        .get(&v)
                        .is_some_and(|p| now - p.last_heard <= fallback)
            })
            .count();
        heard >= self.membership().quorum()
    }

    /// Whether this node is a leader, or a follower that heard from its leader within the
    /// minimum election timeout and whose link to it the driver has not reported down.
    fn heard_from_leader_recently(&self, now: Instant) -> bool {
        match self.role {
            Role::Leader { .. } => true,
            Role::Follower {
                leader: Some(leader),
                ..
            } => {
                self.links.get(&leader) != Some(&false)
                    && self
                        .leader_contact
                        .is_some_and(|at| now - at < self.config.election_timeout_min)
            }
            _ => false,
        }
    }

    /// The driver's link to `peer` went down: a follower of `peer` that may campaign starts a
    /// pre-vote at once (see the module's documentation).
    pub(crate) fn on_leader_link_lost(&mut self, peer: NodeId, now: Instant) {
        let follows = matches!(self.role, Role::Follower { leader: Some(l), .. } if l == peer);
        if follows && self.config.fast_failover && self.config.pre_vote && self.may_campaign() {
            tracing::debug!(node = %self.id, leader = %peer, "link to the leader lost: pre-vote at once");
            self.become_pre_candidate(true, now);
        }
    }

    /// A node that just started and heard from no leader, linked to a majority of voters,
    /// brings its election timer forward to the cold-start timeout, once.
    pub(crate) fn maybe_cold_start(&mut self, now: Instant) {
        let Some(limit) = self.config.cold_start_timeout else {
            return;
        };
        let waiting = matches!(self.role, Role::Follower { leader: None, .. });
        if !self.cold_start || !waiting || !self.config.pre_vote || !self.may_campaign() {
            return;
        }
        let linked = self
            .membership()
            .voters()
            .iter()
            .filter(|&&v| v == self.id || self.links.get(&v) == Some(&true))
            .count();
        if linked >= self.membership().quorum() {
            self.cold_start = false;
            self.cold_start_round = true;
            let limit = limit.min(self.config.election_timeout_min / 2);
            self.shorten_election_timer(now, limit);
        }
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>, now: Instant) {
        assert!(
            term >= self.term,
            "terms never go back ({} -> {term})",
            self.term
        );
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if self.is_leader() {
            self.abandon_promotion();
            self.end_transfer(TransferOutcome::Interrupted);
        }
        self.log_role_change("follower");
        self.role = Role::Follower {
            leader,
            matched: LogIndex::ZERO,
        };
        self.timers.stop(Timer::Heartbeat);
        self.reset_election_timer(now);
    }

    /// Starts a pre-vote round; `fast`: a fast path started it (see [`Role::PreCandidate`]).
    /// A fast round gives way from the start to a better pre-candidate this node refused a
    /// moment ago, while its own link to the leader was still up: that one will not ask again.
    fn become_pre_candidate(&mut self, fast: bool, now: Instant) {
        self.counters.pre_votes_started += 1;
        self.log_role_change("pre-candidate");
        let window = self.config.election_timeout_min;
        let yielded = fast
            && self.outranked_by.take().is_some_and(|(rival, at)| {
                now.saturating_duration_since(at) <= window && rival > self.rank()
            });
        self.role = Role::PreCandidate {
            votes: Votes::default(),
            fast,
            yielded,
        };
        self.reset_election_timer(now);
        self.request_votes(VoteKind::PreVote, false, now);
    }

    /// Becomes a candidate of the next term and asks for votes (§5.2). `leadership_transfer`:
    /// the leader handed over with a TimeoutNow (thesis §3.10), which the requests say.
    pub(crate) fn start_election(&mut self, leadership_transfer: bool, now: Instant) {
        assert!(
            self.may_campaign(),
            "only a voter campaigns (thesis §4.2.3)"
        );
        self.counters.elections_started += 1;
        self.term = self.term.next();
        self.vote = Some(self.id);
        self.log_role_change("candidate");
        self.role = Role::Candidate {
            votes: Votes::default(),
        };
        self.reset_election_timer(now);
        self.request_votes(VoteKind::Vote, leadership_transfer, now);
    }

    /// Votes for itself and asks every other voter; wins at once in a one-voter cluster.
    fn request_votes(&mut self, kind: VoteKind, leadership_transfer: bool, now: Instant) {
        let term = match kind {
            VoteKind::PreVote => self.term.next(),
            VoteKind::Vote => self.term,
        };
        let own = VoteResponse {
            kind,
            term,
            granted: true,
        };
        self.on_vote_response(self.id, &own, now);
        if !matches!(
            self.role,
            Role::PreCandidate { .. } | Role::Candidate { .. }
        ) {
            return;
        }
        let request = RequestVote {
            kind,
            term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            leadership_transfer,
        };
        let voters: Vec<NodeId> = self
            .membership()
            .voters()
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect();
        for voter in voters {
            self.send(voter, Message::RequestVote(request.clone()));
        }
    }

    fn become_leader(&mut self, now: Instant) {
        assert!(
            matches!(self.role, Role::Candidate { .. }),
            "only a candidate becomes leader"
        );
        assert_eq!(
            self.vote,
            Some(self.id),
            "a leader voted for itself in its term"
        );
        assert!(
            self.may_campaign(),
            "a leader is a voter of its configuration, or of the one its removal replaces"
        );
        self.log_role_change("leader");
        self.role = Role::Leader {
            progress: BTreeMap::new(),
            promotion: None,
            handover: None,
            inherited: self.log.last_index(),
        };
        self.sync_progress(now);
        self.leader_contact = Some(now);
        self.timers.stop(Timer::Election);
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
        // Raft paper §8: a no-op of the new term commits everything before it.
        self.append_own(EntryKind::Noop, Bytes::new(), now);
    }

    /// Accepts `from` as the leader of the current term, as an AppendEntries of this term says.
    pub(crate) fn recognize_leader(
        &mut self,
        from: NodeId,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        match self.role {
            Role::Leader { .. } => return Err(ProtocolViolation::SecondLeader { term: self.term }),
            Role::Follower {
                leader: Some(leader),
                ..
            } if leader != from => {
                return Err(ProtocolViolation::SecondLeader { term: self.term });
            }
            Role::Follower {
                leader: Some(_), ..
            } => {}
            _ => self.become_follower(self.term, Some(from), now),
        }
        self.leader_contact = Some(now);
        self.reset_election_timer(now);
        Ok(())
    }

    fn log_role_change(&self, to: &str) {
        tracing::debug!(node = %self.id, term = %self.term, from = ?self.role.kind(), to, "role change");
    }
}
