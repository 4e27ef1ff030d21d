//! Who runs the tick loop, and what happens when it dies.
//!
//! With `auto_tick` a thread named `syncobj-tick` owns the engine and loops on it; otherwise
//! the engine waits in a slot that whoever calls `do_tick` (or waits for a call on a manually
//! ticked node) takes for one iteration. Either way each iteration runs under
//! [`iterate_guarded`]: a panic inside the loop marks the node failed, fails every pending
//! call with [`FailReason::NodeFailed`], and the engine is dropped; every later call fails at
//! once with the same reason.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use parking_lot::Mutex;

use super::engine::Engine;
use super::life::Signals;
use super::objects::panic_text;
use crate::object::FailReason;
use crate::raft::Instant;

/// The node's clock: time since it started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    started: StdInstant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            started: StdInstant::now(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Runs one iteration of `engine`, containing a panic: then the node is marked failed, its
/// calls fail, and `false` says the engine must be dropped.
pub(crate) fn iterate_guarded(
    engine: &mut Engine,
    signals: &Signals,
    max_wait: Duration,
    clock: Clock,
) -> bool {
    let _iterating = signals.enter_iteration();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        engine.iterate(max_wait, &|| clock.now());
    }));
    match outcome {
        Ok(()) => true,
        Err(panic) => {
            let reason = FailReason::NodeFailed(panic_text(panic.as_ref()));
            signals.fail(reason.clone());
            // The engine may be broken; what it still holds fails on drop if this panics too.
            let _ = catch_unwind(AssertUnwindSafe(|| engine.abandon(&reason)));
            false
        }
    }
}

/// Stops `engine` for good: the final journal sync (none if the node was crashed), and every
/// call still held fails with [`FailReason::Shutdown`]. The engine, its transport with it, is
/// dropped when this returns.
pub(crate) fn stop(mut engine: Engine, signals: &Signals) {
    signals.stop();
    let stopped = catch_unwind(AssertUnwindSafe(|| match signals.is_crashed() {
        true => engine.crash(),
        false => engine.stop(),
    }));
    if let Err(panic) = stopped {
        signals.fail(FailReason::NodeFailed(panic_text(panic.as_ref())));
    }
    signals.fail_queued();
}

/// Starts the auto-tick thread, which owns `engine` until the node stops or the loop dies.
pub(crate) fn spawn(
    engine: Engine,
    signals: Arc<Signals>,
    period: Duration,
    clock: Clock,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("syncobj-tick".into())
        .spawn(move || {
            let mut engine = engine;
            while !signals.is_stopped() {
                if !iterate_guarded(&mut engine, &signals, period, clock) {
                    return;
                }
            }
            stop(engine, &signals);
        })
}

/// The engine of a manually ticked node, taken for one iteration at a time.
pub(crate) struct ManualSlot {
    engine: Mutex<Option<Engine>>,
}

/// Why [`ManualSlot::tick`] did not tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotTicked {
    /// Another thread is ticking.
    Busy,
    /// The node stopped, or its loop died.
    Gone,
}

impl ManualSlot {
    pub(crate) fn new(engine: Option<Engine>) -> ManualSlot {
        ManualSlot {
            engine: Mutex::new(engine),
        }
    }

    /// Runs one iteration, waiting for the slot if `block`, else only if it is free.
    pub(crate) fn tick(
        &self,
        signals: &Signals,
        max_wait: Duration,
        clock: Clock,
        block: bool,
    ) -> Result<(), NotTicked> {
        let mut slot = match block {
            true => self.engine.lock(),
            false => self.engine.try_lock().ok_or(NotTicked::Busy)?,
        };
        if signals.is_stopped() {
            if let Some(engine) = slot.take() {
                stop(engine, signals);
            }
            return Err(NotTicked::Gone);
        }
        let Some(engine) = slot.as_mut() else {
            return Err(NotTicked::Gone);
        };
        if !iterate_guarded(engine, signals, max_wait, clock) {
            let broken = slot.take();
            drop(slot);
            drop(broken);
            return Err(NotTicked::Gone);
        }
        Ok(())
    }

    /// Stops the engine, if it is still here: waits for an iteration in progress to end.
    pub(crate) fn stop(&self, signals: &Signals) {
        let engine = self.engine.lock().take();
        if let Some(engine) = engine {
            stop(engine, signals);
        }
    }
}
