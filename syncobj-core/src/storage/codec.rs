//! Little-endian field access shared by the file formats, and a bounded chunked file reader.

use std::io;

use super::disk::DiskFile;

/// How many bytes [`ChunkReader`] reads at once when the caller asks for less.
const CHUNK_BYTES: usize = 1 << 20;

/// The `u32` at `at` in `bytes`, if there are four bytes there.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

/// The `u64` at `at` in `bytes`, if there are eight bytes there.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// A byte count from disk as a memory size. Callers have bounded it first, so it fits.
pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Reads a file through a window of at most [`CHUNK_BYTES`] (or one requested span, if
/// larger), so scanning a large file costs neither one read per record nor the whole file in
/// memory.
pub(crate) struct ChunkReader<'f, F> {
    file: &'f mut F,
    file_len: u64,
    window: Vec<u8>,
    window_start: u64,
}

impl<'f, F: DiskFile> ChunkReader<'f, F> {
    /// A reader of the first `file_len` bytes of `file`.
    pub(crate) fn new(file: &'f mut F, file_len: u64) -> Self {
        ChunkReader {
            file,
            file_len,
            window: Vec::new(),
            window_start: 0,
        }
    }

    /// The length of the file as given to [`new`](Self::new).
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The `len` bytes at `offset`. The caller checks `offset + len <= file_len` first; the
    /// memory used is bounded by `len` and the chunk size.
    pub(crate) fn bytes(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&end| end <= self.file_len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || end > window_end {
            let want = len.max(CHUNK_BYTES) as u64;
            let read = want.min(self.file_len - offset);
            self.window.resize(to_usize(read), 0);
            self.window_start = offset;
            self.file.read_exact_at(offset, &mut self.window)?;
        }
        let start = to_usize(offset - self.window_start);
        Ok(&self.window[start..start + len])
    }

    /// Whether every byte from `offset` to the end of the file is zero.
    pub(crate) fn all_zero_from(&mut self, mut offset: u64) -> io::Result<bool> {
        while offset < self.file_len {
            let len = to_usize((self.file_len - offset).min(CHUNK_BYTES as u64));
            if self.bytes(offset, len)?.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            offset += len as u64;
        }
        Ok(true)
    }
}
