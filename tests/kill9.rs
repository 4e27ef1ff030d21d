//! Kill -9 under load: three node processes with journals on loopback take a steady stream of
//! synchronous calls while, 50 times, the leader or a random node is killed with SIGKILL and
//! restarted on its journal — and every fifth time the whole cluster is, so that only the
//! journals remember. At the end every node holds the same state, and every call that was
//! acknowledged is in it.
//!
//! The test binary runs itself once per node (`--node`), like the demo; it has no test
//! harness (`harness = false` in Cargo.toml), so `cargo test` runs `main` in its test mode.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::ConfErrors;
use syncobj::prelude::*;

/// Every argument applied, in log order.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Ledger {
    applied: Vec<u64>,
}

#[replicated]
impl Ledger {
    #[replicated]
    fn record(&mut self, call: u64) -> usize {
        self.applied.push(call);
        self.applied.len()
    }
}

const NODES: usize = 3;
const KILLS: usize = 50;
const CALLS_PER_ROUND: usize = 6;
/// How long the client waits for one answer before taking the call as lost.
const ANSWER_WAIT: Duration = Duration::from_secs(8);
/// The whole test must end within this.
const DEADLINE: Duration = Duration::from_secs(240);

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.iter().position(|a| a == "--node") {
        Some(i) => node_main(&args[i + 1..]),
        None => test_main(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kill9: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---- one node ------------------------------------------------------------------------------

fn conf(journal: &Path) -> Result<SyncObjConf, ConfErrors> {
    SyncObjConf::builder()
        .append_entries_period(Duration::from_millis(20))
        .raft_min_timeout(Duration::from_millis(150))
        .raft_max_timeout(Duration::from_millis(300))
        .leader_fallback_timeout(Duration::from_millis(150))
        .connection_timeout(Duration::from_millis(600))
        .connection_retry_time(Duration::from_millis(50))
        .journal_file(journal)
        .build()
}

/// `--node SELF JOURNAL PEER...`: answers `record K`, `leader` and `dump` on standard input.
fn node_main(args: &[String]) -> Result<(), Error> {
    let [me, journal, peers @ ..] = args else {
        return Err("--node SELF JOURNAL PEER...".into());
    };
    let node = SyncObj::new(
        me,
        peers.iter().cloned(),
        Ledger::default(),
        conf(journal.as_ref())?,
    )?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["record", k] => match node.record(k.parse()?).wait_timeout(ANSWER_WAIT) {
                Ok(_) => format!("ok {k}"),
                Err(reason) => format!("error {reason:?}"),
            },
            ["leader"] => node.leader().unwrap_or_else(|| "none".into()),
            ["dump"] => {
                let applied = &node.read().applied;
                let text: Vec<String> = applied.iter().map(u64::to_string).collect();
                format!("dump {}", text.join(","))
            }
            _ => format!("error unknown command {line:?}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

// ---- the test ------------------------------------------------------------------------------

/// A node process, its command pipe, and its answers (read on a thread of their own).
struct NodeProcess {
    child: Child,
    input: ChildStdin,
    answers: Receiver<String>,
}

impl NodeProcess {
    fn start(index: usize, addresses: &[String], dir: &Path) -> Result<NodeProcess, Error> {
        let me = &addresses[index];
        let journal = dir.join(format!("node-{index}"));
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--node")
            .arg(me)
            .arg(&journal)
            .args(addresses.iter().filter(|a| *a != me))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let input = child.stdin.take().ok_or("no stdin")?;
        let output = child.stdout.take().ok_or("no stdout")?;
        let (sender, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(NodeProcess {
            child,
            input,
            answers,
        })
    }

    /// Sends one command and waits for its answer; `None` if none came in time (the process
    /// died, or the call is still undecided).
    fn ask(&mut self, command: &str, wait: Duration) -> Option<String> {
        // Answers to earlier commands that timed out are stale.
        while self.answers.try_recv().is_ok() {}
        writeln!(self.input, "{command}").ok()?;
        self.input.flush().ok()?;
        self.answers.recv_timeout(wait).ok()
    }

    fn kill(&mut self) {
        // SIGKILL on Unix: no destructor, no final sync.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every node process, killed when the test ends however it ends.
struct Cluster {
    nodes: Vec<NodeProcess>,
    addresses: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A small deterministic generator (xorshift64*), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

fn free_address() -> Result<String, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string())
}

fn test_main() -> Result<(), Error> {
    let started = Instant::now();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    println!("kill9: seed {seed}");
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("syncobj-kill9-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let addresses: Vec<String> = (0..NODES)
        .map(|_| free_address())
        .collect::<Result<_, _>>()?;
    let mut cluster = Cluster {
        nodes: Vec::new(),
        addresses,
        dir,
    };
    for index in 0..NODES {
        let node = NodeProcess::start(index, &cluster.addresses, &cluster.dir)?;
        cluster.nodes.push(node);
    }
    let mut acknowledged = BTreeSet::new();
    let mut next_call = 0u64;
    let (mut leader_kills, mut cluster_kills) = (0, 0);
    for kill in 0..KILLS {
        if started.elapsed() > DEADLINE {
            return Err(format!("only {kill} kills within {DEADLINE:?}").into());
        }
        for _ in 0..CALLS_PER_ROUND {
            next_call += 1;
            let node = rng.below(NODES);
            let answer = cluster.nodes[node].ask(&format!("record {next_call}"), ANSWER_WAIT);
            if answer.as_deref() == Some(&format!("ok {next_call}")) {
                acknowledged.insert(next_call);
            }
        }
        if kill % 5 == 4 {
            cluster_kills += 1;
            for index in 0..NODES {
                cluster.nodes[index].kill();
            }
            for index in 0..NODES {
                cluster.nodes[index] = NodeProcess::start(index, &cluster.addresses, &cluster.dir)?;
            }
            continue;
        }
        let victim = if kill % 2 == 0 {
            leader_index(&mut cluster).unwrap_or_else(|| rng.below(NODES))
        } else {
            rng.below(NODES)
        };
        if kill % 2 == 0 && leader_index(&mut cluster) == Some(victim) {
            leader_kills += 1;
        }
        cluster.nodes[victim].kill();
        cluster.nodes[victim] = NodeProcess::start(victim, &cluster.addresses, &cluster.dir)?;
    }
    let dumps = settle_and_dump(&mut cluster, &mut next_call, &mut acknowledged)?;
    let reference = &dumps[0];
    for (index, dump) in dumps.iter().enumerate() {
        if dump != reference {
            return Err(format!("node {index} disagrees with node 0").into());
        }
    }
    let held: BTreeSet<u64> = reference.iter().copied().collect();
    let lost: Vec<&u64> = acknowledged.difference(&held).collect();
    println!(
        "kill9: {KILLS} kills ({leader_kills} of the leader, {cluster_kills} of the whole cluster), {} calls, {} acknowledged, {} applied, {} lost, {:.1} s",
        next_call,
        acknowledged.len(),
        reference.len(),
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    if !lost.is_empty() {
        let first: Vec<&&u64> = lost.iter().take(20).collect();
        return Err(format!(
            "{} acknowledged calls lost, the first: {first:?}",
            lost.len()
        )
        .into());
    }
    if acknowledged.len() < KILLS {
        return Err("too few calls were acknowledged to mean anything".into());
    }
    Ok(())
}

/// The index of the node the cluster calls its leader, asked of every node in turn.
fn leader_index(cluster: &mut Cluster) -> Option<usize> {
    for index in 0..NODES {
        let answer = cluster.nodes[index].ask("leader", Duration::from_secs(2))?;
        if let Some(position) = cluster.addresses.iter().position(|a| *a == answer) {
            return Some(position);
        }
    }
    None
}

/// One acknowledged call on every node (so each has applied everything committed before it),
/// then every node's state.
fn settle_and_dump(
    cluster: &mut Cluster,
    next_call: &mut u64,
    acknowledged: &mut BTreeSet<u64>,
) -> Result<Vec<Vec<u64>>, Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for index in 0..NODES {
        loop {
            if Instant::now() > deadline {
                return Err(format!("node {index} takes no call after the kills").into());
            }
            *next_call += 1;
            let call = *next_call;
            let answer = cluster.nodes[index].ask(&format!("record {call}"), ANSWER_WAIT);
            if answer.as_deref() == Some(&format!("ok {call}")) {
                acknowledged.insert(call);
                break;
            }
        }
    }
    // The last call reached every node only once each applied it: ask until all hold it.
    let last = *next_call;
    let mut dumps = Vec::new();
    for index in 0..NODES {
        loop {
            if Instant::now() > deadline {
                return Err(format!("node {index} never applied call {last}").into());
            }
            let answer = cluster.nodes[index]
                .ask("dump", ANSWER_WAIT)
                .ok_or("no dump")?;
            let list = answer.strip_prefix("dump ").ok_or("bad dump")?;
            let applied: Vec<u64> = list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            if applied.contains(&last) {
                dumps.push(applied);
                break;
            }
            // Not there yet: a call is an event to wait on.
            let _ = cluster.nodes[index].ask("leader", Duration::from_millis(100));
        }
    }
    Ok(dumps)
}
