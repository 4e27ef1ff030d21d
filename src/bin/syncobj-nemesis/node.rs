//! One cluster member: the process the controller starts for each node (`syncobj-nemesis
//! --node ...`). It holds a replicated key-value map and obeys the controller's line protocol
//! on standard input; it exits when its standard input closes (the controller is gone).
//!
//! Commands (`ID` is the controller's request number, echoed at the start of the answer):
//!
//! | command | answer |
//! |---|---|
//! | `put ID KEY` | `ID ok PREVIOUS` or `ID ok -` (no previous value): stores the value `ID` under `KEY`, through the log |
//! | `get ID KEY` | `ID ok VALUE` or `ID ok -`: reads `KEY` through the log (a replicated call) |
//! | `leader ID` | `ID leader ADDRESS` or `ID leader -` |
//! | `dump ID` | `ID dump W1,W2,...`: every write applied here, in log order |
//!
//! A call that fails answers `ID fail EFFECT REASON`, `EFFECT` being `none`, `unknown` or
//! `applied` ([`syncobj::Effect`]).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;
use syncobj::{Effect, FsyncPolicy};

use crate::Error;

/// The replicated object: a map of keys to values, and the log of the writes it applied.
#[derive(Default, Serialize, Deserialize, Replicated)]
pub(crate) struct Store {
    values: BTreeMap<u32, u64>,
    writes: Vec<u64>,
}

#[replicated]
impl Store {
    /// Stores `value` under `key`; returns the value it replaced.
    #[replicated]
    fn put(&mut self, key: u32, value: u64) -> Option<u64> {
        self.writes.push(value);
        self.values.insert(key, value)
    }

    /// Reads `key` at this call's place in the log.
    #[replicated]
    fn get(&mut self, key: u32) -> Option<u64> {
        self.values.get(&key).copied()
    }
}

/// The node's options: short timeouts for quick elections on loopback, a journal synced before
/// every acknowledgement, and a listening address apart from the address the peers dial (the
/// controller's proxy). The redial back-off keeps its default cap (`connection_retry_time`,
/// 5 s), so that heal-to-first-ack measures the transport's rejoin as users get it.
fn conf(journal: &str, bind: &str) -> Result<SyncObjConf, Error> {
    Ok(SyncObjConf::builder()
        .append_entries_period(Duration::from_millis(20))
        .raft_min_timeout(Duration::from_millis(150))
        .raft_max_timeout(Duration::from_millis(300))
        .leader_fallback_timeout(Duration::from_millis(150))
        .connection_timeout(Duration::from_millis(600))
        .call_timeout(Some(Duration::from_secs(2)))
        .journal_file(journal)
        .journal_fsync(FsyncPolicy::Always)
        .bind_address(bind)
        .build()?)
}

/// `--node SELF BIND JOURNAL PEER...`: runs the member until its standard input closes.
pub(crate) fn run(args: &[String]) -> Result<(), Error> {
    let [me, bind, journal, peers @ ..] = args else {
        return Err("--node SELF BIND JOURNAL PEER...".into());
    };
    let node = SyncObj::new(
        me,
        peers.iter().cloned(),
        Store::default(),
        conf(journal, bind)?,
    )?;
    let out = Arc::new(Mutex::new(std::io::stdout()));
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["put", id, key] => {
                let value: u64 = id.parse()?;
                answer_when_done(node.put(key.parse()?, value), id, &out);
            }
            ["get", id, key] => answer_when_done(node.get(key.parse()?), id, &out),
            ["leader", id] => {
                let leader = node.leader().unwrap_or_else(|| "-".into());
                say(&out, &format!("{id} leader {leader}"));
            }
            ["dump", id] => {
                let writes = node.read().writes.clone();
                let text: Vec<String> = writes.iter().map(u64::to_string).collect();
                say(&out, &format!("{id} dump {}", text.join(",")));
            }
            _ => return Err(format!("unknown command {line:?}").into()),
        }
    }
    Ok(())
}

/// Answers call `id` when it completes, from the node's tick thread.
fn answer_when_done(call: Call<Option<u64>>, id: &str, out: &Arc<Mutex<std::io::Stdout>>) {
    let (id, out) = (id.to_owned(), Arc::clone(out));
    call.on_done(move |outcome| {
        let line = match outcome {
            Ok(Some(value)) => format!("{id} ok {value}"),
            Ok(None) => format!("{id} ok -"),
            Err(reason) => {
                let effect = match reason.effect() {
                    Effect::None => "none",
                    Effect::Unknown => "unknown",
                    Effect::Applied => "applied",
                };
                format!("{id} fail {effect} {reason:?}")
            }
        };
        say(&out, &line);
    });
}

fn say(out: &Mutex<std::io::Stdout>, line: &str) {
    let out = out.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = out.lock();
    // The controller gone, the node exits when its standard input closes.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
