//! Snapshots taken while calls keep coming. A snapshot is serialized on a thread of its own while
//! the tick loop goes on and only applying waits, so each one must be exactly the state after
//! its index, for the main object and the consumers alike: a node restarted from it (the
//! snapshot, then the journal's rest) has the state it had before, no entry missing or applied
//! twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::Consumer;
use syncobj::prelude::*;

/// A state in which applying an entry twice, or skipping one, shows: every value pushed, in
/// order, and enough padding that serializing it takes a while.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Replicated)]
struct Ledger {
    values: Vec<u64>,
    padding: BTreeMap<u64, String>,
}

#[replicated]
impl Ledger {
    #[replicated]
    fn push(&mut self, value: u64) -> usize {
        self.values.push(value);
        self.values.len()
    }

    #[replicated]
    fn pad(&mut self, from: u64, count: u64) {
        for key in from..from + count {
            self.padding.insert(key, format!("{key:0100}"));
        }
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let unique = format!(
            "syncobj-snapshots-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let path = std::env::temp_dir().join(unique.replace([' ', ':', '{', '}', ','], "_"));
        std::fs::create_dir_all(&path).expect("the temporary directory is writable");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A single-node cluster journaled in `dir`, with a consumer beside its main object; snapshots
/// only when forced.
fn start(dir: &TempDir) -> SyncObj<Ledger> {
    let conf = SyncObjConf::builder()
        .journal_file(dir.0.join("journal"))
        .log_compaction_min_entries(u64::MAX)
        .log_compaction_min_time(Duration::MAX)
        .build()
        .expect("a valid configuration");
    let network = MemoryNetwork::new();
    SyncObj::builder("a:1")
        .conf(conf)
        .consumer(Ledger::default())
        .transport(network.endpoint("a:1"))
        .start(Ledger::default())
        .expect("the node starts")
}

fn consumer(node: &SyncObj<Ledger>) -> Consumer<Ledger> {
    node.consumer(0).expect("a Ledger consumer")
}

/// Both objects' states.
fn states(node: &SyncObj<Ledger>) -> (Ledger, Ledger) {
    (node.read().clone(), consumer(node).read().clone())
}

/// Waits until `done` holds, making a call now and then (an event the loop wakes for).
fn wait_until(what: &str, node: &SyncObj<Ledger>, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 60 s");
        let _ = node.pad(0, 0).wait_timeout(Duration::from_millis(100));
    }
}

/// Snapshots forced again and again while three threads push on both objects; the last one is
/// forced just before the node stops (finished or abandoned, whichever comes). The restarted
/// node has exactly the states the node had, and its journal starts after a snapshot.
#[test]
fn snapshots_under_calls_restore_the_exact_state() {
    let dir = TempDir::new("under-calls");
    let node = Arc::new(start(&dir));
    wait_until("a leader", &node, || node.is_ready());
    for from in (0..20_000).step_by(5_000) {
        node.pad(from, 5_000).wait().expect("padding commits");
        consumer(&node)
            .pad(from, 5_000)
            .wait()
            .expect("padding commits");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pushers: Vec<_> = (0..3_u64)
        .map(|thread| {
            let (node, stop) = (Arc::clone(&node), Arc::clone(&stop));
            std::thread::spawn(move || {
                let consumer = consumer(&node);
                let mut value = thread << 32;
                while !stop.load(Ordering::Relaxed) {
                    value += 1;
                    let pushed = match value % 2 {
                        0 => node.push(value).wait(),
                        _ => consumer.push(value).wait(),
                    };
                    pushed.expect("a push commits");
                }
            })
        })
        .collect();
    for round in 0..8 {
        let compactions = node.status().snapshots.compactions;
        let applied = node.status().last_applied;
        node.force_log_compaction();
        // A snapshot already under way when the compaction is forced may land first; the
        // forced one follows it, and covers everything applied before it was asked for (no
        // more, if nothing was applied in between).
        wait_until("a compaction of the entries applied", &node, || {
            let snapshots = node.status().snapshots;
            snapshots.compactions > compactions && snapshots.snapshot_index >= applied
        });
        let status = node.status();
        assert!(
            status.snapshots.snapshot_index >= applied,
            "round {round}: {:?}",
            status.snapshots
        );
    }
    stop.store(true, Ordering::Relaxed);
    for pusher in pushers {
        pusher.join().expect("a pusher ends");
    }
    let pushed = node.read().values.len() + consumer(&node).read().values.len();
    assert!(pushed > 0);
    node.push(u64::MAX).wait().expect("the last push commits");
    node.force_log_compaction();
    let before = states(&node);
    let applied = node.status().last_applied;
    let node = Arc::into_inner(node).expect("the pushers are gone");
    node.destroy_synchronous();
    drop(node);

    let node = start(&dir);
    wait_until("the journal's rest applied", &node, || {
        node.status().last_applied >= applied
    });
    assert!(node.status().snapshots.snapshot_index > 0);
    let after = states(&node);
    for (object, before, after) in [
        ("main", &before.0, &after.0),
        ("consumer", &before.1, &after.1),
    ] {
        let first_difference = before
            .values
            .iter()
            .zip(&after.values)
            .position(|(b, a)| b != a);
        assert!(
            before.values == after.values,
            "{object}: {} values before, {} after the restart, first difference at {first_difference:?}",
            before.values.len(),
            after.values.len()
        );
        assert!(
            before.padding == after.padding,
            "{object}: the padding differs"
        );
    }
}
