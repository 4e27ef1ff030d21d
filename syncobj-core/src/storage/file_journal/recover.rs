//! Opening a [`FileJournal`]: reading the directory back, cutting a torn tail, refusing damage
//! and lost synced records.
//!
//! Nothing on disk changes until every check has passed: a refused journal is left as found.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::{EntryLoc, FileJournal, JournalOptions, Segment};
use crate::raft::{Entry, LogIndex, Term};
use crate::storage::disk::{Disk, DiskFile, create_dir_durably};
use crate::storage::error::{Corruption, StorageError};
use crate::storage::identity::Identity;
use crate::storage::journal::{Recovery, RecoveryWarning};
use crate::storage::meta::{self, META_FILE, META_TEMP_FILE, Meta};
use crate::storage::segment::{
    self, HEADER_FIRST_AT, ScanRules, SyncClaim, parse_segment_file_name, segment_file_name,
};

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
    /// Where the intact log ends: the last segment scanned and the end of its intact records.
    end: Option<(PathBuf, u64)>,
    /// The last segment's torn tail, to cut once every check has passed: the bytes to keep and
    /// the file's length.
    torn_tail: Option<(u64, u64)>,
    /// A last segment whose creation was interrupted, to remove once every check has passed.
    torn_segment: Option<PathBuf>,
    /// Segments written before segments recorded an identity (format version 3).
    unstamped: Vec<PathBuf>,
}

impl<D: Disk> FileJournal<D> {
    /// Opens the journal in `dir`, creating the directory and an empty journal if there is
    /// none, and recovers what it holds.
    ///
    /// A torn final write of the last segment is cut off, with a warning, if it lies past
    /// what the segment's sync slots claim was synced; so is a last segment whose creation was
    /// interrupted. Segments left by an interrupted prefix drop (or an interrupted roll-over of
    /// an empty log) and temporary files are removed, with warnings. Every other inconsistency
    /// is an error and changes nothing on disk.
    ///
    /// Cost: reads every segment once, through a 1 MiB window; the returned entries are the
    /// one in-memory copy of the log.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] naming the file and offset of the first damage: a checksum
    /// failure before the tail, a gap or repeated index, a term going backwards or above the
    /// saved term, a bad magic or unsupported format version, damaged sync slots, a missing
    /// hard-state file beside segments; and lost synced records, which look like a torn tail
    /// but lie before the synced end a sync slot claims
    /// ([`Corruption::SyncedRecordsLost`]) or before the saved commit index
    /// ([`Corruption::CommitBeyondLog`]), both reported in the segment where the intact log
    /// ends. [`StorageError::ForeignFile`] if a file records another identity than
    /// [`JournalOptions::identity`]. [`StorageError::Io`] if the disk fails.
    ///
    /// A hard-state file written before files recorded identities (format version 1) is taken
    /// as this node's: it is rewritten with the identity, with a warning.
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
        let (meta, unstamped) = load_or_create_meta(&disk, &dir, &listing, &options.identity)?;
        let (obsolete, kept) = split_obsolete(listing.segments, meta.first_index);
        let mut scanned = scan_segments(&disk, &kept, &meta, &options)?;
        check_commit(&dir, &meta, &scanned)?;
        let mut obsolete = obsolete;
        if scanned.next_index < meta.first_index {
            // Everything on disk precedes the saved first index: an interrupted drop of the
            // whole log. The log is empty at the saved first index.
            obsolete.extend(scanned.segments.drain(..).map(|s| s.path));
            scanned.index.clear();
            scanned.entries.clear();
            scanned.torn_tail = None;
        }
        repair_tail(&disk, &mut scanned, &mut warnings)?;
        if listing.has_temp {
            let temp = dir.join(META_TEMP_FILE);
            remove(&disk, &temp)?;
            warnings.push(RecoveryWarning::TempFileRemoved { path: temp });
        }
        for path in obsolete {
            remove(&disk, &path)?;
            warnings.push(RecoveryWarning::ObsoleteSegmentRemoved { path });
        }
        if unstamped {
            // Written before files recorded identities: taken as this node's, and recorded.
            meta::save(&disk, &dir, &meta, &options.identity)?;
            warnings.push(RecoveryWarning::IdentityRecorded {
                path: meta::meta_path(&dir),
                identity: options.identity,
            });
        }
        // Segments of that time are kept as they are until compaction removes them; what is
        // appended to the last one has the same format.
        let segments_kept = scanned.segments.iter().map(|s| &s.path);
        for path in segments_kept.filter(|&p| scanned.unstamped.contains(p)) {
            warnings.push(RecoveryWarning::IdentityRecorded {
                path: path.clone(),
                identity: options.identity,
            });
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
            // Whatever changed, the directory is synced at the end of the open.
            dir_dirty: true,
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

    /// Gives an empty log its first segment, makes the last segment durable and claimed (see
    /// `Segment::settle`), and syncs the directory. What recovery read becomes the node's log,
    /// which it may acknowledge; a killed process may have left it in the operating system's
    /// cache only: a segment created or a hard state renamed into place without the directory
    /// sync that follows. Costs one fsync of the directory, and one of the last segment when it
    /// holds records its sync slots do not claim.
    fn finish_open(&mut self) -> Result<(), StorageError> {
        if self.segments.is_empty() {
            let mut segment = self.new_segment(self.first_index)?;
            segment.sync()?;
            self.segments.push(segment);
        }
        self.active().settle()?;
        self.sync_dir()?;
        self.dir_dirty = false;
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

/// Loads the hard-state file and checks that it is `identity`'s; creates it for a directory
/// without segments. Also returns whether the file records no identity (a version-1 file,
/// written before identities were): the open records one once every check has passed.
fn load_or_create_meta<D: Disk>(
    disk: &D,
    dir: &Path,
    listing: &Listing,
    identity: &Identity,
) -> Result<(Meta, bool), StorageError> {
    if listing.has_meta {
        let path = meta::meta_path(dir);
        let (meta, found) = meta::load(disk, &path)?;
        return match found {
            Some(found) => {
                StorageError::check_identity(&path, found, *identity).map(|()| (meta, false))
            }
            None => Ok((meta, true)),
        };
    }
    if listing.segments.is_empty() {
        let fresh = Meta::default();
        meta::save(disk, dir, &fresh, identity)?;
        return Ok((fresh, false));
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

/// Scans the kept segments in order, checking that each continues the previous one. Changes
/// nothing on disk.
fn scan_segments<D: Disk>(
    disk: &D,
    kept: &[(LogIndex, PathBuf)],
    meta: &Meta,
    options: &JournalOptions,
) -> Result<Scanned<D::File>, StorageError> {
    let mut scanned = Scanned {
        segments: Vec::new(),
        index: VecDeque::new(),
        entries: Vec::new(),
        next_index: kept.first().map_or(meta.first_index, |(first, _)| *first),
        end: None,
        torn_tail: None,
        torn_segment: None,
        unstamped: Vec::new(),
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
            identity: options.identity,
        };
        previous_term = scan_one(disk, path, rules, meta.first_index, &mut scanned)?;
    }
    Ok(scanned)
}

/// Scans one segment into `scanned`; returns the term of its last entry. A torn tail or an
/// interrupted creation is noted for [`repair_tail`], not repaired.
fn scan_one<D: Disk>(
    disk: &D,
    path: &Path,
    rules: ScanRules,
    first_kept: LogIndex,
    scanned: &mut Scanned<D::File>,
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
        scanned.torn_segment = Some(path.to_path_buf());
        return Ok(rules.previous_term);
    }
    if scan.unstamped {
        scanned.unstamped.push(path.to_path_buf());
    }
    if scan.valid_len < scan.file_len {
        scanned.torn_tail = Some((scan.valid_len, scan.file_len));
    }
    scanned.end = Some((path.to_path_buf(), scan.valid_len));
    scanned.next_index = scan.next_index;
    scanned.segments.push(Segment {
        first_index: rules.first,
        path: path.to_path_buf(),
        file,
        written: scan.valid_len,
        buffer: Vec::new(),
        unsynced: false,
        last: scan.next_index.prev(),
        // A segment whose header was read has a claim.
        claim: scan.claim.unwrap_or_else(|| SyncClaim::empty(rules.first)),
        torn_slot: scan.torn_slot,
    });
    Ok(scan.last_term)
}

/// Once every check has passed: cuts the last segment's torn tail off, or removes a last
/// segment whose creation was interrupted, with warnings. Both become durable at the end of
/// the open.
fn repair_tail<D: Disk>(
    disk: &D,
    scanned: &mut Scanned<D::File>,
    warnings: &mut Vec<RecoveryWarning>,
) -> Result<(), StorageError> {
    if let (Some((keep, file_len)), Some(last)) = (scanned.torn_tail, scanned.segments.last_mut()) {
        last.file
            .set_len(keep)
            .map_err(|e| StorageError::io("truncate", &last.path, e))?;
        // Synced with the rest at the end of the open.
        last.unsynced = true;
        warnings.push(RecoveryWarning::TornTail {
            path: last.path.clone(),
            offset: keep,
            bytes_cut: file_len - keep,
        });
    }
    if let Some(path) = scanned.torn_segment.take() {
        remove(disk, &path)?;
        warnings.push(RecoveryWarning::TornSegmentRemoved { path });
    }
    Ok(())
}

/// Checks that the saved commit index lies within the recovered log. Entries are synced
/// before a commit index counting them is saved, so one beyond the log means committed records
/// are lost: the error names the segment where the intact log ends, and that byte.
fn check_commit<F>(dir: &Path, meta: &Meta, scanned: &Scanned<F>) -> Result<(), StorageError> {
    let last = scanned.next_index.max(meta.first_index).prev();
    let commit = meta.hard_state.commit;
    if commit <= last {
        return Ok(());
    }
    let (path, offset) = scanned
        .end
        .clone()
        .unwrap_or_else(|| (dir.join(segment_file_name(meta.first_index)), 0));
    let problem = Corruption::CommitBeyondLog { commit, last };
    Err(StorageError::corrupt(path, offset, problem))
}

fn remove<D: Disk>(disk: &D, path: &Path) -> Result<(), StorageError> {
    disk.remove(path)
        .map_err(|e| StorageError::io("remove", path, e))
}
