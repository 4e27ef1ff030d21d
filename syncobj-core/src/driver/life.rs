//! What the tick loop shares with the threads outside it: the [`Observed`] value it publishes
//! after each iteration, the flags and signals it raises, and how the node's life ends.
//!
//! Nothing here is locked across IO: the observed value is swapped whole (`arc-swap`), flags
//! are atomics, and the two small mutexes guard a thread id and a condition variable's wait.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};

use super::admin::AdminDesk;
use super::engine::Queued;
use super::observed::Observed;
use super::queue::QueueReceiver;
use crate::object::FailReason;

/// Shared by a node's handles and its tick loop.
pub(crate) struct Signals {
    /// What the loop saw at the end of its last iteration.
    pub(crate) observed: ArcSwap<Observed>,
    /// Raised once the node has caught up with a leader the first time (PySyncObj `isReady`).
    pub(crate) ready: Flag,
    /// Raised once the transport is bound or gave up binding.
    pub(crate) bind_settled: Flag,
    /// The code version the cluster enabled, as applied here; callers read it to pick methods.
    pub(crate) code_version: AtomicU32,
    /// A snapshot was asked for (`force_log_compaction`); the loop takes it at its next turn.
    pub(crate) force_compaction: AtomicBool,
    /// Raised by `destroy`: the loop stops at its next turn.
    stopped: AtomicBool,
    /// Raised by `crash`: the loop stops at its next turn, without saving anything more.
    crashed: AtomicBool,
    /// Whether a call or change was queued and the loop woken since the loop last looked at
    /// its queues: further ones skip the wake (a syscall each), so a burst costs one.
    queue_woken: AtomicBool,
    /// Why the loop died, once it has: every later call fails with it.
    failure: OnceLock<FailReason>,
    /// The thread running an iteration now, if any: waiting for a call there would deadlock.
    ticking: Mutex<Option<ThreadId>>,
    /// The queue's receiving end, kept so that calls queued after the loop died are failed.
    queue: QueueReceiver<Queued>,
    /// Administrators' requests and answers, between the loop and the handle.
    pub(crate) admin: AdminDesk,
}

impl Signals {
    pub(crate) fn new(
        observed: Observed,
        code_version: u32,
        queue: QueueReceiver<Queued>,
    ) -> Signals {
        Signals {
            observed: ArcSwap::from_pointee(observed),
            ready: Flag::default(),
            bind_settled: Flag::default(),
            code_version: AtomicU32::new(code_version),
            force_compaction: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            queue_woken: AtomicBool::new(false),
            failure: OnceLock::new(),
            ticking: Mutex::new(None),
            queue,
            admin: AdminDesk::default(),
        }
    }

    /// The latest observed value.
    pub(crate) fn observed(&self) -> Arc<Observed> {
        self.observed.load_full()
    }

    pub(crate) fn enabled_code_version(&self) -> u32 {
        self.code_version.load(Ordering::Acquire)
    }

    /// Wakes the loop for something just queued, unless it was woken for the queues since it
    /// last looked at them ([`rearm_queue_wake`](Self::rearm_queue_wake)).
    pub(crate) fn wake_for_queue(&self, waker: &dyn syncobj_net::Wake) {
        // AcqRel: the loop's swap that reads this value sees the item queued before it.
        if !self.queue_woken.swap(true, Ordering::AcqRel) {
            waker.wake();
        }
    }

    /// The loop is about to take what its queues hold: the next item queued wakes it again.
    /// Called before the queues are read, so that an item queued after the read wakes it.
    pub(crate) fn rearm_queue_wake(&self) {
        self.queue_woken.swap(false, Ordering::AcqRel);
    }

    /// Asks the loop to stop at its next turn.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Asks the loop to stop at its next turn as a crash would: nothing more is saved.
    pub(crate) fn crash(&self) {
        self.crashed.store(true, Ordering::Release);
        self.stop();
    }

    /// Whether the node was crashed rather than stopped in order.
    pub(crate) fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::Acquire)
    }

    /// Whether the node was stopped or its loop died.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Why the loop died, if it did.
    pub(crate) fn failure(&self) -> Option<&FailReason> {
        self.failure.get()
    }

    /// The reason a call made now fails at once, if the node no longer takes calls.
    pub(crate) fn refusal(&self) -> Option<FailReason> {
        if !self.is_stopped() {
            return None;
        }
        Some(self.failure().cloned().unwrap_or(FailReason::Shutdown))
    }

    /// Records that the loop died with `reason`: the node is stopped, and every call still
    /// queued fails with it (later ones fail at submission).
    pub(crate) fn fail(&self, reason: FailReason) {
        tracing::error!(%reason, "the node's tick loop died: every pending and later call fails");
        let _ = self.failure.set(reason);
        self.stop();
        self.fail_queued();
    }

    /// Fails every call left in the queue with the reason the node stopped.
    pub(crate) fn fail_queued(&self) {
        let reason = self.refusal().unwrap_or(FailReason::Shutdown);
        for (_, completion) in self.queue.try_iter() {
            completion.complete(Err(reason.clone()));
        }
    }

    /// Marks the current thread as the one iterating, until the guard drops.
    pub(crate) fn enter_iteration(&self) -> Iterating<'_> {
        *self.ticking.lock() = Some(std::thread::current().id());
        Iterating { signals: self }
    }

    /// Whether the current thread is inside an iteration of the loop.
    pub(crate) fn on_tick_thread(&self) -> bool {
        *self.ticking.lock() == Some(std::thread::current().id())
    }
}

/// While alive, the current thread is the one iterating.
pub(crate) struct Iterating<'a> {
    signals: &'a Signals,
}

impl Drop for Iterating<'_> {
    fn drop(&mut self) {
        *self.signals.ticking.lock() = None;
    }
}

/// A flag raised once, that threads can wait for.
#[derive(Debug, Default)]
pub(crate) struct Flag {
    raised: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Flag {
    /// Raises the flag; returns whether this call raised it.
    pub(crate) fn raise(&self) -> bool {
        let _guard = self.lock.lock();
        let first = !self.raised.swap(true, Ordering::AcqRel);
        self.changed.notify_all();
        first
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Waits until the flag is raised, `deadline` passes or `gone` says the node is gone;
    /// returns whether it is raised.
    pub(crate) fn wait_until(&self, deadline: std::time::Instant, gone: impl Fn() -> bool) -> bool {
        /// How often a waiter looks whether the node is gone.
        const SLICE: std::time::Duration = std::time::Duration::from_millis(20);
        let mut guard = self.lock.lock();
        while !self.is_raised() {
            let now = std::time::Instant::now();
            if now >= deadline || gone() {
                return self.is_raised();
            }
            let _ = self
                .changed
                .wait_until(&mut guard, deadline.min(now + SLICE));
        }
        true
    }
}
