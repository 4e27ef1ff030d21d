//! Opening a [`FileJournal`]: reading the directory back, cutting a torn tail, refusing damage.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::{EntryLoc, FileJournal, JournalOptions, Segment};
use crate::raft::{Entry, LogIndex, Term};
use crate::storage::disk::{Disk, DiskFile, create_dir_durably};
use crate::storage::error::{Corruption, StorageError};
use crate::storage::journal::{Recovery, RecoveryWarning};
use crate::storage::meta::{self, COMMIT_AT, META_FILE, META_TEMP_FILE, Meta};
use crate::storage::segment::{self, ScanRules, parse_segment_file_name};

/// The offset of the first-index field in a segment header, for errors about it.
const HEADER_FIRST_AT: u64 = 12;

/// What the data directory holds, by kind.
#[derive(Debug, Default)]
struct Listing {
    has_meta: bool,
    has_temp: bool,
    /// Segment files by the first index in their names, in order.
    segments: Vec<(LogIndex, PathBuf)>,
    unknown: Vec<PathBuf>,
}

/// What the segment scan builds up.
#[derive(Debug)]
struct Scanned<F> {
    segments: Vec<Segment<F>>,
    index: VecDeque<EntryLoc>,
    entries: Vec<Entry>,
    /// The index after the last entry on disk.
    next_index: LogIndex,
}

impl<D: Disk> FileJournal<D> {
    /// Opens the journal in `dir`, creating the directory and an empty journal if there is
    /// none, and recovers what it holds.
    ///
    /// A torn final write of the last segment is cut off, with a warning; so is a last segment
    /// whose creation was interrupted. Segments left by an interrupted prefix drop (or an
    /// interrupted roll-over of an empty log) and temporary files are removed, with warnings.
    /// Every other inconsistency is an error and changes nothing else.
    ///
    /// Cost: reads every segment once, through a 1 MiB window; the returned entries are the
    /// one in-memory copy of the log.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] naming the file and offset of the first damage: a checksum
    /// failure before the tail, a gap or repeated index, a term going backwards or above the
    /// saved term, a bad magic or unsupported format version, a saved commit index beyond the
    /// last entry, a missing hard-state file beside segments. [`StorageError::Io`] if the disk
    /// fails.
    pub fn open(
        disk: D,
        dir: impl Into<PathBuf>,
        options: JournalOptions,
    ) -> Result<(FileJournal<D>, Recovery), StorageError> {
        let dir = dir.into();
        create_dir_durably(&disk, &dir)
            .map_err(|e| StorageError::io("create directory", &dir, e))?;
        let listing = list(&disk, &dir)?;
        let mut warnings: Vec<RecoveryWarning> = listing
            .unknown
            .iter()
            .map(|path| RecoveryWarning::UnknownFile { path: path.clone() })
            .collect();
        let mut dir_dirty = false;
        if listing.has_temp {
            let temp = dir.join(META_TEMP_FILE);
            remove(&disk, &temp)?;
            warnings.push(RecoveryWarning::TempFileRemoved { path: temp });
            dir_dirty = true;
        }
        let meta = load_or_create_meta(&disk, &dir, &listing)?;
        let (obsolete, kept) = split_obsolete(listing.segments, meta.first_index);
        let mut scanned = scan_segments(&disk, &kept, &meta, &options, &mut warnings)?;
        dir_dirty |= scanned.segments.len() < kept.len();
        let mut obsolete = obsolete;
        if scanned.next_index < meta.first_index {
            // Everything on disk precedes the saved first index: an interrupted drop of the
            // whole log. The log is empty at the saved first index.
            obsolete.extend(scanned.segments.drain(..).map(|s| s.path));
            scanned.index.clear();
            scanned.entries.clear();
        }
        check_commit(&dir, &meta, scanned.next_index)?;
        for path in obsolete {
            remove(&disk, &path)?;
            warnings.push(RecoveryWarning::ObsoleteSegmentRemoved { path });
            dir_dirty = true;
        }
        let mut journal = FileJournal {
            disk,
            dir,
            options,
            segments: scanned.segments,
            index: scanned.index,
            first_index: meta.first_index,
            hard_state: meta.hard_state,
            durable: meta,
            dir_dirty,
            poisoned: false,
        };
        journal.finish_open()?;
        let recovery = Recovery {
            hard_state: meta.hard_state,
            first_index: meta.first_index,
            entries: scanned.entries,
            warnings,
        };
        Ok((journal, recovery))
    }

    /// Gives an empty log its first segment and makes the directory's changes durable.
    fn finish_open(&mut self) -> Result<(), StorageError> {
        if self.segments.is_empty() {
            let mut segment = self.new_segment(self.first_index)?;
            segment.sync()?;
            self.segments.push(segment);
            self.dir_dirty = true;
        }
        if self.dir_dirty {
            self.sync_dir()?;
            self.dir_dirty = false;
        }
        Ok(())
    }
}

/// Sorts the directory's files by kind.
fn list<D: Disk>(disk: &D, dir: &Path) -> Result<Listing, StorageError> {
    let names = disk
        .list(dir)
        .map_err(|e| StorageError::io("list", dir, e))?;
    let mut listing = Listing::default();
    for name in names {
        let path = dir.join(&name);
        match name.to_str() {
            Some(META_FILE) => listing.has_meta = true,
            Some(META_TEMP_FILE) => listing.has_temp = true,
            Some(text) => match parse_segment_file_name(text) {
                Some(first) => listing.segments.push((first, path)),
                None => listing.unknown.push(path),
            },
            None => listing.unknown.push(path),
        }
    }
    listing.segments.sort();
    listing.unknown.sort();
    Ok(listing)
}

/// Loads the hard-state file; creates it for a directory without segments.
fn load_or_create_meta<D: Disk>(
    disk: &D,
    dir: &Path,
    listing: &Listing,
) -> Result<Meta, StorageError> {
    if listing.has_meta {
        return meta::load(disk, &meta::meta_path(dir));
    }
    if listing.segments.is_empty() {
        let fresh = Meta::default();
        meta::save(disk, dir, &fresh)?;
        return Ok(fresh);
    }
    Err(StorageError::corrupt(
        meta::meta_path(dir),
        0,
        Corruption::Missing,
    ))
}

/// Splits the segments into those that hold only dropped entries (a later segment starts at
/// or before the first index kept) and the rest.
fn split_obsolete(
    segments: Vec<(LogIndex, PathBuf)>,
    first_index: LogIndex,
) -> (Vec<PathBuf>, Vec<(LogIndex, PathBuf)>) {
    let starts: Vec<LogIndex> = segments.iter().map(|(first, _)| *first).collect();
    let mut obsolete = Vec::new();
    let mut kept = Vec::new();
    for (at, (first, path)) in segments.into_iter().enumerate() {
        match starts.get(at + 1) {
            Some(&next) if next <= first_index => obsolete.push(path),
            _ => kept.push((first, path)),
        }
    }
    (obsolete, kept)
}

/// Scans the kept segments in order, checking that each continues the previous one.
fn scan_segments<D: Disk>(
    disk: &D,
    kept: &[(LogIndex, PathBuf)],
    meta: &Meta,
    options: &JournalOptions,
    warnings: &mut Vec<RecoveryWarning>,
) -> Result<Scanned<D::File>, StorageError> {
    let mut scanned = Scanned {
        segments: Vec::new(),
        index: VecDeque::new(),
        entries: Vec::new(),
        next_index: kept.first().map_or(meta.first_index, |(first, _)| *first),
    };
    if let Some((first, path)) = kept.first()
        && *first > meta.first_index
    {
        let problem = Corruption::MissingEntries {
            first: meta.first_index,
            found: *first,
        };
        return Err(StorageError::corrupt(path, HEADER_FIRST_AT, problem));
    }
    let mut previous_term = Term(0);
    for (at, (first, path)) in kept.iter().enumerate() {
        if *first != scanned.next_index {
            let problem = Corruption::IndexMismatch {
                expected: scanned.next_index,
                found: *first,
            };
            return Err(StorageError::corrupt(path, HEADER_FIRST_AT, problem));
        }
        let rules = ScanRules {
            first: *first,
            previous_term,
            term_max: meta.hard_state.term,
            record_bytes_max: options.record_limit(),
            is_last: at + 1 == kept.len(),
        };
        previous_term = scan_one(disk, path, rules, meta.first_index, &mut scanned, warnings)?;
    }
    Ok(scanned)
}

/// Scans one segment into `scanned`; returns the term of its last entry.
fn scan_one<D: Disk>(
    disk: &D,
    path: &Path,
    rules: ScanRules,
    first_kept: LogIndex,
    scanned: &mut Scanned<D::File>,
    warnings: &mut Vec<RecoveryWarning>,
) -> Result<Term, StorageError> {
    let mut file = disk
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let (index, entries) = (&mut scanned.index, &mut scanned.entries);
    let scan = segment::scan(&mut file, path, rules, |entry, offset, bytes| {
        if entry.index >= first_kept {
            let bytes = u32::try_from(bytes).expect("the scan bounds records by the u32 limit");
            index.push_back(EntryLoc {
                offset,
                bytes,
                term: entry.term,
            });
            entries.push(entry);
        }
        Ok(())
    })?;
    if scan.torn_header {
        drop(file);
        remove(disk, path)?;
        let path = path.to_path_buf();
        warnings.push(RecoveryWarning::TornSegmentRemoved { path });
        return Ok(rules.previous_term);
    }
    if scan.valid_len < scan.file_len {
        cut_tail(&mut file, path, scan.valid_len)?;
        warnings.push(RecoveryWarning::TornTail {
            path: path.to_path_buf(),
            offset: scan.valid_len,
            bytes_cut: scan.file_len - scan.valid_len,
        });
    }
    scanned.next_index = scan.next_index;
    scanned.segments.push(Segment {
        first_index: rules.first,
        path: path.to_path_buf(),
        file,
        written: scan.valid_len,
        buffer: Vec::new(),
        unsynced: false,
    });
    Ok(scan.last_term)
}

/// Cuts a torn tail off durably.
fn cut_tail<F: DiskFile>(file: &mut F, path: &Path, len: u64) -> Result<(), StorageError> {
    file.set_len(len)
        .map_err(|e| StorageError::io("truncate", path, e))?;
    file.sync().map_err(|e| StorageError::io("sync", path, e))
}

/// Checks that the saved commit index lies within the recovered log.
fn check_commit(dir: &Path, meta: &Meta, next_index: LogIndex) -> Result<(), StorageError> {
    let last = next_index.max(meta.first_index).prev();
    let commit = meta.hard_state.commit;
    if commit <= last {
        return Ok(());
    }
    let problem = Corruption::CommitBeyondLog { commit, last };
    Err(StorageError::corrupt(
        meta::meta_path(dir),
        COMMIT_AT as u64,
        problem,
    ))
}

fn remove<D: Disk>(disk: &D, path: &Path) -> Result<(), StorageError> {
    disk.remove(path)
        .map_err(|e| StorageError::io("remove", path, e))
}
