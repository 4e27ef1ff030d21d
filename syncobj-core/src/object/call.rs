//! Calls: how a replicated method call is submitted, and how its outcome comes back — by
//! waiting, by callback, or as a future.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::command::{CommandHeader, MethodSpec};
use super::refusal::{MembershipRefusal, TransferFailure};
use syncobj_net::resolve::AddressProblem;

/// Why a call did not return a result. PySyncObj's `FAIL_REASON` values have the same names.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FailReason {
    /// The node's command queue was full, or the leader held too many uncommitted entries
    /// (PySyncObj `QUEUE_FULL`). Never applied: a retry is safe.
    #[error("the command queue is full")]
    QueueFull,
    /// No leader is known, and the node does not wait for one, or stopped waiting at
    /// `call_timeout` (`MISSING_LEADER`). Never applied: the call never left this node.
    #[error("no leader is known")]
    MissingLeader,
    /// Another entry was committed where the call's entry was (`DISCARDED`). Never applied:
    /// a call is placed at one position only.
    #[error("the call's entry was replaced by a new leader")]
    Discarded,
    /// The node the call was forwarded to was no longer leader and refused it (`NOT_LEADER`).
    /// Never applied.
    #[error("the node the call was forwarded to is not the leader")]
    NotLeader,
    /// The call was forwarded to a leader that was replaced before it said where it placed
    /// the call (`LEADER_CHANGED`). Outcome unknown: the old leader may have placed it, and it
    /// may be committed; a retry can apply it twice.
    #[error("the leader changed before it answered; the call may still be applied")]
    LeaderChanged,
    /// The request was refused, as a membership change or a code version can be
    /// (`REQUEST_DENIED`). Never applied.
    #[error("the request was denied")]
    RequestDenied,
    /// No outcome within `call_timeout`, or the caller stopped waiting. Outcome unknown.
    #[error("timed out waiting; the call may still be applied")]
    Timeout,
    /// The node shut down before the call completed. Outcome unknown: it may still be
    /// applied elsewhere.
    #[error("the node shut down; the call may still be applied")]
    Shutdown,
    /// The method panicked, identically on every node; the log moved on. Applied: what the
    /// method changed before it panicked stays changed, on every node alike.
    #[error("the method panicked: {0}")]
    Panicked(String),
    /// No version of the method is enabled at the cluster's code version. Never applied.
    #[error("no version of {method} is enabled at code version {enabled}")]
    VersionNotEnabled {
        /// The method's name.
        method: &'static str,
        /// The cluster's enabled code version.
        enabled: u32,
    },
    /// `set_code_version` asked for a version this node's code lacks, or one below the enabled
    /// version (PySyncObj's `REQUEST_DENIED`). Never applied.
    #[error(
        "code version {requested} refused: {}",
        version_refusal(*.requested, *.own, *.enabled)
    )]
    VersionRefused {
        /// The version asked for.
        requested: u32,
        /// The highest version this node's code knows.
        own: u32,
        /// The version the cluster has enabled.
        enabled: u32,
    },
    /// The caller would wait on the thread that has to complete the call. The call goes on:
    /// outcome unknown.
    #[error("waiting on the tick thread would deadlock; use on_done or detach there")]
    WouldDeadlock,
    /// The arguments could not be encoded, or decoded by the method. Never applied: the
    /// method did not run.
    #[error("the arguments do not encode: {0}")]
    BadArguments(String),
    /// The result could not be decoded as the method's return type. Applied.
    #[error("the result does not decode: {0}")]
    BadResult(String),
    /// The node's tick loop died (a panic inside the node, not in a replicated method) or
    /// dropped the call without an outcome; the node takes no more calls. The call may still
    /// be applied on other nodes: outcome unknown.
    #[error("the node failed: {0}; the call may still be applied elsewhere")]
    NodeFailed(String),
    /// A membership change or leadership transfer was refused before anything was appended:
    /// the option is off, the leader is not ready, another change is under way, or the change
    /// makes no sense (see [`MembershipRefusal`]). Never applied.
    #[error("refused: {0}")]
    MembershipRefused(MembershipRefusal),
    /// The address given to a membership call is not a `host:port` a peer can dial. Never
    /// applied: refused before it was queued.
    #[error("the address {address:?} is refused: {problem}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        problem: AddressProblem,
    },
    /// The leader added the node as a non-voter to catch it up, then gave up promoting it (it
    /// stopped leading, or the node was removed meanwhile). Outcome unknown: the node may be a
    /// non-voting member; calling `add_node_to_cluster` again resumes.
    #[error("the leader gave up promoting the node; it may be a non-voting member")]
    PromotionAbandoned,
    /// A leadership transfer did not make its target the leader. Nothing was appended to the
    /// log: a retry is safe (the leadership may still have moved, which `leader()` tells).
    #[error("leadership transfer failed: {0}")]
    TransferFailed(TransferFailure),
    /// This node is no longer a member of the cluster (it was removed): it takes no calls,
    /// and keeps serving reads of the state it applied. Never applied.
    #[error("this node was removed from the cluster")]
    Removed,
    /// The encoded call is larger than one frame can carry (`frame_size_max` less the
    /// message's overhead): it was refused before it was queued. Never applied.
    #[error("the call takes {bytes} bytes encoded; at most {max} fit in a frame")]
    TooLarge {
        /// The encoded call's size.
        bytes: usize,
        /// The largest call a frame carries.
        max: usize,
    },
}

/// What a failed call may have done to the replicated state: whether retrying it can apply it
/// twice. See [`FailReason::effect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The call was never applied on any node and never will be: its method did not run, and a
    /// retry cannot apply it twice.
    None,
    /// The call was applied, on every node alike: its method ran (and panicked, or returned
    /// something that did not decode). A retry applies it again.
    Applied,
    /// Unknown: the call may have been applied, or may be applied later, on every node. A retry
    /// can apply it twice; make the method idempotent, or read the state to find out.
    Unknown,
}

impl FailReason {
    /// What the failed call may have done: [`Effect::None`] for the reasons that prove it was
    /// never applied (refused before it left this node, refused by the leader, or replaced
    /// in the log by another entry), [`Effect::Applied`] when the method ran, and
    /// [`Effect::Unknown`] when this node cannot know (`LeaderChanged` after a forward,
    /// `Timeout`, `Shutdown`, `NodeFailed`, `WouldDeadlock`).
    ///
    /// Retrying is safe, in that it cannot apply the call twice, only after `Effect::None`.
    pub fn effect(&self) -> Effect {
        match self {
            FailReason::QueueFull
            | FailReason::MissingLeader
            | FailReason::Discarded
            | FailReason::NotLeader
            | FailReason::RequestDenied
            | FailReason::VersionNotEnabled { .. }
            | FailReason::VersionRefused { .. }
            | FailReason::BadArguments(_)
            | FailReason::TooLarge { .. }
            | FailReason::MembershipRefused(_)
            | FailReason::BadAddress { .. }
            | FailReason::TransferFailed(_)
            | FailReason::Removed => Effect::None,
            FailReason::Panicked(_) | FailReason::BadResult(_) => Effect::Applied,
            FailReason::LeaderChanged
            | FailReason::Timeout
            | FailReason::Shutdown
            | FailReason::NodeFailed(_)
            | FailReason::WouldDeadlock
            | FailReason::PromotionAbandoned => Effect::Unknown,
        }
    }

    /// PySyncObj's integer code for the reasons it has (`SUCCESS` is 0), `None` for ours.
    pub fn pysyncobj_code(&self) -> Option<u8> {
        Some(match self {
            FailReason::QueueFull => 1,
            FailReason::MissingLeader => 2,
            FailReason::Discarded => 3,
            FailReason::NotLeader => 4,
            FailReason::LeaderChanged => 5,
            FailReason::RequestDenied
            | FailReason::VersionRefused { .. }
            | FailReason::MembershipRefused(_) => 6,
            _ => return None,
        })
    }
}

/// What the driver does with calls, as seen by [`Caller`] and [`Call`].
pub trait Submit: Send + Sync {
    /// Queues an encoded command. The driver completes `completion` exactly once, at once if
    /// the command cannot be queued.
    fn submit(&self, command: Bytes, completion: Completion);

    /// The code version the cluster has enabled.
    fn enabled_code_version(&self) -> u32;

    /// Called by a thread blocked in [`Call::wait`]: ticks the node for at most `max_wait` if
    /// nothing else ticks it, and says what it did.
    fn help_while_waiting(&self, max_wait: Duration) -> TickHelp;
}

/// What [`Submit::help_while_waiting`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickHelp {
    /// It ran one tick of a manually ticked node.
    Ticked,
    /// Another thread ticks the node; the caller should just wait.
    TickThreadRuns,
    /// The caller is the tick thread itself: waiting would deadlock.
    OnTickThread,
}

/// Submits calls of one replicated object of one node. Generated call surfaces hold one.
#[derive(Clone)]
pub struct Caller {
    submit: Arc<dyn Submit>,
    object: u16,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// A caller for object number `object` (0 is the main object) of the node behind `submit`.
    pub fn new(submit: Arc<dyn Submit>, object: u16) -> Caller {
        Caller { submit, object }
    }

    /// A call that has already failed with `reason`, for requests refused before submission.
    pub fn refuse<R>(&self, reason: FailReason) -> Call<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        Call::failed(&self.submit, reason)
    }

    /// Calls the highest of `versions` (ascending) that the cluster has enabled, with `args`.
    pub fn call<A, R>(&self, versions: &[MethodSpec], args: &A) -> Call<R>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned + Send + 'static,
    {
        let enabled = self.submit.enabled_code_version();
        let Some(spec) = versions.iter().rev().find(|m| m.version <= enabled) else {
            let method = versions.first().map_or("?", |m| m.name);
            return Call::failed(
                &self.submit,
                FailReason::VersionNotEnabled { method, enabled },
            );
        };
        let mut command = Vec::with_capacity(CommandHeader::LEN + 16);
        let header = CommandHeader {
            object: self.object,
            method: spec.id,
            fingerprint: spec.fingerprint,
            // The leader stamps it when it appends the command.
            stamp: 0,
        };
        header.encode(&mut command);
        if let Err(error) = rmp_serde::encode::write(&mut command, args) {
            return Call::failed(&self.submit, FailReason::BadArguments(error.to_string()));
        }
        let (completion, call) = Call::pending(&self.submit);
        // As a boxed slice (its capacity trimmed to its length), the command's bytes go back
        // and forth to a mutable buffer without an allocation: the leader writes its stamp in
        // place.
        self.submit
            .submit(Bytes::from(command.into_boxed_slice()), completion);
        call
    }
}

type Outcome = Result<Vec<u8>, FailReason>;
type Callback = Box<dyn FnOnce(Outcome) + Send>;

enum Slot {
    Waiting(Option<Waker>),
    Callback(Callback),
    /// Boxed: an outcome (48 bytes, most of them the rare failure reasons) stored inline would
    /// make every call's cell 32 bytes larger, and a burst keeps 100 000 cells alive. Only an
    /// outcome that waits for its caller (`wait`, `.await`) is stored; a callback takes it
    /// directly.
    Done(Box<Outcome>),
    Taken,
}

struct Cell {
    slot: Mutex<Slot>,
    done: Condvar,
}

impl Cell {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The driver's end of a call: complete it once with the encoded result or a reason.
///
/// Dropped without being completed (its node's loop died), it completes its call with
/// [`FailReason::NodeFailed`], so no caller waits for ever.
#[must_use = "a dropped Completion fails its call with FailReason::NodeFailed"]
pub struct Completion {
    /// `None` once completed.
    cell: Option<Arc<Cell>>,
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion").finish_non_exhaustive()
    }
}

impl Completion {
    /// Delivers the outcome: runs the callback (on this thread), wakes the future or the waiting
    /// thread, or drops it if the call was detached.
    pub fn complete(mut self, outcome: Result<Vec<u8>, FailReason>) {
        if let Some(cell) = self.cell.take() {
            settle(&cell, outcome);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            let reason = FailReason::NodeFailed("the node dropped the call".to_owned());
            settle(&cell, Err(reason));
        }
    }
}

/// Hands `outcome` to whoever waits on `cell`: runs its callback on this thread, or stores it
/// and wakes the waiting thread or future. Does nothing if the call already has an outcome.
fn settle(cell: &Cell, outcome: Outcome) {
    let mut slot = cell.lock();
    match std::mem::replace(&mut *slot, Slot::Taken) {
        Slot::Callback(callback) => {
            drop(slot);
            run_callback(callback, outcome);
        }
        Slot::Waiting(waker) => {
            *slot = Slot::Done(Box::new(outcome));
            drop(slot);
            cell.done.notify_all();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        done @ (Slot::Done(_) | Slot::Taken) => *slot = done,
    }
}

/// A replicated call in flight, returning `R`.
///
/// Finish it one of four ways: [`wait`](Self::wait) (or [`wait_timeout`](Self::wait_timeout)),
/// [`on_done`](Self::on_done), `.await`, or [`detach`](Self::detach). The command was queued when
/// the call was made; dropping the `Call` does not cancel it.
#[must_use = "a call is in flight: wait for it, await it, give it a callback, or detach it"]
pub struct Call<R> {
    cell: Arc<Cell>,
    submit: Arc<dyn Submit>,
    result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Call<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call").finish_non_exhaustive()
    }
}

impl<R: DeserializeOwned + Send + 'static> Call<R> {
    /// A call waiting for the outcome its [`Completion`] will bring: for requests the driver
    /// queues itself.
    pub(crate) fn pending(submit: &Arc<dyn Submit>) -> (Completion, Call<R>) {
        let cell = Arc::new(Cell {
            slot: Mutex::new(Slot::Waiting(None)),
            done: Condvar::new(),
        });
        let call = Call {
            cell: Arc::clone(&cell),
            submit: Arc::clone(submit),
            result: PhantomData,
        };
        (Completion { cell: Some(cell) }, call)
    }

    fn failed(submit: &Arc<dyn Submit>, reason: FailReason) -> Call<R> {
        let (completion, call) = Call::pending(submit);
        completion.complete(Err(reason));
        call
    }

    /// Blocks until the call completes. On a manually ticked node, the waiting thread ticks it.
    ///
    /// # Errors
    /// The [`FailReason`]; [`FailReason::WouldDeadlock`] when called on the tick thread.
    pub fn wait(self) -> Result<R, FailReason> {
        self.wait_until(None)
    }

    /// Blocks until the call completes or `timeout` passes.
    ///
    /// # Errors
    /// The [`FailReason`]; [`FailReason::Timeout`] if `timeout` passed first (the call may still
    /// be applied later).
    pub fn wait_timeout(self, timeout: Duration) -> Result<R, FailReason> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(self, deadline: Option<Instant>) -> Result<R, FailReason> {
        /// How long one manual tick may block while a caller waits.
        const TICK_SLICE: Duration = Duration::from_millis(10);
        loop {
            if let Some(outcome) = self.take_done() {
                return decode(outcome);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(FailReason::Timeout);
            }
            let slice = left.map_or(TICK_SLICE, |l| l.min(TICK_SLICE));
            match self.submit.help_while_waiting(slice) {
                TickHelp::Ticked => {}
                TickHelp::OnTickThread => return Err(FailReason::WouldDeadlock),
                TickHelp::TickThreadRuns => self.block(left),
            }
        }
    }

    /// Waits on the condition variable until the call is done or `left` passes.
    fn block(&self, left: Option<Duration>) {
        let slot = self.cell.lock();
        if matches!(*slot, Slot::Done(_)) {
            return;
        }
        // A poisoned lock only means a callback panicked elsewhere; the slot is still valid.
        match left {
            Some(left) => drop(self.cell.done.wait_timeout(slot, left)),
            None => drop(self.cell.done.wait(slot)),
        }
    }

    fn take_done(&self) -> Option<Outcome> {
        let mut slot = self.cell.lock();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(outcome) => Some(*outcome),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Runs `callback` with the outcome: on the tick thread when the call completes, or at once
    /// on this thread if it already has. Keep callbacks short: the node waits for them.
    pub fn on_done(self, callback: impl FnOnce(Result<R, FailReason>) + Send + 'static) {
        let mut slot = self.cell.lock();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(outcome) => {
                drop(slot);
                callback(decode(*outcome));
            }
            _ => *slot = Slot::Callback(Box::new(move |outcome| callback(decode(outcome)))),
        }
    }

    /// Lets the call go on without anyone waiting for its outcome.
    pub fn detach(self) {
        let mut slot = self.cell.lock();
        if matches!(*slot, Slot::Waiting(_)) {
            *slot = Slot::Callback(Box::new(|_| {}));
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> Future for Call<R> {
    type Output = Result<R, FailReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.cell.lock();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(outcome) => Poll::Ready(decode(*outcome)),
            Slot::Waiting(_) => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
            other => {
                *slot = other;
                Poll::Pending
            }
        }
    }
}

/// Runs a user's callback; a panic in it is logged and contained, so it cannot stop the tick
/// thread that completes calls.
fn run_callback(callback: Callback, outcome: Outcome) {
    if catch_unwind(AssertUnwindSafe(|| callback(outcome))).is_err() {
        tracing::error!("a call's on_done callback panicked; the panic was contained");
    }
}

/// Why `set_code_version(requested)` was refused, in words: the one rule it breaks.
fn version_refusal(requested: u32, own: u32, enabled: u32) -> String {
    if requested > own {
        format!("this node's code knows versions up to {own}")
    } else if requested < enabled {
        format!("the cluster enabled {enabled} already, and a code version never goes down")
    } else {
        format!("this node's code knows versions up to {own}, and the cluster enabled {enabled}")
    }
}

fn decode<R: DeserializeOwned>(outcome: Outcome) -> Result<R, FailReason> {
    let bytes = outcome?;
    rmp_serde::from_slice(&bytes).map_err(|e| FailReason::BadResult(e.to_string()))
}

/// A driver that drops every call it is handed: for tests of the call machinery alone.
#[cfg(test)]
pub(crate) struct Nowhere;

#[cfg(test)]
impl Submit for Nowhere {
    fn submit(&self, _command: Bytes, completion: Completion) {
        drop(completion);
    }

    fn enabled_code_version(&self) -> u32 {
        0
    }

    fn help_while_waiting(&self, _max_wait: Duration) -> TickHelp {
        TickHelp::TickThreadRuns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A completion dropped without an outcome fails its call rather than leave it waiting,
    /// whichever way the call is finished.
    #[test]
    fn a_dropped_completion_fails_its_call() {
        let submit: Arc<dyn Submit> = Arc::new(Nowhere);
        let (completion, call) = Call::<u8>::pending(&submit);
        drop(completion);
        assert!(matches!(call.wait(), Err(FailReason::NodeFailed(_))));
        let (completion, call) = Call::<u8>::pending(&submit);
        let (sender, outcome) = std::sync::mpsc::channel();
        call.on_done(move |o| drop(sender.send(o)));
        drop(completion);
        assert!(matches!(
            outcome.try_recv(),
            Ok(Err(FailReason::NodeFailed(_)))
        ));
        let (completion, call) = Call::<u8>::pending(&submit);
        completion.complete(Ok(rmp_serde::to_vec(&7u8).expect("a u8 encodes")));
        assert_eq!(call.wait(), Ok(7), "a completed call keeps its outcome");
    }

    /// A refusal names the rule the request breaks, not one it keeps: a transfer is no
    /// membership change, a version below the enabled one is not refused for the node's code.
    #[test]
    fn refusals_give_the_reason_that_applies() {
        let transfer = FailReason::MembershipRefused(MembershipRefusal::TargetIsLeader(
            "127.0.0.1:4321".into(),
        ));
        assert_eq!(
            transfer.to_string(),
            "refused: 127.0.0.1:4321 leads already"
        );
        let above = FailReason::VersionRefused {
            requested: 2,
            own: 1,
            enabled: 0,
        };
        assert_eq!(
            above.to_string(),
            "code version 2 refused: this node's code knows versions up to 1"
        );
        let below = FailReason::VersionRefused {
            requested: 0,
            own: 1,
            enabled: 1,
        };
        assert_eq!(
            below.to_string(),
            "code version 0 refused: the cluster enabled 1 already, and a code version never goes down"
        );
    }
}
