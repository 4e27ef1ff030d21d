//! Durable storage: the Raft log and hard state ([`Journal`]), and snapshots
//! ([`SnapshotStore`]).
//!
//! # Using it from a driver
//!
//! ```text
//! start:   let (journal, recovery) = FileJournal::open(StdDisk, data_dir.join("log"), opts)?;
//!          log recovery.warnings; build the Raft node from recovery.hard_state/first_index/entries
//!          let (snapshots, warnings) = SnapshotStore::open(StdDisk, data_dir.join("snapshots"))?;
//! per Ready with something to persist:
//!          if let Some(hs) = ready.hard_state { journal.set_hard_state(hs)? }   // before entries
//!          journal.splice(&ready.entries)?;                                     // truncates a conflicting suffix
//!          journal.sync()?;                                                     // one group commit
//!          then send ready.persisted_messages and call on_persisted(ready.ack())
//! compaction: write the snapshot (begin / write_chunk / commit), then journal.drop_prefix(index)
//! ```
//!
//! A [`StorageError::Corrupt`] from `open` must stop the node: its message names the file, the
//! byte offset and what the operator can do. Any [`StorageError::Io`] from a write poisons the
//! journal; restart the node.
//!
//! # Files
//!
//! All integers are little-endian; every checksum is CRC32C (Castagnoli).
//!
//! The journal directory holds:
//!
//! - `segment-<first index, 20 digits>.log`: a 24-byte header — magic `SOBJLOG\0`, format
//!   version `u32` (1), first index `u64`, CRC of those 20 bytes `u32` — then records, one per
//!   entry, in index order:
//!
//!   | field | type | |
//!   |---|---|---|
//!   | length | `u32` | bytes after the checksum: 17 + payload |
//!   | checksum | `u32` | CRC of the length field and everything after the checksum |
//!   | index | `u64` | |
//!   | term | `u64` | |
//!   | kind | `u8` | 1 no-op, 2 command; 0 is never valid; other values are reserved |
//!   | payload | bytes | |
//!
//!   A segment takes records until it reaches [`JournalOptions::segment_bytes_target`]; it is
//!   synced before the next one is created, so only the last segment can end in a torn write.
//!   Every segment but the first starts after the first index kept, so only the first holds
//!   dropped entries: a prefix drop removes the segments it empties, and a roll-over of an
//!   empty log (emptied by a truncation back to the first index) replaces its segment rather
//!   than following it. A segment that a later one makes obsolete (the later one starts at or
//!   before the first index kept) is on disk only after a crash interrupted one of these;
//!   recovery removes it with a warning. After a successful `sync` there is none.
//! - `hard-state`: 49 bytes — magic `SOBJHST\0`, version `u32` (1), term `u64`, vote flag `u8`
//!   (0 none, 1 some), vote `u64` (0 when none), commit index `u64`, first kept index `u64`,
//!   CRC of the previous 45 bytes `u32`. Replaced atomically through `hard-state.tmp`: write,
//!   fsync, rename, fsync the directory.
//!
//! The snapshot directory holds `snapshot-<last index>-<last term>.snap` (20 digits each):
//! magic `SOBJSNP\0`, version `u32` (1), last included index `u64`, its term `u64`, code
//! version `u32`, membership length `u32`, membership bytes, CRC of the header so far `u32`;
//! then the payload; then a trailer: payload length `u64`, CRC of the payload and that length
//! field `u32`. Written as `<name>.tmp`, synced, renamed, directory synced.
//!
//! # Recovery rules
//!
//! A torn final write is expected after a crash and is cut off with a warning: in the last
//! segment only, a record shorter than its declared length with no valid record after it, a
//! record whose checksum fails with nothing but zero bytes (or nothing) after it, a zero-filled
//! tail, or a last segment too short for its header (or all zeros). Everything else is
//! [`StorageError::Corrupt`] with the file and offset: a checksum failure before the tail, a gap
//! or repeated index, a term going backwards or above the saved term, an unknown entry kind, a
//! bad magic or version, a saved commit index beyond the last entry, a length above
//! [`JournalOptions::record_bytes_max`] (checked before anything is allocated).

mod codec;
mod disk;
mod error;
mod file_journal;
mod journal;
mod memory;
mod meta;
mod segment;
#[cfg(feature = "sim")]
mod sim_disk;
mod snapshot;
#[cfg(test)]
pub(crate) mod test_dir;

pub use disk::{Disk, DiskFile, StdDisk, StdFile};
pub use error::{Corruption, HardStateRule, StorageError};
pub use file_journal::{FileJournal, JournalOptions};
pub use journal::{Journal, Recovery, RecoveryWarning};
pub use memory::MemoryJournal;
#[cfg(feature = "sim")]
pub use sim_disk::{SimDisk, SimDiskStats, SimFile};
pub use snapshot::{
    MEMBERSHIP_BYTES_MAX, Snapshot, SnapshotMeta, SnapshotReader, SnapshotStore, SnapshotWriter,
};
