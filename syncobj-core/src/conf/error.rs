//! Why a configuration cannot be built: [`ConfError`], one broken rule, and [`ConfErrors`],
//! every rule a builder broke.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use thiserror::Error;

use super::FRAME_OVERHEAD_BYTES;

/// One rule a configuration breaks, naming the options and their values.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfError {
    /// The password is set and empty: leave it unset for an unauthenticated transport.
    #[error(
        "password is empty: set a non-empty password, or none for an unauthenticated transport"
    )]
    EmptyPassword,
    /// A limit or period that must be positive is zero.
    #[error("{option} must be greater than zero")]
    Zero {
        /// The option, `tcp_keepalive.count` for a keepalive field.
        option: &'static str,
    },
    /// Calls are to wait for a leader, and none may.
    #[error(
        "leaderless_calls_max is 0 while commands_wait_leader is true: no call could wait for a leader; raise leaderless_calls_max, or set commands_wait_leader to false so that such calls fail at once"
    )]
    LeaderlessCallsZero,
    /// A TCP keepalive time is under one second, which TCP cannot express.
    #[error("{option} ({value:?}) must be at least one second")]
    KeepaliveTooShort {
        /// `tcp_keepalive.idle` or `tcp_keepalive.interval`.
        option: &'static str,
        /// The configured time.
        value: Duration,
    },
    /// The minimum election timeout leaves room for three heartbeats or fewer.
    #[error(
        "raft_min_timeout ({raft_min_timeout:?}) must be more than three append_entries_periods ({append_entries_period:?} each)"
    )]
    ElectionTimeoutTooShort {
        /// The configured minimum election timeout.
        raft_min_timeout: Duration,
        /// The configured heartbeat period.
        append_entries_period: Duration,
    },
    /// The election timeout range is empty.
    #[error(
        "raft_max_timeout ({raft_max_timeout:?}) must be greater than raft_min_timeout ({raft_min_timeout:?})"
    )]
    ElectionTimeoutRange {
        /// The configured minimum.
        raft_min_timeout: Duration,
        /// The configured maximum.
        raft_max_timeout: Duration,
    },
    /// A silent connection would be dropped before an election could replace its leader.
    #[error(
        "connection_timeout ({connection_timeout:?}) must be at least raft_max_timeout ({raft_max_timeout:?})"
    )]
    ConnectionTimeoutTooShort {
        /// The configured connection timeout.
        connection_timeout: Duration,
        /// The configured maximum election timeout.
        raft_max_timeout: Duration,
    },
    /// The leader would step down between two heartbeats.
    #[error(
        "leader_fallback_timeout ({leader_fallback_timeout:?}) must be greater than append_entries_period ({append_entries_period:?})"
    )]
    FallbackTooShort {
        /// The configured fallback timeout.
        leader_fallback_timeout: Duration,
        /// The configured heartbeat period.
        append_entries_period: Duration,
    },
    /// Compaction would leave fewer than two entries in the log.
    #[error("log_compaction_min_entries ({log_compaction_min_entries}) must be at least 2")]
    CompactionMinEntriesTooSmall {
        /// The configured threshold.
        log_compaction_min_entries: u64,
    },
    /// A full batch or snapshot chunk would not fit in one frame.
    #[error(
        "frame_size_max ({frame_size_max} bytes) must hold {option} ({size} bytes) plus {overhead} bytes of message overhead",
        overhead = FRAME_OVERHEAD_BYTES
    )]
    FrameTooSmall {
        /// The configured frame limit.
        frame_size_max: usize,
        /// `append_entries_batch_size_bytes` or `log_compaction_batch_size`.
        option: &'static str,
        /// That option's value.
        size: usize,
    },
    /// Read-only nodes' frames could not hold the message around a call.
    #[error(
        "read_only_frame_size_max ({read_only_frame_size_max} bytes) must be at least {min} bytes, the message around a call",
        min = FRAME_OVERHEAD_BYTES
    )]
    ReadOnlyFrameTooSmall {
        /// The configured limit.
        read_only_frame_size_max: usize,
    },
    /// A budget of incoming bytes could not hold the largest frame it must let through beside
    /// what else it may hold: a link would wait for ever.
    #[error(
        "{option} ({bytes} bytes) must be at least {needed} bytes, to hold its largest frame beside what else it may hold"
    )]
    BudgetTooSmall {
        /// `read_only_bytes_max` (one read-only frame and its reads) or `incoming_bytes_max`
        /// (a voter's frame of `frame_size_max`, `read_only_bytes_max`, and the connections in
        /// their handshake).
        option: &'static str,
        /// The configured budget.
        bytes: usize,
        /// The least it must be.
        needed: usize,
    },
    /// The frame limit does not fit in the 32-bit length of a frame's header.
    #[error(
        "frame_size_max ({frame_size_max} bytes) must fit in 32 bits (at most {max} bytes)",
        max = u32::MAX
    )]
    FrameTooLarge {
        /// The configured frame limit.
        frame_size_max: usize,
    },
    /// More administrators' connections than a node holds at once: each may hold a reply of
    /// up to 1 MiB.
    #[error("admin_connections_max ({admin_connections_max}) must be at most {max}")]
    AdminConnectionsTooMany {
        /// The configured cap.
        admin_connections_max: usize,
        /// The largest cap accepted.
        max: usize,
    },
}

/// Every rule a configuration breaks, in the order the builder checks them: options of the
/// tick loop and the calls, of Raft, of the network, of storage. Never empty.
///
/// Dereferences to a slice of [`ConfError`]; `Display` writes one error per line. It is an
/// [`Error`](std::error::Error), so `?` passes it up from `main`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfErrors(Vec<ConfError>);

impl ConfErrors {
    /// The errors, or `None` if there are none.
    pub(super) fn from_vec(errors: Vec<ConfError>) -> Option<ConfErrors> {
        (!errors.is_empty()).then_some(ConfErrors(errors))
    }

    /// The errors, in the order they were found.
    pub fn into_vec(self) -> Vec<ConfError> {
        self.0
    }
}

impl Deref for ConfErrors {
    type Target = [ConfError];

    fn deref(&self) -> &[ConfError] {
        &self.0
    }
}

impl IntoIterator for ConfErrors {
    type Item = ConfError;
    type IntoIter = std::vec::IntoIter<ConfError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfErrors {
    type Item = &'a ConfError;
    type IntoIter = std::slice::Iter<'a, ConfError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfErrors {}

/// Adds a [`ConfError::Zero`] to `errors` for each option flagged as zero, in order.
pub(super) fn reject_zeros(errors: &mut Vec<ConfError>, is_zero: &[(&'static str, bool)]) {
    errors.extend(
        is_zero
            .iter()
            .filter(|(_, zero)| *zero)
            .map(|&(option, _)| ConfError::Zero { option }),
    );
}

#[cfg(test)]
mod tests {
    use super::{ConfError, ConfErrors};

    /// Two errors: an empty password and a zero queue.
    fn two() -> ConfErrors {
        ConfErrors::from_vec(vec![
            ConfError::EmptyPassword,
            ConfError::Zero {
                option: "commands_queue_size",
            },
        ])
        .expect("not empty")
    }

    /// No errors make no `ConfErrors`.
    #[test]
    fn empty_is_none() {
        assert_eq!(ConfErrors::from_vec(Vec::new()), None);
    }

    /// `ConfErrors` reads as a slice, iterates by value and by reference, and gives its vector
    /// back.
    #[test]
    fn reads_as_a_slice_and_iterates() {
        let errors = two();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0], ConfError::EmptyPassword);
        let mut seen = 0;
        for error in &errors {
            assert_eq!(error, &errors[seen]);
            seen += 1;
        }
        assert_eq!(seen, 2);
        let owned: Vec<ConfError> = errors.clone().into_iter().collect();
        assert_eq!(owned, errors.into_vec());
    }

    /// `Display` writes each error on its own line, and `?` turns it into a boxed error.
    #[test]
    fn displays_one_error_per_line() {
        let text = two().to_string();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                ConfError::EmptyPassword.to_string(),
                "commands_queue_size must be greater than zero".to_owned()
            ]
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = two().into();
        assert_eq!(boxed.to_string(), text);
    }
}
