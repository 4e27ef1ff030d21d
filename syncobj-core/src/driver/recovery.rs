//! What a node finds on its disks at start: the journal and the latest snapshot, loaded into
//! its objects, checked against each other.

use std::path::Path;
use std::sync::Arc;

use super::StartError;
use super::objects::ErasedObject;
use super::persistence::Persistence;
use super::snapshot_codec::Carried;
use super::snapshots::{Restore, Snapshots};
use crate::conf::SyncObjConf;
use crate::raft::{LogIndex, LogReset, Restored};
use crate::storage::Identity;

/// A node's durable state, recovered.
pub(crate) struct Recovered {
    pub(crate) persistence: Option<Persistence>,
    pub(crate) snapshots: Snapshots,
    pub(crate) restored: Restored,
    /// The code version and cluster time of the snapshot, if one was loaded.
    pub(crate) carried: Option<Carried>,
}

impl Recovered {
    /// Whether there is anything committed to apply at once.
    pub(crate) fn has_committed(&self) -> bool {
        self.restored.hard_state.commit > LogIndex::ZERO || self.restored.snapshot.is_some()
    }
}

/// Opens the journal and the snapshots `conf` names (none: an empty node) and loads the latest
/// snapshot into `objects`. `slot` is this node's place among the voters, for
/// `log_compaction_split`; `identity` is the node's and its cluster's, which the files must
/// record.
pub(crate) fn recover(
    conf: &SyncObjConf,
    objects: &[Arc<dyn ErasedObject>],
    slot: (u64, u64),
    identity: Identity,
) -> Result<Recovered, StartError> {
    let journal = match &conf.journal_file {
        Some(path) => Some(Persistence::open(path, conf, identity)?),
        None => None,
    };
    let snapshots = Snapshots::open(conf, slot, identity, objects).map_err(StartError::Snapshot)?;
    assemble(journal, snapshots, conf.journal_file.as_deref())
}

/// Where a node keeps its files: the real file system, or a simulated disk
/// (`NodeBuilder::sim_disk`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Disks {
    #[cfg(feature = "sim")]
    pub(crate) sim: Option<crate::storage::SimDisk>,
}

impl Disks {
    /// Like [`recover`], on the simulated disk if there is one: the journal at `journal_file`
    /// (`journal` if unset) from the disk's root, the snapshots where `conf` puts them.
    pub(crate) fn recover(
        &self,
        conf: &SyncObjConf,
        objects: &[Arc<dyn ErasedObject>],
        slot: (u64, u64),
        identity: Identity,
    ) -> Result<Recovered, StartError> {
        #[cfg(feature = "sim")]
        if let Some(disk) = &self.sim {
            // The simulated disk has no working directory: paths start at its root.
            let journal = std::path::Path::new("/").join(
                conf.journal_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new("journal")),
            );
            let conf = &conf.to_builder().journal_file(&journal).build()?;
            let snapshots = std::path::Path::new("/")
                .join(super::snapshots::store_dir(conf).unwrap_or_default());
            let layout = DiskLayout {
                journal: &journal,
                snapshots: &snapshots,
            };
            return recover_on_disk(disk, &layout, conf, slot, identity, objects);
        }
        recover(conf, objects, slot, identity)
    }

    /// A crash of the process loses what the simulated disk did not sync.
    pub(crate) fn crash(&self) {
        #[cfg(feature = "sim")]
        if let Some(disk) = &self.sim {
            disk.crash();
        }
    }
}

/// Puts a recovered journal and snapshot together, checking that the snapshot covers what the
/// journal dropped (the journal at `journal_path`, for the error).
pub(crate) fn assemble(
    journal: Option<(Persistence, Restored)>,
    (snapshots, restore): (Snapshots, Option<Restore>),
    journal_path: Option<&Path>,
) -> Result<Recovered, StartError> {
    let (mut persistence, mut restored) = match journal {
        Some((persistence, restored)) => (Some(persistence), restored),
        None => (None, Restored::default()),
    };
    restored.snapshot = restore.as_ref().map(|r| r.position);
    // Below the journal's configuration entries, above the builder's partners (see
    // `RaftNode::new`).
    restored.membership = restore.as_ref().and_then(|r| r.membership.clone());
    if let Some(first) = restored.entries.first() {
        let covered = restored.snapshot.map_or(LogIndex::ZERO, |s| s.index);
        if first.index > covered.next() {
            return Err(StartError::CompactedJournal {
                path: journal_path.map(Path::to_path_buf).unwrap_or_default(),
                first_index: first.index.0,
            });
        }
    }
    if let (Some(snapshot), Some(persistence)) = (restored.snapshot, persistence.as_mut()) {
        // A crash between making a snapshot durable and resetting the journal to it leaves the
        // journal behind the snapshot, or holding a suffix that does not follow it: finish the
        // reset now, as the snapshot's install would have.
        // The entries after the snapshot follow it if the journal holds its last entry with its
        // term, or was compacted up to exactly that entry.
        let suffix_kept = restored.entries.first().is_some_and(|first| {
            first.index == snapshot.index.next()
                || restored
                    .entries
                    .iter()
                    .any(|e| e.index == snapshot.index && e.term == snapshot.term)
        });
        persistence.reset(LogReset {
            snapshot,
            suffix_kept,
        })?;
        restored
            .entries
            .retain(|e| suffix_kept && e.index > snapshot.index);
    }
    if let Some(snapshot) = restored.snapshot {
        // Without a journal (a dump file only) the node still knows what the snapshot proves:
        // its term was reached and its entries committed.
        let hard_state = &mut restored.hard_state;
        hard_state.term = hard_state.term.max(snapshot.term);
        hard_state.commit = hard_state.commit.max(snapshot.index);
    }
    Ok(Recovered {
        persistence,
        snapshots,
        restored,
        carried: restore.map(|r| r.carried),
    })
}

/// Where [`recover_on_disk`] finds a node's files.
#[cfg(any(test, feature = "sim"))]
pub(crate) struct DiskLayout<'a> {
    /// The journal directory.
    pub(crate) journal: &'a Path,
    /// The snapshot store's directory.
    pub(crate) snapshots: &'a Path,
}

/// Like [`recover`], on any `disk` (the simulator's, a test's) with both a journal and a
/// snapshot store at `layout`, configured by `conf`.
#[cfg(any(test, feature = "sim"))]
pub(crate) fn recover_on_disk<D>(
    disk: &D,
    layout: &DiskLayout<'_>,
    conf: &SyncObjConf,
    slot: (u64, u64),
    identity: Identity,
    objects: &[Arc<dyn ErasedObject>],
) -> Result<Recovered, StartError>
where
    D: crate::storage::Disk + Clone + Send + 'static,
    D::File: Send,
{
    let record_bytes_max = (conf.frame_size_max as u64).saturating_add(64 << 10);
    let journal = Persistence::open_on(
        disk.clone(),
        layout.journal,
        record_bytes_max,
        conf.journal_fsync,
        identity,
    )?;
    let (store, _) =
        crate::storage::SnapshotStore::open_as(disk.clone(), layout.snapshots, identity)?;
    let snapshots = Snapshots::with_store(conf, slot, Some(Box::new(store)), objects)
        .map_err(StartError::Snapshot)?;
    assemble(Some(journal), snapshots, Some(layout.journal))
}
