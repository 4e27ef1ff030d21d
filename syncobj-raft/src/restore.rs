//! Checking what a restarted node recovered: its hard state, its latest snapshot and the log
//! after it, and turning them into the starting log.

use super::error::RestoreError;
use super::node::Restored;
use super::types::{Entry, LogIndex, LogPosition, Term};

/// The starting point of a restored log: the snapshot it starts after, the entries after the
/// snapshot, and the commit index.
#[derive(Debug)]
pub(crate) struct RestoredLog {
    pub(crate) base: LogPosition,
    pub(crate) entries: Vec<Entry>,
    pub(crate) committed: LogIndex,
}

/// Checks `restored` and keeps the entries after its snapshot.
///
/// Entries may start at or before the snapshot's index + 1: a driver that crashed between
/// writing a snapshot and dropping the journal prefix it covers still holds them. Those at or
/// below the snapshot are dropped; if the one at the snapshot's index has another term, the
/// entries after it conflict with committed state and are dropped too (Raft paper §7), which is
/// also what a crash in the middle of installing a leader's snapshot leaves behind. The commit
/// index starts at least at the snapshot.
///
/// # Errors
/// [`RestoreError`] if the entries have a gap (before the first one too), terms out of order or
/// above the saved term, a snapshot ahead of the saved term, or a commit index beyond the log.
pub(crate) fn restore_log(restored: Restored) -> Result<RestoredLog, RestoreError> {
    let Restored {
        hard_state,
        entries,
        snapshot,
        membership: _,
    } = restored;
    let base = snapshot.unwrap_or(LogPosition::ZERO);
    if base.term > hard_state.term {
        return Err(RestoreError::SnapshotAheadOfTerm {
            snapshot: base,
            term: hard_state.term,
        });
    }
    check_entries(&entries, base, hard_state.term)?;
    let entries = entries_after(entries, base);
    if let Some(first) = entries.first().filter(|e| e.term < base.term) {
        return Err(RestoreError::TermOrder {
            index: first.index,
            term: first.term,
        });
    }
    let last = entries.last().map_or(base.index, |e| e.index);
    let committed = hard_state.commit.max(base.index);
    if committed > last {
        return Err(RestoreError::CommitBeyondLog {
            commit: committed,
            last,
        });
    }
    Ok(RestoredLog {
        base,
        entries,
        committed,
    })
}

/// Entries are contiguous, start at index 1 or later but no later than right after the base (so
/// at index 1 without a snapshot), and have terms that never go down nor above `term`.
fn check_entries(entries: &[Entry], base: LogPosition, term: Term) -> Result<(), RestoreError> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    let first_max = base.index.next();
    if first.index == LogIndex::ZERO || first.index > first_max {
        return Err(RestoreError::Gap {
            expected: first_max,
            found: first.index,
        });
    }
    let mut expected = first.index;
    let mut last_term = Term(0);
    for entry in entries {
        if entry.index != expected {
            return Err(RestoreError::Gap {
                expected,
                found: entry.index,
            });
        }
        if entry.term < last_term || entry.term > term {
            return Err(RestoreError::TermOrder {
                index: entry.index,
                term: entry.term,
            });
        }
        last_term = entry.term;
        expected = expected.next();
    }
    Ok(())
}

/// The entries after `base`; none if the entry at the base's index conflicts with it.
fn entries_after(entries: Vec<Entry>, base: LogPosition) -> Vec<Entry> {
    let conflict = entries
        .iter()
        .any(|e| e.index == base.index && e.term != base.term);
    if conflict {
        return Vec::new();
    }
    entries
        .into_iter()
        .filter(|e| e.index > base.index)
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::restore_log;
    use crate::error::RestoreError;
    use crate::node::Restored;
    use crate::types::{Entry, EntryKind, HardState, LogIndex, LogPosition, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            kind: EntryKind::Command,
            data: Bytes::from_static(b"x"),
        }
    }

    fn at(index: u64, term: u64) -> LogPosition {
        LogPosition {
            index: LogIndex(index),
            term: Term(term),
        }
    }

    fn restored(
        term: u64,
        commit: u64,
        snapshot: Option<LogPosition>,
        entries: &[(u64, u64)],
    ) -> Restored {
        Restored {
            hard_state: HardState {
                term: Term(term),
                vote: None,
                commit: LogIndex(commit),
            },
            entries: entries.iter().map(|&(i, t)| entry(i, t)).collect(),
            snapshot,
            membership: None,
        }
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.index.0).collect()
    }

    /// §7: the log starts after the snapshot; commit starts at least at it.
    #[test]
    fn entries_follow_the_snapshot_and_commit_starts_at_it() {
        let log =
            restore_log(restored(3, 0, Some(at(10, 2)), &[(11, 2), (12, 3)])).expect("consistent");
        assert_eq!(log.base, at(10, 2));
        assert_eq!(indexes(&log.entries), [11, 12]);
        assert_eq!(log.committed, LogIndex(10));

        let log =
            restore_log(restored(3, 12, Some(at(10, 2)), &[(11, 2), (12, 3)])).expect("consistent");
        assert_eq!(log.committed, LogIndex(12));

        let log = restore_log(restored(3, 4, Some(at(10, 2)), &[])).expect("consistent");
        assert!(log.entries.is_empty());
        assert_eq!(log.committed, LogIndex(10));
    }

    /// A journal whose prefix was not dropped yet (a crash after the snapshot was written):
    /// the entries the snapshot covers are skipped; a conflicting entry at the snapshot's index
    /// (a crash in the middle of an install) discards everything after it too.
    #[test]
    fn entries_covered_by_the_snapshot_are_skipped() {
        let log = restore_log(restored(
            2,
            4,
            Some(at(3, 1)),
            &[(1, 1), (2, 1), (3, 1), (4, 2)],
        ))
        .expect("consistent");
        assert_eq!(indexes(&log.entries), [4]);
        assert_eq!(log.committed, LogIndex(4));

        let log = restore_log(restored(
            3,
            2,
            Some(at(3, 2)),
            &[(1, 1), (2, 1), (3, 1), (4, 1)],
        ))
        .expect("consistent");
        assert!(
            log.entries.is_empty(),
            "the suffix conflicts with the snapshot"
        );
        assert_eq!(log.committed, LogIndex(3));

        let log = restore_log(restored(3, 2, Some(at(9, 2)), &[(1, 1), (2, 1)]))
            .expect("a journal shorter than the snapshot");
        assert!(log.entries.is_empty());
        assert_eq!(log.committed, LogIndex(9));
    }

    /// Inconsistent state is refused with a typed error.
    #[test]
    fn inconsistent_state_is_refused() {
        let gap = restore_log(restored(3, 0, Some(at(10, 2)), &[(12, 2)]));
        assert_eq!(
            gap.expect_err("a gap after the snapshot"),
            RestoreError::Gap {
                expected: LogIndex(11),
                found: LogIndex(12)
            }
        );
        let no_snapshot = restore_log(restored(3, 0, None, &[(2, 1)]));
        assert!(matches!(
            no_snapshot,
            Err(RestoreError::Gap {
                expected: LogIndex(1),
                ..
            })
        ));
        let ahead = restore_log(restored(2, 0, Some(at(10, 3)), &[]));
        assert_eq!(
            ahead.expect_err("snapshot ahead of the term"),
            RestoreError::SnapshotAheadOfTerm {
                snapshot: at(10, 3),
                term: Term(2)
            }
        );
        let below = restore_log(restored(3, 0, Some(at(10, 2)), &[(11, 1)]));
        assert!(matches!(below, Err(RestoreError::TermOrder { .. })));
        let beyond = restore_log(restored(3, 12, Some(at(10, 2)), &[(11, 2)]));
        assert_eq!(
            beyond.expect_err("commit past the log"),
            RestoreError::CommitBeyondLog {
                commit: LogIndex(12),
                last: LogIndex(11)
            }
        );
        let conflict_committed = restore_log(restored(
            3,
            4,
            Some(at(3, 2)),
            &[(1, 1), (2, 1), (3, 1), (4, 1)],
        ));
        assert!(
            matches!(
                conflict_committed,
                Err(RestoreError::CommitBeyondLog { .. })
            ),
            "a committed suffix cannot conflict with the snapshot"
        );
    }

    /// Without a snapshot, `Restored::default()` and a log from index 1 work as before.
    #[test]
    fn no_snapshot_is_the_old_behaviour() {
        let log = restore_log(Restored::default()).expect("empty");
        assert_eq!(log.base, LogPosition::ZERO);
        assert_eq!(log.committed, LogIndex::ZERO);
        let log = restore_log(restored(2, 2, None, &[(1, 1), (2, 2)])).expect("consistent");
        assert_eq!(indexes(&log.entries), [1, 2]);
    }
}
