//! [`MemoryJournal`]: a journal that keeps everything in memory and survives nothing.

use std::collections::VecDeque;

use super::error::StorageError;
use super::journal::{
    Journal, check_append, check_commit, check_hard_state, check_range, check_truncate,
};
use crate::raft::{Entry, HardState, LogIndex, Term};

/// A [`Journal`] in memory, for nodes without a data directory (PySyncObj's default). It checks
/// the same preconditions as the file journal; `sync` only checks the commit index and records
/// it as the bound for truncations. Memory: every entry, once.
#[derive(Clone, Debug)]
pub struct MemoryJournal {
    first_index: LogIndex,
    entries: VecDeque<Entry>,
    hard_state: HardState,
    /// The commit index at the last sync, which truncations must stay above.
    synced_commit: LogIndex,
}

impl MemoryJournal {
    /// An empty journal whose first entry will be index 1.
    pub fn new() -> MemoryJournal {
        MemoryJournal {
            first_index: LogIndex(1),
            entries: VecDeque::new(),
            hard_state: HardState::default(),
            synced_commit: LogIndex::ZERO,
        }
    }

    fn position(&self, index: LogIndex) -> Option<usize> {
        let offset = index.0.checked_sub(self.first_index.0)?;
        usize::try_from(offset)
            .ok()
            .filter(|&at| at < self.entries.len())
    }
}

impl Default for MemoryJournal {
    fn default() -> MemoryJournal {
        MemoryJournal::new()
    }
}

impl Journal for MemoryJournal {
    fn first_index(&self) -> LogIndex {
        self.first_index
    }

    fn last_index(&self) -> LogIndex {
        self.entries
            .back()
            .map_or(self.first_index.prev(), |e| e.index)
    }

    fn term(&self, index: LogIndex) -> Option<Term> {
        self.position(index).map(|at| self.entries[at].term)
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        check_hard_state(self.hard_state, hard_state)?;
        self.hard_state = hard_state;
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let last_term = self.entries.back().map(|e| e.term);
        check_append(entries, self.last_index(), last_term, self.hard_state.term)?;
        self.entries.extend(entries.iter().cloned());
        Ok(())
    }

    fn truncate_suffix(&mut self, from: LogIndex) -> Result<(), StorageError> {
        if from > self.last_index() {
            return Ok(());
        }
        let (first, last) = (self.first_index, self.last_index());
        check_truncate(from, first, last, self.synced_commit)?;
        let keep = self.position(from).unwrap_or(self.entries.len());
        self.entries.truncate(keep);
        Ok(())
    }

    fn drop_prefix(&mut self, through: LogIndex) -> Result<(), StorageError> {
        if through < self.first_index {
            return Ok(());
        }
        let drop = self
            .position(through)
            .map_or(self.entries.len(), |at| at + 1);
        self.entries.drain(..drop);
        self.first_index = through.next();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        check_commit(self.hard_state, self.last_index())?;
        self.synced_commit = self.hard_state.commit;
        Ok(())
    }

    fn entries(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        check_range(from, to, self.first_index, self.last_index())?;
        let (Some(start), count) = (self.position(from), to.0 - from.0) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut total = 0usize;
        for entry in self
            .entries
            .range(start..)
            .take(usize::try_from(count).unwrap_or(usize::MAX))
        {
            total = total.saturating_add(entry.size_bytes());
            if !out.is_empty() && total > bytes_max {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }
}
