//! The replicated counter of the README, on three nodes in this process: first ticked by hand,
//! then by their own tick threads. Every call form appears: `wait`, `on_done`, `.await` and
//! `detach`, plus a versioned method enabled with `set_code_version`.
//!
//! Run it with `cargo run --example counter`.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }

    #[replicated(ver = 1)] // callable once the cluster's code version is >= 1
    fn reset(&mut self) {
        self.value = 0
    }

    fn get(&self) -> i64 {
        self.value
    }
}

const ADDRESSES: [&str; 3] = ["127.0.0.1:4321", "127.0.0.1:4322", "127.0.0.1:4323"];

/// How long any step of the example may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(10);

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    // Logs go to standard error at the level RUST_LOG names (errors only by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    manual_ticks()?;
    auto_ticks()?;
    Ok(())
}

fn start(auto_tick: bool) -> Result<Vec<SyncObj<Counter>>, Error> {
    let network = MemoryNetwork::new();
    let conf = SyncObjConf::builder().auto_tick(auto_tick).build()?;
    let mut nodes = Vec::new();
    for me in ADDRESSES {
        let partners = ADDRESSES.iter().filter(|&&a| a != me).copied();
        nodes.push(SyncObj::with_transport(
            me,
            partners,
            Counter::default(),
            conf.clone(),
            network.endpoint(me),
        )?);
    }
    Ok(nodes)
}

/// With `auto_tick = false` the program drives every node with `do_tick`.
fn manual_ticks() -> Result<(), Error> {
    println!("-- manual ticks");
    let nodes = start(false)?;
    let (done, results) = mpsc::channel();
    nodes[0].add(5).on_done(move |r| drop(done.send(r)));
    let value = tick_until(&nodes, || results.try_recv().ok())??;
    println!("add(5) on {} returned {value}", ADDRESSES[0]);

    // A blocking wait ticks its own node; the others need ticking too, here by a helper thread.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let value = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for node in &nodes[1..] {
                    if node.do_tick(Duration::from_millis(1)).is_err() {
                        return;
                    }
                }
            }
        });
        let value = nodes[0].add(2).wait_timeout(PATIENCE);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        value
    })?;
    println!("add(2).wait() on {} returned {value}", ADDRESSES[0]);
    tick_until(&nodes, || {
        nodes.iter().all(|n| n.read().get() == 7).then_some(())
    })?;
    println!("every node reads {}", nodes[2].read().get());
    Ok(())
}

/// Ticks every node until `done` returns a value, for at most [`PATIENCE`].
fn tick_until<T>(
    nodes: &[SyncObj<Counter>],
    mut done: impl FnMut() -> Option<T>,
) -> Result<T, Error> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = done() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err("the cluster did not get there in time".into());
        }
        for node in nodes {
            node.do_tick(Duration::from_millis(1))?;
        }
    }
}

/// With `auto_tick = true` (the default) each node runs its own tick thread.
fn auto_ticks() -> Result<(), Error> {
    println!("-- auto ticks");
    let nodes = start(true)?;
    let value = nodes[1].add(5).wait_timeout(PATIENCE)?;
    println!("add(5).wait() on {} returned {value}", ADDRESSES[1]);

    let (done, results) = mpsc::channel();
    nodes[2]
        .add(1)
        .on_done(move |r: Result<i64, FailReason>| drop(done.send(r)));
    println!(
        "add(1).on_done(..) on {} got {}",
        ADDRESSES[2],
        results.recv_timeout(PATIENCE)??
    );

    let value = block_on(nodes[0].add(2))?;
    println!("add(2).await on {} returned {value}", ADDRESSES[0]);

    nodes[0].add(3).detach();
    match nodes[0].reset().wait_timeout(PATIENCE) {
        Err(FailReason::VersionNotEnabled { method, enabled }) => {
            println!("{method}() refused: the cluster runs code version {enabled}");
        }
        other => return Err(format!("reset before version 1: {other:?}").into()),
    }
    nodes[0].set_code_version(1).wait_timeout(PATIENCE)?;
    nodes[0].reset().wait_timeout(PATIENCE)?;
    let value = nodes[0].add(0).wait_timeout(PATIENCE)?;
    println!("after set_code_version(1) and reset(): {value}");
    for (address, node) in ADDRESSES.iter().zip(&nodes) {
        node.add(0).wait_timeout(PATIENCE)?; // applied here, so everything before it is too
        println!("{address} reads {}", node.read().get());
    }
    println!("\n{}", nodes[0].status());
    Ok(())
}

/// Wakes the thread that polls a future.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls `future` on this thread until it is ready. Any runtime works.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
