//! The driver's side of a cluster: starting N member processes on loopback, talking to them
//! over the line protocol (see `node.rs`), reading their CPU time and peak memory, and killing
//! every one of them on every path.
//!
//! # Hygiene
//!
//! Every child is held in one list shared with a watchdog thread. A [`Cluster`] SIGKILLs and
//! reaps its children when dropped (also while unwinding from an error or a panic) and removes
//! its journal directory. The watchdog kills the children of a run that passes its time limit;
//! every wait of the driver has a deadline too, so the run then fails with an error, and should
//! the driver itself hang, the watchdog ends the program 30 s later. A member exits on its own
//! when its standard input closes or after its life limit, and Ctrl-C in a terminal reaches
//! the members as well (they are in the driver's process group).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Fsync};

/// The system whose members a cluster runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum System {
    /// This binary, re-executed as `syncobj-bench node`.
    Syncobj,
    /// `bench/pysyncobj/node.py` (embedded in this binary, written to `script`) run by `python`.
    PySyncObj { python: PathBuf, script: PathBuf },
}

impl System {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            System::Syncobj => "syncobj",
            System::PySyncObj { .. } => "PySyncObj",
        }
    }
}

/// What one cluster is made of.
#[derive(Clone, Debug)]
pub(crate) struct Setup {
    pub(crate) system: System,
    pub(crate) nodes: usize,
    pub(crate) password: Option<String>,
    /// A journal per member (syncobj only), in a fresh temporary directory.
    pub(crate) fsync: Option<Fsync>,
    /// PySyncObj's `appendEntriesUseBatch=False` (the baseline's `conf=nobatch`).
    pub(crate) nobatch: bool,
    /// Seconds after the first leader commit before measuring.
    pub(crate) settle: f64,
    /// Hard cap on one run, from the first spawn to the last kill.
    pub(crate) time_limit: f64,
    /// Before settling, wait (at most 15 s) until every member is linked to every other.
    pub(crate) wait_mesh: bool,
    /// syncobj only: members take a snapshot only when the driver asks (`--no-compaction`).
    pub(crate) no_compaction: bool,
}

impl Setup {
    /// The transport and configuration, as the baseline's rows name them.
    pub(crate) fn conf_name(&self) -> String {
        let transport = if self.password.is_some() {
            "encrypted (password)"
        } else {
            "plain"
        };
        let conf = match (&self.system, self.fsync, self.nobatch) {
            (System::PySyncObj { .. }, _, true) => "nobatch",
            (_, Some(Fsync::Always), _) => "journal, fsync always",
            (_, Some(Fsync::Never), _) => "journal, fsync never",
            _ => "default",
        };
        format!("{transport}, {conf}")
    }
}

/// The children of the current run, shared with the watchdog.
#[derive(Default)]
pub(crate) struct Children {
    procs: Vec<Child>,
    /// When the watchdog kills the children.
    deadline: Option<Instant>,
}

pub(crate) type SharedChildren = Arc<Mutex<Children>>;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the watchdog: kills the children of a run past its deadline, and ends the program if
/// the driver is still stuck 30 s later.
pub(crate) fn watchdog() -> SharedChildren {
    let children = SharedChildren::default();
    let watched = Arc::clone(&children);
    thread::spawn(move || {
        loop {
            thread::sleep(Duration::from_millis(100));
            let mut children = lock(&watched);
            let Some(deadline) = children.deadline else {
                continue;
            };
            let now = Instant::now();
            if now > deadline + Duration::from_secs(30) {
                eprintln!("syncobj-bench: the driver is stuck past the time limit; giving up");
                std::process::exit(2);
            }
            if now > deadline && !children.procs.is_empty() {
                eprintln!("syncobj-bench: a run exceeded --time-limit; its members were killed");
                for child in &mut children.procs {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    });
    children
}

/// `n` distinct free loopback addresses, chosen by the operating system.
fn addresses(n: usize) -> Result<Vec<String>, Error> {
    // Hold every listener until all ports are chosen, so that they differ.
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.to_string()))
        .collect()
}

/// A fresh directory under the system's temporary directory, for one run's journals.
fn fresh_dir() -> Result<PathBuf, Error> {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("syncobj-bench-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A line from a member: its index, when the driver read it, the text after `@@ `.
type Line = (usize, Instant, String);

/// One running cluster. Dropping it kills every member and removes its journals.
pub(crate) struct Cluster {
    pub(crate) setup: Setup,
    children: SharedChildren,
    stdins: Vec<Option<ChildStdin>>,
    pub(crate) pids: Vec<u32>,
    lines: Receiver<Line>,
    /// Lines read while waiting for something else.
    pub(crate) events: Vec<Line>,
    /// The driver's time just before spawning the first member.
    pub(crate) t0: Instant,
    pub(crate) journal_dir: Option<PathBuf>,
    /// Every member's address, comma-separated (the same on a restart).
    addrs: String,
    /// Members stopped with SIGSTOP and not continued yet.
    stopped: Vec<bool>,
    /// The text of the leader commit [`Cluster::leader_commit`] found last.
    pub(crate) last_leader_commit: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        lock(&self.children).deadline = None;
        if let Some(dir) = &self.journal_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Cluster {
    /// SIGKILLs every member (a stopped one is continued first) and reaps it.
    pub(crate) fn kill_all(&mut self) {
        self.stdins.clear();
        for (index, stopped) in self.stopped.iter_mut().enumerate() {
            if std::mem::take(stopped) {
                let _ = send_signal(self.pids[index], "CONT");
            }
        }
        let mut children = lock(&self.children);
        for child in &mut children.procs {
            let _ = child.kill(); // SIGKILL; an error means it already exited
        }
        for child in &mut children.procs {
            let _ = child.wait();
        }
        children.procs.clear();
    }

    /// Spawns the members back to back.
    pub(crate) fn start(setup: &Setup, children: &SharedChildren) -> Result<Cluster, Error> {
        let addrs = addresses(setup.nodes)?.join(",");
        let journal_dir = match setup.fsync {
            Some(_) => Some(fresh_dir()?),
            None => None,
        };
        let (_, lines) = mpsc::channel();
        let mut cluster = Cluster {
            setup: setup.clone(),
            children: Arc::clone(children),
            stdins: Vec::new(),
            pids: Vec::new(),
            lines,
            events: Vec::new(),
            t0: Instant::now(),
            journal_dir,
            addrs,
            stopped: Vec::new(),
            last_leader_commit: String::new(),
        };
        cluster.spawn_all()?;
        Ok(cluster)
    }

    /// Kills every member and starts them all again on the same addresses and journals, with a
    /// fresh time limit from now (`t0`).
    pub(crate) fn restart(&mut self) -> Result<(), Error> {
        self.kill_all();
        self.pids.clear();
        self.events.clear();
        self.spawn_all()
    }

    /// Spawns every member (the cluster has none running).
    fn spawn_all(&mut self) -> Result<(), Error> {
        let (sender, lines) = mpsc::channel();
        self.lines = lines;
        self.stdins.clear();
        self.stopped = vec![false; self.setup.nodes];
        let setup = self.setup.clone();
        let children = Arc::clone(&self.children);
        let max_life = format!("{}", setup.time_limit + 30.0);
        self.t0 = Instant::now();
        lock(&children).deadline = Some(self.t0 + Duration::from_secs_f64(setup.time_limit));
        let cluster = self;
        for index in 0..setup.nodes {
            let mut command = match &setup.system {
                System::Syncobj => {
                    let mut command = Command::new(std::env::current_exe()?);
                    command.arg("node");
                    if let (Some(dir), Some(fsync)) = (&cluster.journal_dir, setup.fsync) {
                        command
                            .arg("--journal")
                            .arg(dir.join(format!("node-{index}")));
                        command.args(["--fsync", fsync.name()]);
                    }
                    if setup.no_compaction {
                        command.arg("--no-compaction");
                    }
                    command
                }
                System::PySyncObj { python, script } => {
                    let mut command = Command::new(python);
                    command.arg("-u").arg(script);
                    if setup.nobatch {
                        command.arg("--nobatch");
                    }
                    command
                }
            };
            command
                .args(["--index", &index.to_string(), "--addrs", &cluster.addrs])
                .args(["--max-life", &max_life])
                .args(
                    setup
                        .password
                        .iter()
                        .flat_map(|p| ["--password", p.as_str()]),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = command.spawn()?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take();
            cluster.pids.push(child.id());
            lock(&children).procs.push(child);
            let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
                return Err("a member has no pipes".into());
            };
            cluster.stdins.push(Some(stdin));
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(message) = line.strip_prefix("@@ ") {
                        let _ = sender.send((index, Instant::now(), message.to_owned()));
                    }
                }
            });
        }
        Ok(())
    }

    /// Waits until every member in `which` has sent a line starting with `prefix` read after
    /// `after`; the driver's time of each (in the order of `which`).
    pub(crate) fn wait_each(
        &mut self,
        which: &[usize],
        prefix: &str,
        after: Instant,
        timeout: Duration,
    ) -> Result<Vec<Instant>, Error> {
        let mut seen: Vec<Option<Instant>> = vec![None; which.len()];
        let matched = |(index, at, line): &Line, seen: &mut Vec<Option<Instant>>| match which
            .iter()
            .position(|i| i == index)
        {
            Some(k) if *at > after && seen[k].is_none() && line.starts_with(prefix) => {
                seen[k] = Some(*at);
                true
            }
            _ => false,
        };
        let mut kept = Vec::new();
        for line in std::mem::take(&mut self.events) {
            if !matched(&line, &mut seen) {
                kept.push(line);
            }
        }
        self.events = kept;
        let deadline = Instant::now() + timeout;
        while seen.iter().any(Option::is_none) {
            let line = self.next_line(deadline)?;
            if !matched(&line, &mut seen) {
                self.events.push(line);
            }
        }
        Ok(seen.into_iter().flatten().collect())
    }

    /// Sends SIGSTOP to member `index` and returns the driver's time just before. The member
    /// is continued and killed with the others (or by [`Cluster::kill`]).
    pub(crate) fn stop(&mut self, index: usize) -> Result<Instant, Error> {
        let pid = *self.pids.get(index).ok_or("no such member")?;
        let t = Instant::now();
        send_signal(pid, "STOP")?;
        self.stopped[index] = true;
        Ok(t)
    }

    /// The next line from any member, waiting at most until `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Result<Line, Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err("timed out waiting for a member".into()),
            Err(RecvTimeoutError::Disconnected) => Err("every member exited".into()),
        }
    }

    /// Waits for a successful leader commit of a member not in `exclude` read after `after`:
    /// (member, when it became leader, when its first call committed), as the driver's times.
    pub(crate) fn leader_commit(
        &mut self,
        after: Instant,
        exclude: Option<usize>,
        timeout: Duration,
    ) -> Result<(usize, Instant, Instant), Error> {
        let is_it = |(index, at, line): &Line| {
            Some(*index) != exclude
                && *at > after
                && line.starts_with("event leader_commit")
                && fields(line).get("ok") == Some(&"1")
        };
        let found = match self.events.iter().position(is_it) {
            Some(i) => self.events.remove(i),
            None => {
                let deadline = Instant::now() + timeout;
                loop {
                    let line = self.next_line(deadline)?;
                    if is_it(&line) {
                        break line;
                    }
                    self.events.push(line);
                }
            }
        };
        let (index, at, line) = found;
        let dt: f64 = field(&line, "dt")?;
        self.last_leader_commit.clone_from(&line);
        let became = at
            .checked_sub(Duration::from_secs_f64(dt.max(0.0)))
            .unwrap_or(at);
        Ok((index, became, at))
    }

    /// Sends `command` to member `index` and waits for its reply.
    pub(crate) fn call(
        &mut self,
        index: usize,
        command: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        let stdin = self
            .stdins
            .get_mut(index)
            .and_then(Option::as_mut)
            .ok_or("no such member")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let deadline = Instant::now() + timeout;
        loop {
            let (from, at, line) = self.next_line(deadline)?;
            if from == index && line.starts_with("reply ") {
                if line.starts_with("reply error") {
                    return Err(format!("member {index}: {line}").into());
                }
                return Ok(line);
            }
            self.events.push((from, at, line));
        }
    }

    /// SIGKILLs member `index` and returns the driver's time just before.
    pub(crate) fn kill(&mut self, index: usize) -> Result<Instant, Error> {
        let mut children = lock(&self.children);
        let child = children.procs.get_mut(index).ok_or("no such member")?;
        if std::mem::take(&mut self.stopped[index]) {
            let _ = send_signal(self.pids[index], "CONT");
        }
        let t = Instant::now();
        child.kill()?;
        let _ = child.wait();
        if let Some(stdin) = self.stdins.get_mut(index) {
            *stdin = None;
        }
        Ok(t)
    }

    /// Every live member's (applied count, partners linked); `None` for killed ones.
    pub(crate) fn statuses(&mut self) -> Result<Vec<Option<(u64, usize)>>, Error> {
        (0..self.setup.nodes)
            .map(|index| {
                if self.stdins[index].is_none() {
                    return Ok(None);
                }
                let status = self.call(index, "status", Duration::from_secs(10))?;
                Ok(Some((field(&status, "count")?, field(&status, "links")?)))
            })
            .collect()
    }

    /// Seconds left before the run's time limit, minus `margin`.
    pub(crate) fn left(&self, margin: f64) -> f64 {
        let used = self.t0.elapsed().as_secs_f64();
        (self.setup.time_limit - used - margin).max(0.0)
    }
}

/// A started cluster past its first leader commit and the settle time.
pub(crate) struct Settled {
    pub(crate) cluster: Cluster,
    pub(crate) leader: usize,
    /// From the driver's time before the first spawn to the leader's election.
    pub(crate) cold_leader: f64,
    /// … and to its first commit.
    pub(crate) cold_commit: f64,
    /// Partners each member was linked to when the measurement began.
    pub(crate) links: Vec<usize>,
}

/// Starts a cluster and waits for its first leader commit (and the full mesh with
/// `wait_mesh`), then the settle time.
pub(crate) fn settled(setup: &Setup, children: &SharedChildren) -> Result<Settled, Error> {
    let mut cluster = Cluster::start(setup, children)?;
    let t0 = cluster.t0;
    let timeout = Duration::from_secs_f64(cluster.left(5.0).min(40.0));
    let (leader, became, committed) = cluster.leader_commit(t0, None, timeout)?;
    if setup.wait_mesh {
        let deadline = Instant::now() + Duration::from_secs(15);
        while cluster
            .statuses()?
            .iter()
            .flatten()
            .any(|&(_, links)| links + 1 < setup.nodes)
        {
            if Instant::now() > deadline {
                return Err("the members did not all link up within 15 s".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    thread::sleep(Duration::from_secs_f64(setup.settle));
    let links = cluster
        .statuses()?
        .into_iter()
        .map(|s| s.map_or(0, |(_, links)| links))
        .collect();
    Ok(Settled {
        cluster,
        leader,
        cold_leader: became.saturating_duration_since(t0).as_secs_f64(),
        cold_commit: (committed - t0).as_secs_f64(),
        links,
    })
}

/// Sends a signal (`STOP`, `CONT`) to `pid` with kill(1).
fn send_signal(pid: u32, signal: &str) -> Result<(), Error> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -s {signal} {pid} failed: {status}").into())
    }
}

/// `key=value` words of a line.
pub(crate) fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// The value of `key` in a line of `key=value` words.
pub(crate) fn field<T: std::str::FromStr>(line: &str, key: &str) -> Result<T, Error> {
    fields(line)
        .get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key} in {line:?}").into())
}

/// utime + stime of `pid` in seconds (USER_HZ is 100 on Linux).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let read = || -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(')')?.1;
        let parts: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = parts.get(11)?.parse().ok()?;
        let stime: f64 = parts.get(12)?.parse().ok()?;
        Some((utime + stime) / 100.0)
    };
    read().unwrap_or(f64::NAN)
}

/// `VmHWM` (peak resident memory) of `pid` in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    let read = || -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    read().unwrap_or(f64::NAN)
}
