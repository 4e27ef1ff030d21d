//! The invariants checked after every simulation step, across every node and every restart.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use super::node::{Durable, SimSnapshot};
use crate::raft::{
    AppendOutcome, Entry, EntryKind, HardState, Instant, LogIndex, LogPosition, Membership,
    Message, NodeId, RaftNode, SnapshotOutcome, Term, VoteKind,
};

/// A broken invariant: what broke, where and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The virtual time of the step that broke it.
    pub at: Instant,
    /// Which invariant, and the evidence.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.at, self.what)
    }
}

/// What the checker knows of an entry: enough to tell two versions of one (index, term) apart.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EntryFact {
    kind: EntryKind,
    data: Bytes,
    prev_term: Term,
}

/// The cluster-wide record the invariants are checked against.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    /// Election safety: the leader of each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Log matching: every (index, term) ever written determines its content and its
    /// predecessor's term.
    entries: BTreeMap<(LogIndex, Term), EntryFact>,
    /// Every committed index: the entry's term, and the lowest term in which a node was seen
    /// counting it committed (an upper bound on the term of the leader that committed it).
    committed: BTreeMap<LogIndex, Committed>,
    /// State machine safety: what was applied at each index.
    applied: BTreeMap<LogIndex, (Term, Bytes)>,
    /// Per node: (term, commit, applied) seen last, for monotonicity.
    seen: BTreeMap<NodeId, Seen>,
}

#[derive(Clone, Copy, Debug)]
struct Committed {
    term: Term,
    seen_in: Term,
}

#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    term: Term,
    commit: LogIndex,
    applied: LogIndex,
    was_leader: bool,
}

type Check = Result<(), String>;

impl Checker {
    /// Checks a node's state after it was stepped: election safety, leader completeness,
    /// committed entries and monotone term, commit and applied index.
    pub(crate) fn after_step(&mut self, node: &RaftNode) -> Check {
        let id = node.id();
        let seen = self.seen.get(&id).copied().unwrap_or_default();
        if node.term() < seen.term {
            return Err(format!(
                "{id}: term went back from {} to {}",
                seen.term,
                node.term()
            ));
        }
        if node.commit_index() < seen.commit {
            return Err(format!(
                "{id}: commit index went back from {} to {}",
                seen.commit,
                node.commit_index()
            ));
        }
        self.check_leader(node, seen)?;
        self.record_commits(node, seen.commit)?;
        self.seen.insert(
            id,
            Seen {
                term: node.term(),
                commit: node.commit_index(),
                applied: seen.applied,
                was_leader: node.is_leader(),
            },
        );
        Ok(())
    }

    /// Node `id` crashed with `durable` the term its disk had synced (none if its journal
    /// writer failed): a term it reached but had not synced yet is lost with the crash, and
    /// harmless, since nothing that depends on it left the node (persist before send, checked
    /// on every message). It restarts at the synced term at least.
    pub(crate) fn on_crash(&mut self, id: NodeId, durable: Option<Term>) {
        if let (Some(seen), Some(durable)) = (self.seen.get_mut(&id), durable) {
            seen.term = seen.term.min(durable);
        }
    }

    /// A node restarted: its volatile commit and applied index start over (at its snapshot, if
    /// it has one), its term does not — unless its disk failed (`after_disk_failure`): a write
    /// that failed may have held a newer term, which the node never revealed, since it halted
    /// at once.
    pub(crate) fn on_restart(&mut self, node: &RaftNode, after_disk_failure: bool) -> Check {
        let id = node.id();
        let seen = self.seen.get(&id).copied().unwrap_or_default();
        if node.term() < seen.term && !after_disk_failure {
            return Err(format!(
                "{id}: restarted at {} after reaching {}",
                node.term(),
                seen.term
            ));
        }
        self.seen.insert(
            id,
            Seen {
                term: node.term(),
                applied: node.applied_index(),
                ..Seen::default()
            },
        );
        self.record_commits(node, LogIndex::ZERO)
    }

    /// State machine safety for a snapshot `node` installs: it holds exactly the entries applied
    /// up to its last one, agreeing with what every node applied, and moves the applied index
    /// forward.
    pub(crate) fn on_install(
        &mut self,
        node: NodeId,
        point: LogPosition,
        state: &[Entry],
    ) -> Check {
        let seen = self.seen.entry(node).or_default();
        if point.index <= seen.applied {
            return Err(format!(
                "{node} installed snapshot {point} with {} applied already",
                seen.applied
            ));
        }
        seen.applied = point.index;
        if state.len() as u64 != point.index.0 || state.last().map(|e| e.term) != Some(point.term) {
            return Err(format!(
                "{node} installed snapshot {point} holding {} entries",
                state.len()
            ));
        }
        for (entry, index) in state.iter().zip(1..) {
            if entry.index != LogIndex(index) {
                return Err(format!("snapshot {point} holds {} at {index}", entry.index));
            }
            self.record_applied(node, entry)?;
        }
        Ok(())
    }

    fn check_leader(&mut self, node: &RaftNode, seen: Seen) -> Check {
        if !node.is_leader() {
            return Ok(());
        }
        let id = node.id();
        let term = node.term();
        match self.leaders.get(&term) {
            Some(&other) if other != id => {
                return Err(format!("two leaders in {term}: {other} and {id}"));
            }
            Some(_) if seen.was_leader && seen.term == term => return Ok(()),
            _ => {}
        }
        self.leaders.insert(term, id);
        // Leader completeness (§5.4): every entry committed in an earlier term is in the new
        // leader's log. (A leader of an older term may still win after a newer term committed.)
        let base = node.log_base().index;
        let earlier = self
            .committed
            .range(base..)
            .filter(|(_, c)| c.seen_in < term);
        for (&index, committed) in earlier {
            let held = held_term(node, index);
            if held != Some(committed.term) {
                return Err(format!(
                    "leader {id} of {term} lacks entry {index} of {} committed by {} (holds {held:?})",
                    committed.term, committed.seen_in
                ));
            }
        }
        Ok(())
    }

    /// Records the entries `node` newly counts as committed; a committed index never changes term.
    fn record_commits(&mut self, node: &RaftNode, from: LogIndex) -> Check {
        let base = node.log_base();
        // Entries below the base are in a snapshot: they were recorded when committed.
        let mut index = from.next().max(base.index);
        while index <= node.commit_index() {
            let term = held_term(node, index)
                .ok_or_else(|| format!("{}: committed {index} is not in its log", node.id()))?;
            let seen_in = node.term();
            let record = self
                .committed
                .entry(index)
                .or_insert(Committed { term, seen_in });
            if record.term != term {
                return Err(format!(
                    "committed entry {index} changed: {} before, {term} on {}",
                    record.term,
                    node.id()
                ));
            }
            record.seen_in = record.seen_in.min(seen_in);
            index = index.next();
        }
        Ok(())
    }

    /// Log matching (§5.3): entries a node wrote agree with every entry ever written at the same
    /// (index, term), predecessor included. `durable` is what the node holds after the write.
    pub(crate) fn on_persist(&mut self, node: NodeId, durable: &Durable, new: &[Entry]) -> Check {
        for entry in new {
            let prev_term = durable.term(entry.index.prev()).ok_or_else(|| {
                format!("{node}: persisted {} without its predecessor", entry.index)
            })?;
            let fact = EntryFact {
                kind: entry.kind,
                data: entry.data.clone(),
                prev_term,
            };
            match self.entries.get(&(entry.index, entry.term)) {
                Some(known) if *known != fact => {
                    return Err(format!(
                        "log matching: {node} wrote {} of {} unlike another node's (prev term {} vs {})",
                        entry.index, entry.term, fact.prev_term, known.prev_term
                    ));
                }
                Some(_) => {}
                None => {
                    self.entries.insert((entry.index, entry.term), fact);
                }
            }
        }
        Ok(())
    }

    /// State machine safety: `node` applies `entry`, next after its last applied index.
    pub(crate) fn on_apply(&mut self, node: NodeId, entry: &Entry) -> Check {
        let seen = self.seen.entry(node).or_default();
        if entry.index != seen.applied.next() {
            return Err(format!(
                "{node} applied {} after {}",
                entry.index, seen.applied
            ));
        }
        seen.applied = entry.index;
        self.record_applied(node, entry)
    }

    /// A snapshot `node` writes (its own, or one received) carries the membership in force at its
    /// last entry (thesis §5.1): the latest configuration entry it covers, if it covers one.
    pub(crate) fn on_snapshot(node: NodeId, snapshot: &SimSnapshot) -> Check {
        let point = snapshot.point;
        let Some(membership) = &snapshot.membership else {
            return Err(format!(
                "{node} wrote snapshot {point} without a membership"
            ));
        };
        let latest = snapshot
            .state
            .iter()
            .rev()
            .find(|e| e.kind == EntryKind::Membership);
        let Some(entry) = latest else {
            return Ok(());
        };
        match Membership::decode(&entry.data) {
            Ok(named) if &named == membership => Ok(()),
            _ => Err(format!(
                "{node} wrote snapshot {point} with membership {membership:?}, but its latest configuration entry {} names another",
                entry.index
            )),
        }
    }

    /// Every node applies the same entry at each index.
    fn record_applied(&mut self, node: NodeId, entry: &Entry) -> Check {
        match self.applied.get(&entry.index) {
            Some((term, data)) if (*term, data) != (entry.term, &entry.data) => Err(format!(
                "{node} applied {} of {} where another node applied {term}",
                entry.index, entry.term
            )),
            Some(_) => Ok(()),
            None => {
                self.applied
                    .insert(entry.index, (entry.term, entry.data.clone()));
                Ok(())
            }
        }
    }

    /// Persist before send: a message may leave only if the state it depends on is durable
    /// ([`durable_allows`]). And the leader never sends an append whose previous entry lies
    /// below its log `base`: it sends a snapshot instead.
    pub(crate) fn on_send(
        message: &Message,
        to: NodeId,
        durable: &Durable,
        base: LogIndex,
    ) -> Check {
        let hard_state = &durable.hard_state;
        match message {
            Message::AppendEntries(a) if a.prev_log_index < base => Err(format!(
                "sent an append after {} to {to}, below its log base {base}",
                a.prev_log_index
            )),
            Message::InstallSnapshotResponse(r)
                if r.outcome == SnapshotOutcome::Installed
                    && (durable.base().index < r.last_index
                        || hard_state.commit < r.last_index) =>
            {
                Err(format!(
                    "acknowledged snapshot {} with snapshot {} and commit {} durable",
                    r.snapshot(),
                    durable.base(),
                    hard_state.commit
                ))
            }
            _ => durable_allows(message, to, hard_state, durable.last_index()),
        }
    }

    /// The (index, term) committed at `index`, if known.
    pub(crate) fn committed_term(&self, index: LogIndex) -> Option<Term> {
        self.committed.get(&index).map(|c| c.term)
    }

    /// The highest index known committed anywhere.
    pub(crate) fn highest_committed(&self) -> LogIndex {
        self.committed
            .keys()
            .next_back()
            .copied()
            .unwrap_or(LogIndex::ZERO)
    }
}

/// The term of the entry at `index` as `node` knows it: from its log, or its snapshot's base.
fn held_term(node: &RaftNode, index: LogIndex) -> Option<Term> {
    let base = node.log_base();
    if index == base.index {
        return Some(base.term);
    }
    node.entry(index).map(|e| e.term)
}

/// Pre-vote requests and grants carry a future term the sender has not adopted.
/// The persist-before-send rules checked at both levels: a message to `to` may leave only if
/// its term is durable (a pre-vote's excepted), a granted vote is saved, and an acknowledged
/// append is in the durable log (`hard_state` and `durable_last`: what is on disk).
pub(crate) fn durable_allows(
    message: &Message,
    to: NodeId,
    hard_state: &HardState,
    durable_last: LogIndex,
) -> Check {
    if message.term() > hard_state.term && !is_pre_vote(message) {
        return Err(format!(
            "sent a {} message to {to} while {} is durable",
            message.term(),
            hard_state.term
        ));
    }
    match message {
        // A grant of an earlier term than the durable one is safe: a node that restarts in the
        // later term never votes in the earlier one again. (A grant and the node's own
        // campaign of the next term, synced together, reach the wire in this order.)
        Message::VoteResponse(r)
            if r.kind == VoteKind::Vote
                && r.granted
                && r.term == hard_state.term
                && hard_state.vote != Some(to) =>
        {
            Err(format!(
                "granted a vote to {to} in {} before saving it (durable: {:?})",
                r.term, hard_state
            ))
        }
        Message::AppendResponse(r) => match r.outcome {
            AppendOutcome::Accepted { match_index } if match_index > durable_last => Err(format!(
                "acknowledged {match_index} to {to} with only {durable_last} durable"
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

fn is_pre_vote(message: &Message) -> bool {
    match message {
        Message::RequestVote(r) => r.kind == VoteKind::PreVote,
        Message::VoteResponse(r) => r.kind == VoteKind::PreVote && r.granted,
        _ => false,
    }
}
