//! The node processes: starting one on its journal, talking to it over its standard input and
//! output, killing it with SIGKILL, pausing it with SIGSTOP. Every process is killed when the
//! [`Cluster`] is dropped, however the run ends.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::Error;

/// A node's standard input and the answers awaited from it; shared by the clients calling on
/// it. Empty while the node is down.
#[derive(Default)]
pub(crate) struct Link {
    input: Mutex<Option<ChildStdin>>,
    pending: Arc<Mutex<HashMap<u64, Sender<String>>>>,
}

/// The request numbers, unique over the run (a put's number is also the value it writes).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What became of a request.
pub(crate) enum Sending {
    /// The node is down: nothing was sent.
    Down,
    /// The write failed (the node died meanwhile): its outcome is unknown.
    Broken,
    /// Sent: request `id`'s answer comes on `answer`.
    Sent { id: u64, answer: Receiver<String> },
}

impl Link {
    /// Sends `verb ID args` if the node is up, calling `before` (the recorder of the
    /// invocation) with the request number just before the line is written (not if the node
    /// is down).
    pub(crate) fn send(&self, verb: &str, args: &str, before: impl FnOnce(u64)) -> Sending {
        let mut input = lock(&self.input);
        let Some(stdin) = input.as_mut() else {
            return Sending::Down;
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = channel();
        lock(&self.pending).insert(id, sender);
        before(id);
        match writeln!(stdin, "{verb} {id} {args}").and_then(|()| stdin.flush()) {
            Ok(()) => Sending::Sent { id, answer },
            Err(_) => {
                self.forget(id);
                Sending::Broken
            }
        }
    }

    /// Sends a request and waits for its answer's text (after the echoed number), at most
    /// `wait`.
    pub(crate) fn ask(&self, verb: &str, wait: Duration) -> Option<String> {
        let Sending::Sent { id, answer } = self.send(verb, "", |_| {}) else {
            return None;
        };
        let answer = answer.recv_timeout(wait).ok();
        self.forget(id);
        answer
    }

    /// Stops waiting for request `id` (a late answer is dropped).
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.pending).remove(&id);
    }

    fn attach(&self, stdin: ChildStdin) {
        *lock(&self.input) = Some(stdin);
    }

    /// The node is down: nothing more is sent, and every request awaited fails at once.
    fn detach(&self) {
        *lock(&self.input) = None;
        lock(&self.pending).clear();
    }
}

/// Reads a node's answers and hands each to the request it names.
fn route_answers(output: impl std::io::Read, pending: Arc<Mutex<HashMap<u64, Sender<String>>>>) {
    for line in BufReader::new(output).lines().map_while(Result::ok) {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<u64>() else { continue };
        if let Some(sender) = lock(&pending).remove(&id) {
            let _ = sender.send(rest.to_owned());
        }
    }
}

/// Where each node is: the address its peers dial (the controller's proxy), the one it
/// listens on, and its journal.
pub(crate) struct Layout {
    pub(crate) public: Vec<String>,
    pub(crate) bind: Vec<String>,
    pub(crate) dir: PathBuf,
}

/// Every node process of the run, and the links the clients use.
pub(crate) struct Cluster {
    layout: Layout,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
    pub(crate) links: Vec<Arc<Link>>,
    keep_dir: bool,
}

impl Cluster {
    pub(crate) fn new(layout: Layout) -> Cluster {
        let n = layout.public.len();
        Cluster {
            layout,
            children: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            links: (0..n).map(|_| Arc::new(Link::default())).collect(),
            keep_dir: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    pub(crate) fn is_up(&self, node: usize) -> bool {
        self.children[node].is_some()
    }

    /// Keeps the journals and node logs after the run (for a failure's post-mortem).
    pub(crate) fn keep_dir(&mut self) -> &Path {
        self.keep_dir = true;
        &self.layout.dir
    }

    /// Starts node `node` on its journal (it must be down).
    pub(crate) fn start(&mut self, node: usize) -> Result<(), Error> {
        let layout = &self.layout;
        let me = &layout.public[node];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(layout.dir.join(format!("node-{node}.log")))?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--node")
            .arg(me)
            .arg(&layout.bind[node])
            .arg(layout.dir.join(format!("node-{node}.journal")))
            .args(layout.public.iter().filter(|a| *a != me))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let pending = Arc::clone(&self.links[node].pending);
        std::thread::spawn(move || route_answers(stdout, pending));
        self.links[node].attach(stdin);
        self.children[node] = Some(child);
        self.paused[node] = false;
        Ok(())
    }

    /// Kills node `node` with SIGKILL (no destructor, no last sync) and reaps it.
    pub(crate) fn kill(&mut self, node: usize) {
        self.links[node].detach();
        if let Some(mut child) = self.children[node].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused[node] = false;
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) node `node`.
    pub(crate) fn pause(&mut self, node: usize, pause: bool) -> Result<(), Error> {
        let Some(child) = &self.children[node] else {
            return Ok(());
        };
        let signal = if pause { "STOP" } else { "CONT" };
        // The shell's own kill: POSIX, there even where no kill program is installed.
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$0\" \"$1\"", signal])
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            return Err(format!("kill -s {signal} {} failed: {status}", child.id()).into());
        }
        self.paused[node] = pause;
        Ok(())
    }

    /// The node every live node names as leader, if they agree on one.
    pub(crate) fn leader(&self) -> Option<usize> {
        let mut named = None;
        for (node, link) in self.links.iter().enumerate() {
            if !self.is_up(node) || self.paused[node] {
                continue;
            }
            let answer = link.ask("leader", Duration::from_secs(1))?;
            let address = answer.strip_prefix("leader ")?;
            let index = self.layout.public.iter().position(|a| a == address)?;
            if named.is_some_and(|n| n != index) {
                return None;
            }
            named = Some(index);
        }
        named
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in 0..self.children.len() {
            self.kill(node);
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.layout.dir);
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
