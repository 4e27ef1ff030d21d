//! Encoding and decoding the messages nodes send each other: a Raft `AppendEntries` carrying
//! 1, 64 and 1024 entries of 10 B and of 1 kB, as one frame's payload.
//!
//! Run with `cargo bench -p syncobj-core --bench wire`. The driver's wire type is private to
//! the crate; its Raft variant is the first of its enum and holds the public
//! [`Envelope`], so the `WireMessage` below, with the same name, position and content, encodes
//! to the same bytes through the same `rmp_serde` calls (`to_vec` to encode, `from_slice` to
//! decode). The throughput is in entries.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use syncobj_core::raft::{
    AppendEntries, Entry, EntryKind, Envelope, LogIndex, Message, NodeId, Term,
};

/// The Raft variant of the driver's wire message, first in its enum as there.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
enum WireMessage {
    Raft(Envelope),
}

/// An append from node 1 to node 2 at term 3, carrying `count` commands of `size` bytes each
/// after index 1000 (the log's position changes only the integers' widths).
fn append(count: usize, size: usize) -> WireMessage {
    let first = 1_001u64;
    let entries = (0..count)
        .map(|i| Entry {
            index: LogIndex(first + i as u64),
            term: Term(3),
            kind: EntryKind::Command,
            // Distinct contents, as real commands have; the coder does not care.
            data: Bytes::from(vec![(i % 251) as u8; size]),
        })
        .collect();
    WireMessage::Raft(Envelope {
        from: NodeId(1),
        to: NodeId(2),
        message: Message::AppendEntries(AppendEntries {
            term: Term(3),
            prev_log_index: LogIndex(first - 1),
            prev_log_term: Term(3),
            entries,
            leader_commit: LogIndex(first - 1),
        }),
    })
}

const SIZES: [(usize, &str); 2] = [(10, "10B"), (1000, "1kB")];
const COUNTS: [usize; 3] = [1, 64, 1024];

fn bench_wire(c: &mut Criterion) {
    let mut encode = c.benchmark_group("wire_encode");
    encode
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (size, label) in SIZES {
        for count in COUNTS {
            let message = append(count, size);
            encode.throughput(Throughput::Elements(count as u64));
            encode.bench_with_input(BenchmarkId::new(label, count), &message, |b, message| {
                b.iter(|| {
                    Bytes::from(rmp_serde::to_vec(black_box(message)).expect("messages encode"))
                });
            });
        }
    }
    encode.finish();

    let mut decode = c.benchmark_group("wire_decode");
    decode
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (size, label) in SIZES {
        for count in COUNTS {
            let message = append(count, size);
            let frame = rmp_serde::to_vec(&message).expect("messages encode");
            let decoded: WireMessage = rmp_serde::from_slice(&frame).expect("a frame decodes");
            assert_eq!(decoded, message, "the message survives the round trip");
            decode.throughput(Throughput::Elements(count as u64));
            decode.bench_with_input(BenchmarkId::new(label, count), &frame, |b, frame| {
                b.iter(|| {
                    let message: WireMessage =
                        rmp_serde::from_slice(black_box(frame)).expect("a frame decodes");
                    message
                });
            });
        }
    }
    decode.finish();
}

criterion::criterion_group!(benches, bench_wire);
criterion::criterion_main!(benches);
