//! The engine's side of the journal: writing what each `Ready` asks, syncing as the fsync
//! policy says, halting when the disk fails, and the final sync at shutdown.

use super::Engine;
use crate::driver::HaltReason;
use crate::raft::{Entry, HardState, LogReset};
use crate::storage::StorageError;

impl Engine {
    pub(super) fn reset_journal(&mut self, reset: Option<LogReset>) -> Result<(), StorageError> {
        match (reset, &mut self.persistence) {
            (Some(reset), Some(persistence)) => persistence.reset(reset),
            _ => Ok(()),
        }
    }

    pub(super) fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let now = self.now;
        match &mut self.persistence {
            Some(persistence) => persistence.save(hard_state, entries, now),
            None => Ok(()),
        }
    }

    /// Under a periodic fsync policy, syncs once the period has passed.
    pub(super) fn sync_if_due(&mut self) {
        let now = self.now;
        let synced = self
            .persistence
            .as_mut()
            .map_or(Ok(()), |p| p.sync_if_due(now));
        if let Err(error) = synced {
            self.halt(error);
        }
    }

    /// Stops the node: makes every journal write durable, whatever the fsync policy, and
    /// fails the calls still waiting.
    pub(crate) fn stop(&mut self) {
        self.snapshots.finish_writing();
        let now = self.now;
        if self.halted.is_none()
            && let Some(Err(error)) = self.persistence.as_mut().map(|p| p.sync_all(now))
        {
            self.halt(error);
        }
        self.calls.fail_all(&crate::object::FailReason::Shutdown);
        self.publish();
    }

    /// Stops the node for good: its journal failed, so what is durable is unknown, and going
    /// on could acknowledge what was never saved.
    pub(super) fn halt(&mut self, error: StorageError) {
        tracing::error!(%error, "the journal failed: this node stops; restart it once the disk is fixed");
        self.halted = Some(HaltReason::Journal(error));
    }
}
