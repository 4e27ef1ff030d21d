//! The "burst K" throughput workload of the PySyncObj baseline (its section (a)),
//! run on syncobj nodes, for a first side-by-side figure with PySyncObj 0.3.17 (issue 4; the full
//! `syncobj-bench` tool comes later).
//!
//! ```text
//! cargo run --release --example burst -- [--nodes 3] [--size 10] [--calls 100000] [--repeat 3]
//! cargo run --release --example burst -- --mode latency [--calls 400]
//! ```
//!
//! # How it maps to the baseline
//!
//! * **Separate OS processes.** PySyncObj's harness runs every node as its own process
//!   (`driver.py` spawns N `node.py`), so this example does the same: the driver re-runs its own
//!   executable N times with a hidden `--node` flag. In-process nodes would not be faithful: they
//!   would share one allocator, and the per-node CPU and peak-RSS figures (baseline (e)) would
//!   be lost. Nodes listen on 127.0.0.1 only, on free ports chosen by the driver (`--base-port P`
//!   uses P+1..P+N instead, as the baseline's 47001..), full mesh, fresh processes with an
//!   in-memory log for every run, started back to back.
//! * **Configuration.** `SyncObjConf::default()`, whose timers are PySyncObj's defaults
//!   (auto_tick_period 50 ms, append_entries_period 100 ms, election timeout 0.4-1.4 s,
//!   commands_queue_size 100 000). syncobj ignores `append_entries_use_batch` by design (it
//!   sends entries as soon as a tick has drained a batch of proposals), so there is no
//!   `conf=nobatch` row. Plain (unencrypted) transport, as the baseline's "plain" rows, unless
//!   `--password P` is given (its "encrypted" row).
//! * **State machine.** One replicated method `apply(payload) -> u64` doing `count += 1;
//!   total_bytes += len(payload); return count`. Payloads are taken cyclically from a pool of
//!   256 distinct pseudo-random byte strings of exactly B bytes (seed 12345; not Python's
//!   generator, the content does not matter), built before the timed loop. The payload is a
//!   `bytes::Bytes`, which MessagePack encodes as a `bin`, so a log entry is B + 19 bytes
//!   (16-byte command header with the leader's cluster-time stamp, 1-byte tuple header, 2-byte
//!   bin header), like PySyncObj's ~B+20.
//! * **Leadership hook.** Every node sets `on_state_changed`; on becoming leader it enqueues one
//!   detached `apply(b"L" * 10)` with an `on_done` callback that reports the commit to the
//!   driver. The first successful report names the leader and gives the cold start.
//! * **Burst.** One second after that first leader commit (settle), the leader process, on its
//!   main thread (not the tick thread), issues K calls `apply(payload).on_done(cb)` back to back,
//!   with no rate limit and no in-flight window (open loop), then waits until all K callbacks
//!   fired (timeout 50 s, less if the hard cap is nearer). A callback counts as a success when
//!   the call returned `Ok`, i.e. the entry was committed by a majority and applied on the
//!   leader. `commits_per_second = successes / (t_last_successful_callback -
//!   t_before_first_call)`. K defaults to the baseline's: 100 000 for B = 10, 20 000 for
//!   B = 1000, 5 000 for B = 10 000.
//! * **Also recorded**, as in the baseline: the time to submit all K calls, the leader's CPU
//!   time (utime + stime) over the burst, every node's `VmHWM` after the burst, and each node's
//!   applied count 0.5 s after the burst (K + 1 with the leader's own entry once followers
//!   caught up).
//! * **`--mode latency`** is the baseline's experiment (b): after settle, the leader's main thread
//!   makes sequential `apply(payload).wait_timeout(5 s)` calls (400 by default), each timed;
//!   percentiles by linear interpolation.
//!
//! # Connection race
//!
//! Nodes start back to back, and a node dials each partner whose address sorts below its own
//! once, then not again before `connection_retry_time` (5 s by default) has passed
//! (`syncobj-net/src/tcp.rs`, `dial_due`). When the partner was not listening yet, that link
//! stays down for about 5 s, so the burst (about 2 s after start) often runs with one link
//! missing; if it is a follower's link to the leader, that follower takes no part (the leader
//! and the other follower are a majority). The summary line shows each node's linked partners
//! before and after the burst (`links_before`, `links_after`). `--wait-mesh` waits for the full
//! mesh before the settle time; that is not in the baseline's definition, so it is off by
//! default.
//!
//! # Hygiene
//!
//! Loopback addresses only. The driver holds every child in one list shared with a watchdog
//! thread: children are SIGKILLed and reaped when a run ends, on every error path (the list's
//! owner kills them on drop, also while unwinding from a panic), and by the watchdog, which ends
//! the whole program, when a run exceeds `--time-limit` (60 s by default). A child also exits
//! on its own when its stdin closes (the driver is gone) or after its own life limit.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::LazyLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use serde::{Deserialize, Serialize};
use syncobj::RaftState;
use syncobj::prelude::*;

type Error = Box<dyn std::error::Error>;

/// The baseline's state machine: counts calls and payload bytes.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Bench {
    count: u64,
    total_bytes: u64,
}

#[replicated]
impl Bench {
    /// PySyncObj harness's `apply(payload) -> int`.
    #[replicated]
    fn apply(&mut self, payload: Bytes) -> u64 {
        self.count += 1;
        self.total_bytes += payload.len() as u64;
        self.count
    }

    fn count(&self) -> u64 {
        self.count
    }
}

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "PySyncObj baseline burst workload on syncobj nodes (separate processes)")]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// Calls per run (default: the baseline's K for the size, or 400 sequential calls for
    /// `--mode latency`).
    #[arg(long)]
    calls: Option<u64>,
    /// `burst` (baseline (a): throughput) or `latency` (baseline (b): sequential waits).
    #[arg(long, default_value = "burst")]
    mode: String,
    /// Runs, each on a fresh cluster.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Seconds to wait after the first leader commit before measuring.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Hard cap on one run (cluster start to last child killed), in seconds.
    #[arg(long, default_value_t = 60.0)]
    time_limit: f64,
    /// Before the settle time, wait (at most 15 s) until every node is linked to every other.
    /// Not in the baseline's definition; see "Connection race" in the file's documentation.
    #[arg(long)]
    wait_mesh: bool,
    /// Use ports base+1..base+N instead of free ports picked by the OS.
    #[arg(long)]
    base_port: Option<u16>,
    /// Encrypt every connection with this password (the baseline's "encrypted" row).
    #[arg(long)]
    password: Option<String>,
    /// Give every node a journal under this directory (a fresh one per run, removed after it),
    /// synced before each acknowledgement (`journal_fsync = always`). With `--mode fsync`, the
    /// directory whose disk is probed.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Internal: run as cluster member number N.
    #[arg(long, hide = true)]
    node: Option<usize>,
    /// Internal: every member's address, comma-separated.
    #[arg(long, hide = true, default_value = "")]
    addrs: String,
    /// Internal: a member exits after this many seconds whatever happens.
    #[arg(long, hide = true, default_value_t = 150.0)]
    max_life: f64,
}

/// When the program started: run directories are named after the time since.
static PROCESS_START: LazyLock<Instant> = LazyLock::new(Instant::now);

fn main() -> Result<(), Error> {
    // Logs go to standard error at the level RUST_LOG names (errors only by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match args.node {
        Some(index) => node_main(index, &args),
        None => driver_main(&args),
    }
}

// ------------------------------------------------------------------------------------- node

/// A line to the driver: `@@ ` then words. One `println!` is one write under the stdout lock.
fn emit(text: std::fmt::Arguments<'_>) {
    println!("@@ {text}");
}

fn node_main(index: usize, args: &Args) -> Result<(), Error> {
    let max_life = Duration::from_secs_f64(args.max_life);
    thread::spawn(move || {
        thread::sleep(max_life);
        std::process::exit(3);
    });
    let addresses: Vec<String> = args.addrs.split(',').map(str::to_owned).collect();
    let me = addresses
        .get(index)
        .ok_or("--node is out of range")?
        .clone();
    let partners: Vec<String> = addresses.iter().filter(|a| **a != me).cloned().collect();

    // The leadership hook needs the node, which exists only once the conf is consumed.
    let slot: Arc<OnceLock<Weak<SyncObj<Bench>>>> = Arc::new(OnceLock::new());
    let hook_slot = Arc::clone(&slot);
    let mut conf = SyncObjConf::builder();
    if let Some(password) = &args.password {
        conf = conf.password(password.as_str());
    }
    if let Some(journal) = &args.journal {
        conf = conf.journal_file(journal);
    }
    let conf = conf.on_state_changed(move |_old, new| {
        if new != RaftState::Leader {
            return;
        }
        let became = Instant::now();
        match hook_slot.get().and_then(Weak::upgrade) {
            Some(node) => node
                .apply(Bytes::from_static(b"LLLLLLLLLL"))
                .on_done(move |result| {
                    let dt = became.elapsed().as_secs_f64();
                    match result {
                        Ok(_) => emit(format_args!("event leader_commit ok=1 dt={dt:.6}")),
                        Err(e) => emit(format_args!("event leader_commit ok=0 err={e:?}")),
                    }
                }),
            None => emit(format_args!("event leader_commit ok=0 err=not_built")),
        }
    });
    let conf = conf.build()?;
    let node = Arc::new(SyncObj::new(&me, partners, Bench::default(), conf)?);
    let _ = slot.set(Arc::downgrade(&node));
    emit(format_args!("event started pid={}", std::process::id()));

    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["burst", size, count, timeout] => {
                let reply = burst(&node, size.parse()?, count.parse()?, timeout.parse()?);
                emit(format_args!("reply burst {reply}"));
            }
            ["latency", size, count, budget] => {
                let reply = latency(&node, size.parse()?, count.parse()?, budget.parse()?);
                emit(format_args!("reply latency {reply}"));
            }
            ["status"] => {
                let count = node.read().count();
                let leader = u8::from(node.is_leader());
                let links = node
                    .other_nodes()
                    .iter()
                    .filter(|a| node.is_node_connected(a))
                    .count();
                emit(format_args!(
                    "reply status count={count} leader={leader} links={links}"
                ));
            }
            ["exit"] => break,
            _ => emit(format_args!("reply error unknown_command")),
        }
    }
    drop(node);
    Ok(())
}

/// 256 distinct pseudo-random payloads of `size` bytes (SplitMix64, seed 12345).
fn payloads(size: usize) -> Vec<Bytes> {
    let mut state: u64 = 12345;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..256)
        .map(|_| {
            let bytes: Vec<u8> = (0..size).map(|_| next() as u8).collect();
            Bytes::from(bytes)
        })
        .collect()
}

/// What the burst's callbacks count.
#[derive(Default)]
struct Tally {
    done: u64,
    ok: u64,
    failed: u64,
    reasons: BTreeMap<String, u64>,
    last_ok: Option<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Baseline (a), in the leader: `count` calls back to back, each with a callback; waits until
/// every callback fired or `timeout` seconds passed.
fn burst(node: &SyncObj<Bench>, size: usize, count: u64, timeout: f64) -> String {
    let pool = payloads(size);
    let shared = Arc::new((Mutex::new(Tally::default()), Condvar::new()));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(timeout);
    for i in 0..count {
        let shared = Arc::clone(&shared);
        let payload = pool[(i % pool.len() as u64) as usize].clone();
        node.apply(payload).on_done(move |result| {
            let now = Instant::now();
            let (tally, all_done) = &*shared;
            let mut tally = lock(tally);
            tally.done += 1;
            match result {
                Ok(_) => {
                    tally.ok += 1;
                    tally.last_ok = Some(now);
                }
                Err(reason) => {
                    tally.failed += 1;
                    *tally.reasons.entry(format!("{reason:?}")).or_default() += 1;
                }
            }
            if tally.done >= count {
                all_done.notify_all();
            }
        });
    }
    let submitted = t0.elapsed().as_secs_f64();
    let (tally, all_done) = &*shared;
    let mut tally = lock(tally);
    while tally.done < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tally = all_done
            .wait_timeout(tally, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    let end = Instant::now();
    let elapsed = (tally.last_ok.unwrap_or(end) - t0).as_secs_f64();
    let reasons: Vec<String> = tally
        .reasons
        .iter()
        .map(|(reason, n)| format!("{reason}:{n}"))
        .collect();
    format!(
        "ok={} failed={} done={} elapsed={elapsed:.6} submit={submitted:.6} timed_out={} reasons={}",
        tally.ok,
        tally.failed,
        tally.done,
        u8::from(tally.done < count),
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(",")
        },
    )
}

/// Baseline (b), in the leader: sequential waited calls, each timed.
fn latency(node: &SyncObj<Bench>, size: usize, count: u64, budget: f64) -> String {
    let pool = payloads(size);
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    for i in 0..count {
        if start.elapsed().as_secs_f64() > budget {
            break;
        }
        let payload = pool[(i % pool.len() as u64) as usize].clone();
        let t = Instant::now();
        match node.apply(payload).wait_timeout(Duration::from_secs(5)) {
            Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
            Err(_) => failed += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    format!(
        "done={} failed={failed} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} mean_ms={mean:.3} max_ms={:.3}",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    )
}

/// The `p`th percentile of sorted `xs`, by linear interpolation (as the baseline's `pct`).
fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let k = (xs.len() - 1) as f64 * p / 100.0;
    let lo = k.floor() as usize;
    let hi = (lo + 1).min(xs.len() - 1);
    xs[lo] + (xs[hi] - xs[lo]) * (k - lo as f64)
}

// ----------------------------------------------------------------------------------- driver

/// The children of the current run, shared with the watchdog so that either can kill them.
#[derive(Default)]
struct Children {
    procs: Vec<Child>,
    /// When the watchdog kills everything and ends the program.
    deadline: Option<Instant>,
}

/// Owns the children of one run: kills and reaps them when dropped, on every path.
struct Cluster {
    children: Arc<Mutex<Children>>,
    stdins: Vec<ChildStdin>,
    pids: Vec<u32>,
    lines: Receiver<(usize, Instant, String)>,
    /// Events read while waiting for something else.
    events: Vec<(usize, Instant, String)>,
    t0: Instant,
    /// This run's journals, removed with the cluster.
    run_dir: Option<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stdins.clear();
        let mut children = lock(&self.children);
        for child in &mut children.procs {
            let _ = child.kill(); // SIGKILL; an error means it already exited
        }
        for child in &mut children.procs {
            let _ = child.wait();
        }
        children.procs.clear();
        children.deadline = None;
        if let Some(dir) = &self.run_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Kills every child and ends the program when a run passes its deadline.
fn spawn_watchdog(children: Arc<Mutex<Children>>) {
    thread::spawn(move || {
        loop {
            thread::sleep(Duration::from_millis(100));
            let mut children = lock(&children);
            if children.deadline.is_some_and(|d| Instant::now() > d) {
                for child in &mut children.procs {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                eprintln!("burst: the run exceeded --time-limit; every node was killed");
                std::process::exit(2);
            }
        }
    });
}

/// `n` distinct free loopback addresses (or base+1..base+n).
fn addresses(n: usize, base_port: Option<u16>) -> Result<Vec<String>, Error> {
    if let Some(base) = base_port {
        return Ok((1..=n)
            .map(|i| format!("127.0.0.1:{}", base as usize + i))
            .collect());
    }
    // Hold every listener until all ports are chosen, so that they differ.
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.to_string()))
        .collect()
}

impl Cluster {
    fn start(args: &Args, children: &Arc<Mutex<Children>>) -> Result<Cluster, Error> {
        let addrs = addresses(args.nodes, args.base_port)?;
        let exe = std::env::current_exe()?;
        let (sender, lines) = mpsc::channel();
        let run_dir = args.journal.as_ref().map(|base| {
            let nanos = Instant::now().duration_since(*PROCESS_START).as_nanos();
            base.join(format!("burst-{}-{nanos}", std::process::id()))
        });
        let mut cluster = Cluster {
            children: Arc::clone(children),
            stdins: Vec::new(),
            pids: Vec::new(),
            lines,
            events: Vec::new(),
            t0: Instant::now(),
            run_dir: run_dir.clone(),
        };
        lock(children).deadline = Some(cluster.t0 + Duration::from_secs_f64(args.time_limit));
        for index in 0..args.nodes {
            let mut child = Command::new(&exe)
                .args(["--node", &index.to_string(), "--addrs", &addrs.join(",")])
                .args(["--max-life", &format!("{}", args.time_limit + 30.0)])
                .args(
                    args.password
                        .iter()
                        .flat_map(|p| ["--password", p.as_str()]),
                )
                .args(run_dir.iter().flat_map(|dir| {
                    let journal = dir.join(format!("node-{index}"));
                    ["--journal".into(), journal.into_os_string()]
                }))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take();
            cluster.pids.push(child.id());
            lock(children).procs.push(child);
            let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
                return Err("a child has no pipes".into());
            };
            cluster.stdins.push(stdin);
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(message) = line.strip_prefix("@@ ") {
                        let _ = sender.send((index, Instant::now(), message.to_owned()));
                    }
                }
            });
        }
        Ok(cluster)
    }

    /// The next line from any node, for at most until `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Result<(usize, Instant, String), Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err("timed out waiting for a node".into()),
            Err(RecvTimeoutError::Disconnected) => Err("every node exited".into()),
        }
    }

    /// Waits for the first successful leader commit: (leader index, arrival, time from
    /// becoming leader to commit).
    fn first_leader_commit(&mut self, timeout: Duration) -> Result<(usize, Instant, f64), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let (index, at, line) = self.next_line(deadline)?;
            let fields = fields(&line);
            if line.starts_with("event leader_commit") && fields.get("ok") == Some(&"1") {
                let dt = fields.get("dt").and_then(|d| d.parse().ok()).unwrap_or(0.0);
                return Ok((index, at, dt));
            }
            self.events.push((index, at, line));
        }
    }

    /// Sends `command` to node `index` and waits for its reply.
    fn call(&mut self, index: usize, command: &str, timeout: Duration) -> Result<String, Error> {
        let stdin = self.stdins.get_mut(index).ok_or("no such node")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let deadline = Instant::now() + timeout;
        loop {
            let (from, at, line) = self.next_line(deadline)?;
            if from == index && line.starts_with("reply ") {
                return Ok(line);
            }
            self.events.push((from, at, line));
        }
    }
}

/// `key=value` words of a line.
fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn field<T: std::str::FromStr>(line: &str, key: &str) -> Result<T, Error> {
    fields(line)
        .get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key} in {line:?}").into())
}

/// utime + stime of `pid` in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let parts: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = parts.get(11)?.parse().ok()?;
    let stime: f64 = parts.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `VmHWM` (peak RSS) of `pid` in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn driver_main(args: &Args) -> Result<(), Error> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let latency_mode = match args.mode.as_str() {
        "burst" => false,
        "latency" => true,
        "fsync" => return fsync_probe(args),
        other => return Err(format!("unknown --mode {other}").into()),
    };
    let calls = args.calls.unwrap_or(match (latency_mode, args.size) {
        (true, _) => 400,
        (false, 0..=10) => 100_000,
        (false, 11..=1000) => 20_000,
        (false, _) => 5_000,
    });
    let children = Arc::new(Mutex::new(Children::default()));
    spawn_watchdog(Arc::clone(&children));
    let mut rates = Vec::new();
    for _ in 0..args.repeat {
        let line = if latency_mode {
            latency_run(args, calls, &children)?
        } else {
            let (line, rate) = burst_run(args, calls, &children)?;
            rates.push(rate);
            line
        };
        println!("{line}");
        thread::sleep(Duration::from_millis(500));
    }
    if rates.len() > 1 {
        rates.sort_by(f64::total_cmp);
        let median = percentile(&rates, 50.0);
        println!(
            "summary nodes={} size={} calls={calls} runs={} commits_per_second_median={median:.0} min={:.0} max={:.0}",
            args.nodes,
            args.size,
            rates.len(),
            rates[0],
            rates[rates.len() - 1],
        );
    }
    Ok(())
}

/// A started cluster, its leader and the cold start (first leader commit) in seconds.
struct Settled {
    cluster: Cluster,
    leader: usize,
    cold_start: f64,
    /// How many partners each node was linked to when the measurement began.
    links: Vec<usize>,
}

/// Each node's (applied count, number of partners linked).
fn node_statuses(cluster: &mut Cluster, nodes: usize) -> Result<Vec<(u64, usize)>, Error> {
    (0..nodes)
        .map(|index| {
            let status = cluster.call(index, "status", Duration::from_secs(5))?;
            Ok((field(&status, "count")?, field(&status, "links")?))
        })
        .collect()
}

/// Starts a cluster and waits for its first leader commit (and the full mesh with
/// `--wait-mesh`) plus the settle time.
fn settled_cluster(args: &Args, children: &Arc<Mutex<Children>>) -> Result<Settled, Error> {
    let mut cluster = Cluster::start(args, children)?;
    let (leader, at, _) = cluster.first_leader_commit(Duration::from_secs(40))?;
    let cold_start = (at - cluster.t0).as_secs_f64();
    if args.wait_mesh {
        let deadline = Instant::now() + Duration::from_secs(15);
        while node_statuses(&mut cluster, args.nodes)?
            .iter()
            .any(|&(_, links)| links + 1 < args.nodes)
        {
            if Instant::now() > deadline {
                return Err("the nodes did not all link up within 15 s".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    thread::sleep(Duration::from_secs_f64(args.settle));
    let links = node_statuses(&mut cluster, args.nodes)?
        .into_iter()
        .map(|(_, links)| links)
        .collect();
    Ok(Settled {
        cluster,
        leader,
        cold_start,
        links,
    })
}

/// `a/b/c`.
fn slashed<T: ToString>(values: impl IntoIterator<Item = T>) -> String {
    let values: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
    values.join("/")
}

/// Seconds left before the run's hard cap, minus `margin`.
fn left_before_cap(cluster: &Cluster, args: &Args, margin: f64) -> f64 {
    let used = cluster.t0.elapsed().as_secs_f64();
    (args.time_limit - used - margin).max(0.0)
}

fn burst_run(
    args: &Args,
    calls: u64,
    children: &Arc<Mutex<Children>>,
) -> Result<(String, f64), Error> {
    let Settled {
        mut cluster,
        leader,
        cold_start,
        links,
    } = settled_cluster(args, children)?;
    let pids = cluster.pids.clone();
    let cpu0: Vec<Option<f64>> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let timeout = left_before_cap(&cluster, args, 5.0).min(50.0);
    let command = format!("burst {} {calls} {timeout:.3}", args.size);
    let reply = cluster.call(leader, &command, Duration::from_secs_f64(timeout + 3.0))?;
    let cpu1: Vec<Option<f64>> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let rss: Vec<Option<f64>> = pids.iter().map(|&p| peak_rss_mib(p)).collect();
    let ok: u64 = field(&reply, "ok")?;
    let failed: u64 = field(&reply, "failed")?;
    let elapsed: f64 = field(&reply, "elapsed")?;
    let submit: f64 = field(&reply, "submit")?;
    let timed_out: u8 = field(&reply, "timed_out")?;
    let reasons: String = field(&reply, "reasons")?;
    let rate = if elapsed > 0.0 {
        ok as f64 / elapsed
    } else {
        0.0
    };
    thread::sleep(Duration::from_millis(500));
    let after = node_statuses(&mut cluster, args.nodes)?;
    let leader_cpu = match (cpu0[leader], cpu1[leader]) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let follower_cpu = (0..args.nodes)
        .filter(|&i| i != leader)
        .filter_map(|i| Some(cpu1[i]? - cpu0[i]?))
        .fold(f64::NAN, f64::max);
    let follower_rss = (0..args.nodes)
        .filter(|&i| i != leader)
        .filter_map(|i| rss[i])
        .fold(f64::NAN, f64::max);
    drop(cluster);
    let line = format!(
        "burst nodes={} size={} calls={calls} ok={ok} failed={failed} seconds={elapsed:.3} \
         commits_per_second={rate:.0} submit_seconds={submit:.3} timed_out={timed_out} \
         reasons={reasons} leader_cpu_s={leader_cpu:.2} max_follower_cpu_s={follower_cpu:.2} \
         leader_peak_rss_mib={:.1} max_follower_peak_rss_mib={follower_rss:.1} \
         cold_start_s={cold_start:.3} links_before={} applied={} links_after={}",
        args.nodes,
        args.size,
        rss[leader].unwrap_or(f64::NAN),
        slashed(links),
        slashed(after.iter().map(|a| a.0)),
        slashed(after.iter().map(|a| a.1)),
    );
    Ok((line, rate))
}

fn latency_run(args: &Args, calls: u64, children: &Arc<Mutex<Children>>) -> Result<String, Error> {
    let Settled {
        mut cluster,
        leader,
        cold_start,
        links,
    } = settled_cluster(args, children)?;
    let budget = left_before_cap(&cluster, args, 10.0).min(45.0);
    let command = format!("latency {} {calls} {budget:.3}", args.size);
    let reply = cluster.call(leader, &command, Duration::from_secs_f64(budget + 8.0))?;
    drop(cluster);
    let measured = reply.trim_start_matches("reply latency ");
    Ok(format!(
        "latency nodes={} size={} calls={calls} {measured} cold_start_s={cold_start:.3} \
         links_before={}",
        args.nodes,
        args.size,
        slashed(links),
    ))
}

/// `--mode fsync`: how long this machine takes to make a small write durable, in the
/// directory given by `--journal` (the system's temporary directory by default): 4 KiB
/// appended, then `fdatasync`, `--calls` times (default 1000).
fn fsync_probe(args: &Args) -> Result<(), Error> {
    let dir = args.journal.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = vec![0x5a_u8; 4096];
    let rounds = usize::try_from(args.calls.unwrap_or(1000))
        .unwrap_or(1000)
        .max(1);
    let mut micros = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        micros.push(start.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    micros.sort_by(f64::total_cmp);
    println!(
        "fsync dir={} rounds={rounds} p50_us={:.0} p99_us={:.0} max_us={:.0} syncs_per_second={:.0}",
        dir.display(),
        percentile(&micros, 50.0),
        percentile(&micros, 99.0),
        micros[micros.len() - 1],
        1e6 / percentile(&micros, 50.0)
    );
    Ok(())
}
