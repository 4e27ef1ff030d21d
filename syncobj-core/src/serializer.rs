//! Custom snapshots: the hooks through which your code writes and reads the snapshot files
//! itself (PySyncObj's `serializer`, `deserializer` and `serializeChecker`), set with the
//! [`serializer`](crate::conf::SyncObjConfBuilder::serializer) option.

use std::error::Error;
use std::path::Path;

/// Custom snapshots (PySyncObj's `serializer`, `deserializer` and `serializeChecker`): for
/// states kept outside the replicated object (a database, files), which syncobj cannot
/// serialize itself.
///
/// At each compaction syncobj calls [`serialize`](Self::serialize) with a file path and its own
/// opaque `data`; the file your code writes there *is* the snapshot: syncobj stores it, sends
/// it to followers that are too far behind, and on them and at restart hands it to
/// [`deserialize`](Self::deserialize), which restores your state and returns `data`. The
/// replicated objects' own fields are not saved: keep the state where the hooks reach it.
///
/// [`serialize`](Self::serialize) runs on a snapshot thread of syncobj's while the node applies
/// no entry (it goes on replicating and taking calls), so the state it saves is exactly the one
/// after the snapshot's last entry, and however long it takes it does not stall the tick loop;
/// applying resumes when it returns. A `serialize` may also start the work elsewhere and return
/// at once; syncobj then polls [`state`](Self::state) on each tick, and the node applies again
/// meanwhile: the work must then save the state as it was when `serialize` was called. The
/// other hooks run on the tick thread. A hook's error
/// reaches the node's log (and, at start, the caller) as
/// [`SnapshotError::Hook`](crate::driver::SnapshotError::Hook), with the hook's error as its
/// source.
///
/// ```
/// use std::error::Error;
/// use std::path::Path;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use syncobj_core::conf::SyncObjConf;
/// use syncobj_core::serializer::SnapshotSerializer;
///
/// /// A total kept outside the replicated object, saved in front of syncobj's data.
/// struct TotalHooks(Arc<AtomicI64>);
///
/// impl SnapshotSerializer for TotalHooks {
///     fn serialize(&self, path: &Path, data: &[u8]) -> Result<(), Box<dyn Error + Send + Sync>> {
///         let mut bytes = self.0.load(Ordering::SeqCst).to_le_bytes().to_vec();
///         bytes.extend_from_slice(data);
///         std::fs::write(path, bytes)?;
///         Ok(())
///     }
///
///     fn deserialize(&self, path: &Path) -> Result<Vec<u8>, Box<dyn Error + Send + Sync>> {
///         let bytes = std::fs::read(path)?;
///         let (total, data) = bytes
///             .split_at_checked(8)
///             .ok_or("the snapshot is shorter than its total")?;
///         self.0.store(i64::from_le_bytes(total.try_into()?), Ordering::SeqCst);
///         Ok(data.to_vec())
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn Error>> {
/// let conf = SyncObjConf::builder()
///     .serializer(TotalHooks(Arc::default()))
///     .build()?;
/// assert!(conf.serializer().is_some());
/// # Ok(())
/// # }
/// ```
pub trait SnapshotSerializer: Send + Sync + 'static {
    /// Writes the state, and `data`, to `path` (a new file) — or starts doing so.
    ///
    /// # Errors
    /// Why nothing will be written (any error type, boxed; a `&str` or a `String` converts
    /// with `?` or `.into()`): the snapshot is skipped and the error logged, and the log is
    /// compacted at the next snapshot instead.
    fn serialize(&self, path: &Path, data: &[u8]) -> Result<(), Box<dyn Error + Send + Sync>>;

    /// Restores the state from the snapshot file at `path` and returns the `data` given to the
    /// `serialize` that wrote it.
    ///
    /// # Errors
    /// Why the file cannot be read (any error type, boxed): at start the node does not start
    /// ([`StartError::Snapshot`](crate::driver::StartError::Snapshot)), and a snapshot from the
    /// leader is refused (the leader sends it again).
    fn deserialize(&self, path: &Path) -> Result<Vec<u8>, Box<dyn Error + Send + Sync>>;

    /// The progress of the last [`serialize`](Self::serialize) (PySyncObj `serializeChecker`):
    /// [`SerializerState::Success`] or [`SerializerState::Failed`] once it ended. The default
    /// says a `serialize` is over when it returns.
    fn state(&self) -> SerializerState {
        SerializerState::NotSerializing
    }
}

/// Where an asynchronous [`SnapshotSerializer::serialize`] stands (PySyncObj
/// `SERIALIZER_STATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SerializerState {
    /// Nothing in progress: a `serialize` that returned is over (PySyncObj `NOT_SERIALIZING`).
    NotSerializing,
    /// The file is being written (`SERIALIZING`).
    Serializing,
    /// The file is complete (`SUCCESS`).
    Success,
    /// The file will not be complete (`FAILED`).
    Failed,
}
