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

/// The default for the most bytes a [`FrameDecoder`] asks for in one read.
pub const READ_CHUNK_BYTES_DEFAULT: usize = 64 * 1024;

/// The largest read chunk a [`FrameDecoder`] takes.
pub const READ_CHUNK_BYTES_MAX: usize = 16 * 1024 * 1024;

/// An allocation a decoder keeps while it holds less than half of it: below this, it is not
/// worth a copy to shrink.
const SHRINK_FLOOR_BYTES: usize = 4096;

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

/// What [`FrameDecoder::read_frame_from`] or [`FrameDecoder::read_once_from`] stopped on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the status says whether to read again, wait, or drop the connection"]
pub enum ReadStatus {
    /// The source has nothing more for now (`WouldBlock`): wait for the next readiness event.
    WouldBlock,
    /// The buffer holds at least a whole frame (or a header that [`FrameDecoder::next_frame`]
    /// refuses): drain it, then read again, since the source may hold more bytes (mio's
    /// readiness is edge-triggered).
    BufferFull,
    /// One read brought bytes but no whole frame yet ([`FrameDecoder::read_once_from`] only):
    /// read again, since the source may hold more.
    More,
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
        self.encode_parts(&[payload], out)
    }

    /// Appends one frame whose payload is `parts`, one after the other, to `out`. Costs one
    /// copy of the parts.
    ///
    /// Fails like [`encode`](Self::encode) if the parts together exceed `frame_size_max`.
    pub fn encode_parts(&self, parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let len = parts.iter().map(|p| p.len()).sum();
        let header = self.header(len)?;
        out.reserve(FRAME_HEADER_BYTES + len);
        out.extend_from_slice(&header);
        for part in parts {
            out.extend_from_slice(part);
        }
        Ok(())
    }
}

/// Decodes frames incrementally from bytes as they come off a non-blocking socket.
///
/// Bytes go in with [`read_once_from`](Self::read_once_from) (one read from a source),
/// [`read_frame_from`](Self::read_frame_from) (reads until a whole frame is in) or
/// [`feed`](Self::feed); whole frames come out of [`next_frame`](Self::next_frame) as [`Bytes`]
/// that share the decoder's allocation (no copy). Reads go through the caller's scratch buffer,
/// which one owner of many decoders shares: a decoder owns no read buffer of its own.
///
/// Memory is sized by need and bounded. The decoder holds exactly the bytes it received and
/// has not handed out, in an allocation of that size, and lets go of its allocation once it
/// holds nothing (a new or idle decoder holds no allocation at all). A frame larger than one
/// read chunk gets an allocation of exactly its size once its header was received (its
/// *reservation*), and reads stop at its end, so it is copied once and nothing is allocated
/// beyond it; [`capacity_after_read_max`](Self::capacity_after_read_max) says beforehand how
/// large the allocation may grow with the next read, for callers that keep a budget. The
/// decoder never holds more than [`buffer_bytes_max`](Self::buffer_bytes_max) =
/// `frame_size_max` + 4 + one read chunk, and a header is checked against `frame_size_max`
/// before any allocation is sized from it. Frames handed out keep their allocation alive until
/// they are dropped.
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

    /// Like [`new`](Self::new), reading at most `read_chunk_bytes` bytes at a time (and never
    /// more than one largest frame), taken between 1 and [`READ_CHUNK_BYTES_MAX`].
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

    /// The most bytes the decoder ever holds or allocates: `frame_size_max` + 4 + one read
    /// chunk (a read chunk is never larger than a largest frame).
    pub fn buffer_bytes_max(&self) -> usize {
        self.frame_bytes_max().saturating_add(self.chunk())
    }

    /// The bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The size of the allocation the buffer holds, at most
    /// [`buffer_bytes_max`](Self::buffer_bytes_max); 0 when it holds nothing. Frames handed
    /// out may share it.
    pub fn capacity(&self) -> usize {
        self.allocation_bytes
    }

    /// The most [`capacity`](Self::capacity) can be after one more read through
    /// [`read_once_from`](Self::read_once_from), or a [`feed`](Self::feed) of at most one read
    /// chunk: the reservation of a large frame whose header is in, or what is held plus one
    /// chunk. A caller that keeps a budget checks it before reading. Costs nothing.
    pub fn capacity_after_read_max(&self) -> usize {
        let after = match self.large_pending() {
            Some(total) => total,
            None => self.buf.len().saturating_add(self.chunk()),
        };
        after.max(self.allocation_bytes)
    }

    /// Reads from `src` until it returns `WouldBlock`, reaches its end, or the buffer holds one
    /// whole frame (or a header that [`next_frame`](Self::next_frame) refuses), returning
    /// [`ReadStatus::BufferFull`]; `Interrupted` reads are retried. Each read goes through
    /// `scratch` (at most one read chunk of it). A caller that takes a bounded number of frames
    /// per turn thus leaves the rest in `src` (the kernel's socket buffer) rather than here:
    /// beyond the frame, the buffer holds at most what the last read brought, one read chunk.
    ///
    /// Fails with the first other I/O error of `src`, or [`io::ErrorKind::InvalidInput`] for an
    /// empty `scratch`. Never fails on the bytes' content: that is for
    /// [`next_frame`](Self::next_frame) to judge.
    pub fn read_frame_from(
        &mut self,
        src: &mut impl Read,
        scratch: &mut [u8],
    ) -> io::Result<ReadStatus> {
        loop {
            if self.holds_frame() {
                return Ok(ReadStatus::BufferFull);
            }
            match self.read_chunk(src, scratch)? {
                None => return Ok(ReadStatus::WouldBlock),
                Some(0) => return Ok(ReadStatus::Closed),
                Some(_) => {}
            }
        }
    }

    /// One read from `src` (none if the buffer already holds a whole frame): at most one read
    /// chunk, and never past the end of a large frame in progress, so that the allocation
    /// stays within [`capacity_after_read_max`](Self::capacity_after_read_max) as it was
    /// before the call. Returns [`ReadStatus::More`] when the read brought bytes but no whole
    /// frame.
    ///
    /// Fails like [`read_frame_from`](Self::read_frame_from).
    pub fn read_once_from(
        &mut self,
        src: &mut impl Read,
        scratch: &mut [u8],
    ) -> io::Result<ReadStatus> {
        if self.holds_frame() {
            return Ok(ReadStatus::BufferFull);
        }
        Ok(match self.read_chunk(src, scratch)? {
            None => ReadStatus::WouldBlock,
            Some(0) => ReadStatus::Closed,
            Some(_) if self.holds_frame() => ReadStatus::BufferFull,
            Some(_) => ReadStatus::More,
        })
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

    /// The payload of the next frame if it is whole in the buffer, without taking it: what
    /// [`next_frame`](Self::next_frame) would return. Costs nothing.
    pub fn peek_frame(&self) -> Option<&[u8]> {
        let len = self.next_frame_len()?;
        Some(&self.buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len])
    }

    /// Appends as much of `bytes` as the buffer bound allows, stopping at the end of a large
    /// frame in progress, and returns how many it took: all of them if `bytes` fits in
    /// `buffer_bytes_max() - buffered()` and no large frame is in progress. Call
    /// [`next_frame`](Self::next_frame) until it returns `None`, then feed the rest. Costs one
    /// copy of what it takes; allocates exactly what it holds, or a large frame's reservation
    /// if its header was in before the call.
    #[must_use = "bytes beyond the returned count were not taken"]
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.room());
        self.make_room(taken);
        self.buf.extend_from_slice(&bytes[..taken]);
        taken
    }

    /// The next whole frame's payload, or `None` if the buffer holds only part of one (wait for
    /// more bytes). Costs no copy. Once the buffer holds nothing, it lets go of its allocation;
    /// while it holds only part of a frame, of an allocation much larger than that part.
    ///
    /// Fails with [`FrameError::TooLarge`] if the next header announces more than
    /// `frame_size_max` bytes; the connection must then be dropped, and every later call fails
    /// the same way.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.pending_len()? else {
            self.settle();
            return Ok(None);
        };
        if self.buf.len() < FRAME_HEADER_BYTES + len {
            self.settle();
            return Ok(None);
        }
        self.buf.advance(FRAME_HEADER_BYTES);
        let frame = self.buf.split_to(len).freeze();
        if self.buf.is_empty() {
            self.release();
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

    /// One read from `src` through `scratch` (`Interrupted` retried), fed to the buffer:
    /// `None` on `WouldBlock`, else the bytes read (0 at the end of the stream).
    fn read_chunk(&mut self, src: &mut impl Read, scratch: &mut [u8]) -> io::Result<Option<usize>> {
        let limit = self.room().min(self.chunk()).min(scratch.len());
        if limit == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty scratch buffer, or a full decoder",
            ));
        }
        loop {
            match src.read(&mut scratch[..limit]) {
                Ok(read) => {
                    let read = read.min(limit);
                    let taken = self.feed(&scratch[..read]);
                    debug_assert_eq!(taken, read, "a read never passes the room it was given");
                    return Ok(Some(read));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One read's most: the read chunk, but never more than a largest frame.
    fn chunk(&self) -> usize {
        self.read_chunk_bytes.min(self.frame_bytes_max())
    }

    /// How many bytes the next feed may take: up to the end of a large frame in progress, else
    /// up to the bound.
    fn room(&self) -> usize {
        match self.large_pending() {
            Some(total) => total - self.buf.len(),
            None => self.buffer_bytes_max().saturating_sub(self.buf.len()),
        }
    }

    /// The whole size (header and payload) of the next frame when its header is in, it is
    /// larger than one read chunk, and it is not whole yet.
    fn large_pending(&self) -> Option<usize> {
        match self.pending_len() {
            Ok(Some(len)) => {
                let total = FRAME_HEADER_BYTES + len;
                (total > self.chunk() && self.buf.len() < total).then_some(total)
            }
            Ok(None) | Err(_) => None,
        }
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
    /// the bound). Reuses the allocation when it can; otherwise allocates exactly what the
    /// buffer will hold, or the whole of a large frame whose header is already in (so that it
    /// is copied once), and never more than the bound.
    fn make_room(&mut self, additional: usize) {
        if additional == 0 || self.buf.try_reclaim(additional) {
            return;
        }
        let needed = self.buf.len() + additional;
        let target = self
            .large_pending()
            .map_or(needed, |total| total.max(needed));
        let mut fresh = BytesMut::with_capacity(target);
        fresh.extend_from_slice(&self.buf);
        self.allocation_bytes = fresh.capacity();
        self.buf = fresh;
    }

    /// After the whole frames were taken: an allocation much larger than what the buffer needs
    /// (what it holds, or a large frame's reservation) is replaced by one of exactly its bytes.
    fn settle(&mut self) {
        if self.buf.is_empty() {
            self.release();
            return;
        }
        let needed = self.large_pending().unwrap_or(self.buf.len());
        if self.allocation_bytes > SHRINK_FLOOR_BYTES.max(needed.saturating_mul(2)) {
            let fresh = BytesMut::from(&self.buf[..]);
            self.allocation_bytes = fresh.capacity();
            self.buf = fresh;
        }
    }

    /// Lets go of the allocation (frames handed out keep it alive until dropped).
    fn release(&mut self) {
        if self.allocation_bytes > 0 {
            self.buf = BytesMut::new();
            self.allocation_bytes = 0;
        }
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
        // Once the header is refused, reading reads no further.
        let mut source = Script(vec![Ok(vec![0; 1 << 20])]);
        let status = decoder
            .read_frame_from(&mut source, &mut [0; 256])
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
    fn read_frame_from_reads_until_would_block_and_retries_interrupted() {
        let bytes = encoded(100, &[b"one", b"two"]);
        let mut source = Script(vec![
            Ok(bytes[..5].to_vec()),
            Err(io::ErrorKind::Interrupted.into()),
            Ok(bytes[5..].to_vec()),
        ]);
        let mut decoder = FrameDecoder::with_read_chunk(100, 3);
        let mut scratch = [0; 64];
        let status = decoder
            .read_frame_from(&mut source, &mut scratch)
            .expect("the script does not fail");
        assert_eq!(status, ReadStatus::BufferFull);
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"one"))));
        let status = decoder
            .read_frame_from(&mut source, &mut scratch)
            .expect("the script does not fail");
        assert_eq!(status, ReadStatus::BufferFull);
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"two"))));
        let status = decoder.read_frame_from(&mut source, &mut scratch);
        assert_eq!(status.expect("no failure"), ReadStatus::WouldBlock);
        assert!(source.0.is_empty(), "everything was read");
    }

    #[test]
    fn read_frame_from_stops_at_the_first_whole_frame() {
        let bytes = encoded(100, &[b"one", b"two", b"three"]);
        let mut source = Script(vec![Ok(bytes.clone())]);
        let mut decoder = FrameDecoder::with_read_chunk(100, 5);
        let mut scratch = [0; 64];
        assert_eq!(decoder.next_frame_len(), None, "nothing buffered");
        let status = decoder
            .read_frame_from(&mut source, &mut scratch)
            .expect("no failure");
        assert_eq!(status, ReadStatus::BufferFull);
        assert_eq!(
            decoder.buffered(),
            7,
            "a chunk of 5, then the 2 bytes left of a frame larger than a chunk"
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
        assert_eq!(left, bytes.len() - 7, "the rest stays in the source");
        assert_eq!(
            decoder
                .read_frame_from(&mut source, &mut scratch)
                .expect("no failure"),
            ReadStatus::BufferFull
        );
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"two"))));
        assert_eq!(
            decoder
                .read_frame_from(&mut source, &mut scratch)
                .expect("no failure"),
            ReadStatus::BufferFull
        );
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"three"))));
        assert_eq!(
            decoder
                .read_frame_from(&mut source, &mut scratch)
                .expect("no failure"),
            ReadStatus::WouldBlock
        );
    }

    #[test]
    fn reading_reports_end_of_stream_and_truncation() {
        let mut source = Script(vec![Ok(vec![5, 0, 0, 0, 1]), Ok(Vec::new())]);
        let mut decoder = FrameDecoder::new(100);
        let status = decoder
            .read_frame_from(&mut source, &mut [0; 64])
            .expect("the script does not fail");
        assert_eq!(status, ReadStatus::Closed);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: 5 }));
    }

    #[test]
    fn reading_passes_on_other_errors_and_refuses_an_empty_scratch() {
        let mut source = Script(vec![Err(io::ErrorKind::ConnectionReset.into())]);
        let mut decoder = FrameDecoder::new(100);
        let error = decoder
            .read_frame_from(&mut source, &mut [0; 64])
            .expect_err("the script fails");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        let error = decoder
            .read_once_from(&mut source, &mut [])
            .expect_err("no room to read into");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn one_read_at_a_time_brings_at_most_a_chunk() {
        let bytes = encoded(10, &[&b"0123456789"[..]; 50]);
        let mut source = Script(vec![Ok(bytes)]);
        let mut decoder = FrameDecoder::with_read_chunk(10, 8);
        let mut scratch = [0; 64];
        let mut frames = Vec::new();
        loop {
            let before = decoder.capacity_after_read_max();
            let status = decoder
                .read_once_from(&mut source, &mut scratch)
                .expect("the script does not fail");
            assert!(decoder.capacity() <= before, "within what was announced");
            assert!(decoder.buffered() <= decoder.buffer_bytes_max());
            frames.extend(drain(&mut decoder));
            match status {
                ReadStatus::WouldBlock => break,
                ReadStatus::BufferFull | ReadStatus::More => {}
                ReadStatus::Closed => panic!("the script never closes"),
            }
        }
        assert_eq!(frames, vec![Bytes::from_static(b"0123456789"); 50]);
    }

    /// A large frame gets one allocation of exactly its size once its header is in, reads stop
    /// at its end, and the allocation goes with the frame once it is taken.
    #[test]
    fn a_large_frame_is_reserved_once_and_released_when_drained() {
        let payload = vec![9; 10_000];
        let mut bytes = encoded(10_000, &[&payload]);
        bytes.extend_from_slice(&encoded(10_000, &[b"next"]));
        let mut source = Script(bytes.chunks(100).map(|c| Ok(c.to_vec())).collect());
        let mut decoder = FrameDecoder::with_read_chunk(10_000, 100);
        let mut scratch = [0; 100];
        let status = decoder.read_once_from(&mut source, &mut scratch);
        assert_eq!(status.expect("no failure"), ReadStatus::More);
        assert_eq!(
            decoder.capacity(),
            100,
            "exactly what came, before the header was known"
        );
        assert_eq!(
            decoder.capacity_after_read_max(),
            10_004,
            "the reservation to come"
        );
        let status = decoder.read_frame_from(&mut source, &mut scratch);
        assert_eq!(status.expect("no failure"), ReadStatus::BufferFull);
        assert_eq!(
            decoder.capacity(),
            10_004,
            "the frame, and nothing beyond it"
        );
        assert_eq!(decoder.buffered(), 10_004);
        let frame = decoder.next_frame().expect("valid").expect("whole");
        assert_eq!(frame, payload);
        assert_eq!(decoder.capacity(), 0, "released");
        let status = decoder.read_frame_from(&mut source, &mut scratch);
        assert_eq!(status.expect("no failure"), ReadStatus::BufferFull);
        assert_eq!(decoder.next_frame(), Ok(Some(Bytes::from_static(b"next"))));
    }

    /// A trickle of bytes is held in an allocation of its size; what a burst left behind is
    /// shrunk once the frames are taken.
    #[test]
    fn buffers_are_sized_by_need_and_shrink_back() {
        let mut decoder = FrameDecoder::new(1 << 20);
        assert_eq!(decoder.feed(&[200, 0]), 2);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert!(decoder.capacity() < 64, "{}", decoder.capacity());
        let mut burst = encoded(1 << 20, &[&[1; 30_000][..], &[2; 30_000][..]]);
        burst.extend_from_slice(&[10, 0, 0, 0, 1]);
        let mut decoder = FrameDecoder::new(1 << 20);
        assert_eq!(decoder.feed(&burst), burst.len());
        assert!(decoder.capacity() >= burst.len());
        assert_eq!(drain(&mut decoder).len(), 2);
        assert_eq!(decoder.buffered(), 5);
        assert_eq!(decoder.capacity(), 5, "shrunk to the partial frame");
    }
}
