//! A replicated key-value store with a console, like PySyncObj's `kvstorage.py`: one process
//! per node.
//!
//! ```text
//! cargo run --example kvstore -- 127.0.0.1:4321 127.0.0.1:4322 127.0.0.1:4323
//! cargo run --example kvstore -- 127.0.0.1:4322 127.0.0.1:4321 127.0.0.1:4323
//! cargo run --example kvstore -- 127.0.0.1:4323 127.0.0.1:4321 127.0.0.1:4322
//! ```
//!
//! The first address is this node's; the others are its partners. Console commands:
//! `set KEY VALUE`, `get KEY` (a local read, possibly stale), `pop KEY`, `clear` (from code
//! version 1 on: `syncobj-admin set-version 1` enables it), `status`, `quit`.
//!
//! Options:
//!
//! - `--dynamic`: allow membership changes and leadership transfers (`syncobj-admin add`,
//!   `remove`, `transfer`). Every node of the cluster needs it.
//! - `--password P`: encrypt and authenticate the cluster's traffic (and administration).
//! - `--journal DIR`: keep the log in a journal in `DIR` (and snapshots beside it), so the node
//!   restarts with its data.
//! - `--no-console`: read no commands; serve until the process is stopped (Ctrl-C, `kill`).
//!   For nodes run in the background, which must not read the terminal:
//!
//! ```text
//! cargo run --example kvstore -- --dynamic --no-console 127.0.0.1:4321 127.0.0.1:4322 127.0.0.1:4323 &
//! ```
//!
//! `docs/operations.md` walks through growing and shrinking a cluster of these with
//! `syncobj-admin`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct KvStore {
    entries: BTreeMap<String, String>,
}

#[replicated]
impl KvStore {
    /// Sets `key` to `value`; returns the value it replaced.
    #[replicated]
    fn set(&mut self, key: String, value: String) -> Option<String> {
        self.entries.insert(key, value)
    }

    /// Removes `key`; returns its value.
    #[replicated]
    fn pop(&mut self, key: String) -> Option<String> {
        self.entries.remove(&key)
    }

    /// Removes every key; returns how many there were. Exists from code version 1 on: the
    /// cluster must enable it (`syncobj-admin set-version 1`) once every node runs this code.
    #[replicated(ver = 1)]
    fn clear(&mut self) -> usize {
        let count = self.entries.len();
        self.entries.clear();
        count
    }

    fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }
}

/// A node of a replicated key-value store.
#[derive(Parser)]
#[command(name = "kvstore")]
struct Args {
    /// This node's address, HOST:PORT.
    #[arg(value_name = "SELF_ADDRESS")]
    me: String,
    /// The other members' addresses.
    #[arg(value_name = "PARTNER_ADDRESS")]
    partners: Vec<String>,
    /// Allow membership changes and leadership transfers (on every node).
    #[arg(long)]
    dynamic: bool,
    /// The cluster's password.
    #[arg(long)]
    password: Option<String>,
    /// Keep the log in a journal in this directory.
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// Read no commands; serve until stopped.
    #[arg(long)]
    no_console: bool,
}

/// How long a command may wait for the cluster.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to standard error at the level RUST_LOG names (errors only by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut conf = SyncObjConf::builder().dynamic_membership_change(args.dynamic);
    if let Some(password) = &args.password {
        conf = conf.password(password.as_str());
    }
    if let Some(journal) = &args.journal {
        conf = conf.journal_file(journal);
    }
    let node = SyncObj::new(&args.me, args.partners, KvStore::default(), conf.build()?)?;
    let me = args.me;
    if args.no_console {
        println!("kvstore on {me}: serving until stopped");
        // The node runs on threads of its own; this one only keeps the process alive. A signal
        // (Ctrl-C, `kill`) ends the process; the journal is written before each call commits.
        loop {
            std::thread::park();
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "kvstore on {me}: set KEY VALUE | get KEY | pop KEY | clear | status | quit"
    )?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["set", key, value] => render(
                node.set((*key).to_owned(), (*value).to_owned())
                    .wait_timeout(PATIENCE),
            ),
            ["pop", key] => render(node.pop((*key).to_owned()).wait_timeout(PATIENCE)),
            ["clear"] => render(node.clear().wait_timeout(PATIENCE)),
            ["get", key] => format!("{:?}", node.read().get(key)),
            ["status"] => node.status().to_string(),
            ["quit"] => break,
            [] => continue,
            _ => format!("unknown command {line:?}"),
        };
        writeln!(out, "{reply}")?;
    }
    node.destroy_synchronous();
    Ok(())
}

fn render<R: std::fmt::Debug>(outcome: Result<R, FailReason>) -> String {
    match outcome {
        Ok(result) => format!("ok ({result:?})"),
        Err(reason) => format!("failed: {reason}"),
    }
}
