//! Custom snapshots: the hooks through which your code writes and reads the snapshot files
//! itself (PySyncObj's `serializer`, `deserializer` and `serializeChecker`), set with the
//! `serializer` option of [`SyncObjConf`](crate::conf::SyncObjConf).

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
/// The hooks run on the tick thread. A `serialize` that takes long may start the work elsewhere
/// and return at once; syncobj then polls [`state`](Self::state) on each tick.
pub trait SnapshotSerializer: Send + Sync + 'static {
    /// Writes the state, and `data`, to `path` (a new file) — or starts doing so.
    ///
    /// # Errors
    /// A message saying why nothing will be written; the snapshot is skipped.
    fn serialize(&self, path: &std::path::Path, data: &[u8]) -> Result<(), String>;

    /// Restores the state from the snapshot file at `path` and returns the `data` given to the
    /// `serialize` that wrote it.
    ///
    /// # Errors
    /// A message saying why the file cannot be read; at start the node does not start, and a
    /// snapshot from the leader is refused (the leader sends it again).
    fn deserialize(&self, path: &std::path::Path) -> Result<Vec<u8>, String>;

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
