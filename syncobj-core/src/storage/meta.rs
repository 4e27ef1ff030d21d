//! The hard-state file: term, vote, commit index and the log's first index, replaced atomically.

use std::path::{Path, PathBuf};

use super::codec::{to_usize, u32_at, u64_at};
use super::disk::{Disk, DiskFile};
use super::error::{Corruption, StorageError};
use super::identity::{ClusterId, Identity};
use super::segment::INDEX_MAX;
use crate::raft::{HardState, LogIndex, NodeId, Term};

/// The name of the hard-state file in the journal directory.
pub(crate) const META_FILE: &str = "hard-state";
/// The name it is written under before the rename.
pub(crate) const META_TEMP_FILE: &str = "hard-state.tmp";
/// The first bytes of the file.
const META_MAGIC: [u8; 8] = *b"SOBJHST\0";
/// The format this code writes: with the identity of the node and cluster (since 2).
const META_VERSION: u32 = 2;
/// The first format, without an identity: still read, and rewritten at the open that reads it.
const META_VERSION_1: u32 = 1;

/// Field offsets: magic 0, version 8, term 12, vote flag 20, vote 21, commit 29, first index
/// 37; then (version 2) node id 45, cluster id 53, CRC32C of bytes 0..61 at 61; (version 1)
/// CRC32C of bytes 0..45 at 45.
const VERSION_AT: usize = 8;
const TERM_AT: usize = 12;
const VOTE_FLAG_AT: usize = 20;
const VOTE_AT: usize = 21;
const COMMIT_AT: usize = 29;
const FIRST_AT: usize = 37;
const NODE_AT: usize = 45;
const CLUSTER_AT: usize = 53;
const CRC_AT: usize = 61;
/// The length of the file.
const META_BYTES: usize = 65;
/// Where a version-1 file's CRC is, and its length.
const CRC_AT_1: usize = 45;
const META_BYTES_1: usize = 49;

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
    /// The file's bytes, recording `identity`.
    pub(crate) fn encode(&self, identity: &Identity) -> [u8; META_BYTES] {
        let mut bytes = [0u8; META_BYTES];
        let hard_state = &self.hard_state;
        bytes[..8].copy_from_slice(&META_MAGIC);
        bytes[VERSION_AT..TERM_AT].copy_from_slice(&META_VERSION.to_le_bytes());
        bytes[TERM_AT..VOTE_FLAG_AT].copy_from_slice(&hard_state.term.0.to_le_bytes());
        bytes[VOTE_FLAG_AT] = u8::from(hard_state.vote.is_some());
        let vote = hard_state.vote.map_or(0, |node| node.0);
        bytes[VOTE_AT..COMMIT_AT].copy_from_slice(&vote.to_le_bytes());
        bytes[COMMIT_AT..FIRST_AT].copy_from_slice(&hard_state.commit.0.to_le_bytes());
        bytes[FIRST_AT..NODE_AT].copy_from_slice(&self.first_index.0.to_le_bytes());
        bytes[NODE_AT..CLUSTER_AT].copy_from_slice(&identity.node.0.to_le_bytes());
        bytes[CLUSTER_AT..CRC_AT].copy_from_slice(&identity.cluster.0.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..CRC_AT]);
        bytes[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Decodes and checks the file's bytes: the hard state, and the identity it records (none
    /// in a version-1 file). On failure, the offset and the problem.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Meta, Option<Identity>), (u64, Corruption)> {
        if bytes.get(..8) != Some(&META_MAGIC[..]) {
            return Err((0, Corruption::BadMagic { kind: "hard state" }));
        }
        let version = u32_at(bytes, VERSION_AT).unwrap_or(0);
        let (crc_at, expected) = match version {
            META_VERSION => (CRC_AT, META_BYTES),
            META_VERSION_1 => (CRC_AT_1, META_BYTES_1),
            _ => {
                let problem = Corruption::UnsupportedVersion {
                    found: version,
                    supported: META_VERSION,
                };
                return Err((VERSION_AT as u64, problem));
            }
        };
        if bytes.len() != expected {
            let problem = Corruption::WrongLength {
                found: bytes.len() as u64,
                expected: expected as u64,
            };
            return Err((bytes.len().min(expected) as u64, problem));
        }
        if u32_at(bytes, crc_at) != Some(crc32c::crc32c(&bytes[..crc_at])) {
            return Err((crc_at as u64, Corruption::HeaderChecksum));
        }
        let meta = decode_fields(bytes)?;
        let identity = (version == META_VERSION).then(|| Identity {
            node: NodeId(u64_at(bytes, NODE_AT).unwrap_or(0)),
            cluster: ClusterId(u64_at(bytes, CLUSTER_AT).unwrap_or(0)),
        });
        Ok((meta, identity))
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

/// Reads and checks the hard-state file at `path`: the hard state, and the identity it
/// records (none if it was written before identities were; see [`Meta::decode`]).
///
/// # Errors
/// [`StorageError::Io`] if it cannot be read; [`StorageError::Corrupt`] if it fails a check.
pub(crate) fn load<D: Disk>(
    disk: &D,
    path: &Path,
) -> Result<(Meta, Option<Identity>), StorageError> {
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

/// Replaces the hard-state file in `dir` atomically, recording `identity`: writes a temporary file, syncs it, renames
/// it over the old one and syncs the directory. After a crash at any point, the old or the new
/// content is there, whole.
///
/// # Errors
/// [`StorageError::Io`] naming the step that failed.
pub(crate) fn save<D: Disk>(
    disk: &D,
    dir: &Path,
    meta: &Meta,
    identity: &Identity,
) -> Result<(), StorageError> {
    let temp = dir.join(META_TEMP_FILE);
    let target = dir.join(META_FILE);
    let mut file = disk
        .create(&temp)
        .map_err(|e| StorageError::io("create", &temp, e))?;
    file.write_all_at(0, &meta.encode(identity))
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

    fn identity() -> Identity {
        Identity {
            node: NodeId(0x1234),
            cluster: ClusterId::from_name("test"),
        }
    }

    /// The bytes a version-1 file (before identities) holds for `meta`.
    fn encode_v1(meta: &Meta) -> Vec<u8> {
        let mut bytes = meta.encode(&identity())[..CRC_AT_1].to_vec();
        bytes[VERSION_AT..TERM_AT].copy_from_slice(&META_VERSION_1.to_le_bytes());
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn round_trips() {
        let id = identity();
        assert_eq!(
            Meta::decode(&sample().encode(&id)),
            Ok((sample(), Some(id)))
        );
        let default = Meta::default().encode(&Identity::default());
        assert_eq!(
            Meta::decode(&default),
            Ok((Meta::default(), Some(Identity::default())))
        );
    }

    /// A version-1 file is read, with no identity: the journal records its own at once.
    #[test]
    fn version_1_files_are_read_without_an_identity() {
        let bytes = encode_v1(&sample());
        assert_eq!(bytes.len(), META_BYTES_1);
        assert_eq!(Meta::decode(&bytes), Ok((sample(), None)));
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            assert!(Meta::decode(&damaged).is_err(), "flip at {at} not caught");
        }
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let bytes = sample().encode(&identity());
        for at in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[at] ^= 0xff;
            assert!(Meta::decode(&damaged).is_err(), "flip at {at} not caught");
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample().encode(&identity());
        for len in 0..bytes.len() {
            assert!(
                Meta::decode(&bytes[..len]).is_err(),
                "length {len} accepted"
            );
        }
    }
}
