//! The node's in-memory view of the replicated log, with its persistence and apply cursors.

use std::collections::VecDeque;

use super::types::{Entry, LogIndex, LogPosition, Term};

/// The log as the Raft core sees it.
///
/// Cursors, always in this order: `base <= applied <= committed`,
/// `applied <= persisted <= last_index`, `base <= handed_out <= last_index`. Entries after
/// `handed_out` still have to be given to the driver for persisting; entries up to `persisted`
/// are durable. Entries up to the base are covered by a durable snapshot and no longer held
/// (Raft paper §7): the log holds `base + 1 ..= last_index`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// Index of the entry just before `entries[0]`: the last entry the latest snapshot covers,
    /// zero before any snapshot.
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
    /// Set when the driver can apply nothing more (its code is too old for the log).
    apply_held: bool,
}

impl RaftLog {
    /// A log restored from durable storage, without a snapshot: every entry in it is persisted.
    #[cfg(test)]
    pub(crate) fn restored(entries: Vec<Entry>, committed: LogIndex) -> RaftLog {
        RaftLog::restored_after(LogPosition::ZERO, entries, committed)
    }

    /// A log restored from a snapshot covering up to `base` and the durable `entries` after it
    /// (checked by the caller to follow `base` contiguously). The state machine holds the
    /// snapshot, so applying resumes after the base.
    pub(crate) fn restored_after(
        base: LogPosition,
        entries: Vec<Entry>,
        committed: LogIndex,
    ) -> RaftLog {
        debug_assert!(
            entries.first().is_none_or(|e| e.index == base.index.next()),
            "restored entries follow the base"
        );
        let last = entries.last().map_or(base.index, |e| e.index);
        assert!(
            base.index <= committed && committed <= last,
            "restored commit {committed} outside [{}, {last}]",
            base.index
        );
        RaftLog {
            base_index: base.index,
            base_term: base.term,
            entries: entries.into(),
            handed_out: last,
            persisted: last,
            committed,
            applied: base.index,
            apply_held: false,
        }
    }

    /// The last entry the latest snapshot covers; the log holds the entries after it.
    pub(crate) fn base(&self) -> LogPosition {
        LogPosition {
            index: self.base_index,
            term: self.base_term,
        }
    }

    pub(crate) fn base_index(&self) -> LogIndex {
        self.base_index
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
        if self.apply_held {
            self.applied
        } else {
            self.committed.min(self.persisted)
        }
    }

    /// Drops the entries up to `up_to`, which a durable snapshot of the applied state now covers
    /// (Raft paper §7): the base moves to `up_to`. The caller checks `base < up_to <= applied`.
    pub(crate) fn compact(&mut self, up_to: LogIndex) -> Vec<Entry> {
        assert!(
            self.base_index < up_to && up_to <= self.applied,
            "compacting to {up_to} outside ({}, applied {}]",
            self.base_index,
            self.applied
        );
        let term = self
            .term(up_to)
            .expect("the log holds every applied entry after the base");
        let dropped = usize::try_from(up_to.0 - self.base_index.0).expect("log length fits usize");
        let dropped: Vec<Entry> = self.entries.drain(..dropped).collect();
        self.base_index = up_to;
        self.base_term = term;
        self.check_cursors();
        dropped
    }

    /// Resets the log to a snapshot the driver installed, covering up to `snapshot` (Raft paper
    /// §7): if the log holds an entry matching it, the entries after it are kept, else the whole
    /// log is discarded. The snapshot is the state machine now, so `applied` moves to it and
    /// `committed` at least to it. Returns whether the suffix was kept.
    ///
    /// The caller checks `snapshot.index > applied`: a snapshot never takes the state back.
    pub(crate) fn install_snapshot(&mut self, snapshot: LogPosition) -> bool {
        assert!(
            snapshot.index > self.applied,
            "installing snapshot {snapshot} at or below applied {}",
            self.applied
        );
        let keep = self.matches(snapshot.index, snapshot.term);
        if keep {
            let dropped = usize::try_from(snapshot.index.0 - self.base_index.0)
                .expect("log length fits usize");
            self.entries.drain(..dropped);
        } else {
            assert!(
                self.committed < snapshot.index,
                "committed entry {} conflicts with snapshot {snapshot}",
                snapshot.index
            );
            self.entries.clear();
        }
        self.base_index = snapshot.index;
        self.base_term = snapshot.term;
        self.committed = self.committed.max(snapshot.index);
        self.applied = snapshot.index;
        let last = self.last_index();
        self.handed_out = self.handed_out.clamp(snapshot.index, last);
        self.persisted = self.persisted.clamp(snapshot.index, last);
        self.check_cursors();
        keep
    }

    /// Asserts the order of the cursors (see [`RaftLog`]).
    fn check_cursors(&self) {
        let last = self.last_index();
        assert!(
            self.base_index <= self.applied
                && self.applied <= self.committed
                && self.applied <= self.persisted
                && self.persisted <= last
                && self.base_index <= self.handed_out
                && self.handed_out <= last,
            "log cursors out of order: base {} applied {} committed {} persisted {} handed out {} last {last}",
            self.base_index,
            self.applied,
            self.committed,
            self.persisted,
            self.handed_out
        );
    }

    /// Hands out no more entries for applying, for good.
    pub(crate) fn hold_applying(&mut self) {
        self.apply_held = true;
    }

    /// Every entry, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::RaftLog;
    use crate::types::{Entry, EntryKind, LogIndex, LogPosition, Term};

    /// A command entry at `index` in `term` carrying `data_bytes` bytes.
    fn entry_sized(index: u64, term: u64, data_bytes: usize) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            kind: EntryKind::Command,
            data: Bytes::from(vec![0xAB; data_bytes]),
        }
    }

    /// A small command entry at `index` in `term`.
    fn entry(index: u64, term: u64) -> Entry {
        entry_sized(index, term, 4)
    }

    /// A restored log whose entry `i + 1` has term `terms[i]`.
    fn log_with_terms(terms: &[u64], committed: u64) -> RaftLog {
        let entries = (1..)
            .zip(terms)
            .map(|(index, &term)| entry(index, term))
            .collect();
        RaftLog::restored(entries, LogIndex(committed))
    }

    /// The indexes of `entries`, in order.
    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.index.0).collect()
    }

    /// `entries_from` stops before the entry that would push the batch past the byte budget.
    #[test]
    fn entries_from_respects_the_byte_budget() {
        let entries = (1..=5).map(|i| entry_sized(i, 1, 10)).collect();
        let log = RaftLog::restored(entries, LogIndex::ZERO);
        let one = entry_sized(1, 1, 10).size_bytes();

        let batch = log.entries_from(LogIndex(2), 2 * one + one / 2);
        assert_eq!(indexes(&batch), [2, 3]);
        // A budget that fits exactly is not exceeded and not undershot.
        let batch = log.entries_from(LogIndex(1), 3 * one);
        assert_eq!(indexes(&batch), [1, 2, 3]);
        let batch = log.entries_from(LogIndex(1), 3 * one - 1);
        assert_eq!(indexes(&batch), [1, 2]);
        let total: usize = batch.iter().map(Entry::size_bytes).sum();
        assert!(total < 3 * one);
        // A large budget returns everything from `from` to the end, in order.
        let batch = log.entries_from(LogIndex(3), usize::MAX / 2);
        assert_eq!(indexes(&batch), [3, 4, 5]);
    }

    /// `entries_from` returns one entry larger than the whole budget rather than none, and
    /// nothing when there is no entry at `from`.
    #[test]
    fn entries_from_returns_at_least_one_entry_when_one_exists() {
        let entries = vec![entry_sized(1, 1, 1000), entry_sized(2, 1, 1000)];
        let log = RaftLog::restored(entries, LogIndex::ZERO);

        assert_eq!(indexes(&log.entries_from(LogIndex(1), 10)), [1]);
        assert_eq!(indexes(&log.entries_from(LogIndex(2), 0)), [2]);
        assert!(log.entries_from(LogIndex(3), usize::MAX / 2).is_empty());
        assert!(log.entries_from(LogIndex::ZERO, usize::MAX / 2).is_empty());
    }

    /// `term` of index 0 is the base term (zero), and `None` for an index the log does not hold.
    #[test]
    fn term_of_index_zero_and_of_missing_indexes() {
        let empty = RaftLog::restored(Vec::new(), LogIndex::ZERO);
        assert_eq!(empty.term(LogIndex::ZERO), Some(Term(0)));
        assert_eq!(empty.term(LogIndex(1)), None);

        let log = log_with_terms(&[1, 2, 2], 0);
        assert_eq!(log.term(LogIndex::ZERO), Some(Term(0)));
        assert_eq!(log.term(LogIndex(1)), Some(Term(1)));
        assert_eq!(log.term(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term(LogIndex(4)), None);
        assert_eq!(log.term(LogIndex(u64::MAX)), None);
    }

    /// `matches` is true only for an index the log holds with exactly that term (Raft §5.3).
    #[test]
    fn matches_requires_same_index_and_term() {
        let log = log_with_terms(&[1, 2, 2], 0);
        assert!(log.matches(LogIndex::ZERO, Term(0)));
        assert!(log.matches(LogIndex(2), Term(2)));
        assert!(!log.matches(LogIndex(2), Term(1)));
        assert!(!log.matches(LogIndex(2), Term(3)));
        assert!(!log.matches(LogIndex(4), Term(2)));
        assert!(!log.matches(LogIndex::ZERO, Term(1)));
    }

    /// `is_up_to_date` compares the last term first and the last index only on equal terms
    /// (Raft §5.4.1).
    #[test]
    fn is_up_to_date_compares_last_term_then_index() {
        // Last entry: index 3, term 2.
        let log = log_with_terms(&[1, 2, 2], 0);
        // A higher last term wins even with a shorter log.
        assert!(log.is_up_to_date(LogIndex(1), Term(3)));
        // A lower last term loses even with a longer log.
        assert!(!log.is_up_to_date(LogIndex(10), Term(1)));
        // Equal terms: the longer or equal log is up to date, the shorter is not.
        assert!(log.is_up_to_date(LogIndex(3), Term(2)));
        assert!(log.is_up_to_date(LogIndex(4), Term(2)));
        assert!(!log.is_up_to_date(LogIndex(2), Term(2)));

        let empty = RaftLog::restored(Vec::new(), LogIndex::ZERO);
        assert!(empty.is_up_to_date(LogIndex::ZERO, Term(0)));
        // An empty log is behind any non-empty one.
        assert!(!log.is_up_to_date(LogIndex::ZERO, Term(0)));
    }

    /// The rejection hint skips entries whose term is above the given term, never looks past
    /// `at_most` or the last index, and stops at the base.
    #[test]
    fn last_index_with_term_at_most_skips_higher_terms_and_stops_at_base() {
        let log = log_with_terms(&[1, 1, 2, 3, 3], 0);
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(5), Term(3)),
            LogIndex(5)
        );
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(5), Term(2)),
            LogIndex(3)
        );
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(5), Term(1)),
            LogIndex(2)
        );
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(5), Term(0)),
            LogIndex::ZERO
        );
        // `at_most` caps the answer even when later entries qualify.
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(2), Term(3)),
            LogIndex(2)
        );
        // An `at_most` past the end starts from the last entry.
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(100), Term(2)),
            LogIndex(3)
        );
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex::ZERO, Term(9)),
            LogIndex::ZERO
        );

        let empty = RaftLog::restored(Vec::new(), LogIndex::ZERO);
        assert_eq!(
            empty.last_index_with_term_at_most(LogIndex(7), Term(9)),
            LogIndex::ZERO
        );
    }

    /// Truncating at the commit index panics: committed entries are never removed (Raft §5.4).
    #[test]
    #[should_panic(expected = "truncating committed entry")]
    fn truncate_from_at_commit_index_panics() {
        let mut log = log_with_terms(&[1, 1, 1], 2);
        log.truncate_from(LogIndex(2));
    }

    /// Truncating below the commit index panics: committed entries are never removed (Raft §5.4).
    #[test]
    #[should_panic(expected = "truncating committed entry")]
    fn truncate_from_below_commit_index_panics() {
        let mut log = log_with_terms(&[1, 1, 1], 2);
        log.truncate_from(LogIndex(1));
    }

    /// Truncation removes the suffix and pulls the persisted and handed-out cursors back to the
    /// new last index, so replacement entries are handed out and acknowledged afresh.
    #[test]
    fn truncate_from_pulls_back_handed_out_and_persisted() {
        let mut log = log_with_terms(&[1, 1, 1, 1, 1], 1);
        assert_eq!(log.persisted(), LogIndex(5));

        log.truncate_from(LogIndex(3));
        assert_eq!(log.last_index(), LogIndex(2));
        assert_eq!(log.len(), 2);
        assert_eq!(log.persisted(), LogIndex(2));
        assert!(!log.has_unpersisted());

        log.push(entry(3, 2));
        assert!(log.has_unpersisted());
        assert_eq!(indexes(&log.take_unpersisted()), [3]);

        // Handed out but not yet persisted: truncation pulls `handed_out` back too.
        log.push(entry(4, 2));
        log.push(entry(5, 2));
        assert_eq!(indexes(&log.take_unpersisted()), [4, 5]);
        log.truncate_from(LogIndex(4));
        assert!(!log.has_unpersisted());
        log.push(entry(4, 3));
        assert_eq!(indexes(&log.take_unpersisted()), [4]);
        assert_eq!(log.persisted(), LogIndex(2));
    }

    /// `take_unpersisted` hands each entry out exactly once, in order.
    #[test]
    fn take_unpersisted_hands_each_entry_out_once() {
        let mut log = log_with_terms(&[1, 1], 0);
        assert!(
            log.take_unpersisted().is_empty(),
            "restored entries are durable"
        );

        log.push(entry(3, 1));
        log.push(entry(4, 2));
        assert!(log.has_unpersisted());
        assert_eq!(indexes(&log.take_unpersisted()), [3, 4]);
        assert!(!log.has_unpersisted());
        assert!(log.take_unpersisted().is_empty());

        log.push(entry(5, 2));
        assert_eq!(indexes(&log.take_unpersisted()), [5]);
        assert!(log.take_unpersisted().is_empty());
    }

    /// An acknowledgement for an entry that was replaced by one of another term, or for an entry
    /// not yet handed out, does not advance `persisted`; neither does an older one lower it.
    #[test]
    fn persisted_to_ignores_replaced_and_unhanded_entries() {
        let mut log = log_with_terms(&[1, 1], 0);
        log.push(entry(3, 1));
        assert_eq!(indexes(&log.take_unpersisted()), [3]);
        // Entry 3 of term 1 is replaced by entry 3 of term 2 before its write is acknowledged.
        log.truncate_from(LogIndex(3));
        log.push(entry(3, 2));
        assert_eq!(indexes(&log.take_unpersisted()), [3]);

        log.persisted_to(LogIndex(3), Term(1));
        assert_eq!(log.persisted(), LogIndex(2), "ack for the replaced entry");

        log.push(entry(4, 2));
        log.persisted_to(LogIndex(4), Term(2));
        assert_eq!(
            log.persisted(),
            LogIndex(2),
            "ack for an entry never handed out"
        );

        log.persisted_to(LogIndex(3), Term(2));
        assert_eq!(log.persisted(), LogIndex(3));

        log.persisted_to(LogIndex(1), Term(1));
        assert_eq!(
            log.persisted(),
            LogIndex(3),
            "an older ack never lowers persisted"
        );
    }

    /// `take_applicable` hands out entries only up to min(committed, persisted), at most `max`
    /// at a time, each exactly once.
    #[test]
    fn take_applicable_stops_at_committed_and_persisted_and_respects_max() {
        // Committed bound.
        let mut log = log_with_terms(&[1, 1, 1, 1, 1], 3);
        assert_eq!(indexes(&log.take_applicable(2)), [1, 2]);
        assert_eq!(indexes(&log.take_applicable(10)), [3]);
        assert!(!log.has_applicable());
        assert!(log.take_applicable(10).is_empty());
        assert_eq!(log.applied(), LogIndex(3));
        assert!(log.take_applicable(0).is_empty());

        // Persisted bound: committed entries that are not yet durable are not applied.
        let mut log = log_with_terms(&[1, 1], 0);
        for i in 3..=5 {
            log.push(entry(i, 1));
        }
        assert!(log.commit_to(LogIndex(5)));
        assert_eq!(log.committed(), LogIndex(5));
        assert_eq!(indexes(&log.take_applicable(10)), [1, 2]);
        assert!(!log.has_applicable());

        assert_eq!(indexes(&log.take_unpersisted()), [3, 4, 5]);
        log.persisted_to(LogIndex(4), Term(1));
        assert!(log.has_applicable());
        assert_eq!(indexes(&log.take_applicable(0)), Vec::<u64>::new());
        assert_eq!(indexes(&log.take_applicable(10)), [3, 4]);
        log.persisted_to(LogIndex(5), Term(1));
        assert_eq!(indexes(&log.take_applicable(10)), [5]);
        assert_eq!(log.applied(), LogIndex(5));
    }

    fn at(index: u64, term: u64) -> LogPosition {
        LogPosition {
            index: LogIndex(index),
            term: Term(term),
        }
    }

    /// A log of entries 1..=`last` in term 1, all committed and applied.
    fn applied_log(last: u64) -> RaftLog {
        let mut log = log_with_terms(&vec![1; usize::try_from(last).expect("small")], last);
        assert_eq!(log.take_applicable(usize::MAX).len() as u64, last);
        log
    }

    /// §7: a log restored after a snapshot starts after it: the base answers `term`, entries
    /// below it are gone, applied starts at it, and appends continue after the last entry.
    #[test]
    fn restored_after_a_snapshot_starts_at_its_base() {
        let mut log =
            RaftLog::restored_after(at(10, 2), vec![entry(11, 2), entry(12, 3)], LogIndex(10));
        assert_eq!(log.base(), at(10, 2));
        assert_eq!(log.term(LogIndex(10)), Some(Term(2)));
        assert_eq!(log.term(LogIndex(9)), None);
        assert!(log.get(LogIndex(10)).is_none());
        assert_eq!(log.applied(), LogIndex(10));
        assert_eq!(log.last_index(), LogIndex(12));
        assert_eq!(log.len(), 2);
        assert_eq!(
            indexes(&log.entries_from(LogIndex(5), usize::MAX)),
            Vec::<u64>::new()
        );
        assert!(log.commit_to(LogIndex(12)));
        assert_eq!(indexes(&log.take_applicable(10)), [11, 12]);

        let empty = RaftLog::restored_after(at(10, 2), Vec::new(), LogIndex(10));
        assert_eq!(
            (empty.last_index(), empty.last_term()),
            (LogIndex(10), Term(2))
        );
        assert!(empty.is_up_to_date(LogIndex(10), Term(2)));
        assert!(!empty.is_up_to_date(LogIndex(9), Term(2)));
    }

    /// §7: compaction drops the applied prefix; the base takes the last dropped entry's term;
    /// the rejection hint never goes below the base; and truncation after it still works.
    #[test]
    fn compact_drops_the_applied_prefix() {
        let mut log = applied_log(5);
        log.push(entry(6, 2));
        log.compact(LogIndex(3));
        assert_eq!(log.base(), at(3, 1));
        assert_eq!(log.len(), 3);
        assert_eq!(log.term(LogIndex(3)), Some(Term(1)));
        assert_eq!(log.term(LogIndex(2)), None);
        assert_eq!(log.last_index(), LogIndex(6));
        assert_eq!(
            log.last_index_with_term_at_most(LogIndex(6), Term(0)),
            LogIndex(3),
            "the hint stops at the base"
        );
        log.truncate_from(LogIndex(6));
        assert_eq!(log.last_index(), LogIndex(5));
        log.compact(LogIndex(5));
        assert_eq!(log.len(), 0);
        assert_eq!((log.last_index(), log.last_term()), (LogIndex(5), Term(1)));
    }

    /// Compacting past the applied index, or to the base again, is a bug of the caller.
    #[test]
    #[should_panic(expected = "compacting to")]
    fn compact_beyond_applied_panics() {
        let mut log = log_with_terms(&[1, 1, 1], 3);
        log.compact(LogIndex(1));
    }

    /// §7: installing a snapshot whose last entry the log holds keeps the entries after it.
    #[test]
    fn install_keeps_a_matching_suffix() {
        let mut log = log_with_terms(&[1, 1, 2, 2, 2], 1);
        assert_eq!(indexes(&log.take_applicable(10)), [1]);
        assert!(log.install_snapshot(at(3, 2)));
        assert_eq!(log.base(), at(3, 2));
        assert_eq!(log.committed(), LogIndex(3));
        assert_eq!(log.applied(), LogIndex(3));
        assert_eq!(log.last_index(), LogIndex(5));
        assert_eq!(
            log.persisted(),
            LogIndex(5),
            "the kept suffix stays durable"
        );
        assert!(
            !log.has_applicable(),
            "committed entries up to the snapshot are not re-applied"
        );
        assert!(log.commit_to(LogIndex(5)));
        assert_eq!(indexes(&log.take_applicable(10)), [4, 5]);
    }

    /// §7: a snapshot whose last entry the log lacks (or holds with another term) discards the
    /// whole log; a log shorter than the snapshot ends at it.
    #[test]
    fn install_discards_a_conflicting_or_short_log() {
        let mut log = log_with_terms(&[1, 1, 1, 1], 1);
        log.push(entry(5, 1));
        assert_eq!(indexes(&log.take_unpersisted()), [5]);
        assert!(!log.install_snapshot(at(3, 2)));
        assert_eq!(log.base(), at(3, 2));
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(
            (log.persisted(), log.committed(), log.applied()),
            (LogIndex(3), LogIndex(3), LogIndex(3))
        );
        assert!(!log.has_unpersisted());
        // The ack of the entry written before the install does not count.
        log.persisted_to(LogIndex(5), Term(1));
        assert_eq!(log.persisted(), LogIndex(3));
        log.push(entry(4, 2));
        assert_eq!(indexes(&log.take_unpersisted()), [4]);

        let mut short = log_with_terms(&[1, 1], 0);
        assert!(!short.install_snapshot(at(9, 3)));
        assert_eq!(
            (short.last_index(), short.last_term()),
            (LogIndex(9), Term(3))
        );
        assert_eq!(short.committed(), LogIndex(9));
    }

    /// A snapshot never takes the state machine back.
    #[test]
    #[should_panic(expected = "at or below applied")]
    fn install_at_or_below_applied_panics() {
        let mut log = applied_log(4);
        log.install_snapshot(at(4, 1));
    }
}
