//! One simulated node: the real [`RaftNode`], its durable state, and the state machine it feeds.

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;

use crate::raft::{
    Entry, HardState, LogIndex, LogPosition, LogReset, Membership, NodeId, RaftNode, Term,
};

/// A durable snapshot: the state machine (the applied entries, in order) up to `point`, and the
/// membership in force there, stored beside it as a driver stores it in the snapshot's metadata.
#[derive(Clone, Debug)]
pub(crate) struct SimSnapshot {
    /// The last entry it covers.
    pub(crate) point: LogPosition,
    /// The applied entries `1..=point.index`; serialized only when sent.
    pub(crate) state: Rc<Vec<Entry>>,
    /// The membership in force at `point`: what the node handed over when it compacted, or what
    /// the leader sent with the snapshot. `None` only between receiving and installing it.
    pub(crate) membership: Option<Membership>,
}

impl SimSnapshot {
    /// The snapshot's byte stream, as a driver would send it.
    pub(crate) fn encode(&self) -> Bytes {
        Bytes::from(rmp_serde::to_vec(&*self.state).expect("entries serialize"))
    }

    /// The state machine a received byte stream holds.
    pub(crate) fn decode(point: LogPosition, bytes: &[u8]) -> Result<SimSnapshot, String> {
        let state: Vec<Entry> = rmp_serde::from_slice(bytes)
            .map_err(|e| format!("snapshot {point} undecodable: {e}"))?;
        Ok(SimSnapshot {
            point,
            state: Rc::new(state),
            membership: None,
        })
    }
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durable {
    pub(crate) hard_state: HardState,
    /// The latest snapshot.
    pub(crate) snapshot: Option<SimSnapshot>,
    /// The journal: contiguous entries. They start right after the snapshot, except between a
    /// snapshot install and the log reset that follows it.
    pub(crate) log: Vec<Entry>,
}

impl Durable {
    /// The last entry the snapshot covers, or zero.
    pub(crate) fn base(&self) -> LogPosition {
        self.snapshot
            .as_ref()
            .map_or(LogPosition::ZERO, |s| s.point)
    }

    /// The index of the last durable entry, the snapshot's included.
    pub(crate) fn last_index(&self) -> LogIndex {
        let base = self.base().index;
        self.log.last().map_or(base, |e| e.index.max(base))
    }

    /// The term of the entry at `index`, if the journal or the snapshot holds it.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        let base = self.base();
        if index == base.index {
            return Some(base.term);
        }
        let first = self.log.first()?.index;
        let offset = usize::try_from(index.0.checked_sub(first.0)?).ok()?;
        self.log.get(offset).map(|e| e.term)
    }

    /// Writes `entries`, first dropping every entry at or after the first one's index.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let start = self
            .log
            .first()
            .map_or(self.base().index.next(), |e| e.index);
        let keep = usize::try_from(first.index.0.saturating_sub(start.0)).expect("fits usize");
        self.log.truncate(keep);
        self.log.extend_from_slice(entries);
    }

    /// A snapshot of the applied state at `point` was written: drop the journal up to it.
    pub(crate) fn compact(&mut self, snapshot: SimSnapshot) {
        let index = snapshot.point.index;
        self.snapshot = Some(snapshot);
        self.log.retain(|e| e.index > index);
    }

    /// Applies a [`LogReset`] after a snapshot install.
    pub(crate) fn reset_log(&mut self, reset: LogReset) {
        let index = reset.snapshot.index;
        if reset.suffix_kept {
            self.log.retain(|e| e.index > index);
        } else {
            self.log.clear();
        }
    }
}

/// A snapshot being received, as the driver writes it.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) snapshot: LogPosition,
    pub(crate) bytes: Vec<u8>,
}

/// A simulated node, running or crashed.
#[derive(Debug)]
pub(crate) struct SimNode {
    /// `None` while crashed.
    pub(crate) raft: Option<RaftNode>,
    pub(crate) durable: Durable,
    /// The node's state machine: the entries applied, from index 1 (a snapshot's entries
    /// first, after a restart or an install).
    pub(crate) applied: Vec<Entry>,
    /// How many times the node started.
    pub(crate) starts: u64,
    /// The snapshot being received (volatile).
    pub(crate) incoming: Option<Incoming>,
    /// A received snapshot to install, and how many more inputs of the node to wait before
    /// (volatile).
    pub(crate) pending_install: Option<(SimSnapshot, u32)>,
    /// The snapshot streams being sent, per follower: "open files" (volatile).
    pub(crate) serving: BTreeMap<NodeId, (LogPosition, Bytes)>,
    /// The membership the node is started with, as a driver is given its partners: the one in
    /// force until its snapshot or its log names another.
    pub(crate) given: Membership,
}

impl SimNode {
    pub(crate) fn new(given: Membership) -> SimNode {
        SimNode {
            given,
            raft: None,
            durable: Durable::default(),
            applied: Vec::new(),
            starts: 0,
            incoming: None,
            pending_install: None,
            serving: BTreeMap::new(),
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    /// Loses everything volatile.
    pub(crate) fn crash(&mut self) -> bool {
        self.applied.clear();
        self.incoming = None;
        self.pending_install = None;
        self.serving.clear();
        self.raft.take().is_some()
    }
}
