//! A local syncobj cluster at work: three OS processes on loopback, talking TCP.
//!
//! The example runs itself once per node (`--node`), drives the nodes through their standard
//! input, and shows: an election, replicated calls made on every node, the leader's process
//! killed, the re-election, the killed node restarted and catching up, and each node's status.
//! It stops every process it started, also when something fails.
//!
//! Each node keeps its log in a journal under the system's temporary directory (removed at the
//! end), so the killed node comes back with what it had and catches up on the rest.
//!
//! Run it with `cargo run --release --example demo`; `RUST_LOG=info` shows the nodes' logs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

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

/// How long one step may take before the demo gives up.
const PATIENCE: Duration = Duration::from_secs(15);

type Error = Box<dyn std::error::Error>;

/// The environment variable that tells a node process where its cluster keeps its journals.
const DATA_DIR_VAR: &str = "SYNCOBJ_DEMO_DATA";

fn main() -> ExitCode {
    // Logs go to standard error, at the level RUST_LOG names (warnings by default).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let result = match args.iter().position(|a| a == "--node") {
        Some(i) => node_main(&args[i + 1..]),
        None => cluster_main(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The cluster's shared secret. A real deployment reads it from a secret store, not the source.
const DEMO_PASSWORD: &str = "demo: not a secret";

// ---- one node: answers commands on stdin, one line each -----------------------------------

/// `--node SELF PEER...`: runs one node and answers `add N`, `sync`, `leader`, `status`,
/// `quit` on standard input.
fn node_main(args: &[String]) -> Result<(), Error> {
    let (me, peers) = args.split_first().ok_or("--node needs an address")?;
    let data = std::env::var_os(DATA_DIR_VAR).ok_or("no data directory")?;
    let journal = std::path::Path::new(&data).join(me.replace([':', '.'], "_"));
    let node = SyncObj::builder(me.as_str())
        .partners(peers.iter().cloned())
        // Every connection is encrypted and authenticated with a key derived from this.
        .password(DEMO_PASSWORD)
        .journal_file(journal)
        .start(Counter::default())?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["add", n] => call(&node, n.parse()?),
            ["sync"] => call(&node, 0),
            ["read"] => node.read().value.to_string(),
            ["leader"] => node.leader().unwrap_or_else(|| "none".into()),
            ["status"] => {
                let s = node.status();
                format!(
                    "term {} commit {} applied {} leader {}",
                    s.raft_term,
                    s.commit_index,
                    s.last_applied,
                    s.leader.unwrap_or_default()
                )
            }
            ["quit"] => break,
            _ => format!("error unknown command {line:?}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    node.destroy_synchronous();
    Ok(())
}

/// Makes a call and renders the outcome, retrying only a call that was certainly never applied
/// (`add` is not idempotent: retrying a call whose outcome is unknown could add twice).
fn call(node: &SyncObj<Counter>, n: i64) -> String {
    for _ in 0..50 {
        match node.add(n).wait_timeout(PATIENCE) {
            Ok(value) => return format!("ok {value}"),
            Err(reason) if reason.effect() == Effect::None => continue,
            Err(reason) => return format!("error {reason}"),
        }
    }
    "error no stable leader".into()
}

// ---- the cluster: starts, drives and stops the node processes ------------------------------

/// A node process and its command pipe.
struct NodeProcess {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl NodeProcess {
    fn start(me: &str, peers: &[String]) -> Result<NodeProcess, Error> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(DATA_DIR_VAR, data_dir())
            .arg("--node")
            .arg(me)
            .args(peers.iter().filter(|p| *p != me))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let input = child.stdin.take().ok_or("no stdin pipe")?;
        let output = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        Ok(NodeProcess {
            child,
            input,
            output,
        })
    }

    fn ask(&mut self, command: &str) -> Result<String, Error> {
        writeln!(self.input, "{command}")?;
        self.input.flush()?;
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            return Err(format!("the node exited while answering {command:?}").into());
        }
        Ok(line.trim_end().to_owned())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every node process; killed on drop, whatever happened.
struct Cluster {
    addresses: Vec<String>,
    nodes: Vec<Option<NodeProcess>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            let _ = node.ask("quit");
            node.kill();
        }
        let _ = std::fs::remove_dir_all(data_dir());
    }
}

impl Cluster {
    fn node(&mut self, i: usize) -> Result<&mut NodeProcess, Error> {
        self.nodes[i]
            .as_mut()
            .ok_or_else(|| format!("node {i} is down").into())
    }

    fn leader(&mut self, asker: usize) -> Result<usize, Error> {
        let leader = self.node(asker)?.ask("leader")?;
        self.addresses
            .iter()
            .position(|a| *a == leader)
            .ok_or_else(|| format!("no leader ({leader})").into())
    }

    fn print_status(&mut self) -> Result<(), Error> {
        for i in 0..self.nodes.len() {
            let status = self.node(i)?.ask("status")?;
            let value = self.node(i)?.ask("sync")?;
            println!(
                "   {}  {status}  counter {}",
                self.addresses[i],
                value.trim_start_matches("ok ")
            );
        }
        Ok(())
    }
}

/// Where this run's nodes keep their journals: under the system's temporary directory, one
/// per run of the demo.
fn data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("syncobj-demo-{}", std::process::id()))
}

fn free_address() -> Result<String, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string())
}

fn cluster_main() -> Result<(), Error> {
    let addresses = (0..3)
        .map(|_| free_address())
        .collect::<Result<Vec<_>, _>>()?;
    println!("syncobj demo: three processes on loopback, replicating a counter over TCP");
    println!("(connections encrypted with the Noise protocol, keyed by the cluster's password)\n");
    let nodes = addresses
        .iter()
        .map(|a| NodeProcess::start(a, &addresses).map(Some))
        .collect::<Result<_, _>>()?;
    let mut cluster = Cluster {
        addresses: addresses.clone(),
        nodes,
    };

    println!("-- 1. every node makes a call; the first one waits for the election");
    for (i, address) in addresses.iter().enumerate() {
        let reply = cluster.node(i)?.ask(&format!("add {}", i + 1))?;
        println!("   {address} add({}) -> {reply}", i + 1);
    }
    let leader = cluster.leader(0)?;
    println!("   leader: {}", addresses[leader]);

    println!("\n-- 2. kill the leader's process ({})", addresses[leader]);
    if let Some(mut process) = cluster.nodes[leader].take() {
        process.kill();
    }
    let survivor = (leader + 1) % 3;
    let reply = cluster.node(survivor)?.ask("add 10")?;
    let new_leader = cluster.leader(survivor)?;
    println!(
        "   {} add(10) -> {reply}   (new leader: {})",
        addresses[survivor], addresses[new_leader]
    );

    println!("\n-- 3. restart it: it reads its journal back, then catches up");
    cluster.nodes[leader] = Some(NodeProcess::start(&addresses[leader], &addresses)?);
    let local = cluster.node(leader)?.ask("read")?;
    println!(
        "   {} reads {local} before it hears from anyone: what its journal knew committed (it \
         holds every entry it acknowledged; the commit index is saved lazily, once a second)",
        addresses[leader]
    );
    let reply = cluster.node(leader)?.ask("sync")?;
    println!("   {} sync -> {reply}", addresses[leader]);

    println!("\n-- 4. every node's view");
    cluster.print_status()?;
    let values = (0..3)
        .map(|i| cluster.node(i)?.ask("sync"))
        .collect::<Result<Vec<_>, _>>()?;
    if values.iter().any(|v| *v != values[0]) {
        return Err(format!("the nodes disagree: {values:?}").into());
    }
    println!("\nall three processes agree ({}); stopping them", values[0]);
    Ok(())
}
