//! Admission of new connections: a token bucket bounds the accept rate, and a cap bounds the
//! accepted connections still in their handshake. Connections beyond either are reset as soon
//! as accepted and counted; past the rate, the listener also pauses (it is taken out of the
//! poller) until the next token, so that a flood costs the node one accept per token period,
//! and the kernel's backlog holds (or drops) the rest.

use std::io;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::TcpStream;

use super::connection::Stage;
use super::{LISTENER, TcpTransport, configure};
use crate::WireStats;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The pause before trying again to put the listener back in the poller, if that failed.
const LISTENER_RETRY: Duration = Duration::from_millis(100);

/// A token bucket: `per_second` tokens a second, holding at most one second's worth.
#[derive(Debug)]
pub(super) struct AcceptBucket {
    tokens: u64,
    per_second: u64,
    /// When the tokens were last counted.
    since: Instant,
}

impl AcceptBucket {
    /// A full bucket of `per_second` tokens (at least 1).
    pub(super) fn new(per_second: u32, now: Instant) -> AcceptBucket {
        let per_second = u64::from(per_second.max(1));
        AcceptBucket {
            tokens: per_second,
            per_second,
            since: now,
        }
    }

    /// Takes a token if there is one.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// Gives back a token taken for nothing.
    pub(super) fn refund(&mut self) {
        self.tokens = (self.tokens + 1).min(self.per_second);
    }

    /// When the next token comes.
    pub(super) fn next_token_at(&self) -> Instant {
        self.since + Duration::from_nanos((NANOS_PER_SECOND / u128::from(self.per_second)) as u64)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since).as_nanos();
        let earned = elapsed * u128::from(self.per_second) / NANOS_PER_SECOND;
        if earned == 0 {
            return;
        }
        let room = self.per_second - self.tokens;
        if earned >= u128::from(room) {
            self.tokens = self.per_second;
            self.since = now;
        } else {
            self.tokens += earned as u64;
            let spent = earned * NANOS_PER_SECOND / u128::from(self.per_second);
            self.since += Duration::from_nanos(spent as u64);
        }
    }
}

impl TcpTransport {
    /// Accepts what the listener holds, as far as the rate allows; past it, resets one
    /// connection and pauses the listener until the next token.
    pub(super) fn accept_all(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let admitted = self.bucket.take(now);
            match listener.accept() {
                Ok((stream, _)) if admitted => self.admit(stream, now),
                Ok((stream, _)) => {
                    reset(&stream);
                    WireStats::bump(&self.stats.accepts_rate_limited);
                    self.pause_listener();
                    return;
                }
                Err(error) => {
                    if admitted {
                        self.bucket.refund();
                    }
                    if error.kind() != io::ErrorKind::WouldBlock {
                        tracing::warn!(%error, "accept failed");
                    }
                    return;
                }
            }
        }
    }

    /// Takes an accepted connection in for its handshake, unless as many as allowed are in
    /// theirs already.
    fn admit(&mut self, stream: TcpStream, now: Instant) {
        let handshaking = self
            .connections
            .values()
            .filter(|c| c.accepted && c.stage != Stage::Open)
            .count();
        if handshaking >= self.settings.limits.unauthenticated_connections_max {
            reset(&stream);
            WireStats::bump(&self.stats.unauthenticated_over_cap);
            return;
        }
        let configured = configure(&stream, &self.settings);
        match configured.and_then(|()| self.register(stream, None, Stage::AwaitHello, now)) {
            Ok(()) => WireStats::bump(&self.stats.connections_accepted),
            Err(error) => tracing::warn!(%error, "cannot set up an accepted connection"),
        }
    }

    /// Takes the listener out of the poller until the next token.
    fn pause_listener(&mut self) {
        if let Some(listener) = &mut self.listener
            && let Err(error) = self.poll.registry().deregister(listener)
        {
            tracing::warn!(%error, "cannot pause the listener");
            return;
        }
        self.listener_paused_until = Some(self.bucket.next_token_at());
    }

    /// Puts a paused listener back in the poller once its pause is over, and accepts what
    /// waited.
    pub(super) fn resume_listener(&mut self, now: Instant) {
        match self.listener_paused_until {
            Some(until) if now >= until => {}
            _ => return,
        }
        self.listener_paused_until = None;
        if let Some(listener) = &mut self.listener
            && let Err(error) =
                self.poll
                    .registry()
                    .register(listener, LISTENER, Interest::READABLE)
        {
            tracing::warn!(%error, "cannot resume the listener; trying again");
            self.listener_paused_until = Some(now + LISTENER_RETRY);
            return;
        }
        self.accept_all(now);
    }

    /// How long the poll may wait before the listener's pause is over.
    pub(super) fn listener_wait(&self, now: Instant) -> Option<Duration> {
        self.listener_paused_until
            .map(|until| until.saturating_duration_since(now))
    }
}

/// Closes an accepted connection with a reset: nothing more to send, no `TIME_WAIT`.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::AcceptBucket;

    /// A full bucket gives one second's worth at once, then one token per period; refunds
    /// never pass the capacity.
    #[test]
    fn the_bucket_refills_at_its_rate_up_to_one_second() {
        let start = Instant::now();
        let mut bucket = AcceptBucket::new(4, start);
        for _ in 0..4 {
            assert!(bucket.take(start));
        }
        assert!(!bucket.take(start));
        assert_eq!(bucket.next_token_at(), start + Duration::from_millis(250));
        assert!(!bucket.take(start + Duration::from_millis(249)));
        assert!(bucket.take(start + Duration::from_millis(250)));
        assert!(!bucket.take(start + Duration::from_millis(499)));
        let later = start + Duration::from_secs(60);
        for _ in 0..4 {
            assert!(bucket.take(later), "a full bucket after a long pause");
        }
        assert!(!bucket.take(later), "but no more than one second's worth");
        bucket.refund();
        bucket.refund();
        bucket.refund();
        bucket.refund();
        bucket.refund();
        for _ in 0..4 {
            assert!(bucket.take(later));
        }
        assert!(!bucket.take(later));
    }
}
