//! The budget of bytes held in incoming buffers: what each connection's read buffers hold, by
//! class, and whether its next read fits. A connection whose next read could pass the budget
//! is paused (not read: its bytes stay in the kernel, and TCP slows its sender down) until the
//! budget has room for it again.

use mio::Token;

use super::TcpTransport;
use crate::WireStats;

/// What a connection's read buffers count against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// A voter's link, or a connection this node dialled: the node-wide budget only.
    Voter,
    /// A read-only node's link: the read-only budget too.
    ReadOnly,
    /// An accepted connection in its handshake: the node-wide budget only (its frames are
    /// handshake frames, and such connections are few).
    Handshake,
}

/// Bytes held in incoming buffers, in all and by read-only links, and their maxima.
#[derive(Debug)]
pub(super) struct Holdings {
    total: usize,
    read_only: usize,
    total_max: usize,
    read_only_max: usize,
}

impl Holdings {
    /// Nothing held yet, within `total_max` in all and `read_only_max` for read-only links.
    pub(super) fn new(total_max: usize, read_only_max: usize) -> Holdings {
        Holdings {
            total: 0,
            read_only: 0,
            total_max,
            read_only_max,
        }
    }

    /// The bytes held in all.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Whether a connection of `class` that holds `held` (as counted) may grow to `after`.
    pub(super) fn allows(&self, class: Class, held: usize, after: usize) -> bool {
        let growth = after.saturating_sub(held);
        if self.total.saturating_add(growth) > self.total_max {
            return false;
        }
        class != Class::ReadOnly || self.read_only.saturating_add(growth) <= self.read_only_max
    }

    /// Records that a connection counted as `was` (class, bytes) now holds `now`.
    pub(super) fn record(&mut self, was: (Class, usize), now: (Class, usize)) {
        self.total = self.total.saturating_sub(was.1).saturating_add(now.1);
        if was.0 == Class::ReadOnly {
            self.read_only = self.read_only.saturating_sub(was.1);
        }
        if now.0 == Class::ReadOnly {
            self.read_only = self.read_only.saturating_add(now.1);
        }
    }
}

impl TcpTransport {
    /// Counts what connection `token`'s read buffers hold now, and as what.
    pub(super) fn account(&mut self, token: Token) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let now = (connection.class(), connection.input_bytes());
        let was = std::mem::replace(&mut connection.held, now);
        self.holdings.record(was, now);
    }

    /// Whether connection `token`'s next read fits the budget.
    pub(super) fn may_read(&self, token: Token) -> bool {
        self.connections.get(&token).is_none_or(|connection| {
            let after = connection.input_bytes_after_read_max();
            self.holdings
                .allows(connection.class(), connection.held.1, after)
        })
    }

    /// Stops reading connection `token` until the budget has room for its next read.
    pub(super) fn pause(&mut self, token: Token) {
        self.readable.remove(&token);
        if self.paused.insert(token) {
            WireStats::bump(&self.stats.reads_paused);
        }
    }

    /// Reads again, from the next poll on, the paused connections whose next read now fits;
    /// their silence until now does not count against them.
    pub(super) fn resume_paused(&mut self, now: std::time::Instant) {
        let fitting: Vec<Token> = self
            .paused
            .iter()
            .copied()
            .filter(|&token| self.may_read(token))
            .collect();
        for token in fitting {
            self.paused.remove(&token);
            self.readable.insert(token);
            if let Some(connection) = self.connections.get_mut(&token) {
                connection.last_read = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Class, Holdings};

    /// Growth is checked against the node-wide budget, and a read-only link's against the
    /// read-only budget too; recording moves bytes between classes.
    #[test]
    fn holdings_check_both_budgets() {
        let mut holdings = Holdings::new(100, 30);
        assert!(holdings.allows(Class::Voter, 0, 100));
        assert!(!holdings.allows(Class::Voter, 0, 101));
        assert!(holdings.allows(Class::ReadOnly, 0, 30));
        assert!(!holdings.allows(Class::ReadOnly, 0, 31));
        holdings.record((Class::Handshake, 0), (Class::Handshake, 10));
        holdings.record((Class::Handshake, 10), (Class::ReadOnly, 20));
        assert_eq!(holdings.total(), 20);
        assert!(holdings.allows(Class::ReadOnly, 20, 30));
        assert!(
            !holdings.allows(Class::ReadOnly, 0, 11),
            "the read-only budget is shared"
        );
        assert!(holdings.allows(Class::Voter, 0, 80));
        assert!(!holdings.allows(Class::Voter, 0, 81));
        holdings.record((Class::ReadOnly, 20), (Class::ReadOnly, 0));
        assert_eq!(holdings.total(), 0);
        assert!(holdings.allows(Class::ReadOnly, 0, 30));
    }
}
