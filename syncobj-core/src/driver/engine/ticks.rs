//! How long the tick loop's iterations take: the longest over the last 10 to 20 seconds, which
//! the status reports (`longest_tick_us`), so that an operator sees the loop's recent stalls
//! (a large apply batch, a slow disk, a callback that takes long) without profiling it.

use std::time::{Duration, Instant};

/// The length of one window: the status shows the longest iteration of the current window and
/// of the one before it.
const WINDOW: Duration = Duration::from_secs(10);

/// The longest iterations, per window of wall-clock time.
#[derive(Debug)]
pub(crate) struct TickDurations {
    window_start: Option<Instant>,
    current: Duration,
    previous: Duration,
}

impl TickDurations {
    pub(crate) fn new() -> TickDurations {
        TickDurations {
            window_start: None,
            current: Duration::ZERO,
            previous: Duration::ZERO,
        }
    }

    /// Records an iteration that ran from `started` until now.
    pub(crate) fn record(&mut self, started: Instant) {
        let now = Instant::now();
        let start = *self.window_start.get_or_insert(started);
        if now.duration_since(start) >= WINDOW {
            // A window with no iteration at all (a loop stalled for longer) leaves nothing.
            let skipped = now.duration_since(start) >= 2 * WINDOW;
            self.previous = if skipped {
                Duration::ZERO
            } else {
                self.current
            };
            self.current = Duration::ZERO;
            self.window_start = Some(now);
        }
        self.current = self.current.max(now.duration_since(started));
    }

    /// The longest iteration of the last 10 to 20 seconds.
    pub(crate) fn longest(&self) -> Duration {
        self.current.max(self.previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_of_the_recent_iterations_is_kept() {
        let mut ticks = TickDurations::new();
        assert_eq!(ticks.longest(), Duration::ZERO);
        let long_ago = Instant::now() - Duration::from_millis(30);
        ticks.record(long_ago);
        let first = ticks.longest();
        assert!(first >= Duration::from_millis(30), "{first:?}");
        ticks.record(Instant::now());
        assert_eq!(ticks.longest(), first, "a shorter one does not replace it");
    }
}
