//! `syncobj-bench compare`: every row of issue 13's table for PySyncObj and syncobj, the two
//! systems alternately (which goes first swaps from row to row and from round to round, so
//! that a slow spell of the machine hits both), on fresh clusters started and measured by the
//! same driver code; then the baseline-shaped tables of each and the ratio table.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::cluster::{self, Setup, SharedChildren, System};
use crate::latency::{self, LatencyRun};
use crate::lifecycle::{self, LifecycleRun};
use crate::stats::{Summary, fixed};
use crate::throughput::{self, Load, ThroughputRun};
use crate::{Error, Fsync, between_runs, python, rows};

/// A row of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum Row {
    /// 3 nodes, 10 B burst, K = 100 000.
    #[value(name = "10b")]
    Bytes10,
    /// 3 nodes, 1 kB burst, K = 20 000.
    #[value(name = "1kb")]
    Kilo1,
    /// 3 nodes, 10 kB burst, K = 5 000.
    #[value(name = "10kb")]
    Kilo10,
    /// 5 nodes, 10 B burst.
    #[value(name = "5nodes")]
    Nodes5,
    /// 3 nodes, 10 B burst, encrypted transport.
    #[value(name = "password")]
    Password,
    /// 3 nodes, 10 B burst, journal synced before acknowledging (syncobj only).
    #[value(name = "fsync")]
    Fsync,
    /// 3 nodes, 10 B, the sustained load (--seconds, --window).
    #[value(name = "sustained")]
    Sustained,
    /// Sequential calls, 3 nodes, 10 B (PySyncObj with batching off).
    #[value(name = "latency")]
    Latency,
    /// The same with the journal synced (syncobj only).
    #[value(name = "latency-fsync")]
    LatencyFsync,
    /// PySyncObj's sequential calls with its default batching (100 ms each; 40 s a run).
    #[value(name = "latency-batched")]
    LatencyBatched,
    /// Cold start, then the leader SIGKILLed, 3 nodes; and on another cluster the leader
    /// SIGSTOPped.
    #[value(name = "failover")]
    Failover,
    /// The same on 5 nodes.
    #[value(name = "failover5")]
    Failover5,
}

const DEFAULT_ROWS: &str =
    "10b,1kb,10kb,5nodes,password,fsync,sustained,latency,latency-fsync,failover,failover5";

#[derive(clap::Args, Debug)]
pub(crate) struct CompareArgs {
    /// Rounds; each runs every row once per system.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Rows to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = DEFAULT_ROWS)]
    rows: Vec<Row>,
    /// Seconds of the sustained row.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Calls in flight in the sustained row.
    #[arg(long, default_value_t = 20_000)]
    window: u64,
    /// The Python that has PySyncObj (default: python3, then python).
    #[arg(long)]
    python: Option<PathBuf>,
}

/// What a row measures.
#[derive(Clone, Copy)]
enum Experiment {
    Throughput(Load),
    Latency,
    Lifecycle,
}

/// How a row is run.
struct Plan {
    row: Row,
    nodes: usize,
    password: bool,
    fsync: Option<Fsync>,
    /// Whether PySyncObj runs it (it has no synced journal).
    pysyncobj: bool,
    /// PySyncObj with appendEntriesUseBatch=False.
    nobatch: bool,
    experiment: Experiment,
}

fn burst(size: usize) -> Experiment {
    Experiment::Throughput(Load {
        size,
        count: Load::baseline_count(size),
        seconds: 0.0,
        window: 0,
    })
}

fn plan(row: Row, args: &CompareArgs) -> Plan {
    let base = Plan {
        row,
        nodes: 3,
        password: false,
        fsync: None,
        pysyncobj: true,
        nobatch: false,
        experiment: burst(10),
    };
    match row {
        Row::Bytes10 => base,
        Row::Kilo1 => Plan {
            experiment: burst(1000),
            ..base
        },
        Row::Kilo10 => Plan {
            experiment: burst(10_000),
            ..base
        },
        Row::Nodes5 => Plan { nodes: 5, ..base },
        Row::Password => Plan {
            password: true,
            ..base
        },
        Row::Fsync => Plan {
            fsync: Some(Fsync::Always),
            pysyncobj: false,
            ..base
        },
        Row::Sustained => Plan {
            experiment: Experiment::Throughput(Load {
                size: 10,
                count: 0,
                seconds: args.seconds,
                window: args.window,
            }),
            ..base
        },
        Row::Latency => Plan {
            nobatch: true,
            experiment: Experiment::Latency,
            ..base
        },
        Row::LatencyFsync => Plan {
            fsync: Some(Fsync::Always),
            pysyncobj: false,
            experiment: Experiment::Latency,
            ..base
        },
        Row::LatencyBatched => Plan {
            experiment: Experiment::Latency,
            ..base
        },
        Row::Failover => Plan {
            experiment: Experiment::Lifecycle,
            ..base
        },
        Row::Failover5 => Plan {
            nodes: 5,
            experiment: Experiment::Lifecycle,
            ..base
        },
    }
}

/// The password of the encrypted rows (the baseline's).
const PASSWORD: &str = "benchpass";

/// Index of a system in the result tables.
const PY: usize = 0;
const RS: usize = 1;

#[derive(Default)]
struct Results {
    throughput: BTreeMap<(Row, usize), Vec<ThroughputRun>>,
    latency: BTreeMap<(Row, usize), Vec<LatencyRun>>,
    lifecycle: BTreeMap<(Row, usize), Vec<LifecycleRun>>,
    /// Every launch's cold start (to the first commit), per system.
    cold: [Vec<f64>; 2],
    setups: BTreeMap<(Row, usize), Setup>,
    loads: BTreeMap<Row, Load>,
}

pub(crate) fn run(args: &CompareArgs) -> Result<(), Error> {
    if args.repeat == 0 || args.rows.is_empty() {
        return Err("--repeat and --rows must not be empty".into());
    }
    let mut wanted = args.rows.clone();
    wanted.sort();
    wanted.dedup();
    let plans: Vec<Plan> = wanted.iter().map(|&row| plan(row, args)).collect();
    let (py_system, _script) = python::pysyncobj(args.python.as_deref())?;
    let systems = [py_system, System::Syncobj];
    let children = cluster::watchdog();
    let mut results = Results::default();
    let mut errors = Vec::new();
    let mut turn = 0usize;
    for round in 1..=args.repeat {
        for plan in &plans {
            turn += 1;
            let order = if turn.is_multiple_of(2) {
                [RS, PY]
            } else {
                [PY, RS]
            };
            for which in order {
                if which == PY && !plan.pysyncobj {
                    continue;
                }
                let setup = Setup {
                    system: systems[which].clone(),
                    nodes: plan.nodes,
                    password: plan.password.then(|| PASSWORD.to_owned()),
                    fsync: plan.fsync,
                    nobatch: which == PY && plan.nobatch,
                    settle: 1.0,
                    time_limit: 60.0 + args.seconds,
                    wait_mesh: false,
                    no_compaction: false,
                };
                let label = format!("[{round}/{}] {:?}", args.repeat, plan.row);
                match one(plan, &setup, &children, &mut results, which) {
                    Ok(line) => println!("{label} {line}"),
                    Err(e) => {
                        println!("{label} error system={} {e}", setup.system.name());
                        errors.push(format!("{label} {}: {e}", setup.system.name()));
                    }
                }
                results.setups.insert((plan.row, which), setup);
                between_runs();
            }
        }
    }
    println!();
    print!("{}", detail_tables(&results));
    println!();
    print!("{}", ratio_table(&results, args));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} runs failed:\n{}", errors.len(), errors.join("\n")).into())
    }
}

/// Runs one row once on one system; its line.
fn one(
    plan: &Plan,
    setup: &Setup,
    children: &SharedChildren,
    results: &mut Results,
    which: usize,
) -> Result<String, Error> {
    let key = (plan.row, which);
    match plan.experiment {
        Experiment::Throughput(load) => {
            results.loads.insert(plan.row, load);
            let run = throughput::run(setup, &load, children)?;
            let line = run.line(setup, &load);
            results.cold[which].push(run.cold_commit);
            let bad = run.failed > 0 || run.timed_out;
            results.throughput.entry(key).or_default().push(run);
            if bad {
                return Err(format!("calls failed or timed out: {line}").into());
            }
            Ok(line)
        }
        Experiment::Latency => {
            let calls = if which == PY && !plan.nobatch {
                400
            } else {
                2000
            };
            let run = latency::run(setup, 10, calls, children)?;
            let line = run.line(setup, 10);
            results.cold[which].push(run.cold_commit);
            results.latency.entry(key).or_default().push(run);
            Ok(line)
        }
        Experiment::Lifecycle => {
            let run = lifecycle::run(setup, children)?;
            let line = run.line(setup);
            results.cold[which].push(run.cold_commit);
            results.lifecycle.entry(key).or_default().push(run);
            Ok(line)
        }
    }
}

/// Each system's runs in the baseline's table shapes.
fn detail_tables(results: &Results) -> String {
    let mut out = String::new();
    let mut loads = Vec::new();
    for (key, runs) in &results.throughput {
        let setup = &results.setups[key];
        if let Some(load) = results.loads.get(&key.0) {
            loads.push((setup, load, runs));
        }
    }
    let throughput: Vec<rows::ThroughputRows<'_>> = loads
        .iter()
        .map(|(setup, load, runs)| rows::ThroughputRows { setup, load, runs })
        .collect();
    if !throughput.is_empty() {
        out += &rows::throughput_table(&throughput);
        out.push('\n');
    }
    let latency: Vec<rows::LatencyRows<'_>> = results
        .latency
        .iter()
        .map(|(key, runs)| rows::LatencyRows {
            setup: &results.setups[key],
            size: 10,
            runs,
        })
        .collect();
    if !latency.is_empty() {
        out += &rows::latency_table(&latency);
        out.push('\n');
    }
    let lifecycle: Vec<rows::LifecycleRows<'_>> = results
        .lifecycle
        .iter()
        .map(|(key, runs)| rows::LifecycleRows {
            setup: &results.setups[key],
            runs,
        })
        .collect();
    if !lifecycle.is_empty() {
        out += &rows::lifecycle_table(&lifecycle);
    }
    out
}

/// `median (min–max)`, or a dash.
fn cell(summary: Option<Summary>, decimals: usize) -> String {
    match summary {
        Some(s) => format!(
            "{} ({}–{})",
            fixed(s.median, decimals),
            fixed(s.min, decimals),
            fixed(s.max, decimals)
        ),
        None => "–".to_owned(),
    }
}

/// A note on the runs in which calls failed or did not complete in time (their rate, of the
/// calls that succeeded, is in the figures).
fn failures(runs: Option<&Vec<ThroughputRun>>) -> String {
    let runs = runs.map_or(&[][..], Vec::as_slice);
    let bad = runs.iter().filter(|r| r.failed > 0 || r.timed_out).count();
    if bad == 0 {
        String::new()
    } else {
        format!("; calls failed in {bad} of {} runs", runs.len())
    }
}

/// How many times better syncobj's median is: larger for rates, smaller for times and memory.
fn ratio(py: Option<Summary>, rs: Option<Summary>, higher_is_better: bool) -> String {
    match (py, rs) {
        (Some(py), Some(rs)) if py.median > 0.0 && rs.median > 0.0 => {
            let r = if higher_is_better {
                rs.median / py.median
            } else {
                py.median / rs.median
            };
            let digits = if r >= 10.0 { 0 } else { 1 };
            format!("{}×", fixed(r, digits))
        }
        _ => String::new(),
    }
}

fn ratio_table(results: &Results, args: &CompareArgs) -> String {
    let mut out =
        String::from("| row | PySyncObj | syncobj | ratio of medians |\n|---|---|---|---|\n");
    let rate = |row: Row, which: usize| {
        Summary::of(
            results
                .throughput
                .get(&(row, which))
                .into_iter()
                .flatten()
                .map(|r| r.rate),
        )
    };
    let plain = rate(Row::Bytes10, RS);
    let share = |of: Option<Summary>| match (of, plain) {
        (Some(of), Some(plain)) if plain.median > 0.0 => {
            format!(
                "syncobj: {:.0}% of the plain row",
                100.0 * of.median / plain.median
            )
        }
        _ => String::new(),
    };
    let sustained = format!(
        "3 nodes, 10 B, sustained {} s (window {}), commits/s",
        args.seconds,
        fixed(args.window as f64, 0)
    );
    let throughput_rows: [(Row, &str); 7] = [
        (Row::Bytes10, "3 nodes, 10 B burst (K = 100,000), commits/s"),
        (Row::Kilo1, "3 nodes, 1 kB burst (K = 20,000), commits/s"),
        (Row::Kilo10, "3 nodes, 10 kB burst (K = 5,000), commits/s"),
        (Row::Nodes5, "5 nodes, 10 B burst, commits/s"),
        (Row::Password, "3 nodes, 10 B, password, commits/s"),
        (
            Row::Fsync,
            "3 nodes, 10 B, `journal_fsync = Always`, commits/s",
        ),
        (Row::Sustained, sustained.as_str()),
    ];
    for (row, label) in throughput_rows {
        if !args.rows.contains(&row) {
            continue;
        }
        let (py, rs) = (rate(row, PY), rate(row, RS));
        let note = match row {
            Row::Password => format!("{}; {}", ratio(py, rs, true), share(rs)),
            Row::Fsync => share(rs),
            _ => ratio(py, rs, true),
        };
        let py_cell = if row == Row::Fsync {
            "never syncs".to_owned()
        } else {
            cell(py, 0) + &failures(results.throughput.get(&(row, PY)))
        };
        let rs_cell = cell(rs, 0) + &failures(results.throughput.get(&(row, RS)));
        out += &format!("| {label} | {py_cell} | {rs_cell} | {note} |\n");
    }
    let lat = |row: Row, which: usize, f: fn(&LatencyRun) -> f64| {
        Summary::of(
            results
                .latency
                .get(&(row, which))
                .into_iter()
                .flatten()
                .map(f),
        )
    };
    let latency_rows: [(Row, &str); 3] = [
        (
            Row::Latency,
            "sequential sync call p50 / p99, ms (PySyncObj with batching off)",
        ),
        (
            Row::LatencyFsync,
            "sequential sync call p50 / p99, ms, `journal_fsync = Always`",
        ),
        (
            Row::LatencyBatched,
            "sequential sync call p50 / p99, ms (PySyncObj by default)",
        ),
    ];
    for (row, label) in latency_rows {
        if !args.rows.contains(&row) {
            continue;
        }
        let both = |which: usize| {
            if results.latency.contains_key(&(row, which)) {
                format!(
                    "{} / {}",
                    cell(lat(row, which, |r| r.p50), 3),
                    cell(lat(row, which, |r| r.p99), 3)
                )
            } else {
                "–".to_owned()
            }
        };
        let note = match row {
            Row::Latency => format!(
                "{} / {}",
                ratio(lat(row, PY, |r| r.p50), lat(row, RS, |r| r.p50), false),
                ratio(lat(row, PY, |r| r.p99), lat(row, RS, |r| r.p99), false)
            ),
            _ => String::new(),
        };
        out += &format!("| {label} | {} | {} | {note} |\n", both(PY), both(RS));
    }
    let life = |row: Row, which: usize, f: fn(&LifecycleRun) -> f64| {
        Summary::of(
            results
                .lifecycle
                .get(&(row, which))
                .into_iter()
                .flatten()
                .map(f),
        )
    };
    for (row, nodes) in [(Row::Failover, 3), (Row::Failover5, 5)] {
        if !args.rows.contains(&row) {
            continue;
        }
        for (what, f) in [
            (
                "new leader elected",
                (|r: &LifecycleRun| r.failover_elect) as fn(&LifecycleRun) -> f64,
            ),
            ("new leader committed", |r: &LifecycleRun| r.failover_commit),
        ] {
            let (py, rs) = (life(row, PY, f), life(row, RS, f));
            out += &format!(
                "| leader process killed → {what}, {nodes} nodes, s | {} | {} | {} |\n",
                cell(py, 3),
                cell(rs, 3),
                ratio(py, rs, false)
            );
        }
        for (what, f) in [
            (
                "new leader elected",
                (|r: &LifecycleRun| r.silent_elect) as fn(&LifecycleRun) -> f64,
            ),
            ("new leader committed", |r: &LifecycleRun| r.silent_commit),
        ] {
            let (py, rs) = (life(row, PY, f), life(row, RS, f));
            out += &format!(
                "| leader process stopped (SIGSTOP) → {what}, {nodes} nodes, s | {} | {} | {} |\n",
                cell(py, 3),
                cell(rs, 3),
                ratio(py, rs, false)
            );
        }
    }
    let (py, rs) = (
        Summary::of(results.cold[PY].iter().copied()),
        Summary::of(results.cold[RS].iter().copied()),
    );
    out += &format!(
        "| cold start → first commit, every launch, s | {} | {} | {} |\n",
        cell(py, 3),
        cell(rs, 3),
        ratio(py, rs, false)
    );
    let mem = |which: usize, f: fn(&ThroughputRun) -> f64| {
        Summary::of(
            results
                .throughput
                .get(&(Row::Bytes10, which))
                .into_iter()
                .flatten()
                .map(f),
        )
    };
    if args.rows.contains(&Row::Bytes10) {
        for (what, f, decimals) in [
            (
                "leader peak RSS in the 10 B burst, MiB",
                (|r: &ThroughputRun| r.leader_rss) as fn(&ThroughputRun) -> f64,
                1,
            ),
            (
                "largest follower peak RSS in the 10 B burst, MiB",
                |r: &ThroughputRun| r.max_follower_rss,
                1,
            ),
            (
                "leader CPU time over the 10 B burst, s",
                |r: &ThroughputRun| r.leader_cpu,
                2,
            ),
        ] {
            let (py, rs) = (mem(PY, f), mem(RS, f));
            out += &format!(
                "| {what} | {} | {} | {} |\n",
                cell(py, decimals),
                cell(rs, decimals),
                ratio(py, rs, false)
            );
        }
    }
    let idle = |which: usize| {
        Summary::of(
            results
                .lifecycle
                .iter()
                .filter(|((_, w), _)| *w == which)
                .flat_map(|(_, runs)| runs.iter().flat_map(|r| r.idle_rss.iter().copied())),
        )
    };
    if !results.lifecycle.is_empty() {
        let (py, rs) = (idle(PY), idle(RS));
        out += &format!(
            "| idle peak RSS per node, MiB | {} | {} | {} |\n",
            cell(py, 1),
            cell(rs, 1),
            ratio(py, rs, false)
        );
    }
    out
}
