//! Two lanes on one connection, so that a heartbeat or an acknowledgement never waits behind a
//! multi-megabyte message.
//!
//! Control messages (small: votes, acknowledgements, heartbeats) are framed as soon as they are
//! sent. Bulk messages keep their order among themselves; one no larger than a fragment is
//! framed at once too when no bulk message waits before it, and any other waits in a queue and
//! goes out one fragment at a time, whenever the bytes ready to write fall below a fragment. A
//! control message thus waits behind at most about one fragment of bulk data in this process
//! (plus what the kernel holds), and the receiver takes it in before the rest of a large
//! message.
//!
//! # Format (protocol versions 2 and later)
//!
//! On an open link, every frame's payload starts with one byte saying what it carries; an empty
//! payload is a keep-alive.
//!
//! | first byte | then |
//! |---|---|
//! | `0x00` whole | one whole message (at most [`FRAGMENT_BYTES`]) |
//! | `0x01` first | the message's length, `u32` little-endian, then its first bytes |
//! | `0x02` next  | the message's next bytes; the message is whole once its length came |
//!
//! A message longer than [`FRAGMENT_BYTES`] is sent as a `first` fragment and `next` fragments
//! of at most [`FRAGMENT_BYTES`] each, with whole messages (of either lane) between them; a
//! link carries at most one fragmented message at a time. The receiver refuses a frame longer
//! than [`LINK_FRAME_MAX`], a `next` without a `first`, a `first` while a message is in
//! progress, a length above its limit or not above [`FRAGMENT_BYTES`], and bytes past the
//! announced length: each drops the connection.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::frame::{FRAME_HEADER_BYTES, READ_CHUNK_BYTES_DEFAULT};

/// The most message bytes one frame of an open TCP link carries; longer messages go in
/// fragments of this size (the last one shorter). A fragment's frame (header, prefix and
/// data) is 64 KiB: one read takes it whole.
pub const FRAGMENT_BYTES: usize =
    READ_CHUNK_BYTES_DEFAULT - FRAME_HEADER_BYTES - FIRST_PREFIX_BYTES;

/// The kind byte and the length of a `first` fragment.
const FIRST_PREFIX_BYTES: usize = 5;

/// The largest frame payload on an open link: a fragment and its prefix.
pub(crate) const LINK_FRAME_MAX: u32 = (FRAGMENT_BYTES + FIRST_PREFIX_BYTES) as u32;

// A fragment's frame is one read chunk: the decoder never reserves for a frame larger than a
// read, and `link_bytes_max` counts on it.
const _: () = assert!(LINK_FRAME_MAX as usize + FRAME_HEADER_BYTES == READ_CHUNK_BYTES_DEFAULT);

const WHOLE: u8 = 0x00;
const FIRST: u8 = 0x01;
const NEXT: u8 = 0x02;

/// The lane a message travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Small messages that may overtake bulk ones.
    Control,
    /// Messages kept in order, fragmented when large.
    Bulk,
}

/// One frame to write: its prefix (kind byte, and the length of a `first`) and its data.
pub(crate) struct Piece<'a> {
    prefix: ([u8; FIRST_PREFIX_BYTES], usize),
    pub(crate) data: &'a [u8],
}

impl Piece<'_> {
    /// The prefix bytes.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix.0[..self.prefix.1]
    }
}

/// A whole message as a frame's parts.
pub(crate) fn whole(message: &[u8]) -> Piece<'_> {
    Piece {
        prefix: ([WHOLE, 0, 0, 0, 0], 1),
        data: message,
    }
}

/// Bulk messages waiting to be framed, the front one possibly in part.
#[derive(Debug, Default)]
pub(crate) struct BulkQueue {
    messages: VecDeque<Bytes>,
    /// Bytes of the front message already framed.
    framed: usize,
    /// Bytes of every waiting message not framed yet.
    waiting: usize,
}

impl BulkQueue {
    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Bytes not framed yet.
    pub(crate) fn waiting_bytes(&self) -> usize {
        self.waiting
    }

    /// Queues `message` behind the others (no copy).
    pub(crate) fn push(&mut self, message: Bytes) {
        self.waiting += message.len();
        self.messages.push_back(message);
    }

    /// The next frame to write, if any: a whole message if it is small and not started, else
    /// the next fragment of the front message. Call [`advance`](Self::advance) once it is
    /// framed.
    pub(crate) fn next_piece(&self) -> Option<Piece<'_>> {
        let front = self.messages.front()?;
        let rest = &front[self.framed..];
        let data = &rest[..rest.len().min(FRAGMENT_BYTES)];
        let prefix = match (self.framed, front.len() <= FRAGMENT_BYTES) {
            (0, true) => return Some(whole(front)),
            (0, false) => {
                let len = u32::try_from(front.len()).expect("messages are checked to fit a u32");
                let [a, b, c, d] = len.to_le_bytes();
                ([FIRST, a, b, c, d], FIRST_PREFIX_BYTES)
            }
            _ => ([NEXT, 0, 0, 0, 0], 1),
        };
        Some(Piece { prefix, data })
    }

    /// Records that the piece [`next_piece`](Self::next_piece) gave, of `len` data bytes, was
    /// framed.
    pub(crate) fn advance(&mut self, len: usize) {
        self.framed += len;
        self.waiting -= len;
        if self
            .messages
            .front()
            .is_some_and(|m| self.framed == m.len())
        {
            self.messages.pop_front();
            self.framed = 0;
        }
    }
}

/// Why a frame on an open link was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LaneError {
    /// The kind byte is none of the known ones.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A `first` fragment too short to hold the length.
    #[error("a first fragment of {0} bytes holds no length")]
    ShortFirst(usize),
    /// A `first` fragment while another message is in progress.
    #[error("a fragmented message began inside another")]
    Nested,
    /// A `next` fragment without a message in progress.
    #[error("a fragment without a first one")]
    Orphan,
    /// A message over the link's limit, or a fragmented one small enough to go whole.
    #[error(
        "a message of {len} bytes (the limit is {max}; fragmented ones exceed {FRAGMENT_BYTES})"
    )]
    BadLength {
        /// The length announced.
        len: usize,
        /// The link's limit on messages.
        max: usize,
    },
    /// More bytes than the announced length.
    #[error("fragments carry more than the {0} bytes announced")]
    Overrun(usize),
}

/// Puts fragmented messages back together.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    /// The message in progress, allocated at its whole length when its first fragment came.
    buf: Option<BytesMut>,
}

impl Assembly {
    /// The bytes held: the allocation of the message in progress.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.as_ref().map_or(0, BytesMut::capacity)
    }

    /// Whether a message is in progress.
    pub(crate) fn in_progress(&self) -> bool {
        self.buf.is_some()
    }

    /// The allocation taking `frame` would make: the announced length of a `first` fragment,
    /// else nothing. Looks at the first bytes only.
    pub(crate) fn reservation(frame: &[u8]) -> usize {
        match frame {
            [FIRST, a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]) as usize,
            _ => 0,
        }
    }

    /// Takes one frame of an open link: a whole message, or the last fragment of one, is
    /// returned; a keep-alive or a fragment before the last returns `None`. Messages are at
    /// most `message_max` bytes.
    pub(crate) fn take(
        &mut self,
        frame: Bytes,
        message_max: usize,
    ) -> Result<Option<Bytes>, LaneError> {
        let Some(&kind) = frame.first() else {
            return Ok(None);
        };
        match kind {
            WHOLE if frame.len() - 1 > message_max => Err(LaneError::BadLength {
                len: frame.len() - 1,
                max: message_max,
            }),
            WHOLE => Ok(Some(frame.slice(1..))),
            FIRST => {
                if self.buf.is_some() {
                    return Err(LaneError::Nested);
                }
                if frame.len() < FIRST_PREFIX_BYTES {
                    return Err(LaneError::ShortFirst(frame.len()));
                }
                let len = Self::reservation(&frame);
                if len > message_max || len <= FRAGMENT_BYTES {
                    return Err(LaneError::BadLength {
                        len,
                        max: message_max,
                    });
                }
                self.buf = Some(BytesMut::with_capacity(len));
                self.extend(&frame[FIRST_PREFIX_BYTES..], len)
            }
            NEXT => {
                let Some(buf) = &self.buf else {
                    return Err(LaneError::Orphan);
                };
                let len = buf.capacity();
                self.extend(&frame[1..], len)
            }
            other => Err(LaneError::UnknownKind(other)),
        }
    }

    /// Appends `data` to the message in progress of `len` bytes; returns it once whole.
    fn extend(&mut self, data: &[u8], len: usize) -> Result<Option<Bytes>, LaneError> {
        let buf = self.buf.as_mut().expect("a message is in progress");
        if buf.len() + data.len() > len {
            return Err(LaneError::Overrun(len));
        }
        buf.extend_from_slice(data);
        if buf.len() < len {
            return Ok(None);
        }
        Ok(self.buf.take().map(BytesMut::freeze))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{Assembly, BulkQueue, FRAGMENT_BYTES, LaneError};

    /// Frames every piece of the queue as the connection would: prefix, then data.
    fn frames(queue: &mut BulkQueue) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(piece) = queue.next_piece() {
            let mut frame = piece.prefix().to_vec();
            frame.extend_from_slice(piece.data);
            let len = piece.data.len();
            out.push(Bytes::from(frame));
            queue.advance(len);
        }
        out
    }

    /// A large message goes in fragments of at most a fragment's size and comes back whole;
    /// a small one goes whole; order is kept.
    #[test]
    fn fragments_round_trip_in_order() {
        let large: Bytes = (0..3 * FRAGMENT_BYTES + 17).map(|i| i as u8).collect();
        let small = Bytes::from_static(b"small");
        let mut queue = BulkQueue::default();
        queue.push(large.clone());
        queue.push(small.clone());
        assert_eq!(queue.waiting_bytes(), large.len() + small.len());
        let frames = frames(&mut queue);
        assert_eq!(frames.len(), 5, "four fragments, then the small message");
        assert!(
            frames
                .iter()
                .all(|f| f.len() <= super::LINK_FRAME_MAX as usize)
        );
        assert_eq!(queue.waiting_bytes(), 0);
        let mut assembly = Assembly::default();
        let mut messages = Vec::new();
        for frame in frames {
            if let Some(message) = assembly.take(frame, 1 << 20).expect("valid frames") {
                messages.push(message);
            }
            assert!(assembly.capacity() <= large.len());
        }
        assert_eq!(messages, [large, small]);
        assert_eq!(assembly.capacity(), 0, "nothing held once whole");
    }

    /// Every malformed sequence is refused with its reason.
    #[test]
    fn malformed_fragments_are_refused() {
        let first = |len: u32, data: &[u8]| {
            let mut frame = vec![0x01];
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend_from_slice(data);
            Bytes::from(frame)
        };
        let big = (FRAGMENT_BYTES + 1) as u32;
        let max = 1 << 20;
        let cases: Vec<(Vec<Bytes>, LaneError)> = vec![
            (vec![Bytes::from_static(&[0x07])], LaneError::UnknownKind(7)),
            (vec![Bytes::from_static(&[0x02, 1])], LaneError::Orphan),
            (
                vec![Bytes::from_static(&[0x01, 1, 2])],
                LaneError::ShortFirst(3),
            ),
            (vec![first(10, b"x")], LaneError::BadLength { len: 10, max }),
            (
                vec![first(max as u32 + 1, b"x")],
                LaneError::BadLength { len: max + 1, max },
            ),
            (vec![first(big, b"x"), first(big, b"x")], LaneError::Nested),
            (
                vec![
                    first(big, &vec![0; FRAGMENT_BYTES]),
                    Bytes::from_static(&[0x02, 1, 2]),
                ],
                LaneError::Overrun(big as usize),
            ),
        ];
        for (frames, expected) in cases {
            let mut assembly = Assembly::default();
            let outcome = frames
                .into_iter()
                .try_for_each(|f| assembly.take(f, max).map(drop));
            assert_eq!(outcome, Err(expected));
        }
    }

    /// An empty frame is a keep-alive: nothing comes of it, even mid-message.
    #[test]
    fn keep_alives_pass_through() {
        let mut assembly = Assembly::default();
        assert_eq!(assembly.take(Bytes::new(), 10), Ok(None));
        assert_eq!(
            assembly.take(Bytes::from_static(&[0x00, 7]), 10),
            Ok(Some(Bytes::from_static(&[7])))
        );
    }
}
