//! What the leader knows about each follower's log, and how it paces replication to it.

use std::collections::VecDeque;

use super::types::{Instant, LogIndex};

/// The leader's view of one follower.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// The highest index known to match the leader's log (and be durable on the follower).
    pub(crate) match_index: LogIndex,
    /// The next index to send.
    pub(crate) next_index: LogIndex,
    pub(crate) mode: Mode,
    /// When the follower last answered in this term; drives check-quorum.
    pub(crate) last_heard: Instant,
}

/// How the leader sends to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The follower's position is unknown: send one append, wait for the answer or the next
    /// heartbeat, back off on rejection.
    Probe {
        /// An append was sent and is unanswered.
        waiting: bool,
    },
    /// The follower is known to match: stream appends optimistically, at most a window of them
    /// unanswered. Each element is the last index of one append in flight.
    Replicate { inflight: VecDeque<LogIndex> },
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex, now: Instant) -> Progress {
        Progress {
            match_index: LogIndex::ZERO,
            next_index,
            mode: Mode::Probe { waiting: false },
            last_heard: now,
        }
    }

    /// Whether another append carrying entries may go out now.
    pub(crate) fn can_send(&self, max_inflight: usize) -> bool {
        match &self.mode {
            Mode::Probe { waiting } => !waiting,
            Mode::Replicate { inflight } => inflight.len() < max_inflight,
        }
    }

    /// Records an append carrying entries up to `last`.
    pub(crate) fn sent(&mut self, last: LogIndex) {
        match &mut self.mode {
            Mode::Probe { waiting } => *waiting = true,
            Mode::Replicate { inflight } => {
                inflight.push_back(last);
                self.next_index = last.next();
            }
        }
    }

    /// Records that the follower matches up to `index`. Returns whether anything changed.
    pub(crate) fn accepted(&mut self, index: LogIndex) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
        }
        match &mut self.mode {
            Mode::Replicate { inflight } => {
                while inflight.front().is_some_and(|&i| i <= index) {
                    inflight.pop_front();
                }
                self.next_index = self.next_index.max(self.match_index.next());
                advanced
            }
            Mode::Probe { .. } => {
                self.next_index = self.match_index.next();
                self.mode = Mode::Replicate {
                    inflight: VecDeque::new(),
                };
                true
            }
        }
    }

    /// Handles a rejection of the append whose previous index was `rejected`. Returns whether it
    /// was current (stale rejections change nothing).
    pub(crate) fn rejected(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        match self.mode {
            Mode::Replicate { .. } => {
                if rejected <= self.match_index {
                    return false;
                }
                self.next_index = self.match_index.next();
            }
            Mode::Probe { .. } => {
                if self.next_index.prev() != rejected {
                    return false;
                }
                self.next_index = rejected.min(hint.next()).max(self.match_index.next());
            }
        }
        self.mode = Mode::Probe { waiting: false };
        true
    }

    /// A heartbeat is due: a probe that went unanswered may be sent again.
    pub(crate) fn heartbeat_due(&mut self) {
        if let Mode::Probe { waiting } = &mut self.mode {
            *waiting = false;
        }
    }
}
