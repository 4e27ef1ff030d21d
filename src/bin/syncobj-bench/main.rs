//! `syncobj-bench`: the PySyncObj baseline's workload (`docs/performance.md`) on real member
//! processes over loopback, for syncobj and, side by side, for PySyncObj.
//!
//! ```text
//! syncobj-bench throughput --nodes 3 --size 10 [--count K | --seconds S] [--window W]
//!               [--repeat R] [--password P] [--fsync never|always] [--system pysyncobj]
//! syncobj-bench latency    --nodes 3 --size 10 [--count 2000] ...
//! syncobj-bench lifecycle  --nodes 3 [--repeat R] ...
//! syncobj-bench compare    [--repeat R] [--rows 10b,1kb,...]
//! syncobj-bench scale      [--sweep nodes,payload,window,state] [--repeat R]
//! syncobj-bench restart    [--journal-mb 1024] [--nodes 1] [--entry-bytes 10000] [--repeat R]
//! syncobj-bench fsync-probe [--dir D]
//! ```
//!
//! Every run starts a fresh cluster: the driver re-executes its own binary N times as
//! `syncobj-bench node` (or runs `bench/pysyncobj/node.py` N times), on free ports of
//! 127.0.0.1, full mesh, back to back, and drives the leader over the members' standard input
//! (`node.rs` gives the protocol). Modules: `cluster` (processes, the protocol, cleanup),
//! `node` (a syncobj member), `throughput`, `latency` and `lifecycle` (the experiments),
//! `state` (snapshots and restarts of a large state or journal), `compare` and `scale` (sets of
//! runs), `stats` and `rows` (summaries and tables).

mod cluster;
mod compare;
mod latency;
mod lifecycle;
mod node;
mod python;
mod rows;
mod scale;
mod state;
mod stats;
mod throughput;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use crate::cluster::{Setup, SharedChildren, System};
use crate::stats::percentile;
use crate::throughput::Load;

pub(crate) type Error = Box<dyn std::error::Error>;

/// When a journal syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Fsync {
    /// Never waits for the disk (PySyncObj's journal).
    Never,
    /// Syncs before acknowledging (syncobj's default).
    Always,
}

impl Fsync {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fsync::Never => "never",
            Fsync::Always => "always",
        }
    }
}

/// Which system's members a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SystemArg {
    Syncobj,
    Pysyncobj,
}

#[derive(Parser, Debug)]
#[command(
    name = "syncobj-bench",
    about = "The PySyncObj baseline's workload on real processes, for syncobj and PySyncObj"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Baseline (a): K calls back to back in the leader (or a sustained load with --seconds).
    Throughput(RunArgs),
    /// Baseline (b): sequential waited calls in the leader, p50/p90/p99.
    Latency(RunArgs),
    /// Baseline (c)-(e): cold start, failover after SIGKILL of the leader, idle peak memory.
    Lifecycle(RunArgs),
    /// Every row of the comparison with PySyncObj, both systems alternately; the ratio table.
    Compare(compare::CompareArgs),
    /// Throughput and latency against cluster size, payload size and calls in flight; snapshot
    /// and restart against the state's size.
    Scale(scale::ScaleArgs),
    /// A restart that replays a large journal (no snapshot), against the disk's read speed.
    Restart(state::RestartArgs),
    /// How long this machine takes to make a small write durable (4 KiB + fdatasync).
    FsyncProbe(ProbeArgs),
    /// A cluster member (started by the driver).
    #[command(hide = true)]
    Node(node::NodeArgs),
}

/// Options of one kind of run.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Payload bytes per call.
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// Calls per run. Default: the baseline's K for throughput (100 000 for 10 B, 20 000 up to
    /// 1 kB, 5 000 up to 10 kB, 1 000 above), 2 000 sequential calls for latency (400 for
    /// PySyncObj without --nobatch, whose calls take 100 ms each).
    #[arg(long)]
    count: Option<u64>,
    /// Throughput only: keep the leader's queue full this many seconds instead of making K
    /// calls (the sustained mode).
    #[arg(long)]
    seconds: Option<f64>,
    /// Throughput only: most calls in flight (default: none in a burst; in the sustained mode,
    /// 20 000 or 64 MiB of payload, whichever is fewer).
    #[arg(long)]
    window: Option<u64>,
    /// Runs, each on a fresh cluster.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Encrypt every connection with this password.
    #[arg(long)]
    password: Option<String>,
    /// Give every member a journal (in a fresh temporary directory per run) that syncs this
    /// way. Default: no journal, the log in memory as in the baseline. syncobj only.
    #[arg(long, value_enum)]
    fsync: Option<Fsync>,
    /// Whose members to run.
    #[arg(long, value_enum, default_value = "syncobj")]
    system: SystemArg,
    /// PySyncObj only: appendEntriesUseBatch=False (the baseline's conf=nobatch).
    #[arg(long)]
    nobatch: bool,
    /// The Python that has PySyncObj (default: python3, then python).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Seconds to wait after the first leader commit before measuring.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Hard cap on one run, in seconds (default 60, plus --seconds).
    #[arg(long)]
    time_limit: Option<f64>,
    /// Wait until every member is linked to every other before the settle time (not in the
    /// baseline's definition).
    #[arg(long)]
    wait_mesh: bool,
}

#[derive(clap::Args, Debug)]
struct ProbeArgs {
    /// Directory whose disk is probed (default: the system's temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rounds.
    #[arg(long, default_value_t = 1000)]
    count: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Cmd::Node(args) => node::run(args),
        Cmd::Throughput(args) => throughput_cmd(args),
        Cmd::Latency(args) => latency_cmd(args),
        Cmd::Lifecycle(args) => lifecycle_cmd(args),
        Cmd::Compare(args) => compare::run(args),
        Cmd::Scale(args) => scale::run(args),
        Cmd::Restart(args) => state::restart(args),
        Cmd::FsyncProbe(args) => fsync_probe(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("syncobj-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The cluster a command's options describe, and the PySyncObj script if it needs one.
fn setup(args: &RunArgs) -> Result<(Setup, Option<python::Script>), Error> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if args.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    let (system, script) = match args.system {
        SystemArg::Syncobj => {
            if args.nobatch {
                return Err("--nobatch is a PySyncObj option".into());
            }
            (System::Syncobj, None)
        }
        SystemArg::Pysyncobj => {
            if args.fsync.is_some() {
                return Err("PySyncObj's journal never syncs: --fsync is for syncobj".into());
            }
            let (system, script) = python::pysyncobj(args.python.as_deref())?;
            (system, Some(script))
        }
    };
    let setup = Setup {
        system,
        nodes: args.nodes,
        password: args.password.clone(),
        fsync: args.fsync,
        nobatch: args.nobatch,
        settle: args.settle,
        time_limit: args
            .time_limit
            .unwrap_or(60.0 + args.seconds.unwrap_or(0.0)),
        wait_mesh: args.wait_mesh,
        no_compaction: false,
    };
    Ok((setup, script))
}

/// Pause between two runs, so that the last run's processes are gone and its ports free.
pub(crate) fn between_runs() {
    thread::sleep(Duration::from_millis(500));
}

fn throughput_cmd(args: &RunArgs) -> Result<(), Error> {
    let (setup, _script) = setup(args)?;
    let load = match args.seconds {
        Some(seconds) if seconds > 0.0 => Load {
            size: args.size,
            count: args.count.unwrap_or(0),
            seconds,
            window: args
                .window
                .unwrap_or_else(|| Load::default_window(args.size)),
        },
        Some(_) => return Err("--seconds must be positive".into()),
        None => Load {
            size: args.size,
            count: args
                .count
                .unwrap_or_else(|| Load::baseline_count(args.size)),
            seconds: 0.0,
            window: args.window.unwrap_or(0),
        },
    };
    let children = cluster::watchdog();
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        let run = throughput::run(&setup, &load, &children)?;
        println!("{}", run.line(&setup, &load));
        runs.push(run);
        between_runs();
    }
    let failed: u64 = runs.iter().map(|r| r.failed).sum();
    println!();
    print!(
        "{}",
        rows::throughput_table(&[rows::ThroughputRows {
            setup: &setup,
            load: &load,
            runs: &runs,
        }])
    );
    if failed > 0 || runs.iter().any(|r| r.timed_out) {
        return Err(format!("{failed} calls failed or the run timed out").into());
    }
    Ok(())
}

/// The default number of sequential calls: 2 000, or 400 for PySyncObj with batching on.
fn latency_calls(args: &RunArgs) -> u64 {
    args.count
        .unwrap_or(if args.system == SystemArg::Pysyncobj && !args.nobatch {
            400
        } else {
            2000
        })
}

fn latency_cmd(args: &RunArgs) -> Result<(), Error> {
    let (setup, _script) = setup(args)?;
    let calls = latency_calls(args);
    let children = cluster::watchdog();
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        let run = latency::run(&setup, args.size, calls, &children)?;
        println!("{}", run.line(&setup, args.size));
        runs.push(run);
        between_runs();
    }
    println!();
    print!(
        "{}",
        rows::latency_table(&[rows::LatencyRows {
            setup: &setup,
            size: args.size,
            runs: &runs,
        }])
    );
    if runs.iter().any(|r| r.failed > 0 || r.done < r.calls) {
        return Err("some calls failed or the time budget ran out".into());
    }
    Ok(())
}

fn lifecycle_cmd(args: &RunArgs) -> Result<(), Error> {
    let (setup, _script) = setup(args)?;
    let children: SharedChildren = cluster::watchdog();
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        let run = lifecycle::run(&setup, &children)?;
        println!("{}", run.line(&setup));
        runs.push(run);
        between_runs();
    }
    println!();
    print!(
        "{}",
        rows::lifecycle_table(&[rows::LifecycleRows {
            setup: &setup,
            runs: &runs,
        }])
    );
    Ok(())
}

/// 4 KiB appended then `fdatasync`, `count` times: the disk's own cost of one durable write,
/// the floor under the `--fsync always` latency.
fn fsync_probe(args: &ProbeArgs) -> Result<(), Error> {
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("syncobj-bench-fsync-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = vec![0x5a_u8; 4096];
    let rounds = args.count.max(1);
    let mut micros = Vec::with_capacity(rounds);
    let outcome = (|| -> Result<(), Error> {
        for _ in 0..rounds {
            let start = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
        }
        Ok(())
    })();
    drop(file);
    let _ = std::fs::remove_file(&path);
    outcome?;
    micros.sort_by(f64::total_cmp);
    println!(
        "fsync dir={} rounds={rounds} p50_us={:.0} p99_us={:.0} max_us={:.0}",
        dir.display(),
        percentile(&micros, 50.0),
        percentile(&micros, 99.0),
        micros[micros.len() - 1],
    );
    Ok(())
}
