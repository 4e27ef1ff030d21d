//! What a snapshot of a large state costs, in two parts.
//!
//! 1. The raw costs for a 100 MB state (issue 5: "measure which is cheaper"): serializing it,
//!    cloning it, and writing and syncing the bytes.
//! 2. What the tick loop feels (issue 13: "longest tick-thread stall while snapshotting a 100 MB
//!    state ≤ 5 ms"): a node holding a key-value map of a million entries (about 100 MB in
//!    MessagePack), ticked by hand on this thread with `do_tick(0)` while a call is submitted
//!    every 0.5 ms, is asked for a snapshot; the run times every iteration from the
//!    request until the snapshot is durable and 200 ms more, and prints the longest and the
//!    median, how long the snapshot took, and how far applying lagged behind the commit index
//!    meanwhile (the calls wait for it, the loop does not).
//!
//! ```text
//! cargo run --release --example snapshot_cost [DIR] [--node-only] [--repeat R]
//! ```
//!
//! DIR (default: the system's temporary directory) holds the files written; `--node-only`
//! skips part 1; `--repeat R` runs part 2 R times on the same node and reports each run.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

/// A key-value state of about 100 MB: a million entries of a 16-byte key and an 84-byte value.
#[derive(Clone, Default, Serialize, Deserialize, Replicated)]
struct KeyValues {
    entries: BTreeMap<String, String>,
}

#[replicated]
impl KeyValues {
    /// Adds the entries `from..from + count`, as the measurement of part 1 builds them.
    #[replicated]
    fn fill(&mut self, from: u32, count: u32) -> usize {
        for i in from..from.saturating_add(count) {
            self.entries.insert(key(i), format!("{i:084}"));
        }
        self.entries.len()
    }

    #[replicated]
    fn set(&mut self, i: u32, value: String) {
        self.entries.insert(key(i), value);
    }
}

fn key(i: u32) -> String {
    format!("key-{i:012}")
}

/// A state of one 100 MB blob.
#[derive(Clone, Serialize, Deserialize)]
struct Blob {
    data: bytes::Bytes,
}

const ENTRIES: u32 = 1_000_000;

/// How often part 2 makes a call while the snapshot is taken (2,000 calls a second).
const CALL_EVERY: Duration = Duration::from_micros(500);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to standard error at the level RUST_LOG names (errors only by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let node_only = args.iter().any(|a| a == "--node-only");
    let repeat = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(1), |r| r.parse::<usize>())?;
    let dir = args
        .iter()
        .enumerate()
        .find(|&(i, a)| !a.starts_with("--") && (i == 0 || args[i - 1] != "--repeat"))
        .map_or_else(std::env::temp_dir, |(_, a)| std::path::PathBuf::from(a));
    if !node_only {
        let kv = KeyValues {
            entries: (0..ENTRIES).map(|i| (key(i), format!("{i:084}"))).collect(),
        };
        let blob = Blob {
            data: bytes::Bytes::from(vec![7_u8; 100 << 20]),
        };
        measure("key-value map, 1 M entries", &kv, &dir)?;
        measure("one 100 MB blob", &blob, &dir)?;
    }
    tick_loop_while_snapshotting(&dir, repeat)
}

fn measure<T: Clone + Serialize>(
    name: &str,
    state: &T,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let copy = state.clone();
    let clone_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(copy);
    let started = Instant::now();
    let bytes = rmp_serde::to_vec(state)?;
    let serialize_ms = started.elapsed().as_secs_f64() * 1e3;
    let path = dir.join(format!("snapshot-cost-{}", std::process::id()));
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    let write_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(file);
    std::fs::remove_file(&path)?;
    let megabytes = bytes.len() as f64 / 1e6;
    let started = Instant::now();
    drop(bytes);
    let free_ms = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "{name}: {megabytes:.1} MB serialized; serialize {serialize_ms:.0} ms, clone {clone_ms:.0} ms; write + sync {write_ms:.0} ms; freeing the bytes {free_ms:.1} ms"
    );
    Ok(())
}

/// Part 2: a node of one, ticked on this thread, snapshots a million entries while calls come.
fn tick_loop_while_snapshotting(
    dir: &std::path::Path,
    repeat: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = dir.join(format!("snapshot-cost-node-{}", std::process::id()));
    let conf = SyncObjConf::builder()
        .auto_tick(false)
        .full_dump_file(&store)
        .log_compaction_min_entries(u64::MAX)
        .log_compaction_min_time(Duration::MAX)
        .build()?;
    let network = MemoryNetwork::new();
    let node = SyncObj::builder("a:1")
        .conf(conf)
        .transport(network.endpoint("a:1"))
        .start(KeyValues::default())?;
    let outcome = run_node(&node, repeat);
    drop(node);
    let _ = std::fs::remove_dir_all(&store);
    outcome
}

fn run_node(node: &SyncObj<KeyValues>, repeat: usize) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.is_ready() {
        node.do_tick(Duration::from_millis(5))?;
        if Instant::now() > deadline {
            return Err("no leader within 30 s".into());
        }
    }
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let batch = 20_000;
    for from in (0..ENTRIES).step_by(batch as usize) {
        let done = Arc::clone(&done);
        node.fill(from, batch).on_done(move |outcome| {
            if outcome.is_ok() {
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let fills = u64::from(ENTRIES / batch);
    while done.load(Ordering::Relaxed) < fills {
        node.do_tick(Duration::from_millis(1))?;
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the state was not filled within 300 s".into());
        }
    }
    println!(
        "node: {} entries filled through calls in {:.1} s",
        node.read().entries.len(),
        started.elapsed().as_secs_f64()
    );
    for run in 1..=repeat {
        let figures = one_snapshot(node, false)?;
        println!("node, run {run}, 1 s without a snapshot: {figures}");
        let figures = one_snapshot(node, true)?;
        println!("node, run {run}, a snapshot: {figures}");
    }
    Ok(())
}

/// Forces one snapshot and times every iteration until it is durable, and 200 ms more; or,
/// without `force`, the same for a second with no snapshot (the machine's own noise: another
/// process taking the core shows as a long iteration too).
fn one_snapshot(
    node: &SyncObj<KeyValues>,
    force: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    let compactions = node.status().snapshots.compactions;
    let completed = Arc::new(AtomicU64::new(0));
    let mut iterations: Vec<Duration> = Vec::new();
    let mut offsets: Vec<Duration> = Vec::new();
    let mut max_lag = 0;
    let mut submitted = 0_u32;
    if force {
        node.force_log_compaction();
    }
    let started = Instant::now();
    let mut durable_after = (!force).then_some(Duration::from_millis(800));
    let mut last_call = started - CALL_EVERY;
    loop {
        if last_call.elapsed() >= CALL_EVERY {
            last_call = Instant::now();
            let completed = Arc::clone(&completed);
            node.set(submitted % ENTRIES, "x".repeat(84))
                .on_done(move |_| {
                    completed.fetch_add(1, Ordering::Relaxed);
                });
            submitted += 1;
        }
        let tick = Instant::now();
        node.do_tick(Duration::ZERO)?;
        iterations.push(tick.elapsed());
        offsets.push(tick - started);
        let status = node.status();
        max_lag = max_lag.max(status.commit_index - status.last_applied);
        if force && durable_after.is_none() && status.snapshots.compactions > compactions {
            durable_after = Some(started.elapsed());
        }
        match durable_after {
            Some(after) if started.elapsed() > after + Duration::from_millis(200) => break,
            None if started.elapsed() > Duration::from_secs(120) => {
                return Err("no snapshot within 120 s".into());
            }
            _ => {}
        }
    }
    let durable_after = durable_after.unwrap_or_default();
    let longest = iterations.iter().max().copied().unwrap_or_default();
    let mut by_length: Vec<(Duration, Duration)> =
        iterations.iter().copied().zip(offsets).collect();
    by_length.sort_unstable_by(|a, b| b.cmp(a));
    let top: Vec<String> = by_length
        .iter()
        .take(3)
        .map(|(length, at)| {
            format!(
                "{:.2} ms at +{:.0} ms",
                length.as_secs_f64() * 1e3,
                at.as_secs_f64() * 1e3
            )
        })
        .collect();
    iterations.sort_unstable();
    let median = iterations[iterations.len() / 2];
    let status = node.status();
    Ok(format!(
        "snapshot of {:.1} MB durable after {:.0} ms; {} iterations, longest {:.2} ms, median {:.3} ms \
         (longest three: {}; status longest_tick_us {}); {} calls completed of {submitted}, apply lag up to {max_lag} entries",
        status.snapshots.snapshot_bytes as f64 / 1e6,
        durable_after.as_secs_f64() * 1e3,
        iterations.len(),
        longest.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        top.join(", "),
        status.longest_tick.as_micros(),
        completed.load(Ordering::Relaxed),
    ))
}
