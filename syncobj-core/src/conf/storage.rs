//! The storage options: the journal and when it syncs, the snapshot store, the compaction
//! policy, and custom snapshot hooks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::reject_zeros;
use super::{ConfError, SyncObjConf, SyncObjConfBuilder};
use crate::serializer::SnapshotSerializer;
use crate::storage::ClusterId;

options! {
    /// When the journal waits for the disk (not in PySyncObj, whose journal never syncs). Only
    /// [`FsyncPolicy::Always`] keeps every acknowledged write through a power cut. Default:
    /// `Always`.
    journal_fsync: FsyncPolicy;

    /// Take a snapshot and compact the log once this many entries were applied since the last
    /// one (PySyncObj `logCompactionMinEntries`). At least 2. Default: 5000.
    log_compaction_min_entries: u64;

    /// … or when this long has passed since the last snapshot (PySyncObj
    /// `logCompactionMinTime`). Must be positive. Default: 300 s.
    log_compaction_min_time: Duration;

    /// Stagger compaction so that nodes take their snapshots in separate time windows
    /// (PySyncObj `logCompactionSplit`): the time trigger fires for the n-th of N voters only
    /// in the n-th N-th of each `log_compaction_min_time`. Default: `false`.
    log_compaction_split: bool;

    /// The chunk size, in bytes, in which a snapshot is sent to a follower that is too far
    /// behind (PySyncObj `logCompactionBatchSize`). Must be positive and fit in a frame
    /// (`frame_size_max`). Default: 64 KiB.
    log_compaction_batch_size: usize;

    /// PySyncObj `useFork`: write snapshots from a forked child. Default: `true`.
    ///
    /// Ignored by design: Rust has no fork-based snapshots; syncobj writes a snapshot from a
    /// copy of the state on a helper thread, so the tick loop never waits for the disk.
    use_fork: bool;
}

impl SyncObjConfBuilder {
    /// Sets where the log and the hard state (term, vote, commit index) are kept (PySyncObj
    /// `journalFile`): a directory of segment files, created if missing. A node restarted on it
    /// recovers its vote and log and re-applies its committed entries at once, before any
    /// leader is known. Default: none: in memory only, and a restarted node starts empty and is
    /// refilled by the leader (PySyncObj without a journal).
    pub fn journal_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.conf.journal_file = Some(path.into());
        self
    }

    /// Names the cluster (not in PySyncObj). Every file a node writes (hard state, log
    /// segments, snapshots) records the cluster's id, a hash of this name, beside the node's
    /// own (a hash of its address); at start, a node refuses a file of another cluster or
    /// another node, copied from another data directory
    /// ([`StorageError::ForeignFile`](crate::storage::StorageError::ForeignFile)).
    ///
    /// Give every node of a cluster the same name, those that join later included, and keep
    /// it for the cluster's life: membership changes leave it alone, and a node restarted
    /// under another name refuses its own files. Default: none; every cluster without a name
    /// has the same id, so only a name tells two clusters' files apart (as etcd's
    /// `initial-cluster-token` does).
    pub fn cluster_name(mut self, name: impl Into<String>) -> Self {
        self.conf.cluster_name = Some(name.into());
        self
    }

    /// Sets the directory where snapshots are kept (PySyncObj `fullDumpFile`); a node restarts
    /// from the latest one. Default: none: beside the journal (`<journal_file>.snapshots`) when
    /// there is one, else in memory only (a restarted node is refilled by the leader).
    pub fn full_dump_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.conf.full_dump_file = Some(path.into());
        self
    }

    /// Sets custom snapshots: your code writes and reads the snapshot files instead of syncobj
    /// serializing the objects (PySyncObj `serializer`, `deserializer` and `serializeChecker`,
    /// as one [`SnapshotSerializer`]). Default: none: syncobj serializes every object with
    /// serde.
    pub fn serializer(mut self, serializer: impl SnapshotSerializer) -> Self {
        self.conf.serializer = Some(Arc::new(serializer));
        self
    }
}

impl SyncObjConf {
    /// The `cluster_name` option, if set; see [`SyncObjConfBuilder::cluster_name`].
    pub fn cluster_name(&self) -> Option<&str> {
        self.cluster_name.as_deref()
    }

    /// The id the cluster's files record: a hash of its name (of the empty name without one).
    pub(crate) fn cluster_id(&self) -> ClusterId {
        ClusterId::from_name(self.cluster_name().unwrap_or(""))
    }

    /// The `journal_file` option, if set; see [`SyncObjConfBuilder::journal_file`].
    pub fn journal_file(&self) -> Option<&Path> {
        self.journal_file.as_deref()
    }

    /// The `full_dump_file` option, if set; see [`SyncObjConfBuilder::full_dump_file`].
    pub fn full_dump_file(&self) -> Option<&Path> {
        self.full_dump_file.as_deref()
    }

    /// The `serializer` option, if set; see [`SyncObjConfBuilder::serializer`].
    pub fn serializer(&self) -> Option<&Arc<dyn SnapshotSerializer>> {
        self.serializer.as_ref()
    }
}

/// When the journal makes its writes durable ([`SyncObjConfBuilder::journal_fsync`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FsyncPolicy {
    /// Every batch of writes is synced before anything that depends on it is acknowledged or
    /// sent: one sync per group (everything handed to the journal writer while it synced the
    /// previous group), however many calls it carries (group commit). Nothing
    /// acknowledged is lost, whatever crashes. The default.
    #[default]
    Always,
    /// Writes reach the operating system at once and the disk at most this long after: a
    /// crash of the process loses nothing, a power cut may lose what was acknowledged in the
    /// last period, votes included.
    Periodic(Duration),
    /// Writes reach the operating system and the disk only when it chooses: PySyncObj's
    /// behaviour and speed. **Unsafe**: a power cut may lose acknowledged writes and votes.
    Never,
}

/// Adds to `errors` every storage rule `conf` breaks.
pub(super) fn check(conf: &SyncObjConf, errors: &mut Vec<ConfError>) {
    reject_zeros(
        errors,
        &[
            (
                "log_compaction_batch_size",
                conf.log_compaction_batch_size == 0,
            ),
            (
                "log_compaction_min_time",
                conf.log_compaction_min_time.is_zero(),
            ),
        ],
    );
    if conf.log_compaction_min_entries < 2 {
        errors.push(ConfError::CompactionMinEntriesTooSmall {
            log_compaction_min_entries: conf.log_compaction_min_entries,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_names, only_error};
    use super::{ConfError, FsyncPolicy, SyncObjConf};

    /// `log_compaction_min_entries` must be at least 2.
    #[test]
    fn compaction_needs_two_entries() {
        let error = only_error(SyncObjConf::builder().log_compaction_min_entries(1));
        assert_eq!(
            error,
            ConfError::CompactionMinEntriesTooSmall {
                log_compaction_min_entries: 1
            }
        );
        assert_names(&error, &["log_compaction_min_entries", "1"]);
        let conf = SyncObjConf::builder().log_compaction_min_entries(2).build();
        assert!(conf.is_ok(), "{conf:?}");
    }

    /// The journal options are kept as given; the cluster's id is a hash of its name.
    #[test]
    fn journal_options_are_kept() {
        let unnamed = SyncObjConf::default();
        assert_eq!(unnamed.cluster_name(), None);
        assert_eq!(
            unnamed.cluster_id(),
            crate::storage::ClusterId::from_name("")
        );
        let conf = SyncObjConf::builder()
            .cluster_name("orders")
            .journal_file("journal")
            .journal_fsync(FsyncPolicy::Periodic(std::time::Duration::from_millis(50)))
            .build()
            .expect("valid");
        assert_eq!(conf.journal_file(), Some(std::path::Path::new("journal")));
        assert_eq!(conf.cluster_name(), Some("orders"));
        assert_eq!(
            conf.cluster_id(),
            crate::storage::ClusterId::from_name("orders")
        );
        assert_eq!(
            conf.journal_fsync(),
            FsyncPolicy::Periodic(std::time::Duration::from_millis(50))
        );
    }
}
