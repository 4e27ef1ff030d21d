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
//!   version `u32` (4), first index `u64`, CRC of those 20 bytes `u32` — then two 28-byte sync
//!   slots, then the [identity](#identity) (node id `u64`, cluster id `u64`, CRC `u32` of the
//!   segment's first index and those 16 bytes), then records from byte 100, one per entry, in
//!   index order:
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
//!   A sync slot (at byte 24 for even sequence numbers, 52 for odd) holds a claim: sequence
//!   number `u64`, synced end `u64` (a byte offset), last synced index `u64`, and a CRC `u32`
//!   of the segment's first index and those 24 bytes. It says that the bytes before the end
//!   were synced and hold the records through that index. A claim is written right after the
//!   fsync that made its bytes durable, to the slot the current claim is not in, and is not
//!   synced itself: the segment's next fsync makes it durable (a killed process leaves it to
//!   the operating system). So no slot ever claims bytes that were not durable, whatever order
//!   the disk writes pages in, only one slot is written between two fsyncs, and a sync costs
//!   one small write more and no fsync more. A truncation that cuts claimed bytes first
//!   lowers both slots and syncs them. Segments of version 3 have no identity (records from
//!   byte 80) and are read as the node's own. Segments of versions 1 and 2, written by builds
//!   whose commands had no cluster-time stamp (an 8-byte header), are refused with
//!   [`Corruption::UnsupportedVersion`] rather than misread.
//!
//!   A segment takes records until it reaches [`JournalOptions::segment_bytes_target`]; it is
//!   synced before the next one is created, so only the last segment can end in a torn write.
//!   Every segment but the first starts after the first index kept, so only the first holds
//!   dropped entries: a prefix drop removes the segments it empties, and a roll-over of an
//!   empty log (emptied by a truncation back to the first index) replaces its segment rather
//!   than following it. A segment that a later one makes obsolete (the later one starts at or
//!   before the first index kept) is on disk only after a crash interrupted one of these;
//!   recovery removes it with a warning. After a successful `sync` there is none.
//! - `hard-state`: 65 bytes — magic `SOBJHST\0`, version `u32` (2), term `u64`, vote flag `u8`
//!   (0 none, 1 some), vote `u64` (0 when none), commit index `u64`, first kept index `u64`,
//!   node id `u64`, cluster id `u64`, CRC of the previous 61 bytes `u32`. Replaced atomically
//!   through `hard-state.tmp`: write, fsync, rename, fsync the directory. Version 1 (49 bytes,
//!   no identity, the CRC after the first index) is read and rewritten at once.
//!
//! The snapshot directory holds `snapshot-<last index>-<last term>.snap` (20 digits each):
//! magic `SOBJSNP\0`, version `u32` (3), last included index `u64`, its term `u64`, code
//! version `u32`, membership length `u32`, node id `u64`, cluster id `u64` (the
//! [identity](#identity); version 2 has neither), membership bytes, CRC of the header so far
//! `u32`;
//! then the payload in chunks of 4096 bytes (the last may be shorter), each followed by the
//! CRC `u32` of its number (`u64`, from 0) and its bytes; then a trailer: payload length `u64`,
//! CRC of that field `u32`. Damage is reported at the chunk it is in, and a reader hands out
//! only verified bytes. Written as `<name>.tmp`, synced, renamed, directory synced. Version-1
//! snapshots (the payload whole, its CRC in the trailer with the length) are still read;
//! damage to one can only be reported at the trailer. The payload is the driver's, with its
//! own format number (2 since commands carry a cluster-time stamp): a payload of another
//! format is refused when it is loaded, by that number.
//!
//! # Identity
//!
//! Every file records whose it is: the node's id and the cluster's ([`Identity`], given by
//! [`JournalOptions::identity`] and [`SnapshotStore::open_as`]). A voter's id is a hash of its
//! address; read-only nodes, which draw a new id at every start, all record the read-only mark
//! alone; the cluster's id is a hash of the `cluster_name` option. Recovery refuses a hard
//! state or a segment of another identity, and a snapshot of another cluster, with
//! [`StorageError::ForeignFile`] naming the file and both identities: a hard state copied from
//! another node of the cluster (its vote in a term) could make this node vote twice in that
//! term, and another node's log may hold entries this node never acknowledged. A snapshot
//! holds only committed state, the same on every node of the cluster, so another node's is
//! accepted (restoring a dump on new addresses relies on it).
//!
//! The upgrade from files written before identities: they are taken as the opening node's,
//! with a [`RecoveryWarning::IdentityRecorded`] for each. The hard-state file is rewritten
//! with the identity at once (after every other check passed); a segment of version 3 keeps
//! its format, takes appends until it fills up and is removed by compaction like any other; a
//! snapshot of version 2 or 1 is replaced by the next one. Nothing needs doing by hand, and a
//! node never refuses its own old files; what it cannot tell is whose they were.
//!
//! # Recovery rules
//!
//! A crash loses only what was not synced, and may tear the last write. So a torn final write
//! is expected and is cut off with a warning — in the last segment only, and only past the
//! synced end its sync slots claim: a record shorter than its declared length with no valid
//! record after it, a record whose checksum fails with nothing but zero bytes (or nothing)
//! after it, a zero-filled tail; and a last segment too short for its header and slots (or
//! all zeros), an interrupted creation. A sync slot that fails its checks is a torn write of
//! it: the other slot's claim is used (and, in the last segment, the slot is rewritten).
//!
//! Everything else is [`StorageError::Corrupt`] with the file and offset, and the journal is
//! left as found: a checksum failure before the tail, a gap or repeated index, a term going
//! backwards or above the saved term, an unknown entry kind, a bad magic or version, both sync
//! slots damaged, a length above [`JournalOptions::record_bytes_max`] (checked before anything
//! is allocated). Lost synced records are refused too, never cut: damage or a cut before the
//! synced end a slot claims ([`Corruption::SyncedRecordsLost`]), or a log that ends before the
//! saved commit index ([`Corruption::CommitBeyondLog`], since entries are synced before a
//! commit index counting them is saved); both name the segment where the intact records end
//! and that byte. The node may have acknowledged those entries, and Raft counts on a voter
//! never losing what it acknowledged, so the operator chooses: restore the data directory, or
//! wipe it so the node rejoins empty. (The alternative, rejoining as a non-voter that refills
//! before it may vote again, is protocol-aware recovery; it needs the Raft core's help.)
//!
//! What recovery keeps becomes the node's log, which it may acknowledge: `open` syncs the
//! directory and, when the last segment holds records its slots do not claim (left by a killed
//! process in the operating system's cache, or past a claim a power cut tore), fsyncs and
//! claims them.
//!
//! What the slots cannot prove, nobody can without an fsync more per batch: the claim on the
//! last batch synced before a power cut may be lost with it (the one before holds), and a last
//! segment cut short of its 80-byte head has no slot left to read (it is taken for an
//! interrupted creation). Damage there is caught only if the saved commit index covers it.

mod codec;
mod disk;
mod error;
mod file_journal;
mod identity;
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
pub use identity::{ClusterId, Identity};
pub use journal::{Journal, Recovery, RecoveryWarning};
pub use memory::MemoryJournal;
#[cfg(feature = "sim")]
pub use sim_disk::{SimDisk, SimDiskStats, SimFile};
pub use snapshot::{
    MEMBERSHIP_BYTES_MAX, Snapshot, SnapshotMeta, SnapshotReader, SnapshotStore, SnapshotWriter,
};
