//! [`Flapping`]: a cut of a [`MemoryNetwork`] applied and lifted on a schedule, from a thread of
//! its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, after, never, select};

use super::MemoryNetwork;
use super::link_faults::{DELAY_MAX, FaultError};

/// A cut that [`MemoryNetwork::flap`] applies and lifts again and again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    /// One node cut off from every other ([`MemoryNetwork::isolate`]).
    Isolate(String),
    /// One direction only ([`MemoryNetwork::block`]).
    OneWay {
        /// The sender whose frames vanish.
        from: String,
        /// Their receiver.
        to: String,
    },
    /// The nodes split into groups ([`MemoryNetwork::partition`]).
    Partition(Vec<Vec<String>>),
}

/// How a cut flaps: it stands for `down`, is lifted for `up`, and so on, starting down. A
/// period of [`DELAY_MAX`] or more lasts until the flapping stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// How long the cut stands each time.
    pub down: Duration,
    /// How long it is lifted between two.
    pub up: Duration,
}

/// A cut flapping on a [`MemoryNetwork`] ([`MemoryNetwork::flap`]), from a thread this value
/// owns. Dropping it (or [`stop`](Self::stop)) ends the thread and lifts the cut.
#[derive(Debug)]
#[must_use = "the cut stops flapping, lifted, when this is dropped"]
pub struct Flapping {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    applied: Arc<AtomicU64>,
}

impl MemoryNetwork {
    /// Applies `cut` for `schedule.down`, lifts it for `schedule.up`, and again, until the
    /// returned [`Flapping`] is dropped. The cut is applied before this returns.
    ///
    /// ```
    /// use std::time::Duration;
    /// use syncobj_core::driver::{Cut, MemoryNetwork, Schedule};
    ///
    /// let network = MemoryNetwork::new();
    /// let every = Duration::from_millis(50);
    /// let flapping = network.flap(Cut::Isolate("c".into()), Schedule { down: every, up: every })?;
    /// assert!(flapping.times_applied() >= 1);
    /// drop(flapping); // c is reachable again
    /// # Ok::<(), syncobj_core::driver::FaultError>(())
    /// ```
    ///
    /// A cut set by hand on the same nodes meanwhile is lifted with it.
    ///
    /// # Errors
    /// [`FaultError::TwoGroups`] for a partition naming a node twice;
    /// [`FaultError::Thread`] if the thread could not start. Nothing is cut then.
    pub fn flap(&self, cut: Cut, schedule: Schedule) -> Result<Flapping, FaultError> {
        if let Cut::Partition(groups) = &cut {
            // Checked now rather than on the thread.
            super::link_faults::LinkFaults::default().partition(groups.clone())?;
        }
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let applied = Arc::new(AtomicU64::new(0));
        let network = self.clone();
        let count = Arc::clone(&applied);
        let lift = cut.clone();
        apply(&network, &cut, true);
        count.fetch_add(1, Ordering::Relaxed);
        let thread = std::thread::Builder::new()
            .name("syncobj-flap".into())
            .spawn(move || {
                let mut down = true;
                loop {
                    let wait = if down { schedule.down } else { schedule.up };
                    let timer = if wait >= DELAY_MAX {
                        never()
                    } else {
                        after(wait)
                    };
                    select! {
                        recv(stopped) -> _ => break,
                        recv(timer) -> _ => {}
                    }
                    down = !down;
                    apply(&network, &cut, down);
                    if down {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                apply(&network, &cut, false);
            })
            .map_err(|error| {
                apply(self, &lift, false);
                FaultError::Thread(error.to_string())
            })?;
        Ok(Flapping {
            stop: Some(stop),
            thread: Some(thread),
            applied,
        })
    }
}

/// Applies (`down`) or lifts `cut`.
fn apply(network: &MemoryNetwork, cut: &Cut, down: bool) {
    match (cut, down) {
        (Cut::Isolate(node), true) => network.isolate(node),
        (Cut::Isolate(node), false) => network.reconnect(node),
        (Cut::OneWay { from, to }, true) => network.block(from, to),
        (Cut::OneWay { from, to }, false) => network.unblock(from, to),
        (Cut::Partition(groups), true) => {
            // Checked by `flap`.
            let _ = network.partition(groups);
        }
        (Cut::Partition(_), false) => network.change(|faults| faults.clear_partition()),
    }
}

impl Flapping {
    /// How many times the cut was applied so far.
    pub fn times_applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Ends the flapping and lifts the cut (as dropping does).
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Flapping {
    fn drop(&mut self) {
        self.end();
    }
}
