//! The node's in-memory view of the replicated log, with its persistence and apply cursors.

use std::collections::VecDeque;

use super::types::{Entry, LogIndex, Term};

/// The log as the Raft core sees it.
///
/// Cursors, always in this order: `applied <= committed`, `applied <= persisted <= last_index`,
/// `handed_out <= last_index`. Entries after `handed_out` still have to be given to the driver for
/// persisting; entries up to `persisted` are durable.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// Index of the entry just before `entries[0]`; zero until snapshots exist.
    base_index: LogIndex,
    /// Term of that entry.
    base_term: Term,
    entries: VecDeque<Entry>,
    /// The last index handed to the driver for persisting.
    handed_out: LogIndex,
    /// The last index the driver reported durable.
    persisted: LogIndex,
    committed: LogIndex,
    applied: LogIndex,
}

impl RaftLog {
    /// A log restored from durable storage: every entry in it is persisted.
    pub(crate) fn restored(entries: Vec<Entry>, committed: LogIndex) -> RaftLog {
        let last = entries.last().map_or(LogIndex::ZERO, |e| e.index);
        RaftLog {
            base_index: LogIndex::ZERO,
            base_term: Term(0),
            entries: entries.into(),
            handed_out: last,
            persisted: last,
            committed,
            applied: LogIndex::ZERO,
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.entries.back().map_or(self.base_index, |e| e.index)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.back().map_or(self.base_term, |e| e.term)
    }

    pub(crate) fn committed(&self) -> LogIndex {
        self.committed
    }

    pub(crate) fn applied(&self) -> LogIndex {
        self.applied
    }

    pub(crate) fn persisted(&self) -> LogIndex {
        self.persisted
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The term of the entry at `index`, or `None` if the log holds no such entry.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.get(index).map(|e| e.term)
    }

    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.base_index.0 + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Whether the log holds an entry at `index` with `term` (Raft paper §5.3 consistency check).
    pub(crate) fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up-to-date as this one
    /// (Raft paper §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Entries from `from` on, as many as fit in `max_bytes` but at least one if any exist.
    pub(crate) fn entries_from(&self, from: LogIndex, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut size = 0;
        let mut index = from;
        while let Some(entry) = self.get(index) {
            size += entry.size_bytes();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(entry.clone());
            index = index.next();
        }
        out
    }

    /// The highest index at or below `at_most` whose term is at most `term`, or the base.
    /// Used for the rejection hint of an append.
    pub(crate) fn last_index_with_term_at_most(&self, at_most: LogIndex, term: Term) -> LogIndex {
        let mut index = at_most.min(self.last_index());
        while index > self.base_index {
            match self.term(index) {
                Some(t) if t <= term => return index,
                _ => index = index.prev(),
            }
        }
        self.base_index
    }

    /// Appends one entry at the end.
    pub(crate) fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "log entries must be contiguous"
        );
        assert!(
            entry.term >= self.last_term(),
            "log terms must not decrease"
        );
        self.entries.push_back(entry);
    }

    /// Removes every entry from `from` on. Never called at or below the commit index.
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.committed,
            "truncating committed entry {from} (commit {})",
            self.committed
        );
        let keep = usize::try_from(from.0 - self.base_index.0 - 1).expect("log length fits usize");
        self.entries.truncate(keep);
        let last = self.last_index();
        self.handed_out = self.handed_out.min(last);
        self.persisted = self.persisted.min(last);
    }

    /// Raises the commit index; it never goes down.
    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.committed {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "commit {index} beyond last index {}",
            self.last_index()
        );
        self.committed = index;
        true
    }

    /// The entries not yet handed out for persisting; marks them handed out.
    pub(crate) fn take_unpersisted(&mut self) -> Vec<Entry> {
        let from = self.handed_out.next();
        let mut out = Vec::new();
        let mut index = from;
        while let Some(entry) = self.get(index) {
            out.push(entry.clone());
            index = index.next();
        }
        self.handed_out = self.last_index();
        out
    }

    pub(crate) fn has_unpersisted(&self) -> bool {
        self.handed_out < self.last_index()
    }

    /// Records that entries up to `index` with `term` are durable, unless they were replaced.
    pub(crate) fn persisted_to(&mut self, index: LogIndex, term: Term) {
        if index > self.persisted && index <= self.handed_out && self.matches(index, term) {
            self.persisted = index;
        }
    }

    /// Committed, durable entries not yet handed out for applying, at most `max`; marks them
    /// applied.
    pub(crate) fn take_applicable(&mut self, max: usize) -> Vec<Entry> {
        let upto = self.applicable_upto();
        let mut out = Vec::new();
        while self.applied < upto && out.len() < max {
            let next = self.applied.next();
            out.push(
                self.get(next)
                    .expect("applicable entries are in the log")
                    .clone(),
            );
            self.applied = next;
        }
        out
    }

    pub(crate) fn has_applicable(&self) -> bool {
        self.applied < self.applicable_upto()
    }

    fn applicable_upto(&self) -> LogIndex {
        self.committed.min(self.persisted)
    }

    /// Every entry, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}
