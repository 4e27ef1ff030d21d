//! `syncobj-sim`: runs the deterministic simulator over many seeds, or replays one with a trace.
//!
//! ```text
//! cargo run --release --features sim --bin syncobj-sim -- --seeds 500 --nodes 5
//! cargo run --release --features sim --bin syncobj-sim -- --seed 42 --nodes 5 [--messages]
//! ```
//!
//! Each seed makes a Raft-level run and two driver-level runs (`--level` picks): the running
//! total, whose every result is checked against a replay of the log, and the history check
//! ([`history`]), whose clients' history of a replicated map is checked for linearizability.
//! The last line reads `violations=0 nonlinearizable=0` when every seed passed; a failing seed
//! is printed with the command that replays it.
//!
//! A long campaign (see docs/reliability.md for its figures):
//!
//! ```text
//! cargo run --release --features sim --bin syncobj-sim -- --faults all --level history --nodes 3 --seeds 100000
//! ```

mod history;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use syncobj::sim::{
    DriverFaults, Faults, RunReport, SeedFailure, SimConfig, run_driver_seed, run_driver_workload,
    run_seed,
};

use crate::history::{HistorySummary, KvHistory};

/// Seconds of virtual time with faults per seed, unless `--fault-seconds` says otherwise.
const FAULT_SECONDS_DEFAULT: u64 = 20;

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
    #[arg(long, default_value_t = FAULT_SECONDS_DEFAULT)]
    fault_seconds: u64,
    /// Faults to inject: all, none, or a comma-separated list of crash, partition, lossy, disk,
    /// churn (membership changes and leadership transfers).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Which runs each seed makes: `raft` (Raft nodes, every fault, crashes included), `driver`
    /// (whole nodes with calls under every fault: a running total whose results are checked
    /// against a replay of the log, then a map whose clients' history is checked for
    /// linearizability), `both`, or `history` (the map's run alone).
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
    /// The driver level's history check alone.
    History,
}

impl Level {
    fn raft(self) -> bool {
        matches!(self, Level::Raft | Level::Both)
    }

    /// Whether the running total's run is made (the driver level's first run).
    fn total(self) -> bool {
        matches!(self, Level::Driver | Level::Both)
    }

    fn history(self) -> bool {
        !matches!(self, Level::Raft)
    }
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
    driver_faults: DriverFaults,
    /// Virtual time of the driver-level runs.
    simulated: Duration,
    history: HistorySummary,
    /// Histories whose check ran out of budget.
    unknown: u64,
}

impl SeedTotals {
    fn add(&mut self, other: &SeedTotals) {
        self.steps += other.steps;
        self.committed += other.committed;
        self.acknowledged += other.acknowledged;
        self.driver_crashes += other.driver_crashes;
        self.disk_faults += other.disk_faults;
        self.compactions += other.compactions;
        self.snapshot_chunks += other.snapshot_chunks;
        self.snapshots_installed += other.snapshots_installed;
        self.membership_changes += other.membership_changes;
        self.transfers += other.transfers;
        self.driver_faults.add(&other.driver_faults);
        self.simulated += other.simulated;
        self.history.add(&other.history);
        self.unknown += other.unknown;
    }

    fn add_driver(&mut self, report: &syncobj::sim::DriverRunReport) {
        self.steps += report.steps;
        self.committed += report.committed;
        self.acknowledged += report.calls_succeeded;
        self.driver_crashes += report.crashes;
        self.disk_faults += report.disk_faults;
        self.compactions += report.compactions;
        self.snapshots_installed += report.snapshots_installed;
        self.driver_faults.add(&report.faults);
        self.simulated += report.simulated;
    }
}

/// A seed that failed, and whether its failure was a history found not linearizable.
struct Failure {
    failure: SeedFailure,
    nonlinearizable: bool,
}

/// Runs one seed at the chosen level(s).
fn run_one(seed: u64, config: &SimConfig, level: Level) -> Result<SeedTotals, Failure> {
    let plain = |failure| Failure {
        failure,
        nonlinearizable: false,
    };
    let mut totals = SeedTotals::default();
    if level.raft() {
        let report: RunReport = run_seed(seed, config, None).map_err(plain)?;
        totals.steps += report.steps;
        totals.committed += report.committed;
        totals.acknowledged += report.acknowledged;
        totals.compactions += report.compactions;
        totals.snapshot_chunks += report.snapshot_chunks;
        totals.snapshots_installed += report.snapshots_installed;
        totals.membership_changes += report.membership_changes;
        totals.transfers += report.transfers;
    }
    if level.total() {
        let report = run_driver_seed(seed, config).map_err(plain)?;
        totals.add_driver(&report);
    }
    if level.history() {
        let (report, summary) = run_history(seed, config);
        totals.add_driver(&report.map_err(|failure| Failure {
            failure,
            nonlinearizable: summary.nonlinearizable,
        })?);
        totals.history = summary;
        totals.unknown = u64::from(summary.unknown);
    }
    Ok(totals)
}

/// The history-checked driver-level run of `seed`, and what its history came to.
fn run_history(
    seed: u64,
    config: &SimConfig,
) -> (
    Result<syncobj::sim::DriverRunReport, SeedFailure>,
    HistorySummary,
) {
    let summary = std::sync::Arc::new(Mutex::new(HistorySummary::default()));
    let workload = KvHistory::new(seed, std::sync::Arc::clone(&summary));
    let report = run_driver_workload(seed, config, workload).map_err(|failure| SeedFailure {
        replay_flags: " --level history",
        ..failure
    });
    let summary = *summary.lock().unwrap_or_else(|p| p.into_inner());
    (report, summary)
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

/// The flags a failing seed's replay command needs besides its seed, nodes and level: the
/// fault settings, where they are not the defaults.
fn fault_flags(args: &Args) -> String {
    let mut flags = String::new();
    if args.faults != "all" {
        flags.push_str(&format!(" --faults {}", args.faults));
    }
    if args.fault_seconds != FAULT_SECONDS_DEFAULT {
        flags.push_str(&format!(" --fault-seconds {}", args.fault_seconds));
    }
    if let Some(non_voters) = args.non_voters {
        flags.push_str(&format!(" --non-voters {non_voters}"));
    }
    flags
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
    if level.raft() {
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
            Err(failure) => return replay_failed(&failure, config, false),
        }
    }
    if level.total() {
        match run_driver_seed(seed, config) {
            Ok(report) => {
                println!(
                    "driver level: calls_succeeded={} calls_failed={}",
                    report.calls_succeeded, report.calls_failed
                );
                totals.add_driver(&report);
            }
            Err(failure) => return replay_failed(&failure, config, false),
        }
    }
    if level.history() {
        let (report, history) = run_history(seed, config);
        totals.history = history;
        totals.unknown = u64::from(history.unknown);
        match report {
            Ok(report) => totals.add_driver(&report),
            Err(failure) => return replay_failed(&failure, config, history.nonlinearizable),
        }
    }
    print_totals(&totals);
    println!("{}", summary(1, config.nodes, &totals, 0, 0));
    ExitCode::SUCCESS
}

fn replay_failed(failure: &SeedFailure, config: &SimConfig, nonlinearizable: bool) -> ExitCode {
    println!("{failure}");
    let totals = SeedTotals::default();
    let nonlinearizable = usize::from(nonlinearizable);
    println!("{}", summary(1, config.nodes, &totals, 1, nonlinearizable));
    ExitCode::FAILURE
}

fn run_many(args: &Args, config: &SimConfig) -> ExitCode {
    let started = Instant::now();
    let next = AtomicU64::new(args.first_seed);
    let end = args.first_seed.saturating_add(args.seeds);
    let reports: Mutex<Vec<SeedTotals>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
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
                        Ok(report) => {
                            if report.unknown > 0 {
                                // Not a failure, but worth a look with a larger budget.
                                eprintln!(
                                    "seed={seed} history check out of budget (unknown)\n  replay: cargo run --release --features sim --bin syncobj-sim -- --seed {seed} --nodes {} --level history{}",
                                    config.nodes,
                                    fault_flags(args)
                                );
                            }
                            reports
                                .lock()
                                .expect("no worker panics holding the lock")
                                .push(report);
                        }
                        Err(failure) => {
                            eprintln!("{}{}", failure.failure, fault_flags(args));
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
    let mut totals = SeedTotals::default();
    for report in &reports {
        totals.add(report);
    }
    let wall = started.elapsed().as_secs_f64();
    print_totals(&totals);
    let count = reports.len() + failures.len();
    println!(
        "wall={wall:.1}s jobs={jobs} seeds_per_wall_second={:.1} commits_per_wall_second={:.0} steps_per_wall_second={:.0}",
        count as f64 / wall,
        totals.committed as f64 / wall,
        totals.steps as f64 / wall
    );
    let nonlinearizable = failures.iter().filter(|f| f.nonlinearizable).count();
    println!(
        "{}",
        summary(
            count,
            config.nodes,
            &totals,
            failures.len(),
            nonlinearizable
        )
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the seeds' runs did: snapshots, faults by kind, the histories checked.
fn print_totals(totals: &SeedTotals) {
    println!(
        "snapshots: compactions={} chunks={} installed={}",
        totals.compactions, totals.snapshot_chunks, totals.snapshots_installed
    );
    println!(
        "raft level: membership_changes={} transfers={}",
        totals.membership_changes, totals.transfers
    );
    let f = &totals.driver_faults;
    println!(
        "driver faults: crashes={} disk={} partitions={} one_way={} flapping={} heals={} lossy_networks={} transfers={} (succeeded {})",
        totals.driver_crashes,
        totals.disk_faults,
        f.partitions,
        f.one_way,
        f.flapping,
        f.heals,
        f.lossy_networks,
        f.transfers,
        f.transfers_succeeded
    );
    let h = &totals.history;
    println!(
        "histories: operations={} returned={} never_applied={} indeterminate={} simulated_driver_seconds={:.0} acknowledged={}",
        h.operations,
        h.returned,
        h.never_applied,
        h.indeterminate,
        totals.simulated.as_secs_f64(),
        totals.acknowledged
    );
}

/// The last line: `violations` counts every failed seed, `nonlinearizable` those whose
/// history the checker rejected, `unknown` the histories whose check ran out of budget.
fn summary(
    seeds: usize,
    nodes: usize,
    totals: &SeedTotals,
    violations: usize,
    nonlinearizable: usize,
) -> String {
    format!(
        "seeds={seeds} nodes={nodes} steps={} committed={} operations={} violations={violations} nonlinearizable={nonlinearizable} unknown={}",
        totals.steps, totals.committed, totals.history.operations, totals.unknown
    )
}
