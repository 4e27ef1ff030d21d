//! The node's durable state: the Raft journal, written as each `Ready` asks. The journal
//! writer ([`writer`](super::writer)) owns it once the node runs, and syncs as the fsync policy
//! says.

use std::path::Path;
use std::time::Duration;

use super::StartError;
use crate::conf::{FsyncPolicy, SyncObjConf};
use crate::raft::{Entry, HardState, Instant, LogIndex, LogReset, Restored};
use crate::status::JournalStatus;
use crate::storage::{Disk, FileJournal, Identity, Journal, JournalOptions, StdDisk, StorageError};

/// How often a commit index that moved alone is saved. Saving the hard state costs three
/// syncs (temporary file, rename, directory), which every call would pay otherwise; Raft's
/// safety never needs the commit index durable, it only lets a restarted node re-apply its
/// entries before it hears from a leader (PySyncObj saves it once a second too).
const COMMIT_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A journal, whether it holds unsynced writes, and the commit index waiting to be saved.
pub(crate) struct Persistence {
    journal: Box<dyn Journal + Send>,
    policy: FsyncPolicy,
    /// Writes not yet synced.
    dirty: bool,
    /// A hard state whose only change is its commit index, held until the interval passes.
    held: Option<HardState>,
    last_commit_save: Instant,
}

impl Persistence {
    /// Opens (or creates) the journal directory at `path` on the real disk, as `conf` says,
    /// and recovers what it holds.
    pub(crate) fn open(
        path: &Path,
        conf: &SyncObjConf,
        identity: Identity,
    ) -> Result<(Persistence, Restored), StartError> {
        // A record holds one entry: at most a frame's worth of command.
        let record_bytes_max = (conf.frame_size_max as u64).saturating_add(64 << 10);
        Persistence::open_on(
            StdDisk,
            path,
            record_bytes_max,
            conf.journal_fsync,
            identity,
        )
    }

    /// Opens (or creates) the journal directory at `path` on `disk` and recovers what it holds,
    /// refusing files of another `identity`.
    pub(crate) fn open_on<D>(
        disk: D,
        path: &Path,
        record_bytes_max: u64,
        policy: FsyncPolicy,
        identity: Identity,
    ) -> Result<(Persistence, Restored), StartError>
    where
        D: Disk + Send + 'static,
        D::File: Send,
    {
        let options = JournalOptions {
            record_bytes_max,
            identity,
            ..JournalOptions::default()
        };
        let (journal, recovery) = FileJournal::open(disk, path.to_path_buf(), options)?;
        for warning in &recovery.warnings {
            tracing::warn!(journal = %path.display(), %warning, "journal recovery");
        }
        tracing::debug!(
            journal = %path.display(),
            entries = recovery.entries.len(),
            term = %recovery.hard_state.term,
            commit = %recovery.hard_state.commit,
            "journal recovered"
        );
        let restored = Restored {
            hard_state: recovery.hard_state,
            entries: recovery.entries,
            snapshot: None,
            membership: None,
        };
        Ok((Persistence::new(Box::new(journal), policy), restored))
    }

    /// Persistence through `journal` under `policy`.
    pub(crate) fn new(journal: Box<dyn Journal + Send>, policy: FsyncPolicy) -> Persistence {
        Persistence {
            journal,
            policy,
            dirty: false,
            held: None,
            last_commit_save: Instant::ZERO,
        }
    }

    /// The fsync policy the journal was opened with.
    pub(crate) fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Writes what a `Ready` asks to persist (the hard state first), durable only after
    /// [`sync`](Self::sync).
    pub(crate) fn write(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
        now: Instant,
    ) -> Result<(), StorageError> {
        if let Some(hard_state) = hard_state {
            self.hold_or_set(hard_state, now)?;
        }
        self.journal.splice(entries)?;
        self.dirty = true;
        Ok(())
    }

    /// Hands what was written to the operating system, without waiting for the disk (the
    /// relaxed fsync policies).
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        self.journal.flush()
    }

    /// Resets the journal to an installed snapshot (before anything else of the same `Ready`):
    /// drops what the snapshot covers, and everything after it unless the log kept a matching
    /// suffix. Durable when it returns.
    pub(crate) fn reset(&mut self, reset: LogReset) -> Result<(), StorageError> {
        let index = reset.snapshot.index;
        if !reset.suffix_kept && index.next() <= self.journal.last_index() {
            self.journal
                .truncate_suffix(index.next().max(self.journal.first_index()))?;
        }
        self.journal.drop_prefix(index)
    }

    /// Drops the entries a durable snapshot covers, up to `index`.
    pub(crate) fn drop_prefix(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.journal.drop_prefix(index)
    }

    /// Sets a new term or vote at once; holds a hard state that only moves the commit index
    /// until [`COMMIT_SAVE_INTERVAL`] has passed since the last such save.
    fn hold_or_set(&mut self, hard_state: HardState, now: Instant) -> Result<(), StorageError> {
        let saved = self.journal.hard_state();
        let vote_changed = (hard_state.term, hard_state.vote) != (saved.term, saved.vote);
        if vote_changed || now - self.last_commit_save >= COMMIT_SAVE_INTERVAL {
            self.held = None;
            self.last_commit_save = now;
            self.journal.set_hard_state(hard_state)
        } else {
            self.held = Some(hard_state);
            Ok(())
        }
    }

    /// Makes everything written durable.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.journal.sync()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Saves the held commit index too, then syncs: at shutdown, whatever the policy.
    pub(crate) fn sync_all(&mut self) -> Result<(), StorageError> {
        if let Some(hard_state) = self.held.take() {
            self.journal.set_hard_state(hard_state)?;
            self.dirty = true;
        }
        self.sync()
    }

    /// The hard state set and the last index written (no I/O).
    #[cfg(feature = "sim")]
    pub(crate) fn view(&self) -> (HardState, LogIndex) {
        (self.journal.hard_state(), self.journal.last_index())
    }

    /// The journal's size and entries, as it knows them (no I/O).
    pub(crate) fn status(&self) -> JournalStatus {
        let (first, last) = (self.journal.first_index(), self.journal.last_index());
        JournalStatus {
            bytes: self.journal.disk_bytes(),
            entries: (last.0 + 1).saturating_sub(first.0),
        }
    }
}
