//! Framing, and the encrypted record layer under it, on payloads from a heartbeat's size to a
//! megabyte (an append of 1024 entries of 1 kB).
//!
//! Run with `cargo bench -p syncobj-net --bench frame`. Groups:
//!
//! - `frame_encode`: [`FrameEncoder::encode`] of one payload into a reused buffer;
//! - `frame_decode`: [`FrameDecoder::read_frame_from`] of one framed payload from a byte
//!   slice (as from a socket, through a 64 KiB scratch buffer), then
//!   [`FrameDecoder::next_frame`];
//! - `secure_seal` and `secure_unseal`: [`Session::seal`] of one framed payload into records,
//!   and [`Session::unseal`] of those records, on a session set up with the password handshake
//!   beforehand. The two sessions must see the records in order, so both benchmarks seal and
//!   unseal every frame and each times its own half.
//!
//! The throughput is in payload bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, measurement::WallTime};
use syncobj_net::frame::{FrameDecoder, FrameEncoder, READ_CHUNK_BYTES_DEFAULT, ReadStatus};
use syncobj_net::secure::{ClusterKey, Initiator, Responder, Session};

/// The largest frame the codecs accept here: above every payload below.
const FRAME_SIZE_MAX: u32 = 16 << 20;

const PAYLOADS: [(usize, &str); 4] = [
    (64, "64B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];

fn quick_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameEncoder::new(FRAME_SIZE_MAX)
        .encode(payload, &mut out)
        .expect("the payload fits a frame");
    out
}

fn bench_frames(c: &mut Criterion) {
    let encoder = FrameEncoder::new(FRAME_SIZE_MAX);
    let mut group = quick_group(c, "frame_encode");
    for (len, label) in PAYLOADS {
        let payload = payload(len);
        let mut out = Vec::with_capacity(len + 4);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(label, |b| {
            b.iter(|| {
                out.clear();
                encoder
                    .encode(black_box(&payload), &mut out)
                    .expect("the payload fits a frame");
                black_box(&out);
            });
        });
    }
    group.finish();

    let mut group = quick_group(c, "frame_decode");
    let mut scratch = vec![0; READ_CHUNK_BYTES_DEFAULT];
    for (len, label) in PAYLOADS {
        let wire = framed(&payload(len));
        let mut decoder = FrameDecoder::new(FRAME_SIZE_MAX);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(label, |b| {
            b.iter(|| {
                let mut source = black_box(&wire[..]);
                let status = decoder
                    .read_frame_from(&mut source, &mut scratch)
                    .expect("a slice reads");
                assert_eq!(status, ReadStatus::BufferFull);
                let frame = decoder
                    .next_frame()
                    .expect("the frame is within the limit")
                    .expect("the frame is whole");
                assert_eq!(frame.len(), len);
                frame
            });
        });
    }
    group.finish();
}

/// Two ends of an established encrypted session.
fn sessions(key: &ClusterKey) -> (Session, Session) {
    let mut first = Vec::new();
    let initiator = Initiator::start(key, b"hello", &mut first).expect("the handshake starts");
    let (responder, _) = Responder::accept(key, &first).expect("the hello authenticates");
    let mut second = Vec::new();
    let acceptor = responder
        .reply(b"welcome", &mut second)
        .expect("the reply is written");
    let (dialler, _) = initiator.finish(&second).expect("the reply authenticates");
    (dialler, acceptor)
}

/// Seals and unseals `iterations` copies of `wire`, timing only the sealing (`seal`) or only
/// the unsealing.
fn seal_and_unseal(
    ends: &mut (Session, Session),
    wire: &[u8],
    iterations: u64,
    time_seal: bool,
) -> Duration {
    let (dialler, acceptor) = ends;
    let mut sealed = Vec::with_capacity(wire.len() + wire.len() / 1000 + 64);
    let mut plain = Vec::with_capacity(wire.len());
    let mut measured = Duration::ZERO;
    for _ in 0..iterations {
        sealed.clear();
        plain.clear();
        let start = Instant::now();
        dialler.seal(wire, &mut sealed).expect("the frame seals");
        let sealed_at = Instant::now();
        acceptor
            .unseal(&sealed, &mut plain)
            .expect("the records open");
        let unsealed_at = Instant::now();
        measured += if time_seal {
            sealed_at - start
        } else {
            unsealed_at - sealed_at
        };
        assert_eq!(plain.len(), wire.len());
    }
    measured
}

fn bench_secure(c: &mut Criterion) {
    // Argon2id: about a second, once.
    let key = ClusterKey::derive("benchpass").expect("a password derives a key");
    for (name, time_seal) in [("secure_seal", true), ("secure_unseal", false)] {
        let mut group = quick_group(c, name);
        for (len, label) in PAYLOADS {
            let wire = framed(&payload(len));
            let mut ends = sessions(&key);
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::from_parameter(label), &wire, |b, wire| {
                b.iter_custom(|iterations| seal_and_unseal(&mut ends, wire, iterations, time_seal));
            });
        }
        group.finish();
    }
}

criterion::criterion_group!(benches, bench_frames, bench_secure);
criterion::criterion_main!(benches);
