//! Log replication (Raft paper §5.3) and commitment (§5.4.2): the leader's pipelined appends and
//! the follower's consistency check.

use super::error::ProtocolViolation;
use super::message::{AppendEntries, AppendOutcome, AppendResponse, Message};
use super::node::RaftNode;
use super::progress::Mode;
use super::role::Role;
use super::types::{Entry, Instant, LogIndex, NodeId};

impl RaftNode {
    /// Whether the leader has entries it may send to some follower now.
    pub(crate) fn has_appends_to_send(&self) -> bool {
        let Role::Leader { progress, .. } = &self.role else {
            return false;
        };
        let last = self.log.last_index();
        let base = self.log.base_index();
        self.commit_broadcast_pending
            || progress.values().any(|p| {
                (p.next_index <= last && p.can_send(self.config.max_inflight_appends))
                    || (p.next_index <= base && !matches!(p.mode, Mode::Snapshot(_)))
            })
    }

    /// Sends every follower what it may receive now: batches up to the pipelining window, or one
    /// probe. Called when the driver drains [`Ready`](super::Ready), so entries proposed in one
    /// batch travel together.
    pub(crate) fn send_pending_appends(&mut self) {
        let Role::Leader { progress, .. } = &self.role else {
            return;
        };
        let peers: Vec<NodeId> = progress.keys().copied().collect();
        let broadcast_commit = std::mem::take(&mut self.commit_broadcast_pending);
        for peer in peers {
            if self.sends_snapshot_to(peer) {
                continue;
            }
            let mut sent = false;
            while self.may_send_entries(peer) {
                self.send_append(peer, false);
                sent = true;
            }
            if broadcast_commit && !sent && self.is_replicating(peer) {
                self.send_append(peer, true);
            }
        }
    }

    /// Sends every follower an append: its pending entries if the window allows, else an empty
    /// heartbeat that carries the commit index and re-probes a silent follower. Appends that
    /// went unacknowledged for a longest election timeout (longer after each such resend) are
    /// taken as lost and sent again; a driver that knows of a lost link says so sooner
    /// ([`RaftNode::report_unreachable`]).
    pub(crate) fn send_heartbeats(&mut self, now: Instant) {
        let patience = self.config.election_timeout_max;
        let Role::Leader { progress, .. } = &mut self.role else {
            return;
        };
        let peers: Vec<NodeId> = progress.keys().copied().collect();
        for p in progress.values_mut() {
            p.heartbeat_due();
            p.resend_if_stalled(now, patience);
        }
        for peer in peers {
            if self.sends_snapshot_to(peer) {
                self.snapshot_heartbeat(peer);
            } else {
                self.send_append(peer, true);
            }
        }
    }

    fn may_send_entries(&self, peer: NodeId) -> bool {
        let Role::Leader { progress, .. } = &self.role else {
            return false;
        };
        progress.get(&peer).is_some_and(|p| {
            p.next_index <= self.log.last_index() && p.can_send(self.config.max_inflight_appends)
        })
    }

    fn is_replicating(&self, peer: NodeId) -> bool {
        let Role::Leader { progress, .. } = &self.role else {
            return false;
        };
        progress
            .get(&peer)
            .is_some_and(|p| matches!(p.mode, Mode::Replicate { .. }))
    }

    /// Sends one append to `peer`. A heartbeat goes out even when the window is full, empty then.
    pub(crate) fn send_append(&mut self, peer: NodeId, heartbeat: bool) {
        let Role::Leader { progress, .. } = &mut self.role else {
            return;
        };
        let Some(p) = progress.get_mut(&peer) else {
            return;
        };
        let base = self.log.base_index();
        assert!(
            p.next_index.prev() >= base,
            "an append to {peer} after {}, below the base {base}: a snapshot is due",
            p.next_index.prev()
        );
        let entries = if p.can_send(self.config.max_inflight_appends) {
            self.log
                .entries_from(p.next_index, self.config.append_entries_batch_size_bytes)
        } else {
            debug_assert!(heartbeat, "only heartbeats go out past the window");
            Vec::new()
        };
        // An empty append to a replicating follower checks the log at what it is known to
        // match, not after the appends in flight: the driver may send it ahead of them (so
        // that heartbeats never wait behind bulk data), and a check past what has arrived
        // would be rejected and restart replication from the match.
        let prev_log_index = match (&p.mode, entries.is_empty()) {
            (Mode::Replicate { .. }, true) => p.match_index.max(base),
            _ => p.next_index.prev(),
        };
        let prev_log_term = self
            .log
            .term(prev_log_index)
            .expect("the leader holds every entry from its base on, and prev >= base");
        if let Some(last) = entries.last() {
            p.sent(last.index);
        }
        let append = AppendEntries {
            term: self.term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.log.committed(),
        };
        self.send(peer, Message::AppendEntries(append));
    }

    pub(crate) fn on_append_response(
        &mut self,
        from: NodeId,
        response: AppendResponse,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let (last, base) = (self.log.last_index(), self.log.base_index());
        let Role::Leader { progress, .. } = &mut self.role else {
            return Ok(());
        };
        let Some(p) = progress.get_mut(&from) else {
            return Ok(());
        };
        p.last_heard = now;
        match response.outcome {
            AppendOutcome::Accepted { match_index } => {
                if match_index > last {
                    return Err(ProtocolViolation::AckBeyondLog {
                        claimed: match_index,
                        last,
                    });
                }
                if p.accepted(match_index) {
                    p.acknowledged(now);
                    self.maybe_commit();
                    self.maybe_promote(now);
                    self.maybe_tell_target();
                } else {
                    // An answer that acknowledges nothing new (a heartbeat's): if appends in
                    // flight filled the window, they may be lost, and nothing else would free
                    // it. Freeing one slot lets the next append go; if the follower lacks what
                    // came before, it rejects that one and replication starts over from the
                    // match (etcd does the same).
                    p.free_one_if_full(self.config.max_inflight_appends);
                }
            }
            AppendOutcome::Rejected { rejected, hint } => {
                p.rejected(rejected, hint, base);
            }
        }
        Ok(())
    }

    /// Commits the highest index a majority of voters hold, if it is from the current term
    /// (Raft paper §5.4.2). The leader counts itself only up to what it has persisted, and not
    /// at all once the configuration in force removed it (thesis §4.2.2).
    pub(crate) fn maybe_commit(&mut self) {
        let Role::Leader { progress, .. } = &self.role else {
            return;
        };
        let mut matched: Vec<LogIndex> = self
            .configs
            .current()
            .voters()
            .iter()
            .map(|&v| {
                if v == self.id {
                    self.log.persisted()
                } else {
                    progress.get(&v).map_or(LogIndex::ZERO, |p| p.match_index)
                }
            })
            .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = matched.get(self.membership().quorum() - 1) else {
            return;
        };
        let before = self.log.committed();
        if candidate > before && self.log.term(candidate) == Some(self.term) {
            self.log.commit_to(candidate);
            self.commit_broadcast_pending = true;
            let config = self.configs.current_index();
            if before < config && config <= candidate {
                self.on_config_committed(self.latest);
            }
        }
    }

    pub(crate) fn on_append_entries(
        &mut self,
        from: NodeId,
        append: AppendEntries,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        self.recognize_leader(from, now)?;
        check_contiguous(&append)?;
        self.check_committed_prefix(&append)?;
        RaftNode::check_configs(&append.entries)?;
        let committed = self.log.committed();
        let AppendEntries {
            prev_log_index,
            prev_log_term,
            mut entries,
            leader_commit,
            ..
        } = append;
        // Entries at or below our commit index are committed everywhere (and were just checked
        // to agree): skip them.
        let (prev, prev_term) = if prev_log_index < committed {
            let skip = usize::try_from(committed.0 - prev_log_index.0).unwrap_or(usize::MAX);
            if entries.len() <= skip {
                self.accept_append(from, committed);
                return Ok(());
            }
            let rest = entries.split_off(skip);
            let last_skipped = entries.pop().expect("skip >= 1 because prev < committed");
            entries = rest;
            (last_skipped.index, last_skipped.term)
        } else {
            (prev_log_index, prev_log_term)
        };
        if !self.log.matches(prev, prev_term) {
            if prev <= committed {
                return Err(ProtocolViolation::TruncateCommitted {
                    index: prev,
                    committed,
                });
            }
            let hint = self
                .log
                .last_index_with_term_at_most(prev.prev(), prev_term)
                .max(committed);
            let outcome = AppendOutcome::Rejected {
                rejected: prev_log_index,
                hint,
            };
            self.send(
                from,
                Message::AppendResponse(AppendResponse {
                    term: self.term,
                    outcome,
                }),
            );
            return Ok(());
        }
        let last_new = prev + entries.len() as u64;
        let reported = match self.role {
            Role::Follower { matched, .. } => matched,
            _ => LogIndex::ZERO,
        };
        let empty = entries.is_empty();
        self.append_from_leader(entries, now)?;
        let matched = self.note_leader_match(last_new);
        self.log.commit_to(leader_commit.min(matched));
        if empty && self.log.committed() > committed && last_new <= reported {
            // The leader's commit broadcast: an empty append that moved the commit index, at
            // a match this follower already accepted (and answered) in this term. An answer
            // would tell the leader nothing it does not know, and would cost both sides a
            // message per commit, on the path of the next call. The leader hears from this
            // follower at its next heartbeat, which no longer moves the commit index.
            return Ok(());
        }
        self.accept_append(from, last_new);
        Ok(())
    }

    /// Refuses an append that contradicts an entry at or below the commit index.
    fn check_committed_prefix(&self, append: &AppendEntries) -> Result<(), ProtocolViolation> {
        let committed = self.log.committed();
        let prev = (append.prev_log_index, append.prev_log_term);
        let claims = std::iter::once(prev).chain(append.entries.iter().map(|e| (e.index, e.term)));
        for (index, term) in claims.take_while(|&(index, _)| index <= committed) {
            if self.log.term(index).is_some_and(|held| held != term) {
                return Err(ProtocolViolation::TruncateCommitted { index, committed });
            }
        }
        Ok(())
    }

    /// Appends the entries the log lacks, replacing a conflicting suffix (never a committed one).
    fn append_from_leader(
        &mut self,
        entries: Vec<Entry>,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let first_new = entries
            .iter()
            .position(|e| !self.log.matches(e.index, e.term));
        let Some(first_new) = first_new else {
            return Ok(());
        };
        let index = entries[first_new].index;
        if index <= self.log.last_index() {
            let committed = self.log.committed();
            if index <= committed {
                return Err(ProtocolViolation::TruncateCommitted { index, committed });
            }
            self.truncate_log_from(index, now);
        }
        for entry in entries.into_iter().skip(first_new) {
            self.push_entry(entry, now);
        }
        Ok(())
    }

    /// Records that this follower's log shares the leader's up to `index`, and returns the
    /// highest index known to do so in this term.
    fn note_leader_match(&mut self, index: LogIndex) -> LogIndex {
        match &mut self.role {
            Role::Follower { matched, .. } => {
                *matched = (*matched).max(index);
                *matched
            }
            _ => index,
        }
    }

    fn accept_append(&mut self, leader: NodeId, match_index: LogIndex) {
        let outcome = AppendOutcome::Accepted { match_index };
        self.send(
            leader,
            Message::AppendResponse(AppendResponse {
                term: self.term,
                outcome,
            }),
        );
    }
}

fn check_contiguous(append: &AppendEntries) -> Result<(), ProtocolViolation> {
    let mut expected = append.prev_log_index.next();
    let mut previous_term = append.prev_log_term;
    for entry in &append.entries {
        if entry.index != expected || entry.term < previous_term || entry.term > append.term {
            return Err(ProtocolViolation::NonContiguous {
                prev: append.prev_log_index,
            });
        }
        expected = expected.next();
        previous_term = entry.term;
    }
    Ok(())
}
