//! `syncobj-sim`: runs the deterministic simulator over many seeds, or replays one with a trace.
//!
//! ```text
//! cargo run --release --features sim --bin syncobj-sim -- --seeds 500 --nodes 5
//! cargo run --release --features sim --bin syncobj-sim -- --seed 42 --nodes 5 [--messages]
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use syncobj::sim::{Faults, RunReport, SeedFailure, SimConfig, run_driver_seed, run_seed};

/// Run the syncobj Raft simulator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// How many seeds to run, starting at --first-seed.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of a multi-seed run.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Replay this one seed and print its trace.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Voting nodes per cluster.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Non-voting nodes per cluster (default: 0 or 1, chosen by each seed).
    #[arg(long)]
    non_voters: Option<usize>,
    /// Seconds of virtual time with faults, per seed.
    #[arg(long, default_value_t = 20)]
    fault_seconds: u64,
    /// Faults to inject: all, none, or a comma-separated list of crash, partition, lossy, disk,
    /// churn (membership changes and leadership transfers).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Which runs each seed makes: `raft` (Raft nodes, every fault, crashes included), `driver`
    /// (whole nodes with calls, partitions and lossy networks), or `both`.
    #[arg(long, value_enum, default_value_t = Level::Both)]
    level: Level,
    /// With --seed: also trace every delivered message.
    #[arg(long)]
    messages: bool,
    /// Worker threads for multi-seed runs (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Which runs a seed makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Level {
    /// The Raft core alone, under every fault.
    Raft,
    /// Whole nodes: driver, queue, forwarding, calls.
    Driver,
    /// Both.
    Both,
}

/// What one seed's runs added up to.
#[derive(Clone, Copy, Debug, Default)]
struct SeedTotals {
    steps: u64,
    committed: u64,
    acknowledged: u64,
    driver_crashes: u64,
    disk_faults: u64,
    compactions: u64,
    snapshot_chunks: u64,
    snapshots_installed: u64,
    membership_changes: u64,
    transfers: u64,
}

/// Runs one seed at the chosen level(s).
fn run_one(seed: u64, config: &SimConfig, level: Level) -> Result<SeedTotals, SeedFailure> {
    let mut totals = SeedTotals::default();
    if level != Level::Driver {
        let report: RunReport = run_seed(seed, config, None)?;
        totals.steps += report.steps;
        totals.committed += report.committed;
        totals.acknowledged += report.acknowledged;
        totals.compactions += report.compactions;
        totals.snapshot_chunks += report.snapshot_chunks;
        totals.snapshots_installed += report.snapshots_installed;
        totals.membership_changes += report.membership_changes;
        totals.transfers += report.transfers;
    }
    if level != Level::Raft {
        let report = run_driver_seed(seed, config)?;
        totals.steps += report.steps;
        totals.committed += report.committed;
        totals.acknowledged += report.calls_succeeded;
        totals.driver_crashes += report.crashes;
        totals.disk_faults += report.disk_faults;
        totals.compactions += report.compactions;
        totals.snapshots_installed += report.snapshots_installed;
    }
    Ok(totals)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match sim_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("syncobj-sim: {message}");
            return ExitCode::from(2);
        }
    };
    match args.seed {
        Some(seed) => replay(seed, &config, args.level, args.messages),
        None => run_many(&args, &config),
    }
}

fn sim_config(args: &Args) -> Result<SimConfig, String> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    Ok(SimConfig {
        nodes: args.nodes,
        non_voters: args.non_voters,
        fault_duration: Duration::from_secs(args.fault_seconds),
        faults: parse_faults(&args.faults)?,
        ..SimConfig::default()
    })
}

fn parse_faults(spec: &str) -> Result<Faults, String> {
    match spec {
        "all" => return Ok(Faults::all()),
        "none" => return Ok(Faults::none()),
        _ => {}
    }
    let mut faults = Faults::none();
    for part in spec.split(',') {
        match part.trim() {
            "crash" => faults.crashes = true,
            "partition" => faults.partitions = true,
            "lossy" => faults.lossy_network = true,
            "disk" => faults.disk_failures = true,
            "churn" => faults.membership_changes = true,
            other => {
                return Err(format!(
                    "unknown fault {other:?} in --faults (crash, partition, lossy, disk, churn, all, none)"
                ));
            }
        }
    }
    Ok(faults)
}

/// Replays one seed at the chosen level(s): the Raft-level run with a readable trace, the
/// driver-level run with its call counts.
fn replay(seed: u64, config: &SimConfig, level: Level, messages: bool) -> ExitCode {
    let mut totals = SeedTotals::default();
    if level != Level::Driver {
        let sink = Box::new(
            |at: syncobj::sim::raft::Instant, event: &syncobj::sim::TraceEvent| {
                // A closed pipe (`| head`) ends the trace, not the run.
                let _ = writeln!(std::io::stdout(), "{at:>9} {event}");
            },
        );
        match run_seed(seed, config, Some((sink, messages))) {
            Ok(report) => {
                totals.steps += report.steps;
                totals.committed += report.committed;
            }
            Err(failure) => return replay_failed(&failure, config),
        }
    }
    if level != Level::Raft {
        match run_driver_seed(seed, config) {
            Ok(report) => {
                println!(
                    "driver level: calls_succeeded={} calls_failed={}",
                    report.calls_succeeded, report.calls_failed
                );
                totals.steps += report.steps;
                totals.committed += report.committed;
            }
            Err(failure) => return replay_failed(&failure, config),
        }
    }
    println!(
        "{}",
        summary(1, config.nodes, totals.steps, totals.committed, 0)
    );
    ExitCode::SUCCESS
}

fn replay_failed(failure: &SeedFailure, config: &SimConfig) -> ExitCode {
    println!("{failure}");
    println!("{}", summary(1, config.nodes, 0, 0, 1));
    ExitCode::FAILURE
}

fn run_many(args: &Args, config: &SimConfig) -> ExitCode {
    let started = Instant::now();
    let next = AtomicU64::new(args.first_seed);
    let end = args.first_seed.saturating_add(args.seeds);
    let reports: Mutex<Vec<SeedTotals>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<SeedFailure>> = Mutex::new(Vec::new());
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    match run_one(seed, config, args.level) {
                        Ok(report) => reports
                            .lock()
                            .expect("no worker panics holding the lock")
                            .push(report),
                        Err(failure) => {
                            eprintln!("{failure}");
                            failures
                                .lock()
                                .expect("no worker panics holding the lock")
                                .push(failure);
                        }
                    }
                }
            });
        }
    });
    let reports = reports.into_inner().expect("workers are done");
    let failures = failures.into_inner().expect("workers are done");
    let steps: u64 = reports.iter().map(|r| r.steps).sum();
    let committed: u64 = reports.iter().map(|r| r.committed).sum();
    let acknowledged: u64 = reports.iter().map(|r| r.acknowledged).sum();
    let driver_crashes: u64 = reports.iter().map(|r| r.driver_crashes).sum();
    let disk_faults: u64 = reports.iter().map(|r| r.disk_faults).sum();
    let wall = started.elapsed().as_secs_f64();
    println!(
        "snapshots: compactions={} chunks={} installed={}",
        reports.iter().map(|r| r.compactions).sum::<u64>(),
        reports.iter().map(|r| r.snapshot_chunks).sum::<u64>(),
        reports.iter().map(|r| r.snapshots_installed).sum::<u64>()
    );
    println!(
        "membership: changes={} transfers={}",
        reports.iter().map(|r| r.membership_changes).sum::<u64>(),
        reports.iter().map(|r| r.transfers).sum::<u64>()
    );
    println!(
        "wall={wall:.1}s jobs={jobs} acknowledged={acknowledged} driver_crashes={driver_crashes} disk_faults={disk_faults} commits_per_wall_second={:.0} steps_per_wall_second={:.0}",
        committed as f64 / wall,
        steps as f64 / wall
    );
    let count = reports.len() + failures.len();
    println!(
        "{}",
        summary(count, config.nodes, steps, committed, failures.len())
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn summary(seeds: usize, nodes: usize, steps: u64, committed: u64, violations: usize) -> String {
    format!(
        "seeds={seeds} nodes={nodes} steps={steps} committed={committed} violations={violations}"
    )
}
