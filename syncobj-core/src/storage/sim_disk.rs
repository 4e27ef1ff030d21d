//! A simulated disk that loses what was not synced when it "crashes". Deterministic from a seed.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::disk::{Disk, DiskFile};

/// An in-memory file system with the durability rules of a real disk, made adversarial.
///
/// - Writes and length changes to a file are volatile until the file is synced.
/// - Creating, renaming and removing files are volatile until their directory is synced.
///   A rename is atomic: after a crash the old or the new name holds the file.
/// - [`crash`](Self::crash) keeps only what is durable, except that for each file it may also
///   keep, in order, the first few of its unsynced writes and a random prefix (a torn write) of
///   the next one. The choices come from the seed, so a seed replays a crash exactly.
/// - Faults for tests: [`flip_byte`](Self::flip_byte) and friends damage durable content;
///   [`fail_after`](Self::fail_after) makes every operation fail after a number of mutating
///   operations, as a power cut in the middle of a sequence would.
///
/// Directories (with their ancestors) are created durably and never removed. Handles opened before a crash fail
/// afterwards. Clones share the same disk: give one to the node under test and keep one.
#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

/// A file of [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    disk: SimDisk,
    inode: u64,
    /// The crash count when the file was opened; a handle from before a crash is dead.
    boot: u64,
}

#[derive(Debug)]
struct State {
    rng: ChaCha8Rng,
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    boot: u64,
    /// Mutating operations left before the simulated power cut; `None` for no cut.
    ops_left: Option<u64>,
    stats: SimDiskStats,
}

#[derive(Debug, Default)]
struct Dir {
    current: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingOp>,
}

#[derive(Debug)]
enum PendingOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// Counts of what a [`SimDisk`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    /// File syncs.
    pub file_syncs: u64,
    /// Directory syncs.
    pub dir_syncs: u64,
    /// Writes.
    pub writes: u64,
    /// Crashes.
    pub crashes: u64,
    /// Crashes that left a torn write in some file.
    pub torn_writes: u64,
}

impl SimDisk {
    /// An empty disk whose crashes draw from `seed`.
    pub fn new(seed: u64) -> SimDisk {
        let state = State {
            rng: ChaCha8Rng::seed_from_u64(seed),
            dirs: BTreeMap::new(),
            inodes: BTreeMap::new(),
            next_inode: 1,
            boot: 0,
            ops_left: None,
            stats: SimDiskStats::default(),
        };
        SimDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Loses power: keeps what is durable (plus, per file, maybe an in-order prefix of its
    /// unsynced writes, the last of them torn), forgets the rest, closes every handle and
    /// clears [`fail_after`](Self::fail_after).
    pub fn crash(&self) {
        self.state.lock().crash();
    }

    /// The operating system writes its cache back: every write, length change, creation,
    /// rename and removal so far becomes durable, as some time after a process was killed (its
    /// writes were handed to the system, which keeps them). Handles stay open.
    pub fn write_back(&self) {
        let mut state = self.state.lock();
        for dir in state.dirs.values_mut() {
            dir.durable = dir.current.clone();
        }
        for inode in state.inodes.values_mut() {
            inode.durable = inode.current.clone();
            inode.pending.clear();
        }
        state.collect_garbage();
    }

    /// Lets `ops` more mutating operations (write, set length, sync, create, rename, remove)
    /// succeed; after them every operation fails until [`crash`](Self::crash).
    pub fn fail_after(&self, ops: u64) {
        self.state.lock().ops_left = Some(ops);
    }

    /// Whether a [`fail_after`](Self::fail_after) budget ran out.
    pub fn has_failed(&self) -> bool {
        self.state.lock().ops_left == Some(0)
    }

    /// What the disk has done so far.
    pub fn stats(&self) -> SimDiskStats {
        self.state.lock().stats
    }

    /// Flips every bit of the byte at `offset` of the file at `path`, durably.
    ///
    /// # Errors
    /// `NotFound` if there is no such file or the offset is past its end.
    pub fn flip_byte(&self, path: &Path, offset: u64) -> io::Result<()> {
        self.edit_durably(path, |bytes| {
            let byte = usize::try_from(offset)
                .ok()
                .and_then(|at| bytes.get_mut(at))
                .ok_or_else(|| not_found("offset past the end of the file"))?;
            *byte ^= 0xff;
            Ok(())
        })
    }

    /// Overwrites the file at `path` from `offset` with `data`, durably, growing it if needed.
    ///
    /// # Errors
    /// `NotFound` if there is no such file.
    pub fn overwrite(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        self.edit_durably(path, |bytes| {
            write_into(bytes, offset, data);
            Ok(())
        })
    }

    /// Cuts or extends the file at `path` to `len` bytes, durably.
    ///
    /// # Errors
    /// `NotFound` if there is no such file.
    pub fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.edit_durably(path, |bytes| {
            bytes.resize(to_usize(len), 0);
            Ok(())
        })
    }

    /// The current content of the file at `path` (what a reader sees now).
    ///
    /// # Errors
    /// `NotFound` if there is no such file.
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.state.lock();
        let inode = state.lookup(path)?;
        Ok(state.inode(inode)?.current.clone())
    }

    fn edit_durably(
        &self,
        path: &Path,
        edit: impl Fn(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut state = self.state.lock();
        let id = state.lookup(path)?;
        let inode = state.inode_mut(id)?;
        edit(&mut inode.durable)?;
        edit(&mut inode.current)
    }

    /// Runs `op` on a file handle's inode, after checking the handle and the fault budget.
    fn with_inode<T>(
        &self,
        file: &SimFile,
        mutating: bool,
        op: impl FnOnce(&mut Inode, &mut SimDiskStats) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.state.lock();
        if state.boot != file.boot {
            return Err(io::Error::other(
                "file handle from before a simulated crash",
            ));
        }
        state.spend(mutating)?;
        let State { inodes, stats, .. } = &mut *state;
        let inode = inodes
            .get_mut(&file.inode)
            .ok_or_else(|| not_found("inode"))?;
        op(inode, stats)
    }
}

impl State {
    /// Counts one operation against the power-cut budget; fails once it is spent.
    fn spend(&mut self, mutating: bool) -> io::Result<()> {
        match self.ops_left {
            Some(0) => Err(io::Error::other("simulated power cut")),
            Some(left) if mutating => {
                self.ops_left = Some(left - 1);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn dir(&self, dir: &Path) -> io::Result<&Dir> {
        self.dirs
            .get(dir)
            .ok_or_else(|| not_found("no such directory"))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs
            .get_mut(dir)
            .ok_or_else(|| not_found("no such directory"))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dir(dir)?
            .current
            .get(name)
            .copied()
            .ok_or_else(|| not_found("no such file"))
    }

    fn inode(&self, id: u64) -> io::Result<&Inode> {
        self.inodes.get(&id).ok_or_else(|| not_found("inode"))
    }

    fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&id).ok_or_else(|| not_found("inode"))
    }

    fn crash(&mut self) {
        self.boot += 1;
        self.ops_left = None;
        self.stats.crashes += 1;
        for dir in self.dirs.values_mut() {
            dir.current = dir.durable.clone();
        }
        let mut torn = false;
        let ids: Vec<u64> = self.inodes.keys().copied().collect();
        for id in ids {
            let pending = self
                .inodes
                .get_mut(&id)
                .map(|inode| std::mem::take(&mut inode.pending))
                .unwrap_or_default();
            let kept = self.surviving_ops(pending, &mut torn);
            if let Some(inode) = self.inodes.get_mut(&id) {
                for op in kept {
                    op.apply(&mut inode.durable);
                }
                inode.current = inode.durable.clone();
            }
        }
        if torn {
            self.stats.torn_writes += 1;
        }
        self.collect_garbage();
    }

    /// Chooses which unsynced operations of one file survive a crash: an in-order prefix, the
    /// last write of which may be cut short.
    fn surviving_ops(&mut self, mut pending: Vec<PendingOp>, torn: &mut bool) -> Vec<PendingOp> {
        if pending.is_empty() {
            return pending;
        }
        let keep = self.rng.random_range(0..=pending.len());
        let rest = pending.split_off(keep);
        if let Some(PendingOp::Write { offset, data }) = rest.into_iter().next()
            && !data.is_empty()
            && self.rng.random_bool(0.5)
        {
            let cut = self.rng.random_range(0..data.len());
            pending.push(PendingOp::Write {
                offset,
                data: data[..cut].to_vec(),
            });
            *torn = true;
        }
        pending
    }

    /// Forgets inodes that no name, durable or current, refers to.
    fn collect_garbage(&mut self) {
        let live: std::collections::BTreeSet<u64> = self
            .dirs
            .values()
            .flat_map(|d| d.current.values().chain(d.durable.values()))
            .copied()
            .collect();
        self.inodes.retain(|id, _| live.contains(id));
    }
}

impl PendingOp {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            PendingOp::Write { offset, data } => write_into(bytes, *offset, data),
            PendingOp::SetLen(len) => bytes.resize(to_usize(*len), 0),
        }
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.spend(false)?;
        for ancestor in dir.ancestors() {
            state.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.state.lock();
        state.spend(true)?;
        let (dir, name) = split(path)?;
        let inode = state.next_inode;
        state.dir_mut(dir)?.current.insert(name.to_owned(), inode);
        state.next_inode += 1;
        state.inodes.insert(inode, Inode::default());
        state.collect_garbage();
        Ok(SimFile {
            disk: self.clone(),
            inode,
            boot: state.boot,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.state.lock();
        state.spend(false)?;
        let inode = state.lookup(path)?;
        Ok(SimFile {
            disk: self.clone(),
            inode,
            boot: state.boot,
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.spend(true)?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        state.dir(to_dir)?;
        let inode = state
            .dir_mut(from_dir)?
            .current
            .remove(from_name)
            .ok_or_else(|| not_found("no such file"))?;
        state
            .dir_mut(to_dir)?
            .current
            .insert(to_name.to_owned(), inode);
        state.collect_garbage();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.spend(true)?;
        let (dir, name) = split(path)?;
        state
            .dir_mut(dir)?
            .current
            .remove(name)
            .ok_or_else(|| not_found("no such file"))?;
        state.collect_garbage();
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut state = self.state.lock();
        state.spend(false)?;
        Ok(state.dir(dir)?.current.keys().cloned().collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.spend(true)?;
        let entry = state.dir_mut(dir)?;
        entry.durable = entry.current.clone();
        state.stats.dir_syncs += 1;
        state.collect_garbage();
        Ok(())
    }
}

impl DiskFile for SimFile {
    fn size(&mut self) -> io::Result<u64> {
        self.disk
            .with_inode(self, false, |inode, _| Ok(inode.current.len() as u64))
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.disk.with_inode(self, false, |inode, _| {
            let start = to_usize(offset);
            let source = start
                .checked_add(buf.len())
                .and_then(|end| inode.current.get(start..end))
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(source);
            Ok(())
        })
    }

    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk.with_inode(self, true, |inode, stats| {
            write_into(&mut inode.current, offset, data);
            inode.pending.push(PendingOp::Write {
                offset,
                data: data.to_vec(),
            });
            stats.writes += 1;
            Ok(())
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.disk.with_inode(self, true, |inode, _| {
            inode.current.resize(to_usize(len), 0);
            inode.pending.push(PendingOp::SetLen(len));
            Ok(())
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        self.disk.with_inode(self, true, |inode, stats| {
            inode.durable = inode.current.clone();
            inode.pending.clear();
            stats.file_syncs += 1;
            Ok(())
        })
    }
}

/// Writes `data` into `bytes` at `offset`, zero-filling any gap.
fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

/// A simulated file's offset as a memory index; simulated files live in memory, so they fit.
fn to_usize(offset: u64) -> usize {
    usize::try_from(offset).expect("simulated files live in memory, so their offsets fit usize")
}

fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no parent directory or no file name",
        )),
    }
}

fn not_found(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/data")
    }

    fn disk_with_dir(seed: u64) -> SimDisk {
        let disk = SimDisk::new(seed);
        disk.create_dir_all(&dir())
            .expect("a fresh disk has no fault budget");
        disk
    }

    #[test]
    fn synced_data_survives_and_unsynced_creation_does_not() -> io::Result<()> {
        let disk = disk_with_dir(1);
        let a = dir().join("a");
        let mut file = disk.create(&a)?;
        file.write_all_at(0, b"abc")?;
        file.sync()?;
        disk.crash();
        assert!(disk.open(&a).is_err(), "the directory was never synced");

        let mut file = disk.create(&a)?;
        file.write_all_at(0, b"abc")?;
        file.sync()?;
        disk.sync_dir(&dir())?;
        disk.crash();
        assert_eq!(disk.contents(&a)?, b"abc");
        Ok(())
    }

    #[test]
    fn crash_keeps_a_prefix_of_unsynced_writes() -> io::Result<()> {
        for seed in 0..50 {
            let disk = disk_with_dir(seed);
            let a = dir().join("a");
            let mut file = disk.create(&a)?;
            disk.sync_dir(&dir())?;
            file.write_all_at(0, b"0123")?;
            file.sync()?;
            file.write_all_at(4, b"4567")?;
            file.write_all_at(8, b"89")?;
            disk.crash();
            let got = disk.contents(&a)?;
            assert!(b"0123456789".starts_with(&got), "seed {seed}: {got:?}");
            assert!(got.len() >= 4, "seed {seed}: synced data lost");
        }
        Ok(())
    }

    #[test]
    fn rename_is_undone_until_the_directory_is_synced() -> io::Result<()> {
        let disk = disk_with_dir(2);
        let (a, b) = (dir().join("a"), dir().join("b"));
        let mut file = disk.create(&a)?;
        file.write_all_at(0, b"x")?;
        file.sync()?;
        disk.sync_dir(&dir())?;
        disk.rename(&a, &b)?;
        disk.crash();
        assert_eq!(disk.list(&dir())?, vec![OsString::from("a")]);
        disk.rename(&a, &b)?;
        disk.sync_dir(&dir())?;
        disk.crash();
        assert_eq!(disk.list(&dir())?, vec![OsString::from("b")]);
        assert_eq!(disk.contents(&b)?, b"x");
        Ok(())
    }

    #[test]
    fn handles_die_in_a_crash_and_fail_after_cuts_power() -> io::Result<()> {
        let disk = disk_with_dir(3);
        let mut file = disk.create(&dir().join("a"))?;
        disk.crash();
        assert!(file.write_all_at(0, b"x").is_err());
        disk.fail_after(1);
        let mut file = disk.create(&dir().join("b"))?;
        assert!(file.write_all_at(0, b"x").is_err());
        assert!(disk.has_failed());
        disk.crash();
        assert!(!disk.has_failed());
        Ok(())
    }

    #[test]
    fn faults_change_durable_content() -> io::Result<()> {
        let disk = disk_with_dir(4);
        let a = dir().join("a");
        let mut file = disk.create(&a)?;
        file.write_all_at(0, b"abcd")?;
        file.sync()?;
        disk.sync_dir(&dir())?;
        disk.flip_byte(&a, 1)?;
        disk.truncate(&a, 3)?;
        disk.crash();
        assert_eq!(disk.contents(&a)?, vec![b'a', !b'b', b'c']);
        assert!(disk.flip_byte(&a, 3).is_err());
        Ok(())
    }
}
