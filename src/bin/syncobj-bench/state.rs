//! What a large state costs: `scale --sweep state` (snapshot time and size, the tick loop's
//! longest iteration meanwhile, and a restart from the snapshot, against the state's size) and
//! `restart` (a restart that replays a large journal, against the disk's own read speed).
//!
//! Both run syncobj members with a journal that syncs as asked, in a fresh temporary directory
//! removed after the run (and on every error path: the [`Cluster`] removes it when dropped),
//! with `--no-compaction` so that a member snapshots only when the driver asks.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster::{self, Cluster, Setup, SharedChildren, System, field, peak_rss_mib};
use crate::stats::{Shown, Summary};
use crate::throughput::Load;
use crate::{Error, Fsync, between_runs};

/// Bytes of one value of the state-size fill.
const VALUE_BYTES: usize = 1000;

/// The state sizes of `scale --sweep state`, in MB.
pub(crate) const STATE_MB: [u64; 3] = [1, 10, 100];

/// One state-size run.
struct StateRun {
    mb: u64,
    values: u64,
    fill: f64,
    /// The leader's snapshot: seconds to durable, file bytes, longest tick before and after.
    leader: Snapshot,
    /// The followers' snapshots, taken one after the other after the leader's.
    followers: Vec<Snapshot>,
    restart: Restarted,
}

struct Snapshot {
    seconds: f64,
    bytes: u64,
    tick_before_ms: f64,
    tick_ms: f64,
    /// Took 10 s or more: the status's window may not cover all of it.
    long: bool,
}

impl Snapshot {
    fn parse(reply: &str) -> Result<Snapshot, Error> {
        if field::<u8>(reply, "ok")? != 1 {
            return Err(format!("snapshot failed: {reply}").into());
        }
        Ok(Snapshot {
            seconds: field(reply, "seconds")?,
            bytes: field(reply, "bytes")?,
            tick_before_ms: field::<f64>(reply, "tick_before_us")? / 1e3,
            tick_ms: field::<f64>(reply, "tick_us")? / 1e3,
            long: field::<u8>(reply, "long")? == 1,
        })
    }
}

/// Polls the members' status until each holds `values` values (at most `timeout`).
fn wait_values(cluster: &mut Cluster, values: u64, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut all = true;
        for index in 0..cluster.setup.nodes {
            let status = cluster.call(index, "status", Duration::from_secs(10))?;
            all &= field::<u64>(&status, "values")? >= values;
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the members did not all hold {values} values in time").into());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Polls the members' status until each has applied at least `count` calls.
fn wait_count(cluster: &mut Cluster, count: u64, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    while cluster
        .statuses()?
        .iter()
        .flatten()
        .any(|&(applied, _)| applied < count)
    {
        if Instant::now() > deadline {
            return Err(format!("the members did not all apply {count} calls in time").into());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How long a restart took, in seconds from the driver's time before the first spawn.
#[derive(Clone, Copy)]
struct Restarted {
    /// … to the last member built (`SyncObj::new` returned: journal and snapshot read, state
    /// restored).
    started: f64,
    /// … to the first leader commit.
    commit: f64,
    /// … to the last member ready (caught up with a leader).
    ready: f64,
    /// How many times the leader's first call was refused with `QueueFull` (see `node.rs`).
    refused: u32,
}

/// Kills every member, starts them again on their journals and times the restart.
fn timed_restart(cluster: &mut Cluster) -> Result<Restarted, Error> {
    cluster.restart()?;
    let t0 = cluster.t0;
    let timeout = Duration::from_secs_f64(cluster.left(5.0).min(120.0));
    let all: Vec<usize> = (0..cluster.setup.nodes).collect();
    let seen = |cluster: &Cluster| {
        let lines: Vec<String> = cluster
            .events
            .iter()
            .map(|(i, _, l)| format!("{i}: {l}"))
            .collect();
        lines.join("; ")
    };
    let started = cluster
        .wait_each(&all, "event started", t0, timeout)
        .map_err(|e| {
            format!(
                "restart: no `started` from every member: {e} (seen: {})",
                seen(cluster)
            )
        })?;
    let (_, _, committed) = cluster
        .leader_commit(t0, None, timeout)
        .map_err(|e| format!("restart: no leader commit: {e} (seen: {})", seen(cluster)))?;
    let ready = cluster
        .wait_each(&all, "event ready", t0, timeout)
        .map_err(|e| {
            format!(
                "restart: no `ready` from every member: {e} (seen: {})",
                seen(cluster)
            )
        })?;
    let last = |times: Vec<Instant>| {
        let last = times.into_iter().max().unwrap_or(committed);
        (last - t0).as_secs_f64()
    };
    Ok(Restarted {
        started: last(started),
        commit: (committed - t0).as_secs_f64(),
        ready: last(ready),
        refused: field(&cluster.last_leader_commit, "refused").unwrap_or(0),
    })
}

/// One state-size run on a fresh 3-node cluster.
fn state_run(mb: u64, fsync: Fsync, children: &SharedChildren) -> Result<StateRun, Error> {
    let setup = Setup {
        system: System::Syncobj,
        nodes: 3,
        password: None,
        fsync: Some(fsync),
        nobatch: false,
        settle: 1.0,
        time_limit: 400.0,
        wait_mesh: true,
        no_compaction: true,
    };
    let values = mb * 1_000_000 / VALUE_BYTES as u64;
    let cluster::Settled {
        mut cluster,
        leader,
        ..
    } = cluster::settled(&setup, children)?;
    let timeout = 180.0;
    let reply = cluster.call(
        leader,
        &format!(
            "fill {VALUE_BYTES} {values} {} {timeout}",
            Load::default_window(VALUE_BYTES)
        ),
        Duration::from_secs_f64(timeout + 10.0),
    )?;
    if field::<u64>(&reply, "ok")? != values {
        return Err(format!("the fill failed: {reply}").into());
    }
    let fill: f64 = field(&reply, "elapsed")?;
    wait_values(&mut cluster, values, Duration::from_secs(60))?;
    // Quiet: the longest iteration of the last 10-20 s at most 20 ms, waiting at most 25 s.
    let command = "snapshot 20000 25 120";
    let leader_snapshot =
        Snapshot::parse(&cluster.call(leader, command, Duration::from_secs(160))?)?;
    let mut followers = Vec::new();
    for index in (0..setup.nodes).filter(|&i| i != leader) {
        let reply = cluster.call(index, command, Duration::from_secs(160))?;
        followers.push(Snapshot::parse(&reply)?);
    }
    let restart = timed_restart(&mut cluster)?;
    wait_values(&mut cluster, values, Duration::from_secs(30))?;
    Ok(StateRun {
        mb,
        values,
        fill,
        leader: leader_snapshot,
        followers,
        restart,
    })
}

impl StateRun {
    fn line(&self) -> String {
        let followers: Vec<String> = self
            .followers
            .iter()
            .map(|s| format!("{:.3}s/{:.1}ms", s.seconds, s.tick_ms))
            .collect();
        format!(
            "state mb={} values={} fill_s={:.2} snapshot_s={:.3} snapshot_bytes={} \
             tick_before_ms={:.1} tick_ms={:.1} long={} followers={} restart_started_s={:.3} \
             restart_commit_s={:.3} restart_ready_s={:.3} refused={}",
            self.mb,
            self.values,
            self.fill,
            self.leader.seconds,
            self.leader.bytes,
            self.leader.tick_before_ms,
            self.leader.tick_ms,
            u8::from(self.leader.long || self.followers.iter().any(|s| s.long)),
            followers.join(","),
            self.restart.started,
            self.restart.commit,
            self.restart.ready,
            self.restart.refused,
        )
    }
}

/// `scale --sweep state`: each size `repeat` times, on fresh clusters; prints each run's line
/// and the table. Returns how many runs failed.
pub(crate) fn sweep(repeat: usize, fsync: Fsync, children: &SharedChildren) -> usize {
    let mut failures = 0;
    let mut table = String::from(
        "| state | values of 1 kB | fill s | leader snapshot s | snapshot file MB | leader \
         longest tick ms: before / while snapshotting | followers' snapshot s | followers' \
         longest tick ms while snapshotting | restart → every member built s | restart → first \
         commit s | restart → every member ready s |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for mb in STATE_MB {
        let mut runs = Vec::new();
        for _ in 0..repeat {
            match state_run(mb, fsync, children) {
                Ok(run) => {
                    println!("{}", run.line());
                    runs.push(run);
                }
                Err(e) => {
                    failures += 1;
                    println!("error state mb={mb}: {e}");
                }
            }
            between_runs();
        }
        if runs.is_empty() {
            continue;
        }
        let show = |f: &dyn Fn(&StateRun) -> f64, decimals: usize| {
            Shown(&Summary::of(runs.iter().map(f)), decimals).to_string()
        };
        let follower = |f: &dyn Fn(&Snapshot) -> f64, decimals: usize| {
            Shown(
                &Summary::of(runs.iter().flat_map(|r| r.followers.iter().map(f))),
                decimals,
            )
            .to_string()
        };
        table += &format!(
            "| {mb} MB | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |\n",
            runs[0].values,
            show(&|r| r.fill, 2),
            show(&|r| r.leader.seconds, 3),
            show(&|r| r.leader.bytes as f64 / 1e6, 1),
            show(&|r| r.leader.tick_before_ms, 1),
            show(&|r| r.leader.tick_ms, 1),
            follower(&|s| s.seconds, 3),
            follower(&|s| s.tick_ms, 1),
            show(&|r| r.restart.started, 3),
            show(&|r| r.restart.commit, 3),
            show(&|r| r.restart.ready, 3),
        );
    }
    println!();
    print!("{table}");
    failures
}

/// `syncobj-bench restart`: a journal of about `--journal-mb` MB with no snapshot, replayed.
#[derive(clap::Args, Debug)]
pub(crate) struct RestartArgs {
    /// Members (each keeps the whole journal: at most 2 500 MB on disk in all).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// MB of log entries to write before the restarts.
    #[arg(long, default_value_t = 1024)]
    journal_mb: u64,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 10_000)]
    entry_bytes: usize,
    /// How the journal syncs while it is filled.
    #[arg(long, value_enum, default_value = "never")]
    fsync: Fsync,
    /// Restarts of each kind (journal in the page cache, and dropped from it).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

/// The files under `dir`, recursively.
fn files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn total_bytes(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Drops `files` from the page cache without touching the rest of the machine's: each is
/// synced (`sync FILE`), then `dd iflag=nocache count=0` asks the kernel to drop its clean
/// pages. Returns how many of their bytes are still cached, by `fincore` (`None` if it is not
/// installed).
fn drop_from_cache(files: &[PathBuf]) -> Result<Option<u64>, Error> {
    let run = |command: &mut Command| -> Result<String, Error> {
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(format!("{command:?} failed: {}", output.status).into());
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    for file in files {
        run(Command::new("sync").arg(file))?;
        let input = format!("if={}", file.display());
        run(Command::new("dd").args([input.as_str(), "iflag=nocache", "count=0", "status=none"]))?;
    }
    let mut cached = 0;
    for file in files {
        let Ok(out) = run(Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(file))
        else {
            return Ok(None);
        };
        cached += out.trim().parse::<u64>().unwrap_or(0);
    }
    Ok(Some(cached))
}

/// Reads `files` in order with 1 MiB reads; seconds.
fn read_all(files: &[PathBuf]) -> Result<f64, Error> {
    let mut buffer = vec![0_u8; 1 << 20];
    let start = Instant::now();
    for file in files {
        let mut file = std::fs::File::open(file)?;
        while file.read(&mut buffer)? > 0 {}
    }
    Ok(start.elapsed().as_secs_f64())
}

/// One restart of the `restart` command.
struct Restart {
    cold: bool,
    times: Restarted,
    rss: f64,
}

pub(crate) fn restart(args: &RestartArgs) -> Result<(), Error> {
    if args.nodes == 0 || args.repeat == 0 || args.entry_bytes == 0 || args.journal_mb == 0 {
        return Err("--nodes, --repeat, --entry-bytes and --journal-mb must be positive".into());
    }
    if args.nodes as u64 * args.journal_mb > 2500 {
        return Err("the journals would take more than 2 500 MB on disk".into());
    }
    let setup = Setup {
        system: System::Syncobj,
        nodes: args.nodes,
        password: None,
        fsync: Some(args.fsync),
        nobatch: false,
        settle: 1.0,
        time_limit: 600.0,
        wait_mesh: args.nodes > 1,
        no_compaction: true,
    };
    let children = cluster::watchdog();
    let cluster::Settled {
        mut cluster,
        leader,
        ..
    } = cluster::settled(&setup, &children)?;
    let count = args.journal_mb * 1_000_000 / args.entry_bytes as u64;
    let timeout = 400.0;
    let reply = cluster.call(
        leader,
        &format!(
            "load {} {count} 0 {} {timeout}",
            args.entry_bytes,
            Load::default_window(args.entry_bytes)
        ),
        Duration::from_secs_f64(timeout + 10.0),
    )?;
    if field::<u64>(&reply, "ok")? != count {
        return Err(format!("the fill failed: {reply}").into());
    }
    let fill: f64 = field(&reply, "elapsed")?;
    wait_count(&mut cluster, count, Duration::from_secs(120))?;
    let dir = cluster.journal_dir.clone().ok_or("no journal directory")?;
    let journal = files(&dir)?;
    let bytes = total_bytes(&journal);
    let mb = bytes as f64 / 1e6;
    println!(
        "filled nodes={} entries={count} entry_bytes={} journal_mb_per_node={:.0} files={} \
         fill_s={fill:.2}",
        args.nodes,
        args.entry_bytes,
        mb / args.nodes as f64,
        journal.len(),
    );
    let mut restarts = Vec::new();
    for _ in 0..args.repeat {
        for cold in [false, true] {
            cluster.kill_all();
            let cached = if cold {
                drop_from_cache(&journal)?
            } else {
                read_all(&journal)?; // into the page cache
                None
            };
            let times = timed_restart(&mut cluster)?;
            wait_count(&mut cluster, count, Duration::from_secs(60))?;
            let rss = cluster
                .pids
                .iter()
                .map(|&p| peak_rss_mib(p))
                .fold(0.0, f64::max);
            println!(
                "restart cache={} still_cached_mb={} every_built_s={:.3} first_commit_s={:.3} \
                 every_ready_s={:.3} recovery_mb_per_s={:.0} peak_rss_mib={rss:.0} refused={}",
                if cold { "dropped" } else { "warm" },
                cached.map_or("?".to_owned(), |c| format!("{:.1}", c as f64 / 1e6)),
                times.started,
                times.commit,
                times.ready,
                mb / args.nodes as f64 / times.started,
                times.refused,
            );
            restarts.push(Restart { cold, times, rss });
        }
    }
    cluster.kill_all();
    let mut reads = [Vec::new(), Vec::new()];
    for _ in 0..args.repeat {
        let cached = drop_from_cache(&journal)?;
        reads[1].push(read_all(&journal)?);
        reads[0].push(read_all(&journal)?);
        if let Some(cached) = cached {
            println!("read still_cached_mb={:.1}", cached as f64 / 1e6);
        }
    }
    drop(cluster);
    println!();
    println!(
        "| journal per node | entries | page cache | restart → every member built s | restart → \
         first commit s | restart → every member ready s | recovery MB/s (per node, to built) | \
         sequential read MB/s of the same files | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for (cold, name) in [(false, "warm"), (true, "dropped")] {
        let of =
            |f: fn(&Restart) -> f64| Summary::of(restarts.iter().filter(|r| r.cold == cold).map(f));
        let per_node = mb / args.nodes as f64;
        let replay = Summary::of(
            restarts
                .iter()
                .filter(|r| r.cold == cold)
                .map(|r| per_node / r.times.started),
        );
        let read = Summary::of(reads[usize::from(cold)].iter().map(|s| mb / s));
        println!(
            "| {per_node:.0} MB | {count} of {} B | {name} | {} | {} | {} | {} | {} | {} |",
            args.entry_bytes,
            Shown(&of(|r| r.times.started), 3),
            Shown(&of(|r| r.times.commit), 3),
            Shown(&of(|r| r.times.ready), 3),
            Shown(&replay, 0),
            Shown(&read, 0),
            Shown(&of(|r| r.rss), 0),
        );
    }
    Ok(())
}
