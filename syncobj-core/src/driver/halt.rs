//! [`HaltReason`]: why a node stopped for good.

use thiserror::Error;

use super::SnapshotError;
use crate::storage::StorageError;

/// Why a node stopped for good: what is durable is unknown, and going on could acknowledge
/// what was never saved. A halted node sends nothing and refuses every call; restart it once
/// the disk is fixed (recovery reads what really is on disk). Its status shows this text under
/// `halted`.
#[derive(Debug, Error)]
pub enum HaltReason {
    /// A journal write or sync failed.
    #[error(transparent)]
    Journal(#[from] StorageError),
    /// A snapshot the journal depends on could not be made durable.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

#[cfg(test)]
mod tests {
    use super::HaltReason;
    use crate::driver::SnapshotError;
    use crate::storage::StorageError;

    /// A halt reason reads as the failure itself, as the status showed it before it had a type.
    #[test]
    fn displays_the_failure_itself() {
        let journal = HaltReason::from(StorageError::Poisoned);
        assert_eq!(journal.to_string(), StorageError::Poisoned.to_string());
        let snapshot = HaltReason::from(SnapshotError::StoreLost);
        assert_eq!(snapshot.to_string(), SnapshotError::StoreLost.to_string());
    }
}
