//! The file journal's write path: appending one `Ready`'s batch of 1, 64 or 1024 entries of
//! 10 B or 1 kB, then making it durable (`sync`, one fdatasync) or only handing it to the
//! operating system (`flush`, the relaxed fsync policies), as the journal writer thread does.
//!
//! Run with `cargo bench -p syncobj-core --bench journal`. Each benchmark writes to a fresh
//! journal in a directory under the system's temporary directory, removed at the end. Only
//! `splice` and `sync` / `flush` are measured: building the batch is not, and neither is
//! dropping the log's prefix, which keeps the files under about 128 MiB. The figures with
//! fdatasync are the disk's, not the code's: on the shared machine they vary from run to run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use syncobj_core::raft::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};
use syncobj_core::storage::{FileJournal, Journal, JournalOptions, StdDisk};

const SIZES: [(usize, &str); 2] = [(10, "10B"), (1000, "1kB")];
const COUNTS: [usize; 3] = [1, 64, 1024];

/// The journal's size at which the benchmark drops its prefix (outside the measurement).
const DISK_BYTES_MAX: u64 = 96 << 20;

/// A fresh directory for one benchmark's journal, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "syncobj-bench-journal-{}-{name}",
            std::process::id()
        ));
        // A directory left by a killed run of the same process id.
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A journal in `dir` whose hard state (term 1) is durable, as a node's is once it follows.
fn open(dir: &TempDir) -> FileJournal<StdDisk> {
    let (mut journal, _recovery) =
        FileJournal::open(StdDisk, dir.0.join("log"), JournalOptions::default())
            .expect("a fresh journal opens");
    journal
        .set_hard_state(HardState {
            term: Term(1),
            vote: Some(NodeId(1)),
            commit: LogIndex(0),
        })
        .expect("a first hard state is valid");
    journal.sync().expect("the hard state syncs");
    journal
}

/// The next batch: `count` commands of `data` from the journal's next index on.
fn batch(journal: &FileJournal<StdDisk>, count: usize, data: &Bytes) -> Vec<Entry> {
    let first = journal.last_index().0 + 1;
    (0..count as u64)
        .map(|i| Entry {
            index: LogIndex(first + i),
            term: Term(1),
            kind: EntryKind::Command,
            data: data.clone(),
        })
        .collect()
}

fn bench_journal(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for durable in [false, true] {
        let how = if durable { "sync" } else { "flush" };
        for (size, label) in SIZES {
            let data = Bytes::from(vec![0x5a; size]);
            for count in COUNTS {
                let dir = TempDir::new(&format!("{how}-{label}-{count}"));
                let mut journal = open(&dir);
                group.throughput(Throughput::Elements(count as u64));
                let id = BenchmarkId::new(format!("{how}/{label}"), count);
                group.bench_function(id, |b| {
                    b.iter_custom(|iterations| {
                        let mut measured = Duration::ZERO;
                        for _ in 0..iterations {
                            let entries = batch(&journal, count, &data);
                            let start = Instant::now();
                            journal.splice(&entries).expect("the batch appends");
                            if durable {
                                journal.sync().expect("the batch syncs");
                            } else {
                                journal.flush().expect("the batch is written");
                            }
                            measured += start.elapsed();
                            if journal.disk_bytes() > DISK_BYTES_MAX {
                                journal
                                    .sync()
                                    .and_then(|()| journal.drop_prefix(journal.last_index()))
                                    .expect("the prefix drops");
                            }
                        }
                        measured
                    });
                });
                drop(journal);
            }
        }
    }
    group.finish();
}

criterion::criterion_group!(benches, bench_journal);
criterion::criterion_main!(benches);
