//! [`FileJournal`]: the Raft log in segment files, and the hard state beside it.

mod recover;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::disk::{Disk, DiskFile};
use super::error::{Corruption, StorageError};
use super::identity::Identity;
use super::journal::{
    Journal, check_append, check_commit, check_hard_state, check_range, check_truncate,
};
use super::meta::{self, Meta};
use super::segment::{
    RECORD_BYTES_MIN, SYNC_SLOTS_AT, SyncClaim, decode_record, encode_head, encode_record,
    encode_slot, encode_slots, record_bytes, segment_file_name,
};
use crate::raft::{Entry, HardState, LogIndex, Term};

/// The tuning of a [`FileJournal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    /// A segment that has reached this size gets no more records; the next goes to a new
    /// segment (a record larger than this gets a segment of its own). Default: 64 MiB.
    pub segment_bytes_target: u64,
    /// The largest record written or accepted when reading, in bytes (an entry's payload plus
    /// 25). Set it above the largest command the node accepts (the frame limit); a record above
    /// it on disk is reported as corruption. Clamped to `[25, 2^32 - 1]`. Default: 64 MiB +
    /// 64 KiB.
    pub record_bytes_max: u64,
    /// Appended records are kept in memory until a sync or until this many bytes wait; then
    /// they are written out (not synced). Default: 1 MiB.
    pub write_buffer_bytes_max: usize,
    /// Whose journal this is: recorded in the hard-state file and every segment; at open, a
    /// file that records another identity is refused ([`StorageError::ForeignFile`]).
    /// Default: [`Identity::default`], for a journal used outside a node.
    pub identity: Identity,
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            segment_bytes_target: 64 << 20,
            record_bytes_max: (64 << 20) + (64 << 10),
            write_buffer_bytes_max: 1 << 20,
            identity: Identity::default(),
        }
    }
}

impl JournalOptions {
    /// The record limit within what the format can express.
    fn record_limit(&self) -> u64 {
        self.record_bytes_max
            .clamp(RECORD_BYTES_MIN, u64::from(u32::MAX))
    }
}

/// A [`Journal`] on a [`Disk`]: the data directory holds segment files of records and the
/// hard-state file (see the [module documentation](crate::storage) for the formats).
///
/// Memory: the journal keeps, per entry, its position and term (24 bytes), plus the unwritten
/// appends (at most `write_buffer_bytes_max` and one record). Entries themselves are not kept:
/// [`entries`](Journal::entries) reads them back from disk, one read per entry, and checks
/// them again. Open files: one per segment.
///
/// Costs: [`sync`](Journal::sync) issues one fsync per segment written since the last sync
/// (usually one), then writes (without syncing) that segment's 28-byte sync slot to claim what
/// the fsync made durable; a directory fsync if a segment was created; and, when the hard state
/// changed, the atomic replace of the hard-state file (two fsyncs and a rename). A new term or
/// vote is saved before any record reaches the disk (at a sync, a buffer write-out, a roll-over
/// or a truncation), so no durable entry has a term above the saved term; a new commit index is
/// saved after the entries, so it never points past the durable log. A sync that carries both
/// writes the hard-state file twice. Segment roll-over adds one fsync; a truncation that cuts
/// synced records adds one (the sync slots are lowered durably before the cut).
#[derive(Debug)]
pub struct FileJournal<D: Disk> {
    disk: D,
    dir: PathBuf,
    options: JournalOptions,
    /// In order of first index; never empty; the last one takes appends. Every one but the
    /// first starts after `first_index`, so only the first may hold dropped entries (and a
    /// clean reopen finds no obsolete segment): a prefix drop removes the segments it empties,
    /// a roll-over on an empty log replaces the old segment.
    segments: Vec<Segment<D::File>>,
    /// Where each entry from `first_index` on is.
    index: VecDeque<EntryLoc>,
    first_index: LogIndex,
    /// The hard state last set.
    hard_state: HardState,
    /// What the hard-state file holds.
    durable: Meta,
    /// A segment was created since the directory was last synced.
    dir_dirty: bool,
    /// A write or sync failed; nothing is trusted until the node restarts.
    poisoned: bool,
}

/// One segment file and its unwritten tail.
#[derive(Debug)]
struct Segment<F> {
    first_index: LogIndex,
    path: PathBuf,
    file: F,
    /// Bytes written to the file.
    written: u64,
    /// Bytes appended after `written`, not yet written.
    buffer: Vec<u8>,
    /// Written since the last fsync.
    unsynced: bool,
    /// The index of the last record appended, buffered or written (`first_index - 1` if none).
    last: LogIndex,
    /// The claim written last to the sync slots.
    claim: SyncClaim,
    /// The slot the next claim goes to failed its checks at open (a torn write of it).
    torn_slot: bool,
}

/// Where one entry's record is, and its term.
#[derive(Clone, Copy, Debug)]
struct EntryLoc {
    offset: u64,
    bytes: u32,
    term: Term,
}

impl<D: Disk> FileJournal<D> {
    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options in force.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// How many segment files the log spans.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Runs a write path; an I/O error poisons the journal.
    fn guarded<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        let result = op(self);
        if matches!(result, Err(StorageError::Io { .. })) {
            self.poisoned = true;
        }
        result
    }

    fn active(&mut self) -> &mut Segment<D::File> {
        self.segments
            .last_mut()
            .expect("a file journal always has at least one segment")
    }

    /// The position in `index` of `index_of`, if the log holds it.
    fn position(&self, index: LogIndex) -> Option<usize> {
        let offset = index.0.checked_sub(self.first_index.0)?;
        usize::try_from(offset)
            .ok()
            .filter(|&at| at < self.index.len())
    }

    /// The segment that holds `index`.
    fn segment_for(&mut self, index: LogIndex) -> &mut Segment<D::File> {
        let after = self.segments.partition_point(|s| s.first_index <= index);
        &mut self.segments[after.saturating_sub(1)]
    }

    fn save_meta(&mut self, meta: Meta) -> Result<(), StorageError> {
        meta::save(&self.disk, &self.dir, &meta, &self.options.identity)?;
        self.durable = meta;
        Ok(())
    }

    /// Saves a changed term or vote (with the durable commit index) before any record can
    /// reach the disk: appended records may carry the new term, and no durable record may have
    /// a term above the saved one. Persisting a term or vote early is always safe.
    fn save_term_first(&mut self) -> Result<(), StorageError> {
        let (wanted, durable) = (self.hard_state, self.durable.hard_state);
        if (wanted.term, wanted.vote) == (durable.term, durable.vote) {
            return Ok(());
        }
        let hard_state = HardState {
            commit: durable.commit,
            ..wanted
        };
        let first_index = self.first_index;
        self.save_meta(Meta {
            hard_state,
            first_index,
        })
    }

    fn sync_dir(&self) -> Result<(), StorageError> {
        self.disk
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("sync directory", &self.dir, e))
    }

    fn remove_file(&self, path: &Path) -> Result<(), StorageError> {
        self.disk
            .remove(path)
            .map_err(|e| StorageError::io("remove", path, e))
    }

    /// A new, empty segment whose header waits in its buffer.
    fn new_segment(&self, first: LogIndex) -> Result<Segment<D::File>, StorageError> {
        let path = self.dir.join(segment_file_name(first));
        let file = self
            .disk
            .create(&path)
            .map_err(|e| StorageError::io("create", &path, e))?;
        Ok(Segment {
            first_index: first,
            path,
            file,
            written: 0,
            buffer: encode_head(first, &self.options.identity),
            unsynced: true,
            last: first.prev(),
            claim: SyncClaim::empty(first),
            torn_slot: false,
        })
    }

    /// Starts a new segment if the active one is full. The full one is synced first, so a
    /// segment that is not the last is always complete on disk.
    ///
    /// On an empty log the new segment starts at `first_index`, which makes every segment
    /// before it obsolete (they can hold only dropped entries): they are replaced instead.
    fn make_room(&mut self, record: u64) -> Result<(), StorageError> {
        let target = self.options.segment_bytes_target;
        let active = self.active();
        let (size, empty) = (active.size(), active.is_empty());
        if empty || size + record <= target {
            return Ok(());
        }
        self.save_term_first()?;
        let next = self.last_index().next();
        if self.index.is_empty() {
            return self.replace_dropped_segments(next);
        }
        self.active().sync()?;
        let segment = self.new_segment(next)?;
        self.segments.push(segment);
        self.dir_dirty = true;
        Ok(())
    }

    /// Starts the empty log over in a new segment at `first` (the first index) and removes
    /// the old segments, which hold only dropped entries: a truncation back to the first index
    /// leaves its segment holding what a prefix drop gave up (so does a reopen after an
    /// interrupted drop of the whole log). Kept, they would become obsolete (a later segment
    /// starts at or before the first index) and a reopen would find them there.
    ///
    /// Nothing in them is needed, so neither order on disk matters and no fsync is spent
    /// here: the creation and the removals become durable at the next directory sync (the next
    /// [`sync`](Journal::sync)). A crash before it may bring them back; recovery removes them
    /// with [`RecoveryWarning::ObsoleteSegmentRemoved`](crate::storage::RecoveryWarning) (and
    /// the new segment, if its header never reached the disk, as a torn one).
    fn replace_dropped_segments(&mut self, first: LogIndex) -> Result<(), StorageError> {
        let fresh = self.new_segment(first)?;
        let old = std::mem::replace(&mut self.segments, vec![fresh]);
        self.dir_dirty = true;
        // A segment named after `first` holds at most its header: it never fills up. Its file
        // is the one just created, so it must not be removed.
        for segment in old.into_iter().filter(|s| s.first_index != first) {
            drop(segment.file);
            self.remove_file(&segment.path)?;
        }
        Ok(())
    }

    fn append_one(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let bytes = record_bytes(entry);
        self.make_room(bytes)?;
        let buffer_max = self.options.write_buffer_bytes_max;
        let active = self.active();
        let offset = active.size();
        encode_record(entry, &mut active.buffer);
        active.last = entry.index;
        if active.buffer.len() >= buffer_max {
            self.save_term_first()?;
            let active = self.active();
            active.flush()?;
            active.buffer.shrink_to(buffer_max);
        }
        self.index.push_back(EntryLoc {
            offset,
            bytes: u32::try_from(bytes).expect("records are checked against the u32 limit first"),
            term: entry.term,
        });
        Ok(())
    }

    fn check_sizes(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let max = self.options.record_limit();
        match entries.iter().find(|e| record_bytes(e) > max) {
            Some(entry) => Err(StorageError::EntryTooLarge {
                index: entry.index,
                bytes: record_bytes(entry),
                max,
            }),
            None => Ok(()),
        }
    }

    fn sync_segments(&mut self) -> Result<(), StorageError> {
        for segment in &mut self.segments {
            segment.sync()?;
        }
        if self.dir_dirty {
            self.sync_dir()?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Removes the segments that start at or after `from` (never the first), newest first,
    /// syncing the directory after each so the removed set is always a suffix.
    fn remove_segments_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        while self.segments.len() > 1 && self.active().first_index >= from {
            let segment = self
                .segments
                .pop()
                .expect("the loop condition says there are at least two segments");
            drop(segment.file);
            self.remove_file(&segment.path)?;
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Empties the log at `new_first`: a fresh durable segment, then the old ones removed.
    fn restart_log_at(&mut self, new_first: LogIndex) -> Result<(), StorageError> {
        let mut fresh = self.new_segment(new_first)?;
        fresh.sync()?;
        self.sync_dir()?;
        let old = std::mem::replace(&mut self.segments, vec![fresh]);
        for segment in old.into_iter().filter(|s| s.first_index != new_first) {
            drop(segment.file);
            self.remove_file(&segment.path)?;
        }
        self.sync_dir()?;
        self.index.clear();
        Ok(())
    }

    /// Removes the segments that hold only entries before `new_first`, oldest first.
    fn remove_segments_before(&mut self, new_first: LogIndex) -> Result<(), StorageError> {
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[1].first_index <= new_first {
            let segment = self.segments.remove(0);
            drop(segment.file);
            self.remove_file(&segment.path)?;
            removed = true;
        }
        if removed {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Reads the entry at `index`, checking it again.
    fn read_entry(&mut self, index: LogIndex, loc: EntryLoc) -> Result<Entry, StorageError> {
        let segment = self.segment_for(index);
        let record = segment.read(loc.offset, loc.bytes)?;
        let entry = decode_record(&record).map_err(|(offset, problem)| {
            StorageError::corrupt(&segment.path, loc.offset + offset, problem)
        })?;
        if entry.index != index {
            let problem = Corruption::IndexMismatch {
                expected: index,
                found: entry.index,
            };
            return Err(StorageError::corrupt(
                &segment.path,
                loc.offset + 8,
                problem,
            ));
        }
        Ok(entry)
    }
}

impl<D: Disk> Journal for FileJournal<D> {
    fn first_index(&self) -> LogIndex {
        self.first_index
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.first_index.0 + self.index.len() as u64).prev()
    }

    fn term(&self, index: LogIndex) -> Option<Term> {
        self.position(index).map(|at| self.index[at].term)
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        check_hard_state(self.hard_state, hard_state)?;
        self.hard_state = hard_state;
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.guarded(|journal| {
            let last_term = journal.index.back().map(|loc| loc.term);
            let term_max = journal.hard_state.term;
            check_append(entries, journal.last_index(), last_term, term_max)?;
            journal.check_sizes(entries)?;
            entries
                .iter()
                .try_for_each(|entry| journal.append_one(entry))
        })
    }

    fn truncate_suffix(&mut self, from: LogIndex) -> Result<(), StorageError> {
        if from > self.last_index() {
            return Ok(());
        }
        let commit = self.durable.hard_state.commit;
        check_truncate(from, self.first_index, self.last_index(), commit)?;
        self.guarded(|journal| {
            let at = journal
                .position(from)
                .expect("first_index <= from <= last_index was checked");
            let holder = journal.segment_for(from).first_index;
            journal.remove_segments_from(from)?;
            // If the segment holding `from` started there, it is gone and the new last segment
            // ends just before `from`: nothing to cut.
            if journal.active().first_index == holder {
                let offset = journal.index[at].offset;
                journal.save_term_first()?;
                journal.active().cut(offset, from.prev())?;
            } else {
                // The segment before the removed ones is the last again, whole: it was synced
                // when it filled up, but its claim may lag (written after that fsync, it may
                // not have survived a power cut).
                journal.active().settle()?;
            }
            journal.index.truncate(at);
            Ok(())
        })
    }

    fn drop_prefix(&mut self, through: LogIndex) -> Result<(), StorageError> {
        if through < self.first_index {
            return Ok(());
        }
        self.guarded(|journal| {
            let new_first = through.next();
            let meta = Meta {
                hard_state: journal.durable.hard_state,
                first_index: new_first,
            };
            journal.save_meta(meta)?;
            if through >= journal.last_index() {
                journal.restart_log_at(new_first)?;
            } else {
                journal.remove_segments_before(new_first)?;
                let dropped = usize::try_from(new_first.0 - journal.first_index.0)
                    .expect("fewer entries are dropped than the index holds");
                journal.index.drain(..dropped);
            }
            journal.first_index = new_first;
            Ok(())
        })
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.guarded(|journal| {
            journal.save_term_first()?;
            for segment in &mut journal.segments {
                segment.flush()?;
            }
            Ok(())
        })
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        check_commit(self.hard_state, self.last_index())?;
        self.guarded(|journal| {
            let wanted = journal.hard_state;
            let first_index = journal.first_index;
            journal.save_term_first()?;
            journal.sync_segments()?;
            if wanted != journal.durable.hard_state {
                journal.save_meta(Meta {
                    hard_state: wanted,
                    first_index,
                })?;
            }
            Ok(())
        })
    }

    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    fn entries(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        check_range(from, to, self.first_index, self.last_index())?;
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut index = from;
        while index < to {
            let at = self
                .position(index)
                .expect("the range lies within the log, as checked");
            let entry = self.read_entry(index, self.index[at])?;
            total = total.saturating_add(entry.size_bytes());
            if !out.is_empty() && total > bytes_max {
                break;
            }
            out.push(entry);
            index = index.next();
        }
        Ok(out)
    }
}

impl<F: DiskFile> Segment<F> {
    /// The file's length once the buffer is written.
    fn size(&self) -> u64 {
        self.written + self.buffer.len() as u64
    }

    /// Whether the segment holds no record.
    fn is_empty(&self) -> bool {
        self.last < self.first_index
    }

    /// Writes the buffer out (without syncing).
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(self.written, &self.buffer)
            .map_err(|e| StorageError::io("write", &self.path, e))?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Writes the buffer out and makes the file durable, then claims it in a sync slot.
    fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        if self.unsynced {
            self.fsync()?;
            self.claim_synced()?;
        }
        Ok(())
    }

    fn fsync(&mut self) -> Result<(), StorageError> {
        self.file
            .sync()
            .map_err(|e| StorageError::io("sync", &self.path, e))?;
        self.unsynced = false;
        Ok(())
    }

    /// Right after an fsync, writes a claim on everything written (which that fsync made
    /// durable) to the slot the previous claim is not in. Not synced: the next fsync makes it
    /// durable, and until then the other slot holds the previous claim, durable since that
    /// fsync. A claim on disk thus never covers bytes that were not durable, in whatever
    /// order the disk writes pages, and a torn slot write leaves the other slot whole.
    fn claim_synced(&mut self) -> Result<(), StorageError> {
        let claim = self.claim;
        debug_assert!(self.buffer.is_empty() && !self.unsynced);
        if (claim.end, claim.last) == (self.written, self.last) && !self.torn_slot {
            return Ok(());
        }
        let next = claim.next(self.written, self.last);
        self.file
            .write_all_at(next.slot_at(), &encode_slot(self.first_index, &next))
            .map_err(|e| StorageError::io("write", &self.path, e))?;
        self.claim = next;
        self.torn_slot = false;
        Ok(())
    }

    /// Makes every record written durable and claims it, if the slots do not claim it yet:
    /// at open, for records a killed process left unsynced in the operating system's cache or
    /// a power cut left past a torn claim (the node will take them as its log, and may
    /// acknowledge them), and for a segment a truncation makes the last again. A torn slot is
    /// rewritten too. Costs one fsync when there is something to write.
    fn settle(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        let claimed = (self.claim.end, self.claim.last) == (self.written, self.last);
        if self.unsynced || !claimed || self.torn_slot {
            self.fsync()?;
            self.claim_synced()?;
        }
        Ok(())
    }

    /// Cuts the segment at `offset` (a record boundary, after the record of `last`), durably
    /// if the cut reaches written bytes: new records must never land in front of stale ones
    /// still on disk. If the sync slots claim bytes past the cut, both are lowered to it and
    /// synced first (one more fsync), so that no slot claims bytes that are gone; after the
    /// cut's fsync, what is left is claimed.
    fn cut(&mut self, offset: u64, last: LogIndex) -> Result<(), StorageError> {
        self.last = last;
        if let Some(keep) = offset.checked_sub(self.written) {
            self.buffer
                .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
            return Ok(());
        }
        self.buffer.clear();
        if self.claim.end > offset {
            let lowered = self.claim.next(offset, last);
            let latest = lowered.next(offset, last);
            let slots = encode_slots(self.first_index, &lowered, &latest);
            self.file
                .write_all_at(SYNC_SLOTS_AT, &slots)
                .map_err(|e| StorageError::io("write", &self.path, e))?;
            self.fsync()?;
            self.claim = latest;
            self.torn_slot = false;
        }
        self.file
            .set_len(offset)
            .map_err(|e| StorageError::io("truncate", &self.path, e))?;
        self.fsync()?;
        self.written = offset;
        self.claim_synced()
    }

    /// The `bytes` bytes of the record at `offset`, from the buffer or the file.
    fn read(&mut self, offset: u64, bytes: u32) -> Result<Vec<u8>, StorageError> {
        let len = bytes as usize;
        if let Some(start) = offset.checked_sub(self.written) {
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            let record = start
                .checked_add(len)
                .and_then(|end| self.buffer.get(start..end))
                .expect("the index only points at records that were appended");
            return Ok(record.to_vec());
        }
        let mut record = vec![0u8; len];
        self.file
            .read_exact_at(offset, &mut record)
            .map_err(|e| StorageError::io("read", &self.path, e))?;
        Ok(record)
    }
}
