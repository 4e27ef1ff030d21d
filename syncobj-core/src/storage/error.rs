//! The errors of the storage layer.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::identity::Identity;
use crate::raft::{LogIndex, Term};

/// What the operator can do about a damaged data directory; part of every corruption message.
const OPERATOR_CHOICES: &str = "restore this node's data directory from a backup, or wipe it so the node \
     rejoins the cluster as an empty follower and receives a snapshot from the leader";

/// Everything that can go wrong in the storage layer.
///
/// [`Corrupt`](Self::Corrupt) means the disk holds something this code will not trust; it names
/// the file and the byte offset, and the node must not start until an operator acts. The other
/// variants are I/O failures or calls that break a documented precondition.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The operating system reported an error.
    #[error("I/O error while trying to {action} {path}: {source}")]
    Io {
        /// What the storage layer was doing, as a verb phrase (`"sync"`, `"rename"` …).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file holds data that fails a check: damage that is not a torn tail.
    #[error("{path} is damaged at byte {offset}: {problem}; {OPERATOR_CHOICES}", path = path.display())]
    Corrupt {
        /// The damaged file (for a missing file, the name it should have).
        path: PathBuf,
        /// Where in the file the problem starts.
        offset: u64,
        /// What is wrong.
        problem: Corruption,
    },
    /// A file records another node's or another cluster's identity than this node's: it was
    /// copied from another data directory (or the node was started with another address or
    /// cluster name than the one that wrote it). Used, another node's hard state could make
    /// this node vote twice in one term, and another cluster's log or state would mix two
    /// histories; the node does not start.
    #[error(
        "{path} belongs to {found}, but this is {expected}: it comes from another node's or \
         another cluster's data directory. Put this node's own file back (or start the node with \
         the address and cluster name that wrote it), or wipe this node's data directory so \
         that it rejoins the cluster as an empty follower",
        path = path.display()
    )]
    ForeignFile {
        /// The file.
        path: PathBuf,
        /// The identity it records.
        found: Identity,
        /// This node's.
        expected: Identity,
    },
    /// An earlier write or sync failed, so what is on disk is unknown; the store refuses all
    /// further work. Restart the node: recovery reads what really is on disk.
    #[error(
        "an earlier write or sync failed; the storage refuses further work until the node restarts"
    )]
    Poisoned,
    /// An append did not continue the log.
    #[error("append of entry {found} does not follow the last index {last}")]
    NotContiguous {
        /// The journal's last index.
        last: LogIndex,
        /// The index of the entry offered.
        found: LogIndex,
    },
    /// An appended entry has a lower term than the entry before it, or a higher term than the
    /// hard state (set the hard state before appending entries of a new term).
    #[error("entry {index} has term {term}, outside [{min}, {max}]")]
    TermOutOfOrder {
        /// The entry's index.
        index: LogIndex,
        /// The entry's term.
        term: Term,
        /// The term of the entry before it.
        min: Term,
        /// The term of the hard state.
        max: Term,
    },
    /// An entry is larger than the largest record the journal accepts.
    #[error("entry {index} needs a {bytes}-byte record; the limit is {max} bytes")]
    EntryTooLarge {
        /// The entry's index.
        index: LogIndex,
        /// The size of its record.
        bytes: u64,
        /// The configured maximum.
        max: u64,
    },
    /// An index lies outside the range the call accepts.
    #[error("index {index} is outside [{first}, {last}]")]
    OutOfRange {
        /// The index asked for.
        index: LogIndex,
        /// The lowest index allowed.
        first: LogIndex,
        /// The highest index allowed.
        last: LogIndex,
    },
    /// A truncation would remove an entry at or below the commit index.
    #[error("truncating from {from} would remove committed entries (commit index {commit})")]
    TruncateCommitted {
        /// The first index the truncation would remove.
        from: LogIndex,
        /// The commit index of the hard state.
        commit: LogIndex,
    },
    /// A hard state breaks the rules: a lower term than the saved one, a commit index that goes
    /// down or lies beyond the log.
    #[error("hard state rejected: {0}")]
    BadHardState(HardStateRule),
    /// A snapshot is older than the latest one the store holds.
    #[error("snapshot at {index} is older than the latest snapshot at {latest}")]
    StaleSnapshot {
        /// The last included index of the new snapshot.
        index: LogIndex,
        /// The last included index of the latest snapshot.
        latest: LogIndex,
    },
    /// A snapshot's membership blob is larger than the format allows.
    #[error("snapshot membership is {bytes} bytes; the limit is {max}")]
    MembershipTooLarge {
        /// Its size.
        bytes: usize,
        /// The maximum.
        max: usize,
    },
}

/// The rule a rejected hard state breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum HardStateRule {
    /// The term is lower than the term already set.
    #[error("term {new} is below the current term {current}")]
    TermDecreased {
        /// The term already set.
        current: Term,
        /// The term offered.
        new: Term,
    },
    /// The commit index is lower than the one already set.
    #[error("commit index {new} is below the current commit index {current}")]
    CommitDecreased {
        /// The commit index already set.
        current: LogIndex,
        /// The commit index offered.
        new: LogIndex,
    },
    /// At sync time the commit index lies beyond the last index of the log.
    #[error("commit index {commit} is beyond the last index {last}")]
    CommitBeyondLog {
        /// The commit index.
        commit: LogIndex,
        /// The last index of the log.
        last: LogIndex,
    },
}

/// A way stored data fails its checks.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Corruption {
    /// The file does not start with the magic bytes of its kind.
    #[error("the file does not start with the magic bytes of a {kind} file")]
    BadMagic {
        /// The kind of file expected.
        kind: &'static str,
    },
    /// The file was written in a format version this code does not read.
    #[error("format version {found} is not supported (the newest this code reads is {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The newest version this code reads (and the one it writes).
        supported: u32,
    },
    /// A header's checksum does not match its contents.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// A record's checksum does not match and valid data follows it, so it is not a torn tail.
    #[error("record checksum mismatch")]
    RecordChecksum,
    /// A record length is below the minimum or above the configured maximum.
    #[error("record length {length} is outside [{min}, {max}]")]
    RecordLength {
        /// The length read.
        length: u64,
        /// The smallest valid length.
        min: u64,
        /// The largest accepted length.
        max: u64,
    },
    /// A record's declared length runs past the end of a file that is not the log's tail, or
    /// past valid data.
    #[error("record runs past the end of the file or over valid data")]
    Truncated,
    /// A record carries an entry kind this code does not know.
    #[error("unknown entry kind {0}")]
    UnknownKind(u8),
    /// An index is not the one expected: a gap, a repeat, or a file name that disagrees with
    /// its header.
    #[error("expected index {expected}, found {found}")]
    IndexMismatch {
        /// The index expected.
        expected: LogIndex,
        /// The index found.
        found: LogIndex,
    },
    /// An entry's term is lower than the term of the entry before it.
    #[error("term goes backwards: {term} after {previous}")]
    TermBackwards {
        /// The term of the entry before.
        previous: Term,
        /// The term found.
        term: Term,
    },
    /// An entry's term is higher than the saved current term.
    #[error("entry term {term} is above the saved current term {current}")]
    TermAboveHardState {
        /// The entry's term.
        term: Term,
        /// The saved term.
        current: Term,
    },
    /// The commit index saved in the hard-state file is beyond the last intact entry of the
    /// log. Entries are synced before a commit index that counts them is saved, so committed
    /// records are lost; reported at the end of the last segment's intact records.
    #[error(
        "the saved commit index {commit} (in the hard-state file) is beyond the last intact \
         entry {last}: committed records are lost"
    )]
    CommitBeyondLog {
        /// The saved commit index.
        commit: LogIndex,
        /// The last index found in the log.
        last: LogIndex,
    },
    /// A segment's sync slot says its records up to a byte were synced, and some of them are
    /// missing or damaged. A crash loses only what was not synced, so this is not a torn write;
    /// the node may have acknowledged these entries to a leader, which counted them toward a
    /// majority.
    #[error(
        "entries through {synced} were synced in this segment (through byte {synced_end}), \
         but only entries through {intact} are intact: synced records are lost, which no crash \
         explains, and the node may have acknowledged them"
    )]
    SyncedRecordsLost {
        /// The last entry the sync slot says was synced.
        synced: LogIndex,
        /// The byte the synced records end at.
        synced_end: u64,
        /// The last entry read intact.
        intact: LogIndex,
    },
    /// Both sync slots of a segment fail their checks (only one is ever written between two
    /// fsyncs, so a crash leaves the other).
    #[error("both sync slots fail their checks")]
    SyncSlots,
    /// A sync slot's claim does not match the records: no record ends at its byte, or the one
    /// that does is not its entry.
    #[error("the sync slot says entries through {last} end at byte {end}; the records disagree")]
    SyncSlotMismatch {
        /// The byte the slot says the synced records end at.
        end: u64,
        /// The entry the slot says is the last synced.
        last: LogIndex,
    },
    /// A chunk of a snapshot's payload fails its checksum; the offset is the chunk's start.
    #[error("payload chunk {chunk} ({bytes} bytes from here) fails its checksum")]
    ChunkChecksum {
        /// The chunk's number, from 0.
        chunk: u64,
        /// Its length in bytes.
        bytes: u64,
    },
    /// A snapshot's trailer fails its checksum, or is missing (the file ends early).
    #[error("the trailer fails its checksum or is missing")]
    TrailerChecksum,
    /// The entries from the saved first index are not on disk.
    #[error("the log should start at {first}, but the segments start at {found}")]
    MissingEntries {
        /// The saved first index.
        first: LogIndex,
        /// The first index the segments hold.
        found: LogIndex,
    },
    /// A field holds a value its format forbids.
    #[error("invalid value in field {field}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
    },
    /// The file is shorter or longer than its format requires.
    #[error("the file is {found} bytes long; its format requires {expected}")]
    WrongLength {
        /// The length found.
        found: u64,
        /// The length required, or the minimum.
        expected: u64,
    },
    /// A required file is missing while other files of the store exist.
    #[error("the file is missing, but the directory holds log segments")]
    Missing,
}

impl StorageError {
    /// An [`Io`](Self::Io) error.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A [`Corrupt`](Self::Corrupt) error.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, problem: Corruption) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            problem,
        }
    }

    /// A [`ForeignFile`](Self::ForeignFile) error, unless `found` is `expected`.
    pub(crate) fn check_identity(
        path: &std::path::Path,
        found: Identity,
        expected: Identity,
    ) -> Result<(), StorageError> {
        if found == expected {
            return Ok(());
        }
        Err(StorageError::ForeignFile {
            path: path.to_path_buf(),
            found,
            expected,
        })
    }

    /// Whether this error reports damaged data on disk.
    pub fn is_corruption(&self) -> bool {
        matches!(self, StorageError::Corrupt { .. })
    }
}
