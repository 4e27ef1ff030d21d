//! The checks at the end of a run, and its figures.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use syncobj::testkit::{
    Checker, History, KvInput, KvMap, KvOutput, Operation, Outcome as Ended, Verdict,
};

use crate::clients::{Op, Outcome, Record};
use crate::faults::{Fault, Kind};

/// A call invoked on a cut-off node less than this after the cut may have been sent before it
/// (µs): it is not held against the node.
const CUT_GRACE_US: u64 = 10_000;

/// How many violations of one kind are listed.
const LISTED: usize = 10;

/// The linearizability checker's budget of steps for the whole history.
const CHECK_BUDGET: u64 = 2_000_000_000;

/// Every violation found; empty if the run passed.
pub(crate) fn violations(records: &[Record], faults: &[Fault], dumps: &[Vec<u64>]) -> Vec<String> {
    let mut found = Vec::new();
    identical(dumps, &mut found);
    applied_once(dumps, &mut found);
    acknowledged_kept(records, dumps, &mut found);
    never_applied_absent(records, dumps, &mut found);
    cut_off_silent(records, faults, &mut found);
    let applied: BTreeSet<u64> = dumps.iter().flatten().copied().collect();
    linearizable(records, &applied, &mut found);
    found
}

fn identical(dumps: &[Vec<u64>], found: &mut Vec<String>) {
    for (node, dump) in dumps.iter().enumerate().skip(1) {
        if *dump != dumps[0] {
            let common = dump
                .iter()
                .zip(&dumps[0])
                .take_while(|(a, b)| a == b)
                .count();
            found.push(format!(
                "node {node} applied {} writes, node 0 {}; they differ from position {common}",
                dump.len(),
                dumps[0].len()
            ));
        }
    }
}

fn applied_once(dumps: &[Vec<u64>], found: &mut Vec<String>) {
    for (node, dump) in dumps.iter().enumerate() {
        let mut seen = BTreeSet::new();
        if let Some(twice) = dump.iter().find(|w| !seen.insert(**w)) {
            found.push(format!("node {node} applied write {twice} twice"));
        }
    }
}

fn acknowledged_kept(records: &[Record], dumps: &[Vec<u64>], found: &mut Vec<String>) {
    for (node, dump) in dumps.iter().enumerate() {
        let applied: BTreeSet<u64> = dump.iter().copied().collect();
        let lost: Vec<&Record> = writes(records)
            .filter(|(r, _)| matches!(r.outcome, Some(Outcome::Ok(_))))
            .filter(|(_, value)| !applied.contains(value))
            .map(|(r, _)| r)
            .collect();
        if let Some(first) = lost.first() {
            found.push(format!(
                "node {node} lacks {} acknowledged writes, the first {first:?}",
                lost.len()
            ));
        }
    }
}

fn never_applied_absent(records: &[Record], dumps: &[Vec<u64>], all: &mut Vec<String>) {
    let mut found = Vec::new();
    let applied: BTreeSet<u64> = dumps.iter().flatten().copied().collect();
    for (record, value) in writes(records) {
        if matches!(record.outcome, Some(Outcome::NeverApplied(_))) && applied.contains(&value) {
            found.push(format!(
                "write {value} failed as never applied, yet was: {record:?}"
            ));
        }
    }
    keep_first(found, all);
}

/// No node cut off from the majority acknowledged a call invoked after the cut, before the
/// heal.
fn cut_off_silent(records: &[Record], faults: &[Fault], all: &mut Vec<String>) {
    let mut found = Vec::new();
    for fault in faults.iter().filter(|f| is_cut(f.kind)) {
        for record in records {
            let acked_while_cut = matches!(record.outcome, Some(Outcome::Ok(_)))
                && fault.nodes.contains(&record.node)
                && record.start >= fault.made + CUT_GRACE_US
                && record.end.is_some_and(|end| end <= fault.undoing);
            if acked_while_cut {
                found.push(format!(
                    "node {} acknowledged a call while cut off from the majority by {} \
                     ({} to {} µs): {record:?}",
                    record.node, fault.kind, fault.made, fault.undoing
                ));
            }
        }
    }
    keep_first(found, all);
}

/// Adds the first [`LISTED`] of `found` to `all`, and a count of the rest.
fn keep_first(found: Vec<String>, all: &mut Vec<String>) {
    let more = found.len().saturating_sub(LISTED);
    all.extend(found.into_iter().take(LISTED));
    if more > 0 {
        all.push(format!("... and {more} more of the kind above"));
    }
}

/// Checks the history's linearizability. Calls that failed as never applied are left out, and
/// so are writes of unknown outcome that no node applied: the final logs show they never took
/// effect, which spares the checker placing each of them at every later point of its key's
/// history. (Writes the logs hold that failed as never applied are reported apart.)
fn linearizable(records: &[Record], applied: &BTreeSet<u64>, found: &mut Vec<String>) {
    let never_applied = |r: &Record| match (&r.outcome, r.op) {
        (Some(Outcome::NeverApplied(_)), _) => true,
        (Some(Outcome::Ok(_)), _) => false,
        (_, Op::Put { value, .. }) => !applied.contains(&value),
        (_, Op::Get { .. }) => false,
    };
    let history: History<KvInput<u32, u64>, KvOutput<u64>> = records
        .iter()
        .filter(|r| !never_applied(r))
        .map(|r| Operation {
            client: r.client,
            input: match r.op {
                Op::Put { key, value } => KvInput::Put(key, value),
                Op::Get { key } => KvInput::Get(key),
            },
            start: r.start,
            outcome: match (&r.outcome, r.end) {
                (Some(Outcome::Ok(value)), Some(end)) => Ended::Returned {
                    output: KvOutput::Value(*value),
                    end,
                },
                _ => Ended::Unknown,
            },
        })
        .collect();
    match Checker::new(KvMap::new())
        .budget(CHECK_BUDGET)
        .check(&history)
    {
        Verdict::Linearizable => {}
        verdict => found.push(format!(
            "the history of {} calls is {verdict}",
            history.len()
        )),
    }
}

fn writes(records: &[Record]) -> impl Iterator<Item = (&Record, u64)> {
    records.iter().filter_map(|r| match r.op {
        Op::Put { value, .. } => Some((r, value)),
        Op::Get { .. } => None,
    })
}

fn is_cut(kind: Kind) -> bool {
    matches!(kind, Kind::Isolate { .. } | Kind::Split)
}

/// The run's figures, as printed.
pub(crate) fn figures(records: &[Record], faults: &[Fault]) -> String {
    let mut out = String::new();
    let mut kinds: BTreeMap<Kind, usize> = BTreeMap::new();
    for fault in faults {
        *kinds.entry(fault.kind).or_default() += 1;
    }
    let _ = writeln!(out, "faults: {}", faults.len());
    for (kind, count) in &kinds {
        let _ = writeln!(out, "  {kind}: {count}");
    }
    let count = |f: &dyn Fn(&Record) -> bool| records.iter().filter(|r| f(r)).count();
    let acked = count(&|r| matches!(r.outcome, Some(Outcome::Ok(_))));
    let failed = count(&|r| matches!(r.outcome, Some(Outcome::NeverApplied(_))));
    let unknown = records.len() - acked - failed;
    let acked_writes =
        count(&|r| matches!(r.outcome, Some(Outcome::Ok(_))) && matches!(r.op, Op::Put { .. }));
    let _ = writeln!(
        out,
        "operations: {} (acknowledged {acked}: {acked_writes} writes, {} reads; failed, \
         never applied {failed}; indeterminate {unknown})",
        records.len(),
        acked - acked_writes
    );
    let _ = writeln!(out, "failures by reason: {}", reasons(records));
    let heal = delays(
        records,
        faults,
        is_cut,
        |f| f.nodes.clone(),
        |f| f.undone,
        false,
    );
    let _ = writeln!(
        out,
        "heal-to-first-ack on the cut-off nodes: {}",
        summary(heal)
    );
    for kind in [
        Kind::Isolate { leader: false },
        Kind::Isolate { leader: true },
        Kind::Split,
    ] {
        let heal = delays(
            records,
            faults,
            |k| k == kind,
            |f| f.nodes.clone(),
            |f| f.undone,
            false,
        );
        let _ = writeln!(out, "  after {kind}: {}", summary(heal));
    }
    let (calls, acked) = cut_off_calls(records, faults);
    let _ = writeln!(
        out,
        "calls invoked on cut-off nodes during cuts (after the grace): {calls}, acknowledged \
         before the heal: {acked}"
    );
    let leader_faults = [
        Kind::Kill { leader: true },
        Kind::Kill { leader: false },
        Kind::Pause { leader: true },
        Kind::Isolate { leader: true },
    ];
    for kind in leader_faults {
        let next = delays(
            records,
            faults,
            |k| k == kind,
            |_| Vec::new(),
            |f| f.made,
            true,
        );
        let _ = writeln!(
            out,
            "{kind}: from the fault to the first ack of a later call: {}",
            summary(next)
        );
    }
    let restart = delays(
        records,
        faults,
        |k| matches!(k, Kind::Kill { .. }),
        |f| f.nodes.clone(),
        |f| f.undone,
        false,
    );
    let _ = writeln!(
        out,
        "kill -9 (any): restart to the restarted node's first ack: {}",
        summary(restart)
    );
    let resume = delays(
        records,
        faults,
        |k| matches!(k, Kind::Pause { .. }),
        |f| f.nodes.clone(),
        |f| f.undone,
        false,
    );
    let _ = writeln!(
        out,
        "pause: resume to the paused node's first ack: {}",
        summary(resume)
    );
    let restart = delays(
        records,
        faults,
        |k| k == Kind::ClusterKill,
        |_| Vec::new(),
        |f| f.undone,
        false,
    );
    let _ = writeln!(
        out,
        "kill -9 cluster: restart to the first ack: {}",
        summary(restart)
    );
    out
}

/// The failures' reasons and how many of each, most frequent first.
fn reasons(records: &[Record]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for record in records {
        let reason = match &record.outcome {
            Some(Outcome::NeverApplied(reason)) => format!("{reason} (never applied)"),
            Some(Outcome::Unknown(reason)) => reason.clone(),
            _ => continue,
        };
        *counts.entry(reason).or_default() += 1;
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let text: Vec<String> = counts.iter().map(|(r, c)| format!("{r} {c}")).collect();
    if text.is_empty() {
        "none".into()
    } else {
        text.join(", ")
    }
}

/// How many calls were invoked on cut-off nodes after a cut (and its grace) and before its
/// heal, and how many of those were acknowledged before the heal (a violation).
fn cut_off_calls(records: &[Record], faults: &[Fault]) -> (usize, usize) {
    let (mut calls, mut acked) = (0, 0);
    for fault in faults.iter().filter(|f| is_cut(f.kind)) {
        for record in records.iter().filter(|r| fault.nodes.contains(&r.node)) {
            if record.start >= fault.made + CUT_GRACE_US && record.start <= fault.undoing {
                calls += 1;
                let ok = matches!(record.outcome, Some(Outcome::Ok(_)));
                acked += usize::from(ok && record.end.is_some_and(|e| e <= fault.undoing));
            }
        }
    }
    (calls, acked)
}

/// For each fault of the kinds `which` and each of `nodes(fault)` (every node when empty),
/// the time from `from(fault)` to the first acknowledgement after it on that node, in ms.
fn delays(
    records: &[Record],
    faults: &[Fault],
    which: impl Fn(Kind) -> bool,
    nodes: impl Fn(&Fault) -> Vec<usize>,
    from: impl Fn(&Fault) -> u64,
    invoked_after: bool,
) -> Vec<f64> {
    let mut found = Vec::new();
    for fault in faults.iter().filter(|f| which(f.kind)) {
        let (nodes, from) = (nodes(fault), from(fault));
        let first = |node: Option<usize>| {
            records
                .iter()
                .filter(|r| matches!(r.outcome, Some(Outcome::Ok(_))))
                .filter(|r| node.is_none_or(|n| r.node == n))
                .filter(|r| !invoked_after || r.start >= from)
                .filter_map(|r| r.end)
                .filter(|&end| end >= from)
                .min()
        };
        let ends: Vec<Option<u64>> = if nodes.is_empty() {
            vec![first(None)]
        } else {
            nodes.iter().map(|&n| first(Some(n))).collect()
        };
        found.extend(
            ends.into_iter()
                .flatten()
                .map(|end| (end - from) as f64 / 1000.0),
        );
    }
    found
}

fn summary(mut ms: Vec<f64>) -> String {
    if ms.is_empty() {
        return "none measured".into();
    }
    ms.sort_by(f64::total_cmp);
    format!(
        "median {:.0} ms, range {:.0}–{:.0} ms ({} measured)",
        ms[ms.len() / 2],
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(node: usize, op: Op, start: u64, end: u64, outcome: Outcome) -> Record {
        let end = matches!(outcome, Outcome::Ok(_)).then_some(end);
        Record {
            node,
            client: node as u64,
            op,
            start,
            end,
            outcome: Some(outcome),
        }
    }

    fn put(key: u32, value: u64) -> Op {
        Op::Put { key, value }
    }

    fn cut_of_node_1() -> Fault {
        Fault {
            kind: Kind::Isolate { leader: false },
            nodes: vec![1],
            made: 100_000,
            undoing: 500_000,
            undone: 500_001,
        }
    }

    /// Two writes and a read of them, applied everywhere.
    fn clean() -> (Vec<Record>, Vec<Vec<u64>>) {
        let records = vec![
            record(0, put(1, 10), 0, 10, Outcome::Ok(None)),
            record(1, put(1, 11), 20, 30, Outcome::Ok(Some(10))),
            record(2, Op::Get { key: 1 }, 40, 50, Outcome::Ok(Some(11))),
        ];
        (records, vec![vec![10, 11]; 3])
    }

    #[test]
    fn a_clean_run_passes() {
        let (records, dumps) = clean();
        assert_eq!(
            violations(&records, &[cut_of_node_1()], &dumps),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_lost_acknowledged_write_is_reported() {
        let (records, mut dumps) = clean();
        dumps = dumps.iter().map(|d| d[..1].to_vec()).collect();
        let found = violations(&records, &[], &dumps);
        assert!(
            found
                .iter()
                .any(|v| v.contains("lacks 1 acknowledged writes")),
            "{found:?}"
        );
    }

    #[test]
    fn nodes_that_differ_are_reported() {
        let (records, mut dumps) = clean();
        dumps[2].push(12);
        let found = violations(&records, &[], &dumps);
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("node 2 applied 3 writes")),
            "{found:?}"
        );
    }

    #[test]
    fn an_applied_write_that_failed_as_never_applied_is_reported() {
        let (mut records, mut dumps) = clean();
        records.push(record(
            0,
            put(2, 12),
            60,
            70,
            Outcome::NeverApplied("NotLeader".into()),
        ));
        for dump in &mut dumps {
            dump.push(12);
        }
        let found = violations(&records, &[], &dumps);
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("write 12 failed as never applied"))
        );
    }

    #[test]
    fn a_stale_read_is_not_linearizable() {
        let (mut records, dumps) = clean();
        records.push(record(0, Op::Get { key: 1 }, 60, 70, Outcome::Ok(Some(10))));
        let found = violations(&records, &[], &dumps);
        assert!(
            found.iter().any(|v| v.contains("not linearizable")),
            "{found:?}"
        );
    }

    #[test]
    fn an_ack_from_a_cut_off_node_is_reported_unless_invoked_before_the_cut() {
        let (mut records, dumps) = clean();
        // Invoked before the cut: may complete during it.
        records.push(record(
            1,
            Op::Get { key: 1 },
            99_000,
            150_000,
            Outcome::Ok(Some(11)),
        ));
        assert_eq!(
            violations(&records, &[cut_of_node_1()], &dumps),
            Vec::<String>::new()
        );
        records.push(record(
            1,
            Op::Get { key: 1 },
            200_000,
            210_000,
            Outcome::Ok(Some(11)),
        ));
        let found = violations(&records, &[cut_of_node_1()], &dumps);
        assert!(
            found.iter().any(|v| v.contains("while cut off")),
            "{found:?}"
        );
        assert_eq!(cut_off_calls(&records, &[cut_of_node_1()]), (1, 1));
    }

    #[test]
    fn heal_to_first_ack_counts_from_the_heal() {
        let (mut records, _) = clean();
        records.push(record(
            1,
            Op::Get { key: 1 },
            490_000,
            530_001,
            Outcome::Ok(Some(11)),
        ));
        let heal = delays(
            &records,
            &[cut_of_node_1()],
            is_cut,
            |f| f.nodes.clone(),
            |f| f.undone,
            false,
        );
        assert_eq!(heal, [30.0]);
    }
}
