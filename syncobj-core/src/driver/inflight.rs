//! Calls in flight on one node: calls forwarded to the leader and waiting to hear where they
//! were placed, and calls placed in the log waiting for their index to be applied. Each method
//! returns the calls it settles, for the engine to complete once it is unlocked.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::wire::Refusal;
use crate::object::{Completion, FailReason};
use crate::raft::{Instant, LogIndex, NodeId, Term};

/// A call's outcome: its encoded result or why it failed.
pub(crate) type Outcome = Result<Vec<u8>, FailReason>;

/// A call settled by the bookkeeping, to complete.
pub(crate) type Settled = (Completion, Outcome);

/// How many results of recently applied entries a node keeps for forwarded calls whose
/// placement arrives after the entry (rare: the leader answers before it replicates).
const RECENT_RESULTS_MAX: usize = 1_024;

/// How often deadlines of placed calls are checked.
const DEADLINE_SCAN_INTERVAL: Duration = Duration::from_millis(100);

/// A call forwarded to the leader, waiting to hear where it was placed.
struct Forwarded {
    completion: Completion,
    leader: NodeId,
    deadline: Option<Instant>,
}

/// A call placed in the log, waiting for its index to be applied.
struct Placement {
    term: Term,
    completion: Completion,
    deadline: Option<Instant>,
}

/// The calls waiting on one index: almost always one, held without an allocation of its own
/// (a burst of 100 000 calls keeps as many in flight on the leader).
enum Waiting {
    One(Placement),
    /// Placed in different terms: the one whose term is applied succeeds.
    Many(Vec<Placement>),
}

impl Waiting {
    fn push(&mut self, placement: Placement) {
        match self {
            Waiting::Many(all) => all.push(placement),
            Waiting::One(_) => {
                let Waiting::One(first) = std::mem::replace(self, Waiting::Many(Vec::new())) else {
                    unreachable!("matched One above");
                };
                *self = Waiting::Many(vec![first, placement]);
            }
        }
    }

    fn into_vec(self) -> Vec<Placement> {
        match self {
            Waiting::One(placement) => vec![placement],
            Waiting::Many(all) => all,
        }
    }

    /// Moves the placements whose deadline passed into `late`; returns whether any remain.
    fn keep_on_time(&mut self, now: Instant, late: &mut Vec<Placement>) -> bool {
        let is_late = |p: &Placement| p.deadline.is_some_and(|d| d <= now);
        if let Waiting::One(placement) = self {
            if !is_late(placement) {
                return true;
            }
            // Left empty: the caller drops it.
            late.extend(std::mem::replace(self, Waiting::Many(Vec::new())).into_vec());
            return false;
        }
        let Waiting::Many(all) = self else {
            unreachable!("One was turned into Many above");
        };
        late.extend(all.extract_if(.., |p| is_late(p)));
        !all.is_empty()
    }
}

/// The calls this node made that have not completed.
#[derive(Default)]
pub(crate) struct InFlight {
    forwarded: BTreeMap<u64, Forwarded>,
    next_request: u64,
    /// Several calls can wait on one index (placed in different terms); the one whose term is
    /// applied succeeds, the others were replaced.
    placed: BTreeMap<LogIndex, Waiting>,
    next_deadline_scan: Instant,
    recent: VecDeque<(LogIndex, Term, Outcome)>,
}

impl InFlight {
    /// Records a call forwarded to `leader`; returns its request number.
    pub(crate) fn forwarded(
        &mut self,
        leader: NodeId,
        completion: Completion,
        deadline: Option<Instant>,
    ) -> u64 {
        let request = self.next_request;
        self.next_request += 1;
        self.forwarded.insert(
            request,
            Forwarded {
                completion,
                leader,
                deadline,
            },
        );
        request
    }

    /// The leader's answer to request `request`: the call's completion and deadline, if it
    /// still waits.
    pub(crate) fn answered(&mut self, request: u64) -> Option<(Completion, Option<Instant>)> {
        self.forwarded
            .remove(&request)
            .map(|f| (f.completion, f.deadline))
    }

    /// Waits for `index` to be applied with `term`; settles at once if it already was
    /// (`applied` is the node's applied index).
    pub(crate) fn place(
        &mut self,
        index: LogIndex,
        term: Term,
        completion: Completion,
        deadline: Option<Instant>,
        applied: LogIndex,
    ) -> Option<Settled> {
        if index > applied {
            let placement = Placement {
                term,
                completion,
                deadline,
            };
            match self.placed.entry(index) {
                Entry::Vacant(vacant) => {
                    vacant.insert(Waiting::One(placement));
                }
                Entry::Occupied(mut occupied) => occupied.get_mut().push(placement),
            }
            return None;
        }
        let outcome = match self.recent.iter().find(|(i, _, _)| *i == index) {
            Some((_, t, outcome)) if *t == term => outcome.clone(),
            Some(_) => Err(FailReason::Discarded),
            None => Err(FailReason::Timeout),
        };
        Some((completion, outcome))
    }

    /// The entry at `index` of `term` was applied with `outcome`: the calls it settles go to
    /// `settled`. Only an applied (so committed) entry settles a placed call: an entry missing
    /// from this node's log may still be committed by a later leader.
    pub(crate) fn applied(
        &mut self,
        index: LogIndex,
        term: Term,
        outcome: Outcome,
        settled: &mut Vec<Settled>,
    ) {
        let settle = |p: Placement| {
            let result = if p.term == term {
                outcome.clone()
            } else {
                Err(FailReason::Discarded)
            };
            (p.completion, result)
        };
        match self.placed.remove(&index) {
            None => {}
            Some(Waiting::One(placement)) => settled.push(settle(placement)),
            Some(Waiting::Many(all)) => settled.extend(all.into_iter().map(settle)),
        }
        self.recent.push_back((index, term, outcome));
        if self.recent.len() > RECENT_RESULTS_MAX {
            self.recent.pop_front();
        }
    }

    /// The leader is now `leader`: forwarded calls waiting on another one will never hear back.
    pub(crate) fn leader_changed(&mut self, leader: Option<NodeId>) -> Vec<Settled> {
        let lost: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, f)| Some(f.leader) != leader)
            .map(|(&r, _)| r)
            .collect();
        self.fail_forwarded(lost, &FailReason::LeaderChanged)
    }

    /// Fails calls whose deadline passed: the caller stops waiting, though a placed call may
    /// still be applied later.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Settled> {
        let late: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, f)| f.deadline.is_some_and(|d| d <= now))
            .map(|(&r, _)| r)
            .collect();
        let mut settled = self.fail_forwarded(late, &FailReason::Timeout);
        if now >= self.next_deadline_scan {
            self.next_deadline_scan = now + DEADLINE_SCAN_INTERVAL;
            // In place: a scan over 100 000 calls in flight allocates nothing unless some are
            // late.
            let mut late = Vec::new();
            self.placed
                .retain(|_, waiting| waiting.keep_on_time(now, &mut late));
            settled.extend(
                late.into_iter()
                    .map(|p| (p.completion, Err(FailReason::Timeout))),
            );
        }
        settled
    }

    fn fail_forwarded(&mut self, requests: Vec<u64>, reason: &FailReason) -> Vec<Settled> {
        requests
            .into_iter()
            .filter_map(|r| self.forwarded.remove(&r))
            .map(|f| (f.completion, Err(reason.clone())))
            .collect()
    }

    /// Every call still waiting, emptied out (the node is shutting down).
    pub(crate) fn drain(&mut self) -> Vec<Completion> {
        let placed = std::mem::take(&mut self.placed)
            .into_values()
            .flat_map(Waiting::into_vec)
            .map(|p| p.completion);
        let forwarded = std::mem::take(&mut self.forwarded)
            .into_values()
            .map(|f| f.completion);
        placed.chain(forwarded).collect()
    }

    /// A short summary for diagnostics.
    #[cfg(feature = "sim")]
    pub(crate) fn describe(&self) -> String {
        format!(
            "placed {:?} forwarded {}",
            self.placed.keys().take(3).collect::<Vec<_>>(),
            self.forwarded.len()
        )
    }
}

/// The most forwarded placements a leader remembers for answering duplicates.
const PLACED_FORWARDS_MAX: usize = 16_384;

/// On the leader: its answers to the last forwarded calls, in any term, by (follower,
/// session, request), so that a duplicated frame gets the first answer again: never a second
/// placement, never a refusal after a placement (`NotLeader` promises the call was not
/// placed), and never a placement after a refusal (a leader handing the leadership over
/// refuses calls for a while, then may lead on in the same term: a late copy of a refused
/// call must not be placed then).
#[derive(Debug, Default)]
pub(crate) struct PlacedForwards {
    by_key: BTreeMap<(NodeId, u64, u64), Answer>,
    order: VecDeque<(NodeId, u64, u64)>,
}

/// A leader's answer to a forwarded call: where it placed it, or why not.
pub(crate) type Answer = Result<(LogIndex, Term), Refusal>;

impl PlacedForwards {
    /// The answer given to a call forwarded before, in this term or an earlier one: a
    /// duplicate of its forward must get the same answer.
    pub(crate) fn get(&self, key: (NodeId, u64, u64)) -> Option<Answer> {
        self.by_key.get(&key).cloned()
    }

    /// Remembers an answer, forgetting the oldest beyond the limit.
    pub(crate) fn remember(&mut self, key: (NodeId, u64, u64), answer: Answer) {
        self.by_key.insert(key, answer);
        self.order.push_back(key);
        if self.order.len() > PLACED_FORWARDS_MAX
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_key.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::object::{Call, Nowhere, Submit};

    /// A completion and the call it completes.
    fn call() -> (Completion, Call<u8>) {
        let submit: Arc<dyn Submit> = Arc::new(Nowhere);
        Call::pending(&submit)
    }

    fn outcome(settled: Vec<Settled>) -> Vec<Outcome> {
        settled
            .into_iter()
            .map(|(completion, outcome)| {
                completion.complete(outcome.clone());
                outcome
            })
            .collect()
    }

    /// Two calls placed at one index in different terms: the applied term's succeeds, the
    /// other was replaced; a lone placement settles with its own index.
    #[test]
    fn calls_placed_at_one_index_settle_by_term() {
        let mut in_flight = InFlight::default();
        let none = LogIndex(0);
        for term in [1, 2] {
            let (completion, _call) = call();
            assert!(
                in_flight
                    .place(LogIndex(5), Term(term), completion, None, none)
                    .is_none()
            );
        }
        let (completion, _call) = call();
        assert!(
            in_flight
                .place(LogIndex(6), Term(2), completion, None, none)
                .is_none()
        );
        let mut settled = Vec::new();
        in_flight.applied(LogIndex(5), Term(2), Ok(vec![1]), &mut settled);
        assert_eq!(
            outcome(settled),
            vec![Err(FailReason::Discarded), Ok(vec![1])]
        );
        let mut settled = Vec::new();
        in_flight.applied(LogIndex(6), Term(2), Ok(vec![2]), &mut settled);
        assert_eq!(outcome(settled), vec![Ok(vec![2])]);
        assert!(in_flight.drain().is_empty());
    }

    /// The deadline scan fails the late calls, alone at their index or beside others, and
    /// keeps the rest waiting.
    #[test]
    fn the_deadline_scan_fails_only_late_calls() {
        let mut in_flight = InFlight::default();
        let none = LogIndex(0);
        let soon = Some(Instant::ZERO + Duration::from_secs(1));
        let later = Some(Instant::ZERO + Duration::from_secs(60));
        let placements = [
            (5, 1, soon),
            (5, 2, later),
            (6, 2, soon),
            (7, 2, later),
            (8, 2, None),
        ];
        for (index, term, deadline) in placements {
            let (completion, _call) = call();
            assert!(
                in_flight
                    .place(LogIndex(index), Term(term), completion, deadline, none)
                    .is_none()
            );
        }
        let late = in_flight.expire(Instant::ZERO + Duration::from_secs(2));
        assert_eq!(
            outcome(late),
            vec![Err(FailReason::Timeout), Err(FailReason::Timeout)]
        );
        let mut settled = Vec::new();
        for index in [5, 6, 7, 8] {
            in_flight.applied(LogIndex(index), Term(2), Ok(vec![]), &mut settled);
        }
        assert_eq!(
            settled.len(),
            3,
            "indices 5, 7 and 8 still had a call waiting"
        );
        drop(outcome(settled));
        assert!(in_flight.drain().is_empty());
    }

    /// A forwarded call answered once gets the same answer for every copy of its frame: a
    /// refused one is never placed by a late copy (the simulator's seed 16 at five nodes found
    /// one placed after a leader handing over had refused it, then led on), a placed one
    /// never refused.
    #[test]
    fn every_copy_of_a_forward_gets_the_first_answer() {
        let mut answers = PlacedForwards::default();
        let (refused, placed) = ((NodeId(1), 7, 1), (NodeId(1), 7, 2));
        answers.remember(refused, Err(Refusal::NotLeader));
        answers.remember(placed, Ok((LogIndex(4), Term(2))));
        assert_eq!(answers.get(refused), Some(Err(Refusal::NotLeader)));
        assert_eq!(answers.get(placed), Some(Ok((LogIndex(4), Term(2)))));
        assert_eq!(answers.get((NodeId(2), 7, 1)), None);
    }
}
