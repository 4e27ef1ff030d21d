//! A recorded history: each operation's invocation and, if it came, its completion.

use std::fmt;
use std::sync::Mutex;

/// An operation's place in its [`History`]: the order in which it was invoked there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {}", self.0)
    }
}

/// How an operation ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<O> {
    /// No completion recorded yet. The checker treats it as [`Outcome::Unknown`]: a call still
    /// in flight when the history was taken may yet take effect.
    Pending,
    /// The operation returned `output` at time `end`.
    Returned {
        /// What the operation returned.
        output: O,
        /// When the client received it, on the history's clock.
        end: u64,
    },
    /// The client never learned what happened (a timeout, a lost connection, a failure whose
    /// effect is unknown): the operation may have taken effect at any time after its start, or
    /// never.
    Unknown,
}

/// One operation of a history: who called what, when, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that called it (any number the recorder chooses; only shown in reports).
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When the client invoked it, on the history's clock.
    pub start: u64,
    /// How it ended.
    pub outcome: Outcome<O>,
}

impl<I, O> Operation<I, O> {
    /// The output, if the operation returned.
    pub fn output(&self) -> Option<&O> {
        match &self.outcome {
            Outcome::Returned { output, .. } => Some(output),
            Outcome::Pending | Outcome::Unknown => None,
        }
    }

    /// When the operation returned, or `None` if its outcome is not known (it may take effect
    /// at any time after its start).
    pub fn end(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Returned { end, .. } => Some(end),
            Outcome::Pending | Outcome::Unknown => None,
        }
    }
}

impl<I: fmt::Debug, O: fmt::Debug> fmt::Display for Operation<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} {:?} ", self.client, self.input)?;
        match &self.outcome {
            Outcome::Returned { output, end } => {
                write!(f, "-> {output:?} during [{}, {end}]", self.start)
            }
            Outcome::Pending | Outcome::Unknown => write!(f, "-> unknown from {}", self.start),
        }
    }
}

/// A history was recorded wrongly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A completion named an operation the history does not hold.
    #[error("{op} is not in the history (it holds {len} operations)")]
    UnknownOperation {
        /// The operation named.
        op: OpId,
        /// How many operations the history holds.
        len: usize,
    },
    /// An operation was completed twice (returned, or marked unknown, before).
    #[error("{op} was already completed")]
    AlreadyCompleted {
        /// The operation completed twice.
        op: OpId,
    },
    /// An operation's completion is dated before its invocation.
    #[error("{op} ends at {end}, before it starts at {start}")]
    EndsBeforeStart {
        /// The operation.
        op: OpId,
        /// When it was invoked.
        start: u64,
        /// The completion time given.
        end: u64,
    },
}

/// The operations called on one object, with their invocation and completion times.
///
/// Times are on any clock that never goes back, in any unit, as long as a completion observed
/// before an invocation gets a smaller time (a monotonic clock read by the clients, or the
/// counter of a [`Recorder`]). One operation precedes another only if it ended strictly before
/// the other started; equal times count as overlapping.
///
/// ```
/// use syncobj::testkit::{History, RegisterInput, RegisterOutput};
///
/// # fn main() -> Result<(), syncobj::testkit::HistoryError> {
/// let mut history = History::new();
/// let write = history.invoke(1, RegisterInput::Write(5), 10);
/// let read = history.invoke(2, RegisterInput::Read, 12);
/// history.complete(write, RegisterOutput::Written, 20)?;
/// history.complete(read, RegisterOutput::Read(5), 21)?;
/// assert_eq!(history.len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    operations: Vec<Operation<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History {
            operations: Vec::new(),
        }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Records that `client` invoked `input` at time `start`; the operation is
    /// [`Outcome::Pending`] until completed.
    pub fn invoke(&mut self, client: u64, input: I, start: u64) -> OpId {
        self.push(Operation {
            client,
            input,
            start,
            outcome: Outcome::Pending,
        })
    }

    /// Records that operation `op` returned `output` at time `end`.
    ///
    /// Fails if `op` is not in the history, was completed before, or `end` is before its start.
    pub fn complete(&mut self, op: OpId, output: O, end: u64) -> Result<(), HistoryError> {
        let operation = self.pending(op)?;
        if end < operation.start {
            return Err(HistoryError::EndsBeforeStart {
                op,
                start: operation.start,
                end,
            });
        }
        operation.outcome = Outcome::Returned { output, end };
        Ok(())
    }

    /// Records that the client of operation `op` will never learn its outcome (a timeout, a
    /// failure that may or may not have taken effect).
    ///
    /// Fails if `op` is not in the history or was completed before.
    pub fn unknown(&mut self, op: OpId) -> Result<(), HistoryError> {
        self.pending(op)?.outcome = Outcome::Unknown;
        Ok(())
    }

    /// Adds a whole operation, completed or not (no check: a `Returned` end before its start is
    /// reported by the checker as a history that cannot be linearized).
    pub fn push(&mut self, operation: Operation<I, O>) -> OpId {
        self.operations.push(operation);
        OpId(self.operations.len() - 1)
    }

    /// The operation `op`, if the history holds it.
    pub fn operation(&self, op: OpId) -> Option<&Operation<I, O>> {
        self.operations.get(op.0)
    }

    /// The operations, in the order they were invoked or pushed.
    pub fn operations(&self) -> &[Operation<I, O>] {
        &self.operations
    }

    /// How many operations the history holds.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether the history holds no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    fn pending(&mut self, op: OpId) -> Result<&mut Operation<I, O>, HistoryError> {
        let len = self.operations.len();
        let operation = self
            .operations
            .get_mut(op.0)
            .ok_or(HistoryError::UnknownOperation { op, len })?;
        match operation.outcome {
            Outcome::Pending => Ok(operation),
            Outcome::Returned { .. } | Outcome::Unknown => {
                Err(HistoryError::AlreadyCompleted { op })
            }
        }
    }
}

impl<I, O> FromIterator<Operation<I, O>> for History<I, O> {
    fn from_iter<T: IntoIterator<Item = Operation<I, O>>>(iter: T) -> Self {
        History {
            operations: iter.into_iter().collect(),
        }
    }
}

/// Records a [`History`] from many threads, dating each event with a counter taken under one
/// lock: an operation completed (recorded) before another is invoked (recorded) always gets the
/// smaller time, which is all the checker needs.
///
/// Record the invocation just before sending the call and the completion just after its answer
/// arrives, so that the recorded interval holds the real one.
///
/// ```
/// use std::thread;
/// use syncobj::testkit::{Counter, CounterInput, CounterOutput, Recorder, Verdict, check};
///
/// # fn main() -> Result<(), syncobj::testkit::HistoryError> {
/// let recorder = Recorder::new();
/// thread::scope(|scope| {
///     for client in 0..2 {
///         let recorder = &recorder;
///         scope.spawn(move || {
///             let op = recorder.invoke(client, CounterInput::Add(1));
///             // ... the real call would go here ...
///             recorder.complete(op, CounterOutput::Done).expect("op was invoked here");
///         });
///     }
/// });
/// let history = recorder.into_history();
/// assert_eq!(check(Counter::default(), &history), Verdict::Linearizable);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Recorder<I, O> {
    inner: Mutex<(History<I, O>, u64)>,
}

impl<I, O> Default for Recorder<I, O> {
    fn default() -> Self {
        Recorder {
            inner: Mutex::new((History::new(), 0)),
        }
    }
}

impl<I, O> Recorder<I, O> {
    /// An empty recorder.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// Records that `client` invokes `input` now.
    pub fn invoke(&self, client: u64, input: I) -> OpId {
        let mut inner = self.lock();
        let (history, clock) = &mut *inner;
        *clock += 1;
        history.invoke(client, input, *clock)
    }

    /// Records that operation `op` returned `output` now; fails as [`History::complete`] does.
    pub fn complete(&self, op: OpId, output: O) -> Result<(), HistoryError> {
        let mut inner = self.lock();
        let (history, clock) = &mut *inner;
        *clock += 1;
        history.complete(op, output, *clock)
    }

    /// Records that the outcome of `op` will never be known; fails as [`History::unknown`]
    /// does.
    pub fn unknown(&self, op: OpId) -> Result<(), HistoryError> {
        self.lock().0.unknown(op)
    }

    /// The history recorded so far (operations not completed are [`Outcome::Pending`]).
    pub fn into_history(self) -> History<I, O> {
        self.inner
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (History<I, O>, u64)> {
        // A thread that panicked while holding the lock left the history whole: every update
        // under it is a single push or assignment.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
