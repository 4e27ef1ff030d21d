//! Skewed node clocks for driver-level runs, and the check of cluster time against them.
//!
//! Each simulated node reads its own clock: the virtual time shifted by an offset (drawn anew at
//! each start, as a restarted process's monotonic clock has its own origin) and running at a
//! rate within [`RATE_ERROR_PPM_MAX`] of the virtual one. So leaders disagree about the time,
//! and [`check_stamps`] checks that cluster time does not care: along the committed log stamps
//! never decrease, and between two commands they grow by at most the virtual time between their
//! proposals, give or take the rate error.

use std::collections::BTreeMap;

use rand::Rng;

use crate::raft::Instant;

/// The largest rate error of a node's clock, in parts per million (0.1%).
pub(crate) const RATE_ERROR_PPM_MAX: i64 = 1_000;

/// The largest offset of a node's clock from the virtual one.
const OFFSET_NANOS_MAX: u64 = 3_600 * 1_000_000_000;

/// Slack for rounding (each clock reading is within a nanosecond of exact).
const ROUNDING_NANOS: u64 = 16;

/// A node's clock: `offset + t + t * ppm / 10^6` at virtual time `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeClock {
    offset: u64,
    ppm: i64,
}

impl NodeClock {
    /// The virtual clock itself.
    pub(crate) const EXACT: NodeClock = NodeClock { offset: 0, ppm: 0 };

    /// A clock with a random offset and rate error.
    pub(crate) fn random(rng: &mut impl Rng) -> NodeClock {
        NodeClock {
            offset: rng.random_range(0..=OFFSET_NANOS_MAX),
            ppm: rng.random_range(-RATE_ERROR_PPM_MAX..=RATE_ERROR_PPM_MAX),
        }
    }

    /// What the node's clock reads at virtual time `at`.
    pub(crate) fn local(self, at: Instant) -> Instant {
        let t = i128::from(at.as_nanos());
        let drift = (t * i128::from(self.ppm)).div_euclid(1_000_000);
        let local = i128::from(self.offset) + t + drift;
        Instant::from_nanos(u64::try_from(local.max(0)).unwrap_or(u64::MAX))
    }

    /// The first virtual time at which the node's clock reads `local` or later (zero if it
    /// always does).
    pub(crate) fn virtual_time(self, local: Instant) -> Instant {
        let since_offset = i128::from(local.as_nanos()) - i128::from(self.offset);
        if since_offset <= 0 {
            return Instant::ZERO;
        }
        let rate = 1_000_000 + i128::from(self.ppm);
        let guess = (since_offset * 1_000_000 + rate - 1) / rate;
        let mut at = u64::try_from(guess).unwrap_or(u64::MAX);
        while self.local(Instant::from_nanos(at)) < local {
            at += 1;
        }
        while at > 0 && self.local(Instant::from_nanos(at - 1)) >= local {
            at -= 1;
        }
        Instant::from_nanos(at)
    }
}

/// Checks the stamps of the committed commands, in log order (`arguments` and `stamps` side by
/// side), against the virtual times their leaders proposed them at (`proposed`, by argument
/// and stamp; a command missing there is checked for order only). Returns how many commands
/// were checked against their proposal time.
///
/// # Errors
/// What went wrong, naming the two commands: a stamp below the one before it, or a stamp that
/// ran ahead of the virtual time by more than the clocks' rate error.
pub(crate) fn check_stamps(
    arguments: &[i64],
    stamps: &[u64],
    proposed: &BTreeMap<(i64, u64), Instant>,
) -> Result<u64, String> {
    if arguments.len() != stamps.len() {
        return Err(format!(
            "{} commands applied but {} stamps read",
            arguments.len(),
            stamps.len()
        ));
    }
    let mut checked = 0;
    let mut last_timed: Option<(i64, u64, Instant)> = None;
    for (i, (&argument, &stamp)) in arguments.iter().zip(stamps).enumerate() {
        if stamp == u64::MAX {
            return Err(format!("add({argument}) read no command time"));
        }
        if i > 0 && stamp < stamps[i - 1] {
            return Err(format!(
                "cluster time went back: add({argument}) stamped {stamp} after add({}) stamped {}",
                arguments[i - 1],
                stamps[i - 1]
            ));
        }
        let Some(&at) = proposed.get(&(argument, stamp)) else {
            continue;
        };
        checked += 1;
        if let Some((before, before_stamp, before_at)) = last_timed {
            let elapsed = at.saturating_duration_since(before_at).as_nanos();
            let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
            let allowed = elapsed
                .saturating_add(elapsed / (1_000_000 / RATE_ERROR_PPM_MAX as u64))
                .saturating_add(ROUNDING_NANOS);
            if stamp - before_stamp > allowed {
                return Err(format!(
                    "cluster time ran ahead: add({argument}) proposed at {at} stamped {stamp}, \
                     add({before}) proposed at {before_at} stamped {before_stamp}: {} ns of \
                     cluster time in {elapsed} ns",
                    stamp - before_stamp
                ));
            }
        }
        last_timed = Some((argument, stamp, at));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::{NodeClock, check_stamps};
    use crate::raft::Instant;

    /// `virtual_time` is the first virtual instant at which the clock reads at least `local`.
    #[test]
    fn clocks_invert_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let clock = NodeClock::random(&mut rng);
            for t in [0_u64, 1, 999, 1_000_001, 5_000_000_000, 123_456_789_012] {
                let local = clock.local(Instant::from_nanos(t));
                let back = clock.virtual_time(local);
                assert!(back <= Instant::from_nanos(t), "{clock:?} {t}");
                assert!(clock.local(back) >= local, "{clock:?} {t}");
                if back > Instant::ZERO {
                    let before = Instant::from_nanos(back.as_nanos() - 1);
                    assert!(clock.local(before) < local, "{clock:?} {t}");
                }
            }
        }
    }

    /// Stamps going back, or running ahead of the time between proposals beyond the rate
    /// error, are caught; the rate error itself is allowed.
    #[test]
    fn stamps_are_checked_against_proposals() {
        let at = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        let proposed: BTreeMap<(i64, u64), Instant> = [
            ((1, 0), at(0)),
            ((2, 1_001_000_000), at(1_000)),
            ((3, 1_001_000_000), at(5_000)),
        ]
        .into_iter()
        .collect();
        let stamps = [0, 1_001_000_000, 1_001_000_000, 1_001_000_000];
        let checked = check_stamps(&[1, 2, 3, 4], &stamps, &proposed);
        assert_eq!(checked, Ok(3));
        let too_fast = [0, 1_002_000_000];
        let proposed_fast = [((1, 0), at(0)), ((2, 1_002_000_000), at(1_000))];
        let error = check_stamps(&[1, 2], &too_fast, &proposed_fast.into_iter().collect());
        assert!(error.is_err_and(|e| e.contains("ran ahead")));
        let error = check_stamps(&[1, 2], &[5, 4], &BTreeMap::new());
        assert!(error.is_err_and(|e| e.contains("went back")));
    }
}
