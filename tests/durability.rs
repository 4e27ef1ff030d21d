//! Durability through the journal: PySyncObj's persistence scenarios on in-process nodes, each
//! node's journal in its own temporary directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;
use syncobj::{FsyncPolicy, StartError};

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let unique = format!(
            "syncobj-durability-{name}-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let path = std::env::temp_dir().join(unique.replace([' ', ':', '{', '}', ','], "_"));
        std::fs::create_dir_all(&path).expect("the temporary directory is writable");
        TempDir(path)
    }

    fn journal(&self, node: usize) -> PathBuf {
        self.0.join(format!("node-{node}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ADDRESSES: [&str; 2] = ["a:1", "b:2"];

fn conf(journal: &Path, fsync: FsyncPolicy) -> SyncObjConf {
    SyncObjConf {
        append_entries_period: Duration::from_millis(20),
        raft_min_timeout: Duration::from_millis(150),
        raft_max_timeout: Duration::from_millis(300),
        leader_fallback_timeout: Duration::from_millis(150),
        ..SyncObjConf::default()
    }
    .with_journal_file(journal)
    .with_journal_fsync(fsync)
}

fn start(
    network: &MemoryNetwork,
    node: usize,
    dir: &TempDir,
    fsync: FsyncPolicy,
) -> Result<SyncObj<Counter>, StartError> {
    let me = ADDRESSES[node];
    let partners = ADDRESSES
        .iter()
        .filter(|&&a| a != me)
        .map(|&a| a.to_owned());
    SyncObj::with_transport(
        me,
        partners,
        Counter::default(),
        conf(&dir.journal(node), fsync),
        network.endpoint(me),
    )
}

/// Calls `add(n)`, retrying calls lost to a change of leader.
fn add(node: &SyncObj<Counter>, n: i64) -> Result<i64, FailReason> {
    for _ in 0..20 {
        match node.add(n).wait_timeout(Duration::from_secs(10)) {
            Err(FailReason::LeaderChanged | FailReason::NotLeader | FailReason::Discarded) => {}
            other => return other,
        }
    }
    Err(FailReason::LeaderChanged)
}

/// Adds 1 `count` times on `node`; returns the last value.
fn add_many(node: &SyncObj<Counter>, count: usize) -> i64 {
    let mut last = 0;
    for _ in 0..count {
        last = add(node, 1).expect("the call commits");
    }
    last
}

/// Waits until `node` has applied a state with `value`, failing after 10 s.
fn wait_for_value(node: &SyncObj<Counter>, value: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.read().value != value {
        assert!(
            Instant::now() < deadline,
            "value {value} not reached within 10 s"
        );
        // A call is an event to wait on: it completes once this node applied it.
        let _ = node.add(0).wait_timeout(Duration::from_millis(200));
    }
}

/// PySyncObj's `test_journalTest1` (without compaction, which arrives with snapshots): two
/// journaled nodes reach 350, both restart and have 350 again, go on to 600, restart again.
#[test]
fn a_journaled_cluster_restarts_with_its_state() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Periodic(Duration::from_millis(50)),
        FsyncPolicy::Never,
    ] {
        let dir = TempDir::new("restart");
        let network = MemoryNetwork::new();
        let nodes = [0, 1].map(|i| start(&network, i, &dir, fsync).expect("starts"));
        assert_eq!(add_many(&nodes[0], 350), 350, "{fsync:?}");
        wait_for_value(&nodes[1], 350);
        drop(nodes);

        let network = MemoryNetwork::new();
        let nodes = [0, 1].map(|i| start(&network, i, &dir, fsync).expect("restarts"));
        for node in &nodes {
            assert_eq!(
                node.read().value,
                350,
                "{fsync:?}: restored before any call"
            );
        }
        assert_eq!(add_many(&nodes[1], 250), 600);
        wait_for_value(&nodes[0], 600);
        drop(nodes);

        let network = MemoryNetwork::new();
        let nodes = [0, 1].map(|i| start(&network, i, &dir, fsync).expect("restarts"));
        assert_eq!(add(&nodes[0], 0), Ok(600), "{fsync:?}");
    }
}

/// PySyncObj's `test_applyJournalAfterRestart`: one node restarted alone applies its journal up
/// to the saved commit index at once, with no leader and no quorum.
#[test]
fn a_node_restarted_alone_applies_its_journal() {
    let dir = TempDir::new("alone");
    let network = MemoryNetwork::new();
    let nodes = [0, 1].map(|i| start(&network, i, &dir, FsyncPolicy::Always).expect("starts"));
    assert_eq!(add_many(&nodes[0], 350), 350);
    wait_for_value(&nodes[1], 350);
    drop(nodes);
    for alone in 0..2 {
        let network = MemoryNetwork::new();
        let node = start(&network, alone, &dir, FsyncPolicy::Always).expect("restarts");
        assert_eq!(node.read().value, 350, "node {alone}");
        assert!(!node.has_quorum());
        assert_eq!(node.leader(), None);
    }
}

/// A journal damaged before its tail stops the node at start with an error that names the
/// file and the offset; it never starts with a silently shortened log.
#[test]
fn a_damaged_journal_stops_the_node_naming_the_file() {
    let dir = TempDir::new("damaged");
    let network = MemoryNetwork::new();
    let nodes = [0, 1].map(|i| start(&network, i, &dir, FsyncPolicy::Always).expect("starts"));
    assert_eq!(add_many(&nodes[0], 50), 50);
    wait_for_value(&nodes[1], 50);
    drop(nodes);
    let segment = std::fs::read_dir(dir.journal(0))
        .expect("the journal exists")
        .map(|e| e.expect("a directory entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).expect("readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, bytes).expect("writable");
    let network = MemoryNetwork::new();
    let error = start(&network, 0, &dir, FsyncPolicy::Always)
        .err()
        .expect("a damaged journal stops the node");
    let message = error.to_string();
    assert!(matches!(error, StartError::Storage(_)), "{message}");
    assert!(message.contains("segment-"), "{message}");
    assert!(message.contains("at byte"), "{message}");
}
