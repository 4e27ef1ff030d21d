//! The node's timers: a small table whose earliest deadline is the driver's poll timeout.

use super::types::Instant;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Followers and candidates: start an election when it fires.
    Election = 0,
    /// Leaders: send heartbeats and check the quorum when it fires.
    Heartbeat = 1,
    /// Leaders handing over: abandon the leadership transfer when it fires (thesis §3.10).
    Transfer = 2,
}

const TIMER_COUNT: usize = 3;

/// Deadlines indexed by [`Timer`].
#[derive(Debug, Default)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; TIMER_COUNT],
}

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// When `timer` is due, if it is set.
    pub(crate) fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    /// Whether `timer` is set and due at `now`.
    pub(crate) fn expired(&self, timer: Timer, now: Instant) -> bool {
        self.deadlines[timer as usize].is_some_and(|at| at <= now)
    }

    /// The earliest deadline of any timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}
