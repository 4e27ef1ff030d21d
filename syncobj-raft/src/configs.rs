//! The configurations a node's log holds, and which one is in force.
//!
//! A configuration takes effect on a node as soon as its entry is in the node's log, committed
//! or not (Raft thesis §4.1); if the entry is truncated, the previous configuration in the log
//! is in force again, or the one at the log's base. The base configuration is the snapshot's
//! (the membership in force at the last entry the snapshot covers) or, before any, the one given
//! to [`RaftNode::new`](super::RaftNode::new).

use super::membership::Membership;
use super::types::LogIndex;

/// The base configuration and every configuration entry after it, in log order.
#[derive(Clone, Debug)]
pub(crate) struct Configs {
    /// The configuration in force at the log's base.
    base: Membership,
    /// Configuration entries after the base: (index, membership), indexes increasing.
    entries: Vec<(LogIndex, Membership)>,
}

impl Configs {
    /// Only a base configuration, with no entry after it.
    pub(crate) fn new(base: Membership) -> Configs {
        Configs {
            base,
            entries: Vec::new(),
        }
    }

    /// The configuration in force: the latest entry's, else the base's.
    pub(crate) fn current(&self) -> &Membership {
        self.entries.last().map_or(&self.base, |(_, m)| m)
    }

    /// The index of the entry that set the configuration in force; zero for the base one.
    pub(crate) fn current_index(&self) -> LogIndex {
        self.entries.last().map_or(LogIndex::ZERO, |(i, _)| *i)
    }

    /// The configuration before the one in force, if the latest is an entry.
    pub(crate) fn previous(&self) -> Option<&Membership> {
        match self.entries.len() {
            0 => None,
            1 => Some(&self.base),
            n => Some(&self.entries[n - 2].1),
        }
    }

    /// The configuration in force once the log ends at `index` (at or after the base).
    pub(crate) fn at(&self, index: LogIndex) -> &Membership {
        self.entries
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.base, |(_, m)| m)
    }

    /// A configuration entry was appended at `index`, after every entry held.
    pub(crate) fn appended(&mut self, index: LogIndex, membership: Membership) {
        assert!(
            self.current_index() < index,
            "configuration entry {index} appended before {}",
            self.current_index()
        );
        self.entries.push((index, membership));
    }

    /// The log lost its entries from `from` on: their configurations no longer count.
    pub(crate) fn truncated_from(&mut self, from: LogIndex) {
        self.entries.retain(|(i, _)| *i < from);
    }

    /// The log's base moved to `index` (compaction): the configuration at it becomes the base
    /// one.
    pub(crate) fn compacted_to(&mut self, index: LogIndex) {
        self.base = self.at(index).clone();
        self.entries.retain(|(i, _)| *i > index);
    }

    /// The log was reset to a snapshot covering up to `index` whose configuration is
    /// `membership`; the entries after it stay only if the log kept them.
    pub(crate) fn installed(&mut self, index: LogIndex, membership: Membership, suffix_kept: bool) {
        self.base = membership;
        if suffix_kept {
            self.entries.retain(|(i, _)| *i > index);
        } else {
            self.entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Configs;
    use crate::membership::Membership;
    use crate::types::{LogIndex, NodeId};

    fn voters(n: u64) -> Membership {
        Membership::new((1..=n).map(NodeId), [])
    }

    /// Thesis §4.1: the latest entry is in force; truncating it brings back the one before;
    /// compaction folds the entries it covers into the base.
    #[test]
    fn latest_entry_rules_and_truncation_reverts() {
        let mut c = Configs::new(voters(1));
        assert_eq!(
            (c.current(), c.current_index()),
            (&voters(1), LogIndex::ZERO)
        );
        assert_eq!(c.previous(), None);
        c.appended(LogIndex(3), voters(2));
        c.appended(LogIndex(7), voters(3));
        assert_eq!((c.current(), c.current_index()), (&voters(3), LogIndex(7)));
        assert_eq!(c.previous(), Some(&voters(2)));
        assert_eq!(c.at(LogIndex(2)), &voters(1));
        assert_eq!(c.at(LogIndex(6)), &voters(2));
        c.truncated_from(LogIndex(7));
        assert_eq!(c.current(), &voters(2));
        assert_eq!(c.previous(), Some(&voters(1)));
        c.compacted_to(LogIndex(5));
        assert_eq!(
            (c.current(), c.current_index()),
            (&voters(2), LogIndex::ZERO)
        );
        c.appended(LogIndex(9), voters(4));
        c.installed(LogIndex(8), voters(5), true);
        assert_eq!(c.current(), &voters(4), "a kept suffix keeps its entries");
        c.installed(LogIndex(10), voters(5), false);
        assert_eq!(c.current(), &voters(5));
    }

    /// Configuration entries come in log order.
    #[test]
    #[should_panic(expected = "appended before")]
    fn entries_out_of_order_panic() {
        let mut c = Configs::new(voters(1));
        c.appended(LogIndex(4), voters(2));
        c.appended(LogIndex(4), voters(3));
    }
}
