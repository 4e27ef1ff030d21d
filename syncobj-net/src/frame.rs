//! Length-prefixed framing of a byte stream.
//!
//! A frame is a 4-byte header holding the payload length as a `u32`, little-endian, followed
//! by that many payload bytes. Unlike PySyncObj, whose header is a native-endian signed int and
//! whose receive buffer has no bound, every frame here has a maximum payload size,
//! `frame_size_max`, fixed when the [`FrameEncoder`] or [`FrameDecoder`] is built. The header is
//! checked against it before anything is allocated, and a frame that exceeds it is a
//! [`FrameError::TooLarge`], after which the connection must be dropped: the stream cannot be
//! resynchronised.
//!
//! Empty frames (a header of zero) are valid. The decoder returns them as an empty [`Bytes`]; the
//! layer above decides what they mean (a transport may use them as keep-alives, since they cost
//! four bytes and carry nothing).
//!
//! The codecs know nothing of what the payload holds (a MessagePack message, a handshake, or
//! ciphertext).

use std::io::{self, Read};

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Bytes in a frame header: the payload length as a `u32`, little-endian.
pub const FRAME_HEADER_BYTES: usize = 4;

/// The default for the most bytes [`FrameDecoder::read_from`] asks for in one read.
pub const READ_CHUNK_BYTES_DEFAULT: usize = 64 * 1024;

/// The largest read chunk a [`FrameDecoder`] takes.
pub const READ_CHUNK_BYTES_MAX: usize = 16 * 1024 * 1024;

// Frame lengths are `u32` and are converted to `usize` with `as`, which must not truncate.
const _: () = assert!(usize::BITS >= 32, "a u32 frame length must fit a usize");

/// Why a frame could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The payload length (sent or announced by the peer) exceeds `frame_size_max`. On receipt the
    /// connection must be dropped: the bytes that follow cannot be trusted to start a frame.
    #[error("a frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload length offered or announced.
        len: usize,
        /// The limit, `frame_size_max`.
        max: u32,
    },
    /// The stream ended inside a frame (reported by [`FrameDecoder::finish`]).
    #[error("the stream ended inside a frame, {buffered} bytes into it")]
    Truncated {
        /// The bytes of the incomplete frame received, header included.
        buffered: usize,
    },
}

/// What [`FrameDecoder::read_from`] or [`FrameDecoder::read_frame_from`] stopped on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the status says whether to read again, wait, or drop the connection"]
pub enum ReadStatus {
    /// The source has nothing more for now (`WouldBlock`): wait for the next readiness event.
    WouldBlock,
    /// The buffer holds at least a whole frame (or a header that [`FrameDecoder::next_frame`]
    /// refuses): drain it, then call `read_from` again, since the source may hold more bytes
    /// (mio's readiness is edge-triggered).
    BufferFull,
    /// The peer closed its side (a read returned 0 bytes). Drain the frames, then see
    /// [`FrameDecoder::finish`].
    Closed,
}

/// Encodes frames: a header, then the payload, refusing payloads over `frame_size_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameEncoder {
    frame_size_max: u32,
}

impl FrameEncoder {
    /// An encoder that refuses payloads longer than `frame_size_max` bytes.
    pub fn new(frame_size_max: u32) -> Self {
        Self { frame_size_max }
    }

    /// The largest payload, in bytes, this encoder accepts.
    pub fn frame_size_max(&self) -> u32 {
        self.frame_size_max
    }

    /// The header of a frame holding `payload_len` bytes, for callers that write the header and
    /// the payload separately (vectored writes, no copy).
    ///
    /// Fails with [`FrameError::TooLarge`] if `payload_len` exceeds `frame_size_max`.
    pub fn header(&self, payload_len: usize) -> Result<[u8; FRAME_HEADER_BYTES], FrameError> {
        let too_large = FrameError::TooLarge {
            len: payload_len,
            max: self.frame_size_max,
        };
        let len = u32::try_from(payload_len).map_err(|_| too_large.clone())?;
        if len > self.frame_size_max {
            return Err(too_large);
        }
        Ok(len.to_le_bytes())
    }

    /// Appends the frame of `payload` (header, then payload) to `out`. Costs one copy of the
    /// payload.
    ///
    /// Fails with [`FrameError::TooLarge`], leaving `out` untouched, if the payload exceeds
    /// `frame_size_max`.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let header = self.header(payload.len())?;
        out.reserve(FRAME_HEADER_BYTES + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Ok(())
    }
}

/// Decodes frames incrementally from bytes as they come off a non-blocking socket.
///
/// Bytes go in with [`read_from`](Self::read_from) (reads a source until `WouldBlock`) or
/// [`feed`](Self::feed); whole frames come out of [`next_frame`](Self::next_frame) as [`Bytes`]
/// that share the decoder's allocation (no copy).
///
/// Memory is bounded: the decoder never holds more than
/// [`buffer_bytes_max`](Self::buffer_bytes_max) = `frame_size_max` + 4 + one read chunk bytes,
/// and its allocation never exceeds that either. A header is checked against `frame_size_max`
/// before any allocation is sized from it; once a large frame's header has arrived, the rest of
/// it is read without further copies. Frames handed out keep their allocation alive until they
/// are dropped; an emptied decoder whose allocation outgrew two read chunks lets go of it.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    /// The size of the allocation `buf` points into (0 for none).
    allocation_bytes: usize,
    frame_size_max: u32,
    read_chunk_bytes: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames whose payload exceeds `frame_size_max` bytes and reads at
    /// most [`READ_CHUNK_BYTES_DEFAULT`] bytes at a time. Allocates nothing until bytes arrive.
    pub fn new(frame_size_max: u32) -> Self {
        Self::with_read_chunk(frame_size_max, READ_CHUNK_BYTES_DEFAULT)
    }

    /// Like [`new`](Self::new), reading at most `read_chunk_bytes` bytes at a time, taken
    /// between 1 and [`READ_CHUNK_BYTES_MAX`].
    pub fn with_read_chunk(frame_size_max: u32, read_chunk_bytes: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            allocation_bytes: 0,
            frame_size_max,
            read_chunk_bytes: read_chunk_bytes.clamp(1, READ_CHUNK_BYTES_MAX),
        }
    }

    /// Sets the largest payload accepted from the next frame on. A connection decodes its
    /// handshake under a small limit and sets the configured one once the peer is known, so
    /// that an unknown peer cannot make it allocate a large frame's buffer.
    pub fn set_frame_size_max(&mut self, frame_size_max: u32) {
        self.frame_size_max = frame_size_max;
    }

    /// The largest payload, in bytes, this decoder accepts.
    pub fn frame_size_max(&self) -> u32 {
        self.frame_size_max
    }

    /// The most bytes the decoder ever holds or allocates: `frame_size_max` + 4 + one read chunk.
    pub fn buffer_bytes_max(&self) -> usize {
        self.frame_bytes_max().saturating_add(self.read_chunk_bytes)
    }

    /// The bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The size of the allocation the buffer holds, at most
    /// [`buffer_bytes_max`](Self::buffer_bytes_max); frames handed out may share it.
    pub fn capacity(&self) -> usize {
        self.allocation_bytes
    }

    /// Reads from `src` until it returns `WouldBlock`, reaches its end, or the buffer holds a
    /// whole frame's worth (or a refused header); `Interrupted` reads are retried. Each read asks
    /// for one read chunk, zeroed first (this crate has no unsafe code).
    ///
    /// Fails with the first other I/O error of `src`. Never fails on the bytes' content: that is
    /// for [`next_frame`](Self::next_frame) to judge.
    pub fn read_from(&mut self, src: &mut impl Read) -> io::Result<ReadStatus> {
        self.read_until(src, |d| {
            d.buf.len() >= d.frame_bytes_max() || d.pending_len().is_err()
        })
    }

    /// Like [`read_from`](Self::read_from), but stops as soon as the buffer holds one whole frame
    /// (or a header that [`next_frame`](Self::next_frame) refuses), returning
    /// [`ReadStatus::BufferFull`]. A caller that takes a bounded number of frames per turn thus
    /// leaves the rest in `src` (the kernel's socket buffer) rather than here: beyond the frame,
    /// the buffer holds at most what the last read brought, one read chunk.
    ///
    /// Fails like [`read_from`](Self::read_from).
    pub fn read_frame_from(&mut self, src: &mut impl Read) -> io::Result<ReadStatus> {
        self.read_until(src, FrameDecoder::holds_frame)
    }

    /// Reads one chunk at a time from `src` until `full` says the buffer holds enough
    /// (`BufferFull`), `src` would block or ends; `Interrupted` reads are retried.
    fn read_until(
        &mut self,
        src: &mut impl Read,
        full: impl Fn(&FrameDecoder) -> bool,
    ) -> io::Result<ReadStatus> {
        while !full(self) {
            match self.read_once(src) {
                Ok(0) => return Ok(ReadStatus::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadStatus::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ReadStatus::BufferFull)
    }

    /// The payload length of the next frame if it is whole in the buffer, that is when
    /// [`next_frame`](Self::next_frame) would return it; `None` for an incomplete frame or a
    /// refused header. Costs nothing: it reads the header in place.
    pub fn next_frame_len(&self) -> Option<usize> {
        match self.pending_len() {
            Ok(Some(len)) if self.buf.len() >= FRAME_HEADER_BYTES + len => Some(len),
            _ => None,
        }
    }

    /// Appends as much of `bytes` as the buffer bound allows and returns how many it took: all of
    /// them if `bytes` fits in `buffer_bytes_max() - buffered()`. Call
    /// [`next_frame`](Self::next_frame) until it returns `None`, then feed the rest. Costs one
    /// copy of what it takes.
    #[must_use = "bytes beyond the returned count were not taken"]
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let room = self.buffer_bytes_max().saturating_sub(self.buf.len());
        let taken = bytes.len().min(room);
        self.make_room(taken);
        self.buf.extend_from_slice(&bytes[..taken]);
        taken
    }

    /// The next whole frame's payload, or `None` if the buffer holds only part of one (wait for
    /// more bytes). Costs no copy.
    ///
    /// Fails with [`FrameError::TooLarge`] if the next header announces more than
    /// `frame_size_max` bytes; the connection must then be dropped, and every later call fails
    /// the same way.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.pending_len()? else {
            return Ok(None);
        };
        if self.buf.len() < FRAME_HEADER_BYTES + len {
            return Ok(None);
        }
        self.buf.advance(FRAME_HEADER_BYTES);
        let frame = self.buf.split_to(len).freeze();
        if self.buf.is_empty() && self.allocation_bytes > self.read_chunk_bytes.saturating_mul(2) {
            self.buf = BytesMut::new();
            self.allocation_bytes = 0;
        }
        Ok(Some(frame))
    }

    /// Checks that the stream ended on a frame boundary, once the source is closed and every
    /// frame was taken.
    ///
    /// Fails with [`FrameError::Truncated`] if bytes of an incomplete frame remain, or with
    /// [`FrameError::TooLarge`] if they start with a refused header.
    pub fn finish(&self) -> Result<(), FrameError> {
        self.pending_len()?;
        match self.buf.len() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }

    /// Appends one read of at most one chunk from `src` to the buffer.
    fn read_once(&mut self, src: &mut impl Read) -> io::Result<usize> {
        let chunk = self.read_chunk_bytes;
        self.make_room(chunk);
        let start = self.buf.len();
        self.buf.resize(start + chunk, 0);
        let result = src.read(&mut self.buf[start..]);
        let read = match &result {
            Ok(read) => (*read).min(chunk),
            Err(_) => 0,
        };
        self.buf.truncate(start + read);
        result
    }

    /// Whether the buffer holds a whole frame, or a header `next_frame` refuses.
    fn holds_frame(&self) -> bool {
        match self.pending_len() {
            Ok(Some(len)) => self.buf.len() >= FRAME_HEADER_BYTES + len,
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// A whole frame of the largest size: header plus `frame_size_max`.
    fn frame_bytes_max(&self) -> usize {
        (self.frame_size_max as usize).saturating_add(FRAME_HEADER_BYTES)
    }

    /// The payload length in the buffered header, checked against the limit; `None` if the
    /// header is incomplete.
    fn pending_len(&self) -> Result<Option<usize>, FrameError> {
        let Some(header) = self.buf.first_chunk::<FRAME_HEADER_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*header);
        if len > self.frame_size_max {
            return Err(FrameError::TooLarge {
                len: len as usize,
                max: self.frame_size_max,
            });
        }
        Ok(Some(len as usize))
    }

    /// Ensures room for `additional` more bytes (the caller keeps `buffered + additional` within
    /// the bound). Reuses the allocation when it can; otherwise allocates exactly enough for the
    /// pending frame (its header already checked) plus `additional`, so a large frame is copied
    /// at most once, and never more than the bound.
    fn make_room(&mut self, additional: usize) {
        if self.buf.try_reclaim(additional) {
            return;
        }
        let frame_bytes = match self.pending_len() {
            Ok(Some(len)) => FRAME_HEADER_BYTES + len,
            Ok(None) | Err(_) => 0,
        };
        let wanted = self.buf.len().max(frame_bytes).saturating_add(additional);
        let target = wanted
            .min(self.buffer_bytes_max())
            .max(self.buf.len() + additional);
        let mut fresh = BytesMut::with_capacity(target);
        fresh.extend_from_slice(&self.buf);
        self.allocation_bytes = fresh.capacity();
        self.buf = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out scripted results, then `WouldBlock` forever.
    struct Script(Vec<io::Result<Vec<u8>>>);

    impl Read for Script {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            match self.0.remove(0) {
                Ok(mut bytes) => {
                    let n = bytes.len().min(out.len());
                    out[..n].copy_from_slice(&bytes[..n]);
                    if n < bytes.len() {
                        self.0.insert(0, Ok(bytes.split_off(n)));
                    }
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        }
    }

    fn encoded(frame_size_max: u32, payloads: &[&[u8]]) -> Vec<u8> {
        let encoder = FrameEncoder::new(frame_size_max);
        let mut out = Vec::new();
        for payload in payloads {
            encoder
                .encode(payload, &mut out)
                .expect("test payloads fit");
        }
        out
    }

    fn drain(decoder: &mut FrameDecoder) -> Vec<Bytes> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().expect("test streams are valid") {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn header_is_u32_little_endian_then_payload() {
        assert_eq!(encoded(100, &[b"abc"]), [3, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(
            FrameEncoder::new(u32::MAX).header(0x0102_0304),
            Ok([4, 3, 2, 1])
        );
    }

    #[test]
    fn empty_frames_are_valid() {
        let mut decoder = FrameDecoder::new(10);
        assert_eq!(decoder.feed(&encoded(10, &[b"", b"x", b""])), 13);
        assert_eq!(drain(&mut decoder), [&b""[..], b"x", b""]);
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn truncated_frame_waits_for_more() {
        let bytes = encoded(10, &[b"hello"]);
        let mut decoder = FrameDecoder::new(10);
        for byte in &bytes[..bytes.len() - 1] {
            assert_eq!(decoder.feed(&[*byte]), 1);
            assert_eq!(decoder.next_frame(), Ok(None));
        }
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: 8 }));
        assert_eq!(decoder.feed(&bytes[bytes.len() - 1..]), 1);
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"hello"))));
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn limit_is_inclusive() {
        let mut decoder = FrameDecoder::new(3);
        assert_eq!(decoder.feed(&[3, 0, 0, 0, 1, 2, 3]), 7);
        assert_eq!(
            decoder.next_frame(),
            Ok(Some(Bytes::from_static(&[1, 2, 3])))
        );
        assert_eq!(decoder.feed(&[4, 0, 0, 0]), 4);
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: 4, max: 3 })
        );
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut decoder = FrameDecoder::with_read_chunk(1024, 256);
        assert_eq!(decoder.feed(&[0xff, 0xff, 0xff, 0x7f]), 4);
        let too_large = FrameError::TooLarge {
            len: 0x7fff_ffff,
            max: 1024,
        };
        assert_eq!(decoder.next_frame(), Err(too_large.clone()));
        assert_eq!(decoder.next_frame(), Err(too_large.clone()), "sticky");
        assert_eq!(decoder.finish(), Err(too_large.clone()));
        assert!(decoder.capacity() <= decoder.buffer_bytes_max());
        // Once the header is refused, read_from reads no further.
        let mut source = Script(vec![Ok(vec![0; 1 << 20])]);
        let status = decoder
            .read_from(&mut source)
            .expect("the script does not fail");
        assert_eq!(status, ReadStatus::BufferFull);
        assert_eq!(decoder.buffered(), 4);
        assert_eq!(decoder.next_frame(), Err(too_large));
    }

    #[test]
    fn oversized_length_in_a_stream_is_refused_after_the_good_frames() {
        let mut bytes = encoded(8, &[b"ok"]);
        bytes.extend_from_slice(&9u32.to_le_bytes());
        let mut decoder = FrameDecoder::new(8);
        assert_eq!(decoder.feed(&bytes), bytes.len());
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"ok"))));
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: 9, max: 8 })
        );
    }

    #[test]
    fn encoder_refuses_oversized_payloads_and_writes_nothing() {
        let encoder = FrameEncoder::new(4);
        let mut out = vec![7];
        assert_eq!(
            encoder.encode(b"12345", &mut out),
            Err(FrameError::TooLarge { len: 5, max: 4 })
        );
        assert_eq!(out, [7]);
        assert_eq!(encoder.encode(b"1234", &mut out), Ok(()));
        assert_eq!(out, [7, 4, 0, 0, 0, b'1', b'2', b'3', b'4']);
        // Beyond what a u32 header can say (only on 64-bit hosts).
        if let Ok(huge) = usize::try_from(u64::from(u32::MAX) + 1) {
            let refused = FrameEncoder::new(u32::MAX).header(huge);
            let max = u32::MAX;
            assert_eq!(refused, Err(FrameError::TooLarge { len: huge, max }));
        }
    }

    #[test]
    fn feed_takes_only_what_the_bound_allows() {
        let bytes = encoded(8, &[&b"12345678"[..]; 4]);
        let mut decoder = FrameDecoder::with_read_chunk(8, 4);
        assert_eq!(decoder.buffer_bytes_max(), 16);
        let taken = decoder.feed(&bytes);
        assert_eq!(taken, 16);
        assert_eq!(decoder.feed(&bytes[taken..]), 0, "full until drained");
        assert!(decoder.capacity() <= 16);
        let mut frames = drain(&mut decoder);
        let mut rest = &bytes[taken..];
        while !rest.is_empty() {
            let taken = decoder.feed(rest);
            assert!(taken > 0);
            rest = &rest[taken..];
            frames.extend(drain(&mut decoder));
            assert!(decoder.capacity() <= 16);
        }
        assert_eq!(frames, vec![Bytes::from_static(b"12345678"); 4]);
    }

    #[test]
    fn read_from_reads_until_would_block_and_retries_interrupted() {
        let bytes = encoded(100, &[b"one", b"two"]);
        let mut source = Script(vec![
            Ok(bytes[..5].to_vec()),
            Err(io::ErrorKind::Interrupted.into()),
            Ok(bytes[5..].to_vec()),
        ]);
        let mut decoder = FrameDecoder::with_read_chunk(100, 3);
        let status = decoder
            .read_from(&mut source)
            .expect("the script does not fail");
        assert_eq!(status, ReadStatus::WouldBlock);
        assert!(source.0.is_empty(), "everything was read");
        assert_eq!(drain(&mut decoder), [&b"one"[..], b"two"]);
    }

    #[test]
    fn read_frame_from_stops_at_the_first_whole_frame() {
        let bytes = encoded(100, &[b"one", b"two", b"three"]);
        let mut source = Script(vec![Ok(bytes.clone())]);
        let mut decoder = FrameDecoder::with_read_chunk(100, 5);
        assert_eq!(decoder.next_frame_len(), None, "nothing buffered");
        let status = decoder.read_frame_from(&mut source).expect("no failure");
        assert_eq!(status, ReadStatus::BufferFull);
        assert_eq!(
            decoder.buffered(),
            10,
            "two chunks of 5 hold the first frame"
        );
        assert_eq!(decoder.next_frame_len(), Some(3));
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"one"))));
        assert_eq!(
            decoder.next_frame_len(),
            None,
            "the second frame is incomplete"
        );
        let left: usize = source
            .0
            .iter()
            .map(|r| r.as_ref().map_or(0, Vec::len))
            .sum();
        assert_eq!(left, bytes.len() - 10, "the rest stays in the source");
        assert_eq!(
            decoder.read_frame_from(&mut source).expect("no failure"),
            ReadStatus::BufferFull
        );
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"two"))));
        assert_eq!(
            decoder.read_frame_from(&mut source).expect("no failure"),
            ReadStatus::BufferFull
        );
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"three"))));
        assert_eq!(
            decoder.read_frame_from(&mut source).expect("no failure"),
            ReadStatus::WouldBlock
        );
    }

    #[test]
    fn read_from_reports_end_of_stream_and_truncation() {
        let mut source = Script(vec![Ok(vec![5, 0, 0, 0, 1]), Ok(Vec::new())]);
        let mut decoder = FrameDecoder::new(100);
        let status = decoder
            .read_from(&mut source)
            .expect("the script does not fail");
        assert_eq!(status, ReadStatus::Closed);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: 5 }));
    }

    #[test]
    fn read_from_passes_on_other_errors() {
        let mut source = Script(vec![Err(io::ErrorKind::ConnectionReset.into())]);
        let mut decoder = FrameDecoder::new(100);
        let error = decoder
            .read_from(&mut source)
            .expect_err("the script fails");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn read_from_stops_when_a_whole_frame_is_buffered() {
        let bytes = encoded(10, &[&b"0123456789"[..]; 50]);
        let mut source = Script(vec![Ok(bytes)]);
        let mut decoder = FrameDecoder::with_read_chunk(10, 8);
        let mut frames = Vec::new();
        loop {
            let status = decoder
                .read_from(&mut source)
                .expect("the script does not fail");
            assert!(decoder.buffered() <= decoder.buffer_bytes_max());
            assert!(decoder.capacity() <= decoder.buffer_bytes_max());
            frames.extend(drain(&mut decoder));
            if status == ReadStatus::WouldBlock {
                break;
            }
            assert_eq!(status, ReadStatus::BufferFull);
        }
        assert_eq!(frames, vec![Bytes::from_static(b"0123456789"); 50]);
    }

    #[test]
    fn a_large_frame_is_allocated_once_and_released_when_drained() {
        let payload = vec![9; 10_000];
        let bytes = encoded(10_000, &[&payload]);
        let mut source = Script(bytes.chunks(100).map(|c| Ok(c.to_vec())).collect());
        let mut decoder = FrameDecoder::with_read_chunk(10_000, 100);
        let status = decoder
            .read_from(&mut source)
            .expect("the script does not fail");
        assert_eq!(status, ReadStatus::BufferFull);
        assert_eq!(decoder.capacity(), 10_104, "the frame and one chunk");
        let frame = decoder.next_frame().expect("valid").expect("whole");
        assert_eq!(frame, payload);
        assert_eq!(decoder.capacity(), 0, "released");
    }
}
