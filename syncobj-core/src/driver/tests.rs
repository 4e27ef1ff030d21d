//! The tick loop owns the node: readers never wait for it, even while its journal sync is
//! stuck on the disk.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};
use syncobj_net::handshake::Peer;

use super::assembly::{Assembled, Blueprint, Recover, assemble};
use super::objects::{ErasedObject, ObjectCell};
use super::recovery::{DiskLayout, Disks, recover_on_disk};
use super::{Consumers, MemoryNetwork, SyncObj};
use crate::conf::SyncObjConf;
use crate::object::{
    ApplyError, Call, Caller, Completion, MethodSpec, ReplicatedMethods, ReplicatedState, Submit,
    TickHelp,
};
use crate::storage::test_dir::TempDir;
use crate::storage::{Disk, DiskFile, StdDisk, StdFile};

/// A running total; `add(n)` returns it.
#[derive(Default, Serialize, Deserialize)]
struct Tally(i64);

const ADD: MethodSpec = MethodSpec {
    id: 0,
    name: "add",
    version: 0,
    fingerprint: 7,
};

impl ReplicatedState for Tally {
    const NAME: &'static str = "Tally";
}

impl ReplicatedMethods for Tally {
    const METHODS: &'static [MethodSpec] = &[ADD];
    type Calls = TallyCalls;

    fn apply(&mut self, id: u16, args: &[u8]) -> Result<Vec<u8>, ApplyError> {
        let (n,): (i64,) = rmp_serde::from_slice(args).map_err(|e| ApplyError::BadArguments {
            method: "add",
            reason: e.to_string(),
        })?;
        if id != ADD.id {
            return Err(ApplyError::UnknownMethod(id));
        }
        self.0 += n;
        Ok(rmp_serde::to_vec(&self.0).expect("an i64 encodes"))
    }
}

struct TallyCalls(Caller);

impl From<Caller> for TallyCalls {
    fn from(caller: Caller) -> Self {
        TallyCalls(caller)
    }
}

impl TallyCalls {
    fn add(&self, n: i64) -> Call<i64> {
        self.0.call(&[ADD], &(n,))
    }
}

/// Holds file syncs while closed, and says when one is held.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    held: usize,
}

impl Gate {
    fn close(&self) {
        self.state.lock().closed = true;
    }

    fn open(&self) {
        self.state.lock().closed = false;
        self.changed.notify_all();
    }

    /// Waits until a sync is held at the gate, for at most `timeout`.
    fn wait_held(&self, timeout: Duration) -> bool {
        let mut state = self.state.lock();
        let deadline = std::time::Instant::now() + timeout;
        while state.held == 0 {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                return state.held > 0;
            }
        }
        true
    }

    fn pass(&self) {
        let mut state = self.state.lock();
        state.held += 1;
        self.changed.notify_all();
        while state.closed {
            self.changed.wait(&mut state);
        }
        state.held -= 1;
    }
}

/// The real file system, whose file syncs wait at a gate.
#[derive(Clone, Debug)]
struct GatedDisk {
    gate: Arc<Gate>,
}

#[derive(Debug)]
struct GatedFile {
    file: StdFile,
    gate: Arc<Gate>,
}

impl Disk for GatedDisk {
    type File = GatedFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdDisk.create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<GatedFile> {
        let file = StdDisk.create(path)?;
        Ok(GatedFile {
            file,
            gate: Arc::clone(&self.gate),
        })
    }

    fn open(&self, path: &Path) -> io::Result<GatedFile> {
        let file = StdDisk.open(path)?;
        Ok(GatedFile {
            file,
            gate: Arc::clone(&self.gate),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdDisk.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        StdDisk.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        StdDisk.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdDisk.sync_dir(dir)
    }
}

impl DiskFile for GatedFile {
    fn size(&mut self) -> io::Result<u64> {
        self.file.size()
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(offset, buf)
    }

    fn write_all_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(offset, data)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.gate.pass();
        self.file.sync()
    }
}

/// A one-node cluster "solo" of `main` on the in-memory transport, assembled and not yet run;
/// snapshots on their own thread, the journal's writer on its own thread unless
/// `inline_journal`.
fn solo(
    conf: &SyncObjConf,
    main: &Arc<ObjectCell<Tally>>,
    recover: Recover<'_>,
    inline_journal: bool,
) -> Assembled {
    assemble(Blueprint {
        me: Peer::Voter("solo".to_owned()),
        partners: Vec::new(),
        objects: vec![Arc::clone(main) as Arc<dyn ErasedObject>],
        conf,
        raft: conf.raft_config(1),
        transport: Box::new(MemoryNetwork::new().endpoint("solo")),
        session: 1,
        recover,
        inline_snapshots: false,
        inline_journal,
    })
    .expect("the node assembles")
}

/// A one-node cluster with its journal on a gated disk, auto-ticked.
fn gated_node(dir: &Path, gate: &Arc<Gate>) -> SyncObj<Tally> {
    let conf = SyncObjConf {
        append_entries_period: Duration::from_millis(10),
        raft_min_timeout: Duration::from_millis(40),
        raft_max_timeout: Duration::from_millis(80),
        leader_fallback_timeout: Duration::from_millis(40),
        ..SyncObjConf::default()
    };
    let main = Arc::new(ObjectCell {
        state: RwLock::new(Tally::default()),
    });
    let disk = GatedDisk {
        gate: Arc::clone(gate),
    };
    let (journal, snapshots) = (dir.join("journal"), dir.join("snapshots"));
    let layout = DiskLayout {
        journal: &journal,
        snapshots: &snapshots,
    };
    let recover: Recover<'_> =
        &|objects, slot, identity| recover_on_disk(&disk, &layout, &conf, slot, identity, objects);
    let assembled = solo(&conf, &main, recover, false);
    SyncObj::run(
        assembled,
        &conf,
        main,
        Consumers::new(),
        false,
        Disks::default(),
    )
    .expect("the node runs")
}

/// While the tick loop is stuck in a journal sync, `status()`, `is_leader()` and `leader()`
/// return at once with what the loop last published; the call completes once the sync does.
#[test]
fn getters_return_while_a_journal_sync_is_blocked() {
    let dir = TempDir::new("gated");
    let gate = Arc::new(Gate::default());
    let node = Arc::new(gated_node(dir.path(), &gate));
    let patience = Duration::from_secs(10);
    assert!(node.wait_ready(patience), "the lone node leads");
    gate.close();
    let call = node.add(5);
    assert!(gate.wait_held(patience), "the call's sync reaches the disk");
    let (sender, answers) = mpsc::channel();
    let reader = Arc::clone(&node);
    std::thread::spawn(move || {
        let status = reader.status();
        let _ = sender.send((status, reader.is_leader(), reader.leader()));
    });
    let (status, is_leader, leader) = answers
        .recv_timeout(patience)
        .expect("the getters return while the sync is held");
    assert!(is_leader);
    assert_eq!(leader.as_deref(), Some("solo"));
    assert_eq!(status.leader.as_deref(), Some("solo"));
    gate.open();
    assert_eq!(call.wait_timeout(patience), Ok(5));
}

/// Hands calls straight to an assembled engine's queue.
struct Queue(super::queue::QueueSender<super::engine::Queued>);

impl Submit for Queue {
    fn submit(&self, command: bytes::Bytes, completion: Completion) {
        let queued = self.0.try_send((command, completion));
        assert!(queued.is_ok(), "the engine's queue takes the call");
    }

    fn enabled_code_version(&self) -> u32 {
        0
    }

    fn help_while_waiting(&self, _max_wait: Duration) -> TickHelp {
        TickHelp::TickThreadRuns
    }
}

/// A node that must apply a long run of committed entries (here: its applying was paused
/// while a snapshot was serialized) spreads them over several iterations, each at most
/// `APPLIED_PER_ITERATION_MAX`, and asks for the next iteration at once until it caught up.
#[test]
fn a_long_catch_up_is_spread_over_iterations() {
    use std::sync::atomic::Ordering;
    let conf = SyncObjConf::default();
    let main = Arc::new(ObjectCell {
        state: RwLock::new(Tally::default()),
    });
    let recover: Recover<'_> =
        &|objects, slot, identity| super::recovery::recover(&conf, objects, slot, identity);
    let assembled = solo(&conf, &main, recover, true);
    let mut engine = assembled.engine;
    let mut now = crate::raft::Instant::ZERO;
    let mut iterate = |engine: &mut super::engine::Engine, step: Duration| {
        now = now + step;
        engine.iterate(Duration::ZERO, &|| now);
        now
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let patient = || {
        assert!(
            std::time::Instant::now() < deadline,
            "the test ran out of time"
        )
    };
    // The lone node leads and applied its first entry: a snapshot has something to cover.
    while !engine.raft.is_leader() || engine.raft.applied_index().0 == 0 {
        patient();
        iterate(&mut engine, Duration::from_millis(10));
    }
    // A snapshot starts and cannot read the state while this test holds it: applying pauses.
    let held = main.state.write();
    assembled
        .signals
        .force_compaction
        .store(true, Ordering::Release);
    iterate(&mut engine, Duration::ZERO);
    let calls = TallyCalls(Caller::new(Arc::new(Queue(assembled.queue)), 0));
    let count = 3 * super::engine::APPLIED_PER_ITERATION_MAX + 100;
    let pending: Vec<Call<i64>> = (0..count).map(|_| calls.add(1)).collect();
    let applied_before = engine.raft.applied_index();
    while engine.raft.commit_index().0 < applied_before.0 + count as u64 {
        patient();
        iterate(&mut engine, Duration::ZERO);
    }
    assert_eq!(
        engine.raft.applied_index(),
        applied_before,
        "applying paused"
    );
    drop(held);
    let mut iterations = 0;
    while engine.raft.applied_index() < engine.raft.commit_index() {
        patient();
        let before = engine.raft.applied_index().0;
        let at = iterate(&mut engine, Duration::ZERO);
        let applied = engine.raft.applied_index().0 - before;
        assert!(
            applied as usize <= super::engine::APPLIED_PER_ITERATION_MAX,
            "one iteration applied {applied} entries"
        );
        if applied > 0 {
            iterations += 1;
            if engine.raft.applied_index() < engine.raft.commit_index() {
                assert_eq!(engine.next_deadline(), Some(at), "the rest comes at once");
            }
        }
    }
    assert!(iterations >= 4, "caught up in {iterations} iterations");
    assert_eq!(main.state.read().0, count as i64);
    let last = pending.into_iter().last().expect("calls were made");
    assert_eq!(last.wait_timeout(Duration::ZERO), Ok(count as i64));
}
