//! The hard-state file: term, vote, commit index and the log's first index, replaced atomically.

use std::path::{Path, PathBuf};

use super::codec::{to_usize, u32_at, u64_at};
use super::disk::{Disk, DiskFile};
use super::error::{Corruption, StorageError};
use super::segment::INDEX_MAX;
use crate::raft::{HardState, LogIndex, NodeId, Term};

/// The name of the hard-state file in the journal directory.
pub(crate) const META_FILE: &str = "hard-state";
/// The name it is written under before the rename.
pub(crate) const META_TEMP_FILE: &str = "hard-state.tmp";
/// The first bytes of the file.
const META_MAGIC: [u8; 8] = *b"SOBJHST\0";
/// The format this code writes and reads.
const META_VERSION: u32 = 1;

/// Field offsets: magic 0, version 8, term 12, vote flag 20, vote 21, commit 29, first index
/// 37, CRC32C of bytes 0..45 at 45.
const VERSION_AT: usize = 8;
const TERM_AT: usize = 12;
const VOTE_FLAG_AT: usize = 20;
const VOTE_AT: usize = 21;
const COMMIT_AT: usize = 29;
const FIRST_AT: usize = 37;
const CRC_AT: usize = 45;
/// The length of the file.
const META_BYTES: usize = 49;

/// What the hard-state file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Term, vote and commit index.
    pub(crate) hard_state: HardState,
    /// The index of the first entry the log keeps; entries before it were dropped.
    pub(crate) first_index: LogIndex,
}

impl Default for Meta {
    fn default() -> Meta {
        Meta {
            hard_state: HardState::default(),
            first_index: LogIndex(1),
        }
    }
}

impl Meta {
    /// The file's bytes.
    pub(crate) fn encode(&self) -> [u8; META_BYTES] {
        let mut bytes = [0u8; META_BYTES];
        let hard_state = &self.hard_state;
        bytes[..8].copy_from_slice(&META_MAGIC);
        bytes[VERSION_AT..TERM_AT].copy_from_slice(&META_VERSION.to_le_bytes());
        bytes[TERM_AT..VOTE_FLAG_AT].copy_from_slice(&hard_state.term.0.to_le_bytes());
        bytes[VOTE_FLAG_AT] = u8::from(hard_state.vote.is_some());
        let vote = hard_state.vote.map_or(0, |node| node.0);
        bytes[VOTE_AT..COMMIT_AT].copy_from_slice(&vote.to_le_bytes());
        bytes[COMMIT_AT..FIRST_AT].copy_from_slice(&hard_state.commit.0.to_le_bytes());
        bytes[FIRST_AT..CRC_AT].copy_from_slice(&self.first_index.0.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..CRC_AT]);
        bytes[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Decodes and checks the file's bytes; on failure, the offset and the problem.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Meta, (u64, Corruption)> {
        if bytes.get(..8) != Some(&META_MAGIC[..]) {
            return Err((0, Corruption::BadMagic { kind: "hard state" }));
        }
        let version = u32_at(bytes, VERSION_AT).unwrap_or(0);
        if version != META_VERSION {
            let problem = Corruption::UnsupportedVersion {
                found: version,
                supported: META_VERSION,
            };
            return Err((VERSION_AT as u64, problem));
        }
        if bytes.len() != META_BYTES {
            let problem = Corruption::WrongLength {
                found: bytes.len() as u64,
                expected: META_BYTES as u64,
            };
            return Err((bytes.len().min(META_BYTES) as u64, problem));
        }
        if u32_at(bytes, CRC_AT) != Some(crc32c::crc32c(&bytes[..CRC_AT])) {
            return Err((CRC_AT as u64, Corruption::HeaderChecksum));
        }
        decode_fields(bytes)
    }
}

/// Decodes the checksummed fields, rejecting values the writer never produces.
fn decode_fields(bytes: &[u8]) -> Result<Meta, (u64, Corruption)> {
    let field = |at: usize, name: &'static str| {
        u64_at(bytes, at).ok_or((at as u64, Corruption::InvalidField { field: name }))
    };
    let vote_raw = field(VOTE_AT, "vote")?;
    let vote = match bytes.get(VOTE_FLAG_AT) {
        Some(0) if vote_raw == 0 => None,
        Some(1) => Some(NodeId(vote_raw)),
        _ => {
            let problem = Corruption::InvalidField { field: "vote" };
            return Err((VOTE_FLAG_AT as u64, problem));
        }
    };
    let first_index = field(FIRST_AT, "first index")?;
    if !(1..=INDEX_MAX).contains(&first_index) {
        let problem = Corruption::InvalidField {
            field: "first index",
        };
        return Err((FIRST_AT as u64, problem));
    }
    Ok(Meta {
        hard_state: HardState {
            term: Term(field(TERM_AT, "term")?),
            vote,
            commit: LogIndex(field(COMMIT_AT, "commit index")?),
        },
        first_index: LogIndex(first_index),
    })
}

/// Reads and checks the hard-state file at `path`.
///
/// # Errors
/// [`StorageError::Io`] if it cannot be read; [`StorageError::Corrupt`] if it fails a check.
pub(crate) fn load<D: Disk>(disk: &D, path: &Path) -> Result<Meta, StorageError> {
    let mut file = disk
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let len = file
        .size()
        .map_err(|e| StorageError::io("measure", path, e))?;
    // Read at most one byte more than the format's length, so an overlong file is reported
    // without reading it all.
    let mut bytes = vec![0u8; to_usize(len.min(META_BYTES as u64 + 1))];
    file.read_exact_at(0, &mut bytes)
        .map_err(|e| StorageError::io("read", path, e))?;
    Meta::decode(&bytes).map_err(|(offset, problem)| StorageError::corrupt(path, offset, problem))
}

/// Replaces the hard-state file in `dir` atomically: writes a temporary file, syncs it, renames
/// it over the old one and syncs the directory. After a crash at any point, the old or the new
/// content is there, whole.
///
/// # Errors
/// [`StorageError::Io`] naming the step that failed.
pub(crate) fn save<D: Disk>(disk: &D, dir: &Path, meta: &Meta) -> Result<(), StorageError> {
    let temp = dir.join(META_TEMP_FILE);
    let target = dir.join(META_FILE);
    let mut file = disk
        .create(&temp)
        .map_err(|e| StorageError::io("create", &temp, e))?;
    file.write_all_at(0, &meta.encode())
        .map_err(|e| StorageError::io("write", &temp, e))?;
    file.sync()
        .map_err(|e| StorageError::io("sync", &temp, e))?;
    drop(file);
    disk.rename(&temp, &target)
        .map_err(|e| StorageError::io("rename", &temp, e))?;
    disk.sync_dir(dir)
        .map_err(|e| StorageError::io("sync directory", dir, e))
}

/// The path of the hard-state file in `dir`.
pub(crate) fn meta_path(dir: &Path) -> PathBuf {
    dir.join(META_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            hard_state: HardState {
                term: Term(5),
                vote: Some(NodeId(3)),
                commit: LogIndex(17),
            },
            first_index: LogIndex(4),
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(Meta::decode(&sample().encode()), Ok(sample()));
        assert_eq!(Meta::decode(&Meta::default().encode()), Ok(Meta::default()));
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let bytes = sample().encode();
        for at in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[at] ^= 0xff;
            assert!(Meta::decode(&damaged).is_err(), "flip at {at} not caught");
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                Meta::decode(&bytes[..len]).is_err(),
                "length {len} accepted"
            );
        }
    }
}
