//! Replicated locks with auto-unlock: [`LockTable`], the replicated state, and
//! [`ReplLockManager`], the client handle that acquires, holds and releases locks in it
//! (PySyncObj's `ReplLockManager`).
//!
//! A client acquires a lock by name. It holds the lock until it releases it, or until
//! `auto_unlock_time` passes without a refresh: the manager's background thread refreshes
//! (prolongates) every lock of its client each `auto_unlock_time / 4` while a leader is
//! known, so a live, connected holder keeps its locks and a dead or cut-off one loses them.
//!
//! ```
//! use std::time::Duration;
//! use syncobj::batteries::{LockTable, ReplLockManager};
//! use syncobj::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MemoryNetwork::new();
//! let table = LockTable::new(Duration::from_secs(30));
//! let node = SyncObj::builder("solo").memory(&network).start(table)?;
//! let wait = Duration::from_secs(10);
//!
//! let alice = ReplLockManager::new(node.handle(), Some("alice".into()))?;
//! let bob = ReplLockManager::new(node.handle(), Some("bob".into()))?;
//! assert!(alice.try_acquire("printer").wait_timeout(wait)?);
//! assert!(alice.is_acquired("printer"));
//! assert!(!bob.try_acquire("printer").wait_timeout(wait)?, "alice holds it");
//! assert!(alice.release("printer").wait_timeout(wait)?);
//! assert!(bob.try_acquire("printer").wait_timeout(wait)?);
//! assert_eq!(node.read().holder("printer"), Some("bob"));
//! # Ok(())
//! # }
//! ```
//!
//! # Time
//!
//! PySyncObj stamps each acquire and prolongation with the client's wall clock and compares
//! stamps of different clients: a client whose clock runs ahead sees everyone's locks expired,
//! so skew between clients hands one lock to two holders. Here the table judges expiry on
//! cluster time ([`command_time`](crate::command_time)): the time the leader stamps on each
//! command when it appends it, the same on every node, which never decreases along the log and
//! between two commands advances by no more than the leaders' clocks measured between their
//! appends (time without a leader does not count). Offsets between clocks do not matter at
//! all; only clock *rates* do. The client judges its own holding on its own monotonic clock,
//! measured from before it sent the command, less a margin for rates.
//!
//! # The holding rule
//!
//! Write `T` for `auto_unlock_time` and `m` for the [margin](ReplLockManager::margin),
//! `T / 50`. The table records, for each held lock, its holder, the cluster time of its last
//! refresh, and a *token*: each acquire carries a number from its client's counter, which only
//! grows, and a holder's run of holding keeps the largest token it was acquired with. A lock
//! whose last refresh is at least `T` older than the current command's stamp is free.
//!
//! A manager (client `A`) reads its monotonic clock, `sent`, right before it sends each
//! acquire or prolongation. `A` *holds* lock `L` from the moment the successful reply of an
//! acquire reaches it, until its clock reads `sent + T - m` of the latest successful acquire or
//! prolongation whose reply covered `L`, or until `A` sends a release of `L`, whichever comes
//! first; a holding that ran out is over (acquire again). Precisely, `A` keeps for `L` the
//! token `k` of the acquire that started the holding, and:
//!
//! - an acquire's success starts or extends the holding only if `A` sent no release of `L`
//!   after sending the acquire, and (to extend) its token is at least `k`;
//! - a prolongation extends it only if the table reported, with `L`, a token at least `k`;
//! - a release carries `A`'s counter as it is when sent (at least the token of every acquire
//!   sent before it, below that of every acquire sent after); the table frees `L` only if `A`
//!   holds it with a token at most that.
//!
//! [`is_acquired`](ReplLockManager::is_acquired) tells whether `A` holds `L` now.
//!
//! # The guarantee
//!
//! **Two clients never hold one lock at the same real time**, provided cluster time never
//! runs faster than real time and each client's clock runs at least `1 - m/T` as fast as real
//! time. (With drifting clocks: if the leaders' clocks run at most a fraction `a` fast and the
//! clients' at most `b` slow, `a + b` below about `m/T`, 2 %, is enough; ordinary clocks drift
//! by well under 0.1 %.)
//!
//! Proof. Suppose `A` holds `L` at real time `t` thanks to command `W` (an acquire or a
//! prolongation) and `B ≠ A` holds it at `t` thanks to `V`. Let `w` and `v` be their entries in
//! the log, `c(·)` cluster time and `r(·)` the real time at which the leader stamped an entry.
//! The leader stamps an entry after it received the command, so `r(w) ≥ sent(W)`; `B`
//! receives `V`'s reply once `v` is applied, so `B` holds from no earlier than `r(v)`; and `A`'s holding from `W` ends by the real time at which `A`'s clock reads
//! `sent(W) + T - m`, which is at most `sent(W) + T` by the rate assumption. So
//! `r(v) ≤ t < sent(W) + T ≤ r(w) + T`, and likewise `r(w) < r(v) + T`. Say `w` comes before
//! `v` in the log (the other case is symmetric). After `w`, the table records `A` as `L`'s
//! holder with a token at least `k` (the token of `A`'s holding, by the two extension rules:
//! an acquire's run keeps the largest token, and a prolongation reported it). At `v` the table
//! records `B`. So between `w` and `v` an entry `z` ended `A`'s run, in one of two ways:
//!
//! 1. Expiry: `c(z)` is at least `T` past `A`'s last refresh, which is at least `c(w)`. Cluster
//!    time never decreases, so `c(v) - c(w) ≥ T`, and since it never runs faster than real
//!    time, `r(v) - r(w) ≥ T`: a contradiction.
//! 2. A release `R` from `A` whose token is at least the run's, so at least `k`: `R` was sent
//!    after the acquire that started `A`'s holding. If before that acquire's reply, the reply
//!    started nothing; so `R` was sent during the holding and ended it: `t < sent(R)`. But
//!    `sent(R) ≤ r(z) ≤ r(v) ≤ t`: a contradiction.
//!
//! Nothing in the proof orders `A`'s own commands: a release or an acquire applied long after
//! it was sent (a delayed frame, a retried forward) cannot make two holders. That is what the
//! tokens are for: without them, a release sent before an acquire but applied after it would
//! free a lock its client believes it holds.
//!
//! # Leader changes, restarts, partitions
//!
//! - A **leader change** does not shorten any lock: time with no leader does not count, and
//!   the new leader's cluster time goes on from the last stamp of its log. Locks last longer
//!   in real time than `T` by the length of the election, never shorter. The manager does not
//!   prolongate while no leader is known; its holdings run out on its clock meanwhile, so a
//!   long election can end a holding that the table still records (the manager then releases
//!   the table's record at its next prolongation).
//! - A **full cluster restart** keeps the table (log and snapshots carry it, with each lock's
//!   stamp and the last cluster time), and cluster time resumes where the log left it: the
//!   down time does not count, so no lock expires during it. The clients, if they lived
//!   through it, stopped holding at `sent + T - m` anyway, and may have to acquire again.
//! - A **partitioned holder** cannot prolongate: it stops holding on its own clock at
//!   `sent + T - m` of its last successful refresh, and the majority side frees the lock no
//!   earlier than `T` of cluster time after that refresh's stamp, so never before.
//! - A **dead holder** (process gone) holds nothing; its locks are free `T` after their last
//!   refresh.
//!
//! # What is not guaranteed
//!
//! - The guarantee is about holding as defined above, on the client's clock. A client that
//!   acts on a lock must check [`is_acquired`](ReplLockManager::is_acquired) right before each
//!   action; a thread paused longer than what is left of the holding (a GC pause, a swapped-out
//!   process, a stopped VM) may act after its holding ended. Fencing (a resource that refuses
//!   a stale holder's writes by a token) is out of scope.
//! - The rate assumptions above: a clock whose rate is off by more than about 2 % breaks it.
//! - Liveness: an acquire may fail (no leader, time-out) and a holding may end early; a
//!   failed release leaves the lock held in the table until it expires.
//! - [`LockTable::holder`] and the other readers are local reads of this node's copy, judged
//!   at the cluster time of the last command it applied: they may lag.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Call, Consumer, FailReason, Replicated, replicated};

/// The most expired locks one command drops, so that no command's work grows with the table.
const EXPIRED_DROP_MAX: usize = 16;

/// The replicated state of the locks: who holds which lock, since when (cluster time), with
/// which token. PySyncObj's `_ReplLockManagerImpl`; use it through a [`ReplLockManager`], as a
/// node's main object or as one of its consumers.
///
/// Its replicated methods (called through a node or consumer handle, as
/// `handle.acquire(lock, client, token)`) are the manager's protocol, documented in the
/// [module docs](self); its local methods read this node's copy, judging expiry at the
/// cluster time of the last command the table applied.
///
/// Each replicated command also drops up to 16 locks that expired (oldest first), so the
/// table does not keep the locks of clients that went away, and no command's work grows with
/// the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Replicated)]
pub struct LockTable {
    /// How long a lock stays held without a refresh, in cluster time.
    auto_unlock_time: Duration,
    /// The cluster time of the last command applied to the table.
    now: Duration,
    /// Every recorded lock, expired or not, by name.
    locks: BTreeMap<String, Holding>,
    /// `(client, lock)` for every recorded lock: a client's locks without a scan.
    by_client: BTreeSet<(String, String)>,
    /// `(last refresh, lock)` for every recorded lock: the expired ones first.
    by_refresh: BTreeSet<(Duration, String)>,
}

/// A recorded lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Holding {
    client: String,
    /// The cluster time of the last acquire or prolongation.
    refreshed: Duration,
    /// The largest token of the acquires of this run of holding.
    token: u64,
}

impl LockTable {
    /// An empty table whose locks expire `auto_unlock_time` (cluster time) after their last
    /// refresh. Every node must create it with the same time; it is part of the replicated
    /// state from then on (snapshots carry it).
    pub fn new(auto_unlock_time: Duration) -> LockTable {
        LockTable {
            auto_unlock_time,
            now: Duration::ZERO,
            locks: BTreeMap::new(),
            by_client: BTreeSet::new(),
            by_refresh: BTreeSet::new(),
        }
    }

    /// How long a lock stays held without a refresh.
    pub fn auto_unlock_time(&self) -> Duration {
        self.auto_unlock_time
    }

    /// The cluster time of the last command this node applied to the table.
    pub fn cluster_time(&self) -> Duration {
        self.now
    }

    /// The client holding `lock_id`, as of the last command this node applied (a local read).
    pub fn holder(&self, lock_id: &str) -> Option<&str> {
        self.locks
            .get(lock_id)
            .filter(|h| !self.expired(h))
            .map(|h| h.client.as_str())
    }

    /// The locks `client_id` holds, in name order, as of the last command applied.
    pub fn locks_of<'a>(&'a self, client_id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.client_locks(client_id)
            .filter(move |lock| self.holder(lock) == Some(client_id))
    }

    /// Every held lock and its holder, in name order, as of the last command applied.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.locks
            .iter()
            .filter(|(_, h)| !self.expired(h))
            .map(|(lock, h)| (lock.as_str(), h.client.as_str()))
    }

    /// How many locks are held, as of the last command applied.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no lock is held, as of the last command applied.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    fn expired(&self, holding: &Holding) -> bool {
        self.now.saturating_sub(holding.refreshed) >= self.auto_unlock_time
    }

    fn client_locks<'a>(&'a self, client_id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.by_client
            .range((client_id.to_owned(), String::new())..)
            .take_while(move |(client, _)| client == client_id)
            .map(|(_, lock)| lock.as_str())
    }

    /// Moves the table's clock to `stamp` (never back) and drops a bounded number of expired
    /// locks.
    fn advance(&mut self, stamp: Option<Duration>) {
        // Outside a replicated method (never, through the log) time stands still: a lock
        // never expires early for lack of a stamp.
        self.now = self.now.max(stamp.unwrap_or(self.now));
        for _ in 0..EXPIRED_DROP_MAX {
            let Some((refreshed, lock)) = self.by_refresh.first().cloned() else {
                break;
            };
            if self.now.saturating_sub(refreshed) < self.auto_unlock_time {
                break;
            }
            self.remove(&lock);
        }
    }

    fn remove(&mut self, lock_id: &str) -> Option<Holding> {
        let holding = self.locks.remove(lock_id)?;
        self.by_client
            .remove(&(holding.client.clone(), lock_id.to_owned()));
        self.by_refresh
            .remove(&(holding.refreshed, lock_id.to_owned()));
        Some(holding)
    }

    fn insert(&mut self, lock_id: String, holding: Holding) {
        self.by_client
            .insert((holding.client.clone(), lock_id.clone()));
        self.by_refresh.insert((holding.refreshed, lock_id.clone()));
        self.locks.insert(lock_id, holding);
    }

    /// `acquire` at cluster time `stamp`.
    fn acquire_at(
        &mut self,
        stamp: Option<Duration>,
        lock_id: String,
        client_id: String,
        token: u64,
    ) -> bool {
        self.advance(stamp);
        let current = self.locks.get(&lock_id).filter(|h| !self.expired(h));
        let token = match current {
            Some(h) if h.client != client_id => return false,
            Some(h) => h.token.max(token),
            None => token,
        };
        self.remove(&lock_id);
        let holding = Holding {
            client: client_id,
            refreshed: self.now,
            token,
        };
        self.insert(lock_id, holding);
        true
    }

    /// `prolongate` at cluster time `stamp`.
    fn prolongate_at(&mut self, stamp: Option<Duration>, client_id: String) -> Vec<(String, u64)> {
        self.advance(stamp);
        let mine: Vec<String> = self.client_locks(&client_id).map(str::to_owned).collect();
        let mut refreshed = Vec::with_capacity(mine.len());
        for lock in mine {
            let Some(mut holding) = self.remove(&lock) else {
                continue;
            };
            if self.expired(&holding) {
                continue; // dropped: the client's run ended
            }
            holding.refreshed = self.now;
            refreshed.push((lock.clone(), holding.token));
            self.insert(lock, holding);
        }
        refreshed
    }

    /// `release` at cluster time `stamp`.
    fn release_at(
        &mut self,
        stamp: Option<Duration>,
        lock_id: String,
        client_id: String,
        token: u64,
    ) -> bool {
        self.advance(stamp);
        let Some(holding) = self.locks.get(&lock_id) else {
            return false;
        };
        if holding.client != client_id {
            return false;
        }
        let held = !self.expired(holding);
        if held && holding.token > token {
            return false; // a release sent before the acquire of this run
        }
        self.remove(&lock_id);
        held
    }
}

#[replicated]
impl LockTable {
    /// Acquires `lock_id` for `client_id` if it is free (never held, released, or expired) or
    /// already held by `client_id`; returns whether `client_id` holds it now. A success
    /// refreshes the lock at the command's cluster time; `token` is the client's counter (see
    /// the [module docs](self)): a run of holding keeps the largest token it was acquired with.
    #[replicated]
    pub fn acquire(&mut self, lock_id: String, client_id: String, token: u64) -> bool {
        self.acquire_at(crate::command_time(), lock_id, client_id, token)
    }

    /// Refreshes every lock `client_id` holds at the command's cluster time, and returns them
    /// with their tokens, in name order. The client's locks that expired are dropped, not
    /// refreshed. PySyncObj's `prolongate`.
    #[replicated]
    pub fn prolongate(&mut self, client_id: String) -> Vec<(String, u64)> {
        self.prolongate_at(crate::command_time(), client_id)
    }

    /// Frees `lock_id` if `client_id` holds it with a token at most `token` (a release sent
    /// before the acquire of the current holding does nothing); returns whether it freed it.
    #[replicated]
    pub fn release(&mut self, lock_id: String, client_id: String, token: u64) -> bool {
        self.release_at(crate::command_time(), lock_id, client_id, token)
    }
}

/// What a manager knows of its own holdings.
#[derive(Debug, Default)]
struct Holdings {
    /// The last token given out: acquires take the next one, releases carry it as it is.
    counter: u64,
    /// The locks held (or thought held until `until`), by name.
    held: BTreeMap<String, Held>,
    /// The acquires in flight by token: their lock, and whether a release of it was sent
    /// since (their success then starts nothing).
    in_flight: BTreeMap<u64, (String, bool)>,
}

/// One holding.
#[derive(Clone, Copy, Debug)]
struct Held {
    /// The token of the acquire that started it.
    token: u64,
    /// When it ends on this client's clock.
    until: Instant,
}

impl Holdings {
    /// Takes note of a successful acquire of `lock` with `token`, sent at `sent`, whose reply
    /// arrived at `now`; returns whether the lock is held now.
    fn acquired(&mut self, lock: &str, token: u64, until: Instant, now: Instant) -> bool {
        let voided = self.in_flight.remove(&token).is_none_or(|(_, void)| void);
        if voided {
            return false;
        }
        self.extend(lock, token, token, until, now)
    }

    /// Extends (or starts, with `start_token`) the holding of `lock` to `until` on the table's
    /// word that it holds it with `table_token`. Returns whether it is held now.
    fn extend(
        &mut self,
        lock: &str,
        start_token: u64,
        table_token: u64,
        until: Instant,
        now: Instant,
    ) -> bool {
        self.forget_lapsed(lock, now);
        match self.held.get_mut(lock) {
            Some(held) if table_token >= held.token => held.until = held.until.max(until),
            Some(_) => {}
            None if start_token > 0 && now < until => {
                let held = Held {
                    token: start_token,
                    until,
                };
                self.held.insert(lock.to_owned(), held);
            }
            None => {}
        }
        self.is_held(lock, now)
    }

    /// Drops the holding of `lock` if it ran out.
    fn forget_lapsed(&mut self, lock: &str, now: Instant) {
        if self.held.get(lock).is_some_and(|h| now >= h.until) {
            self.held.remove(lock);
        }
    }

    fn is_held(&self, lock: &str, now: Instant) -> bool {
        self.held.get(lock).is_some_and(|h| now < h.until)
    }

    /// Ends the holding of `lock`, voids the acquires of it in flight, and returns the token
    /// the release carries.
    fn release(&mut self, lock: &str) -> u64 {
        self.held.remove(lock);
        for (_, (l, void)) in self.in_flight.iter_mut() {
            if l == lock {
                *void = true;
            }
        }
        self.counter
    }
}

/// A client of a [`LockTable`]: acquires, holds and releases locks by name, and keeps them
/// with a background thread (PySyncObj's `ReplLockManager(autoUnlockTime, selfID)`).
///
/// The holding rule, the guarantee it gives and what it does not cover are in the
/// [module docs](self). In short: [`is_acquired`](Self::is_acquired) is true from the
/// successful reply of [`try_acquire`](Self::try_acquire) until the lock is released, or until
/// `auto_unlock_time - margin` after the last successful refresh was *sent*, on this process's
/// monotonic clock; no two managers are ever both holding one lock.
///
/// The background thread sends a prolongation of every lock of this client each
/// `auto_unlock_time / 4` while the node knows a leader. It stops when the manager is dropped,
/// and within 100 ms of its node stopping (it looks at the node each time it wakes, and it
/// wakes at least that often; it never spins). Dropping the manager does not release its
/// locks: they expire.
pub struct ReplLockManager {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

/// What the manager and its thread share.
struct Inner {
    table: Consumer<LockTable>,
    self_id: String,
    auto_unlock_time: Duration,
    holdings: Mutex<Holdings>,
    /// Raised (and the condition variable notified) when the manager is dropped.
    closing: Mutex<bool>,
    wake: Condvar,
}

/// How often the background thread looks whether its node stopped, at least.
const STOP_CHECK: Duration = Duration::from_millis(100);

impl ReplLockManager {
    /// A manager of the locks of `table` (a node's [`handle`](crate::SyncObj::handle) or
    /// [`consumer`](crate::SyncObj::consumer) holding a [`LockTable`]) for the client
    /// `self_id`, by default `<hostname>:<pid>:<number>` (a number per manager of the
    /// process). Starts the background thread.
    ///
    /// Two managers must never share an id: they would hold each other's locks. A process
    /// that restarts with the same id may find its previous incarnation's locks held in its
    /// name; it does not count them as its own (it never acquired them), and releases them at
    /// its first prolongation.
    ///
    /// # Errors
    /// The operating system's error when it refuses the thread.
    pub fn new(
        table: Consumer<LockTable>,
        self_id: Option<String>,
    ) -> std::io::Result<ReplLockManager> {
        let auto_unlock_time = table.read().auto_unlock_time();
        // Tokens start at the wall clock in nanoseconds, so that a restarted process reusing
        // its id starts above its previous incarnation (a clock set back only delays the
        // release of such leftovers).
        let counter = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2));
        let inner = Arc::new(Inner {
            table,
            self_id: self_id.unwrap_or_else(default_id),
            auto_unlock_time,
            holdings: Mutex::new(Holdings {
                counter,
                ..Holdings::default()
            }),
            closing: Mutex::new(false),
            wake: Condvar::new(),
        });
        let weak = Arc::downgrade(&inner);
        let thread = std::thread::Builder::new()
            .name("syncobj-locks".into())
            .spawn(move || prolongation_loop(&weak))?;
        Ok(ReplLockManager {
            inner,
            thread: Some(thread),
        })
    }

    /// This client's id in the table.
    pub fn id(&self) -> &str {
        &self.inner.self_id
    }

    /// How much earlier than `auto_unlock_time` after sending a refresh the manager stops
    /// counting on it: `auto_unlock_time / 50`, covering clock rates off by up to 2 %
    /// between this client and the leaders.
    pub fn margin(&self) -> Duration {
        margin(self.inner.auto_unlock_time)
    }

    /// Tries to acquire `lock_id` (PySyncObj `tryAcquire`): the call yields `true` if this
    /// client holds the lock when the reply arrives, `false` if another client holds it (or
    /// the reply came too late to leave any time to hold it: then the manager releases it).
    /// Finish it like any [`Call`]: wait, callback, `.await`, or detach; the manager takes
    /// note of the outcome however it is finished, even if the handle is dropped.
    pub fn try_acquire(&self, lock_id: &str) -> TryAcquire {
        let token = {
            let mut holdings = self.inner.lock();
            holdings.counter += 1;
            let token = holdings.counter;
            holdings
                .in_flight
                .insert(token, (lock_id.to_owned(), false));
            token
        };
        let sent = Instant::now();
        let call = self
            .inner
            .table
            .acquire(lock_id.to_owned(), self.inner.self_id.clone(), token);
        let weak = Arc::downgrade(&self.inner);
        let lock = lock_id.to_owned();
        let settle = move |outcome: Result<bool, FailReason>| {
            let Some(inner) = weak.upgrade() else {
                return outcome.map(|_| false);
            };
            inner.acquire_settled(&lock, token, sent, outcome)
        };
        TryAcquire {
            call: Some(call),
            settle: Some(Box::new(settle)),
        }
    }

    /// Whether this client holds `lock_id` now, by the holding rule (a local check, no
    /// message). Check it right before each action taken under the lock.
    pub fn is_acquired(&self, lock_id: &str) -> bool {
        let mut holdings = self.inner.lock();
        let now = Instant::now();
        holdings.forget_lapsed(lock_id, now);
        holdings.is_held(lock_id, now)
    }

    /// Releases `lock_id` (PySyncObj `release`): this client stops holding it at once, and
    /// the call yields whether the table freed it (`false` if this client did not hold it
    /// there). If the call fails, the lock stays held in the table until it expires (the
    /// manager stops prolongating it, and releases it again at its next prolongation).
    pub fn release(&self, lock_id: &str) -> Call<bool> {
        let token = self.inner.lock().release(lock_id);
        self.inner
            .table
            .release(lock_id.to_owned(), self.inner.self_id.clone(), token)
    }
}

impl Drop for ReplLockManager {
    fn drop(&mut self) {
        *self
            .inner
            .closing
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.inner.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread never waits for a call, so it ends promptly; a panic there was
            // reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for ReplLockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplLockManager")
            .field("id", &self.inner.self_id)
            .field("auto_unlock_time", &self.inner.auto_unlock_time)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Holdings> {
        self.holdings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When a holding backed by a command sent at `sent` ends on this client's clock:
    /// `auto_unlock_time - margin` later.
    fn holding_until(&self, sent: Instant) -> Instant {
        sent + self
            .auto_unlock_time
            .saturating_sub(margin(self.auto_unlock_time))
    }

    /// Takes note of an acquire's outcome; returns what the caller sees.
    fn acquire_settled(
        &self,
        lock: &str,
        token: u64,
        sent: Instant,
        outcome: Result<bool, FailReason>,
    ) -> Result<bool, FailReason> {
        let until = self.holding_until(sent);
        let now = Instant::now();
        let mut holdings = self.lock();
        let acquired = match outcome {
            Ok(true) => holdings.acquired(lock, token, until, now),
            other => {
                holdings.in_flight.remove(&token);
                return other;
            }
        };
        if !acquired && !holdings.is_held(lock, now) {
            // Acquired in the table, but too late (or released meanwhile): free it for others.
            let token = holdings.release(lock);
            drop(holdings);
            self.table
                .release(lock.to_owned(), self.self_id.clone(), token)
                .detach();
        }
        Ok(acquired)
    }

    /// Sends one prolongation; its reply extends the holdings it covers.
    fn prolongate(self: &Arc<Self>) {
        let sent = Instant::now();
        let weak = Arc::downgrade(self);
        self.table
            .prolongate(self.self_id.clone())
            .on_done(move |outcome| {
                if let (Some(inner), Ok(locks)) = (weak.upgrade(), outcome) {
                    inner.prolongated(sent, &locks);
                }
            });
    }

    /// Takes note of a prolongation's reply: extends the holdings it covers, and releases the
    /// locks the table holds in this client's name that it does not hold (nor is acquiring).
    fn prolongated(&self, sent: Instant, locks: &[(String, u64)]) {
        let until = self.holding_until(sent);
        let now = Instant::now();
        let mut stray = Vec::new();
        {
            let mut holdings = self.lock();
            for (lock, table_token) in locks {
                let acquiring = holdings.in_flight.values().any(|(l, _)| l == lock);
                if !holdings.extend(lock, 0, *table_token, until, now) && !acquiring {
                    stray.push((lock.clone(), holdings.release(lock)));
                }
            }
        }
        for (lock, token) in stray {
            self.table
                .release(lock, self.self_id.clone(), token)
                .detach();
        }
    }
}

/// The background thread: a prolongation every `auto_unlock_time / 4` while a leader is
/// known, until the manager is dropped or the node stops.
fn prolongation_loop(inner: &Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(inner) => (inner.auto_unlock_time / 4).max(Duration::from_millis(1)),
        None => return,
    };
    let mut next = Instant::now() + period;
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.table.is_stopped() {
            return;
        }
        let now = Instant::now();
        if now >= next {
            if inner.table.leader().is_some() {
                inner.prolongate();
            }
            next = now + period;
        }
        let closing = inner.closing.lock().unwrap_or_else(PoisonError::into_inner);
        if *closing {
            return;
        }
        let wait = next.saturating_duration_since(now).min(STOP_CHECK);
        let (closing, _) = inner
            .wake
            .wait_timeout(closing, wait)
            .unwrap_or_else(PoisonError::into_inner);
        if *closing {
            return;
        }
    }
}

/// The margin for a given auto-unlock time.
fn margin(auto_unlock_time: Duration) -> Duration {
    auto_unlock_time / 50
}

/// `<hostname>:<pid>:<number>`, a number per manager of this process.
fn default_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{host}:{}:{number}", std::process::id())
}

type Settle = Box<dyn FnOnce(Result<bool, FailReason>) -> Result<bool, FailReason> + Send>;

/// A [`ReplLockManager::try_acquire`] in flight: a [`Call`] yielding whether this client holds
/// the lock. Finish it with [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout),
/// [`on_done`](Self::on_done), `.await` or [`detach`](Self::detach); dropped, it is detached.
/// However it is finished, the manager takes note of the outcome when it arrives.
#[must_use = "an acquire is in flight: wait for it, await it, give it a callback, or detach it"]
pub struct TryAcquire {
    call: Option<Call<bool>>,
    settle: Option<Settle>,
}

impl TryAcquire {
    /// Blocks until the reply; on a manually ticked node the waiting thread ticks it.
    ///
    /// # Errors
    /// The call's [`FailReason`] (see [`Call::wait`]).
    pub fn wait(mut self) -> Result<bool, FailReason> {
        let (call, settle) = self.take();
        settle(call.wait())
    }

    /// Blocks until the reply or until `timeout` passes ([`FailReason::Timeout`]; a later
    /// success is then released, not held).
    ///
    /// # Errors
    /// The call's [`FailReason`] (see [`Call::wait_timeout`]).
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<bool, FailReason> {
        let (call, settle) = self.take();
        settle(call.wait_timeout(timeout))
    }

    /// Runs `callback` with the outcome, on the node's tick thread when the reply arrives.
    pub fn on_done(mut self, callback: impl FnOnce(Result<bool, FailReason>) + Send + 'static) {
        let (call, settle) = self.take();
        call.on_done(move |outcome| callback(settle(outcome)));
    }

    /// Lets the acquire go on; the manager still takes note of its outcome.
    pub fn detach(self) {
        drop(self);
    }

    fn take(&mut self) -> (Call<bool>, Settle) {
        match (self.call.take(), self.settle.take()) {
            (Some(call), Some(settle)) => (call, settle),
            // Each finisher consumes `self` and takes both exactly once.
            _ => unreachable!("a TryAcquire is finished once"),
        }
    }
}

impl Drop for TryAcquire {
    fn drop(&mut self) {
        if let (Some(call), Some(settle)) = (self.call.take(), self.settle.take()) {
            call.on_done(move |outcome| drop(settle(outcome)));
        }
    }
}

impl Future for TryAcquire {
    type Output = Result<bool, FailReason>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(call) = self.call.as_mut() else {
            return Poll::Pending; // polled after it completed
        };
        match Pin::new(call).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                self.call = None;
                match self.settle.take() {
                    Some(settle) => Poll::Ready(settle(outcome)),
                    None => Poll::Ready(outcome),
                }
            }
        }
    }
}

impl std::fmt::Debug for TryAcquire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TryAcquire").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn at(secs: u64) -> Option<Duration> {
        Some(Duration::from_secs(secs))
    }

    fn s(text: &str) -> String {
        text.to_owned()
    }

    /// A lock is held until `auto_unlock_time` of cluster time passes since its last refresh,
    /// then free for anyone; its holder may re-acquire it meanwhile.
    #[test]
    fn a_lock_expires_after_auto_unlock_time() {
        let mut table = LockTable::new(T);
        assert!(table.acquire_at(at(100), s("L"), s("a"), 1));
        assert!(
            !table.acquire_at(at(109), s("L"), s("b"), 1),
            "held for 10 s"
        );
        assert!(table.acquire_at(at(105), s("L"), s("a"), 2), "re-entrant");
        assert_eq!(table.holder("L"), Some("a"));
        // A stamp earlier than one seen (never, through the log) does not move time back.
        assert_eq!(table.cluster_time(), Duration::from_secs(109));
        assert!(
            !table.acquire_at(at(118), s("L"), s("b"), 1),
            "refreshed at 109"
        );
        assert!(
            table.acquire_at(at(119), s("L"), s("b"), 1),
            "10 s after 109"
        );
        assert_eq!(table.holder("L"), Some("b"));
        assert_eq!(table.len(), 1);
    }

    /// Prolongation refreshes the client's live locks (with their tokens), drops its expired
    /// ones, and drops expired locks of others, a bounded number per command.
    #[test]
    fn prolongation_refreshes_and_drops_expired_locks() {
        let mut table = LockTable::new(T);
        assert!(table.acquire_at(at(0), s("old"), s("a"), 1));
        assert!(table.acquire_at(at(5), s("x"), s("a"), 7));
        assert!(table.acquire_at(at(5), s("y"), s("b"), 1));
        for i in 0..40 {
            assert!(table.acquire_at(at(6), format!("z{i:02}"), s("c"), 1));
        }
        assert_eq!(
            table.prolongate_at(at(12), s("a")),
            vec![(s("x"), 7)],
            "`old` expired at 10"
        );
        assert_eq!(table.locks_of("a").collect::<Vec<_>>(), ["x"]);
        assert_eq!(table.holder("y"), Some("b"));
        assert!(
            !table.acquire_at(at(21), s("x"), s("b"), 1),
            "x refreshed at 12"
        );
        // At 21, y (5) and the 40 z locks (6) are expired: each command drops 16 of them.
        assert_eq!(table.holder("y"), None);
        let recorded = |t: &LockTable| t.locks.len();
        assert_eq!(recorded(&table), 41 + 1 - 16);
        table.prolongate_at(at(21), s("nobody"));
        assert_eq!(recorded(&table), 41 + 1 - 32);
        assert_eq!(table.len(), 1);
        assert_eq!(table.by_client.len(), recorded(&table));
        assert_eq!(table.by_refresh.len(), recorded(&table));
    }

    /// A release frees the lock only for its holder, and only with a token at least the
    /// holding's: a release sent before the acquire of the current holding does nothing.
    #[test]
    fn release_needs_the_holder_and_a_recent_token() {
        let mut table = LockTable::new(T);
        assert!(table.acquire_at(at(0), s("L"), s("a"), 5));
        assert!(!table.release_at(at(1), s("L"), s("b"), 99), "not b's");
        assert!(
            !table.release_at(at(1), s("L"), s("a"), 4),
            "sent before token 5"
        );
        assert_eq!(table.holder("L"), Some("a"));
        assert!(
            table.acquire_at(at(2), s("L"), s("a"), 3),
            "a stale acquire"
        );
        assert!(
            !table.release_at(at(2), s("L"), s("a"), 4),
            "the run keeps 5"
        );
        assert!(table.release_at(at(3), s("L"), s("a"), 5));
        assert_eq!(table.holder("L"), None);
        assert!(!table.release_at(at(3), s("L"), s("a"), 5), "already free");
        assert!(table.acquire_at(at(4), s("L"), s("b"), 1));
    }

    /// Without a stamp (outside the log) time stands still: nothing expires.
    #[test]
    fn no_stamp_no_expiry() {
        let mut table = LockTable::new(T);
        assert!(table.acquire_at(at(50), s("L"), s("a"), 1));
        assert!(!table.acquire_at(None, s("L"), s("b"), 1));
        assert_eq!(table.cluster_time(), Duration::from_secs(50));
    }

    /// The client's rules: a success after a release of the lock starts nothing; a
    /// prolongation extends only a holding whose token the table confirms; a holding that ran
    /// out is over.
    #[test]
    fn client_holding_rules() {
        let start = Instant::now();
        let later = |secs| start + Duration::from_secs(secs);
        let mut h = Holdings {
            counter: 10,
            ..Holdings::default()
        };
        h.counter += 1;
        h.in_flight.insert(11, (s("L"), false));
        let token = h.release("L");
        assert_eq!(token, 11, "a release carries the counter: after acquire 11");
        assert!(
            !h.acquired("L", 11, later(10), later(1)),
            "voided by the release"
        );
        h.counter += 1;
        h.in_flight.insert(12, (s("L"), false));
        assert!(h.acquired("L", 12, later(10), later(1)));
        assert!(h.extend("L", 0, 11, later(20), later(2)), "still held");
        assert_eq!(h.held["L"].until, later(10), "token 11 is an older run");
        assert!(h.extend("L", 0, 12, later(20), later(2)));
        assert_eq!(h.held["L"].until, later(20));
        assert!(!h.extend("L", 0, 12, later(30), later(20)), "ran out at 20");
        assert!(
            !h.is_held("L", later(21)),
            "over: a prolongation does not revive it"
        );
    }

    const WAIT: Duration = Duration::from_secs(10);

    type Node = crate::SyncObj<crate::batteries::ReplCounter>;

    /// Three in-process nodes holding a counter, with a lock table as consumer 0.
    fn cluster(network: &crate::MemoryNetwork) -> Vec<Node> {
        let addresses = ["lock-a", "lock-b", "lock-c"];
        addresses
            .iter()
            .map(|&me| {
                crate::SyncObj::builder(me)
                    .partners(addresses)
                    .memory(network)
                    .consumer(LockTable::new(Duration::from_secs(30)))
                    .start(crate::batteries::ReplCounter::default())
                    .expect("the node starts")
            })
            .collect()
    }

    fn manager(node: &Node, id: &str) -> ReplLockManager {
        let table = node
            .consumer::<LockTable>(0)
            .expect("consumer 0 is the lock table");
        ReplLockManager::new(table, Some(id.to_owned())).expect("a thread for the manager")
    }

    /// PySyncObj's test_batteriesCommon, lock part: a lock acquired through one node is
    /// refused through another; the loser does not hold it; once released, the other gets it.
    #[test]
    fn one_holder_at_a_time_across_nodes() {
        let network = crate::MemoryNetwork::new();
        let nodes = cluster(&network);
        let a = manager(&nodes[0], "client-a");
        let b = manager(&nodes[1], "client-b");
        assert!(a.try_acquire("test").wait_timeout(WAIT).expect("a's call"));
        assert!(!b.try_acquire("test").wait_timeout(WAIT).expect("b's call"));
        assert!(a.is_acquired("test"));
        assert!(!b.is_acquired("test"), "the loser does not hold it");
        assert!(
            a.try_acquire("test").wait_timeout(WAIT).expect("again"),
            "re-entrant"
        );
        assert!(a.release("test").wait_timeout(WAIT).expect("release"));
        assert!(!a.is_acquired("test"), "released when sent");
        assert!(b.try_acquire("test").wait_timeout(WAIT).expect("b again"));
        assert!(b.is_acquired("test"));
        let table = nodes[1].consumer::<LockTable>(0).expect("the table");
        assert_eq!(table.read().holder("test"), Some("client-b"));
        assert_eq!(
            table.read().locks_of("client-b").collect::<Vec<_>>(),
            ["test"]
        );
        assert!(
            !a.release("test").wait_timeout(WAIT).expect("a's release"),
            "not a's"
        );
    }

    /// An acquire finished by a callback, or dropped unfinished, still counts: the manager
    /// takes note of the outcome when it arrives.
    #[test]
    fn an_acquire_counts_however_it_is_finished() {
        let network = crate::MemoryNetwork::new();
        let nodes = cluster(&network);
        let a = manager(&nodes[2], "client-a");
        let (sender, outcome) = std::sync::mpsc::channel();
        a.try_acquire("one").on_done(move |o| drop(sender.send(o)));
        assert_eq!(
            outcome.recv_timeout(WAIT).expect("the callback ran"),
            Ok(true)
        );
        assert!(a.is_acquired("one"));
        drop(a.try_acquire("two"));
        // The next call from the same node is applied after it.
        assert!(a.try_acquire("three").wait_timeout(WAIT).expect("three"));
        assert!(a.is_acquired("two"), "the dropped acquire was noted");
    }

    /// On a node's main object: the manager's thread ends when its node stops, without
    /// waiting for the manager to be dropped; its calls fail from then on.
    #[test]
    fn the_thread_stops_with_the_node() {
        let network = crate::MemoryNetwork::new();
        let node = crate::SyncObj::builder("solo")
            .memory(&network)
            .start(LockTable::new(Duration::from_millis(400)))
            .expect("the node starts");
        // An acquire sent before the election may come back after its 400 ms: too late.
        assert!(node.wait_ready(WAIT));
        let mut locks =
            ReplLockManager::new(node.handle(), None).expect("a thread for the manager");
        assert!(
            locks.id().contains(':'),
            "host:pid:number, not {}",
            locks.id()
        );
        assert!(locks.try_acquire("x").wait_timeout(WAIT).expect("acquired"));
        drop(node);
        let thread = locks.thread.take().expect("the thread runs");
        let (sender, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || sender.send(thread.join().is_ok()));
        assert_eq!(
            ended.recv_timeout(WAIT),
            Ok(true),
            "the thread ended by itself"
        );
        assert_eq!(
            locks.try_acquire("y").wait_timeout(WAIT),
            Err(FailReason::Shutdown)
        );
    }
}
