//! One simulated node: the real [`RaftNode`], its durable state, and the state machine it feeds.

use crate::raft::{Entry, HardState, LogIndex, RaftNode};

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durable {
    pub(crate) hard_state: HardState,
    pub(crate) log: Vec<Entry>,
}

impl Durable {
    pub(crate) fn last_index(&self) -> LogIndex {
        self.log.last().map_or(LogIndex::ZERO, |e| e.index)
    }

    /// Writes `entries`, first dropping every entry at or after the first one's index.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let keep = usize::try_from(first.index.0 - 1).expect("indexes fit usize");
        self.log.truncate(keep);
        self.log.extend_from_slice(entries);
    }
}

/// A simulated node, running or crashed.
#[derive(Debug)]
pub(crate) struct SimNode {
    /// `None` while crashed.
    pub(crate) raft: Option<RaftNode>,
    pub(crate) durable: Durable,
    /// The entries applied since the last start, in order: the node's state machine.
    pub(crate) applied: Vec<Entry>,
    /// How many times the node started.
    pub(crate) starts: u64,
}

impl SimNode {
    pub(crate) fn is_up(&self) -> bool {
        self.raft.is_some()
    }
}
