//! [`SnapshotError`]: why a node could not take, keep, load, receive or install a snapshot.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::raft::{self, LogPosition};
use crate::storage::StorageError;

/// Why a snapshot could not be taken, kept in the snapshot store, loaded at start, received
/// from the leader or installed.
///
/// At start it stops the node ([`StartError::Snapshot`](super::StartError::Snapshot)); while
/// the node runs, a snapshot that fails is skipped (the log is not compacted) or, from the
/// leader, refused (the leader sends it again), and the error is logged.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The snapshot store failed: the message names the file, the offset and the operator's
    /// choices.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The snapshot's envelope (format, code version, the objects' states) could not be
    /// encoded.
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[source] rmp_serde::encode::Error),
    /// The snapshot's envelope could not be decoded: the bytes are not a snapshot.
    #[error("undecodable snapshot: {0}")]
    Decode(#[source] rmp_serde::decode::Error),
    /// The snapshot is in a format this build does not read.
    #[error("snapshot payload format {found} (this build reads {supported})")]
    Format {
        /// The snapshot's format number.
        found: u32,
        /// The one this build reads.
        supported: u32,
    },
    /// The snapshot holds the states of another number of objects than this node has (its
    /// main object and its consumers).
    #[error("the snapshot holds {held} objects, this node has {expected}")]
    ObjectCount {
        /// The states in the snapshot.
        held: usize,
        /// The objects of this node.
        expected: usize,
    },
    /// An object's state could not be serialized.
    #[error("cannot serialize {object}: {source}")]
    EncodeObject {
        /// The object's type.
        object: &'static str,
        /// What MessagePack said.
        source: rmp_serde::encode::Error,
    },
    /// An object's state in the snapshot does not decode as that object's type.
    #[error("cannot decode {object} from the snapshot: {source}")]
    DecodeObject {
        /// The object's type.
        object: &'static str,
        /// What MessagePack said.
        source: rmp_serde::decode::Error,
    },
    /// A chunk from the leader does not continue the snapshot being received: the transfer
    /// starts over.
    #[error("chunk at {offset} of {snapshot} out of order")]
    OutOfOrder {
        /// The snapshot the chunk belongs to.
        snapshot: LogPosition,
        /// Where the chunk starts.
        offset: u64,
    },
    /// The membership stored with the snapshot does not decode.
    #[error("the membership stored in the snapshot {path:?} does not decode: {error}")]
    Membership {
        /// The snapshot file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        error: crate::raft::MembershipError,
    },
    /// A snapshot from the leader is larger than a node accepts.
    #[error("snapshot {snapshot} exceeds {max} bytes")]
    TooLarge {
        /// The snapshot.
        snapshot: LogPosition,
        /// The most bytes a received snapshot may have.
        max: usize,
    },
    /// A hook of the user's [`SnapshotSerializer`](crate::serializer::SnapshotSerializer)
    /// returned an error.
    #[error("the custom {hook} failed: {source}")]
    Hook {
        /// The hook that failed.
        hook: SnapshotHook,
        /// The hook's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The user's serializer reported, through its `state`, that the snapshot will not be
    /// complete.
    #[error("the custom serializer reported a failure")]
    HookReportedFailure,
    /// A file exchanged with the user's hooks could not be written or read.
    #[error("cannot {action} the custom snapshot file {path}: {source}", path = path.display())]
    HookFile {
        /// `"write"` or `"read"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A thread that serializes a snapshot or writes it to the store could not be started.
    #[error("cannot start a snapshot thread: {0}")]
    Thread(#[source] std::io::Error),
    /// Serializing the objects panicked (a user's `Serialize` implementation, or the
    /// `serialize` hook): the snapshot is skipped, the node goes on.
    #[error("serializing the snapshot panicked: {0}")]
    Panicked(String),
    /// The snapshot store went with a writer thread that ended without handing it back;
    /// restart the node.
    #[error(
        "the snapshot store is gone: its writer thread ended without handing it back; restart the node"
    )]
    StoreLost,
    /// The Raft node refused a snapshot from the leader once it was installed.
    #[error("the Raft node refused the installed snapshot: {0}")]
    Refused(#[source] raft::SnapshotError),
}

/// Which hook of the user's [`SnapshotSerializer`](crate::serializer::SnapshotSerializer)
/// failed, in [`SnapshotError::Hook`]; `Display` gives PySyncObj's name for it.
///
/// (Not `Serialize` and `Deserialize`: public items of those names would make the compiler
/// spell serde's traits by their full paths in every diagnostic of a crate using syncobj.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotHook {
    /// `serialize`, which saves the state to a snapshot file (PySyncObj `serializer`).
    Save,
    /// `deserialize`, which loads the state from one (PySyncObj `deserializer`).
    Load,
}

impl fmt::Display for SnapshotHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotHook::Save => "serializer",
            SnapshotHook::Load => "deserializer",
        })
    }
}
