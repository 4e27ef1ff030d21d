//! The linearizability checker (`syncobj::testkit`) on known histories: linearizable ones
//! accepted, non-linearizable ones rejected with a minimal excerpt, unknown outcomes both ways,
//! partitions, the budget, and histories generated from sequential runs of the models.

use std::thread;

use proptest::prelude::*;
use syncobj::testkit::{
    Checker, Counter, CounterInput, CounterOutput, Excerpt, History, HistoryError, KvInput, KvMap,
    KvOutput, Model, OpId, Operation, Outcome, Recorder, Register, RegisterInput, RegisterOutput,
    Set, SetInput, Verdict, check,
};

type RegisterHistory = History<RegisterInput<i64>, RegisterOutput<i64>>;

/// Adds an operation that ran from `start` to `end` and returned `output`.
fn op<I, O>(
    history: &mut History<I, O>,
    client: u64,
    input: I,
    start: u64,
    end: u64,
    output: O,
) -> OpId {
    let id = history.invoke(client, input, start);
    history
        .complete(id, output, end)
        .expect("a fresh operation ending after its start");
    id
}

/// Adds an operation that started at `start` and whose outcome is unknown.
fn unknown<I, O>(history: &mut History<I, O>, client: u64, input: I, start: u64) -> OpId {
    let id = history.invoke(client, input, start);
    history.unknown(id).expect("a fresh operation");
    id
}

fn write(history: &mut RegisterHistory, client: u64, value: i64, start: u64, end: u64) -> OpId {
    op(
        history,
        client,
        RegisterInput::Write(value),
        start,
        end,
        RegisterOutput::Written,
    )
}

fn read(history: &mut RegisterHistory, client: u64, value: i64, start: u64, end: u64) -> OpId {
    op(
        history,
        client,
        RegisterInput::Read,
        start,
        end,
        RegisterOutput::Read(value),
    )
}

/// The excerpt of a rejected history, after checking what an excerpt promises.
fn rejected<M>(model: M, history: &History<M::Input, M::Output>) -> Excerpt<M::Input, M::Output>
where
    M: Model + Clone,
    M::Input: PartialEq,
    M::Output: PartialEq,
{
    let excerpt = match check(model.clone(), history) {
        Verdict::NotLinearizable(excerpt) => excerpt,
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_minimal(model, history, &excerpt);
    excerpt
}

/// `history` with every operation but those of `kept` of unknown outcome.
fn relaxed<I: Clone, O: Clone>(history: &History<I, O>, kept: &[OpId]) -> History<I, O> {
    let mut ops = history.operations().to_vec();
    for (index, op) in ops.iter_mut().enumerate() {
        if !kept.contains(&OpId(index)) {
            op.outcome = Outcome::Unknown;
        }
    }
    ops.into_iter().collect()
}

/// The excerpt alone is not linearizable, and is minimal: with every other operation of the
/// history of unknown outcome, taking any one of the excerpt's as unknown too makes the
/// history linearizable.
fn assert_minimal<M>(
    model: M,
    history: &History<M::Input, M::Output>,
    excerpt: &Excerpt<M::Input, M::Output>,
) where
    M: Model + Clone,
    M::Input: PartialEq,
    M::Output: PartialEq,
{
    let alone: History<_, _> = excerpt
        .operations()
        .iter()
        .map(|(_, op)| op.clone())
        .collect();
    assert!(
        check(model.clone(), &alone).excerpt().is_some(),
        "the excerpt is linearizable alone: {excerpt}"
    );
    assert!(excerpt.is_minimal(), "{excerpt}");
    let ids = excerpt.ids();
    for left_out in &ids {
        let kept: Vec<OpId> = ids.iter().copied().filter(|id| id != left_out).collect();
        assert_eq!(
            check(model.clone(), &relaxed(history, &kept)),
            Verdict::Linearizable,
            "the excerpt without {left_out} still fails: {excerpt}"
        );
    }
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    assert_eq!(
        check(Register::new(0), &RegisterHistory::new()),
        Verdict::Linearizable
    );
    let mut history = RegisterHistory::new();
    read(&mut history, 1, 0, 0, 1);
    write(&mut history, 1, 3, 2, 3);
    read(&mut history, 2, 3, 4, 5);
    write(&mut history, 2, 4, 6, 7);
    read(&mut history, 1, 4, 8, 9);
    assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);
}

#[test]
fn a_read_overlapping_a_write_may_see_either_value() {
    for seen in [0, 1] {
        let mut history = RegisterHistory::new();
        write(&mut history, 1, 1, 0, 10);
        read(&mut history, 2, seen, 2, 4);
        assert_eq!(
            check(Register::new(0), &history),
            Verdict::Linearizable,
            "read {seen}"
        );
    }
    // Two reads during one write: the first sees the new value, the second (after it) the old:
    // not linearizable.
    let mut history = RegisterHistory::new();
    write(&mut history, 1, 1, 0, 10);
    let first = read(&mut history, 2, 1, 1, 2);
    let second = read(&mut history, 3, 0, 3, 4);
    // Whatever the write did, the two reads contradict each other.
    assert_eq!(rejected(Register::new(0), &history).ids(), [first, second]);
}

#[test]
fn equal_times_overlap() {
    // The write ends at 5 and the read starts at 5: they overlap, so the old value is fine.
    let mut history = RegisterHistory::new();
    write(&mut history, 1, 1, 0, 5);
    read(&mut history, 2, 0, 5, 6);
    assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);
}

#[test]
fn a_stale_read_after_a_completed_write_is_rejected() {
    let mut history = RegisterHistory::new();
    read(&mut history, 3, 0, 0, 1);
    let w = write(&mut history, 1, 7, 2, 3);
    let stale = read(&mut history, 2, 0, 6, 7);
    read(&mut history, 3, 7, 8, 9);
    let excerpt = rejected(Register::new(0), &history);
    assert_eq!(excerpt.ids(), [w, stale]);
    let shown = Verdict::NotLinearizable(excerpt).to_string();
    assert!(
        shown.contains("op 1: client 1 Write(7)")
            && shown.contains("op 2")
            && shown.contains("minimal"),
        "{shown}"
    );

    // With a fresh read between them, the two reads alone are the contradiction.
    let mut history = RegisterHistory::new();
    write(&mut history, 1, 7, 2, 3);
    let fresh = read(&mut history, 3, 7, 4, 5);
    let stale = read(&mut history, 2, 0, 6, 7);
    let excerpt = rejected(Register::new(0), &history);
    assert_eq!(excerpt.ids(), [fresh, stale]);
}

#[test]
fn a_lost_write_is_rejected() {
    // Two adds acknowledged, one after the other; a later read sees only one of them.
    let mut history = History::new();
    let first = op(
        &mut history,
        1,
        CounterInput::Add(1),
        0,
        1,
        CounterOutput::Done,
    );
    let second = op(
        &mut history,
        2,
        CounterInput::Add(1),
        2,
        3,
        CounterOutput::Done,
    );
    let lost = op(
        &mut history,
        3,
        CounterInput::Read,
        4,
        5,
        CounterOutput::Value(1),
    );
    assert_eq!(
        rejected(Counter::default(), &history).ids(),
        [first, second, lost]
    );

    // The same with a register: the second write is lost, the first read back.
    let mut history = RegisterHistory::new();
    write(&mut history, 1, 1, 0, 1);
    let second = write(&mut history, 2, 2, 2, 3);
    let lost = read(&mut history, 3, 1, 4, 5);
    let excerpt = rejected(Register::new(0), &history);
    // Reading 1 needs the first write; either way the second one lies between.
    assert!(
        excerpt.ids().contains(&second) && excerpt.ids().contains(&lost),
        "{excerpt}"
    );
}

#[test]
fn counter_adds_that_return_the_new_value() {
    let mut history = History::new();
    op(
        &mut history,
        1,
        CounterInput::Add(2),
        0,
        10,
        CounterOutput::Value(5),
    );
    op(
        &mut history,
        2,
        CounterInput::Add(3),
        1,
        11,
        CounterOutput::Value(3),
    );
    op(
        &mut history,
        3,
        CounterInput::Read,
        12,
        13,
        CounterOutput::Value(5),
    );
    assert_eq!(check(Counter::default(), &history), Verdict::Linearizable);
    // Both adds claiming to have come first.
    let mut history = History::new();
    op(
        &mut history,
        1,
        CounterInput::Add(2),
        0,
        10,
        CounterOutput::Value(2),
    );
    op(
        &mut history,
        2,
        CounterInput::Add(3),
        1,
        11,
        CounterOutput::Value(3),
    );
    assert_eq!(rejected(Counter::default(), &history).operations().len(), 2);
}

#[test]
fn compare_and_set() {
    let cas = |expected, new| RegisterInput::Cas { expected, new };
    // Two concurrent swaps from 0: one wins, the other sees the winner's value.
    let mut history = RegisterHistory::new();
    op(&mut history, 1, cas(0, 1), 0, 10, RegisterOutput::Cas(true));
    op(&mut history, 2, cas(0, 2), 1, 9, RegisterOutput::Cas(false));
    read(&mut history, 3, 1, 11, 12);
    assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);

    // Both win: not linearizable.
    let mut history = RegisterHistory::new();
    let one = op(&mut history, 1, cas(0, 1), 0, 10, RegisterOutput::Cas(true));
    let two = op(&mut history, 2, cas(0, 2), 1, 9, RegisterOutput::Cas(true));
    assert_eq!(rejected(Register::new(0), &history).ids(), [one, two]);

    // A swap refused though the value was the one expected.
    let mut history = RegisterHistory::new();
    write(&mut history, 1, 4, 0, 1);
    let five = write(&mut history, 2, 5, 2, 3);
    let refused = op(&mut history, 1, cas(5, 6), 4, 5, RegisterOutput::Cas(false));
    read(&mut history, 2, 5, 6, 7);
    assert_eq!(rejected(Register::new(0), &history).ids(), [five, refused]);
}

#[test]
fn an_unknown_write_that_took_effect() {
    let mut history = RegisterHistory::new();
    unknown(&mut history, 1, RegisterInput::Write(1), 0);
    read(&mut history, 2, 0, 5, 6);
    read(&mut history, 2, 1, 100, 101);
    read(&mut history, 3, 1, 200, 201);
    assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);
    // Once seen, it cannot be undone.
    let mut history = RegisterHistory::new();
    unknown(&mut history, 1, RegisterInput::Write(1), 0);
    let seen = read(&mut history, 2, 1, 100, 101);
    let undone = read(&mut history, 3, 0, 200, 201);
    // An operation of unknown outcome is never part of an excerpt: it contradicts nothing.
    assert_eq!(rejected(Register::new(0), &history).ids(), [seen, undone]);
}

#[test]
fn an_unknown_write_that_did_not_take_effect() {
    let mut history = RegisterHistory::new();
    unknown(&mut history, 1, RegisterInput::Write(1), 0);
    read(&mut history, 2, 0, 5, 6);
    read(&mut history, 2, 0, 100, 101);
    write(&mut history, 3, 2, 102, 103);
    read(&mut history, 3, 2, 200, 201);
    assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);
    // A pending (never completed) write counts the same.
    let mut history = RegisterHistory::new();
    history.invoke(1, RegisterInput::Write(1), 0);
    read(&mut history, 2, 0, 100, 101);
    assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);
}

#[test]
fn an_unknown_write_cannot_take_effect_before_it_starts() {
    let mut history = RegisterHistory::new();
    let early = read(&mut history, 2, 1, 0, 1);
    unknown(&mut history, 1, RegisterInput::Write(1), 2);
    assert_eq!(rejected(Register::new(0), &history).ids(), [early]);
}

#[test]
fn an_unknown_cas_either_way() {
    let cas = RegisterInput::Cas {
        expected: 0,
        new: 1,
    };
    for after in [0, 1] {
        let mut history = RegisterHistory::new();
        unknown(&mut history, 1, cas.clone(), 0);
        read(&mut history, 2, after, 10, 11);
        assert_eq!(
            check(Register::new(0), &history),
            Verdict::Linearizable,
            "read {after}"
        );
    }
    // Its expected value was not there: it cannot have swapped.
    let mut history = RegisterHistory::new();
    write(&mut history, 1, 5, 0, 1);
    unknown(&mut history, 1, cas, 2);
    let read = read(&mut history, 2, 1, 10, 11);
    let excerpt = rejected(Register::new(0), &history);
    assert!(excerpt.ids().contains(&read), "{excerpt}");
}

#[test]
fn a_kv_map_is_checked_key_by_key() {
    let mut history = History::new();
    let put = |key, value| KvInput::Put(key, value);
    let get = |key| KvInput::Get(key);
    // Three keys, each with concurrent writers and readers; "c" has a stale read.
    let mut clock = 0;
    let mut stale = None;
    let mut c_puts = Vec::new();
    for round in 0..20_u64 {
        for (client, key) in ["a", "b", "c"].into_iter().enumerate() {
            let client = client as u64;
            let value = round * 10 + client;
            let start = clock;
            let id = op(
                &mut history,
                client,
                put(key, value),
                start,
                start + 3,
                KvOutput::Done,
            );
            op(
                &mut history,
                client + 10,
                get(key),
                start + 1,
                start + 2,
                KvOutput::Value(Some(value)),
            );
            if key == "c" {
                c_puts.push(id);
            }
            if key == "c" && round == 10 {
                // A read that starts after this put ended sees the value before it.
                stale = Some(op(
                    &mut history,
                    20,
                    get(key),
                    start + 4,
                    start + 5,
                    KvOutput::Value(Some(value - 10)),
                ));
            }
            clock += 1;
        }
        clock += 10;
    }
    op(
        &mut history,
        30,
        KvInput::Delete("a"),
        clock,
        clock + 1,
        KvOutput::Value(Some(190)),
    );
    op(
        &mut history,
        30,
        get("a"),
        clock + 2,
        clock + 3,
        KvOutput::Value(None),
    );
    let excerpt = rejected(KvMap::new(), &history);
    let stale = stale.expect("round 10 ran");
    // The stale read and the put that came before it (or the read that saw that put).
    let ids = excerpt.ids();
    assert_eq!(ids.len(), 2, "{excerpt}");
    assert_eq!(ids[1], stale);
    assert!(
        ids[0] == c_puts[10] || ids[0] == OpId(c_puts[10].0 + 1),
        "{excerpt}"
    );

    // Without the stale read the history is linearizable, and the other keys were never
    // searched together.
    let fixed: History<_, _> = history
        .operations()
        .iter()
        .enumerate()
        .filter(|&(index, _)| OpId(index) != stale)
        .map(|(_, op)| op.clone())
        .collect();
    assert_eq!(check(KvMap::new(), &fixed), Verdict::Linearizable);
}

#[test]
fn a_set_is_checked_element_by_element() {
    let mut history = History::new();
    op(&mut history, 1, SetInput::Add(1), 0, 10, true);
    op(&mut history, 2, SetInput::Add(1), 1, 11, false);
    op(&mut history, 3, SetInput::Contains(2), 2, 3, false);
    op(&mut history, 3, SetInput::Remove(1), 12, 13, true);
    op(&mut history, 3, SetInput::Contains(1), 14, 15, false);
    assert_eq!(check(Set::new(), &history), Verdict::Linearizable);
    // Both adds of one element claim it was absent.
    let mut history = History::new();
    let a = op(&mut history, 1, SetInput::Add(1), 0, 10, true);
    let b = op(&mut history, 2, SetInput::Add(1), 1, 11, true);
    op(&mut history, 2, SetInput::Add(2), 1, 11, true);
    assert_eq!(rejected(Set::new(), &history).ids(), [a, b]);
}

#[test]
fn the_budget_bounds_the_search() {
    // Many concurrent writes of distinct values whose outcome is unknown, then a read of a
    // value nobody wrote: the search must try every subset and order before it gives up.
    let mut history = RegisterHistory::new();
    for client in 0..24 {
        unknown(
            &mut history,
            client,
            RegisterInput::Write(client as i64 + 1),
            0,
        );
    }
    read(&mut history, 99, -1, 1, 2);
    let checker = Checker::new(Register::new(0)).budget(1_000);
    assert_eq!(checker.check(&history), Verdict::Unknown { steps: 1_000 });
    // A small budget still suffices for a short history.
    let mut short = RegisterHistory::new();
    write(&mut short, 1, 1, 0, 1);
    read(&mut short, 1, 1, 2, 3);
    assert_eq!(checker.check(&short), Verdict::Linearizable);
}

#[test]
fn a_shrink_budget_that_runs_out_leaves_the_excerpt_as_it_is() {
    let mut history = RegisterHistory::new();
    for value in 0..10 {
        write(
            &mut history,
            1,
            value,
            value as u64 * 2,
            value as u64 * 2 + 1,
        );
    }
    read(&mut history, 2, 3, 100, 101);
    let checker = Checker::new(Register::new(0)).shrink_budget(0);
    let excerpt = checker
        .check(&history)
        .excerpt()
        .cloned()
        .expect("a stale read");
    assert!(!excerpt.is_minimal());
    assert_eq!(excerpt.operations().len(), 11);
    assert!(
        check(Register::new(0), &history)
            .excerpt()
            .is_some_and(Excerpt::is_minimal)
    );
}

#[test]
fn an_operation_ending_before_it_starts_is_refused() {
    let mut history = RegisterHistory::new();
    let id = history.invoke(1, RegisterInput::Read, 10);
    assert_eq!(
        history.complete(id, RegisterOutput::Read(0), 9),
        Err(HistoryError::EndsBeforeStart {
            op: id,
            start: 10,
            end: 9
        })
    );
    history
        .complete(id, RegisterOutput::Read(0), 11)
        .expect("a valid end");
    assert_eq!(
        history.complete(id, RegisterOutput::Read(0), 12),
        Err(HistoryError::AlreadyCompleted { op: id })
    );
    assert_eq!(
        history.unknown(id),
        Err(HistoryError::AlreadyCompleted { op: id })
    );
    assert_eq!(
        history.unknown(OpId(5)),
        Err(HistoryError::UnknownOperation {
            op: OpId(5),
            len: 1
        })
    );
    // Pushed as is, it cannot be linearized.
    let bad = history.push(Operation {
        client: 2,
        input: RegisterInput::Read,
        start: 20,
        outcome: Outcome::Returned {
            output: RegisterOutput::Read(0),
            end: 19,
        },
    });
    assert_eq!(rejected(Register::new(0), &history).ids(), [bad]);
}

#[test]
fn a_recorder_dates_events_from_many_threads() {
    let recorder = Recorder::new();
    thread::scope(|scope| {
        for client in 0..4_u64 {
            let recorder = &recorder;
            scope.spawn(move || {
                for round in 0..50 {
                    let key = (client + round) % 3;
                    let put = recorder.invoke(client, KvInput::Put(key, client));
                    recorder
                        .complete(put, KvOutput::Done)
                        .expect("invoked here");
                    let get = recorder.invoke(client, KvInput::Get(key));
                    recorder.unknown(get).expect("invoked here");
                }
            });
        }
    });
    let history = recorder.into_history();
    assert_eq!(history.len(), 400);
    assert_eq!(check(KvMap::new(), &history), Verdict::Linearizable);
}

/// A history of `len` overlapping calls from several clients, taken from a sequential run with
/// each interval stretched around its point, a few of them timed out; and the last value
/// written.
fn overlapping_history(len: u64) -> (RegisterHistory, i64) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let mut ops = Vec::new();
    let mut value = 0;
    for index in 0..len {
        let point = 100 + index * 10;
        let start = point - random(25);
        let end = point + random(25);
        let (input, output) = if random(2) == 0 {
            (RegisterInput::Read, RegisterOutput::Read(value))
        } else {
            value = random(100) as i64;
            (RegisterInput::Write(value), RegisterOutput::Written)
        };
        // Now and then a timeout: the client never learns what happened.
        let outcome = if random(500) == 0 {
            Outcome::Unknown
        } else {
            Outcome::Returned { output, end }
        };
        ops.push(Operation {
            client: index % 5,
            input,
            start,
            outcome,
        });
    }
    (ops.into_iter().collect(), value)
}

#[test]
fn a_long_history_is_accepted() {
    let (history, _) = overlapping_history(20_000);
    assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);
}

/// A stale read at the end of a history: rejected with the read and the write it missed.
#[test]
fn a_stale_read_at_the_end_of_a_history() {
    let len = 300;
    let (mut history, value) = overlapping_history(len);
    let last = 100 + len * 10 + 50;
    let fresh = write(&mut history, 9, 1_000, last, last + 1);
    let stale = read(&mut history, 9, value, last + 2, last + 3);
    let excerpt = rejected(Register::new(0), &history);
    assert_eq!(excerpt.ids()[..], [fresh, stale], "{excerpt}");
}

/// A register operation and the linearization point it is given in a generated history.
fn register_input() -> impl Strategy<Value = RegisterInput<i64>> {
    prop_oneof![
        Just(RegisterInput::Read),
        (0..4_i64).prop_map(RegisterInput::Write),
        (0..4_i64, 0..4_i64).prop_map(|(expected, new)| RegisterInput::Cas { expected, new }),
    ]
}

fn kv_input() -> impl Strategy<Value = KvInput<u8, i64>> {
    prop_oneof![
        (0..4_u8, 0..4_i64).prop_map(|(key, value)| KvInput::Put(key, value)),
        (0..4_u8).prop_map(KvInput::Get),
        (0..4_u8).prop_map(KvInput::Delete),
    ]
}

/// Runs `inputs` one after another on a real object (`apply`), each at its own point in time,
/// and records each with an interval around its point (up to `spread` either side) and, where
/// `lost`, an unknown outcome.
fn sequential_history<I: Clone, O, S>(
    mut state: S,
    apply: impl Fn(&mut S, &I) -> O,
    inputs: &[(I, u64, u64, bool)],
) -> History<I, O> {
    let mut history = History::new();
    for (index, (input, before, after, lost)) in inputs.iter().enumerate() {
        let point = 100 + index as u64 * 10;
        let output = apply(&mut state, input);
        let id = history.invoke(index as u64 % 5, input.clone(), point - before);
        if *lost {
            history.unknown(id).expect("a fresh operation");
        } else {
            history
                .complete(id, output, point + after)
                .expect("ends after its start");
        }
    }
    history
}

/// Whether `ops` can be linearized, by trying every order: the reference the checker is
/// compared with on small histories.
fn linearizable_by_brute_force<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
) -> bool {
    fn place<M: Model>(
        model: &M,
        ops: &[Operation<M::Input, M::Output>],
        placed: &mut [bool],
        state: &M::State,
    ) -> bool {
        if ops
            .iter()
            .zip(placed.iter())
            .all(|(op, &placed)| placed || op.end().is_none())
        {
            return true;
        }
        for (next, op) in ops.iter().enumerate() {
            // Next only if every operation that ended before it started is placed.
            let waits = ops
                .iter()
                .zip(placed.iter())
                .any(|(other, &done)| !done && other.end().is_some_and(|end| end < op.start));
            if placed[next] || waits {
                continue;
            }
            if let Some(after) = model.step(state, &op.input, op.output()) {
                placed[next] = true;
                if place(model, ops, placed, &after) {
                    return true;
                }
                placed[next] = false;
            }
        }
        false
    }
    place(model, ops, &mut vec![false; ops.len()], &model.init())
}

/// A random register history: made-up outputs, random intervals, some outcomes unknown.
fn random_register_history(
    ops: Vec<(RegisterInput<i64>, i64, bool, u64, u64, bool)>,
) -> RegisterHistory {
    let mut history = RegisterHistory::new();
    for (client, (input, value, swapped, start, length, lost)) in ops.into_iter().enumerate() {
        let output = match input {
            RegisterInput::Read => RegisterOutput::Read(value),
            RegisterInput::Write(_) => RegisterOutput::Written,
            RegisterInput::Cas { .. } => RegisterOutput::Cas(swapped),
        };
        let id = history.invoke(client as u64, input, start);
        if lost {
            history.unknown(id).expect("a fresh operation");
        } else {
            history
                .complete(id, output, start + length)
                .expect("ends after its start");
        }
    }
    history
}

fn random_register_ops()
-> impl Strategy<Value = Vec<(RegisterInput<i64>, i64, bool, u64, u64, bool)>> {
    prop::collection::vec(
        (
            register_input(),
            0..4_i64,
            prop::bool::ANY,
            0..30_u64,
            0..10_u64,
            prop::bool::weighted(0.15),
        ),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// On small random histories the checker agrees with trying every order.
    #[test]
    fn the_checker_agrees_with_brute_force(ops in random_register_ops()) {
        let history = random_register_history(ops);
        let expected = linearizable_by_brute_force(&Register::new(0), history.operations());
        let verdict = check(Register::new(0), &history);
        prop_assert!(!matches!(verdict, Verdict::Unknown { .. }), "{}", verdict);
        prop_assert_eq!(verdict.is_linearizable(), expected, "{}", verdict);
    }

    #[test]
    fn sequential_register_runs_are_linearizable(
        inputs in prop::collection::vec((register_input(), 0..40_u64, 0..40_u64, prop::bool::weighted(0.1)), 0..40),
    ) {
        let history = sequential_history(0_i64, |value, input| match input {
            RegisterInput::Read => RegisterOutput::Read(*value),
            RegisterInput::Write(new) => {
                *value = *new;
                RegisterOutput::Written
            }
            RegisterInput::Cas { expected, new } => {
                let swapped = value == expected;
                if swapped {
                    *value = *new;
                }
                RegisterOutput::Cas(swapped)
            }
        }, &inputs);
        prop_assert_eq!(check(Register::new(0), &history), Verdict::Linearizable);
    }

    #[test]
    fn sequential_kv_runs_are_linearizable(
        inputs in prop::collection::vec((kv_input(), 0..60_u64, 0..60_u64, prop::bool::weighted(0.1)), 0..60),
    ) {
        let history = sequential_history(std::collections::HashMap::new(), |map, input| match input {
            KvInput::Put(key, value) => KvOutput::Value(map.insert(*key, *value)),
            KvInput::Get(key) => KvOutput::Value(map.get(key).copied()),
            KvInput::Delete(key) => KvOutput::Value(map.remove(key)),
        }, &inputs);
        prop_assert_eq!(check(KvMap::new(), &history), Verdict::Linearizable);
    }

    /// Random histories (outputs made up): whenever one is rejected, its excerpt is not
    /// linearizable alone and is minimal.
    #[test]
    fn excerpts_of_random_histories_are_minimal(ops in random_register_ops()) {
        let history = random_register_history(ops);
        if let Some(excerpt) = check(Register::new(0), &history).excerpt() {
            assert_minimal(Register::new(0), &history, excerpt);
        }
    }
}
