//! `syncobj-bench scale`: syncobj's throughput and latency against the cluster size, the
//! payload size and the number of calls in flight (issue 13's scaling figures), each point on
//! fresh clusters with the sustained load, printed as the baseline-shaped tables; and, with
//! `--sweep state` (not by default), what a 1, 10 and 100 MB state costs (`state.rs`).

use clap::ValueEnum;

use crate::cluster::{self, Setup, System};
use crate::latency::{self, LatencyRun};
use crate::throughput::{self, Load, ThroughputRun};
use crate::{Error, Fsync, between_runs, rows, state};

/// A sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Sweep {
    /// 1, 3, 5, 7 nodes; 10 B.
    Nodes,
    /// 10 B to 64 KiB on 3 nodes.
    Payload,
    /// 1 to 65 536 calls in flight, 3 nodes, 10 B.
    Window,
    /// A state of 1, 10, 100 MB on 3 nodes with a journal: snapshot time and size, the tick
    /// loop's longest iteration meanwhile, the restart from the snapshot.
    State,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ScaleArgs {
    /// Sweeps to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "nodes,payload,window"
    )]
    sweep: Vec<Sweep>,
    /// Runs per point, each on a fresh cluster.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Seconds of sustained load per point.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Sequential calls per latency point.
    #[arg(long, default_value_t = 1000)]
    calls: u64,
    /// How the journal of the state sweep syncs.
    #[arg(long, value_enum, default_value = "always")]
    fsync: Fsync,
}

/// One measured point: its cluster and load, and the runs.
struct Point {
    setup: Setup,
    load: Load,
    throughput: Vec<ThroughputRun>,
    latency: Vec<LatencyRun>,
}

pub(crate) fn run(args: &ScaleArgs) -> Result<(), Error> {
    if args.repeat == 0 || args.seconds <= 0.0 {
        return Err("--repeat and --seconds must be positive".into());
    }
    let setup = |nodes: usize| Setup {
        system: System::Syncobj,
        nodes,
        password: None,
        fsync: None,
        nobatch: false,
        settle: 1.0,
        time_limit: 60.0 + args.seconds,
        wait_mesh: false,
        no_compaction: false,
    };
    let sustained = |size: usize, window: u64| Load {
        size,
        count: 0,
        seconds: args.seconds,
        window,
    };
    let mut points = Vec::new();
    for sweep in &args.sweep {
        match sweep {
            Sweep::Nodes => {
                for nodes in [1, 3, 5, 7] {
                    points.push((setup(nodes), sustained(10, Load::default_window(10)), true));
                }
            }
            Sweep::Payload => {
                for size in [10, 100, 1000, 10_000, 65_536] {
                    let window = Load::default_window(size);
                    points.push((setup(3), sustained(size, window), true));
                }
            }
            Sweep::Window => {
                for window in [1, 16, 256, 4096, 65_536] {
                    points.push((setup(3), sustained(10, window), false));
                }
            }
            Sweep::State => {}
        }
    }
    let children = cluster::watchdog();
    let mut measured = Vec::new();
    let mut failures = 0usize;
    if args.sweep.contains(&Sweep::State) {
        failures += state::sweep(args.repeat, args.fsync, &children);
        if points.is_empty() {
            return if failures > 0 {
                Err(format!("{failures} runs failed").into())
            } else {
                Ok(())
            };
        }
        println!();
    }
    for (setup, load, with_latency) in points {
        let mut point = Point {
            setup,
            load,
            throughput: Vec::new(),
            latency: Vec::new(),
        };
        for _ in 0..args.repeat {
            match throughput::run(&point.setup, &point.load, &children) {
                Ok(run) => {
                    println!("{}", run.line(&point.setup, &point.load));
                    point.throughput.push(run);
                }
                Err(e) => {
                    failures += 1;
                    println!("error {e}");
                }
            }
            between_runs();
            if with_latency {
                match latency::run(&point.setup, point.load.size, args.calls, &children) {
                    Ok(run) => {
                        println!("{}", run.line(&point.setup, point.load.size));
                        point.latency.push(run);
                    }
                    Err(e) => {
                        failures += 1;
                        println!("error {e}");
                    }
                }
                between_runs();
            }
        }
        measured.push(point);
    }
    let throughput: Vec<rows::ThroughputRows<'_>> = measured
        .iter()
        .map(|p| rows::ThroughputRows {
            setup: &p.setup,
            load: &p.load,
            runs: &p.throughput,
        })
        .collect();
    println!();
    print!("{}", rows::throughput_table(&throughput));
    println!();
    let latency: Vec<rows::LatencyRows<'_>> = measured
        .iter()
        .filter(|p| !p.latency.is_empty())
        .map(|p| rows::LatencyRows {
            setup: &p.setup,
            size: p.load.size,
            runs: &p.latency,
        })
        .collect();
    print!("{}", rows::latency_table(&latency));
    if failures > 0 {
        return Err(format!("{failures} runs failed").into());
    }
    Ok(())
}
