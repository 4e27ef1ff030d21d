//! A cluster member: the process the driver starts N times (`syncobj-bench node ...`, hidden
//! from the help). It runs the baseline's state machine on a [`SyncObj`] and obeys the driver's
//! line protocol on standard input; `bench/pysyncobj/node.py` is the same member on PySyncObj.
//!
//! # Line protocol
//!
//! Commands, one per line on standard input:
//!
//! | command | what the member does |
//! |---|---|
//! | `load SIZE COUNT SECONDS WINDOW TIMEOUT` | calls `apply` back to back with a callback each; stops after COUNT calls (0: no limit) or SECONDS (0: no limit); at most WINDOW calls in flight (0: no limit); then waits for every callback, at most TIMEOUT seconds in all |
//! | `latency SIZE COUNT BUDGET` | COUNT sequential waited calls (5 s each at most), stopping early after BUDGET seconds |
//! | `fill SIZE COUNT WINDOW TIMEOUT` | as `load` with no time limit, but each call is `put(i, value)` of a SIZE-byte value under key i = 0, 1, …: builds a replicated state of COUNT × SIZE bytes |
//! | `snapshot QUIET_US QUIET_S TIMEOUT` | waits (at most QUIET_S seconds) until its status's `longest_tick_us` is at most QUIET_US, forces a snapshot and waits (at most TIMEOUT seconds) until it is durable; replies how long it took, its file's size and `longest_tick_us` before and after |
//! | `status` | its applied count, whether it leads, how many partners it is linked to, how many values it holds |
//! | `exit` | leaves |
//!
//! Output lines for the driver start with `@@ ` (anything else is ignored): `event started`,
//! `event ready` (the node caught up with a leader for the first time),
//! `event leader_commit ok=1 dt=S refused=R` (S: seconds from becoming leader to the commit of
//! its first call, the leadership hook; R: how many times that call was refused with
//! `QueueFull` and made again) and `reply <command> key=value...`.
//!
//! A member exits when its standard input closes (the driver is gone) or after `--max-life`
//! seconds, so none outlives a crashed driver for long.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use syncobj::prelude::*;
use syncobj::{FsyncPolicy, RaftState};

use crate::stats::percentile;
use crate::{Error, Fsync};

/// The baseline's state machine: counts calls and payload bytes; and, for the state-size
/// runs only, a map of values (empty otherwise).
#[derive(Default, Serialize, Deserialize, Replicated)]
pub(crate) struct Bench {
    count: u64,
    total_bytes: u64,
    values: BTreeMap<u64, Bytes>,
}

#[replicated]
impl Bench {
    /// The baseline's `apply(payload) -> int`.
    #[replicated]
    fn apply(&mut self, payload: Bytes) -> u64 {
        self.count += 1;
        self.total_bytes += payload.len() as u64;
        self.count
    }

    /// Stores `value` under `key` (the state-size runs fill the state with it).
    #[replicated]
    fn put(&mut self, key: u64, value: Bytes) -> u64 {
        self.count += 1;
        self.total_bytes += value.len() as u64;
        self.values.insert(key, value);
        self.count
    }

    fn count(&self) -> u64 {
        self.count
    }
}

/// How the driver starts a member.
#[derive(clap::Args, Debug)]
pub(crate) struct NodeArgs {
    /// This member's position in `--addrs`.
    #[arg(long)]
    index: usize,
    /// Every member's address, comma-separated.
    #[arg(long)]
    addrs: String,
    /// Encrypt every connection with this password.
    #[arg(long)]
    password: Option<String>,
    /// Keep a journal in this directory.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// How the journal syncs.
    #[arg(long, value_enum, default_value = "always")]
    fsync: Fsync,
    /// Exit after this many seconds whatever happens.
    #[arg(long, default_value_t = 150.0)]
    max_life: f64,
    /// Never take a snapshot unless the driver asks for one (`snapshot`): the journal keeps
    /// every entry.
    #[arg(long)]
    no_compaction: bool,
}

/// A line to the driver. One `println!` is one write under the stdout lock.
fn emit(text: std::fmt::Arguments<'_>) {
    println!("@@ {text}");
}

pub(crate) fn run(args: &NodeArgs) -> Result<(), Error> {
    let max_life = Duration::from_secs_f64(args.max_life);
    thread::spawn(move || {
        thread::sleep(max_life);
        std::process::exit(3);
    });
    let addresses: Vec<&str> = args.addrs.split(',').collect();
    let me = *addresses.get(args.index).ok_or("--index is out of range")?;
    let partners: Vec<String> = addresses
        .iter()
        .filter(|a| **a != me)
        .map(|a| (*a).to_owned())
        .collect();

    // The leadership hook needs the node, which exists only once the conf is consumed. A node
    // may become leader before `SyncObj::new` returns (a member of one, whose journal took
    // longer to read than its election timeout): the hook then leaves the time it became leader
    // in the slot, and the first call is made as soon as the node is built.
    let slot: Arc<Mutex<HookSlot>> = Arc::default();
    let hook_slot = Arc::clone(&slot);
    let mut conf = SyncObjConf::builder();
    if let Some(password) = &args.password {
        conf = conf.password(password.as_str());
    }
    if let Some(journal) = &args.journal {
        conf = conf.journal_file(journal).journal_fsync(match args.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Never => FsyncPolicy::Never,
        });
    }
    if args.no_compaction {
        conf = conf
            .log_compaction_min_entries(u64::MAX)
            .log_compaction_min_time(Duration::MAX);
    }
    let conf = conf.on_ready(|| emit(format_args!("event ready")));
    let conf = conf.on_state_changed(move |_old, new| {
        if new != RaftState::Leader {
            return;
        }
        let became = Instant::now();
        let node = {
            let mut slot = hook_slot.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.node.as_ref().and_then(Weak::upgrade) {
                Some(node) => node,
                None => {
                    slot.became_early = Some(became);
                    return;
                }
            }
        };
        leader_call(&node, became, 0);
    });
    let conf = conf.build()?;
    let node = Arc::new(SyncObj::new(me, partners, Bench::default(), conf)?);
    let became_early = {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.node = Some(Arc::downgrade(&node));
        slot.became_early.take()
    };
    emit(format_args!("event started pid={}", std::process::id()));
    if let Some(became) = became_early {
        leader_call(&node, became, 0);
    }

    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["load", size, count, seconds, window, timeout] => {
                let plan = Plan {
                    size: size.parse()?,
                    count: count.parse()?,
                    seconds: seconds.parse()?,
                    window: window.parse()?,
                    timeout: timeout.parse()?,
                    put: false,
                };
                emit(format_args!("reply load {}", load(&node, &plan)));
            }
            ["fill", size, count, window, timeout] => {
                let plan = Plan {
                    size: size.parse()?,
                    count: count.parse()?,
                    seconds: 0.0,
                    window: window.parse()?,
                    timeout: timeout.parse()?,
                    put: true,
                };
                emit(format_args!("reply fill {}", load(&node, &plan)));
            }
            ["snapshot", quiet_us, quiet_s, timeout] => {
                let reply = snapshot(&node, quiet_us.parse()?, quiet_s.parse()?, timeout.parse()?);
                emit(format_args!("reply snapshot {reply}"));
            }
            ["latency", size, count, budget] => {
                let reply = latency(&node, size.parse()?, count.parse()?, budget.parse()?);
                emit(format_args!("reply latency {reply}"));
            }
            ["status"] => {
                let (count, values) = {
                    let state = node.read();
                    (state.count(), state.values.len())
                };
                let leader = u8::from(node.is_leader());
                let links = node
                    .other_nodes()
                    .iter()
                    .filter(|a| node.is_node_connected(a))
                    .count();
                emit(format_args!(
                    "reply status count={count} leader={leader} links={links} values={values}"
                ));
            }
            ["exit"] => break,
            _ => emit(format_args!("reply error unknown_command")),
        }
    }
    drop(node);
    Ok(())
}

/// What the leadership hook needs: the node once built, and when it became leader if that was
/// before.
#[derive(Default)]
struct HookSlot {
    node: Option<Weak<SyncObj<Bench>>>,
    became_early: Option<Instant>,
}

/// The leadership hook's call: `apply(b"L" * 10)`, reported with the seconds from `became`.
/// A call refused with `QueueFull` is made again 1 ms later, for at most 30 s (a leader that
/// restarted on a journal of more than `uncommitted_entries_max` entries past its last durable
/// commit index refuses calls until its first entry of the new term commits); the report counts
/// the refusals (`refused=`).
fn leader_call(node: &Arc<SyncObj<Bench>>, became: Instant, refused: u32) {
    let retry = Arc::downgrade(node);
    node.apply(Bytes::from_static(b"LLLLLLLLLL"))
        .on_done(move |result| {
            let dt = became.elapsed().as_secs_f64();
            match result {
                Ok(_) => emit(format_args!(
                    "event leader_commit ok=1 dt={dt:.6} refused={refused}"
                )),
                Err(FailReason::QueueFull) if dt < 30.0 => {
                    // On a thread of its own: this callback runs on the tick thread.
                    thread::spawn(move || {
                        thread::sleep(Duration::from_millis(1));
                        if let Some(node) = retry.upgrade() {
                            leader_call(&node, became, refused + 1);
                        }
                    });
                }
                Err(e) => emit(format_args!(
                    "event leader_commit ok=0 err={e:?} refused={refused}"
                )),
            }
        });
}

/// 256 distinct pseudo-random payloads of `size` bytes (SplitMix64 from seed 12345; the
/// content does not matter, only that they differ and are built before the timed loop).
pub(crate) fn payloads(size: usize) -> Vec<Bytes> {
    let mut state: u64 = 12345;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..256)
        .map(|_| Bytes::from((0..size).map(|_| next() as u8).collect::<Vec<u8>>()))
        .collect()
}

/// What a `load` command asks for.
struct Plan {
    size: usize,
    /// Calls to make; 0: as many as fit in `seconds`.
    count: u64,
    /// Seconds to keep submitting; 0: until `count` calls were made.
    seconds: f64,
    /// Most calls in flight; 0: no limit (the baseline's burst).
    window: u64,
    /// Seconds for the whole command, submitting and waiting.
    timeout: f64,
    /// Call `put(i, payload)` (a growing state) rather than `apply(payload)`.
    put: bool,
}

/// What the callbacks of a `load` count, shared with the tick thread. Atomics keep the callback
/// cheap: a lock here would be taken once per call on the tick thread.
struct Tally {
    start: Instant,
    done: AtomicU64,
    ok: AtomicU64,
    in_flight: AtomicU64,
    /// Nanoseconds from `start` to the latest successful callback.
    last_ok_ns: AtomicU64,
    /// The submitter parks while the window is full or while it waits for the last callback.
    submitter: Thread,
    /// The in-flight count at which a parked submitter is woken.
    wake_at: u64,
    /// Set once every call is submitted: the callback that makes `done` reach it wakes the
    /// submitter.
    target: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn finish(&self, ok: bool, reason: impl FnOnce() -> String) {
        if ok {
            let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last_ok_ns.fetch_max(ns, Ordering::Relaxed);
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
            *reasons.entry(reason()).or_default() += 1;
        }
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let done = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if before - 1 == self.wake_at || done == self.target.load(Ordering::Acquire) {
            self.submitter.unpark();
        }
    }
}

/// The baseline's burst (window 0, a count) and the sustained load (a window, seconds), run in
/// this member (the leader) on the thread that reads the driver's commands, not the tick thread.
fn load(node: &SyncObj<Bench>, plan: &Plan) -> String {
    let pool = payloads(plan.size);
    let window = if plan.window == 0 {
        u64::MAX
    } else {
        plan.window
    };
    let count = if plan.count == 0 {
        u64::MAX
    } else {
        plan.count
    };
    let tally = Arc::new(Tally {
        start: Instant::now(),
        done: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        last_ok_ns: AtomicU64::new(0),
        submitter: thread::current(),
        // A quarter of the window free again, or the only call done with a window of 1-3.
        wake_at: window - (window / 4).max(1),
        target: AtomicU64::new(u64::MAX),
        reasons: Mutex::new(BTreeMap::new()),
    });
    let start = tally.start;
    let deadline = start + Duration::from_secs_f64(plan.timeout);
    let stop_submitting = if plan.seconds > 0.0 {
        start + Duration::from_secs_f64(plan.seconds)
    } else {
        deadline
    };
    let mut sent: u64 = 0;
    'submit: while sent < count {
        let in_flight = tally.in_flight.load(Ordering::Acquire);
        if in_flight >= window {
            thread::park_timeout(Duration::from_millis(20));
            if Instant::now() >= stop_submitting {
                break;
            }
            continue;
        }
        // Submit what fits in the window, in chunks between two looks at the clock.
        let room = (window - in_flight).min(count - sent).min(4096);
        for _ in 0..room {
            let payload = pool[(sent % pool.len() as u64) as usize].clone();
            tally.in_flight.fetch_add(1, Ordering::AcqRel);
            let tally = Arc::clone(&tally);
            let call = if plan.put {
                node.put(sent, payload)
            } else {
                node.apply(payload)
            };
            call.on_done(move |result| {
                tally.finish(result.is_ok(), || match result {
                    Ok(_) => String::new(),
                    Err(reason) => format!("{reason:?}"),
                });
            });
            sent += 1;
        }
        if Instant::now() >= stop_submitting {
            break 'submit;
        }
    }
    let submitted = start.elapsed().as_secs_f64();
    tally.target.store(sent, Ordering::Release);
    while tally.done.load(Ordering::Acquire) < sent {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        thread::park_timeout(left.min(Duration::from_millis(50)));
    }
    let done = tally.done.load(Ordering::Acquire);
    let ok = tally.ok.load(Ordering::Acquire);
    let elapsed = if ok > 0 {
        tally.last_ok_ns.load(Ordering::Acquire) as f64 / 1e9
    } else {
        start.elapsed().as_secs_f64()
    };
    let reasons = tally.reasons.lock().unwrap_or_else(PoisonError::into_inner);
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r}:{n}")).collect();
    format!(
        "ok={ok} failed={} sent={sent} elapsed={elapsed:.6} submit={submitted:.6} timed_out={} \
         reasons={}",
        done - ok,
        u8::from(done < sent),
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(",")
        },
    )
}

/// Forces a snapshot once the tick loop is quiet and times it until it is durable: the
/// `snapshot` command. The status's `longest_tick_us` covers the last 10 to 20 s and cannot be
/// reset, so the member first waits for the long iterations of what came before (applying a
/// fill) to leave it; read at the end, it then covers the whole snapshot if that took less than
/// 10 s (a longer one is reported with `long=1`).
fn snapshot(node: &SyncObj<Bench>, quiet_us: u64, quiet_s: f64, timeout: f64) -> String {
    let quiet_until = Instant::now() + Duration::from_secs_f64(quiet_s);
    let tick_us = |node: &SyncObj<Bench>| node.status().longest_tick.as_micros();
    while tick_us(node) > u128::from(quiet_us) && Instant::now() < quiet_until {
        thread::sleep(Duration::from_millis(100));
    }
    let before = node.status();
    let start = Instant::now();
    node.force_log_compaction();
    let deadline = start + Duration::from_secs_f64(timeout);
    let mut after = node.status();
    while after.snapshots.compactions == before.snapshots.compactions {
        if Instant::now() >= deadline {
            return format!(
                "ok=0 seconds={:.6} reason=no_snapshot_within_{timeout}s",
                start.elapsed().as_secs_f64()
            );
        }
        thread::sleep(Duration::from_millis(1));
        after = node.status();
    }
    let seconds = start.elapsed().as_secs_f64();
    format!(
        "ok=1 seconds={seconds:.6} bytes={} index={} journal_bytes={} tick_before_us={} \
         tick_us={} long={}",
        after.snapshots.snapshot_bytes,
        after.snapshots.snapshot_index,
        after.journal.bytes,
        before.longest_tick.as_micros(),
        after.longest_tick.as_micros(),
        u8::from(seconds >= 10.0),
    )
}

/// The baseline's experiment (b): sequential waited calls, each timed.
fn latency(node: &SyncObj<Bench>, size: usize, count: u64, budget: f64) -> String {
    let pool = payloads(size);
    let start = Instant::now();
    let mut millis = Vec::new();
    let mut failed = 0u64;
    for i in 0..count {
        if start.elapsed().as_secs_f64() > budget {
            break;
        }
        let payload = pool[(i % pool.len() as u64) as usize].clone();
        let t = Instant::now();
        match node.apply(payload).wait_timeout(Duration::from_secs(5)) {
            Ok(_) => millis.push(t.elapsed().as_secs_f64() * 1e3),
            Err(_) => failed += 1,
        }
    }
    latency_reply(&mut millis, failed)
}

/// The `latency` reply for these call times.
fn latency_reply(millis: &mut [f64], failed: u64) -> String {
    millis.sort_by(f64::total_cmp);
    let mean = millis.iter().sum::<f64>() / millis.len().max(1) as f64;
    format!(
        "done={} failed={failed} p50_ms={:.4} p90_ms={:.4} p99_ms={:.4} mean_ms={mean:.4} \
         max_ms={:.4}",
        millis.len(),
        percentile(millis, 50.0),
        percentile(millis, 90.0),
        percentile(millis, 99.0),
        millis.last().copied().unwrap_or(f64::NAN),
    )
}
