//! The driver level's history check: clients on every node put, read and delete keys of a
//! replicated map, every operation through the log; each invocation and completion is recorded
//! at the run's virtual time, and once the cluster is quiet the history is checked for
//! linearizability with `syncobj::testkit`.
//!
//! A call that returned is recorded with its result. A call that failed with a reason
//! promising it was never applied ([`Effect::None`]) is left out: it did not happen. Any other
//! failure, a call in flight on a node that crashed (it never completes) and a call still
//! pending at the end are indeterminate: they may have taken effect, or not. A client whose
//! call failed retries it at its next turn, as a new operation with a fresh value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use syncobj::prelude::*;
use syncobj::sim::{SimNode, Workload};
use syncobj::testkit::{Checker, History, KvInput, KvMap, KvOutput, Operation, Outcome, Verdict};
use syncobj::{Effect, FailReason};

/// Keys the clients share: enough that each key's history stays short for the checker.
const KEYS: u8 = 16;

/// Clients per node, each with at most one call in flight.
const CLIENTS: usize = 3;

/// The checker's step budget per history; past it the verdict is unknown (counted, reported).
const BUDGET: u64 = 2_000_000;

/// The replicated map the clients share. Every method goes through the log, reads included.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Replicated)]
pub(crate) struct Store {
    entries: BTreeMap<u8, u64>,
}

#[replicated]
impl Store {
    /// Sets `key` to `value`; returns the value it replaced.
    #[replicated]
    fn put(&mut self, key: u8, value: u64) -> Option<u64> {
        self.entries.insert(key, value)
    }

    /// The value under `key`, read through the log.
    #[replicated]
    fn get(&mut self, key: u8) -> Option<u64> {
        self.entries.get(&key).copied()
    }

    /// Removes `key`; returns the value it held.
    #[replicated]
    fn delete(&mut self, key: u8) -> Option<u64> {
        self.entries.remove(&key)
    }
}

type Input = KvInput<u8, u64>;
type Output = KvOutput<u64>;

/// What one seed's history came to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HistorySummary {
    /// Operations in the checked history (final reads included).
    pub(crate) operations: u64,
    /// Calls that returned.
    pub(crate) returned: u64,
    /// Calls that failed without effect, left out of the history.
    pub(crate) never_applied: u64,
    /// Calls of unknown outcome (failed, crashed or pending at the end).
    pub(crate) indeterminate: u64,
    /// Whether the checker found the history not linearizable.
    pub(crate) nonlinearizable: bool,
    /// Whether the checker's budget ran out.
    pub(crate) unknown: bool,
}

impl HistorySummary {
    pub(crate) fn add(&mut self, other: &HistorySummary) {
        self.operations += other.operations;
        self.returned += other.returned;
        self.never_applied += other.never_applied;
        self.indeterminate += other.indeterminate;
    }
}

/// How a recorded call ended.
#[derive(Clone, Debug)]
enum End {
    InFlight,
    Returned(Output, u64),
    NeverApplied,
    Indeterminate,
}

/// One recorded call.
#[derive(Clone, Debug)]
struct Record {
    client: u64,
    input: Input,
    start: u64,
    end: End,
}

/// The calls recorded so far, shared with the calls' callbacks.
#[derive(Default)]
struct Log {
    records: Vec<Record>,
    /// Each busy client's call in flight, by (node, client).
    busy: BTreeMap<(usize, usize), usize>,
    /// Clients whose last call failed, with the call to retry.
    retry: BTreeMap<(usize, usize), Input>,
}

impl Log {
    /// Settles call `index` of `client` with `outcome`, unless it was settled before (its node
    /// crashed).
    fn settle(
        &mut self,
        client: (usize, usize),
        index: usize,
        outcome: Result<Option<u64>, FailReason>,
        now: u64,
    ) {
        let Some(record) = self.records.get_mut(index) else {
            return;
        };
        if !matches!(record.end, End::InFlight) {
            return;
        }
        record.end = match outcome {
            Ok(value) => End::Returned(KvOutput::Value(value), now),
            Err(reason) if reason.effect() == Effect::None => End::NeverApplied,
            Err(_) => End::Indeterminate,
        };
        if !matches!(record.end, End::Returned(..)) {
            self.retry.insert(client, record.input.clone());
        }
        self.busy.remove(&client);
    }
}

/// The workload: clients on every node calling the [`Store`], and the history check.
pub(crate) struct KvHistory {
    rng: SplitMix,
    next_value: u64,
    log: Arc<Mutex<Log>>,
    /// Where the summary goes once checked (the run consumes the workload).
    summary: Arc<Mutex<HistorySummary>>,
}

impl KvHistory {
    /// A workload for `seed` that leaves its summary in `summary`.
    pub(crate) fn new(seed: u64, summary: Arc<Mutex<HistorySummary>>) -> KvHistory {
        KvHistory {
            rng: SplitMix(seed ^ 0x4B56_4849_5354),
            next_value: 0,
            log: Arc::default(),
            summary,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A random operation on a random key, with a fresh value if it writes one.
    fn random_input(&mut self) -> Input {
        let key = u8::try_from(self.rng.below(u64::from(KEYS))).unwrap_or(0);
        match self.rng.below(10) {
            0..=3 => KvInput::Get(key),
            4 => KvInput::Delete(key),
            _ => KvInput::Put(key, self.fresh()),
        }
    }

    fn fresh(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value
    }

    /// Calls `input` as `client` of `node`; `done` hears whether it returned.
    fn invoke(
        &mut self,
        node: &SimNode<'_, Store>,
        client: usize,
        input: Input,
        done: Option<Box<dyn FnOnce(bool) + Send>>,
    ) {
        let key = (node.index, client);
        let start = nanos(node.clock.now());
        let index = {
            let mut log = self.lock();
            log.records.push(Record {
                client: u64::try_from(node.index * (CLIENTS + 1) + client).unwrap_or(u64::MAX),
                input: input.clone(),
                start,
                end: End::InFlight,
            });
            let index = log.records.len() - 1;
            log.busy.insert(key, index);
            index
        };
        let call = match input {
            KvInput::Put(k, v) => node.calls.put(k, v),
            KvInput::Get(k) => node.calls.get(k),
            KvInput::Delete(k) => node.calls.delete(k),
        };
        let log = Arc::clone(&self.log);
        let clock = node.clock.clone();
        call.on_done(move |outcome| {
            let ok = outcome.is_ok();
            let now = nanos(clock.now());
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .settle(key, index, outcome, now);
            if let Some(done) = done {
                done(ok);
            }
        });
    }

    /// The history to check: every call but those never applied, then a read of every key at
    /// `now` of what the quiet cluster holds.
    fn history(&self, state: &Store, now: u64) -> (History<Input, Output>, HistorySummary) {
        let log = self.lock();
        let mut summary = HistorySummary::default();
        let mut history = History::new();
        for record in &log.records {
            let outcome = match &record.end {
                End::NeverApplied => {
                    summary.never_applied += 1;
                    continue;
                }
                End::Returned(output, end) => {
                    summary.returned += 1;
                    Outcome::Returned {
                        output: output.clone(),
                        end: *end,
                    }
                }
                End::InFlight | End::Indeterminate => {
                    summary.indeterminate += 1;
                    Outcome::Unknown
                }
            };
            history.push(Operation {
                client: record.client,
                input: record.input.clone(),
                start: record.start,
                outcome,
            });
        }
        for key in 0..KEYS {
            history.push(Operation {
                client: u64::MAX,
                input: KvInput::Get(key),
                start: now,
                outcome: Outcome::Returned {
                    output: KvOutput::Value(state.entries.get(&key).copied()),
                    end: now,
                },
            });
        }
        summary.operations = history.len() as u64;
        (history, summary)
    }
}

impl Workload for KvHistory {
    type Object = Store;

    fn object(&self) -> Store {
        Store::default()
    }

    fn call(&mut self, node: SimNode<'_, Store>) {
        let (idle, retries): (Vec<usize>, BTreeMap<usize, Input>) = {
            let log = self.lock();
            let idle = (0..CLIENTS)
                .filter(|&c| !log.busy.contains_key(&(node.index, c)))
                .collect();
            let retries = log
                .retry
                .iter()
                .filter(|((n, _), _)| *n == node.index)
                .map(|(&(_, c), input)| (c, input.clone()))
                .collect();
            (idle, retries)
        };
        if idle.is_empty() {
            return;
        }
        let client = idle[usize::try_from(self.rng.below(idle.len() as u64)).unwrap_or(0)];
        let input = match retries.get(&client) {
            // A retry is a new operation: the same call, a fresh value.
            Some(KvInput::Put(key, _)) => KvInput::Put(*key, self.fresh()),
            Some(other) => other.clone(),
            None => self.random_input(),
        };
        self.lock().retry.remove(&(node.index, client));
        self.invoke(&node, client, input, None);
    }

    fn probe(&mut self, node: SimNode<'_, Store>, done: Box<dyn FnOnce(bool) + Send>) {
        // A client of its own, so that the probe never waits for a busy one.
        let key = u8::try_from(self.rng.below(u64::from(KEYS))).unwrap_or(0);
        self.invoke(&node, CLIENTS, KvInput::Get(key), Some(done));
    }

    fn crashed(&mut self, node: usize, _now: Duration) {
        let mut log = self.lock();
        let lost: Vec<((usize, usize), usize)> = log
            .busy
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|(&k, &i)| (k, i))
            .collect();
        for (client, index) in lost {
            // The process is gone: its clients never learn what became of the call.
            if let Some(record) = log.records.get_mut(index)
                && matches!(record.end, End::InFlight)
            {
                record.end = End::Indeterminate;
            }
            log.busy.remove(&client);
        }
        log.retry.retain(|(n, _), _| *n != node);
    }

    fn check(&mut self, objects: &[&Store], now: Duration) -> Result<(u64, u64), String> {
        if objects.windows(2).any(|w| w[0] != w[1]) {
            return Err("nodes hold different maps once quiet".to_owned());
        }
        let Some(state) = objects.first() else {
            return Ok((0, 0));
        };
        let (history, mut summary) = self.history(state, nanos(now));
        let verdict = Checker::new(KvMap::new()).budget(BUDGET).check(&history);
        match &verdict {
            Verdict::Linearizable => {}
            Verdict::Unknown { .. } => summary.unknown = true,
            Verdict::NotLinearizable(_) => summary.nonlinearizable = true,
        }
        *self.summary.lock().unwrap_or_else(PoisonError::into_inner) = summary;
        if summary.nonlinearizable {
            return Err(format!("history check: {verdict}"));
        }
        Ok((
            summary.returned,
            summary.never_applied + summary.indeterminate,
        ))
    }
}

fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

/// SplitMix64: the workload's own random numbers, from the seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use syncobj::sim::{SimConfig, run_driver_workload};

    use super::{HistorySummary, KvHistory};

    /// A seed under every fault records calls of every kind of outcome and checks them all.
    #[test]
    fn a_seed_checks_its_history() {
        let config = SimConfig {
            nodes: 3,
            ..SimConfig::default()
        };
        let summary = Arc::new(Mutex::new(HistorySummary::default()));
        let workload = KvHistory::new(3, Arc::clone(&summary));
        let report = run_driver_workload(3, &config, workload).unwrap_or_else(|f| panic!("{f}"));
        let summary = *summary.lock().unwrap_or_else(|p| p.into_inner());
        assert!(report.calls_succeeded > 100, "{report:?}");
        assert!(
            summary.returned > 100 && summary.indeterminate > 0,
            "{summary:?}"
        );
        assert!(!summary.nonlinearizable && !summary.unknown, "{summary:?}");
        assert_eq!(
            summary.operations,
            summary.returned + summary.indeterminate + u64::from(super::KEYS)
        );
    }

    /// Seeds of the history campaign at three voters where a candidate crashed before its
    /// journal synced the term it had just reached, and restarted below it: harmless (it had
    /// sent nothing depending on it), but the checker took it for a term going back.
    #[test]
    fn a_term_lost_before_its_sync_is_no_violation() {
        let config = SimConfig {
            nodes: 3,
            ..SimConfig::default()
        };
        for seed in [2126, 26096] {
            let summary = Arc::new(Mutex::new(HistorySummary::default()));
            let workload = KvHistory::new(seed, Arc::clone(&summary));
            run_driver_workload(seed, &config, workload).unwrap_or_else(|f| panic!("{f}"));
        }
    }
}
