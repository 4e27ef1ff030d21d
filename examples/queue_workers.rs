//! Producers and workers sharing a replicated job queue: three nodes in this process, talking
//! TCP on loopback.
//!
//! Every node holds the same bounded [`ReplQueue`] of job numbers (its main object) and a
//! [`ReplDict`] recording which worker took each job (a consumer on the same log). On every node
//! a producer puts numbered jobs, backing off while the queue is full, and two workers take jobs
//! and record them. At the end the example checks that every job put was taken exactly once,
//! prints who took what, and stops every node; it exits with a failure status if the check
//! fails or a step misses its deadline.
//!
//! A call whose outcome is unknown (the leader changed, or it timed out: it may still be
//! applied) is never retried blindly, since a second `put` or `get` could apply twice: it is
//! reported, and the check accounts for it. Recording a take is retried, since setting the same
//! key to the same worker twice changes nothing.
//!
//! Run it with `cargo run --release --example queue_workers`; `RUST_LOG=info` shows the nodes'
//! logs. While the nodes start, a node dialling one that does not listen yet logs a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use syncobj::batteries::{ReplDict, ReplQueue};
use syncobj::prelude::*;

/// The nodes of the cluster, each with one producer and [`WORKERS`] workers.
const NODES: usize = 3;
/// Jobs each producer puts.
const JOBS_PER_PRODUCER: u64 = 200;
/// Workers per node.
const WORKERS: usize = 2;
/// The most jobs the queue holds: small, so that producers meet a full queue.
const QUEUE_BOUND: usize = 8;
/// How long one call may take.
const PATIENCE: Duration = Duration::from_secs(15);
/// How long the whole run may take.
const RUN_TIME: Duration = Duration::from_secs(120);
/// How long a producer waits after a full queue, or a worker after an empty one.
const BACK_OFF: Duration = Duration::from_millis(5);
/// How long a job takes a worker: long enough that the producers fill the queue at times.
const WORK: Duration = Duration::from_millis(5);
/// The cluster's shared secret. A real deployment reads it from a secret store, not the source.
const PASSWORD: &str = "queue_workers: not a secret";

/// A job: its producer's node number times [`JOB_BASE`] plus its sequence number.
type Job = u64;
/// Job numbers of one producer: its node number times this, plus the sequence number.
const JOB_BASE: u64 = 1_000_000;

/// The queue of jobs: every node's main object.
type Jobs = ReplQueue<Job>;
/// Who took each job (`node N worker W`): consumer 0 of every node.
type Takers = ReplDict<Job, String>;

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    // Logs go to standard error, at the level RUST_LOG names (warnings by default).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("queue_workers failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What one producer did.
#[derive(Default)]
struct Produced {
    /// Jobs put: `put` returned true.
    put: Vec<Job>,
    /// Jobs whose `put` failed with an unknown outcome: each may be in the queue, or not.
    unknown: Vec<Job>,
    /// How often the queue was full.
    full: u64,
    /// Whatever went wrong for good.
    errors: Vec<String>,
}

/// What one worker did.
#[derive(Default)]
struct Worked {
    /// Jobs `get` handed to this worker.
    taken: Vec<Job>,
    /// `get` calls that failed with an unknown outcome: each may have taken a job no one saw.
    unknown_gets: u64,
    /// Whatever went wrong for good.
    errors: Vec<String>,
}

fn run() -> Result<(), Error> {
    let addresses = (0..NODES)
        .map(|_| Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string()))
        .collect::<Result<Vec<String>, Error>>()?;
    println!(
        "queue_workers: {NODES} nodes on loopback share a queue of at most {QUEUE_BOUND} jobs; \
         each runs a producer putting {JOBS_PER_PRODUCER} jobs and {WORKERS} workers"
    );
    // Dropping a node stops it: every node ends with this function, also on an error.
    let nodes = addresses
        .iter()
        .map(|me| {
            SyncObj::builder(me.as_str())
                .partners(addresses.iter().cloned())
                // Every connection is encrypted and authenticated with a key derived from this.
                .password(PASSWORD)
                .consumer(Takers::default())
                .start(Jobs::new(QUEUE_BOUND))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + RUN_TIME;
    let producers_done = AtomicUsize::new(0);

    let (produced, worked) = std::thread::scope(|scope| {
        let producers: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let done = &producers_done;
                scope.spawn(move || {
                    let report = produce(node, n, deadline);
                    done.fetch_add(1, Ordering::AcqRel);
                    report
                })
            })
            .collect();
        let workers: Vec<_> = nodes
            .iter()
            .enumerate()
            .flat_map(|(n, node)| (0..WORKERS).map(move |w| (n, w, node)))
            .map(|(n, w, node)| {
                let done = &producers_done;
                scope.spawn(move || work(node, format!("node {n} worker {w}"), done, deadline))
            })
            .collect();
        let produced: Vec<Produced> = producers
            .into_iter()
            .map(|p| p.join().expect("a producer does not panic"))
            .collect();
        let worked: Vec<Worked> = workers
            .into_iter()
            .map(|w| w.join().expect("a worker does not panic"))
            .collect();
        (produced, worked)
    });

    // Every node applies everything committed, so that each one's copy can be compared.
    let committed = nodes
        .iter()
        .map(|n| n.raft_commit_index())
        .max()
        .unwrap_or(0);
    let applied_by = Instant::now() + PATIENCE;
    while nodes.iter().any(|n| n.raft_last_applied() < committed) {
        if Instant::now() > applied_by {
            return Err("the nodes did not apply every call in time".into());
        }
        std::thread::park_timeout(BACK_OFF);
    }
    let takers = nodes[0]
        .consumer::<Takers>(0)
        .ok_or("consumer 0 is the takers")?;
    let takers: BTreeMap<Job, String> = takers.read().raw_data().clone();
    let left: Vec<Job> = nodes[0].read().iter().copied().collect();
    for (n, node) in nodes.iter().enumerate() {
        let copy = node
            .consumer::<Takers>(0)
            .ok_or("consumer 0 is the takers")?;
        if *copy.read().raw_data() != takers || !node.read().iter().eq(&left) {
            return Err(format!("node {n}'s copy differs from node 0's").into());
        }
    }
    // Stop every node at once, so that none spends its last moments redialling the others.
    for node in &nodes {
        node.destroy();
    }
    drop(nodes);
    report(&produced, &worked, &takers, &left)
}

/// Puts this node's jobs, backing off while the queue is full.
fn produce(node: &SyncObj<Jobs>, n: usize, deadline: Instant) -> Produced {
    let mut report = Produced::default();
    for k in 0..JOBS_PER_PRODUCER {
        let job = n as u64 * JOB_BASE + k;
        loop {
            if Instant::now() > deadline {
                report
                    .errors
                    .push(format!("node {n}: still putting job {job} at the deadline"));
                return report;
            }
            match node.put(job).wait_timeout(PATIENCE) {
                Ok(true) => {
                    report.put.push(job);
                    break;
                }
                Ok(false) => {
                    report.full += 1;
                    std::thread::sleep(BACK_OFF);
                }
                // Certainly not applied (no leader yet, a forward refused): try again.
                Err(reason) if reason.effect() == Effect::None => {}
                Err(reason) => {
                    eprintln!("node {n}: put({job}) has an unknown outcome: {reason}");
                    report.unknown.push(job);
                    break;
                }
            }
        }
    }
    report
}

/// Takes jobs and records who took them, until every producer is done and the queue is empty.
fn work(
    node: &SyncObj<Jobs>,
    me: String,
    producers_done: &AtomicUsize,
    deadline: Instant,
) -> Worked {
    let mut report = Worked::default();
    let Some(takers) = node.consumer::<Takers>(0) else {
        report.errors.push(format!("{me}: no takers consumer"));
        return report;
    };
    loop {
        if Instant::now() > deadline {
            report
                .errors
                .push(format!("{me}: still working at the deadline"));
            return report;
        }
        // Read before the `get`: if every producer was done then, an empty queue stays empty.
        let all_put = producers_done.load(Ordering::Acquire) == NODES;
        match node.get().wait_timeout(PATIENCE) {
            Ok(Some(job)) => {
                report.taken.push(job);
                std::thread::sleep(WORK);
                if let Err(error) = record(&takers, job, &me, deadline) {
                    report.errors.push(error);
                }
            }
            Ok(None) if all_put => return report,
            Ok(None) => std::thread::sleep(BACK_OFF),
            Err(reason) if reason.effect() == Effect::None => {}
            Err(reason) => {
                eprintln!("{me}: a get has an unknown outcome: {reason}");
                report.unknown_gets += 1;
            }
        }
    }
}

/// Records that `me` took `job`. Retried until it is known applied: a retry sets the same
/// value, so it changes nothing; a different worker found there means the job was handed out
/// twice.
fn record(
    takers: &syncobj::Consumer<Takers>,
    job: Job,
    me: &str,
    deadline: Instant,
) -> Result<(), String> {
    while Instant::now() < deadline {
        match takers.set(job, me.to_owned()).wait_timeout(PATIENCE) {
            Ok(None) => return Ok(()),
            Ok(Some(earlier)) if earlier == me => return Ok(()),
            Ok(Some(earlier)) => return Err(format!("job {job} was taken by {earlier} and {me}")),
            Err(reason) => eprintln!("{me}: recording job {job} again: {reason}"),
        }
    }
    Err(format!("{me}: could not record job {job} in time"))
}

/// Checks that every job was taken exactly once, accounting for calls of unknown outcome,
/// and prints who took what.
fn report(
    produced: &[Produced],
    worked: &[Worked],
    takers: &BTreeMap<Job, String>,
    left: &[Job],
) -> Result<(), Error> {
    let produced_errors = produced.iter().flat_map(|p| p.errors.iter());
    let worked_errors = worked.iter().flat_map(|w| w.errors.iter());
    let mut problems: Vec<String> = produced_errors.chain(worked_errors).cloned().collect();
    let put: BTreeSet<Job> = produced
        .iter()
        .flat_map(|p| p.put.iter().copied())
        .collect();
    let unknown_puts: BTreeSet<Job> = produced
        .iter()
        .flat_map(|p| p.unknown.iter().copied())
        .collect();
    let unknown_gets: u64 = worked.iter().map(|w| w.unknown_gets).sum();

    // Each job handed to one worker only, and recorded as that worker's.
    let mut handed: BTreeMap<Job, usize> = BTreeMap::new();
    for (i, w) in worked.iter().enumerate() {
        for &job in &w.taken {
            if let Some(other) = handed.insert(job, i) {
                problems.push(format!("job {job} was handed to workers {other} and {i}"));
            }
        }
    }
    for (&job, who) in takers {
        if !put.contains(&job) && !unknown_puts.contains(&job) {
            problems.push(format!("job {job} was taken ({who}) but never put"));
        }
        if !handed.contains_key(&job) {
            problems.push(format!(
                "job {job} is recorded ({who}) but no worker got it"
            ));
        }
    }
    // A job put and never taken is a loss, unless a `get` of unknown outcome may have taken it
    // (its result was lost with the call).
    let missing: Vec<Job> = put
        .iter()
        .copied()
        .filter(|job| !takers.contains_key(job) && !left.contains(job))
        .collect();
    if missing.len() as u64 > unknown_gets {
        problems.push(format!(
            "{} jobs were put and never taken, more than the {unknown_gets} gets of unknown \
             outcome can explain: {missing:?}",
            missing.len()
        ));
    }
    let stray: Vec<Job> = left
        .iter()
        .copied()
        .filter(|j| !unknown_puts.contains(j))
        .collect();
    if !stray.is_empty() {
        problems.push(format!(
            "jobs left in the queue after the workers stopped: {stray:?}"
        ));
    }

    println!("\njobs put and taken, by node:");
    print!("   {:<22}", "");
    for n in 0..NODES {
        print!("{:>14}", format!("taken by {n}"));
    }
    println!("{:>10}{:>12}", "put", "queue full");
    for (n, p) in produced.iter().enumerate() {
        print!("   {:<22}", format!("put by node {n}"));
        for taker in 0..NODES {
            let prefix = format!("node {taker} ");
            let count = p
                .put
                .iter()
                .filter(|job| takers.get(job).is_some_and(|who| who.starts_with(&prefix)))
                .count();
            print!("{count:>14}");
        }
        println!("{:>10}{:>12}", p.put.len(), p.full);
    }
    println!("\njobs taken, by worker:");
    let mut per_worker: BTreeMap<&str, usize> = BTreeMap::new();
    for who in takers.values() {
        *per_worker.entry(who).or_default() += 1;
    }
    for (who, count) in &per_worker {
        println!("   {who}: {count}");
    }
    if !unknown_puts.is_empty() || unknown_gets > 0 {
        let taken = unknown_puts
            .iter()
            .filter(|j| takers.contains_key(j))
            .count();
        println!(
            "\ncalls of unknown outcome: {} puts ({taken} of those jobs were taken, so applied), \
             {unknown_gets} gets ({} jobs put were never seen taken, maybe by those gets)",
            unknown_puts.len(),
            missing.len()
        );
    }
    println!(
        "\ntotal: {} jobs put, {} taken, {} left in the queue",
        put.len(),
        takers.len(),
        left.len()
    );
    if problems.is_empty() {
        if missing.is_empty() {
            println!("every job put was taken exactly once");
        } else {
            println!(
                "every job was taken at most once; {} may have been taken by gets of unknown \
                 outcome",
                missing.len()
            );
        }
        Ok(())
    } else {
        for problem in &problems {
            println!("PROBLEM: {problem}");
        }
        Err(format!("{} problems", problems.len()).into())
    }
}
