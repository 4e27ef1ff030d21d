//! Snapshot files: written by streaming, published atomically, read back in chunks.
//!
//! The payload is stored in chunks of [`CHUNK_BYTES`], each followed by its own checksum, so
//! damage is reported at the chunk it is in and a reader hands out only verified bytes.
//! Version-1 files (one checksum over the whole payload, in the trailer) are still read; their
//! damage can only be reported at the trailer. Version-3 files record the identity of the node
//! and cluster that wrote them; those of versions 1 and 2, which do not, are taken as the
//! store's.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::codec::{to_usize, u32_at, u64_at};
use super::disk::{Disk, DiskFile, create_dir_durably};
use super::error::{Corruption, StorageError};
use super::identity::{ClusterId, Identity};
use super::journal::RecoveryWarning;
use crate::raft::{LogIndex, NodeId, Term};

/// The first bytes of every snapshot file.
const SNAPSHOT_MAGIC: [u8; 8] = *b"SOBJSNP\0";
/// The format this code writes: the payload in checksummed chunks (since 2), the identity of
/// the node and cluster in the header (3).
const SNAPSHOT_VERSION: u32 = 3;
/// The format before identities: still read, never written.
const SNAPSHOT_VERSION_2: u32 = 2;
/// The first format, with one checksum over the whole payload: still read, never written.
const SNAPSHOT_VERSION_1: u32 = 1;
/// Fixed header of versions 1 and 2: magic (8), version (4), last index (8), last term (8),
/// code version (4), membership length (4). The membership bytes and the header CRC32C (4)
/// follow.
const FIXED_HEADER_BYTES_2: u64 = 36;
/// Fixed header of version 3: that of version 2, then node id (8) and cluster id (8).
const FIXED_HEADER_BYTES: u64 = 52;
/// Trailer: payload length (8), then CRC32C of that field (version 2) or of the payload and
/// that field (version 1) (4).
const TRAILER_BYTES: u64 = 12;
/// Payload bytes per chunk (the last chunk may be shorter); a CRC32C of the chunk's number
/// (`u64`) and its bytes follows each.
const CHUNK_BYTES: u64 = 4096;
/// The checksum after each chunk.
const CHUNK_CRC_BYTES: u64 = 4;
/// How many chunks a reader reads and verifies at once (a 1 MiB window).
const CHUNKS_PER_READ: u64 = 256;
/// The largest membership blob accepted.
pub const MEMBERSHIP_BYTES_MAX: usize = 16 << 20;
/// Writes are gathered into buffers of this size.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// [`SnapshotStore::load_latest`] reads in chunks of this size.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What a snapshot covers, beside the user's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The index of the last entry the snapshot includes.
    pub last_index: LogIndex,
    /// That entry's term.
    pub last_term: Term,
    /// The cluster membership at that entry, encoded by the driver.
    pub membership: Bytes,
    /// The version of the user's code that produced the state.
    pub code_version: u32,
}

/// A snapshot read back whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Its metadata.
    pub meta: SnapshotMeta,
    /// The driver's serialized state (user object and consumers), checksum verified.
    pub payload: Bytes,
}

/// The snapshots of one node, in a directory of their own.
///
/// Files are named `snapshot-<last index>-<last term>.snap` (twenty digits each). A new
/// snapshot is written to `<name>.tmp`, synced, renamed into place and the directory synced;
/// only then are older snapshots removed. At most one writer at a time.
#[derive(Debug)]
pub struct SnapshotStore<D: Disk> {
    disk: D,
    dir: PathBuf,
    latest: Option<Latest>,
    /// Recorded in every snapshot written; the latest one read must be of its cluster.
    identity: Identity,
}

/// The latest durable snapshot: what it covers, its file and the file's length.
#[derive(Debug)]
struct Latest {
    meta: SnapshotMeta,
    path: PathBuf,
    file_bytes: u64,
}

/// A snapshot being written; feed it the payload in chunks, then hand it to
/// [`SnapshotStore::commit`]. Dropped without a commit, it leaves a temporary file that the next
/// [`SnapshotStore::open`] removes. Implements [`io::Write`], so a serializer can write into it.
#[derive(Debug)]
pub struct SnapshotWriter<D: Disk> {
    temp: PathBuf,
    target: PathBuf,
    file: D::File,
    meta: SnapshotMeta,
    /// Bytes written to the file.
    written: u64,
    buffer: Vec<u8>,
    payload_len: u64,
    /// The CRC32C of the chunk being written, so far (seeded with its number).
    chunk_crc: u32,
}

/// Reads a snapshot's payload in chunks (for loading, or sending to a follower).
#[derive(Debug)]
pub struct SnapshotReader<F> {
    file: F,
    path: PathBuf,
    meta: SnapshotMeta,
    payload_start: u64,
    payload_len: u64,
    /// Payload bytes handed out so far.
    position: u64,
    check: Check,
}

/// How a reader verifies the payload, by format version.
#[derive(Debug)]
enum Check {
    /// Version 2: chunk by chunk, a window of chunks at a time, before handing bytes out.
    Chunks {
        /// Verified payload bytes; those from `taken` on are not handed out yet.
        window: Vec<u8>,
        taken: usize,
        /// Payload bytes verified so far (the window's end).
        verified: u64,
    },
    /// Version 1: one checksum of the whole payload, in the trailer, checked at the end.
    Whole { crc: u32, trailer: [u8; 12] },
}

impl<D: Disk> SnapshotStore<D> {
    /// Opens the store in `dir` (created if missing) as [`open_as`](Self::open_as) does, with
    /// the [default identity](Identity::default), for a store used outside a node.
    ///
    /// # Errors
    /// As [`open_as`](Self::open_as).
    pub fn open(
        disk: D,
        dir: impl Into<PathBuf>,
    ) -> Result<(SnapshotStore<D>, Vec<RecoveryWarning>), StorageError> {
        SnapshotStore::open_as(disk, dir, Identity::default())
    }

    /// Opens the store in `dir` (created if missing) for the node and cluster of `identity`,
    /// which every snapshot it writes records: removes temporary files of interrupted writes,
    /// checks the latest snapshot's header, trailer and cluster, and removes older snapshots.
    /// Another node's snapshot of the same cluster is accepted (a snapshot holds committed
    /// state only, the same on every node); one written before snapshots recorded an identity
    /// is accepted with a [`RecoveryWarning::IdentityRecorded`] (the next snapshot replaces it).
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] if the latest snapshot fails its checks (older ones are then
    /// left alone); [`StorageError::ForeignFile`] if it is another cluster's;
    /// [`StorageError::Io`].
    pub fn open_as(
        disk: D,
        dir: impl Into<PathBuf>,
        identity: Identity,
    ) -> Result<(SnapshotStore<D>, Vec<RecoveryWarning>), StorageError> {
        let dir = dir.into();
        create_dir_durably(&disk, &dir)
            .map_err(|e| StorageError::io("create directory", &dir, e))?;
        let mut warnings = Vec::new();
        let mut snapshots = Vec::new();
        let mut removed = false;
        for (name, path) in list(&disk, &dir)? {
            if let Some(key) = parse_snapshot_file_name(&name) {
                snapshots.push((key, path));
            } else if name.to_str().is_some_and(|n| n.ends_with(".snap.tmp")) {
                remove(&disk, &path)?;
                warnings.push(RecoveryWarning::TempFileRemoved { path });
                removed = true;
            } else {
                warnings.push(RecoveryWarning::UnknownFile { path });
            }
        }
        snapshots.sort();
        let latest = match snapshots.pop() {
            Some((key, path)) => {
                let (meta, file_bytes, found) = check_latest(&disk, &path, key)?;
                match found {
                    Some(found) => {
                        let expected = Identity {
                            node: found.node,
                            ..identity
                        };
                        StorageError::check_identity(&path, found, expected)?;
                    }
                    None => warnings.push(RecoveryWarning::IdentityRecorded {
                        path: path.clone(),
                        identity,
                    }),
                }
                Some(Latest {
                    meta,
                    path,
                    file_bytes,
                })
            }
            None => None,
        };
        for (_, path) in snapshots {
            remove(&disk, &path)?;
            warnings.push(RecoveryWarning::OldSnapshotRemoved { path });
            removed = true;
        }
        if removed {
            sync_dir(&disk, &dir)?;
        }
        let store = SnapshotStore {
            disk,
            dir,
            latest,
            identity,
        };
        Ok((store, warnings))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The metadata of the latest durable snapshot.
    pub fn latest(&self) -> Option<&SnapshotMeta> {
        self.latest.as_ref().map(|latest| &latest.meta)
    }

    /// The length of the latest durable snapshot's file, in bytes: header, payload, chunk
    /// checksums and trailer. Costs no I/O.
    pub fn latest_file_bytes(&self) -> Option<u64> {
        self.latest.as_ref().map(|latest| latest.file_bytes)
    }

    /// The file that holds (or will hold) the snapshot `meta` describes.
    pub fn path_of(&self, meta: &SnapshotMeta) -> PathBuf {
        self.dir.join(snapshot_file_name(meta))
    }

    /// Starts writing a snapshot described by `meta`.
    ///
    /// # Errors
    /// [`StorageError::StaleSnapshot`] if `meta.last_index` is below the latest snapshot's;
    /// [`StorageError::MembershipTooLarge`]; [`StorageError::Io`] if the file cannot be created.
    pub fn begin(&self, meta: SnapshotMeta) -> Result<SnapshotWriter<D>, StorageError> {
        if let Some(latest) = self.latest()
            && meta.last_index < latest.last_index
        {
            return Err(StorageError::StaleSnapshot {
                index: meta.last_index,
                latest: latest.last_index,
            });
        }
        if meta.membership.len() > MEMBERSHIP_BYTES_MAX {
            return Err(StorageError::MembershipTooLarge {
                bytes: meta.membership.len(),
                max: MEMBERSHIP_BYTES_MAX,
            });
        }
        let target = self.dir.join(snapshot_file_name(&meta));
        let mut temp_name = target.clone().into_os_string();
        temp_name.push(".tmp");
        let temp = PathBuf::from(temp_name);
        let file = self
            .disk
            .create(&temp)
            .map_err(|e| StorageError::io("create", &temp, e))?;
        let mut buffer = Vec::with_capacity(WRITE_BUFFER_BYTES);
        encode_header(&meta, &self.identity, &mut buffer);
        Ok(SnapshotWriter {
            temp,
            target,
            file,
            meta,
            written: 0,
            buffer,
            payload_len: 0,
            chunk_crc: chunk_seed(0),
        })
    }

    /// Finishes `writer`: writes the trailer, syncs the file, renames it into place, syncs the
    /// directory, and only then removes older snapshots. Costs two fsyncs of the directory and
    /// one of the file.
    ///
    /// # Errors
    /// [`StorageError::Io`]; after one, whether the new snapshot is in place is unknown:
    /// reopen the store.
    pub fn commit(&mut self, writer: SnapshotWriter<D>) -> Result<SnapshotMeta, StorageError> {
        let (meta, path, file_bytes) = writer.finish(&self.disk, &self.dir)?;
        let key = (meta.last_index, meta.last_term);
        for (name, path) in list(&self.disk, &self.dir)? {
            // Only older snapshots: a newer one (written meanwhile through another handle on
            // the directory) must survive this commit.
            if parse_snapshot_file_name(&name).is_some_and(|other| other < key) {
                remove(&self.disk, &path)?;
            }
        }
        sync_dir(&self.disk, &self.dir)?;
        self.latest = Some(Latest {
            meta: meta.clone(),
            path,
            file_bytes,
        });
        Ok(meta)
    }

    /// A reader of the latest snapshot, if there is one.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] if its header or trailer fails a check; [`StorageError::Io`].
    pub fn open_latest(&self) -> Result<Option<SnapshotReader<D::File>>, StorageError> {
        let Some(Latest { path, .. }) = &self.latest else {
            return Ok(None);
        };
        let file = self
            .disk
            .open(path)
            .map_err(|e| StorageError::io("open", path, e))?;
        SnapshotReader::new(file, path.clone()).map(Some)
    }

    /// Reads the latest snapshot whole and verifies its checksum. Memory: the payload, once.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] if any check fails; [`StorageError::Io`].
    pub fn load_latest(&self) -> Result<Option<Snapshot>, StorageError> {
        let Some(mut reader) = self.open_latest()? else {
            return Ok(None);
        };
        let mut payload = Vec::with_capacity(to_usize(reader.payload_len()));
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let read = reader.read_chunk(&mut chunk)?;
            if read == 0 {
                break;
            }
            payload.extend_from_slice(&chunk[..read]);
        }
        Ok(Some(Snapshot {
            meta: reader.meta,
            payload: Bytes::from(payload),
        }))
    }
}

impl<D: Disk> SnapshotWriter<D> {
    /// The metadata being written.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Payload bytes written so far.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// Appends `chunk` to the payload (any length: the file's checksummed chunks are cut
    /// independently of the caller's). Buffers up to 1 MiB, then writes (without syncing).
    ///
    /// # Errors
    /// [`StorageError::Io`].
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let filled = self.payload_len % CHUNK_BYTES;
            let room = to_usize(CHUNK_BYTES - filled).min(rest.len());
            let (now, later) = rest.split_at(room);
            self.chunk_crc = crc32c::crc32c_append(self.chunk_crc, now);
            self.payload_len += now.len() as u64;
            self.buffer.extend_from_slice(now);
            if self.payload_len.is_multiple_of(CHUNK_BYTES) {
                self.close_chunk();
            }
            if self.buffer.len() >= WRITE_BUFFER_BYTES {
                self.flush_buffer()?;
            }
            rest = later;
        }
        Ok(())
    }

    /// Appends the checksum of the chunk just filled; the next chunk starts.
    fn close_chunk(&mut self) {
        self.buffer.extend_from_slice(&self.chunk_crc.to_le_bytes());
        self.chunk_crc = chunk_seed(self.payload_len.div_ceil(CHUNK_BYTES));
    }

    fn flush_buffer(&mut self) -> Result<(), StorageError> {
        self.file
            .write_all_at(self.written, &self.buffer)
            .map_err(|e| StorageError::io("write", &self.temp, e))?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        self.buffer.shrink_to(WRITE_BUFFER_BYTES);
        Ok(())
    }

    /// Closes the last chunk, writes the trailer, syncs, renames into place and syncs the
    /// directory. Returns the file and its length.
    fn finish(
        mut self,
        disk: &D,
        dir: &Path,
    ) -> Result<(SnapshotMeta, PathBuf, u64), StorageError> {
        if !self.payload_len.is_multiple_of(CHUNK_BYTES) {
            self.close_chunk();
        }
        let length = self.payload_len.to_le_bytes();
        let crc = crc32c::crc32c(&length);
        self.buffer.extend_from_slice(&length);
        self.buffer.extend_from_slice(&crc.to_le_bytes());
        self.flush_buffer()?;
        self.file
            .sync()
            .map_err(|e| StorageError::io("sync", &self.temp, e))?;
        drop(self.file);
        disk.rename(&self.temp, &self.target)
            .map_err(|e| StorageError::io("rename", &self.temp, e))?;
        sync_dir(disk, dir)?;
        Ok((self.meta, self.target, self.written))
    }
}

impl<D: Disk> io::Write for SnapshotWriter<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    /// Buffered bytes are written at the next full buffer or at the commit.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F: DiskFile> SnapshotReader<F> {
    /// Opens the snapshot in `file`, checking its header and that its trailer agrees with
    /// its length. Cost: two small reads; the whole file only to locate damage to the trailer.
    fn new(mut file: F, path: PathBuf) -> Result<SnapshotReader<F>, StorageError> {
        let file_len = file
            .size()
            .map_err(|e| StorageError::io("measure", &path, e))?;
        let (meta, payload_start, version, _) = read_header(&mut file, &path, file_len)?;
        let trailer_at = file_len - TRAILER_BYTES;
        let mut trailer = [0u8; 12];
        file.read_exact_at(trailer_at, &mut trailer)
            .map_err(|e| StorageError::io("read", &path, e))?;
        let (payload_len, check) = if version == SNAPSHOT_VERSION_1 {
            let payload_len = trailer_at - payload_start;
            if u64_at(&trailer, 0) != Some(payload_len) {
                return Err(StorageError::corrupt(
                    path,
                    trailer_at,
                    Corruption::Truncated,
                ));
            }
            (payload_len, Check::Whole { crc: 0, trailer })
        } else {
            let layout = Layout {
                payload_start,
                file_len,
            };
            let payload_len = layout
                .check_trailer(&trailer)
                .map_err(|length| layout.locate_damage(&mut file, &path, length))?;
            let check = Check::Chunks {
                window: Vec::new(),
                taken: 0,
                verified: 0,
            };
            (payload_len, check)
        };
        Ok(SnapshotReader {
            file,
            path,
            meta,
            payload_start,
            payload_len,
            position: 0,
            check,
        })
    }

    /// The snapshot's metadata.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The payload's length in bytes.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// Payload bytes handed out so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Fills `buf` (which must not be empty) with the next payload bytes; returns how many,
    /// zero at the end. The bytes handed out are verified: their chunks' checksums were checked
    /// first (reading up to 1 MiB of chunks at once). For a version-1 file, whose one checksum
    /// covers the whole payload, the call that reaches the end, and every call after it,
    /// verifies it: until then the bytes handed out are unverified.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] if a checksum does not match, at the damaged chunk (version 1:
    /// at the trailer); [`StorageError::Io`].
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<usize, StorageError> {
        if matches!(self.check, Check::Whole { .. }) {
            return self.read_whole(buf);
        }
        if self.position == self.payload_len {
            return Ok(0);
        }
        self.fill_window()?;
        let len = self.check.take(buf);
        self.position += len as u64;
        Ok(len)
    }

    /// When every verified byte was handed out, reads the next chunks (up to
    /// [`CHUNKS_PER_READ`]) and checks them. Memory: one window, about 1 MiB.
    fn fill_window(&mut self) -> Result<(), StorageError> {
        let Check::Chunks {
            window,
            taken,
            verified,
        } = &mut self.check
        else {
            return Ok(());
        };
        if *taken < window.len() {
            return Ok(());
        }
        let first_chunk = *verified / CHUNK_BYTES;
        let payload = (self.payload_len - *verified).min(CHUNKS_PER_READ * CHUNK_BYTES);
        let chunks = payload.div_ceil(CHUNK_BYTES);
        let at = self.payload_start + *verified + first_chunk * CHUNK_CRC_BYTES;
        window.resize(to_usize(payload + chunks * CHUNK_CRC_BYTES), 0);
        self.file
            .read_exact_at(at, window)
            .map_err(|e| StorageError::io("read", &self.path, e))?;
        // Check each chunk and move its bytes down over the checksums before it.
        let (mut read, mut kept) = (0usize, 0usize);
        for number in first_chunk..first_chunk + chunks {
            let len = to_usize(CHUNK_BYTES.min(self.payload_len - *verified));
            let bytes = &window[read..read + len];
            if u32_at(window, read + len) != Some(chunk_crc(number, bytes)) {
                let problem = Corruption::ChunkChecksum {
                    chunk: number,
                    bytes: len as u64,
                };
                return Err(StorageError::corrupt(&self.path, at + read as u64, problem));
            }
            window.copy_within(read..read + len, kept);
            read += len + to_usize(CHUNK_CRC_BYTES);
            kept += len;
            *verified += len as u64;
        }
        window.truncate(kept);
        *taken = 0;
        Ok(())
    }

    /// [`read_chunk`](Self::read_chunk) for a version-1 file.
    fn read_whole(&mut self, buf: &mut [u8]) -> Result<usize, StorageError> {
        let left = self.payload_len - self.position;
        if left == 0 {
            self.verify_whole()?;
            return Ok(0);
        }
        let len = to_usize(left.min(buf.len() as u64));
        let at = self.payload_start + self.position;
        self.file
            .read_exact_at(at, &mut buf[..len])
            .map_err(|e| StorageError::io("read", &self.path, e))?;
        if let Check::Whole { crc, .. } = &mut self.check {
            *crc = crc32c::crc32c_append(*crc, &buf[..len]);
        }
        self.position += len as u64;
        if self.position == self.payload_len {
            self.verify_whole()?;
        }
        Ok(len)
    }

    fn verify_whole(&self) -> Result<(), StorageError> {
        let Check::Whole { crc, trailer } = &self.check else {
            return Ok(());
        };
        let crc = crc32c::crc32c_append(*crc, &trailer[..8]);
        if u32_at(trailer, 8) == Some(crc) {
            return Ok(());
        }
        let at = self.payload_start + self.payload_len + 8;
        Err(StorageError::corrupt(
            &self.path,
            at,
            Corruption::RecordChecksum,
        ))
    }
}

impl Check {
    /// Copies verified bytes not handed out yet into `buf`; returns how many (none for a
    /// version-1 file, which has no window).
    fn take(&mut self, buf: &mut [u8]) -> usize {
        let Check::Chunks { window, taken, .. } = self else {
            return 0;
        };
        let len = (window.len() - *taken).min(buf.len());
        buf[..len].copy_from_slice(&window[*taken..*taken + len]);
        *taken += len;
        len
    }
}

/// Where a version-2 snapshot's payload starts and how long the file is.
#[derive(Clone, Copy, Debug)]
struct Layout {
    payload_start: u64,
    file_len: u64,
}

impl Layout {
    /// The file length a payload of `payload_len` bytes needs.
    fn file_len_for(&self, payload_len: u64) -> Option<u64> {
        let crcs = payload_len
            .div_ceil(CHUNK_BYTES)
            .checked_mul(CHUNK_CRC_BYTES)?;
        self.payload_start
            .checked_add(payload_len)?
            .checked_add(crcs)?
            .checked_add(TRAILER_BYTES)
    }

    /// The payload length the trailer names, if its checksum holds and the file has the
    /// length it implies; else the length it names if only its checksum holds.
    fn check_trailer(&self, trailer: &[u8; 12]) -> Result<u64, Option<u64>> {
        let length = u64_at(trailer, 0).unwrap_or(0);
        if u32_at(trailer, 8) != Some(crc32c::crc32c(&trailer[..8])) {
            return Err(None);
        }
        match self.file_len_for(length) {
            Some(len) if len == self.file_len => Ok(length),
            _ => Err(Some(length)),
        }
    }

    /// Finds where a file whose trailer does not fit is damaged (see
    /// [`first_damage`](Self::first_damage)).
    fn locate_damage<F: DiskFile>(
        &self,
        file: &mut F,
        path: &Path,
        length: Option<u64>,
    ) -> StorageError {
        match self.first_damage(file, path, length) {
            Ok((at, problem)) => StorageError::corrupt(path, at, problem),
            Err(error) => error,
        }
    }

    /// Checks the chunks from the start, each as a whole chunk or as the short last one before
    /// a trailer, and returns the first that is neither; if all pass, the trailer's problem.
    /// `length` is what the trailer names if its checksum holds. Reads the whole file, a chunk
    /// at a time (this is the error path).
    fn first_damage<F: DiskFile>(
        &self,
        file: &mut F,
        path: &Path,
        length: Option<u64>,
    ) -> Result<(u64, Corruption), StorageError> {
        let whole = CHUNK_BYTES + CHUNK_CRC_BYTES;
        let mut buf = vec![0u8; to_usize(whole)];
        let (mut at, mut number) = (self.payload_start, 0u64);
        loop {
            let left = self.file_len - at;
            if left <= TRAILER_BYTES {
                let problem = match length {
                    _ if left < TRAILER_BYTES => Corruption::Truncated,
                    Some(length) => Corruption::WrongLength {
                        found: self.file_len,
                        expected: self.file_len_for(length).unwrap_or(u64::MAX),
                    },
                    None => Corruption::TrailerChecksum,
                };
                return Ok((at, problem));
            }
            let last = left - TRAILER_BYTES;
            let mut fits = |len: u64| chunk_fits(file, path, at, number, &mut buf[..to_usize(len)]);
            at += if left >= whole + TRAILER_BYTES && fits(whole)? {
                whole
            } else if last > CHUNK_CRC_BYTES && last < whole && fits(last)? {
                last
            } else {
                let bytes = CHUNK_BYTES.min(last.saturating_sub(CHUNK_CRC_BYTES));
                return Ok((
                    at,
                    Corruption::ChunkChecksum {
                        chunk: number,
                        bytes,
                    },
                ));
            };
            number += 1;
        }
    }
}

/// Whether the `buf.len()` bytes at `at` are chunk `number` and its checksum.
fn chunk_fits<F: DiskFile>(
    file: &mut F,
    path: &Path,
    at: u64,
    number: u64,
    buf: &mut [u8],
) -> Result<bool, StorageError> {
    file.read_exact_at(at, buf)
        .map_err(|e| StorageError::io("read", path, e))?;
    let len = buf.len() - to_usize(CHUNK_CRC_BYTES);
    Ok(u32_at(buf, len) == Some(chunk_crc(number, &buf[..len])))
}

/// The CRC32C a chunk's checksum starts from: that of its number, so a chunk moved elsewhere
/// fails.
fn chunk_seed(number: u64) -> u32 {
    crc32c::crc32c(&number.to_le_bytes())
}

/// The checksum of chunk `number` holding `bytes`.
fn chunk_crc(number: u64, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(chunk_seed(number), bytes)
}

/// Appends the header of a snapshot described by `meta`, written by `identity`, to `out`. The
/// membership length was checked against [`MEMBERSHIP_BYTES_MAX`], so it fits in 32 bits.
fn encode_header(meta: &SnapshotMeta, identity: &Identity, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&meta.last_index.0.to_le_bytes());
    out.extend_from_slice(&meta.last_term.0.to_le_bytes());
    out.extend_from_slice(&meta.code_version.to_le_bytes());
    let membership_len = u32::try_from(meta.membership.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&membership_len.to_le_bytes());
    out.extend_from_slice(&identity.node.0.to_le_bytes());
    out.extend_from_slice(&identity.cluster.0.to_le_bytes());
    out.extend_from_slice(&meta.membership);
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Reads and checks a snapshot header; returns the metadata, where the payload starts, the
/// format version and the identity it records (none before version 3).
fn read_header<F: DiskFile>(
    file: &mut F,
    path: &Path,
    file_len: u64,
) -> Result<(SnapshotMeta, u64, u32, Option<Identity>), StorageError> {
    let corrupt = |offset, problem| StorageError::corrupt(path, offset, problem);
    let mut fixed = [0u8; FIXED_HEADER_BYTES as usize];
    let read_len = to_usize(file_len.min(FIXED_HEADER_BYTES));
    file.read_exact_at(0, &mut fixed[..read_len])
        .map_err(|e| StorageError::io("read", path, e))?;
    let version = check_magic_and_version(&fixed[..read_len]).map_err(|(at, p)| corrupt(at, p))?;
    let fixed_bytes = match version {
        SNAPSHOT_VERSION => FIXED_HEADER_BYTES,
        _ => FIXED_HEADER_BYTES_2,
    };
    let fixed = &fixed[..to_usize(fixed_bytes)];
    let minimum = fixed_bytes + 4 + TRAILER_BYTES;
    if file_len < minimum {
        let problem = Corruption::WrongLength {
            found: file_len,
            expected: minimum,
        };
        return Err(corrupt(file_len, problem));
    }
    let membership_len = u32_at(fixed, 32).map_or(0, u64::from);
    let header_len = fixed_bytes + membership_len + 4;
    if membership_len > MEMBERSHIP_BYTES_MAX as u64 || header_len + TRAILER_BYTES > file_len {
        let problem = Corruption::InvalidField {
            field: "membership length",
        };
        return Err(corrupt(32, problem));
    }
    let mut rest = vec![0u8; to_usize(membership_len + 4)];
    file.read_exact_at(fixed_bytes, &mut rest)
        .map_err(|e| StorageError::io("read", path, e))?;
    let (membership, crc) = rest.split_at(to_usize(membership_len));
    let expected = crc32c::crc32c_append(crc32c::crc32c(fixed), membership);
    if u32_at(crc, 0) != Some(expected) {
        // Reported at the header's start: a damaged membership length misplaces the checksum.
        return Err(corrupt(0, Corruption::HeaderChecksum));
    }
    let field = |at: usize| u64_at(fixed, at).unwrap_or(0);
    let meta = SnapshotMeta {
        last_index: LogIndex(field(12)),
        last_term: Term(field(20)),
        code_version: u32_at(fixed, 28).unwrap_or(0),
        membership: Bytes::copy_from_slice(membership),
    };
    let identity = (version == SNAPSHOT_VERSION).then(|| Identity {
        node: NodeId(field(36)),
        cluster: ClusterId(field(44)),
    });
    Ok((meta, header_len, version, identity))
}

/// The format version, after checking the magic; versions 1 to 3 are read.
fn check_magic_and_version(fixed: &[u8]) -> Result<u32, (u64, Corruption)> {
    if fixed.get(..8) != Some(&SNAPSHOT_MAGIC[..]) {
        return Err((0, Corruption::BadMagic { kind: "snapshot" }));
    }
    let version = u32_at(fixed, 8).unwrap_or(0);
    if ![SNAPSHOT_VERSION, SNAPSHOT_VERSION_2, SNAPSHOT_VERSION_1].contains(&version) {
        let problem = Corruption::UnsupportedVersion {
            found: version,
            supported: SNAPSHOT_VERSION,
        };
        return Err((8, problem));
    }
    Ok(version)
}

/// Opens the latest snapshot's header and trailer, and checks them against its file name.
/// Returns its metadata, the file's length and the identity it records.
fn check_latest<D: Disk>(
    disk: &D,
    path: &Path,
    (index, term): (LogIndex, Term),
) -> Result<(SnapshotMeta, u64, Option<Identity>), StorageError> {
    let mut file = disk
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let file_bytes = file
        .size()
        .map_err(|e| StorageError::io("measure", path, e))?;
    let identity = read_header(&mut file, path, file_bytes)?.3;
    let reader = SnapshotReader::new(file, path.to_path_buf())?;
    if reader.meta.last_index != index || reader.meta.last_term != term {
        let problem = Corruption::IndexMismatch {
            expected: index,
            found: reader.meta.last_index,
        };
        return Err(StorageError::corrupt(path, 12, problem));
    }
    Ok((reader.meta, file_bytes, identity))
}

/// The file name of a snapshot; twenty digits per number sort like the numbers.
fn snapshot_file_name(meta: &SnapshotMeta) -> String {
    format!(
        "snapshot-{:020}-{:020}.snap",
        meta.last_index.0, meta.last_term.0
    )
}

/// The (last index, last term) a snapshot file name encodes, if `name` is one.
fn parse_snapshot_file_name(name: &OsString) -> Option<(LogIndex, Term)> {
    let rest = name
        .to_str()?
        .strip_prefix("snapshot-")?
        .strip_suffix(".snap")?;
    let (index, term) = rest.split_once('-')?;
    let number = |digits: &str| {
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().ok())
            .flatten()
    };
    Some((LogIndex(number(index)?), Term(number(term)?)))
}

fn list<D: Disk>(disk: &D, dir: &Path) -> Result<Vec<(OsString, PathBuf)>, StorageError> {
    let names = disk
        .list(dir)
        .map_err(|e| StorageError::io("list", dir, e))?;
    let mut files: Vec<(OsString, PathBuf)> = names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            (name, path)
        })
        .collect();
    files.sort();
    Ok(files)
}

fn remove<D: Disk>(disk: &D, path: &Path) -> Result<(), StorageError> {
    disk.remove(path)
        .map_err(|e| StorageError::io("remove", path, e))
}

fn sync_dir<D: Disk>(disk: &D, dir: &Path) -> Result<(), StorageError> {
    disk.sync_dir(dir)
        .map_err(|e| StorageError::io("sync directory", dir, e))
}
