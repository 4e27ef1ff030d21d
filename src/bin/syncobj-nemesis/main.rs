//! `syncobj-nemesis`: syncobj's own fault campaign on real processes.
//!
//! It starts a cluster of node processes on loopback (itself, run with `--node`), each holding a
//! replicated key-value map with its journal synced before every acknowledgement
//! (`journal_fsync = Always`). The controller is the client: a few client threads per node call
//! `put` and `get` (a `#[replicated]` read, through the log) back to back over the node's
//! standard input, recording each call's invocation before it is sent and its completion after
//! the answer arrives, on the controller's monotonic clock. Meanwhile it inflicts faults one
//! after another:
//!
//! - kill -9 of a node, or of the leader, restarted on its journal;
//! - SIGSTOP of a node, or of the leader, then SIGCONT;
//! - kill -9 of the whole cluster, every node restarted on its journal;
//! - link cuts: a node, or the leader, isolated from every other; a minority split from the
//!   majority (with 3 nodes the minority is one node, as when isolating one).
//!
//! Each fault is held 0.2 to 0.8 s (kills 0.1 to 0.4 s before the restart), undone, and followed
//! by a wait until every node acknowledges a call again (at most 20 s, or the run fails).
//!
//! Link cuts go through a TCP proxy the controller runs in front of each node: the node listens
//! on its `bind_address`, its peers dial its public address where the proxy reads the dialler's
//! handshake (it names the dialling voter) and forwards unless the pair is cut. A cut closes the
//! pair's open connections and refuses new ones until it heals. Cuts are symmetric; a one-way
//! cut is the same fault over TCP (a link needs its handshake answered).
//!
//! At the end the clients stop, every node acknowledges one more write, and the run checks:
//!
//! - every node applied the same writes in the same order, each once;
//! - every acknowledged write is in every node's state;
//! - no write that failed with a reason promising it was never applied
//!   ([`syncobj::Effect::None`]) was applied;
//! - no node cut off from the majority acknowledged a call invoked after the cut (10 ms of
//!   grace), before the heal;
//! - the history is linearizable ([`syncobj::testkit`], key-value model, checked key by key;
//!   calls that failed as never applied, and writes of unknown outcome that no node applied,
//!   are left out).
//!
//! Besides the clients' calls, the controller makes probes, each a call on a thread of its own:
//! every 25 ms on each cut-off node while it is cut off (none may be acknowledged), and every
//! 10 ms on each node that has not acknowledged anything since the fault was undone (so that its
//! recovery is timed by a fresh call, not by its clients' calls that still wait on a lost
//! leader).
//!
//! It prints the faults by kind, the calls (acknowledged, failed as never applied,
//! indeterminate), the failures by reason, and the recovery figures: heal-to-first-ack (from a
//! heal to the first call acknowledged by each node that was cut off); from a kill, or from the
//! leader's pause or isolation, to the first acknowledgement of a later call (a new leader's
//! election when the leader was hit); from a restart or resume to the node's first
//! acknowledgement. It exits with 1 on any violation, listing them, and keeps the journals and
//! node logs (`node-N.log`, the nodes' warnings) for a post-mortem; the seed replays the same
//! fault schedule, not the same timing.
//!
//! ```text
//! cargo run --release --bin syncobj-nemesis                      # CI: 3 nodes, 100 faults
//! cargo run --release --bin syncobj-nemesis -- --faults 1000     # a long run
//! cargo run --release --bin syncobj-nemesis -- --nodes 5 --faults 300 --seed 42
//! cargo run --release --bin syncobj-nemesis -- --help            # every option
//! ```
//!
//! Every node process is killed on every way out (drop, error, panic); a node also exits when
//! its standard input closes, so none outlives a controller that was killed.

mod check;
mod clients;
mod cluster;
mod faults;
mod node;
mod proxy;

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::clients::{Clients, Op, Recording};
use crate::cluster::{Cluster, Layout};
use crate::faults::Probes;
use crate::proxy::Network;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Deadline for the cluster's first acknowledgements, and for the last ones at the end.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// The client number of the last writes in the history.
const SETTLE_CLIENT: u64 = u64::MAX;

/// syncobj's fault campaign on real processes: kill -9, SIGSTOP, whole-cluster kills and link
/// cuts under clients on every node; checks that no acknowledged call is lost, that the nodes
/// agree and that the history is linearizable.
#[derive(Parser, Debug)]
#[command(name = "syncobj-nemesis")]
struct Args {
    /// Node processes in the cluster (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=7))]
    nodes: u16,
    /// Faults to inflict, one after another.
    #[arg(long, default_value_t = 100)]
    faults: usize,
    /// Keys of the replicated map the clients share (default: 32 with 3 nodes, 128 with
    /// more: the more clients per key, the more calls on a key overlap, and the longer the
    /// linearizability check).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    keys: Option<u32>,
    /// Client threads calling on each node.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    clients: u16,
    /// The seed of the fault schedule and the clients' choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// The longest a fault is held, in milliseconds; each is held a random time between a
    /// quarter of it and all of it (kills half that). Long holds let the nodes' redial
    /// back-off grow before a cut heals.
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u64).range(4..=600_000))]
    hold_ms: u64,
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    if let Some(i) = raw.iter().position(|a| a == "--node") {
        return match node::run(&raw[i + 1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("syncobj-nemesis node: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("syncobj-nemesis: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A small deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A number below `n` (which must be positive).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// Runs the campaign; `Ok(false)` if it found a violation.
fn run(args: &Args) -> Result<bool, Error> {
    let started = Instant::now();
    let seed = match args.seed {
        Some(seed) => seed,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    let n = usize::from(args.nodes);
    let keys = args.keys.unwrap_or(if n <= 3 { 32 } else { 128 });
    println!(
        "syncobj-nemesis: {n} nodes, {} faults held up to {} ms, {} keys, {} clients per node, seed {seed}",
        args.faults, args.hold_ms, keys, args.clients
    );
    let mut rng = Rng::new(seed);
    let dir = std::env::temp_dir().join(format!("syncobj-nemesis-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let public = listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.to_string()))
        .collect::<Result<Vec<_>, Error>>()?;
    let bind = (0..n)
        .map(|_| free_address())
        .collect::<Result<Vec<_>, _>>()?;
    let network = Network::start(listeners, public.clone(), bind.clone());
    let mut cluster = Cluster::new(Layout { public, bind, dir });
    for node in 0..n {
        cluster.start(node)?;
    }
    let recording = Arc::new(Recording::new(n, keys));
    let all: Vec<usize> = (0..n).collect();
    let mut clients = Clients::start(&recording, &cluster.links, usize::from(args.clients), seed);
    if let Err(silent) = recording.wait_for_acks(&all, 0, SETTLE_DEADLINE) {
        return Err(format!("nodes {silent:?} acknowledged nothing at start").into());
    }
    let mut faults = Vec::new();
    let mut probes = Probes::default();
    for number in 1..=args.faults {
        let fault = faults::inflict(
            (&mut cluster, &network),
            &recording,
            &mut rng,
            &mut probes,
            Duration::from_millis(args.hold_ms),
        );
        let fault = match fault {
            Ok(fault) => fault,
            Err(error) => {
                let dir = cluster.keep_dir().display().to_string();
                return Err(
                    format!("fault {number}: {error} (journals and logs kept in {dir})").into(),
                );
            }
        };
        if number % 10 == 0 || number == args.faults {
            println!(
                "fault {number}/{}: {} of {:?}; {:.0} s",
                args.faults,
                fault.kind,
                fault.nodes,
                started.elapsed().as_secs_f64()
            );
        }
        faults.push(fault);
    }
    clients.stop();
    probes.join();
    let dumps = settle(&cluster, &recording)?;
    let records = recording.records();
    print!("{}", check::figures(&records, &faults));
    println!("connections refused by cuts: {}", network.refused());
    let checking = Instant::now();
    let violations = check::violations(&records, &faults, &dumps);
    println!(
        "final state: {} writes applied on every node; checked in {:.1} s; {:.0} s in all",
        dumps[0].len(),
        checking.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if violations.is_empty() {
        println!("violations=0");
        return Ok(true);
    }
    println!("violations={}", violations.len());
    for violation in &violations {
        println!("VIOLATION: {violation}");
    }
    println!(
        "seed {seed}; journals and node logs kept in {}",
        cluster.keep_dir().display()
    );
    Ok(false)
}

/// After the faults: has every node acknowledge one more write (so it applied everything
/// committed before), then reads every node's writes until they agree (at most
/// [`SETTLE_DEADLINE`]); returns them.
fn settle(cluster: &Cluster, recording: &Recording) -> Result<Vec<Vec<u64>>, Error> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let since = recording.now();
    for (node, link) in cluster.links.iter().enumerate() {
        while recording
            .wait_for_acks(&[node], since, Duration::ZERO)
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(format!("node {node} acknowledged nothing at the end").into());
            }
            recording.call(link, node, SETTLE_CLIENT, Op::Put { key: 0, value: 0 });
        }
    }
    loop {
        let dumps = cluster
            .links
            .iter()
            .enumerate()
            .map(|(node, link)| dump(link, node))
            .collect::<Result<Vec<_>, _>>()?;
        if dumps.iter().all(|d| *d == dumps[0]) || Instant::now() > deadline {
            return Ok(dumps);
        }
        // Followers apply what they learn is committed with the leader's next message.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Node `node`'s writes, in the order it applied them.
fn dump(link: &cluster::Link, node: usize) -> Result<Vec<u64>, Error> {
    let answer = link
        .ask("dump", Duration::from_secs(10))
        .ok_or_else(|| format!("node {node} did not answer dump"))?;
    let list = answer
        .strip_prefix("dump")
        .ok_or_else(|| format!("node {node} answered dump with {answer:?}"))?
        .trim();
    if list.is_empty() {
        return Ok(Vec::new());
    }
    Ok(list
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<u64>, _>>()?)
}

fn free_address() -> Result<String, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string())
}
