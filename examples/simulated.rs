//! A three-node syncobj cluster at work, in one process on the deterministic simulator.
//!
//! Every node runs the real Raft code; the network and the clock are simulated, so the run is
//! the same every time. Watch an election, replicated commands, a leader crash, the re-election,
//! and the crashed node catching up after its restart. `examples/demo.rs` tells the same story
//! with real processes over TCP.
//!
//! Run it with `cargo run --release --example simulated`.

use std::process::ExitCode;
use std::time::Duration;

use syncobj::sim::raft::{EntryKind, NodeId, RoleKind};
use syncobj::sim::{Cluster, ClusterConfig, TraceEvent, Violation};

/// The seed of the simulated run; any seed tells the same story with other timings.
const SEED: u64 = 2026;

fn main() -> ExitCode {
    // Logs go to standard error at the level RUST_LOG names (errors only by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    println!("syncobj demo: three nodes replicating a counter (simulated network, virtual time)\n");
    let mut cluster = Cluster::new(ClusterConfig::new(3, SEED));
    cluster.set_trace(narrate, false);

    println!("-- 1. election");
    let leader = wait_for_leader(&mut cluster, "the cluster started")?;

    println!("\n-- 2. replicated calls: add 1..=5 on the leader");
    add_all(&mut cluster, leader, 1..=5)?;
    print_state(&cluster);

    println!("\n-- 3. the leader {leader} crashes");
    cluster.crash(leader);
    let new_leader = wait_for_leader(&mut cluster, "the leader crashed")?;
    println!("\n-- 4. the two survivors keep working: add 6..=8 on {new_leader}");
    add_all(&mut cluster, new_leader, 6..=8)?;
    print_state(&cluster);

    println!("\n-- 5. {leader} restarts from its durable term, vote and log, and catches up");
    cluster.restart(leader).map_err(fail)?;
    let target = cluster.node(new_leader).map_or(0, |n| n.commit_index().0);
    let caught_up = cluster
        .run_until_true(Duration::from_secs(5), |c| {
            applied_count(c, leader) >= target
        })
        .map_err(fail)?;
    if !caught_up {
        return Err(format!("{leader} did not catch up within 5 s"));
    }
    print_state(&cluster);
    check_agreement(&cluster)
}

/// Prints the events worth seeing as they happen.
fn narrate(at: syncobj::sim::raft::Instant, event: &TraceEvent) {
    let show = match event {
        TraceEvent::RoleChanged { role, .. } => *role != RoleKind::Follower,
        TraceEvent::Crashed { .. } | TraceEvent::Restarted { .. } => true,
        _ => false,
    };
    if show {
        println!("   {at:>8}  {event}");
    }
}

fn wait_for_leader(cluster: &mut Cluster, since: &str) -> Result<NodeId, String> {
    let start = cluster.now();
    cluster
        .run_until_true(Duration::from_secs(10), |c| c.leader().is_some())
        .map_err(fail)?;
    let leader = cluster.leader().ok_or("no leader within 10 s")?;
    let term = cluster.node(leader).map(|n| n.term()).unwrap_or_default();
    let waited = cluster.now() - start;
    println!(
        "   {leader} leads {term}, elected {:.0} ms after {since}",
        waited.as_secs_f64() * 1e3
    );
    Ok(leader)
}

fn add_all(
    cluster: &mut Cluster,
    leader: NodeId,
    values: impl Iterator<Item = i64>,
) -> Result<(), String> {
    let mut last = None;
    for value in values {
        let position = cluster
            .propose(leader, value.to_le_bytes().to_vec().into())
            .map_err(|e| format!("add({value}) refused: {e}"))?;
        println!(
            "   add({value}) appended at {} in {}",
            position.index, position.term
        );
        last = Some(position.index.0);
    }
    let target = last.unwrap_or(0);
    let done = cluster
        .run_until_true(Duration::from_secs(5), |c| {
            c.running().all(|n| applied_count(c, n.id()) >= target)
        })
        .map_err(fail)?;
    if !done {
        return Err("the calls were not applied everywhere within 5 s".into());
    }
    Ok(())
}

/// The number of entries `node` has applied.
fn applied_count(cluster: &Cluster, node: NodeId) -> u64 {
    cluster.applied(node).len() as u64
}

/// The counter each node computes from the commands it applied.
fn counter(cluster: &Cluster, node: NodeId) -> i64 {
    cluster
        .applied(node)
        .iter()
        .filter(|e| e.kind == EntryKind::Command)
        .filter_map(|e| <[u8; 8]>::try_from(e.data.as_ref()).ok())
        .map(i64::from_le_bytes)
        .sum()
}

fn print_state(cluster: &Cluster) {
    println!("   node  role        term  commit  applied  counter");
    for id in cluster.node_ids() {
        match cluster.node(id) {
            Some(n) => println!(
                "   {:<5} {:<11} {:<5} {:<7} {:<8} {}",
                id.to_string(),
                format!("{:?}", n.role()),
                n.term().to_string(),
                n.commit_index().to_string(),
                applied_count(cluster, id),
                counter(cluster, id)
            ),
            None => println!("   {:<5} (crashed)", id.to_string()),
        }
    }
}

/// Every node holds the same counter, and it is the sum of every call made.
fn check_agreement(cluster: &Cluster) -> Result<(), String> {
    let expected: i64 = (1..=8).sum();
    for id in cluster.node_ids() {
        let value = counter(cluster, id);
        if value != expected {
            return Err(format!("{id} holds {value}, expected {expected}"));
        }
    }
    println!(
        "\nall {} nodes agree: counter = {expected}",
        cluster.node_ids().len()
    );
    Ok(())
}

fn fail(violation: Violation) -> String {
    format!("invariant violated {violation}")
}
