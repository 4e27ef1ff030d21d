//! The clients: threads that call on every node back to back, and the record of what each call
//! was, when it was invoked and when it completed, on the controller's monotonic clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Rng;
use crate::cluster::{Link, Sending, lock};

/// How long a client waits for an answer before it takes the call's outcome as unknown: beyond
/// the node's own `call_timeout` (2 s), so that a node's answer usually comes first.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// What a client asked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Stores `value` (the request's number: unique) under `key`.
    Put { key: u32, value: u64 },
    /// Reads `key` through the log.
    Get { key: u32 },
}

/// How a call ended.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// Acknowledged, with the value it returned (a put's previous value, a get's value).
    Ok(Option<u64>),
    /// Failed with a reason that promises it was never applied.
    NeverApplied(String),
    /// Failed in a way that may have applied it, or no answer came in time.
    Unknown(String),
}

/// One call.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) node: usize,
    pub(crate) client: u64,
    pub(crate) op: Op,
    /// Invocation, microseconds on the controller's clock, taken before the request is sent.
    pub(crate) start: u64,
    /// Completion, taken after the answer arrived; `None` until then, and for an unknown
    /// outcome.
    pub(crate) end: Option<u64>,
    pub(crate) outcome: Option<Outcome>,
}

/// Every call of the run and, per node, when it last acknowledged one.
pub(crate) struct Recording {
    keys: u32,
    clock: Instant,
    records: Mutex<Vec<Record>>,
    last_ack: Mutex<Vec<u64>>,
    acked: Condvar,
}

impl Recording {
    /// A recording of calls on `nodes` nodes, about `keys` keys.
    pub(crate) fn new(nodes: usize, keys: u32) -> Recording {
        Recording {
            keys,
            clock: Instant::now(),
            records: Mutex::default(),
            last_ack: Mutex::new(vec![0; nodes]),
            acked: Condvar::new(),
        }
    }

    /// How many keys the calls are about.
    pub(crate) fn keys(&self) -> u32 {
        self.keys
    }

    /// Now, in microseconds on the run's clock.
    pub(crate) fn now(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    fn invoke(&self, node: usize, client: u64, op: Op) -> usize {
        let mut records = lock(&self.records);
        records.push(Record {
            node,
            client,
            op,
            start: self.now(),
            end: None,
            outcome: None,
        });
        records.len() - 1
    }

    fn complete(&self, index: usize, outcome: Outcome) {
        let mut records = lock(&self.records);
        let end = self.now();
        let record = &mut records[index];
        if let Outcome::Ok(_) = outcome {
            record.end = Some(end);
            let mut last_ack = lock(&self.last_ack);
            last_ack[record.node] = last_ack[record.node].max(end);
            self.acked.notify_all();
        }
        record.outcome = Some(outcome);
    }

    /// Waits until every node of `nodes` acknowledged a call after `since` (µs); on timeout,
    /// the nodes that did not.
    pub(crate) fn wait_for_acks(
        &self,
        nodes: &[usize],
        since: u64,
        timeout: Duration,
    ) -> Result<(), Vec<usize>> {
        let deadline = Instant::now() + timeout;
        let mut last_ack = lock(&self.last_ack);
        loop {
            let missing: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|&n| last_ack[n] <= since)
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if missing.is_empty() {
                return Ok(());
            }
            if left.is_zero() {
                return Err(missing);
            }
            last_ack = self
                .acked
                .wait_timeout(last_ack, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Every call recorded so far.
    pub(crate) fn records(&self) -> Vec<Record> {
        lock(&self.records).clone()
    }

    /// Makes one call on a node and records it; `false` if the node is down (nothing sent).
    pub(crate) fn call(&self, link: &Link, node: usize, client: u64, op: Op) -> bool {
        let (verb, key) = match op {
            Op::Put { key, .. } => ("put", key),
            Op::Get { key } => ("get", key),
        };
        let mut index = None;
        let sending = link.send(verb, &key.to_string(), |id| {
            let op = match op {
                Op::Put { key, .. } => Op::Put { key, value: id },
                get => get,
            };
            index = Some(self.invoke(node, client, op));
        });
        let outcome = match sending {
            Sending::Down => return false,
            Sending::Broken => Outcome::Unknown("the node died as the call was sent".into()),
            Sending::Sent { id, answer } => match answer.recv_timeout(ANSWER_WAIT) {
                Ok(text) => parse(&text),
                Err(_) => {
                    link.forget(id);
                    Outcome::Unknown("no answer in time".into())
                }
            },
        };
        if let Some(index) = index {
            self.complete(index, outcome);
        }
        true
    }
}

/// Reads a node's answer to a call: `ok VALUE`, `ok -`, `fail EFFECT REASON`.
fn parse(text: &str) -> Outcome {
    let words: Vec<&str> = text.splitn(3, ' ').collect();
    match words.as_slice() {
        ["ok", "-"] => Outcome::Ok(None),
        ["ok", value] => match value.parse() {
            Ok(value) => Outcome::Ok(Some(value)),
            Err(_) => Outcome::Unknown(format!("unreadable answer {text:?}")),
        },
        ["fail", "none", reason] => Outcome::NeverApplied((*reason).to_owned()),
        ["fail", _, reason] => Outcome::Unknown((*reason).to_owned()),
        _ => Outcome::Unknown(format!("unreadable answer {text:?}")),
    }
}

/// The client threads, stopped and joined by [`Clients::stop`] or on drop.
pub(crate) struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Clients {
    /// Starts `per_node` clients on every node, each calling back to back: a put or a get of
    /// one of `keys` keys, at random.
    pub(crate) fn start(
        recording: &Arc<Recording>,
        links: &[Arc<Link>],
        per_node: usize,
        seed: u64,
    ) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (node, link) in links.iter().enumerate() {
            for c in 0..per_node {
                let client = (node * per_node + c + 1) as u64;
                let (recording, link, stop) =
                    (Arc::clone(recording), Arc::clone(link), Arc::clone(&stop));
                let mut rng = Rng::new(seed ^ client.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                threads.push(std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let key = rng.below(recording.keys() as usize) as u32;
                        let op = if rng.below(2) == 0 {
                            Op::Put { key, value: 0 }
                        } else {
                            Op::Get { key }
                        };
                        if !recording.call(&link, node, client, op) {
                            // The node is down: call again once it may be back.
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }));
            }
        }
        Clients { stop, threads }
    }

    /// Stops every client after its current call.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop();
    }
}
