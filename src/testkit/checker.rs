//! The search: Wing and Gong's backtracking over a history's operations, with Lowe's memo of
//! the (operations linearized, state) pairs already explored, one partition at a time.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::{History, Model, OpId, Operation};

/// Checks histories against a [`Model`], within a bound on the work done.
///
/// The work is counted in steps: one step tries one operation at one point of the search, or
/// takes one back. Each step costs about one [`Model::step`] and a hash of the model's state
/// and of the operations placed; the memo of explored configurations holds at most one entry
/// per step, a state and a bit per operation from the first one not yet placed (operations are
/// numbered in the history's order, so record them in the order they are invoked).
///
/// ```
/// use syncobj::testkit::{Checker, History, Register, RegisterInput, RegisterOutput, Verdict};
///
/// # fn main() -> Result<(), syncobj::testkit::HistoryError> {
/// let mut history = History::new();
/// let op = history.invoke(1, RegisterInput::Read, 0);
/// history.complete(op, RegisterOutput::Read(0), 1)?;
/// let checker = Checker::new(Register::new(0)).budget(10_000);
/// assert_eq!(checker.check(&history), Verdict::Linearizable);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Checker<M> {
    model: M,
    budget: u64,
    shrink_budget: u64,
}

impl<M: Model> Checker<M> {
    /// The steps a check may take by default before it answers [`Verdict::Unknown`].
    pub const BUDGET_DEFAULT: u64 = 1_000_000;
    /// The steps spent by default on making a failing excerpt minimal.
    pub const SHRINK_BUDGET_DEFAULT: u64 = 1_000_000;

    /// A checker against `model`, with the default budgets.
    pub fn new(model: M) -> Self {
        Checker {
            model,
            budget: Self::BUDGET_DEFAULT,
            shrink_budget: Self::SHRINK_BUDGET_DEFAULT,
        }
    }

    /// At most `steps` steps for a whole check, over all partitions; past them the check
    /// answers [`Verdict::Unknown`].
    pub fn budget(mut self, steps: u64) -> Self {
        self.budget = steps;
        self
    }

    /// At most `steps` steps for shrinking a failing excerpt; past them the excerpt is reported
    /// as it is, not [minimal](Excerpt::is_minimal).
    pub fn shrink_budget(mut self, steps: u64) -> Self {
        self.shrink_budget = steps;
        self
    }

    /// Whether `history` is linearizable: whether its operations can be put in one order,
    /// consistent with their times, in which each is a valid step of the model.
    ///
    /// An operation whose outcome is unknown (or still pending) may take effect at any point
    /// after its start, or not at all. Partitions are checked one by one, smallest first; the
    /// first that fails is reported with a minimal excerpt.
    pub fn check(&self, history: &History<M::Input, M::Output>) -> Verdict<M::Input, M::Output> {
        let ops = history.operations();
        if let Some(index) = ops
            .iter()
            .position(|op| op.end().is_some_and(|end| end < op.start))
        {
            return Verdict::NotLinearizable(Excerpt::new(ops, vec![index], true));
        }
        let mut partitions: HashMap<u64, Vec<usize>> = HashMap::new();
        for (index, op) in ops.iter().enumerate() {
            partitions
                .entry(self.model.partition(&op.input))
                .or_default()
                .push(index);
        }
        let mut partitions: Vec<Vec<usize>> = partitions.into_values().collect();
        partitions.sort_by_key(|partition| (partition.len(), partition.first().copied()));
        let mut budget = Budget { left: self.budget };
        for partition in &partitions {
            let relaxed = vec![false; partition.len()];
            match search(&self.model, ops, partition, &relaxed, &mut budget) {
                Search::Linearizable => {}
                Search::Exhausted => return Verdict::Unknown { steps: self.budget },
                Search::Fails { cut } => return Verdict::NotLinearizable(self.shrink(ops, cut)),
            }
        }
        Verdict::Linearizable
    }

    /// Relaxes operations of `cut` (a set that is not linearizable) while it stays not
    /// linearizable: a relaxed operation may take effect within its interval with any output,
    /// or not at all. Chunks of halving size first, then single operations; relaxing more
    /// only makes a set easier to linearize, so one pass of single operations leaves each of
    /// the others needed. The excerpt is what is not relaxed.
    fn shrink(
        &self,
        ops: &[Operation<M::Input, M::Output>],
        cut: Vec<usize>,
    ) -> Excerpt<M::Input, M::Output> {
        let mut total = Budget {
            left: self.shrink_budget,
        };
        // An operation of unknown outcome is relaxed from the start.
        let mut relaxed: Vec<bool> = cut
            .iter()
            .map(|&index| ops[index].end().is_none())
            .collect();
        let mut chunk = (cut.len() / 2).max(1);
        let mut minimal = true;
        let excerpt = |relaxed: &[bool], minimal| {
            let kept = cut.iter().zip(relaxed).filter(|&(_, &relaxed)| !relaxed);
            Excerpt::new(ops, kept.map(|(&index, _)| index).collect(), minimal)
        };
        loop {
            let kept: Vec<usize> = (0..cut.len()).filter(|&local| !relaxed[local]).collect();
            for group in kept.chunks(chunk) {
                if total.left == 0 {
                    return excerpt(&relaxed, false);
                }
                let mut candidate = relaxed.clone();
                for &local in group {
                    candidate[local] = true;
                }
                // One candidate may not take more than a whole check may.
                let mut budget = Budget {
                    left: total.left.min(self.budget),
                };
                let outcome = search(&self.model, ops, &cut, &candidate, &mut budget);
                total.left -= total.left.min(self.budget) - budget.left;
                match outcome {
                    Search::Fails { .. } => relaxed = candidate,
                    Search::Linearizable => {}
                    Search::Exhausted => minimal &= group.len() > 1,
                }
            }
            if chunk == 1 {
                return excerpt(&relaxed, minimal);
            }
            chunk = (chunk / 2).max(1);
        }
    }
}

/// Checks `history` against `model` with the default budgets (see [`Checker`]).
pub fn check<M: Model>(
    model: M,
    history: &History<M::Input, M::Output>,
) -> Verdict<M::Input, M::Output> {
    Checker::new(model).check(history)
}

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<I, O> {
    /// The history is linearizable.
    Linearizable,
    /// The history is not linearizable; the excerpt alone is not either.
    NotLinearizable(Excerpt<I, O>),
    /// The budget ran out before an answer.
    Unknown {
        /// The budget spent.
        steps: u64,
    },
}

impl<I, O> Verdict<I, O> {
    /// Whether the history was found linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }

    /// The failing excerpt, if the history was found not linearizable.
    pub fn excerpt(&self) -> Option<&Excerpt<I, O>> {
        match self {
            Verdict::NotLinearizable(excerpt) => Some(excerpt),
            Verdict::Linearizable | Verdict::Unknown { .. } => None,
        }
    }
}

impl<I: fmt::Debug, O: fmt::Debug> fmt::Display for Verdict<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::NotLinearizable(excerpt) => write!(f, "not linearizable: {excerpt}"),
            Verdict::Unknown { steps } => {
                write!(f, "unknown: the budget of {steps} steps ran out")
            }
        }
    }
}

/// Operations of a history that are not linearizable on their own, from the model's initial
/// state, and that are what makes the history fail.
///
/// It is taken from one partition: first the operations invoked before the point where the
/// search could go no further (the latest completion that no order of the operations before it
/// could reach), which are not linearizable alone; then as many of them as possible are
/// *relaxed* — taken to have returned anything, or not to have taken effect at all (but if it
/// did, within its recorded interval) — while the set stays not linearizable. The excerpt is
/// the operations not relaxed: whatever the others returned, these contradict each other.
///
/// An operation of unknown outcome is more relaxed already, so it is never part of an excerpt.
///
/// When [minimal](Excerpt::is_minimal), relaxing any one more of its operations makes the set
/// linearizable. Relaxing rather than removing keeps an innocent operation out: without the
/// write it saw, a correct read would fail on its own. Minimal does not mean smallest: another,
/// smaller excerpt may exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excerpt<I, O> {
    operations: Vec<(OpId, Operation<I, O>)>,
    minimal: bool,
}

impl<I: Clone, O: Clone> Excerpt<I, O> {
    fn new(ops: &[Operation<I, O>], mut indices: Vec<usize>, minimal: bool) -> Self {
        indices.sort_by_key(|&index| (ops[index].start, index));
        let operations = indices
            .into_iter()
            .map(|index| (OpId(index), ops[index].clone()))
            .collect();
        Excerpt {
            operations,
            minimal,
        }
    }
}

impl<I, O> Excerpt<I, O> {
    /// The operations, by start time, with their places in the history.
    pub fn operations(&self) -> &[(OpId, Operation<I, O>)] {
        &self.operations
    }

    /// The operations' places in the history, by start time.
    pub fn ids(&self) -> Vec<OpId> {
        self.operations.iter().map(|(id, _)| *id).collect()
    }

    /// Whether relaxing any one more of its operations makes the set linearizable (false when
    /// the shrink budget ran out first).
    pub fn is_minimal(&self) -> bool {
        self.minimal
    }
}

impl<I: fmt::Debug, O: fmt::Debug> fmt::Display for Excerpt<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.minimal {
            "minimal"
        } else {
            "not minimal"
        };
        write!(f, "{} operations ({kind})", self.operations.len())?;
        for (id, op) in &self.operations {
            write!(f, "\n  {id}: {op}")?;
        }
        Ok(())
    }
}

/// Steps left to a search.
struct Budget {
    left: u64,
}

impl Budget {
    /// Takes one step; false if none is left.
    fn take(&mut self) -> bool {
        let Some(left) = self.left.checked_sub(1) else {
            return false;
        };
        self.left = left;
        true
    }
}

/// How a search of one set of operations ended.
enum Search {
    Linearizable,
    /// Not linearizable; `cut` (indices into the history) is not linearizable either: the
    /// operations invoked before the latest completion the search stopped at.
    Fails {
        cut: Vec<usize>,
    },
    Exhausted,
}

/// The operations placed so far, as a bit set kept short for the memo: operations are
/// numbered in the order they were invoked, so those long done form a prefix of whole words
/// that the key counts rather than copies.
struct Placed {
    words: Vec<u64>,
    /// The words before this one are all ones.
    full: usize,
    /// The words from this one on are all zeros.
    end: usize,
}

impl Placed {
    fn new(len: usize) -> Self {
        Placed {
            words: vec![0; len.div_ceil(64)],
            full: 0,
            end: 0,
        }
    }

    fn insert(&mut self, local: usize) {
        let word = local / 64;
        self.words[word] |= 1 << (local % 64);
        self.end = self.end.max(word + 1);
        while self.full < self.words.len() && self.words[self.full] == u64::MAX {
            self.full += 1;
        }
    }

    fn remove(&mut self, local: usize) {
        let word = local / 64;
        self.words[word] &= !(1 << (local % 64));
        self.full = self.full.min(word);
        while self.end > 0 && self.words[self.end - 1] == 0 {
            self.end -= 1;
        }
    }

    /// The set in few words: how many leading words are full, and the words after them.
    fn key(&self) -> (usize, Vec<u64>) {
        let rest = self
            .words
            .get(self.full..self.end.max(self.full))
            .unwrap_or_default();
        (self.full, rest.to_vec())
    }
}

/// No node: the end of the event list.
const NIL: usize = usize::MAX;
/// The list's head, before the first event.
const HEAD: usize = 0;

/// The events of a search (each operation's invocation, and its completion if known) in time
/// order, as a doubly linked list from which a linearized operation's events are lifted and
/// put back in the reverse order.
struct Events {
    prev: Vec<usize>,
    next: Vec<usize>,
    /// The operation (index into the searched subset) of each node; the head's is unused.
    op: Vec<usize>,
    /// Whether each node is an invocation.
    is_call: Vec<bool>,
    /// Each operation's invocation node.
    call: Vec<usize>,
    /// Each operation's completion node, if it has one.
    ret: Vec<Option<usize>>,
}

impl Events {
    fn new<I, O>(ops: &[Operation<I, O>], subset: &[usize]) -> Self {
        // Invocations sort before completions at the same time: equal times overlap.
        let mut sorted: Vec<(u64, u8, usize)> = Vec::with_capacity(subset.len() * 2);
        for (local, &index) in subset.iter().enumerate() {
            sorted.push((ops[index].start, 0, local));
            if let Some(end) = ops[index].end() {
                sorted.push((end, 1, local));
            }
        }
        sorted.sort_unstable();
        let nodes = sorted.len() + 1;
        let mut events = Events {
            prev: (0..nodes).map(|node| node.wrapping_sub(1)).collect(),
            next: (1..=nodes)
                .map(|node| if node == nodes { NIL } else { node })
                .collect(),
            op: vec![0; nodes],
            is_call: vec![false; nodes],
            call: vec![NIL; subset.len()],
            ret: vec![None; subset.len()],
        };
        for (position, &(_, kind, local)) in sorted.iter().enumerate() {
            let node = position + 1;
            events.op[node] = local;
            events.is_call[node] = kind == 0;
            if kind == 0 {
                events.call[local] = node;
            } else {
                events.ret[local] = Some(node);
            }
        }
        events
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    /// Puts back a node unlinked last, its own links untouched since.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }

    fn lift(&mut self, local: usize) {
        self.unlink(self.call[local]);
        if let Some(ret) = self.ret[local] {
            self.unlink(ret);
        }
    }

    fn unlift(&mut self, local: usize) {
        if let Some(ret) = self.ret[local] {
            self.relink(ret);
        }
        self.relink(self.call[local]);
    }
}

/// Searches for a linearization of the operations `subset` (indices into `ops`, all with an
/// end at or after their start), where those `relaxed` (by place in `subset`) may return
/// anything, or be left out.
fn search<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    subset: &[usize],
    relaxed: &[bool],
    budget: &mut Budget,
) -> Search {
    let mut events = Events::new(ops, subset);
    // An operation is determinate if its completion is known and kept: it must be placed.
    let determinate = |local: usize| is_determinate(ops, subset, relaxed, local);
    let mut remaining = (0..subset.len())
        .filter(|&local| determinate(local))
        .count();
    let mut linearized = Placed::new(subset.len());
    let mut seen: HashSet<(usize, Vec<u64>, M::State)> = HashSet::new();
    // What was placed (or, if the flag says so, left out), and the state before it.
    let mut stack: Vec<(usize, M::State, bool)> = Vec::new();
    // The completion at `entry` was just put back: do not leave its operation out again.
    let mut no_skip = false;
    let mut state = model.init();
    let mut entry = events.next[HEAD];
    // The latest completion node the search had to stop at.
    let mut deepest = HEAD;
    loop {
        // The operations left out are those of unknown outcome: they never took effect.
        if remaining == 0 {
            return Search::Linearizable;
        }
        if !budget.take() {
            return Search::Exhausted;
        }
        if entry != NIL && events.is_call[entry] {
            let local = events.op[entry];
            let op = &ops[subset[local]];
            let output = if determinate(local) {
                op.output()
            } else {
                None
            };
            // An operation of unknown outcome that leaves the state as it is changes nothing
            // where it is placed: leaving it out is the same.
            let step = model
                .step(&state, &op.input, output)
                .filter(|next| determinate(local) || *next != state);
            if let Some(next) = step {
                linearized.insert(local);
                let (full, rest) = linearized.key();
                if seen.insert((full, rest, next.clone())) {
                    stack.push((local, std::mem::replace(&mut state, next), false));
                    if determinate(local) {
                        remaining -= 1;
                    }
                    events.lift(local);
                    entry = events.next[HEAD];
                    continue;
                }
                linearized.remove(local);
            }
            entry = events.next[entry];
            continue;
        }
        // A completion (never the list's end while an operation with one is left): the
        // operation it ends cannot come later. A relaxed one may be left out; otherwise take
        // back the last one placed.
        if entry != NIL && !no_skip && relaxed[events.op[entry]] {
            let local = events.op[entry];
            linearized.insert(local);
            let (full, rest) = linearized.key();
            if seen.insert((full, rest, state.clone())) {
                stack.push((local, state.clone(), true));
                events.lift(local);
                entry = events.next[HEAD];
                continue;
            }
            linearized.remove(local);
        }
        no_skip = false;
        deepest = deepest.max(if entry == NIL { events.op.len() } else { entry });
        let Some((local, previous, skipped)) = stack.pop() else {
            let cut = subset
                .iter()
                .enumerate()
                .filter(|&(local, _)| events.call[local] < deepest)
                .map(|(_, &index)| index)
                .collect();
            return Search::Fails { cut };
        };
        linearized.remove(local);
        state = previous;
        if determinate(local) {
            remaining += 1;
        }
        events.unlift(local);
        match events.ret[local].filter(|_| skipped) {
            // Left out at its completion: both choices there are explored.
            Some(ret) => {
                entry = ret;
                no_skip = true;
            }
            None => entry = events.next[events.call[local]],
        }
    }
}

/// Whether the operation at `local` in `subset` has a completion that the search must place
/// (known, and not relaxed).
fn is_determinate<I, O>(
    ops: &[Operation<I, O>],
    subset: &[usize],
    relaxed: &[bool],
    local: usize,
) -> bool {
    !relaxed[local] && ops[subset[local]].end().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Outcome;

    /// Equal sets have equal keys, whatever the order of insertions and removals; different
    /// sets different keys.
    #[test]
    fn placed_keys_follow_the_set() {
        let mut forward = Placed::new(200);
        let mut backward = Placed::new(200);
        for local in 0..150 {
            forward.insert(local);
        }
        for local in (0..150).rev() {
            backward.insert(local);
        }
        assert_eq!(forward.key(), backward.key());
        assert_eq!(forward.key().0, 2);
        forward.remove(3);
        assert_ne!(forward.key(), backward.key());
        assert_eq!(forward.key().0, 0);
        backward.remove(3);
        assert_eq!(forward.key(), backward.key());
        forward.insert(3);
        for local in 0..150 {
            backward.remove(local);
        }
        assert_eq!(backward.key(), (0, Vec::new()));
        for local in 0..150 {
            forward.remove(local);
        }
        assert_eq!(forward.key(), backward.key());
    }

    /// Lifting operations and putting them back in the reverse order restores the list.
    #[test]
    fn events_lifted_and_put_back() {
        let ops: Vec<Operation<u8, u8>> = (0..4)
            .map(|index| Operation {
                client: 0,
                input: index,
                start: u64::from(index),
                outcome: if index == 2 {
                    Outcome::Unknown
                } else {
                    Outcome::Returned {
                        output: 0,
                        end: u64::from(index) + 2,
                    }
                },
            })
            .collect();
        let subset = [0, 1, 2, 3];
        let mut events = Events::new(&ops, &subset);
        let order = |events: &Events| {
            let mut order = Vec::new();
            let mut node = events.next[HEAD];
            while node != NIL {
                order.push((events.op[node], events.is_call[node]));
                node = events.next[node];
            }
            order
        };
        let before = order(&events);
        // Calls at 0, 1, 2, 3; completions at 2 (op 0), 3 (op 1) and 5 (op 3), none for op 2.
        assert_eq!(
            before,
            [
                (0, true),
                (1, true),
                (2, true),
                (0, false),
                (3, true),
                (1, false),
                (3, false)
            ]
        );
        events.lift(1);
        events.lift(0);
        events.lift(2);
        assert_eq!(order(&events), [(3, true), (3, false)]);
        events.unlift(2);
        events.unlift(0);
        events.unlift(1);
        assert_eq!(order(&events), before);
    }
}
