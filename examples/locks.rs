//! Two processes contend for one replicated lock; the holder dies, the other takes the lock
//! once it expires.
//!
//! ```text
//! cargo run --example locks
//! ```
//!
//! The program starts a three-node TCP cluster on 127.0.0.1 as three child processes of
//! itself, each holding a `LockTable` with a 2-second auto-unlock time and a
//! `ReplLockManager`. Child 0 acquires `the-lock`; child 1 is refused; the parent kills
//! child 0 (the two others remain a majority); child 1 acquires the lock once the dead
//! holder's last refresh is 2 seconds old in cluster time. The parent prints what happens,
//! checks it, kills every child at the end (also on failure) and exits nonzero on failure.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use syncobj::batteries::{LockTable, ReplLockManager};
use syncobj::prelude::*;

/// How long a lock lasts without a refresh.
const AUTO_UNLOCK: Duration = Duration::from_secs(2);

/// The lock both contenders want.
const LOCK: &str = "the-lock";

/// How long the parent waits for any one step.
const STEP: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return match child(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                println!("ERROR {error}");
                ExitCode::FAILURE
            }
        };
    }
    let mut cluster = Cluster::default();
    let outcome = parent(&mut cluster);
    cluster.kill_all();
    match outcome {
        Ok(()) => {
            println!("ok: the lock passed to the survivor after the holder died");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("FAILED: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The children, killed when the parent is done with them.
#[derive(Default)]
struct Cluster {
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Cluster {
    fn kill(&mut self, index: usize) {
        if let Some((child, stdin)) = self.children.get_mut(index) {
            stdin.take();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kill_all(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
    }

    fn tell(&mut self, index: usize, line: &str) -> Result<(), String> {
        let stdin = self
            .children
            .get_mut(index)
            .and_then(|(_, stdin)| stdin.as_mut())
            .ok_or(format!("child {index} has no input"))?;
        writeln!(stdin, "{line}").map_err(|e| format!("cannot talk to child {index}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Starts the children, runs the scenario, checks it.
fn parent(cluster: &mut Cluster) -> Result<(), String> {
    let addresses = free_addresses(3)?;
    let exe = std::env::current_exe().map_err(|e| format!("no path to this program: {e}"))?;
    let (lines, events) = channel();
    for index in 0..3 {
        let mut child = Command::new(&exe)
            .arg("--child")
            .arg(index.to_string())
            .args(&addresses)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start child {index}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no child output")?;
        let stdin = child.stdin.take();
        cluster.children.push((child, stdin));
        forward(index, stdout, lines.clone());
    }
    println!("started a 3-node cluster on {}", addresses.join(", "));
    let mut events = Events {
        events,
        pending: Vec::new(),
    };
    for index in 0..3 {
        events.expect(index, "READY")?;
    }
    println!("every node caught up with a leader");

    cluster.tell(0, "acquire")?;
    events.expect(0, "ACQUIRED")?;
    println!("child 0 acquired {LOCK}");
    cluster.tell(1, "acquire")?;
    events.expect(1, "REFUSED")?;
    println!("child 1 was refused {LOCK}: child 0 holds it");

    cluster.tell(1, "contend")?;
    cluster.kill(0);
    let killed = Instant::now();
    println!("killed child 0, the holder; child 1 keeps trying");
    events.expect(1, "ACQUIRED")?;
    let waited = killed.elapsed();
    println!(
        "child 1 acquired {LOCK} {:.1} s after the holder died (auto-unlock {} s)",
        waited.as_secs_f64(),
        AUTO_UNLOCK.as_secs()
    );
    // The dead holder refreshed the lock at most a quarter of the auto-unlock time before it
    // died, and cluster time never runs ahead of real time: the lock cannot have been free
    // sooner than this.
    let earliest = AUTO_UNLOCK - AUTO_UNLOCK / 4;
    if waited < earliest {
        return Err(format!(
            "the lock passed {waited:?} after the holder died, before it could expire ({earliest:?})"
        ));
    }
    cluster.tell(1, "check")?;
    events.expect(1, "HOLDING")?;
    println!("child 1 holds {LOCK}");
    Ok(())
}

/// The children's output lines, by child.
struct Events {
    events: Receiver<(usize, String)>,
    /// Orders' answers that came before they were expected.
    pending: Vec<(usize, String)>,
}

impl Events {
    /// Waits (at most [`STEP`]) for `child` to print `word`; other lines are shown.
    fn expect(&mut self, child: usize, word: &str) -> Result<(), String> {
        let wanted = |from: usize, line: &str| from == child && line.starts_with(word);
        if let Some(at) = self.pending.iter().position(|(f, l)| wanted(*f, l)) {
            self.pending.remove(at);
            return Ok(());
        }
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((from, line)) if wanted(from, &line) => return Ok(()),
                Ok((from, line)) if line.starts_with("ERROR") => {
                    return Err(format!("child {from}: {line}"));
                }
                Ok((from, line)) if line.chars().all(|c| c.is_ascii_uppercase()) => {
                    self.pending.push((from, line));
                }
                Ok((from, line)) => println!("  child {from}: {line}"),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("child {child} did not say {word} within {STEP:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => return Err("every child is gone".into()),
            }
        }
    }
}

/// Forwards a child's output lines to the parent's channel.
fn forward(
    index: usize,
    stdout: impl std::io::Read + Send + 'static,
    lines: Sender<(usize, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send((index, line)).is_err() {
                return;
            }
        }
    });
}

/// `n` loopback addresses with ports free a moment ago.
fn free_addresses(n: usize) -> Result<Vec<String>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("no free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("no local address: {e}"))
}

/// A child: node `args[0]` of the cluster of `args[1..]`, taking orders on its input, one per
/// line; it exits when its input closes (the parent is gone).
fn child(args: &[String]) -> Result<(), String> {
    let index: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or("which child?")?;
    let addresses = &args[1..];
    let me = addresses.get(index).ok_or("no address for this child")?;
    let partners = addresses.iter().filter(|a| *a != me);
    let node = SyncObj::new(
        me,
        partners,
        LockTable::new(AUTO_UNLOCK),
        SyncObjConf::default(),
    )
    .map_err(|e| format!("cannot start: {e}"))?;
    if !node.wait_ready(STEP) {
        return Err("no leader in time".into());
    }
    let locks = ReplLockManager::new(node.handle(), Some(format!("child-{index}")))
        .map_err(|e| format!("no thread for the lock manager: {e}"))?;
    println!("READY");
    let wait = Duration::from_secs(10);
    for order in std::io::stdin().lock().lines().map_while(Result::ok) {
        match order.as_str() {
            "acquire" => match locks.try_acquire(LOCK).wait_timeout(wait) {
                Ok(true) => println!("ACQUIRED"),
                Ok(false) => println!("REFUSED"),
                Err(reason) => println!("ERROR acquire failed: {reason}"),
            },
            "contend" => {
                let deadline = Instant::now() + STEP;
                loop {
                    match locks.try_acquire(LOCK).wait_timeout(wait) {
                        Ok(true) => break println!("ACQUIRED"),
                        Ok(false) => println!("still held by {:?}", node.read().holder(LOCK)),
                        Err(reason) => println!("acquire failed ({reason}); trying again"),
                    }
                    if Instant::now() >= deadline {
                        break println!("ERROR never acquired");
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
            "check" => match locks.is_acquired(LOCK) {
                true => println!("HOLDING"),
                false => println!("ERROR not holding"),
            },
            other => println!("ERROR unknown order {other:?}"),
        }
    }
    Ok(())
}
