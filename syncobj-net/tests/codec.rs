//! Property tests of the wire codecs: frames survive any split of the stream, any input leaves
//! the frame decoder bounded and in agreement with a whole-buffer model, and handshake messages
//! round-trip while garbage never makes their decoders panic.

use std::io::{self, Read};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use syncobj_net::frame::{FrameDecoder, FrameEncoder, FrameError, ReadStatus};
use syncobj_net::handshake::{
    ADDRESS_BYTES_MAX, ClusterId, HELLO_BYTES_MAX, Hello, HelloReply, MAGIC, PROTOCOL_VERSION,
    Peer, REPLY_BYTES_MAX, RefuseReason,
};

const FRAME_SIZE_MAX: u32 = 40;

fn encode_all(frame_size_max: u32, payloads: &[Vec<u8>]) -> Vec<u8> {
    let encoder = FrameEncoder::new(frame_size_max);
    let mut out = Vec::new();
    for payload in payloads {
        encoder
            .encode(payload, &mut out)
            .expect("payloads are generated within the limit");
    }
    out
}

/// Feeds `bytes` as one chunk (taking as many turns as the decoder's bound requires) and
/// drains the frames after each turn, checking the bounds as it goes.
fn feed_chunk(
    decoder: &mut FrameDecoder,
    mut bytes: &[u8],
    frames: &mut Vec<Bytes>,
) -> Result<(), FrameError> {
    loop {
        let taken = decoder.feed(bytes);
        bytes = &bytes[taken..];
        assert!(decoder.buffered() <= decoder.buffer_bytes_max());
        assert!(decoder.capacity() <= decoder.buffer_bytes_max());
        while let Some(frame) = decoder.next_frame()? {
            assert!(frame.len() <= decoder.frame_size_max() as usize);
            frames.push(frame);
        }
        let partial_frame_max = decoder.frame_size_max() as usize + 4;
        assert!(
            decoder.buffered() < partial_frame_max,
            "a whole frame was left"
        );
        if bytes.is_empty() {
            return Ok(());
        }
    }
}

/// Feeds `stream` cut into chunks of the given sizes (cycled), as a socket would deliver it.
fn feed_in_chunks(
    decoder: &mut FrameDecoder,
    stream: &[u8],
    sizes: &[usize],
) -> (Vec<Bytes>, Result<(), FrameError>) {
    let mut frames = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        if let Err(error) = feed_chunk(decoder, chunk, &mut frames) {
            return (frames, Err(error));
        }
    }
    let end = decoder.finish();
    (frames, end)
}

/// The frames of a whole stream, decoded in one pass: what any chunking must agree with.
fn model(stream: &[u8], frame_size_max: u32) -> (Vec<Bytes>, Result<(), FrameError>) {
    let mut frames = Vec::new();
    let mut rest = stream;
    while let Some(header) = rest.first_chunk::<4>() {
        let len = u32::from_le_bytes(*header);
        if len > frame_size_max {
            let max = frame_size_max;
            return (
                frames,
                Err(FrameError::TooLarge {
                    len: len as usize,
                    max,
                }),
            );
        }
        let Some(frame) = rest.get(4..4 + len as usize) else {
            break;
        };
        frames.push(Bytes::copy_from_slice(frame));
        rest = &rest[4 + len as usize..];
    }
    let end = match rest.len() {
        0 => Ok(()),
        buffered => Err(FrameError::Truncated { buffered }),
    };
    (frames, end)
}

/// A non-blocking source: hands out the stream in chunks of the given sizes, with a
/// `WouldBlock` wherever `blocks` says so (never twice in a row), then reports the end of the
/// stream.
struct Socket {
    stream: Vec<u8>,
    sizes: Vec<usize>,
    blocks: Vec<bool>,
    reads: usize,
    blocked: bool,
}

impl Read for Socket {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let block = self.blocks[self.reads % self.blocks.len()] && !self.blocked;
        self.blocked = block;
        if block {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let size = self.sizes[self.reads % self.sizes.len()];
        let n = size.min(out.len()).min(self.stream.len());
        out[..n].copy_from_slice(&self.stream[..n]);
        self.stream.drain(..n);
        Ok(n)
    }
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..=FRAME_SIZE_MAX as usize), 0..6)
}

/// Byte streams that are mostly plausible headers with small lengths, mixed with noise.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        (0u32..24).prop_map(|len| len.to_le_bytes().to_vec()),
        vec(any::<u8>(), 0..12),
    ];
    vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn peer() -> impl Strategy<Value = Peer> {
    let address = "\\PC{1,100}".prop_filter("at most 255 bytes", |address: &String| {
        address.len() <= ADDRESS_BYTES_MAX
    });
    prop_oneof![
        any::<u64>().prop_map(Peer::ReadOnly),
        address.prop_map(Peer::Voter),
        Just(Peer::Admin)
    ]
}

fn reply() -> impl Strategy<Value = HelloReply> {
    prop_oneof![
        Just(HelloReply::Accepted),
        Just(HelloReply::Refused(RefuseReason::UnknownNode)),
        any::<u16>()
            .prop_map(|ours| HelloReply::Refused(RefuseReason::WrongProtocolVersion { ours })),
        Just(HelloReply::Refused(RefuseReason::WrongCluster)),
        Just(HelloReply::Refused(RefuseReason::Malformed)),
        Just(HelloReply::Refused(RefuseReason::PasswordRequired)),
        Just(HelloReply::Refused(RefuseReason::PasswordNotConfigured)),
        Just(HelloReply::Refused(RefuseReason::Busy)),
        Just(HelloReply::Refused(RefuseReason::AdminNotAllowed)),
        Just(HelloReply::Refused(RefuseReason::AdminDisabled)),
    ]
}

/// Decodes `bytes` as a hello and as a reply: neither panics, an error's offset lies within
/// the payload, and whatever decodes re-encodes to exactly `bytes` (the format is canonical).
fn decode_any(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Hello::decode(bytes) {
        Ok(hello) => {
            let mut again = Vec::new();
            hello.encode(&mut again).expect("a decoded hello is valid");
            prop_assert_eq!(&again[..], bytes);
        }
        Err(error) => prop_assert!(error.offset() <= bytes.len(), "{error}"),
    }
    match HelloReply::decode(bytes) {
        Ok(reply) => {
            let mut again = Vec::new();
            reply.encode(&mut again);
            prop_assert_eq!(&again[..], bytes);
        }
        Err(error) => prop_assert!(error.offset() <= bytes.len(), "{error}"),
    }
    Ok(())
}

proptest! {
    #[test]
    fn frames_round_trip_split_at_every_boundary(payloads in payloads(), chunk in 1usize..50) {
        let stream = encode_all(FRAME_SIZE_MAX, &payloads);
        let expected: Vec<Bytes> = payloads.iter().cloned().map(Bytes::from).collect();
        for split in 0..=stream.len() {
            let mut decoder = FrameDecoder::with_read_chunk(FRAME_SIZE_MAX, chunk);
            let mut frames = Vec::new();
            feed_chunk(&mut decoder, &stream[..split], &mut frames).expect("a valid stream");
            feed_chunk(&mut decoder, &stream[split..], &mut frames).expect("a valid stream");
            prop_assert_eq!(&frames, &expected, "split at {}", split);
            prop_assert_eq!(decoder.finish(), Ok(()));
        }
    }

    #[test]
    fn frames_round_trip_in_any_chunks(
        payloads in payloads(),
        sizes in vec(1usize..64, 1..20),
        chunk in 1usize..50,
    ) {
        let stream = encode_all(FRAME_SIZE_MAX, &payloads);
        let mut decoder = FrameDecoder::with_read_chunk(FRAME_SIZE_MAX, chunk);
        let (frames, end) = feed_in_chunks(&mut decoder, &stream, &sizes);
        let expected: Vec<Bytes> = payloads.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(end, Ok(()));
    }

    #[test]
    fn frames_round_trip_through_read_frame_from(
        payloads in payloads(),
        sizes in vec(1usize..64, 1..20),
        blocks in vec(any::<bool>(), 1..8),
        chunk in 1usize..50,
    ) {
        let stream = encode_all(FRAME_SIZE_MAX, &payloads);
        let mut socket = Socket { stream, sizes, blocks, reads: 0, blocked: false };
        let mut decoder = FrameDecoder::with_read_chunk(FRAME_SIZE_MAX, chunk);
        let mut scratch = [0u8; 64];
        let mut frames = Vec::new();
        loop {
            let status = decoder
                .read_frame_from(&mut socket, &mut scratch)
                .expect("the socket does not fail");
            prop_assert!(decoder.buffered() <= decoder.buffer_bytes_max());
            prop_assert!(decoder.capacity() <= decoder.buffer_bytes_max());
            while let Some(frame) = decoder.next_frame().expect("a valid stream") {
                frames.push(frame);
            }
            if status == ReadStatus::Closed {
                break;
            }
        }
        let expected: Vec<Bytes> = payloads.into_iter().map(Bytes::from).collect();
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn garbage_is_decoded_as_a_whole_buffer_would_be(
        stream in garbage(),
        frame_size_max in 0u32..16,
        sizes in vec(1usize..32, 1..10),
        chunk in 1usize..8,
    ) {
        let mut decoder = FrameDecoder::with_read_chunk(frame_size_max, chunk);
        let decoded = feed_in_chunks(&mut decoder, &stream, &sizes);
        prop_assert_eq!(decoded, model(&stream, frame_size_max));
        prop_assert!(decoder.capacity() <= frame_size_max as usize + 4 + chunk);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_decoder(
        stream in vec(any::<u8>(), 0..512),
        frame_size_max in 0u32..64,
        sizes in vec(1usize..128, 1..10),
    ) {
        let mut decoder = FrameDecoder::with_read_chunk(frame_size_max, 16);
        let decoded = feed_in_chunks(&mut decoder, &stream, &sizes);
        prop_assert_eq!(decoded, model(&stream, frame_size_max));
    }

    #[test]
    fn every_hello_round_trips(cluster in any::<[u8; 16]>(), node in peer()) {
        let hello = Hello::new(ClusterId(cluster), node);
        let mut bytes = Vec::new();
        hello.encode(&mut bytes).expect("generated hellos are valid");
        prop_assert!(bytes.len() <= HELLO_BYTES_MAX);
        prop_assert_eq!(Hello::decode(&bytes), Ok(hello));
    }

    #[test]
    fn every_reply_round_trips(reply in reply()) {
        let mut bytes = Vec::new();
        reply.encode(&mut bytes);
        prop_assert!(bytes.len() <= REPLY_BYTES_MAX);
        prop_assert_eq!(HelloReply::decode(&bytes), Ok(reply));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_handshake(bytes in vec(any::<u8>(), 0..300)) {
        decode_any(&bytes)?;
    }

    #[test]
    fn arbitrary_bodies_never_panic_the_handshake(
        kind in 0u8..4,
        body in vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        decode_any(&bytes)?;
    }

    #[test]
    fn mutated_hellos_never_panic(
        cluster in any::<[u8; 16]>(),
        node in peer(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Vec::new();
        Hello::new(ClusterId(cluster), node)
            .encode(&mut bytes)
            .expect("generated hellos are valid");
        let at = at.index(bytes.len());
        bytes[at] = byte;
        decode_any(&bytes)?;
        bytes.truncate(cut.index(bytes.len() + 1));
        decode_any(&bytes)?;
    }
}
