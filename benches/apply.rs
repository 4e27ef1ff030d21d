//! Apply dispatch: what a `#[derive(Replicated)]` type's generated `apply` costs for one call
//! (decode the arguments, run the method, encode the result), through the public
//! [`ReplicatedMethods::apply`], as the tick loop calls it for each committed command.
//!
//! Run with `cargo bench --bench apply`. The type is the burst's state machine
//! (`syncobj-bench`'s `apply(payload) -> count`), plus a method with a string and an integer
//! argument. The arguments are encoded beforehand as a call encodes them.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use syncobj::ReplicatedMethods;
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Burst {
    count: u64,
    total_bytes: u64,
    names: BTreeMap<String, i64>,
}

#[replicated]
impl Burst {
    #[replicated]
    fn apply(&mut self, payload: Bytes) -> u64 {
        self.count += 1;
        self.total_bytes += payload.len() as u64;
        self.count
    }

    #[replicated]
    fn set(&mut self, name: String, value: i64) -> Option<i64> {
        self.names.insert(name, value)
    }
}

/// The id of the method called `name`.
fn method(name: &str) -> u16 {
    Burst::METHODS
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.id)
        .expect("the method is replicated")
}

fn bench_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let mut state = Burst::default();
    let id = method("apply");
    for (size, label) in [(10, "10B"), (1000, "1kB")] {
        let args = rmp_serde::to_vec(&(Bytes::from(vec![7; size]),)).expect("arguments encode");
        group.bench_with_input(BenchmarkId::new("payload", label), &args, |b, args| {
            b.iter(|| {
                ReplicatedMethods::apply(&mut state, id, black_box(args)).expect("the call applies")
            });
        });
    }
    let id = method("set");
    let args = rmp_serde::to_vec(&("some-key", 42i64)).expect("arguments encode");
    group.bench_function("set_string_i64", |b| {
        b.iter(|| {
            ReplicatedMethods::apply(&mut state, id, black_box(&args)).expect("the call applies")
        });
    });
    group.finish();
}

criterion::criterion_group!(benches, bench_apply);
criterion::criterion_main!(benches);
