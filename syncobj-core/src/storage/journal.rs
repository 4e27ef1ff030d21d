//! The [`Journal`] trait: the durable Raft log and hard state, and what recovery reports.

use std::fmt;
use std::path::PathBuf;

use super::error::{HardStateRule, StorageError};
use super::identity::Identity;
use crate::raft::{Entry, HardState, LogIndex, Term};

/// The durable Raft log and hard state of one node.
///
/// The log holds the entries `first_index()..=last_index()`, contiguous, terms never going
/// down; it is empty when `last_index() == first_index() - 1`. Entries before `first_index()`
/// were dropped after a snapshot.
///
/// Writes are buffered: [`append`](Self::append) and
/// [`set_hard_state`](Self::set_hard_state) become durable when [`sync`](Self::sync) returns.
/// The driver appends a whole `Ready` batch, then syncs once (group commit), then acknowledges.
/// [`truncate_suffix`](Self::truncate_suffix) and [`drop_prefix`](Self::drop_prefix) are
/// durable when they return.
///
/// After any [`StorageError::Io`] from a write or sync, an implementation may refuse all
/// further calls with [`StorageError::Poisoned`]: what is on disk is then unknown, and the node
/// must restart and recover.
pub trait Journal {
    /// The index of the first entry kept (one past the dropped prefix).
    fn first_index(&self) -> LogIndex;

    /// The index of the last entry, or `first_index() - 1` when the log is empty.
    fn last_index(&self) -> LogIndex;

    /// The term of the entry at `index`, if the log holds it. Costs no I/O.
    fn term(&self, index: LogIndex) -> Option<Term>;

    /// The hard state last set (durable only after [`sync`](Self::sync)).
    fn hard_state(&self) -> HardState;

    /// Sets the term, vote and commit index to save at the next [`sync`](Self::sync). Set it
    /// before appending entries of a new term.
    ///
    /// # Errors
    /// [`StorageError::BadHardState`] if the term or the commit index goes down.
    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError>;

    /// Appends `entries`, which must continue the log: the first at `last_index() + 1`, each
    /// following the previous, terms not going down nor above the hard state's term. Nothing
    /// is appended if any entry breaks the rules.
    ///
    /// # Errors
    /// [`StorageError::NotContiguous`], [`StorageError::TermOutOfOrder`],
    /// [`StorageError::EntryTooLarge`], or an I/O error if a buffer had to be written out.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;

    /// Removes the entries from `from` on (a new leader's conflicting suffix). Does nothing if
    /// `from > last_index()`. Durable when it returns.
    ///
    /// The commit index checked is the one made durable by the last sync: a hard state set
    /// since may already count the entries that replace the suffix.
    ///
    /// # Errors
    /// [`StorageError::OutOfRange`] if `from < first_index()`;
    /// [`StorageError::TruncateCommitted`] if `from` is at or below the synced commit index; an
    /// I/O error.
    fn truncate_suffix(&mut self, from: LogIndex) -> Result<(), StorageError>;

    /// Drops the entries up to and including `through`, which a durable snapshot covers. If
    /// `through >= last_index()` the log becomes empty and the next append must be
    /// `through + 1`. Does nothing if `through < first_index()`. Durable when it returns.
    ///
    /// # Errors
    /// An I/O error.
    fn drop_prefix(&mut self, through: LogIndex) -> Result<(), StorageError>;

    /// Writes the buffered appends to the operating system without waiting for the disk: they
    /// survive a crash of the process, not a power cut. A changed term or vote is saved first
    /// (records of a term are never on disk before the term); the commit index waits for
    /// [`sync`](Self::sync). Drivers with a relaxed fsync policy call this instead of `sync`.
    /// The default does nothing (for journals without buffers).
    ///
    /// # Errors
    /// An I/O error.
    fn flush(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Makes every append and the hard state set so far durable.
    ///
    /// # Errors
    /// [`StorageError::BadHardState`] if the commit index is beyond the last index; an I/O
    /// error.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Reads the entries `from..to` (end exclusive), stopping early once their
    /// [`size_bytes`](Entry::size_bytes) would pass `bytes_max`; at least one entry is returned
    /// when the range is not empty.
    ///
    /// # Errors
    /// [`StorageError::OutOfRange`] unless `first_index() <= from <= to <= last_index() + 1`;
    /// [`StorageError::Corrupt`] if a record read back fails its checks; an I/O error.
    fn entries(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, StorageError>;

    /// How many bytes the journal's log takes on disk: the length of its segment files, the
    /// appends still buffered counted as written (the hard-state file, of fixed size, is not
    /// counted). Costs no I/O. A journal that keeps nothing on disk reports 0, the default.
    fn disk_bytes(&self) -> u64 {
        0
    }

    /// Writes `entries` the way a [`Ready`](crate::raft::Ready) asks: first drops every entry
    /// at or after `entries[0].index`, then appends.
    ///
    /// # Errors
    /// Those of [`truncate_suffix`](Self::truncate_suffix) and [`append`](Self::append).
    fn splice(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index <= self.last_index() {
            self.truncate_suffix(first.index)?;
        }
        self.append(entries)
    }
}

/// What a journal found when it opened its directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The saved term, vote and commit index.
    pub hard_state: HardState,
    /// The index of the first entry kept.
    pub first_index: LogIndex,
    /// The entries from `first_index` on, in order. They are also on disk; the journal keeps
    /// only their positions, so this vector is the one in-memory copy.
    pub entries: Vec<Entry>,
    /// What recovery repaired or left alone; log these.
    pub warnings: Vec<RecoveryWarning>,
}

/// Something recovery repaired or noticed without failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryWarning {
    /// The last segment ended in a torn write past what its sync slots claim was synced, which
    /// was cut off.
    TornTail {
        /// The segment.
        path: PathBuf,
        /// Where the torn record started; the file now ends here.
        offset: u64,
        /// How many bytes were cut.
        bytes_cut: u64,
    },
    /// The last segment's creation was interrupted before its header was written; the file was
    /// removed.
    TornSegmentRemoved {
        /// The removed file.
        path: PathBuf,
    },
    /// A segment holding only dropped entries (left by a prefix drop, or by a roll-over of an
    /// empty log, that a crash interrupted) was removed. A clean sync never leaves one.
    ObsoleteSegmentRemoved {
        /// The removed file.
        path: PathBuf,
    },
    /// A temporary file left by an interrupted write was removed.
    TempFileRemoved {
        /// The removed file.
        path: PathBuf,
    },
    /// A snapshot older than the latest one was removed.
    OldSnapshotRemoved {
        /// The removed file.
        path: PathBuf,
    },
    /// A file written before files recorded whose they are was taken as this node's: it was
    /// rewritten with this identity (the hard-state file), or will be replaced in the course of
    /// things (a segment, at a roll-over or compaction; a snapshot, by the next one).
    IdentityRecorded {
        /// The file.
        path: PathBuf,
        /// The identity it now belongs to.
        identity: Identity,
    },
    /// A file this code does not know sits in the directory; it was left alone.
    UnknownFile {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for RecoveryWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryWarning::TornTail {
                path,
                offset,
                bytes_cut,
            } => write!(
                f,
                "{}: cut a torn final write of {bytes_cut} bytes at byte {offset}",
                path.display()
            ),
            RecoveryWarning::TornSegmentRemoved { path } => {
                write!(
                    f,
                    "{}: removed a segment whose creation was interrupted",
                    path.display()
                )
            }
            RecoveryWarning::ObsoleteSegmentRemoved { path } => {
                write!(
                    f,
                    "{}: removed a segment of dropped entries",
                    path.display()
                )
            }
            RecoveryWarning::TempFileRemoved { path } => {
                write!(
                    f,
                    "{}: removed a temporary file of an interrupted write",
                    path.display()
                )
            }
            RecoveryWarning::OldSnapshotRemoved { path } => {
                write!(
                    f,
                    "{}: removed a snapshot older than the latest",
                    path.display()
                )
            }
            RecoveryWarning::IdentityRecorded { path, identity } => write!(
                f,
                "{}: written before files recorded their node and cluster; taken as {identity}'s",
                path.display()
            ),
            RecoveryWarning::UnknownFile { path } => {
                write!(f, "{}: unknown file, left alone", path.display())
            }
        }
    }
}

/// Checks a new hard state against the current one (terms and commit indexes never go down).
pub(crate) fn check_hard_state(current: HardState, new: HardState) -> Result<(), StorageError> {
    if new.term < current.term {
        let rule = HardStateRule::TermDecreased {
            current: current.term,
            new: new.term,
        };
        return Err(StorageError::BadHardState(rule));
    }
    if new.commit < current.commit {
        let rule = HardStateRule::CommitDecreased {
            current: current.commit,
            new: new.commit,
        };
        return Err(StorageError::BadHardState(rule));
    }
    Ok(())
}

/// Checks that `entries` may follow a log ending at `last` (term `last_term`, `None` if the
/// log is empty) under a hard state of term `term_max`.
pub(crate) fn check_append(
    entries: &[Entry],
    last: LogIndex,
    last_term: Option<Term>,
    term_max: Term,
) -> Result<(), StorageError> {
    let mut expected = last.next();
    let mut min = last_term.unwrap_or(Term(0));
    for entry in entries {
        if entry.index != expected {
            return Err(StorageError::NotContiguous {
                last: expected.prev(),
                found: entry.index,
            });
        }
        if entry.term < min || entry.term > term_max {
            return Err(StorageError::TermOutOfOrder {
                index: entry.index,
                term: entry.term,
                min,
                max: term_max,
            });
        }
        min = entry.term;
        expected = expected.next();
    }
    Ok(())
}

/// Checks a read range against the log `first..=last`.
pub(crate) fn check_range(
    from: LogIndex,
    to: LogIndex,
    first: LogIndex,
    last: LogIndex,
) -> Result<(), StorageError> {
    let end = last.next();
    for index in [from, to] {
        if index < first || index > end {
            return Err(StorageError::OutOfRange {
                index,
                first,
                last: end,
            });
        }
    }
    if from > to {
        return Err(StorageError::OutOfRange {
            index: from,
            first,
            last: to,
        });
    }
    Ok(())
}

/// Checks a truncation point against the log and the commit index.
pub(crate) fn check_truncate(
    from: LogIndex,
    first: LogIndex,
    last: LogIndex,
    commit: LogIndex,
) -> Result<(), StorageError> {
    if from < first {
        return Err(StorageError::OutOfRange {
            index: from,
            first,
            last: last.next(),
        });
    }
    if from <= commit {
        return Err(StorageError::TruncateCommitted { from, commit });
    }
    Ok(())
}

/// Checks at sync time that the commit index lies within the log.
pub(crate) fn check_commit(hard_state: HardState, last: LogIndex) -> Result<(), StorageError> {
    if hard_state.commit > last {
        let rule = HardStateRule::CommitBeyondLog {
            commit: hard_state.commit,
            last,
        };
        return Err(StorageError::BadHardState(rule));
    }
    Ok(())
}
