//! The replicated-object macros end to end: `#[derive(Replicated)]` and `#[replicated]` on user
//! types, driven through a tiny in-test [`Submit`] that applies each command at once (or holds it
//! until flushed), plus the golden test that pins the method table.

#![deny(missing_docs)]
// A failed unwrap in a test is a test failure, reported with its location.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use syncobj::prelude::*;
use syncobj::{ReplicatedMethods, ReplicatedState};
use syncobj_core::object::{ApplyError, Caller, Completion, MethodSpec, Submit, TickHelp};

/// The example: a counter with a plain, a versioned and a local method.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    /// The current value.
    value: i64,
}

#[replicated]
impl Counter {
    /// Adds `n` and returns the new value.
    #[replicated]
    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }

    /// Sets the value back to 0.
    #[replicated(ver = 1)] // callable once the cluster's code version is >= 1
    fn reset(&mut self) {
        self.value = 0
    }

    /// A plain method: a local read, left untouched.
    fn get(&self) -> i64 {
        self.value
    }
}

/// A method with three versions under one replicated name, plus `Self` and several arguments.
#[derive(Default, Serialize, Deserialize, Replicated)]
struct Greeter {
    /// Every greeting so far.
    said: Vec<String>,
}

#[replicated]
impl Greeter {
    /// Version 3 of `greet`.
    #[replicated(ver = 3, name = "greet")]
    fn greet_v3(&mut self, who: String) -> String {
        self.say(format!("good day, {who}"))
    }

    /// Version 0 of `greet`.
    #[replicated]
    fn greet(&mut self, who: String) -> String {
        self.say(format!("hello {who}"))
    }

    /// Version 1 of `greet`, with another argument name.
    #[replicated(ver = 1, name = "greet")]
    fn greet_v1(&mut self, whom: String) -> String {
        self.say(format!("hi {whom}"))
    }

    /// Replaces the state with `other` and returns what it was; `mut` bindings are fine.
    #[replicated]
    fn swap(&mut self, mut other: Self, extra: Option<String>) -> Self {
        other.said.extend(extra);
        std::mem::replace(self, other)
    }

    /// Records and returns `line` (a plain method).
    fn say(&mut self, line: String) -> String {
        self.said.push(line.clone());
        line
    }
}

/// A node of one replicated object, for tests: applies commands through
/// [`ReplicatedMethods::apply`], at once or when flushed.
struct Node<T> {
    /// The replicated state.
    state: Mutex<T>,
    /// The cluster's enabled code version.
    code_version: AtomicU32,
    /// Commands held back while `holding`, with their completions.
    held: Mutex<VecDeque<(Bytes, Completion)>>,
    /// Whether commands wait for [`Node::flush`].
    holding: Mutex<bool>,
}

impl<T: ReplicatedMethods + Default> Node<T> {
    /// A node with the default state, at code version 0, applying commands at once.
    fn new() -> Arc<Self> {
        Arc::new(Node {
            state: Mutex::new(T::default()),
            code_version: AtomicU32::new(0),
            held: Mutex::new(VecDeque::new()),
            holding: Mutex::new(false),
        })
    }

    /// The typed call surface of this node's object.
    fn calls(self: &Arc<Self>) -> T::Calls {
        let submit: Arc<dyn Submit> = self.clone();
        T::Calls::from(Caller::new(submit, 0))
    }

    /// Holds commands back until [`Node::flush`] (`true`), or applies them at once.
    fn hold(&self, holding: bool) {
        *self.holding.lock().unwrap() = holding;
    }

    /// Applies every held command; returns how many there were.
    fn flush(&self) -> usize {
        let held: Vec<_> = self.held.lock().unwrap().drain(..).collect();
        let count = held.len();
        for (command, completion) in held {
            completion.complete(self.run(&command));
        }
        count
    }

    /// Decodes the 16-byte little-endian header by hand (the stamp is the leader's: a caller
    /// leaves it 0), checks the fingerprint, applies.
    fn run(&self, command: &[u8]) -> Result<Vec<u8>, FailReason> {
        let Some((head, args)) = command.split_first_chunk::<16>() else {
            return Err(FailReason::BadArguments("short command".to_string()));
        };
        assert_eq!(u16::from_le_bytes([head[0], head[1]]), 0, "object 0");
        let method = u16::from_le_bytes([head[2], head[3]]);
        let fingerprint = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        assert_eq!(head[8..], [0; 8], "callers leave the stamp to the leader");
        let spec = T::METHODS[usize::from(method)];
        assert_eq!((spec.id, spec.fingerprint), (method, fingerprint));
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .apply(method, args)
            .map_err(|error| FailReason::BadArguments(error.to_string()))
    }
}

impl<T: ReplicatedMethods + Default> Submit for Node<T> {
    fn submit(&self, command: Bytes, completion: Completion) {
        if *self.holding.lock().unwrap() {
            self.held.lock().unwrap().push_back((command, completion));
        } else {
            completion.complete(self.run(&command));
        }
    }

    fn enabled_code_version(&self) -> u32 {
        self.code_version.load(Ordering::SeqCst)
    }

    fn help_while_waiting(&self, _max_wait: Duration) -> TickHelp {
        TickHelp::TickThreadRuns
    }
}

/// Compiles only if `T` is a whole replicated type (state and methods).
fn assert_replicated<T: Replicated>() {}

/// The derive names the state; both halves make a `Replicated` type.
#[test]
fn derive_and_impl_make_a_replicated_type() {
    assert_eq!(<Counter as ReplicatedState>::NAME, "Counter");
    assert_replicated::<Counter>();
    assert_replicated::<Greeter>();
    assert_eq!(Counter::code_version(), 1);
    assert_eq!(Greeter::code_version(), 3);
    assert_eq!(Counter::default().get(), 0, "plain methods stay callable");
}

/// The example: `add` at once, `reset` only from code version 1.
#[test]
fn calls_apply_and_versions_gate() {
    let node = Node::<Counter>::new();
    let calls = node.calls();
    assert_eq!(calls.add(5).wait(), Ok(5));
    assert_eq!(calls.add(-2).wait_timeout(Duration::from_secs(5)), Ok(3));
    let refused = calls.reset().wait();
    assert_eq!(
        refused,
        Err(FailReason::VersionNotEnabled {
            method: "reset",
            enabled: 0
        })
    );
    assert_eq!(
        node.state.lock().unwrap().get(),
        3,
        "a refused call does not run"
    );
    node.code_version.store(1, Ordering::SeqCst);
    assert_eq!(calls.reset().wait(), Ok(()));
    assert_eq!(node.state.lock().unwrap().get(), 0);
    calls.add(4).detach();
    assert_eq!(node.state.lock().unwrap().get(), 4);
}

/// A name with several versions runs the highest version the cluster has enabled.
#[test]
fn multi_version_method_dispatches_to_highest_enabled() {
    let node = Node::<Greeter>::new();
    let calls = node.calls();
    let mut heard = Vec::new();
    for version in 0..5 {
        node.code_version.store(version, Ordering::SeqCst);
        heard.push(calls.greet("ann".to_string()).wait().unwrap());
    }
    let expected = [
        "hello ann",
        "hi ann",
        "hi ann",
        "good day, ann",
        "good day, ann",
    ];
    assert_eq!(heard, expected);
    assert_eq!(node.state.lock().unwrap().said, expected);
}

/// `Self` in a signature means the replicated type, in the command and on the call surface.
#[test]
fn self_in_signatures_is_the_replicated_type() {
    let node = Node::<Greeter>::new();
    let calls = node.calls();
    calls.greet("bo".to_string()).detach();
    let other = Greeter {
        said: vec!["x".to_string()],
    };
    let before = calls.swap(other, Some("y".to_string())).wait().unwrap();
    assert_eq!(before.said, ["hello bo"]);
    assert_eq!(node.state.lock().unwrap().said, ["x", "y"]);
}

/// A callback given before completion runs when the command is applied; one given after runs
/// at once.
#[test]
fn on_done_runs_with_the_result() {
    let node = Node::<Counter>::new();
    let calls = node.calls();
    let seen = Arc::new(Mutex::new(Vec::new()));
    node.hold(true);
    let sink = Arc::clone(&seen);
    calls
        .add(2)
        .on_done(move |result| sink.lock().unwrap().push(result));
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(node.flush(), 1);
    node.hold(false);
    let sink = Arc::clone(&seen);
    calls
        .add(3)
        .on_done(move |result| sink.lock().unwrap().push(result));
    assert_eq!(*seen.lock().unwrap(), [Ok(2), Ok(5)]);
}

/// A call is a future: pending until applied, then ready with the result.
#[test]
fn await_yields_the_result() {
    let node = Node::<Counter>::new();
    let calls = node.calls();
    let mut context = Context::from_waker(Waker::noop());
    node.hold(true);
    let mut call = pin!(calls.add(7));
    assert!(call.as_mut().poll(&mut context).is_pending());
    assert_eq!(node.flush(), 1);
    assert_eq!(call.as_mut().poll(&mut context), Poll::Ready(Ok(7)));
    node.hold(false);
    let mut ready = pin!(async { calls.add(1).await });
    assert_eq!(ready.as_mut().poll(&mut context), Poll::Ready(Ok(8)));
}

/// A blocked `wait` wakes when another thread applies the command.
#[test]
fn wait_wakes_when_another_thread_applies() {
    let node = Node::<Counter>::new();
    let calls = node.calls();
    node.hold(true);
    let applier = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || {
            while node.flush() == 0 {
                std::thread::yield_now();
            }
        })
    };
    assert_eq!(calls.add(9).wait_timeout(Duration::from_secs(30)), Ok(9));
    applier.join().unwrap();
}

/// The command enum: ids in table order, decoding from argument tuples, serde round trips.
#[test]
fn command_enum_round_trips() {
    let add = CounterCommand::decode(0, &rmp_serde::to_vec(&(7i64,)).unwrap()).unwrap();
    assert!(matches!(add, CounterCommand::Add { n: 7 }));
    let reset = CounterCommand::decode(1, &rmp_serde::to_vec(&()).unwrap()).unwrap();
    assert!(matches!(reset, CounterCommand::ResetV1 {}));
    assert_eq!((add.id(), reset.id()), (0, 1));
    for command in [add, reset] {
        let bytes = rmp_serde::to_vec(&command).unwrap();
        let back: CounterCommand = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.id(), command.id());
        assert_eq!(rmp_serde::to_vec(&back).unwrap(), bytes);
    }
    let greet = GreeterCommand::GreetV3 {
        who: "cy".to_string(),
    };
    let bytes = rmp_serde::to_vec(&greet).unwrap();
    let back: GreeterCommand = rmp_serde::from_slice(&bytes).unwrap();
    assert!(matches!(back, GreeterCommand::GreetV3 { who } if who == "cy"));
}

/// Unknown ids and undecodable arguments are errors, not panics.
#[test]
fn apply_refuses_bad_commands() {
    assert_eq!(
        CounterCommand::decode(2, &[]).err(),
        Some(ApplyError::UnknownMethod(2))
    );
    let mut counter = Counter::default();
    assert_eq!(counter.apply(9, &[]), Err(ApplyError::UnknownMethod(9)));
    let wrong = rmp_serde::to_vec(&("seven",)).unwrap();
    match counter.apply(0, &wrong) {
        Err(ApplyError::BadArguments { method: "add", .. }) => {}
        other => panic!("expected BadArguments for add, got {other:?}"),
    }
    let result = counter
        .apply(0, &rmp_serde::to_vec(&(4i64,)).unwrap())
        .unwrap();
    assert_eq!(rmp_serde::from_slice::<i64>(&result).unwrap(), 4);
}

/// One sample type, written twice with its methods in different source orders.
macro_rules! sample_bodies {
    () => {
        /// State of the golden sample.
        #[derive(Default, Serialize, Deserialize, Replicated)]
        pub(crate) struct Sample {
            /// What the methods did.
            pub(crate) log: Vec<String>,
        }

        impl Sample {
            /// Records `line`.
            fn note(&mut self, line: &str) {
                self.log.push(line.to_string());
            }
        }
    };
}

/// The golden sample, in one source order.
mod golden_a {
    use super::*;

    sample_bodies!();

    #[replicated]
    impl Sample {
        /// Version 2 only.
        #[replicated(ver = 2)]
        fn zap(&mut self) {
            self.note("zap");
        }
        /// `put` version 0.
        #[replicated]
        fn put(&mut self, key: String, value: Vec<u8>) -> Option<Vec<u8>> {
            self.note(&key);
            Some(value)
        }
        /// `put` version 1.
        #[replicated(ver = 1, name = "put")]
        fn put_v1(&mut self, key: String, value: Vec<u8>) -> Option<Vec<u8>> {
            self.note(&key);
            Some(value)
        }
        /// Empties the log, returning how long it was.
        #[replicated]
        fn clear(&mut self) -> usize {
            std::mem::take(&mut self.log).len()
        }
        /// Version 1 only.
        #[replicated(ver = 1)]
        fn append(&mut self, line: String) {
            self.note(&line);
        }
        /// `put` version 2.
        #[replicated(ver = 2, name = "put")]
        fn put_v2(&mut self, key: String, value: Vec<u8>) -> Option<Vec<u8>> {
            self.note(&key);
            Some(value)
        }
        /// Returns `by` widened.
        #[replicated]
        fn bump(&mut self, by: u32) -> u64 {
            u64::from(by)
        }
    }
}

/// The golden sample again, in another source order.
mod golden_b {
    use super::*;

    sample_bodies!();

    #[replicated]
    impl Sample {
        /// Returns `by` widened.
        #[replicated]
        fn bump(&mut self, by: u32) -> u64 {
            u64::from(by)
        }
        /// `put` version 2.
        #[replicated(ver = 2, name = "put")]
        fn put_v2(&mut self, key: String, value: Vec<u8>) -> Option<Vec<u8>> {
            self.note(&key);
            Some(value)
        }
        /// Version 1 only.
        #[replicated(ver = 1)]
        fn append(&mut self, line: String) {
            self.note(&line);
        }
        /// Empties the log, returning how long it was.
        #[replicated]
        fn clear(&mut self) -> usize {
            std::mem::take(&mut self.log).len()
        }
        /// `put` version 1.
        #[replicated(ver = 1, name = "put")]
        fn put_v1(&mut self, key: String, value: Vec<u8>) -> Option<Vec<u8>> {
            self.note(&key);
            Some(value)
        }
        /// `put` version 0.
        #[replicated]
        fn put(&mut self, key: String, value: Vec<u8>) -> Option<Vec<u8>> {
            self.note(&key);
            Some(value)
        }
        /// Version 2 only.
        #[replicated(ver = 2)]
        fn zap(&mut self) {
            self.note("zap");
        }
    }
}

/// The documented fingerprint: 32-bit FNV-1a of the signature string.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The golden table: ids by (version, name), whatever the source order. These numbers are the
/// wire format of replicated calls: if this test fails, old and new nodes disagree.
#[test]
fn golden_method_table() {
    let spec = |id, name, version, fingerprint| MethodSpec {
        id,
        name,
        version,
        fingerprint,
    };
    let expected = [
        spec(0, "bump", 0, 0xd545_2e06),
        spec(1, "clear", 0, 0xd2fa_6a4c),
        spec(2, "put", 0, 0xdf0a_6398),
        spec(3, "append", 1, 0xfb83_c96a),
        spec(4, "put", 1, 0x2211_d7af),
        spec(5, "put", 2, 0xdae0_a07e),
        spec(6, "zap", 2, 0xad3a_3645),
    ];
    assert_eq!(golden_a::Sample::METHODS, expected);
    assert_eq!(golden_b::Sample::METHODS, golden_a::Sample::METHODS);
    let signatures = [
        "bump@0(u32)->u64",
        "clear@0()->usize",
        "put@0(String,Vec < u8 >)->Option < Vec < u8 > >",
        "append@1(String)->()",
        "put@1(String,Vec < u8 >)->Option < Vec < u8 > >",
        "put@2(String,Vec < u8 >)->Option < Vec < u8 > >",
        "zap@2()->()",
    ];
    for (spec, signature) in expected.iter().zip(signatures) {
        assert_eq!(spec.fingerprint, fnv1a(signature), "{signature}");
    }
    assert_eq!(
        Counter::METHODS,
        [
            spec(0, "add", 0, 0xd501_6368),
            spec(1, "reset", 1, 0x2e99_29b8)
        ]
    );
}

/// Both orders decode the same command bytes to the same method.
#[test]
fn golden_samples_agree_on_the_wire() {
    let args = rmp_serde::to_vec(&("k".to_string(), vec![1u8])).unwrap();
    let mut a = golden_a::Sample::default();
    let mut b = golden_b::Sample::default();
    for id in [2, 4, 5] {
        assert_eq!(a.apply(id, &args), b.apply(id, &args));
    }
    assert!(matches!(
        golden_b::SampleCommand::decode(6, &rmp_serde::to_vec(&()).unwrap()),
        Ok(golden_b::SampleCommand::ZapV2 {})
    ));
    assert_eq!(a.log, b.log);
}

/// A generic replicated type: a keyed store over any serializable key and value, with a
/// `where` clause, a const parameter and `Self` in a signature.
#[derive(Serialize, Deserialize, Replicated)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: serde::de::DeserializeOwned + Ord, V: serde::de::DeserializeOwned"
))]
struct Store<K: Ord, V, const CAP: usize> {
    /// The entries, in key order.
    entries: std::collections::BTreeMap<K, V>,
}

impl<K: Ord, V, const CAP: usize> Default for Store<K, V, CAP> {
    fn default() -> Self {
        Store {
            entries: std::collections::BTreeMap::new(),
        }
    }
}

#[replicated]
impl<K, V, const CAP: usize> Store<K, V, CAP>
where
    K: Ord + Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    V: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    /// Stores `value` under `key` unless the store is full; returns the previous value.
    #[replicated]
    fn put(&mut self, key: K, value: V) -> Result<Option<V>, String> {
        if self.entries.len() >= CAP && !self.entries.contains_key(&key) {
            return Err(format!("full at {CAP}"));
        }
        Ok(self.entries.insert(key, value))
    }

    #[replicated]
    fn take(&mut self, key: K) -> Option<V> {
        self.entries.remove(&key)
    }

    #[replicated(ver = 1)]
    fn replace(&mut self, other: Self) -> usize {
        *self = other;
        self.entries.len()
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }
}

/// A generic type's command identifiers and fingerprints are those of its written signatures,
/// the same for every choice of its parameters: nodes agree whatever the type arguments.
#[test]
fn generic_types_share_one_method_table() {
    type Names = Store<String, String, 4>;
    type Numbers = Store<u32, Vec<i64>, 2>;
    assert_replicated::<Names>();
    assert_replicated::<Numbers>();
    assert_eq!(<Names as ReplicatedState>::NAME, "Store");
    assert_eq!(Names::METHODS, Numbers::METHODS);
    let signatures = [
        "put@0(K,V)->Result < Option < V > , String >",
        "take@0(K)->Option < V >",
        "replace@1(Self)->usize",
    ];
    let names: Vec<_> = Names::METHODS
        .iter()
        .map(|m| (m.id, m.name, m.version))
        .collect();
    assert_eq!(names, [(0, "put", 0), (1, "take", 0), (2, "replace", 1)]);
    for (spec, signature) in Names::METHODS.iter().zip(signatures) {
        assert_eq!(spec.fingerprint, fnv1a(signature), "{signature}");
    }
    assert_eq!(
        Names::METHODS
            .iter()
            .map(|m| m.fingerprint)
            .collect::<Vec<_>>(),
        [0x9ba5_e782, 0xd78d_d898, 0xd033_bc78],
        "pinned: these are the wire format of every Store<K, V, CAP>"
    );
}

/// Calls on a generic type run with its type arguments, through the generated command enum.
#[test]
fn generic_type_calls_apply() {
    let node = Node::<Store<String, u64, 2>>::new();
    let calls = node.calls();
    assert_eq!(calls.put("a".into(), 1).wait(), Ok(Ok(None)));
    assert_eq!(calls.put("a".into(), 2).wait(), Ok(Ok(Some(1))));
    assert_eq!(calls.put("b".into(), 3).wait(), Ok(Ok(None)));
    assert_eq!(calls.put("c".into(), 4).wait(), Ok(Err("full at 2".into())));
    assert_eq!(calls.take("a".into()).wait(), Ok(Some(2)));
    assert_eq!(node.state.lock().unwrap().get(&"b".to_string()), Some(&3));
    node.code_version.store(1, Ordering::SeqCst);
    let other = Store::<String, u64, 2>::default();
    assert_eq!(calls.replace(other).wait(), Ok(0));
    let command = StoreCommand::<u32, u32, 1>::Take { key: 7 };
    assert_eq!(command.id(), 1);
    let args = rmp_serde::to_vec(&(7u32,)).unwrap();
    assert!(matches!(
        StoreCommand::<u32, u32, 1>::decode(1, &args),
        Ok(StoreCommand::Take { key: 7 })
    ));
    let cloned = calls.clone();
    assert!(format!("{cloned:?}").starts_with("StoreCalls"));
}
