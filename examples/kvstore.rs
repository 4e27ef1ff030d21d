//! A replicated key-value store with a console, like PySyncObj's `kvstorage.py`: one process
//! per node.
//!
//! ```text
//! cargo run --example kvstore -- 127.0.0.1:4321 127.0.0.1:4322 127.0.0.1:4323
//! cargo run --example kvstore -- 127.0.0.1:4322 127.0.0.1:4321 127.0.0.1:4323
//! cargo run --example kvstore -- 127.0.0.1:4323 127.0.0.1:4321 127.0.0.1:4322
//! ```
//!
//! The first address is this node's; the others are its partners. Commands: `set KEY VALUE`,
//! `get KEY` (a local read, possibly stale), `pop KEY`, `status`, `quit`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

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

    fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }
}

/// How long a command may wait for the cluster.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to standard error at the level RUST_LOG names (errors only by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let me = args
        .next()
        .ok_or("usage: kvstore SELF_ADDRESS PARTNER_ADDRESS...")?;
    let partners: Vec<String> = args.collect();
    let node = SyncObj::new(&me, partners, KvStore::default(), SyncObjConf::default())?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "kvstore on {me}: set KEY VALUE | get KEY | pop KEY | status | quit"
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

fn render(outcome: Result<Option<String>, FailReason>) -> String {
    match outcome {
        Ok(previous) => format!("ok (was {previous:?})"),
        Err(reason) => format!("failed: {reason}"),
    }
}
