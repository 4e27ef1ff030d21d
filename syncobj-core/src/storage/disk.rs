//! The file operations storage needs, behind a trait: [`StdDisk`] over `std::fs`, and a
//! simulated disk for tests (`SimDisk`, feature `sim`).

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A file system: exactly the operations the journal and the snapshot store use.
///
/// Durability contract, which [`StdDisk`] gets from the operating system and the simulated disk
/// enforces: data written to a file may be lost in a crash until [`DiskFile::sync`] returns;
/// creating, renaming or removing a file may be undone by a crash until
/// [`sync_dir`](Self::sync_dir) on its directory returns.
///
/// A `Disk` is a cheap handle: clones reach the same files.
pub trait Disk: Clone + fmt::Debug + Send + Sync + 'static {
    /// An open file.
    type File: DiskFile;

    /// Creates `dir` and its missing parents; succeeds if it exists.
    ///
    /// # Errors
    /// The operating system's error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Creates the file at `path`, or empties it if it exists, and opens it for reading and
    /// writing.
    ///
    /// # Errors
    /// The operating system's error, for example when the directory does not exist.
    fn create(&self, path: &Path) -> io::Result<Self::File>;

    /// Opens the existing file at `path` for reading and writing.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, or the operating system's error.
    fn open(&self, path: &Path) -> io::Result<Self::File>;

    /// Renames `from` to `to`, replacing `to` if it exists. Atomic: after a crash one of the two
    /// names points to the file, never neither, once the directory is synced.
    ///
    /// # Errors
    /// The operating system's error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, or the operating system's error.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// The names of the regular files in `dir`, in no particular order.
    ///
    /// # Errors
    /// The operating system's error.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;

    /// Makes the creations, renames and removals done in `dir` durable.
    ///
    /// # Errors
    /// The operating system's error. After a failed sync the state of the directory is unknown.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file of a [`Disk`]. Reads and writes name their offset; there is no cursor.
pub trait DiskFile: fmt::Debug + Send {
    /// The file's length in bytes.
    ///
    /// # Errors
    /// The operating system's error.
    fn size(&mut self) -> io::Result<u64>;

    /// Fills `buf` from the bytes at `offset`.
    ///
    /// # Errors
    /// `UnexpectedEof` if the file ends first, or the operating system's error.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes all of `data` at `offset`, growing the file if needed.
    ///
    /// # Errors
    /// The operating system's error.
    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Cuts or extends (with zeros) the file to `len` bytes.
    ///
    /// # Errors
    /// The operating system's error.
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// Makes the file's data and length durable (`fsync`).
    ///
    /// # Errors
    /// The operating system's error. After a failed sync the file's durable content is unknown;
    /// callers must not retry as if nothing happened.
    fn sync(&mut self) -> io::Result<()>;
}

/// Creates `dir` and makes its entry in its parent durable, so a new data directory does not
/// vanish in a crash with everything synced inside it.
pub(crate) fn create_dir_durably<D: Disk>(disk: &D, dir: &Path) -> io::Result<()> {
    disk.create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => disk.sync_dir(parent),
        _ => disk.sync_dir(Path::new(".")),
    }
}

/// The real file system, through `std::fs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StdDisk;

/// A file of [`StdDisk`].
#[derive(Debug)]
pub struct StdFile {
    file: File,
}

impl Disk for StdDisk {
    type File = StdFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<StdFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(StdFile { file })
    }

    fn open(&self, path: &Path) -> io::Result<StdFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(StdFile { file })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name());
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sync_dir_std(dir)
    }
}

/// Opens the directory and syncs it, which makes its entries durable on Unix.
#[cfg(unix)]
fn sync_dir_std(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Other systems cannot open a directory as a file; their renames are durable with the file.
#[cfg(not(unix))]
fn sync_dir_std(_dir: &Path) -> io::Result<()> {
    Ok(())
}

impl DiskFile for StdFile {
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }

    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(data)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_dir::TempDir;

    #[test]
    fn std_disk_round_trip() -> io::Result<()> {
        let dir = TempDir::new("disk-round-trip");
        let disk = StdDisk;
        let path = dir.path().join("a");
        let mut file = disk.create(&path)?;
        file.write_all_at(0, b"hello world")?;
        file.write_all_at(6, b"there")?;
        file.sync()?;
        let mut buf = [0u8; 11];
        file.read_exact_at(0, &mut buf)?;
        assert_eq!(&buf, b"hello there");
        file.set_len(5)?;
        assert_eq!(file.size()?, 5);
        disk.rename(&path, &dir.path().join("b"))?;
        disk.sync_dir(dir.path())?;
        assert_eq!(disk.list(dir.path())?, vec![OsString::from("b")]);
        disk.remove(&dir.path().join("b"))?;
        assert!(disk.list(dir.path())?.is_empty());
        assert!(disk.open(&path).is_err());
        Ok(())
    }
}
