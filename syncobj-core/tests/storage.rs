//! Tests of the storage layer through its public API: the PySyncObj journal test, a model-based
//! test with reboots on the simulated disk, damage to every file format, and crashes at every
//! step of every multi-step write.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use syncobj_core::raft::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};
use syncobj_core::storage::{
    ClusterId, Corruption, Disk, FileJournal, Identity, Journal, JournalOptions, MemoryJournal,
    Recovery, RecoveryWarning, SimDisk, SnapshotMeta, SnapshotStore, StdDisk, StorageError,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind: EntryKind::Command,
        data: Bytes::copy_from_slice(data),
    }
}

fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: LogIndex(commit),
    }
}

fn log_dir() -> PathBuf {
    PathBuf::from("/node/log")
}

fn snap_dir() -> PathBuf {
    PathBuf::from("/node/snapshots")
}

fn segment_path(first: u64) -> PathBuf {
    log_dir().join(format!("segment-{first:020}.log"))
}

fn hard_state_path() -> PathBuf {
    log_dir().join("hard-state")
}

/// Small segments and buffers, so few entries exercise roll-over and early writes: about five
/// records of 35 bytes after the 100-byte head of a segment.
fn small_options() -> JournalOptions {
    JournalOptions {
        segment_bytes_target: 276,
        record_bytes_max: 1000,
        write_buffer_bytes_max: 64,
        ..JournalOptions::default()
    }
}

type SimJournal = FileJournal<SimDisk>;

fn open_sim(
    disk: &SimDisk,
    options: JournalOptions,
) -> Result<(SimJournal, Recovery), StorageError> {
    FileJournal::open(disk.clone(), log_dir(), options)
}

fn must_open(disk: &SimDisk, options: JournalOptions) -> (SimJournal, Recovery) {
    open_sim(disk, options).unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// The first indexes of the segment files in the log directory, in order.
fn segment_firsts(disk: &SimDisk) -> Vec<u64> {
    let mut firsts: Vec<u64> = disk
        .list(&log_dir())
        .expect("the directory exists")
        .iter()
        .filter_map(|n| {
            n.to_str()?
                .strip_prefix("segment-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    firsts.sort();
    firsts
}

/// A journal holding `entries` and `hs`, synced; then the process stops, as after `kill -9`:
/// the disk keeps everything written, so the sync slot claims every entry.
fn written(disk: &SimDisk, entries: &[Entry], hs: HardState, options: JournalOptions) {
    written_with_unsynced_tail(disk, entries, &[], hs, options);
}

/// Like [`written`], then `unsynced` appended and written out but not synced: the process
/// stops with them written to the disk, and the sync slot claims only `synced`.
fn written_with_unsynced_tail(
    disk: &SimDisk,
    synced: &[Entry],
    unsynced: &[Entry],
    hs: HardState,
    options: JournalOptions,
) {
    let (mut journal, _) = must_open(disk, options);
    journal.set_hard_state(hs).expect("valid hard state");
    journal.append(synced).expect("valid entries");
    journal.sync().expect("no fault injected");
    journal.append(unsynced).expect("valid entries");
    journal.flush().expect("no fault injected");
}

fn entries_1_to(n: u64, term: u64) -> Vec<Entry> {
    (1..=n)
        .map(|i| entry(i, term, format!("command {i}").as_bytes()))
        .collect()
}

/// Where records start in a segment: after the 24-byte header, the two 28-byte sync slots and
/// the 20-byte identity.
const RECORDS_AT: u64 = 100;

/// The byte offset of each record in a single segment holding `entries`, and the file length.
fn record_offsets(entries: &[Entry]) -> (Vec<u64>, u64) {
    let mut at = RECORDS_AT;
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(at);
        at += 25 + e.data.len() as u64;
    }
    (offsets, at)
}

/// The path, offset and problem of a corruption error; panics on anything else.
fn corruption(result: Result<(SimJournal, Recovery), StorageError>) -> (PathBuf, u64, Corruption) {
    match result {
        Err(StorageError::Corrupt {
            path,
            offset,
            problem,
        }) => (path, offset, problem),
        Err(other) => panic!("expected a corruption error, got {other}"),
        Ok((_, recovery)) => panic!("expected a corruption error, opened: {recovery:?}"),
    }
}

/// A record in the documented format, for crafting damaged segments.
fn raw_record(index: u64, term: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
    let length = (17 + payload.len() as u32).to_le_bytes();
    let mut body = Vec::new();
    body.extend_from_slice(&index.to_le_bytes());
    body.extend_from_slice(&term.to_le_bytes());
    body.push(kind);
    body.extend_from_slice(payload);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&length), &body);
    let mut record = length.to_vec();
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(&body);
    record
}

// ---------------------------------------------------------------------------------------------
// PySyncObj's test_journalTest2, and basic behaviour

/// PySyncObj `test_journalTest2`: add three entries, reopen, three; `deleteEntriesFrom(2)`
/// (list position 2, so entries 1 and 2 stay), reopen, two; `deleteEntriesTo(1)` (position 1,
/// so entry 2 stays), reopen, one entry: the second command.
fn journal_test_2<D: Disk>(disk: D, dir: &Path, between: impl Fn()) -> Result<(), StorageError> {
    let reopen = || FileJournal::open(disk.clone(), dir, JournalOptions::default());
    let (mut journal, recovery) = reopen()?;
    assert!(recovery.entries.is_empty());
    journal.set_hard_state(hard_state(1, None, 0))?;
    journal.append(&entries_1_to(3, 1))?;
    journal.sync()?;
    drop(journal);
    between();

    let (mut journal, recovery) = reopen()?;
    assert_eq!(recovery.entries, entries_1_to(3, 1));
    journal.truncate_suffix(LogIndex(3))?;
    drop(journal);
    between();

    let (mut journal, recovery) = reopen()?;
    assert_eq!(recovery.entries, entries_1_to(2, 1));
    journal.drop_prefix(LogIndex(1))?;
    drop(journal);
    between();

    let (journal, recovery) = reopen()?;
    assert_eq!(recovery.entries, vec![entry(2, 1, b"command 2")]);
    assert_eq!(recovery.first_index, LogIndex(2));
    assert_eq!(journal.last_index(), LogIndex(2));
    assert_eq!(recovery.hard_state, hard_state(1, None, 0));
    assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
    Ok(())
}

#[test]
fn pysyncobj_journal_test_2_on_real_files() -> Result<(), StorageError> {
    let dir = std::env::temp_dir().join(format!("syncobj-journal-test-2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = journal_test_2(StdDisk, &dir, || {});
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn pysyncobj_journal_test_2_with_crashes() -> Result<(), StorageError> {
    for seed in 0..20 {
        let disk = SimDisk::new(seed);
        journal_test_2(disk.clone(), &log_dir(), || disk.crash())?;
    }
    Ok(())
}

#[test]
fn memory_journal_follows_the_same_rules() -> Result<(), StorageError> {
    let mut journal = MemoryJournal::new();
    journal.set_hard_state(hard_state(1, None, 0))?;
    journal.append(&entries_1_to(3, 1))?;
    assert!(matches!(
        journal.append(&[entry(5, 1, b"")]),
        Err(StorageError::NotContiguous { .. })
    ));
    journal.truncate_suffix(LogIndex(3))?;
    journal.drop_prefix(LogIndex(1))?;
    assert_eq!(journal.first_index(), LogIndex(2));
    assert_eq!(
        journal.entries(LogIndex(2), LogIndex(3), 0)?,
        vec![entry(2, 1, b"command 2")]
    );
    journal.set_hard_state(hard_state(1, None, 5))?;
    assert!(matches!(journal.sync(), Err(StorageError::BadHardState(_))));
    Ok(())
}

#[test]
fn one_sync_is_one_fsync_for_many_appends() -> Result<(), StorageError> {
    let disk = SimDisk::new(1);
    let (mut journal, _) = must_open(&disk, JournalOptions::default());
    journal.set_hard_state(hard_state(1, None, 0))?;
    journal.sync()?;
    let before = disk.stats();
    for i in 1..=100 {
        journal.append(&[entry(i, 1, b"batched")])?;
    }
    journal.sync()?;
    let after = disk.stats();
    assert_eq!(after.file_syncs - before.file_syncs, 1);
    assert_eq!(after.dir_syncs, before.dir_syncs);
    // The records, then (after the fsync, not synced) the sync slot claiming them.
    assert_eq!(after.writes - before.writes, 2);
    Ok(())
}

#[test]
fn entries_read_back_from_buffer_disk_and_after_reopen() -> Result<(), StorageError> {
    let disk = SimDisk::new(2);
    let (mut journal, _) = must_open(&disk, small_options());
    journal.set_hard_state(hard_state(2, Some(1), 0))?;
    let all = entries_1_to(40, 2);
    journal.append(&all[..30])?;
    journal.sync()?;
    journal.append(&all[30..])?;
    assert!(journal.segment_count() > 3);
    assert_eq!(journal.entries(LogIndex(1), LogIndex(41), usize::MAX)?, all);
    assert_eq!(journal.term(LogIndex(40)), Some(Term(2)));
    assert_eq!(journal.term(LogIndex(41)), None);
    let limited = journal.entries(LogIndex(5), LogIndex(41), 100)?;
    assert!(!limited.is_empty() && limited.len() < 36);
    assert_eq!(limited[..], all[4..4 + limited.len()]);
    assert_eq!(
        journal.entries(LogIndex(7), LogIndex(8), 0)?,
        vec![all[6].clone()]
    );
    assert!(journal.entries(LogIndex(0), LogIndex(2), 10).is_err());
    assert!(journal.entries(LogIndex(3), LogIndex(42), 10).is_err());
    journal.sync()?;
    drop(journal);
    disk.crash();
    let (mut journal, recovery) = must_open(&disk, small_options());
    assert_eq!(recovery.entries, all);
    assert_eq!(journal.entries(LogIndex(1), LogIndex(41), usize::MAX)?, all);
    Ok(())
}

#[test]
fn preconditions_are_checked() -> Result<(), StorageError> {
    let disk = SimDisk::new(3);
    let (mut journal, _) = must_open(&disk, small_options());
    journal.set_hard_state(hard_state(2, None, 0))?;
    let too_new = journal.append(&[entry(1, 3, b"")]);
    assert!(matches!(too_new, Err(StorageError::TermOutOfOrder { .. })));
    journal.append(&[entry(1, 2, b"")])?;
    let backwards = journal.append(&[entry(2, 1, b"")]);
    assert!(matches!(
        backwards,
        Err(StorageError::TermOutOfOrder { .. })
    ));
    let huge = journal.append(&[entry(2, 2, &[0; 2000])]);
    assert!(matches!(huge, Err(StorageError::EntryTooLarge { .. })));
    journal.set_hard_state(hard_state(2, None, 1))?;
    journal.sync()?;
    let committed = journal.truncate_suffix(LogIndex(1));
    assert!(matches!(
        committed,
        Err(StorageError::TruncateCommitted { .. })
    ));
    let lower = journal.set_hard_state(hard_state(1, None, 1));
    assert!(matches!(lower, Err(StorageError::BadHardState(_))));
    let backwards = journal.set_hard_state(hard_state(2, None, 0));
    assert!(matches!(backwards, Err(StorageError::BadHardState(_))));
    journal.set_hard_state(hard_state(2, None, 2))?;
    assert!(matches!(journal.sync(), Err(StorageError::BadHardState(_))));
    assert_eq!(journal.last_index(), LogIndex(1));
    Ok(())
}

#[test]
fn splice_replaces_a_conflicting_suffix() -> Result<(), StorageError> {
    let disk = SimDisk::new(4);
    let (mut journal, _) = must_open(&disk, small_options());
    journal.set_hard_state(hard_state(1, None, 0))?;
    journal.append(&entries_1_to(10, 1))?;
    journal.sync()?;
    journal.set_hard_state(hard_state(2, None, 3))?;
    let new_leader = [entry(4, 2, b"x"), entry(5, 2, b"y")];
    journal.splice(&new_leader)?;
    journal.sync()?;
    drop(journal);
    disk.crash();
    let (_, recovery) = must_open(&disk, small_options());
    let mut expected = entries_1_to(3, 1);
    expected.extend(new_leader);
    assert_eq!(recovery.entries, expected);
    assert_eq!(recovery.hard_state, hard_state(2, None, 3));
    Ok(())
}

/// A follower's Ready may raise the commit index over the very entries that replace a
/// conflicting suffix; the truncation is checked against the commit index of the last sync.
#[test]
fn a_ready_can_commit_the_entries_that_replace_a_suffix() -> Result<(), StorageError> {
    let disk = SimDisk::new(9);
    let (mut file, _) = must_open(&disk, small_options());
    let mut memory = MemoryJournal::new();
    for journal in [&mut file as &mut dyn Journal, &mut memory] {
        journal.set_hard_state(hard_state(1, None, 5))?;
        journal.append(&entries_1_to(9, 1))?;
        journal.sync()?;
        journal.set_hard_state(hard_state(2, None, 10))?;
        journal.splice(&[entry(8, 2, b"a"), entry(9, 2, b"b"), entry(10, 2, b"c")])?;
        journal.sync()?;
        assert_eq!(journal.term(LogIndex(8)), Some(Term(2)));
        let refused = journal.truncate_suffix(LogIndex(10));
        assert!(matches!(
            refused,
            Err(StorageError::TruncateCommitted { .. })
        ));
    }
    Ok(())
}

#[test]
fn an_io_error_poisons_the_journal() -> Result<(), StorageError> {
    let disk = SimDisk::new(5);
    let (mut journal, _) = must_open(&disk, small_options());
    journal.set_hard_state(hard_state(1, None, 0))?;
    journal.append(&entries_1_to(2, 1))?;
    disk.fail_after(0);
    assert!(matches!(journal.sync(), Err(StorageError::Io { .. })));
    assert!(matches!(journal.sync(), Err(StorageError::Poisoned)));
    assert!(matches!(
        journal.append(&[entry(3, 1, b"")]),
        Err(StorageError::Poisoned)
    ));
    Ok(())
}

#[test]
fn a_corruption_message_names_file_offset_and_choices() {
    let disk = SimDisk::new(6);
    written(
        &disk,
        &entries_1_to(3, 1),
        hard_state(1, None, 0),
        small_options(),
    );
    let (offsets, _) = record_offsets(&entries_1_to(3, 1));
    disk.flip_byte(&segment_path(1), offsets[1] + 20)
        .expect("the file exists");
    let error = open_sim(&disk, small_options()).expect_err("damage before the tail");
    let message = error.to_string();
    assert!(
        message.contains("segment-00000000000000000001.log"),
        "{message}"
    );
    assert!(
        message.contains(&format!("byte {}", offsets[1])),
        "{message}"
    );
    assert!(
        message.contains("backup") && message.contains("wipe"),
        "{message}"
    );
}

#[test]
fn leftover_temp_and_unknown_files_are_reported() -> Result<(), Box<dyn std::error::Error>> {
    use syncobj_core::storage::DiskFile;
    let disk = SimDisk::new(8);
    written(
        &disk,
        &entries_1_to(2, 1),
        hard_state(1, None, 1),
        small_options(),
    );
    for name in ["hard-state.tmp", "notes.txt"] {
        let mut file = disk.create(&log_dir().join(name))?;
        file.write_all_at(0, b"half")?;
        file.sync()?;
    }
    disk.sync_dir(&log_dir())?;
    let (_, recovery) = open_sim(&disk, small_options())?;
    assert_eq!(recovery.hard_state, hard_state(1, None, 1));
    assert_eq!(recovery.entries, entries_1_to(2, 1));
    let expected = vec![
        RecoveryWarning::UnknownFile {
            path: log_dir().join("notes.txt"),
        },
        RecoveryWarning::TempFileRemoved {
            path: log_dir().join("hard-state.tmp"),
        },
    ];
    assert_eq!(recovery.warnings, expected);
    assert!(disk.open(&log_dir().join("hard-state.tmp")).is_err());
    Ok(())
}

/// The total length of the segment files in `dir`, read from the file system.
fn segment_files_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("the journal directory exists")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("segment-"))
        .map(|e| e.metadata().expect("a segment file").len())
        .sum()
}

#[test]
fn real_files_roll_over_truncate_and_drop() -> Result<(), StorageError> {
    let dir = std::env::temp_dir().join(format!("syncobj-real-roll-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| {
        let open = || FileJournal::open(StdDisk, &dir, small_options());
        let (mut journal, _) = open()?;
        journal.set_hard_state(hard_state(3, Some(2), 0))?;
        let all = entries_1_to(60, 3);
        journal.append(&all)?;
        journal.sync()?;
        assert!(journal.segment_count() > 5);
        let full = journal.disk_bytes();
        assert_eq!(full, segment_files_bytes(&dir), "after appends");
        journal.truncate_suffix(LogIndex(41))?;
        assert_eq!(
            journal.disk_bytes(),
            segment_files_bytes(&dir),
            "after a cut"
        );
        journal.drop_prefix(LogIndex(12))?;
        assert_eq!(
            journal.disk_bytes(),
            segment_files_bytes(&dir),
            "after a drop"
        );
        assert!(
            journal.disk_bytes() < full,
            "a cut and a drop free segments"
        );
        journal.set_hard_state(hard_state(3, Some(2), 40))?;
        let before = journal.disk_bytes();
        let buffered = entry(41, 3, b"buffered");
        journal.append(std::slice::from_ref(&buffered))?;
        let record = record_offsets(std::slice::from_ref(&buffered)).1 - RECORDS_AT;
        assert!(
            journal.disk_bytes() >= before + record,
            "a buffered append counts as written"
        );
        journal.flush()?;
        assert_eq!(
            journal.disk_bytes(),
            segment_files_bytes(&dir),
            "once written"
        );
        journal.truncate_suffix(LogIndex(41))?;
        journal.sync()?;
        let synced = journal.disk_bytes();
        drop(journal);
        let (mut journal, recovery) = open()?;
        assert_eq!(journal.disk_bytes(), synced, "the same after a reopen");
        assert_eq!(synced, segment_files_bytes(&dir));
        assert_eq!(recovery.entries, all[12..40]);
        assert_eq!(recovery.hard_state, hard_state(3, Some(2), 40));
        assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
        assert_eq!(
            journal.entries(LogIndex(13), LogIndex(41), usize::MAX)?,
            all[12..40]
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

// ---------------------------------------------------------------------------------------------
// The model-based test

/// One step of the model-based test.
#[derive(Clone, Debug)]
enum Op {
    /// Append `count` entries with payloads of `len` bytes.
    Append { count: u8, len: u8 },
    /// Start a new term, with or without a vote.
    NewTerm { vote: bool },
    /// Raise the commit index by a share of what is uncommitted.
    Commit { share: u8 },
    /// Truncate `back` entries from the end (if that stays above the commit index).
    Truncate { back: u8 },
    /// Drop a prefix: up to `ahead` entries past the first one kept (may pass the end).
    DropPrefix { ahead: u8 },
    /// Sync.
    Sync,
    /// Cut the power after `ops` more mutating disk operations.
    ArmPowerCut { ops: u8 },
    /// Crash (a power cut) and reopen.
    Reboot,
    /// Kill the process and reopen: the disk keeps everything written, synced or not.
    Kill,
    /// Kill the process (the disk keeps everything written, synced or not, and an armed power
    /// cut never comes), damage the log's last segment — cut its records to a `share` of
    /// their length, or flip the byte at a `share` of the file — and reopen.
    Damage { share: u8, flip: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..5, 0u8..40).prop_map(|(count, len)| Op::Append { count, len }),
        1 => any::<bool>().prop_map(|vote| Op::NewTerm { vote }),
        2 => any::<u8>().prop_map(|share| Op::Commit { share }),
        2 => (1u8..8).prop_map(|back| Op::Truncate { back }),
        1 => (0u8..12).prop_map(|ahead| Op::DropPrefix { ahead }),
        4 => Just(Op::Sync),
        1 => (0u8..12).prop_map(|ops| Op::ArmPowerCut { ops }),
        2 => Just(Op::Reboot),
        1 => Just(Op::Kill),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(share, flip)| Op::Damage { share, flip }),
    ]
}

/// A log as the model sees it: every entry ever at each index in this history, and the first
/// index kept.
#[derive(Clone, Debug, PartialEq)]
struct ModelLog {
    first: u64,
    /// Entries by index; may hold entries below `first` (they were dropped, not forgotten).
    entries: std::collections::BTreeMap<u64, Entry>,
}

impl ModelLog {
    fn last(&self) -> u64 {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.first - 1)
    }
}

/// What the journal may hold after a crash.
#[derive(Debug)]
struct Model {
    /// The log as the journal holds it now.
    current: ModelLog,
    /// Entries that must survive a crash (those synced and not truncated since).
    must: ModelLog,
    /// Every state of the log since the last successful sync; the recovered log must be a
    /// window of one of them.
    states: Vec<ModelLog>,
    /// The hard state set last.
    hard_state: HardState,
    /// Hard states a crash may leave.
    allowed_hard_states: Vec<HardState>,
    nonce: u64,
}

impl Model {
    fn new() -> Model {
        let log = ModelLog {
            first: 1,
            entries: Default::default(),
        };
        Model {
            current: log.clone(),
            must: log.clone(),
            states: vec![log],
            hard_state: HardState::default(),
            allowed_hard_states: vec![HardState::default()],
            nonce: 0,
        }
    }

    fn changed(&mut self) {
        self.states.push(self.current.clone());
    }

    fn set_hard_state(&mut self, new: HardState) {
        let mut allowed = vec![new];
        for old in &self.allowed_hard_states {
            allowed.push(*old);
            allowed.push(HardState {
                commit: old.commit,
                ..new
            });
        }
        allowed.dedup();
        self.allowed_hard_states = allowed;
        self.hard_state = new;
    }

    fn synced(&mut self) {
        self.must = self.current.clone();
        self.states = vec![self.current.clone()];
        self.allowed_hard_states = vec![self.hard_state];
    }

    /// Checks a recovery against the model, then makes it the model's state.
    fn rebooted(&mut self, recovery: &Recovery) -> Result<(), TestCaseError> {
        let first = recovery.first_index.0;
        prop_assert!(
            self.allowed_hard_states.contains(&recovery.hard_state),
            "hard state {:?} not among {:?}",
            recovery.hard_state,
            self.allowed_hard_states
        );
        prop_assert!(first >= self.must.first && first <= self.current.first.max(self.must.first));
        for (offset, e) in recovery.entries.iter().enumerate() {
            prop_assert_eq!(
                e.index.0,
                first + offset as u64,
                "hole in the recovered log"
            );
        }
        let synced_last = self.must.last();
        let recovered_last = (first + recovery.entries.len() as u64).saturating_sub(1);
        prop_assert!(
            recovered_last >= synced_last,
            "recovery returned the log through {} but entries through {} were synced",
            recovered_last,
            synced_last
        );
        for (index, e) in self.must.entries.range(first..) {
            prop_assert_eq!(
                recovery.entries.get((index - first) as usize),
                Some(e),
                "synced entry lost"
            );
        }
        let window_of = |s: &ModelLog| {
            recovery
                .entries
                .iter()
                .all(|e| s.entries.get(&e.index.0) == Some(e))
        };
        prop_assert!(
            self.states.iter().any(window_of),
            "recovered entries are no state's window"
        );
        let log = ModelLog {
            first,
            entries: recovery
                .entries
                .iter()
                .map(|e| (e.index.0, e.clone()))
                .collect(),
        };
        self.current = log;
        self.hard_state = recovery.hard_state;
        self.synced();
        Ok(())
    }
}

/// Runs `op` on the journal and the model. Returns `Err` with the journal's error if it failed.
fn apply(
    op: &Op,
    journal: &mut SimJournal,
    model: &mut Model,
    disk: &SimDisk,
) -> Result<(), StorageError> {
    match *op {
        Op::Append { count, len } => {
            let term = model.hard_state.term.0;
            let start = model.current.last() + 1;
            let batch: Vec<Entry> = (start..start + u64::from(count))
                .map(|i| {
                    model.nonce += 1;
                    let payload: Vec<u8> = (0..len)
                        .map(|b| (model.nonce as u8).wrapping_add(b))
                        .collect();
                    entry(i, term, &payload)
                })
                .collect();
            let result = journal.append(&batch);
            model
                .current
                .entries
                .extend(batch.into_iter().map(|e| (e.index.0, e)));
            model.changed();
            result
        }
        Op::NewTerm { vote } => {
            let hs = HardState {
                term: model.hard_state.term.next(),
                vote: vote.then_some(NodeId(7)),
                commit: model.hard_state.commit,
            };
            model.set_hard_state(hs);
            journal.set_hard_state(hs)
        }
        Op::Commit { share } => {
            let (commit, last) = (model.hard_state.commit.0, model.current.last());
            let target = commit + (last.saturating_sub(commit)) * u64::from(share) / 255;
            let hs = HardState {
                commit: LogIndex(target),
                ..model.hard_state
            };
            model.set_hard_state(hs);
            journal.set_hard_state(hs)
        }
        Op::Truncate { back } => {
            let last = model.current.last();
            let from = last.saturating_sub(u64::from(back) - 1);
            if from <= model.hard_state.commit.0 || from < model.current.first || from > last {
                return Ok(());
            }
            let result = journal.truncate_suffix(LogIndex(from));
            model.current.entries.retain(|&i, _| i < from);
            model.must.entries.retain(|&i, _| i < from);
            model.changed();
            result
        }
        Op::DropPrefix { ahead } => {
            let through = model.current.first - 1 + u64::from(ahead);
            let result = journal.drop_prefix(LogIndex(through));
            if through >= model.current.first {
                model.current.first = through + 1;
                model.changed();
            }
            result
        }
        Op::Sync => {
            let result = journal.sync();
            if result.is_ok() {
                model.synced();
            }
            result
        }
        Op::ArmPowerCut { ops } => {
            disk.fail_after(u64::from(ops));
            Ok(())
        }
        Op::Reboot | Op::Kill | Op::Damage { .. } => Ok(()),
    }
}

/// Reopens after the process was killed: no crash, the disk keeps what was written (an armed
/// power cut never comes).
fn reopen_after_kill(disk: &SimDisk, model: &mut Model) -> Result<SimJournal, TestCaseError> {
    disk.fail_after(u64::MAX);
    let (journal, recovery) = open_sim(disk, small_options())
        .map_err(|e| TestCaseError::fail(format!("recovery after a kill failed: {e}")))?;
    model.rebooted(&recovery)?;
    prop_assert_eq!(journal.last_index().0, model.current.last());
    Ok(journal)
}

fn reboot(disk: &SimDisk, model: &mut Model) -> Result<SimJournal, TestCaseError> {
    disk.crash();
    let (journal, recovery) = open_sim(disk, small_options())
        .map_err(|e| TestCaseError::fail(format!("recovery failed: {e}")))?;
    model.rebooted(&recovery)?;
    prop_assert_eq!(journal.last_index().0, model.current.last());
    Ok(journal)
}

/// The records of a segment as (offset, end, index), up to the first that is not
/// whole and valid.
fn segment_records(bytes: &[u8]) -> Vec<(u64, u64, u64)> {
    let mut records = Vec::new();
    let mut at = RECORDS_AT as usize;
    while let Some(prefix) = bytes.get(at..at + 8) {
        let body = u32::from_le_bytes(prefix[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(prefix[4..].try_into().expect("4 bytes"));
        let Some(record) = bytes.get(at + 8..at + 8 + body).filter(|b| b.len() >= 17) else {
            break;
        };
        if crc32c::crc32c_append(crc32c::crc32c(&prefix[..4]), record) != crc {
            break;
        }
        let index = u64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
        let end = at + 8 + body;
        records.push((at as u64, end as u64, index));
        at = end;
    }
    records
}

/// Runs [`Op::Damage`]: kills the process, damages the last segment and reopens. If the damage
/// touches a record of a synced entry, recovery must refuse with an error naming that segment
/// (it may refuse other damage too, such as to a header, or to records the journal synced on
/// its own, which the model does not count). Returns the reopened journal, or `None` once
/// recovery refused: the node stops there.
fn damage_and_reopen(
    disk: &SimDisk,
    model: &mut Model,
    share: u8,
    flip: bool,
) -> Result<Option<SimJournal>, TestCaseError> {
    disk.fail_after(u64::MAX);
    disk.write_back();
    let first = *segment_firsts(disk)
        .last()
        .expect("a journal has a segment");
    let path = segment_path(first);
    let bytes = disk
        .contents(&path)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let len = bytes.len() as u64;
    let synced = |index: u64| index >= model.must.first && model.must.entries.contains_key(&index);
    let records = segment_records(&bytes);
    let (hit, what) = if flip && len > 0 {
        let at = len * u64::from(share) / 256;
        disk.flip_byte(&path, at)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let hit = records
            .iter()
            .any(|&(o, end, i)| synced(i) && (o..end).contains(&at));
        (hit, format!("a flip at byte {at}"))
    } else {
        let start = RECORDS_AT.min(len);
        let cut = start + (len - start) * u64::from(share) / 255;
        disk.truncate(&path, cut)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let hit = records.iter().any(|&(_, end, i)| synced(i) && end > cut);
        (hit, format!("a cut at byte {cut}"))
    };
    match open_sim(disk, small_options()) {
        Err(StorageError::Corrupt { path: named, .. }) => {
            prop_assert_eq!(named, path, "after {}", what);
            Ok(None)
        }
        Err(other) => Err(TestCaseError::fail(format!("after {what}: {other}"))),
        Ok((journal, recovery)) => {
            prop_assert!(
                !hit,
                "{} of {} hit synced records, and recovery went on: {:?}",
                what,
                path.display(),
                recovery.warnings
            );
            model.rebooted(&recovery)?;
            Ok(Some(journal))
        }
    }
}

/// Runs `ops` on a fresh journal and the model, rebooting after a failed operation, a reboot
/// or damage. Returns the journal, or `None` if recovery (rightly) refused damage.
fn run_model(
    seed: u64,
    ops: &[Op],
    model: &mut Model,
) -> Result<Option<(SimDisk, SimJournal)>, TestCaseError> {
    let disk = SimDisk::new(seed);
    let (mut journal, recovery) =
        open_sim(&disk, small_options()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    model.rebooted(&recovery)?;
    for op in ops {
        let failed = match apply(op, &mut journal, model, &disk) {
            Ok(()) => false,
            Err(StorageError::Io { .. } | StorageError::Poisoned) => true,
            Err(other) => return Err(TestCaseError::fail(format!("{op:?} failed: {other}"))),
        };
        if let Op::Damage { share, flip } = *op {
            drop(journal);
            match damage_and_reopen(&disk, model, share, flip)? {
                Some(reopened) => journal = reopened,
                None => return Ok(None),
            }
        } else if matches!(op, Op::Kill) && !failed {
            drop(journal);
            journal = reopen_after_kill(&disk, model)?;
        } else if failed || matches!(op, Op::Reboot | Op::Kill) {
            drop(journal);
            journal = reboot(&disk, model)?;
        }
    }
    Ok(Some((disk, journal)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// After any sequence of appends, truncations, prefix drops, hard-state changes, syncs,
    /// power cuts in the middle of an operation and reboots (on `SimDisk`, which loses only
    /// unsynced writes and may tear the last one), the journal recovers without error; it
    /// never returns fewer entries than were synced, and everything synced (and not truncated
    /// since) is there, exactly; what is there is a hole-free window of a log the journal held
    /// since the last sync. Damage to the records of synced entries is reported, never
    /// dropped.
    #[test]
    fn journal_survives_any_crash(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..80)) {
        let mut model = Model::new();
        let Some((disk, journal)) = run_model(seed, &ops, &mut model)? else {
            return Ok(());
        };
        drop(journal);
        disk.crash();
        let (mut journal, recovery) = open_sim(&disk, small_options())
            .map_err(|e| TestCaseError::fail(format!("final recovery failed: {e}")))?;
        model.rebooted(&recovery)?;
        let (first, next) = (journal.first_index(), journal.last_index().next());
        let read = journal.entries(first, next, usize::MAX)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(read, recovery.entries);
    }
}

/// Runs `op` on any journal, the way [`apply`] does for the model (no power cuts, no reboots).
fn apply_plain(op: &Op, journal: &mut dyn Journal, nonce: u64) -> Result<(), StorageError> {
    let hs = journal.hard_state();
    let last = journal.last_index().0;
    match *op {
        Op::Append { count, len } => {
            let batch: Vec<Entry> = (last + 1..=last + u64::from(count))
                .map(|i| entry(i, hs.term.0, &vec![(nonce as u8) ^ (i as u8); len as usize]))
                .collect();
            journal.append(&batch)
        }
        Op::NewTerm { vote } => journal.set_hard_state(HardState {
            term: hs.term.next(),
            vote: vote.then_some(NodeId(1)),
            ..hs
        }),
        Op::Commit { share } => {
            let commit = hs.commit.0 + last.saturating_sub(hs.commit.0) * u64::from(share) / 255;
            journal.set_hard_state(HardState {
                commit: LogIndex(commit),
                ..hs
            })
        }
        Op::Truncate { back } => {
            journal.truncate_suffix(LogIndex(last.saturating_sub(u64::from(back))))
        }
        Op::DropPrefix { ahead } => {
            journal.drop_prefix(LogIndex(journal.first_index().0 - 1 + u64::from(ahead)))
        }
        Op::Sync => journal.sync(),
        Op::ArmPowerCut { .. } | Op::Reboot | Op::Kill | Op::Damage { .. } => Ok(()),
    }
}

/// What an outcome looks like, for comparing two journals (errors by variant only).
fn outcome(result: &Result<(), StorageError>) -> String {
    match result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("{e:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The file journal and the memory journal accept and refuse the same calls and hold the
    /// same log after each; the file journal's log survives a clean reopen.
    #[test]
    fn file_and_memory_journals_agree(ops in prop::collection::vec(op(), 1..60)) {
        let disk = SimDisk::new(0);
        let (file, _) = open_sim(&disk, small_options()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut journals: [Box<dyn Journal>; 2] = [Box::new(file), Box::new(MemoryJournal::new())];
        for (nonce, op) in ops.iter().enumerate() {
            let results: Vec<String> = journals
                .iter_mut()
                .map(|j| outcome(&apply_plain(op, j.as_mut(), nonce as u64)))
                .collect();
            prop_assert_eq!(&results[0], &results[1], "{:?}", op);
            let views: Vec<_> = journals
                .iter_mut()
                .map(|j| {
                    let (first, next) = (j.first_index(), j.last_index().next());
                    let entries = j.entries(first, next, usize::MAX).map_err(|e| e.to_string());
                    (first, next, j.hard_state(), j.term(next.prev()), entries)
                })
                .collect();
            prop_assert_eq!(&views[0], &views[1], "after {:?}", op);
        }
        let [file, memory] = &mut journals;
        if file.sync().is_ok() {
            memory.sync().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (_, recovery) = open_sim(&disk, small_options()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (first, next) = (memory.first_index(), memory.last_index().next());
            let expected = memory.entries(first, next, usize::MAX).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(recovery.entries, expected);
            prop_assert_eq!(recovery.first_index, first);
            prop_assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever happened before (power cuts, reboots, truncations, prefix drops), once a sync
    /// succeeds nothing is left to clean up: a crash right after it loses nothing and the
    /// reopen warns about nothing (no obsolete, torn or temporary file).
    #[test]
    fn a_synced_journal_reopens_without_warnings(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut model = Model::new();
        let Some((disk, mut journal)) = run_model(seed, &ops, &mut model)? else {
            return Ok(());
        };
        disk.fail_after(u64::MAX);
        journal.sync().map_err(|e| TestCaseError::fail(format!("final sync failed: {e}")))?;
        model.synced();
        drop(journal);
        disk.crash();
        let (_, recovery) = open_sim(&disk, small_options())
            .map_err(|e| TestCaseError::fail(format!("final recovery failed: {e}")))?;
        prop_assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
        prop_assert_eq!(recovery.first_index.0, model.current.first);
        let expected: Vec<Entry> = model.current.entries.range(model.current.first..).map(|(_, e)| e.clone()).collect();
        prop_assert_eq!(recovery.entries, expected);
    }
}

/// The minimal input on which `file_and_memory_journals_agree` failed: a prefix drop, then a
/// truncation back to the first index left the log empty in a segment of dropped entries; the
/// next append rolled over to a segment at the first index, which made that one obsolete, and
/// it stayed on disk through the clean sync (the reopen removed
/// `segment-00000000000000000021.log` with a warning).
#[test]
fn file_and_memory_journals_agree_regression_obsolete_segment_21() -> Result<(), StorageError> {
    use Op::{Append, DropPrefix, Truncate};
    let ops = [
        Append { count: 3, len: 0 },
        Append { count: 3, len: 0 },
        Append { count: 2, len: 32 },
        Append { count: 2, len: 38 },
        Append { count: 4, len: 1 },
        Append { count: 3, len: 8 },
        Append { count: 3, len: 0 },
        Append { count: 3, len: 0 },
        Append { count: 4, len: 0 },
        Truncate { back: 7 },
        Append { count: 3, len: 22 },
        Append { count: 3, len: 5 },
        Append { count: 2, len: 0 },
        DropPrefix { ahead: 5 },
        Append { count: 3, len: 0 },
        DropPrefix { ahead: 6 },
        Truncate { back: 1 },
        Truncate { back: 1 },
        Append { count: 1, len: 0 },
        DropPrefix { ahead: 3 },
        DropPrefix { ahead: 9 },
        Truncate { back: 3 },
        Append { count: 1, len: 28 },
    ];
    let disk = SimDisk::new(0);
    let (mut file, _) = open_sim(&disk, small_options())?;
    let mut memory = MemoryJournal::new();
    for (nonce, op) in ops.iter().enumerate() {
        let nonce = nonce as u64;
        let results = [
            outcome(&apply_plain(op, &mut file, nonce)),
            outcome(&apply_plain(op, &mut memory, nonce)),
        ];
        assert_eq!(results[0], results[1], "{op:?}");
        let (first, next) = (memory.first_index(), memory.last_index().next());
        assert_eq!(
            (file.first_index(), file.last_index()),
            (first, next.prev())
        );
        assert_eq!(
            file.entries(first, next, usize::MAX)?,
            memory.entries(first, next, usize::MAX)?,
            "after {op:?}"
        );
    }
    file.sync()?;
    memory.sync()?;
    assert_eq!(segment_firsts(&disk), [24]);
    let (first, next) = (memory.first_index(), memory.last_index().next());
    let expected = memory.entries(first, next, usize::MAX)?;
    let (_, recovery) = open_sim(&disk, small_options())?;
    assert_eq!(recovery.entries, expected);
    assert_eq!(recovery.first_index, first);
    assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Damaged segments

/// Where the two sync slots of a segment are; the identity follows them.
const SLOTS: std::ops::Range<u64> = 24..80;

/// Every byte of a synced segment is checked. Changed with the sync slots: a flip in the last
/// record used to be taken for a torn tail and cut with a warning; the slot claims that record
/// as synced, so it is now an error at the record like any other. A flip in one sync slot is
/// taken for a torn write of that slot: the other slot holds, nothing is lost.
#[test]
fn every_flipped_byte_of_a_segment_is_caught() {
    let entries = entries_1_to(4, 1);
    let (offsets, len) = record_offsets(&entries);
    for at in 0..len {
        let disk = SimDisk::new(at);
        written(
            &disk,
            &entries,
            hard_state(1, None, 0),
            JournalOptions::default(),
        );
        disk.flip_byte(&segment_path(1), at)
            .expect("offset within the file");
        let result = open_sim(&disk, JournalOptions::default());
        if SLOTS.contains(&at) {
            let (_, recovery) = result.unwrap_or_else(|e| panic!("flip at {at}: {e}"));
            assert_eq!(recovery.entries, entries, "flip at {at}");
            assert!(recovery.warnings.is_empty(), "flip at {at}");
            continue;
        }
        let (path, offset, problem) = corruption(result);
        assert_eq!(path, segment_path(1), "flip at {at}");
        let expected = match at {
            0..8 => 0,
            8..12 => 8,
            12..24 => 20,
            80..100 => 96,
            _ => *offsets
                .iter()
                .rev()
                .find(|&&o| o <= at)
                .expect("past the header"),
        };
        assert_eq!(offset, expected, "flip at {at}: {problem}");
    }
}

/// The offset of the record of `offsets` that holds byte `at` (or starts there).
fn record_at(offsets: &[u64], at: u64) -> u64 {
    *offsets
        .iter()
        .rev()
        .find(|&&o| o <= at)
        .expect("past the slots")
}

/// A cut of the last segment inside its unsynced tail is a torn write: the segment is cut to
/// its last whole record with a warning, and the journal goes on. Changed with the sync slots:
/// a cut inside the records the slot claims as synced used to be taken for a torn tail too; it
/// is now refused, naming the segment and the first record not intact. A cut into the 100-byte
/// head leaves no slot to read: it is taken for an interrupted creation, as before.
#[test]
fn every_truncation_of_the_last_segment_cuts_an_unsynced_tail_and_refuses_synced_records() {
    let entries = entries_1_to(4, 1);
    let (offsets, len) = record_offsets(&entries);
    let synced_end = offsets[2];
    let ends: Vec<u64> = offsets[1..].iter().copied().chain([len]).collect();
    for cut in 0..len {
        let disk = SimDisk::new(cut);
        written_with_unsynced_tail(
            &disk,
            &entries[..2],
            &entries[2..],
            hard_state(1, None, 0),
            JournalOptions::default(),
        );
        disk.truncate(&segment_path(1), cut)
            .expect("the file exists");
        let kept = ends.iter().filter(|&&end| end <= cut).count();
        if (RECORDS_AT..synced_end).contains(&cut) {
            let (path, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
            let lost = Corruption::SyncedRecordsLost {
                synced: LogIndex(2),
                synced_end,
                intact: LogIndex(kept as u64),
            };
            assert_eq!(
                (path, offset, problem),
                (segment_path(1), record_at(&offsets, cut), lost),
                "cut at {cut}"
            );
            assert_eq!(
                disk.contents(&segment_path(1)).map(|c| c.len() as u64).ok(),
                Some(cut)
            );
            continue;
        }
        let (mut journal, recovery) = must_open(&disk, JournalOptions::default());
        let boundary = ends.contains(&cut);
        assert_eq!(recovery.entries, entries[..kept], "cut at {cut}");
        assert_eq!(
            recovery.warnings.len(),
            usize::from(!boundary),
            "cut at {cut}: {:?}",
            recovery.warnings
        );
        // The journal goes on from the cut.
        let next = entry(kept as u64 + 1, 1, b"after the cut");
        journal
            .append(std::slice::from_ref(&next))
            .expect("continues the log");
        journal.sync().expect("no fault injected");
        drop(journal);
        disk.crash();
        let (_, recovery) = must_open(&disk, JournalOptions::default());
        assert_eq!(recovery.entries.last(), Some(&next), "cut at {cut}");
        assert!(recovery.warnings.is_empty(), "cut at {cut}");
    }
}

/// Appends `entries` in batches of `batch`, syncing after each, as the driver does (one sync
/// per `Ready`).
fn synced_in_batches(journal: &mut SimJournal, entries: &[Entry], batch: usize) {
    for chunk in entries.chunks(batch) {
        journal.append(chunk).expect("valid entries");
        journal.sync().expect("no fault injected");
    }
}

/// Issue 10, item 5: a node killed right after 2,000 synced entries had a saved commit index of
/// 0 (it is saved lazily); its last segment was then cut to half. Recovery took the cut for a
/// torn tail and dropped about 1,000 entries it had synced and acknowledged. The sync slot
/// proves they were synced: recovery refuses, naming the segment, the first record not intact
/// and the operator's choices, and leaves the file as it found it. After a power cut (rather
/// than a kill) the claim written after the last sync may be lost, but the one before it holds.
#[test]
fn synced_entries_cut_off_the_last_segment_are_refused_not_dropped() {
    let entries = entries_1_to(2000, 1);
    let (offsets, len) = record_offsets(&entries);
    let half = len / 2;
    let intact = offsets.iter().filter(|&&o| o < half).count() - 1;
    for (batch, power_cut) in [
        (100, false),
        (2000, false),
        (1, false),
        (100, true),
        (1, true),
    ] {
        for seed in 0..3 {
            let disk = SimDisk::new(seed);
            let (mut journal, _) = must_open(&disk, JournalOptions::default());
            journal
                .set_hard_state(hard_state(1, None, 0))
                .expect("valid hard state");
            synced_in_batches(&mut journal, &entries, batch);
            drop(journal);
            if power_cut {
                disk.crash();
            }
            disk.truncate(&segment_path(1), half).expect("exists");
            let case = format!("batches of {batch}, power cut {power_cut}, seed {seed}");
            let error = open_sim(&disk, JournalOptions::default()).expect_err(&case);
            let message = error.to_string();
            let (path, offset, problem) = corruption(Err(error));
            assert_eq!((path, offset), (segment_path(1), offsets[intact]), "{case}");
            let Corruption::SyncedRecordsLost {
                synced,
                synced_end,
                intact: found,
            } = problem
            else {
                panic!("{case}: {problem}");
            };
            assert!(synced.0 as usize >= 2000 - batch, "{case}: {synced}");
            assert!(synced_end > half, "{case}");
            assert_eq!(found, LogIndex(intact as u64), "{case}");
            if !power_cut {
                assert_eq!((synced, synced_end), (LogIndex(2000), len), "{case}");
            }
            let expected = format!(
                "{} is damaged at byte {}: entries through {synced} were synced",
                segment_path(1).display(),
                offsets[intact]
            );
            assert!(message.starts_with(&expected), "{case}: {message}");
            assert!(
                message.contains("backup") && message.contains("wipe"),
                "{message}"
            );
            let kept = disk.contents(&segment_path(1)).expect("exists").len() as u64;
            assert_eq!(kept, half, "{case}: the refused journal was changed");
        }
    }
}

/// After a clean shutdown (every entry synced, the commit index saved), damage to the last
/// segment is reported in the segment, at the first record not intact. It used to be reported
/// as `hard-state is damaged at byte 29: saved commit index #2001 is beyond the last entry
/// #2000`, naming a file that is intact. With the sync slot intact (the process stopped) the
/// slot proves the loss; with its last write torn (a power cut), the commit index does.
#[test]
fn damage_to_the_last_segment_after_a_clean_shutdown_names_the_segment() {
    let entries = entries_1_to(2001, 1);
    let (offsets, len) = record_offsets(&entries);
    for torn_slot in [false, true] {
        let disk = SimDisk::new(7);
        let (mut journal, _) = must_open(&disk, JournalOptions::default());
        journal
            .set_hard_state(hard_state(1, None, 0))
            .expect("valid hard state");
        synced_in_batches(&mut journal, &entries, 100);
        // The shutdown saves the commit index the driver held back.
        journal
            .set_hard_state(hard_state(1, None, 2001))
            .expect("valid hard state");
        journal.sync().expect("no fault injected");
        drop(journal);
        if torn_slot {
            tear_newest_slot(&disk, &segment_path(1));
        }
        disk.truncate(&segment_path(1), offsets[2000])
            .expect("exists");
        let error = open_sim(&disk, JournalOptions::default()).expect_err("entry 2001 is lost");
        let message = error.to_string();
        let expected = format!(
            "{} is damaged at byte {}: ",
            segment_path(1).display(),
            offsets[2000]
        );
        assert!(message.starts_with(&expected), "{message}");
        assert!(!message.contains("hard-state is damaged"), "{message}");
        let (_, _, problem) = corruption(Err(error));
        let expected = match torn_slot {
            false => Corruption::SyncedRecordsLost {
                synced: LogIndex(2001),
                synced_end: len,
                intact: LogIndex(2000),
            },
            true => Corruption::CommitBeyondLog {
                commit: LogIndex(2001),
                last: LogIndex(2000),
            },
        };
        assert_eq!(problem, expected);
    }
}

/// A truncation back into synced records lowers the sync slots first: after it (and a crash at
/// any step of it), nothing is taken for lost, and what is left stays protected.
#[test]
fn a_truncation_into_synced_records_lowers_the_claim_first() {
    let all = entries_1_to(10, 1);
    let replacement = entry(6, 2, b"replacement");
    crash_at_every_step(
        |j| {
            j.set_hard_state(hard_state(2, None, 3))?;
            j.append(&all)?;
            j.sync()
        },
        |j| {
            j.truncate_suffix(LogIndex(6))?;
            j.append(std::slice::from_ref(&replacement))?;
            j.sync()
        },
        |recovery, completed| {
            let got = &recovery.entries;
            assert!(got.len() >= 5 && got[..5] == all[..5], "{got:?}");
            if completed {
                assert_eq!(got[5..], *std::slice::from_ref(&replacement));
            }
        },
    );
    // What is left after the truncation is claimed: cutting it off is refused.
    let disk = SimDisk::new(1);
    written(
        &disk,
        &all,
        hard_state(2, None, 3),
        JournalOptions::default(),
    );
    let (mut journal, _) = must_open(&disk, JournalOptions::default());
    journal
        .truncate_suffix(LogIndex(6))
        .expect("above the commit index");
    drop(journal);
    let (offsets, _) = record_offsets(&all);
    disk.truncate(&segment_path(1), offsets[4]).expect("exists");
    let (path, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    let lost = Corruption::SyncedRecordsLost {
        synced: LogIndex(5),
        synced_end: offsets[5],
        intact: LogIndex(4),
    };
    assert_eq!((path, offset, problem), (segment_path(1), offsets[4], lost));
}

/// A process killed after writing records (not syncing them) into a segment it had just
/// created leaves them, and the segment's name, in the operating system's cache only. The
/// reopened journal takes them as its log (and the node may acknowledge them), so recovery
/// makes them durable: the segment and the directory are synced at open. It used to sync the
/// directory only when it had changed something, and a later sync, having nothing new to
/// write, left the segment's name to be lost in a power cut (found by the model-based test's
/// new `Kill` step).
#[test]
fn a_journal_reopened_after_a_kill_makes_what_it_recovered_durable() -> Result<(), StorageError> {
    let entries: Vec<Entry> = (1..=4).map(|i| entry(i, 0, &[i as u8; 20])).collect();
    let disk = SimDisk::new(0);
    let (mut journal, _) = must_open(&disk, small_options());
    journal.append(&entries)?;
    journal.flush()?;
    assert_eq!(segment_firsts(&disk), [1, 4]);
    drop(journal);
    let (mut journal, recovery) = must_open(&disk, small_options());
    assert_eq!(recovery.entries, entries);
    journal.sync()?;
    drop(journal);
    disk.crash();
    let (_, recovery) = must_open(&disk, small_options());
    assert_eq!(recovery.entries, entries);
    Ok(())
}

/// A segment of the first format, without sync slots (records from byte 24).
fn version_1_segment(first: u64, records: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = b"SOBJLOG\0".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&first.to_le_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    for record in records {
        bytes.extend_from_slice(record);
    }
    bytes
}

/// Segments of versions 1 and 2 hold commands whose headers have no cluster-time stamp: they
/// are refused by their version (never read as entries), naming the file and the version.
#[test]
fn segments_of_older_versions_are_refused() {
    let records: Vec<Vec<u8>> = (1..=3)
        .map(|i| raw_record(i, 1, 2, format!("command {i}").as_bytes()))
        .collect();
    let disk = SimDisk::new(1);
    written(
        &disk,
        &[],
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    disk.truncate(&segment_path(1), 0).expect("exists");
    disk.overwrite(&segment_path(1), 0, &version_1_segment(1, &records))
        .expect("exists");
    let (path, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    let expected = Corruption::UnsupportedVersion {
        found: 1,
        supported: 4,
    };
    assert_eq!((path, offset, problem), (segment_path(1), 8, expected));

    let disk = SimDisk::new(2);
    written(
        &disk,
        &entries_1_to(2, 1),
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    let mut head = disk.contents(&segment_path(1)).expect("exists")[..24].to_vec();
    head[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&head[..20]);
    head[20..].copy_from_slice(&crc.to_le_bytes());
    disk.overwrite(&segment_path(1), 0, &head).expect("exists");
    let (_, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    let expected = Corruption::UnsupportedVersion {
        found: 2,
        supported: 4,
    };
    assert_eq!(
        problem.to_string(),
        "format version 2 is not supported (the newest this code reads is 4)"
    );
    assert_eq!((offset, problem), (8, expected));
}

#[test]
fn a_segment_with_another_magic_or_version_is_refused() {
    let disk = SimDisk::new(1);
    written(
        &disk,
        &entries_1_to(2, 1),
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    disk.overwrite(&segment_path(1), 0, b"NOTMAGIC")
        .expect("the file exists");
    let (_, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    assert_eq!(
        (offset, problem),
        (
            0,
            Corruption::BadMagic {
                kind: "log segment"
            }
        )
    );

    let disk = SimDisk::new(2);
    written(
        &disk,
        &entries_1_to(2, 1),
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    disk.overwrite(&segment_path(1), 8, &5u32.to_le_bytes())
        .expect("the file exists");
    let (_, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    let expected = Corruption::UnsupportedVersion {
        found: 5,
        supported: 4,
    };
    assert_eq!((offset, problem), (8, expected));
}

/// Three segments of small records; returns the entries and the segments' first indexes.
fn three_segments(disk: &SimDisk) -> (Vec<Entry>, Vec<u64>) {
    let entries = entries_1_to(24, 1);
    written(disk, &entries, hard_state(1, None, 0), small_options());
    let (journal, _) = must_open(disk, small_options());
    assert!(journal.segment_count() >= 3);
    drop(journal);
    disk.crash();
    (entries, segment_firsts(disk))
}

#[test]
fn damage_to_a_segment_before_the_last_is_an_error() {
    let disk = SimDisk::new(1);
    let (_, firsts) = three_segments(&disk);
    let middle = segment_path(firsts[1]);
    let len = disk.contents(&middle).expect("exists").len() as u64;
    // A torn-looking end of a middle segment is damage, not a torn write.
    disk.truncate(&middle, len - 3).expect("exists");
    let (path, offset, _) = corruption(open_sim(&disk, small_options()));
    assert_eq!(path, middle);
    assert!(offset < len);

    let disk = SimDisk::new(2);
    let (_, firsts) = three_segments(&disk);
    let middle = segment_path(firsts[1]);
    let len = disk.contents(&middle).expect("exists").len() as u64;
    disk.flip_byte(&middle, len - 1).expect("exists");
    let (path, _, problem) = corruption(open_sim(&disk, small_options()));
    assert_eq!((path, problem), (middle, Corruption::RecordChecksum));
}

#[test]
fn a_missing_segment_is_a_gap() {
    let disk = SimDisk::new(3);
    let (_, firsts) = three_segments(&disk);
    disk.remove(&segment_path(firsts[1])).expect("exists");
    disk.sync_dir(&log_dir()).expect("exists");
    let (path, offset, problem) = corruption(open_sim(&disk, small_options()));
    assert_eq!((path, offset), (segment_path(firsts[2]), 12));
    assert!(matches!(problem, Corruption::IndexMismatch { .. }));
}

#[test]
fn crafted_records_are_checked() {
    let cases: [(Vec<u8>, Corruption); 4] = [
        (
            raw_record(3, 0, 2, b"old"),
            Corruption::TermBackwards {
                previous: Term(1),
                term: Term(0),
            },
        ),
        (
            raw_record(3, 9, 2, b"new"),
            Corruption::TermAboveHardState {
                term: Term(9),
                current: Term(1),
            },
        ),
        (
            raw_record(4, 1, 2, b"gap"),
            Corruption::IndexMismatch {
                expected: LogIndex(3),
                found: LogIndex(4),
            },
        ),
        (raw_record(3, 1, 7, b"kind"), Corruption::UnknownKind(7)),
    ];
    for (seed, (record, expected)) in cases.into_iter().enumerate() {
        let disk = SimDisk::new(seed as u64);
        let entries = entries_1_to(2, 1);
        written(
            &disk,
            &entries,
            hard_state(1, None, 0),
            JournalOptions::default(),
        );
        let (_, end) = record_offsets(&entries);
        disk.overwrite(&segment_path(1), end, &record)
            .expect("exists");
        // A valid record after it, so that nothing is mistaken for a torn tail.
        disk.overwrite(
            &segment_path(1),
            end + record.len() as u64,
            &raw_record(4, 1, 2, b""),
        )
        .expect("exists");
        let (path, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
        assert_eq!(path, segment_path(1));
        assert!(offset > end && offset < end + 25, "{offset}");
        assert_eq!(problem, expected);
    }
}

#[test]
fn an_oversized_length_is_refused_before_allocating() {
    let disk = SimDisk::new(1);
    let entries = entries_1_to(2, 1);
    written(
        &disk,
        &entries,
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    let (_, end) = record_offsets(&entries);
    let mut record = raw_record(3, 1, 2, b"x");
    record[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    disk.overwrite(&segment_path(1), end, &record)
        .expect("exists");
    let (_, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    assert_eq!(offset, end);
    assert!(matches!(problem, Corruption::RecordLength { .. }));
}

#[test]
fn a_zero_filled_tail_is_torn() -> Result<(), StorageError> {
    let disk = SimDisk::new(1);
    let entries = entries_1_to(2, 1);
    written(
        &disk,
        &entries,
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    let (_, end) = record_offsets(&entries);
    disk.truncate(&segment_path(1), end + 4096).expect("exists");
    let (_, recovery) = open_sim(&disk, JournalOptions::default())?;
    assert_eq!(recovery.entries, entries);
    assert_eq!(recovery.warnings.len(), 1);
    Ok(())
}

/// Zeros from the middle of an unsynced record to the end (space the file system extended
/// without the data reaching it) are a torn tail. Changed with the sync slots: zeros over
/// synced records used to be taken for a torn tail too; they are now refused.
#[test]
fn zeros_from_the_middle_of_a_record_are_a_torn_tail_after_the_synced_end()
-> Result<(), StorageError> {
    let entries = entries_1_to(4, 1);
    let (offsets, len) = record_offsets(&entries);
    let synced_end = offsets[2];
    for start in RECORDS_AT..len {
        let disk = SimDisk::new(start);
        written_with_unsynced_tail(
            &disk,
            &entries[..2],
            &entries[2..],
            hard_state(1, None, 0),
            JournalOptions::default(),
        );
        let zeros = vec![0u8; (len - start) as usize];
        disk.overwrite(&segment_path(1), start, &zeros)
            .expect("exists");
        let result = open_sim(&disk, JournalOptions::default());
        if start < synced_end {
            let (path, offset, _) = corruption(result);
            let expected = (segment_path(1), record_at(&offsets, start));
            assert_eq!((path, offset), expected, "zeros from {start}");
            continue;
        }
        let (_, recovery) = result?;
        let kept = if start < offsets[3] { 2 } else { 3 };
        assert_eq!(recovery.entries, entries[..kept], "zeros from {start}");
        assert_eq!(recovery.warnings.len(), 1, "zeros from {start}");
    }
    Ok(())
}

/// Tears the sync slot written last in the segment at `path` (as a crash in the middle of
/// writing it would), so the older slot's claim is the one recovery reads.
fn tear_newest_slot(disk: &SimDisk, path: &Path) {
    let bytes = disk.contents(path).expect("the segment exists");
    let seq = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let newest = if seq(24) > seq(52) { 24 } else { 52 };
    disk.flip_byte(path, newest + 24).expect("within the slot");
}

/// The saved commit index says entries were synced; one beyond the log means committed
/// records are lost, and the error names the segment where the intact log ends. Changed: it
/// named the hard-state file, at the commit index's offset (29), which is intact.
#[test]
fn a_commit_index_beyond_the_log_names_the_segment() {
    let entries = entries_1_to(3, 1);
    let (offsets, _) = record_offsets(&entries);
    for torn_slot in [true, false] {
        let disk = SimDisk::new(1);
        written(
            &disk,
            &entries,
            hard_state(1, None, 3),
            JournalOptions::default(),
        );
        if torn_slot {
            // The slot claims nothing: only the commit index knows these entries were synced.
            tear_newest_slot(&disk, &segment_path(1));
        }
        disk.truncate(&segment_path(1), offsets[2]).expect("exists");
        let (path, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
        assert_eq!((path, offset), (segment_path(1), offsets[2]));
        let expected = match torn_slot {
            true => Corruption::CommitBeyondLog {
                commit: LogIndex(3),
                last: LogIndex(2),
            },
            false => Corruption::SyncedRecordsLost {
                synced: LogIndex(3),
                synced_end: offsets[2] + 34,
                intact: LogIndex(2),
            },
        };
        assert_eq!(problem, expected);
    }
}

#[test]
fn segments_without_a_hard_state_are_an_error() {
    let disk = SimDisk::new(1);
    written(
        &disk,
        &entries_1_to(3, 1),
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    disk.remove(&hard_state_path()).expect("exists");
    let (path, _, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    assert_eq!((path, problem), (hard_state_path(), Corruption::Missing));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Arbitrary bytes in place of a segment, the hard state or a snapshot, or a valid file
    /// with arbitrary bytes overwritten, never make recovery panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        garbage in prop::collection::vec(any::<u8>(), 0..400),
        at in 0u64..400,
        whole_file in any::<bool>(),
    ) {
        let disk = SimDisk::new(at);
        written(&disk, &entries_1_to(5, 1), hard_state(1, None, 2), JournalOptions::default());
        write_snapshot(&disk, 2, b"state").map_err(|e| TestCaseError::fail(e.to_string()))?;
        for path in [segment_path(1), hard_state_path(), snapshot_path(2)] {
            if whole_file {
                disk.truncate(&path, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
                disk.overwrite(&path, 0, &garbage).map_err(|e| TestCaseError::fail(e.to_string()))?;
            } else {
                disk.overwrite(&path, at, &garbage).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        let _ = open_sim(&disk, JournalOptions::default());
        let _ = open_sim(&disk, small_options());
        let _ = SnapshotStore::open(disk.clone(), snap_dir()).and_then(|(store, _)| store.load_latest());
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged hard state

#[test]
fn every_damage_to_the_hard_state_is_an_error() {
    let len = 65;
    for at in 0..len {
        let disk = SimDisk::new(at);
        written(
            &disk,
            &entries_1_to(2, 3),
            hard_state(3, Some(2), 1),
            JournalOptions::default(),
        );
        disk.flip_byte(&hard_state_path(), at)
            .expect("within the file");
        let (path, offset, _) = corruption(open_sim(&disk, JournalOptions::default()));
        assert_eq!(path, hard_state_path(), "flip at {at}");
        assert!(offset <= at.max(61), "flip at {at}: offset {offset}");
    }
    for cut in 0..len {
        let disk = SimDisk::new(cut);
        written(
            &disk,
            &entries_1_to(2, 3),
            hard_state(3, Some(2), 1),
            JournalOptions::default(),
        );
        disk.truncate(&hard_state_path(), cut).expect("exists");
        let (path, _, _) = corruption(open_sim(&disk, JournalOptions::default()));
        assert_eq!(path, hard_state_path(), "cut at {cut}");
    }
    let disk = SimDisk::new(99);
    written(
        &disk,
        &[],
        hard_state(1, None, 0),
        JournalOptions::default(),
    );
    disk.overwrite(&hard_state_path(), 8, &7u32.to_le_bytes())
        .expect("exists");
    let (_, offset, problem) = corruption(open_sim(&disk, JournalOptions::default()));
    assert_eq!(
        (offset, problem),
        (
            8,
            Corruption::UnsupportedVersion {
                found: 7,
                supported: 2
            }
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Identity: whose files these are

fn identity(node: u64, cluster: &str) -> Identity {
    Identity {
        node: NodeId(node),
        cluster: ClusterId::from_name(cluster),
    }
}

/// The file, found and expected identities of a `ForeignFile` refusal; panics on any other error.
fn foreign(error: &StorageError) -> (PathBuf, Identity, Identity) {
    let StorageError::ForeignFile {
        path,
        found,
        expected,
    } = error
    else {
        panic!("not a foreign file: {error}");
    };
    (path.clone(), *found, *expected)
}

fn options_of(identity: Identity) -> JournalOptions {
    JournalOptions {
        identity,
        ..JournalOptions::default()
    }
}

/// A hard state copied from another node of the cluster (a vote of its own in the same term)
/// is refused, and so is one of another cluster: the error names the file and both identities.
#[test]
fn a_hard_state_of_another_node_or_cluster_is_refused() {
    let me = identity(1, "orders");
    for other in [identity(2, "orders"), identity(1, "billing")] {
        let disk = SimDisk::new(1);
        written(
            &disk,
            &entries_1_to(2, 3),
            hard_state(3, Some(2), 2),
            options_of(other),
        );
        let error = open_sim(&disk, options_of(me)).expect_err("another identity");
        assert_eq!(foreign(&error), (hard_state_path(), other, me));
        let message = error.to_string();
        for part in [
            hard_state_path().display().to_string(),
            other.to_string(),
            me.to_string(),
        ] {
            assert!(message.contains(&part), "{part} not in {message}");
        }
        // Nothing changed: the owner still opens it.
        let (_, recovery) = must_open(&disk, options_of(other));
        assert_eq!(recovery.hard_state, hard_state(3, Some(2), 2));
    }
}

/// The upgrade path: a hard-state file of format version 1, written before files recorded an
/// identity, is taken as the opening node's and rewritten with its identity, with a warning;
/// from then on, another node is refused it.
#[test]
fn a_hard_state_written_before_identities_is_taken_and_recorded() {
    let disk = SimDisk::new(1);
    let me = identity(1, "orders");
    written(
        &disk,
        &entries_1_to(2, 3),
        hard_state(3, Some(1), 2),
        options_of(me),
    );
    // Rewrite the file as version 1: no identity, the checksum after the first index.
    let current = disk.contents(&hard_state_path()).expect("exists");
    let mut old = current[..45].to_vec();
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32c::crc32c(&old);
    old.extend_from_slice(&crc.to_le_bytes());
    disk.truncate(&hard_state_path(), 0).expect("exists");
    disk.overwrite(&hard_state_path(), 0, &old).expect("exists");

    let (_, recovery) = must_open(&disk, options_of(me));
    assert_eq!(recovery.hard_state, hard_state(3, Some(1), 2));
    assert_eq!(recovery.entries.len(), 2);
    assert!(
        recovery
            .warnings
            .contains(&RecoveryWarning::IdentityRecorded {
                path: hard_state_path(),
                identity: me,
            }),
        "{:?}",
        recovery.warnings
    );
    assert_eq!(disk.contents(&hard_state_path()).expect("exists"), current);
    let error = open_sim(&disk, options_of(identity(2, "orders"))).expect_err("recorded");
    assert!(matches!(error, StorageError::ForeignFile { .. }), "{error}");
    let (_, recovery) = must_open(&disk, options_of(me));
    assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
}

/// A segment copied from another node's journal (the same entries, even) is refused, naming
/// the segment and both identities.
#[test]
fn a_segment_of_another_node_is_refused() {
    let (me, other) = (identity(1, "orders"), identity(2, "orders"));
    let entries = entries_1_to(3, 1);
    let mine = SimDisk::new(1);
    written(&mine, &entries, hard_state(1, None, 3), options_of(me));
    let theirs = SimDisk::new(2);
    written(&theirs, &entries, hard_state(1, None, 3), options_of(other));
    let copied = theirs.contents(&segment_path(1)).expect("exists");
    mine.truncate(&segment_path(1), 0).expect("exists");
    mine.overwrite(&segment_path(1), 0, &copied)
        .expect("exists");
    let error = open_sim(&mine, options_of(me)).expect_err("another node's segment");
    assert_eq!(foreign(&error), (segment_path(1), other, me));
    assert!(error.to_string().contains("segment-"), "{error}");
}

/// The upgrade path for segments: one of version 3 (no identity, records from byte 80) is read
/// as the node's own, with a warning, and takes appends in its own format.
#[test]
fn a_segment_written_before_identities_is_read_and_kept() {
    let me = identity(1, "orders");
    let disk = SimDisk::new(1);
    let entries = entries_1_to(3, 1);
    written(&disk, &entries, hard_state(1, None, 3), options_of(me));
    // The same segment in version 3: no identity, every claimed end 20 bytes lower.
    let current = disk.contents(&segment_path(1)).expect("exists");
    let mut old = current[..80].to_vec();
    old.extend_from_slice(&current[100..]);
    old[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32c::crc32c(&old[..20]);
    old[20..24].copy_from_slice(&crc.to_le_bytes());
    for slot in [24, 52] {
        let end = u64::from_le_bytes(old[slot + 8..slot + 16].try_into().expect("8 bytes"));
        old[slot + 8..slot + 16].copy_from_slice(&(end - 20).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&1u64.to_le_bytes()), &old[slot..slot + 24]);
        old[slot + 24..slot + 28].copy_from_slice(&crc.to_le_bytes());
    }
    disk.truncate(&segment_path(1), 0).expect("exists");
    disk.overwrite(&segment_path(1), 0, &old).expect("exists");

    let (mut journal, recovery) = must_open(&disk, options_of(me));
    assert_eq!(recovery.entries, entries);
    assert_eq!(
        recovery.warnings,
        [RecoveryWarning::IdentityRecorded {
            path: segment_path(1),
            identity: me,
        }]
    );
    let next = entry(4, 1, b"after the upgrade");
    journal
        .append(std::slice::from_ref(&next))
        .expect("continues the log");
    journal.sync().expect("no fault injected");
    drop(journal);
    disk.crash();
    let (_, recovery) = must_open(&disk, options_of(me));
    assert_eq!(recovery.entries.last(), Some(&next));
    assert_eq!(disk.contents(&segment_path(1)).expect("exists")[8], 3);
}

// ---------------------------------------------------------------------------------------------
// Crashes at every step

/// Runs `step` on a journal prepared by `prepare`, with the power cut after 0, 1, 2, …
/// mutating disk operations, until a run completes; after each, reboots and hands the recovery
/// to `check` (with whether the step completed).
fn crash_at_every_step(
    prepare: impl Fn(&mut SimJournal) -> Result<(), StorageError>,
    step: impl Fn(&mut SimJournal) -> Result<(), StorageError>,
    check: impl Fn(&Recovery, bool),
) {
    for budget in 0.. {
        for seed in 0..4 {
            let disk = SimDisk::new(budget * 4 + seed);
            let (mut journal, _) = must_open(&disk, small_options());
            prepare(&mut journal).expect("no fault injected yet");
            disk.fail_after(budget);
            let completed = step(&mut journal).is_ok() && !disk.has_failed();
            drop(journal);
            disk.crash();
            let (_, recovery) = open_sim(&disk, small_options())
                .unwrap_or_else(|e| panic!("budget {budget}: recovery failed: {e}"));
            check(&recovery, completed);
            if completed && seed == 3 {
                return;
            }
        }
        assert!(budget < 100, "the step never completed");
    }
}

#[test]
fn hard_state_save_is_atomic_at_every_step() {
    let old = hard_state(1, None, 2);
    for new in [
        hard_state(1, Some(1), 3),
        hard_state(2, Some(3), 3),
        hard_state(2, None, 2),
    ] {
        let middle = HardState {
            commit: old.commit,
            ..new
        };
        crash_at_every_step(
            |j| {
                j.set_hard_state(old)?;
                j.append(&entries_1_to(3, 1))?;
                j.sync()
            },
            |j| {
                j.set_hard_state(new)?;
                j.sync()
            },
            |recovery, completed| {
                let hs = recovery.hard_state;
                assert!(hs == old || hs == new || hs == middle, "{hs:?}");
                if completed {
                    assert_eq!(hs, new);
                }
                assert_eq!(recovery.entries, entries_1_to(3, 1));
            },
        );
    }
}

#[test]
fn appends_with_a_new_term_never_outrun_the_saved_term() {
    crash_at_every_step(
        |j| {
            j.set_hard_state(hard_state(1, None, 0))?;
            j.append(&entries_1_to(3, 1))?;
            j.sync()
        },
        |j| {
            j.set_hard_state(hard_state(2, Some(2), 3))?;
            j.append(&[entry(4, 2, b"new term"), entry(5, 2, b"more")])?;
            j.sync()
        },
        |recovery, completed| {
            let last_term = recovery.entries.last().map_or(Term(0), |e| e.term);
            assert!(last_term <= recovery.hard_state.term);
            assert!(recovery.hard_state.commit.0 <= recovery.entries.len() as u64);
            assert!(recovery.entries.len() >= 3);
            if completed {
                assert_eq!(recovery.entries.len(), 5);
                assert_eq!(recovery.hard_state, hard_state(2, Some(2), 3));
            }
        },
    );
}

#[test]
fn truncating_across_segments_is_crash_safe() {
    let all = entries_1_to(30, 1);
    crash_at_every_step(
        |j| {
            j.set_hard_state(hard_state(2, None, 4))?;
            j.append(&all)?;
            j.sync()
        },
        |j| {
            j.truncate_suffix(LogIndex(5))?;
            j.append(&[entry(5, 2, b"replacement")])?;
            j.sync()
        },
        |recovery, completed| {
            let got = &recovery.entries;
            assert!(got.len() >= 4);
            let old_prefix = got
                .iter()
                .all(|e| all.get(e.index.0 as usize - 1) == Some(e));
            let new_log =
                got.len() == 5 && got[4] == entry(5, 2, b"replacement") && got[..4] == all[..4];
            assert!(old_prefix || new_log, "{got:?}");
            if completed {
                assert!(new_log);
            }
        },
    );
}

#[test]
fn truncating_exactly_at_a_segment_start_keeps_the_previous_segment() -> Result<(), StorageError> {
    let disk = SimDisk::new(7);
    let (_, firsts) = three_segments(&disk);
    let (mut journal, _) = must_open(&disk, small_options());
    let from = firsts[1];
    journal.truncate_suffix(LogIndex(from))?;
    journal.append(&[entry(from, 1, b"replacement")])?;
    journal.sync()?;
    drop(journal);
    disk.crash();
    let (_, recovery) = must_open(&disk, small_options());
    let mut expected = entries_1_to(from - 1, 1);
    expected.push(entry(from, 1, b"replacement"));
    assert_eq!(recovery.entries, expected);
    Ok(())
}

#[test]
fn dropping_a_prefix_is_crash_safe() {
    let all = entries_1_to(30, 1);
    for through in [12, 30, 45] {
        crash_at_every_step(
            |j| {
                j.set_hard_state(hard_state(1, None, 10))?;
                j.append(&all)?;
                j.sync()
            },
            |j| j.drop_prefix(LogIndex(through)),
            |recovery, completed| {
                let first = recovery.first_index.0;
                assert!(first == 1 || first == through + 1, "first {first}");
                let expected: Vec<Entry> =
                    all.iter().filter(|e| e.index.0 >= first).cloned().collect();
                assert_eq!(recovery.entries, expected);
                if completed {
                    assert_eq!(first, through + 1);
                }
            },
        );
    }
}

/// 30 entries in segments of about five, synced; then a prefix drop through 22 and a
/// truncation back to the first index (23): the log is empty, and its one segment (from 21)
/// holds only the dropped entries 21 and 22.
fn emptied_after_a_drop(j: &mut SimJournal) -> Result<(), StorageError> {
    j.set_hard_state(hard_state(1, None, 10))?;
    j.append(&entries_1_to(30, 1))?;
    j.sync()?;
    j.drop_prefix(LogIndex(22))?;
    j.truncate_suffix(LogIndex(23))?;
    j.sync()
}

/// Entries from 23 on, each too large to share a segment with the two dropped records.
fn after_the_emptied_log(count: u64) -> Vec<Entry> {
    (23..23 + count)
        .map(|i| entry(i, 1, &[i as u8; 120]))
        .collect()
}

#[test]
fn a_roll_over_of_an_emptied_log_replaces_the_segment_of_dropped_entries()
-> Result<(), StorageError> {
    let disk = SimDisk::new(3);
    let (mut journal, _) = must_open(&disk, small_options());
    emptied_after_a_drop(&mut journal)?;
    assert_eq!(
        (journal.first_index(), journal.last_index()),
        (LogIndex(23), LogIndex(22))
    );
    assert_eq!(segment_firsts(&disk), [21]);
    // A clean reopen of the emptied log is quiet too, and the reopened journal behaves alike.
    drop(journal);
    disk.crash();
    let (mut journal, recovery) = must_open(&disk, small_options());
    assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
    assert_eq!(
        (recovery.first_index, recovery.entries.len()),
        (LogIndex(23), 0)
    );
    let new = after_the_emptied_log(3);
    journal.append(&new)?;
    assert_eq!(journal.segment_count(), 3);
    journal.sync()?;
    assert_eq!(segment_firsts(&disk), [23, 24, 25]);
    drop(journal);
    disk.crash();
    let (_, recovery) = must_open(&disk, small_options());
    assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
    assert_eq!(recovery.first_index, LogIndex(23));
    assert_eq!(recovery.entries, new);
    Ok(())
}

#[test]
fn a_roll_over_of_an_emptied_log_is_crash_safe() {
    let new = after_the_emptied_log(2);
    crash_at_every_step(
        emptied_after_a_drop,
        |j| {
            j.append(&new)?;
            j.sync()
        },
        |recovery, completed| {
            assert_eq!(recovery.first_index, LogIndex(23));
            assert!(new.starts_with(&recovery.entries), "{:?}", recovery.entries);
            if completed {
                assert_eq!(recovery.entries, new);
                assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
            }
        },
    );
}

/// A drop of the whole log interrupted after the hard-state file was saved leaves the old
/// segments; the reopened log is empty at the saved first index, in the last of them (the
/// earlier ones are obsolete and removed). Appending from there must not leave that one behind.
#[test]
fn a_log_reopened_after_an_interrupted_drop_rolls_over_cleanly() {
    let all = entries_1_to(30, 1);
    let mut checked = 0;
    for budget in 0..40 {
        let disk = SimDisk::new(budget);
        let (mut journal, _) = must_open(&disk, small_options());
        journal
            .set_hard_state(hard_state(1, None, 0))
            .expect("valid hard state");
        journal.append(&all).expect("valid entries");
        journal.sync().expect("no fault injected");
        disk.fail_after(budget);
        let completed = journal.drop_prefix(LogIndex(30)).is_ok() && !disk.has_failed();
        drop(journal);
        disk.crash();
        let (mut journal, recovery) = must_open(&disk, small_options());
        if recovery.first_index != LogIndex(31) {
            continue;
        }
        assert!(recovery.entries.is_empty());
        checked += usize::from(segment_firsts(&disk) != [31]);
        let new: Vec<Entry> = (31..34).map(|i| entry(i, 1, &[7; 120])).collect();
        journal.append(&new).expect("continues the log");
        journal.sync().expect("no fault injected");
        drop(journal);
        disk.crash();
        let (_, recovery) = must_open(&disk, small_options());
        assert!(
            recovery.warnings.is_empty(),
            "budget {budget}: {:?}",
            recovery.warnings
        );
        assert_eq!(recovery.entries, new, "budget {budget}");
        assert_eq!(segment_firsts(&disk), [31, 32, 33], "budget {budget}");
        if completed {
            break;
        }
    }
    assert!(
        checked > 0,
        "no budget left the empty log in an old segment"
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshots

fn snapshot_meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_index: LogIndex(index),
        last_term: Term(2),
        membership: Bytes::from_static(b"a:1,b:2,c:3"),
        code_version: 4,
    }
}

fn payload(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

fn write_snapshot(disk: &SimDisk, index: u64, data: &[u8]) -> Result<(), StorageError> {
    let (mut store, _) = SnapshotStore::open(disk.clone(), snap_dir())?;
    let mut writer = store.begin(snapshot_meta(index))?;
    for chunk in data.chunks(7000) {
        writer.write_chunk(chunk)?;
    }
    store.commit(writer)?;
    assert_eq!(store.latest_file_bytes(), Some(file_len(disk, index)));
    Ok(())
}

fn snapshot_path(index: u64) -> PathBuf {
    snap_dir().join(format!("snapshot-{index:020}-{:020}.snap", 2))
}

/// The length of snapshot `index`'s file, read from the disk.
fn file_len(disk: &SimDisk, index: u64) -> u64 {
    disk.contents(&snapshot_path(index))
        .expect("the snapshot file exists")
        .len() as u64
}

#[test]
fn snapshots_stream_in_and_out() -> Result<(), StorageError> {
    let disk = SimDisk::new(1);
    let data = payload(3 << 20, 1);
    write_snapshot(&disk, 10, &data)?;
    disk.crash();
    let (store, warnings) = SnapshotStore::open(disk.clone(), snap_dir())?;
    assert!(warnings.is_empty());
    assert_eq!(store.latest(), Some(&snapshot_meta(10)));
    let file_bytes = file_len(&disk, 10);
    assert!(
        file_bytes > data.len() as u64,
        "the payload and its checksums"
    );
    assert_eq!(
        store.latest_file_bytes(),
        Some(file_bytes),
        "measured at open"
    );
    let loaded = store.load_latest()?.expect("a snapshot was committed");
    assert_eq!(loaded.meta, snapshot_meta(10));
    assert_eq!(loaded.payload, data);
    let mut reader = store.open_latest()?.expect("a snapshot was committed");
    let mut buf = vec![0u8; 4096];
    let mut streamed = Vec::new();
    loop {
        let n = reader.read_chunk(&mut buf)?;
        if n == 0 {
            break;
        }
        streamed.extend_from_slice(&buf[..n]);
    }
    assert_eq!(streamed, data);
    Ok(())
}

#[test]
fn a_serializer_can_write_into_a_snapshot() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let disk = SimDisk::new(2);
    let (mut store, _) = SnapshotStore::open(disk.clone(), snap_dir())?;
    let mut writer = store.begin(snapshot_meta(3))?;
    write!(writer, "state of {} objects", 2)?;
    store.commit(writer)?;
    let loaded = store.load_latest()?.expect("committed");
    assert_eq!(&loaded.payload[..], b"state of 2 objects");
    Ok(())
}

#[test]
fn a_new_snapshot_replaces_older_ones_and_stale_ones_are_refused() -> Result<(), StorageError> {
    let disk = SimDisk::new(3);
    write_snapshot(&disk, 10, b"ten")?;
    write_snapshot(&disk, 20, b"twenty")?;
    assert_eq!(
        disk.list(&snap_dir())
            .map_err(|e| StorageError::Io {
                action: "list",
                path: snap_dir(),
                source: e
            })?
            .len(),
        1
    );
    let (store, _) = SnapshotStore::open(disk.clone(), snap_dir())?;
    assert!(matches!(
        store.begin(snapshot_meta(15)),
        Err(StorageError::StaleSnapshot { .. })
    ));
    let loaded = store.load_latest()?.expect("committed");
    assert_eq!(&loaded.payload[..], b"twenty");
    Ok(())
}

#[test]
fn snapshot_commit_is_crash_safe_at_every_step() {
    for budget in 0..40u64 {
        let disk = SimDisk::new(budget);
        write_snapshot(&disk, 10, b"old state").expect("no fault injected yet");
        disk.fail_after(budget);
        let completed = write_snapshot(&disk, 20, &payload(5000, 2)).is_ok() && !disk.has_failed();
        disk.crash();
        let (store, _) = SnapshotStore::open(disk.clone(), snap_dir())
            .unwrap_or_else(|e| panic!("budget {budget}: {e}"));
        let loaded = store
            .load_latest()
            .expect("checks pass")
            .expect("one snapshot survives");
        match loaded.meta.last_index.0 {
            10 => assert!(!completed, "budget {budget}: a committed snapshot was lost"),
            20 => assert_eq!(loaded.payload, payload(5000, 2)),
            other => panic!("unexpected snapshot {other}"),
        }
        assert_eq!(
            disk.list(&snap_dir()).expect("exists").len(),
            1,
            "budget {budget}"
        );
    }
}

/// Opens the store and loads the latest snapshot; the corruption's path and offset.
fn snapshot_damage(disk: &SimDisk) -> Option<(PathBuf, u64, Corruption)> {
    let result =
        SnapshotStore::open(disk.clone(), snap_dir()).and_then(|(store, _)| store.load_latest());
    match result {
        Err(StorageError::Corrupt {
            path,
            offset,
            problem,
        }) => Some((path, offset, problem)),
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => None,
    }
}

/// A snapshot file of the first format: one checksum over the whole payload, in the trailer.
fn version_1_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Vec<u8> {
    let mut bytes = b"SOBJSNP\0".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&meta.last_index.0.to_le_bytes());
    bytes.extend_from_slice(&meta.last_term.0.to_le_bytes());
    bytes.extend_from_slice(&meta.code_version.to_le_bytes());
    bytes.extend_from_slice(&(meta.membership.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&meta.membership);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(data);
    let length = (data.len() as u64).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(data), &length);
    bytes.extend_from_slice(&length);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Snapshots of the first format are still read (their damage can only be reported at the
/// trailer); the next snapshot is written in the current format.
#[test]
fn a_version_1_snapshot_is_read() -> Result<(), Box<dyn std::error::Error>> {
    use syncobj_core::storage::DiskFile;
    let data = payload(3 * CHUNK as usize, 5);
    let old = version_1_snapshot(&snapshot_meta(7), &data);
    // Its header has no identity: 16 bytes shorter than the current one.
    let old_payload_start = payload_start() - 16;
    for flip in [None, Some(old_payload_start + 100)] {
        let disk = SimDisk::new(1);
        SnapshotStore::open(disk.clone(), snap_dir())?;
        let mut file = disk.create(&snapshot_path(7))?;
        file.write_all_at(0, &old)?;
        file.sync()?;
        disk.sync_dir(&snap_dir())?;
        if let Some(at) = flip {
            disk.flip_byte(&snapshot_path(7), at)?;
            let trailer_crc = old_payload_start + data.len() as u64 + 8;
            let damage = snapshot_damage(&disk).map(|(_, offset, problem)| (offset, problem));
            assert_eq!(damage, Some((trailer_crc, Corruption::RecordChecksum)));
            continue;
        }
        let (store, _) = SnapshotStore::open(disk.clone(), snap_dir())?;
        let loaded = store.load_latest()?.expect("a snapshot is there");
        assert_eq!(
            (loaded.meta, &loaded.payload[..]),
            (snapshot_meta(7), &data[..])
        );
        write_snapshot(&disk, 8, b"new")?;
        assert_eq!(disk.contents(&snapshot_path(8))?[8], 3);
    }
    Ok(())
}

/// The 4 KiB chunks of a snapshot's payload, each followed by its 4-byte checksum.
const CHUNK: u64 = 4096;

/// Where the payload of the snapshot `write_snapshot` writes starts: the 52-byte fixed header,
/// the membership and the header's checksum.
fn payload_start() -> u64 {
    52 + snapshot_meta(0).membership.len() as u64 + 4
}

/// Every damage to a snapshot is an error naming the file, at the damaged place: a flip in the
/// payload at the start of its chunk, a cut within about a chunk of it. Changed with the
/// chunked format: payload damage was reported at the trailer's checksum, whatever its place.
#[test]
fn every_damage_to_a_snapshot_is_an_error_at_its_chunk() {
    let data = payload(2 * CHUNK as usize + 300, 3);
    let disk = SimDisk::new(0);
    write_snapshot(&disk, 7, &data).expect("no fault injected");
    let len = disk.contents(&snapshot_path(7)).expect("exists").len() as u64;
    let start = payload_start();
    let trailer = len - 12;
    assert_eq!(trailer, start + data.len() as u64 + 3 * 4);
    for at in 0..len {
        let disk = SimDisk::new(at);
        write_snapshot(&disk, 7, &data).expect("no fault injected");
        disk.flip_byte(&snapshot_path(7), at)
            .expect("within the file");
        let (path, offset, problem) =
            snapshot_damage(&disk).unwrap_or_else(|| panic!("flip at {at} missed"));
        assert_eq!(path, snapshot_path(7));
        let expected = match at {
            _ if at < start => {
                assert!(offset < start, "flip at {at}: {offset} {problem}");
                continue;
            }
            _ if at >= trailer => (trailer, Corruption::TrailerChecksum),
            _ => {
                let chunk = (at - start) / (CHUNK + 4);
                let bytes = CHUNK.min(data.len() as u64 - chunk * CHUNK);
                let problem = Corruption::ChunkChecksum { chunk, bytes };
                (start + chunk * (CHUNK + 4), problem)
            }
        };
        assert_eq!((offset, problem), expected, "flip at {at}");
    }
    for cut in 0..len {
        let disk = SimDisk::new(cut);
        write_snapshot(&disk, 7, &data).expect("no fault injected");
        disk.truncate(&snapshot_path(7), cut).expect("exists");
        let (path, offset, problem) =
            snapshot_damage(&disk).unwrap_or_else(|| panic!("cut at {cut} missed"));
        assert_eq!(path, snapshot_path(7));
        if cut > start {
            let region = offset..=offset + CHUNK + 4 + 12;
            assert!(region.contains(&cut), "cut at {cut}: {offset} {problem}");
        }
    }
    let disk = SimDisk::new(1);
    write_snapshot(&disk, 7, &data).expect("no fault injected");
    disk.overwrite(&snapshot_path(7), 0, b"SOBJLOG\0")
        .expect("exists");
    let damage = snapshot_damage(&disk).map(|(_, offset, problem)| (offset, problem));
    assert_eq!(damage, Some((0, Corruption::BadMagic { kind: "snapshot" })));
    let disk = SimDisk::new(2);
    write_snapshot(&disk, 7, &data).expect("no fault injected");
    disk.overwrite(&snapshot_path(7), 8, &9u32.to_le_bytes())
        .expect("exists");
    let damage = snapshot_damage(&disk).map(|(_, offset, problem)| (offset, problem));
    assert_eq!(
        damage,
        Some((
            8,
            Corruption::UnsupportedVersion {
                found: 9,
                supported: 3
            }
        ))
    );
}

/// Writes snapshot `index` holding `data` through a store of `identity`.
fn write_snapshot_as(disk: &SimDisk, index: u64, data: &[u8], identity: Identity) {
    let (mut store, _) = SnapshotStore::open_as(disk.clone(), snap_dir(), identity).expect("opens");
    let mut writer = store.begin(snapshot_meta(index)).expect("begins");
    writer.write_chunk(data).expect("no fault injected");
    store.commit(writer).expect("no fault injected");
}

/// A snapshot of another cluster is refused, naming the file and both identities; another
/// node's snapshot of the same cluster is taken (it holds committed state, the same on every
/// node: a dump restored on new addresses relies on it).
#[test]
fn a_snapshot_of_another_cluster_is_refused_and_one_of_another_node_taken() {
    let me = identity(1, "orders");
    let disk = SimDisk::new(1);
    write_snapshot_as(&disk, 7, b"state", identity(1, "billing"));
    let error = SnapshotStore::open_as(disk.clone(), snap_dir(), me).expect_err("another cluster");
    assert_eq!(
        foreign(&error),
        (snapshot_path(7), identity(1, "billing"), me)
    );

    let disk = SimDisk::new(2);
    write_snapshot_as(&disk, 7, b"state", identity(2, "orders"));
    let (store, warnings) = SnapshotStore::open_as(disk.clone(), snap_dir(), me).expect("opens");
    assert!(warnings.is_empty(), "{warnings:?}");
    let loaded = store.load_latest().expect("reads").expect("is there");
    assert_eq!(&loaded.payload[..], b"state");
}

/// The upgrade path for snapshots: one of version 2 (no identity) is read as the store's own,
/// with a warning; the next snapshot records the identity.
#[test]
fn a_snapshot_written_before_identities_is_read() {
    let me = identity(1, "orders");
    let disk = SimDisk::new(1);
    write_snapshot_as(&disk, 7, b"state", me);
    let current = disk.contents(&snapshot_path(7)).expect("exists");
    let membership = snapshot_meta(7).membership.len();
    let header_end = 52 + membership;
    let mut old = current[..36].to_vec();
    old[8..12].copy_from_slice(&2u32.to_le_bytes());
    old.extend_from_slice(&current[52..header_end]);
    let crc = crc32c::crc32c(&old);
    old.extend_from_slice(&crc.to_le_bytes());
    old.extend_from_slice(&current[header_end + 4..]);
    disk.truncate(&snapshot_path(7), 0).expect("exists");
    disk.overwrite(&snapshot_path(7), 0, &old).expect("exists");

    let (store, warnings) = SnapshotStore::open_as(disk.clone(), snap_dir(), me).expect("opens");
    assert_eq!(
        warnings,
        [RecoveryWarning::IdentityRecorded {
            path: snapshot_path(7),
            identity: me,
        }]
    );
    let loaded = store.load_latest().expect("reads").expect("is there");
    assert_eq!(
        (loaded.meta, &loaded.payload[..]),
        (snapshot_meta(7), &b"state"[..])
    );
    drop(store);
    write_snapshot_as(&disk, 8, b"newer", me);
    let (_, warnings) = SnapshotStore::open_as(disk.clone(), snap_dir(), me).expect("opens");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(disk.contents(&snapshot_path(8)).expect("exists")[8], 3);
}
