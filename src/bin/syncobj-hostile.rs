//! `syncobj-hostile`: the project's own hostile-client test (what a stranger on the network
//! costs a node). It starts a three-node cluster of child processes on 127.0.0.1, keeps a
//! steady stream of calls running on the leader, and attacks the leader's listening port the
//! way anyone who can reach it could, one attack per fresh cluster. For each attack it reports
//! the leader's RSS growth and its commit rate relative to the same cluster just before the
//! attack, as a table.
//!
//! ```text
//! cargo run --release --bin syncobj-hostile -- [--attacks all] [--paces full,1000]
//!     [--password both] [--window 5] [--in-flight 64]
//! ```
//!
//! # Attacks
//!
//! Each attack opens new connections to the leader either as fast as the attacker's threads can
//! (`full`) or at a fixed number per second (`1000`), for one measurement window:
//!
//! * `read-only-frames`: `--readers` connections (8) each send a read-only hello with the right
//!   cluster identity (a hash of the voters' addresses, public knowledge), then announce the
//!   largest message the node accepts (64 MiB, halved each time the node drops the connection
//!   first) in a first fragment, send fragments of all of it but its last byte, then hold the
//!   connection until the node drops it; then again. With a password the hello is refused: the attack degrades into a
//!   flood of refused hellos.
//! * `trickle`: `--trickle-connections` connections (2,000) each send one byte of a hello every
//!   two seconds and never finish it.
//! * `connect-close`: connect, then close at once (an abortive close: no `TIME_WAIT` piles up
//!   on the attacker's side).
//! * `random-bytes`: connect, send 1 KiB of random bytes, wait until the node closes.
//! * `refused-hello`: connect, send a hello of another cluster, wait until the node closes.
//! * `admin-flood`: connect as `syncobj-admin` does (a plain admin hello, admitted from
//!   loopback without a password), send one request — a status request on every other
//!   connection (real work: the node encodes its status), 1 KiB of random bytes on the others —
//!   and wait until the node closes. Beyond `admin_connections_max` (4) open at once the hello
//!   is refused as busy; with a password every plain admin hello is refused.
//! * `none`: no attack, a control run: its ratio shows the noise of the measurement itself.
//!
//! # Measurement
//!
//! Every node runs `SyncObjConf::default()` (and the password, in the password rows). Once a
//! leader is linked to both followers, it keeps `--in-flight` calls of 16 bytes in flight
//! (closed loop) on its own process; after one second of settling, the driver counts the calls
//! completed over one window without attack, then over the attack (the attacked rate), then,
//! one second after the attack, over another window without attack; the base rate is the mean
//! of the two quiet windows (so that load drifting on the machine biases the ratio less), and
//! the ratio is attacked / base. The leader's `VmRSS` is read just before the attack,
//! every 20 ms during it (the peak) and one second after it ended and every attacking socket
//! was closed (after): the table shows the growth of each over "before". The calls themselves
//! grow the log, so the control row's growth is the floor. The `counters` column shows which
//! of the leader's wire counters (`status().wire`) changed during the attack, and by how much.
//! Targets: RSS growth under 32 MiB for every attack; a ratio of at least 0.7 for every attack
//! paced at 1,000 connections per second.
//!
//! # Hygiene
//!
//! Loopback only. Every run is bounded in time (`--time-limit`, a watchdog kills every child and
//! ends the program past it) and in connections (at most 200,000 per attack). The children are
//! SIGKILLed and reaped when each run ends, on every error path, and by the watchdog; a child
//! also exits on its own when its stdin closes or after its life limit.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};
use syncobj::prelude::*;
use syncobj_net::admin::{ADMIN_REQUEST_BYTES_MAX, AdminRequest};
use syncobj_net::frame::FrameEncoder;
use syncobj_net::handshake::{ClusterId, Hello, HelloReply, Peer};
use syncobj_net::tcp::FRAGMENT_BYTES;

type Error = Box<dyn std::error::Error>;

/// The most connections one attack opens, whatever its pace.
const CONNECTIONS_MAX: u64 = 200_000;

/// How long the attacker waits for a connect, a reply or a close.
const ATTACK_IO_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest frame a node accepts by default (`frame_size_max`): where the read-only
/// attacker starts.
const FRAME_BYTES_START: usize = 64 * 1024 * 1024;

/// The smallest message the read-only attacker falls back to: a little more than a fragment,
/// so that it is still announced and reserved.
const FRAME_BYTES_FLOOR: usize = FRAGMENT_BYTES + 1;

/// The pause between two bytes of a trickling connection.
const TRICKLE_PERIOD: Duration = Duration::from_secs(2);

/// The password of the password rows (the attacker does not know it).
const PASSWORD: &str = "hostile-test-cluster-password";

/// The wait for a leader linked to both followers, after the children start.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// How long the driver waits for a node's answer to a command.
const REPLY_WAIT: Duration = Duration::from_secs(10);

/// The replicated object: counts the calls.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Sink {
    calls: u64,
}

#[replicated]
impl Sink {
    /// One call of the steady stream.
    #[replicated]
    fn push(&mut self, payload: Vec<u8>) -> u64 {
        self.calls += payload.len().min(1) as u64;
        self.calls
    }
}

/// Which rows to run with a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PasswordMode {
    /// Without a password only.
    Off,
    /// With a password only.
    On,
    /// Both.
    Both,
}

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Attacks a 3-node syncobj cluster on 127.0.0.1 and reports what it cost")]
struct Args {
    /// Attacks, comma-separated: none, read-only-frames, trickle, connect-close, random-bytes,
    /// refused-hello, admin-flood; or all.
    #[arg(long, default_value = "all")]
    attacks: String,
    /// New-connection paces, comma-separated: `full`, or connections per second.
    #[arg(long, default_value = "full,1000")]
    paces: String,
    /// Rows without a password, with one, or both.
    #[arg(long, value_enum, default_value_t = PasswordMode::Both)]
    password: PasswordMode,
    /// Seconds of each measurement window (the base one, and the attack).
    #[arg(long, default_value_t = 5.0)]
    window: f64,
    /// Calls the leader keeps in flight.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Connections of the trickle attack.
    #[arg(long, default_value_t = 2000)]
    trickle_connections: u64,
    /// Connections of the read-only-frames attack.
    #[arg(long, default_value_t = 8)]
    readers: usize,
    /// Attacker threads opening connections.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Hard cap on one run (cluster start to last child killed), in seconds.
    #[arg(long, default_value_t = 60.0)]
    time_limit: f64,
    /// Internal: run as cluster member number N.
    #[arg(long, hide = true)]
    node: Option<usize>,
    /// Internal: every member's address, comma-separated.
    #[arg(long, hide = true, default_value = "")]
    addrs: String,
    /// Internal: the cluster's password.
    #[arg(long, hide = true)]
    cluster_password: Option<String>,
    /// Internal: a member exits after this many seconds whatever happens.
    #[arg(long, hide = true, default_value_t = 120.0)]
    max_life: f64,
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    match args.node {
        Some(index) => node_main(index, &args),
        None => driver_main(&args),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ------------------------------------------------------------------------------------- node

/// A line to the driver: `@@ ` then words. One `println!` is one write under the stdout lock.
fn emit(text: std::fmt::Arguments<'_>) {
    println!("@@ {text}");
}

/// Calls of the steady stream that completed, well or not.
#[derive(Default)]
struct Completed {
    ok: AtomicU64,
    failed: AtomicU64,
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
    let mut conf = SyncObjConf::builder();
    if let Some(password) = &args.cluster_password {
        conf = conf.password(password.as_str());
    }
    let node = Arc::new(SyncObj::new(&me, partners, Sink::default(), conf.build()?)?);
    emit(format_args!("event started pid={}", std::process::id()));
    let completed = Arc::new(Completed::default());
    let mut streaming = false;
    for line in io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["status"] => {
                let links = node
                    .other_nodes()
                    .iter()
                    .filter(|a| node.is_node_connected(a))
                    .count();
                let leader = u8::from(node.is_leader());
                emit(format_args!("reply status leader={leader} links={links}"));
            }
            ["stream", in_flight] => {
                if !streaming {
                    streaming = true;
                    stream(
                        Arc::clone(&node),
                        in_flight.parse()?,
                        Arc::clone(&completed),
                    );
                }
                emit(format_args!("reply stream"));
            }
            ["count"] => {
                let ok = completed.ok.load(Ordering::Relaxed);
                let failed = completed.failed.load(Ordering::Relaxed);
                emit(format_args!("reply count ok={ok} failed={failed}"));
            }
            ["wire"] => emit(format_args!("reply wire {}", wire_line(&node))),
            ["exit"] => break,
            _ => emit(format_args!("reply error unknown_command")),
        }
    }
    Ok(())
}

/// Keeps `in_flight` calls in flight on `node` for ever, counting completions.
fn stream(node: Arc<SyncObj<Sink>>, in_flight: usize, completed: Arc<Completed>) {
    thread::spawn(move || {
        let (done, completions) = mpsc::channel::<bool>();
        for _ in 0..in_flight {
            submit(&node, &done, &completed);
        }
        loop {
            match completions.recv_timeout(Duration::from_secs(5)) {
                Ok(true) => {}
                // A failure (no leader, a full queue) comes back at once: do not spin.
                Ok(false) => thread::sleep(Duration::from_millis(1)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            submit(&node, &done, &completed);
        }
    });
}

fn submit(node: &SyncObj<Sink>, done: &Sender<bool>, completed: &Arc<Completed>) {
    let done = done.clone();
    let completed = Arc::clone(completed);
    node.push(vec![7; 16]).on_done(move |result| {
        let counter = match result {
            Ok(_) => &completed.ok,
            Err(_) => &completed.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let _ = done.send(result.is_ok());
    });
}

/// The node's wire counters as `name=value` words, read from their `Debug` form so that the
/// tool works with any set of counters.
fn wire_line(node: &SyncObj<Sink>) -> String {
    let debug = format!("{:?}", node.status().wire);
    let words: Vec<String> = debug
        .split(['{', '}', ','])
        .filter_map(|part| {
            let (name, value) = part.split_once(':')?;
            let value: u64 = value.trim().parse().ok()?;
            Some(format!("{}={value}", name.trim()))
        })
        .collect();
    words.join(" ")
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
    addrs: Vec<String>,
    lines: Receiver<(usize, String)>,
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
                eprintln!("syncobj-hostile: a run exceeded --time-limit; every node was killed");
                std::process::exit(2);
            }
        }
    });
}

/// Three distinct free loopback addresses.
fn addresses() -> Result<Vec<String>, Error> {
    // Hold every listener until all ports are chosen, so that they differ.
    let listeners = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.to_string()))
        .collect()
}

impl Cluster {
    fn start(
        args: &Args,
        password: bool,
        children: &Arc<Mutex<Children>>,
    ) -> Result<Cluster, Error> {
        let addrs = addresses()?;
        let exe = std::env::current_exe()?;
        let (sender, lines) = mpsc::channel();
        let mut cluster = Cluster {
            children: Arc::clone(children),
            stdins: Vec::new(),
            pids: Vec::new(),
            addrs: addrs.clone(),
            lines,
        };
        let deadline = Instant::now() + Duration::from_secs_f64(args.time_limit);
        lock(children).deadline = Some(deadline);
        for index in 0..addrs.len() {
            let mut command = Command::new(&exe);
            command
                .args(["--node", &index.to_string(), "--addrs", &addrs.join(",")])
                .args(["--max-life", &format!("{}", args.time_limit + 30.0)]);
            if password {
                command.args(["--cluster-password", PASSWORD]);
            }
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
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
                        let _ = sender.send((index, message.to_owned()));
                    }
                }
            });
        }
        Ok(cluster)
    }

    /// Sends `command` to node `index` and waits for its reply.
    fn call(&mut self, index: usize, command: &str) -> Result<String, Error> {
        let stdin = self.stdins.get_mut(index).ok_or("no such node")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (from, line) = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Err("a node did not answer".into()),
                Err(RecvTimeoutError::Disconnected) => return Err("every node exited".into()),
            };
            if from == index && line.starts_with("reply ") {
                return Ok(line);
            }
        }
    }

    /// Waits for a leader linked to both followers; returns its index.
    fn wait_leader(&mut self) -> Result<usize, Error> {
        let deadline = Instant::now() + LEADER_WAIT;
        while Instant::now() < deadline {
            for index in 0..self.pids.len() {
                let status = self.call(index, "status")?;
                let fields = fields(&status);
                if fields.get("leader") == Some(&"1") && fields.get("links") == Some(&"2") {
                    return Ok(index);
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err("no leader linked to both followers within 30 s".into())
    }

    /// The calls node `index` completed so far, and when the driver learnt it.
    fn completed(&mut self, index: usize) -> Result<(u64, u64, Instant), Error> {
        let line = self.call(index, "count")?;
        let at = Instant::now();
        Ok((field(&line, "ok")?, field(&line, "failed")?, at))
    }

    /// Node `index`'s wire counters.
    fn wire(&mut self, index: usize) -> Result<BTreeMap<String, u64>, Error> {
        let line = self.call(index, "wire")?;
        Ok(fields(&line)
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect())
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

/// A line of `/proc/<pid>/status`, in MiB (`VmRSS`, `VmHWM`).
fn proc_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Reads a process's `VmRSS` every 20 ms until stopped; keeps the highest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<f64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut peak = f64::NAN;
            while !stopped.load(Ordering::Relaxed) {
                if let Some(rss) = proc_mib(pid, "VmRSS:") {
                    peak = peak.max(rss);
                }
                thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        RssSampler { stop, thread }
    }

    fn peak(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(f64::NAN)
    }
}

// ---------------------------------------------------------------------------------- attacks

/// An attack on the leader's listening port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    None,
    ReadOnlyFrames,
    Trickle,
    ConnectClose,
    RandomBytes,
    RefusedHello,
    AdminFlood,
}

impl Attack {
    const ALL: [Attack; 7] = [
        Attack::None,
        Attack::ReadOnlyFrames,
        Attack::Trickle,
        Attack::ConnectClose,
        Attack::RandomBytes,
        Attack::RefusedHello,
        Attack::AdminFlood,
    ];

    fn name(self) -> &'static str {
        match self {
            Attack::None => "none",
            Attack::ReadOnlyFrames => "read-only-frames",
            Attack::Trickle => "trickle",
            Attack::ConnectClose => "connect-close",
            Attack::RandomBytes => "random-bytes",
            Attack::RefusedHello => "refused-hello",
            Attack::AdminFlood => "admin-flood",
        }
    }

    fn parse_list(list: &str) -> Result<Vec<Attack>, Error> {
        if list == "all" {
            return Ok(Attack::ALL.to_vec());
        }
        list.split(',')
            .map(|name| {
                Attack::ALL
                    .into_iter()
                    .find(|a| a.name() == name)
                    .ok_or_else(|| format!("unknown attack {name}").into())
            })
            .collect()
    }
}

/// How fast an attack opens connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// As fast as the attacker's threads can.
    Full,
    /// This many per second.
    PerSecond(u32),
}

impl Pace {
    fn parse_list(list: &str) -> Result<Vec<Pace>, Error> {
        list.split(',')
            .map(|pace| match pace {
                "full" => Ok(Pace::Full),
                n => match n.parse() {
                    Ok(n) if n > 0 => Ok(Pace::PerSecond(n)),
                    _ => Err(format!("bad pace {n}").into()),
                },
            })
            .collect()
    }

    fn name(self) -> String {
        match self {
            Pace::Full => "full".to_owned(),
            Pace::PerSecond(n) => format!("{n}/s"),
        }
    }
}

/// Hands out the attack's connections at its pace, within its window and count.
struct Pacer {
    start: Instant,
    until: Instant,
    pace: Pace,
    issued: AtomicU64,
    max: u64,
}

impl Pacer {
    fn new(pace: Pace, until: Instant, max: u64) -> Pacer {
        Pacer {
            start: Instant::now(),
            until,
            pace,
            issued: AtomicU64::new(0),
            max: max.min(CONNECTIONS_MAX),
        }
    }

    /// Waits for the next connection's turn; `None` once the window or the count is spent.
    fn ticket(&self) -> Option<u64> {
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        if i >= self.max {
            return None;
        }
        if let Pace::PerSecond(rate) = self.pace {
            let at = self.start + Duration::from_secs_f64(i as f64 / f64::from(rate));
            if at >= self.until {
                return None;
            }
            thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        (Instant::now() < self.until).then_some(i)
    }
}

/// What the attacker saw.
#[derive(Default)]
struct AttackStats {
    /// Connections attempted.
    attempts: AtomicU64,
    /// Connections that connected.
    connected: AtomicU64,
    /// Connections the node closed (or reset) first.
    closed_by_node: AtomicU64,
    /// Read-only or admin hellos the node accepted.
    accepted: AtomicU64,
}

impl AttackStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connection to `target` that resets when dropped (no `TIME_WAIT` on the attacker's side),
/// with read and write timeouts.
fn connect(target: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_linger(Some(Duration::ZERO))?;
    socket.connect_timeout(&target.into(), ATTACK_IO_TIMEOUT)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(ATTACK_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(ATTACK_IO_TIMEOUT))?;
    Ok(stream)
}

/// Reads until the node closes the connection (`true`) or nothing comes for a while.
fn wait_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// `len` pseudo-random bytes (xorshift64* from `seed`).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A hello from read-only node `number` of `cluster`, framed.
fn framed_hello(cluster: ClusterId, number: u64) -> Vec<u8> {
    framed_hello_of(cluster, Peer::ReadOnly(number))
}

/// A hello from `peer`, framed.
fn framed_hello_of(cluster: ClusterId, peer: Peer) -> Vec<u8> {
    let mut hello = Vec::new();
    if let Err(error) = Hello::new(cluster, peer).encode(&mut hello) {
        unreachable!("a read-only or admin hello always encodes: {error}");
    }
    framed(&hello)
}

/// `payload` in one frame (at most [`ADMIN_REQUEST_BYTES_MAX`] bytes).
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::new();
    if let Err(error) =
        FrameEncoder::new(ADMIN_REQUEST_BYTES_MAX as u32).encode(payload, &mut framed)
    {
        unreachable!("a hello or an admin request fits a small frame: {error}");
    }
    framed
}

/// Reads the node's reply to a hello: whether it was accepted.
fn hello_accepted(stream: &mut TcpStream) -> io::Result<bool> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let len = u32::from_le_bytes(header) as usize;
    let mut reply = vec![0u8; len.min(64)];
    stream.read_exact(&mut reply)?;
    Ok(HelloReply::decode(&reply) == Ok(HelloReply::Accepted))
}

/// One connection of the `admin-flood` attack: an admin hello, then a status request (even
/// `seed`) or 1 KiB of junk (odd), then wait until the node closes.
fn admin_connection(target: SocketAddr, seed: u64, stats: &AttackStats) {
    AttackStats::bump(&stats.attempts);
    let Ok(mut stream) = connect(target) else {
        return;
    };
    AttackStats::bump(&stats.connected);
    let hello = framed_hello_of(ClusterId([0; 16]), Peer::Admin);
    let accepted = stream.write_all(&hello).is_ok() && hello_accepted(&mut stream).unwrap_or(false);
    if !accepted {
        AttackStats::bump(&stats.closed_by_node);
        return;
    }
    AttackStats::bump(&stats.accepted);
    let request = match seed % 2 {
        0 => AdminRequest::Status.encode(),
        _ => random_bytes(seed, ADMIN_REQUEST_BYTES_MAX),
    };
    if stream.write_all(&framed(&request)).is_err() || wait_closed(&mut stream) {
        AttackStats::bump(&stats.closed_by_node);
    }
}

/// One connection of the `connect-close`, `random-bytes` or `refused-hello` attack.
fn one_connection(attack: Attack, target: SocketAddr, seed: u64, stats: &AttackStats) {
    AttackStats::bump(&stats.attempts);
    let Ok(mut stream) = connect(target) else {
        return;
    };
    AttackStats::bump(&stats.connected);
    let bytes = match attack {
        Attack::RandomBytes => random_bytes(seed, 1024),
        Attack::RefusedHello => framed_hello(ClusterId([0xee; 16]), seed),
        _ => return, // connect-close: dropped here, an abortive close
    };
    if stream.write_all(&bytes).is_err() || wait_closed(&mut stream) {
        AttackStats::bump(&stats.closed_by_node);
    }
}

/// The trickle attack: opens `count` connections at the pacer's pace, and sends one more byte
/// of an unfinished hello on each every [`TRICKLE_PERIOD`] until the window ends.
fn trickle(target: SocketAddr, pacer: &Pacer, stats: &AttackStats, threads: usize) {
    let live: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());
    // A hello of another cluster, never finished in the window at one byte per period.
    let hello = framed_hello(ClusterId([0xee; 16]), 1);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while pacer.ticket().is_some() {
                    AttackStats::bump(&stats.attempts);
                    let Ok(mut stream) = connect(target) else {
                        continue;
                    };
                    AttackStats::bump(&stats.connected);
                    if stream.write_all(&hello[..1]).is_ok() && stream.set_nonblocking(true).is_ok()
                    {
                        lock(&live).push(stream);
                    }
                }
            });
        }
        scope.spawn(|| drip(&live, &hello, stats, pacer.until));
    });
}

/// Every [`TRICKLE_PERIOD`], one more byte on each live connection; drops those the node
/// closed.
fn drip(live: &Mutex<Vec<TcpStream>>, hello: &[u8], stats: &AttackStats, until: Instant) {
    let mut sent = 1;
    loop {
        let next = Instant::now() + TRICKLE_PERIOD;
        if next >= until {
            break;
        }
        thread::sleep(TRICKLE_PERIOD);
        let byte = hello[sent.min(hello.len() - 1)];
        sent += 1;
        lock(live).retain_mut(|stream| {
            let mut probe = [0u8; 16];
            let closed = match stream.read(&mut probe) {
                Ok(_) => true, // an answer means a refusal: the node closes
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            if closed || stream.write(&[byte]).is_err() {
                AttackStats::bump(&stats.closed_by_node);
                return false;
            }
            true
        });
    }
    thread::sleep(until.saturating_duration_since(Instant::now()));
}

/// Sends a read-only hello and reads the reply: whether it was accepted.
fn read_only_hello(stream: &mut TcpStream, cluster: ClusterId, number: u64) -> io::Result<bool> {
    stream.write_all(&framed_hello(cluster, number))?;
    hello_accepted(stream)
}

/// Announces a message of `len` bytes in a first fragment (the wire format of an open link:
/// kind byte 1, the length, data) and sends fragments of all of it but the last byte, as fast
/// as the node reads; returns how many message bytes went out (less when the node closed first
/// or the window ended).
fn message_but_last(stream: &mut TcpStream, len: usize, chunk: &[u8], until: Instant) -> usize {
    let Ok(announced) = u32::try_from(len) else {
        return 0;
    };
    let mut sent = 0;
    while sent + 1 < len && Instant::now() < until {
        let data = FRAGMENT_BYTES.min(len - 1 - sent);
        let mut prefix = Vec::with_capacity(9);
        if sent == 0 {
            prefix.extend_from_slice(&(data as u32 + 5).to_le_bytes());
            prefix.push(0x01);
            prefix.extend_from_slice(&announced.to_le_bytes());
        } else {
            prefix.extend_from_slice(&(data as u32 + 1).to_le_bytes());
            prefix.push(0x02);
        }
        if !write_all_until(stream, &prefix, until)
            || !write_all_until(stream, &chunk[..data], until)
        {
            break;
        }
        sent += data;
    }
    sent
}

/// Writes all of `bytes` unless the node closes or the window ends; returns whether it did.
fn write_all_until(stream: &mut TcpStream, bytes: &[u8], until: Instant) -> bool {
    let mut written = 0;
    while written < bytes.len() {
        if Instant::now() >= until {
            return false;
        }
        match stream.write(&bytes[written..]) {
            Ok(0) => return false,
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// One reader of the read-only-frames attack: links as a read-only node, sends most of the
/// largest frame the node takes, holds it until the node drops the connection; again.
fn read_only_frames(
    target: SocketAddr,
    cluster: ClusterId,
    pacer: &Pacer,
    stats: &AttackStats,
    seed: u64,
) {
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut frame_bytes = FRAME_BYTES_START;
    let mut number = seed;
    while let Some(ticket) = pacer.ticket() {
        AttackStats::bump(&stats.attempts);
        number = number.wrapping_add(ticket);
        let Ok(mut stream) = connect(target) else {
            continue;
        };
        AttackStats::bump(&stats.connected);
        match read_only_hello(&mut stream, cluster, number) {
            Ok(true) => AttackStats::bump(&stats.accepted),
            _ => {
                AttackStats::bump(&stats.closed_by_node);
                continue;
            }
        }
        let sent = message_but_last(&mut stream, frame_bytes, &chunk, pacer.until);
        if sent + 1 < frame_bytes && Instant::now() < pacer.until {
            frame_bytes = (frame_bytes / 2).max(FRAME_BYTES_FLOOR);
        }
        while Instant::now() < pacer.until {
            if wait_closed(&mut stream) {
                AttackStats::bump(&stats.closed_by_node);
                break;
            }
        }
    }
}

/// What one attack did, from the attacker's side.
struct AttackSummary {
    attempts: u64,
    connected: u64,
    closed_by_node: u64,
    accepted: u64,
}

/// Runs `attack` against `target` at `pace` for `window`.
fn run_attack(
    attack: Attack,
    pace: Pace,
    target: SocketAddr,
    cluster: ClusterId,
    args: &Args,
) -> AttackSummary {
    let until = Instant::now() + Duration::from_secs_f64(args.window);
    let stats = AttackStats::default();
    let max = match attack {
        Attack::Trickle => args.trickle_connections,
        _ => CONNECTIONS_MAX,
    };
    let pacer = Pacer::new(pace, until, max);
    let seed = u64::from(std::process::id()) << 32;
    thread::scope(|scope| match attack {
        Attack::None => thread::sleep(until.saturating_duration_since(Instant::now())),
        Attack::Trickle => trickle(target, &pacer, &stats, args.threads),
        Attack::ReadOnlyFrames => {
            for reader in 0..args.readers {
                let (pacer, stats) = (&pacer, &stats);
                let seed = seed ^ (reader as u64) << 48;
                scope.spawn(move || read_only_frames(target, cluster, pacer, stats, seed));
            }
        }
        Attack::AdminFlood => {
            for _ in 0..args.threads {
                let (pacer, stats) = (&pacer, &stats);
                scope.spawn(move || {
                    while let Some(ticket) = pacer.ticket() {
                        admin_connection(target, seed ^ ticket, stats);
                    }
                });
            }
        }
        _ => {
            for _ in 0..args.threads {
                let (pacer, stats) = (&pacer, &stats);
                scope.spawn(move || {
                    while let Some(ticket) = pacer.ticket() {
                        one_connection(attack, target, seed ^ ticket, stats);
                    }
                });
            }
        }
    });
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    AttackSummary {
        attempts: load(&stats.attempts),
        connected: load(&stats.connected),
        closed_by_node: load(&stats.closed_by_node),
        accepted: load(&stats.accepted),
    }
}

// ------------------------------------------------------------------------------------- runs

/// One row of the table: an attack at a pace, with or without a password.
struct Case {
    attack: Attack,
    pace: Pace,
    password: bool,
}

/// What one run measured.
struct Row {
    case: Case,
    attack: AttackSummary,
    rss_before: f64,
    rss_peak: f64,
    rss_after: f64,
    base_rate: f64,
    /// The base rates before and after the attack.
    base_rates: (f64, f64),
    attacked_rate: f64,
    failed_calls: u64,
    counters: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.attacked_rate / self.base_rate
    }

    /// Whether the row meets the targets: RSS growth under 32 MiB; a ratio of 0.7 or more when
    /// paced at 1,000 connections per second or less.
    fn meets_targets(&self) -> bool {
        let rss = self.rss_peak - self.rss_before < 32.0;
        let paced = matches!(self.case.pace, Pace::PerSecond(n) if n <= 1000);
        rss && (!paced || self.ratio() >= 0.7)
    }

    fn print(&self) {
        println!(
            "| {:<16} | {:>6} | {:<3} | {:>6} | {:>6} | {:>6} | {:>6} | {:>6.1} | {:>+7.1} | {:>+7.1} | {:>6.0} ({:.0}/{:.0}) | {:>6.0} | {:>5.2} | {:<4} | {} |",
            self.case.attack.name(),
            self.case.pace.name(),
            if self.case.password { "on" } else { "off" },
            self.attack.attempts,
            self.attack.connected,
            self.attack.closed_by_node,
            self.attack.accepted,
            self.rss_before,
            self.rss_peak - self.rss_before,
            self.rss_after - self.rss_before,
            self.base_rate,
            self.base_rates.0,
            self.base_rates.1,
            self.attacked_rate,
            self.ratio(),
            if self.meets_targets() { "ok" } else { "MISS" },
            self.counters,
        );
    }
}

fn print_header() {
    println!(
        "| attack           |   pace | pw  |  tried |  conn. | closed | linked |    RSS | peak +MiB | after +MiB | base c/s (before/after) | attacked c/s | ratio | target | leader's counters (change) |"
    );
    println!(
        "|------------------|-------:|-----|-------:|-------:|-------:|-------:|-------:|--------:|--------:|-------:|-------:|------:|------|------|"
    );
}

/// The counters that changed between `before` and `after`, as `name +delta` words.
fn counter_changes(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let changes: Vec<String> = after
        .iter()
        .filter_map(|(name, &value)| {
            let delta = value.checked_sub(before.get(name).copied().unwrap_or(0))?;
            (delta > 0).then(|| format!("{name} +{delta}"))
        })
        .collect();
    if changes.is_empty() {
        "-".to_owned()
    } else {
        changes.join(", ")
    }
}

/// Calls per second between two counts.
fn rate(from: (u64, u64, Instant), to: (u64, u64, Instant)) -> f64 {
    let seconds = (to.2 - from.2).as_secs_f64();
    (to.0.saturating_sub(from.0)) as f64 / seconds.max(1e-9)
}

/// One run on a fresh cluster: a base window, then the attack.
fn run_case(args: &Args, case: Case, children: &Arc<Mutex<Children>>) -> Result<Row, Error> {
    let mut cluster = Cluster::start(args, case.password, children)?;
    let leader = cluster.wait_leader()?;
    cluster.call(leader, &format!("stream {}", args.in_flight))?;
    thread::sleep(Duration::from_secs(1));
    let window = Duration::from_secs_f64(args.window);
    let base_start = cluster.completed(leader)?;
    thread::sleep(window);
    let base_end = cluster.completed(leader)?;
    let pid = cluster.pids[leader];
    let rss_before = proc_mib(pid, "VmRSS:").unwrap_or(f64::NAN);
    let wire_before = cluster.wire(leader)?;
    let target: SocketAddr = cluster.addrs[leader].parse()?;
    let id = ClusterId::of_voters(&cluster.addrs);
    let sampler = RssSampler::start(pid);
    let attack_start = cluster.completed(leader)?;
    let attack = run_attack(case.attack, case.pace, target, id, args);
    let attack_end = cluster.completed(leader)?;
    let rss_peak = sampler.peak().max(rss_before);
    thread::sleep(Duration::from_secs(1));
    let rss_after = proc_mib(pid, "VmRSS:").unwrap_or(f64::NAN);
    let wire_after = cluster.wire(leader)?;
    let after_start = cluster.completed(leader)?;
    thread::sleep(window);
    let after_end = cluster.completed(leader)?;
    drop(cluster);
    let base_rates = (rate(base_start, base_end), rate(after_start, after_end));
    Ok(Row {
        case,
        attack,
        rss_before,
        rss_peak,
        rss_after,
        base_rate: (base_rates.0 + base_rates.1) / 2.0,
        base_rates,
        attacked_rate: rate(attack_start, attack_end),
        failed_calls: after_end.1 - base_start.1,
        counters: counter_changes(&wire_before, &wire_after),
    })
}

/// The rows to run, in order.
fn cases(args: &Args) -> Result<Vec<Case>, Error> {
    let attacks = Attack::parse_list(&args.attacks)?;
    let paces = Pace::parse_list(&args.paces)?;
    let passwords: &[bool] = match args.password {
        PasswordMode::Off => &[false],
        PasswordMode::On => &[true],
        PasswordMode::Both => &[false, true],
    };
    let mut cases = Vec::new();
    for &password in passwords {
        for &attack in &attacks {
            let paces: &[Pace] = match attack {
                Attack::None => &[Pace::Full],
                _ => &paces,
            };
            for &pace in paces {
                cases.push(Case {
                    attack,
                    pace,
                    password,
                });
            }
        }
    }
    Ok(cases)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn driver_main(args: &Args) -> Result<(), Error> {
    let cases = cases(args)?;
    let children = Arc::new(Mutex::new(Children::default()));
    spawn_watchdog(Arc::clone(&children));
    println!(
        "syncobj-hostile: {} runs, window {} s, {} calls in flight, {} cores, load average {}",
        cases.len(),
        args.window,
        args.in_flight,
        thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    print_header();
    let mut rows = Vec::new();
    for case in cases {
        let name = format!("{} {}", case.attack.name(), case.pace.name());
        match run_case(args, case, &children) {
            Ok(row) => {
                row.print();
                rows.push(row);
            }
            Err(error) => println!("| {name}: the run failed: {error} |"),
        }
    }
    let missed = rows.iter().filter(|r| !r.meets_targets()).count();
    let failed_calls: u64 = rows.iter().map(|r| r.failed_calls).sum();
    println!(
        "\n{} rows, {missed} missing a target; {failed_calls} calls failed in all; load average {}",
        rows.len(),
        load_average()
    );
    Ok(())
}
