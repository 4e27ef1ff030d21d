//! Name resolution for the TCP transport that never blocks the poll loop.
//!
//! A node address is `host:port`. When the host is an IP address (`10.0.0.2:4321`,
//! `[::1]:4321`) [`Resolver::lookup`] answers at once, with no thread and no cache. When it is a
//! name (`localhost:4321`, `node-a.example:4321`) the system resolver may take seconds, so the
//! lookup is handed to one background thread and `lookup` returns [`Lookup::Pending`]; when the
//! thread has an answer it calls the wake callback given at construction (the transport passes
//! its poller's waker), and the next [`Resolver::lookup`] or [`Resolver::poll_results`] on the
//! poll loop's thread picks the answer up.
//!
//! # Caching (PySyncObj `dnsCacheTime`, `dnsFailCacheTime`)
//!
//! Answers are cached per name as given, host and port together. An address is cached for
//! [`ResolverSettings::cache_time`] (600 s by default), a failure for
//! [`ResolverSettings::fail_cache_time`] (30 s). The times run from when the poll loop picks the
//! answer up, which follows the thread's answer by at most one poll. Unlike PySyncObj, whose
//! cache started from a sentinel timestamp that made the very first lookups fail while the
//! monotonic clock was near zero (its `test_dnsResolverBug`), an unknown name here is simply
//! absent from the cache, so the first lookup resolves whatever `now` is.
//!
//! Once an entry expires the resolver keeps answering with it while a fresh lookup runs
//! (stale-while-revalidate): a cluster member's last known address is far more likely right
//! than nothing, and a wrong one only costs a failed dial that the transport retries anyway. If
//! the fresh lookup fails, an old *address* is kept (as PySyncObj does) and tried again after
//! `fail_cache_time`; an old *failure* is replaced by the new answer, whatever it is.
//!
//! # Address family (PySyncObj `preferredAddrType`)
//!
//! [`AddrPreference::Ipv4`] takes the first IPv4 address the system returned, or the first
//! address at all if there is none; [`AddrPreference::Ipv6`] the same for IPv6 (PySyncObj's
//! `'ipv6'` wrongly asks for IPv4); [`AddrPreference::Any`] takes the first address the system
//! returned, where PySyncObj picks one at random: the system already orders its answer by
//! RFC 6724, and the same answer always gives the same choice.
//!
//! # Limits
//!
//! At most [`ResolverSettings::pending_max`] names are being resolved at once (queued or running
//! on the thread); a lookup beyond that fails with [`ResolveError::Busy`] and is not cached, so
//! the caller's next attempt tries again. At most [`ResolverSettings::cache_entries_max`] names
//! are cached; inserting one more evicts an expired entry if there is one, else the least
//! recently looked up. Both channels to and from the thread are bounded by `pending_max`.
//!
//! # The thread
//!
//! The thread starts on the first name that needs it, so a cluster configured with IP addresses
//! never starts one. Dropping the [`Resolver`] stops and joins it: a lookup that is running then
//! runs to its end first (the system resolver cannot be interrupted; its own timeout bounds the
//! wait, a few seconds per DNS server by default), and queued lookups are abandoned. If the
//! resolve function panics, the thread dies, waking the poll loop; the lookups it held are
//! forgotten and the next lookup starts a new thread.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use thiserror::Error;

/// The default for [`ResolverSettings::pending_max`].
pub const PENDING_MAX_DEFAULT: usize = 16;

/// The default for [`ResolverSettings::cache_entries_max`].
pub const CACHE_ENTRIES_MAX_DEFAULT: usize = 256;

/// The longest host name accepted, in bytes: the most a DNS name can hold (RFC 1035).
pub const HOST_BYTES_MAX: usize = 253;

/// The name of the resolver thread, as shown by debuggers and `top -H`.
const THREAD_NAME: &str = "syncobj-resolve";

/// How far ahead a deadline goes when `now + duration` overflows `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The function that turns `host:port` into addresses, blocking until it knows.
///
/// [`system_resolve`] by default; tests inject their own to count calls, fail, or answer with
/// chosen addresses. It is called on the resolver thread, one call at a time.
pub type ResolveFn = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// Called on the resolver thread after each answer is ready for the poll loop to pick up (and
/// when the thread dies unexpectedly). It must be quick and must neither block nor panic: the
/// transport passes its poller's waker.
pub type WakeFn = Arc<dyn Fn() + Send + Sync>;

/// Which address family to use when a host name resolves to both; `syncobj-core` maps its
/// `PreferredAddrType` (PySyncObj `preferredAddrType`) onto it. Default: [`Ipv4`](Self::Ipv4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AddrPreference {
    /// The first IPv4 address, else the first address (PySyncObj `'ipv4'`). The default.
    #[default]
    Ipv4,
    /// The first IPv6 address, else the first address (PySyncObj `'ipv6'`, done right).
    Ipv6,
    /// The first address the system returned (PySyncObj `None`, which picks one at random).
    Any,
}

/// The limits and cache times of a [`Resolver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolverSettings {
    /// Which address family to pick. Default: [`AddrPreference::Ipv4`].
    pub preference: AddrPreference,
    /// How long a resolved address is used before it is looked up again (PySyncObj
    /// `dnsCacheTime`). Default: 600 s.
    pub cache_time: Duration,
    /// How long a failed lookup is reported before it is tried again (PySyncObj
    /// `dnsFailCacheTime`). Default: 30 s.
    pub fail_cache_time: Duration,
    /// The most names being resolved at once, queued or running. Zero counts as one. Default:
    /// [`PENDING_MAX_DEFAULT`].
    pub pending_max: usize,
    /// The most names cached; keep it at least the number of peers, or their entries will
    /// evict each other. Zero counts as one. Default: [`CACHE_ENTRIES_MAX_DEFAULT`].
    pub cache_entries_max: usize,
}

/// What [`Resolver::lookup`] knows about a name now.
#[derive(Clone, Debug)]
#[must_use = "a pending lookup must be retried once the wake callback has fired"]
pub enum Lookup {
    /// The address to use. It may be past its cache time while a fresh lookup runs.
    Ready(SocketAddr),
    /// A lookup is running and nothing is known yet: try again after the wake callback fires.
    Pending,
    /// The name cannot be resolved now.
    Failed {
        /// Why.
        error: ResolveError,
        /// When a new lookup will be started. At or before `now` when the failure is not cached
        /// ([`ResolveError::BadAddress`], [`ResolveError::Busy`], [`ResolveError::Spawn`],
        /// [`ResolveError::ThreadDied`]) or when a new lookup is already running.
        until: Instant,
    },
}

/// Why a name could not be resolved.
#[derive(Clone, Debug, Error)]
pub enum ResolveError {
    /// The name is not of the form `host:port` or `[ipv6]:port`; retrying cannot help.
    #[error("invalid address {name:?}: {problem}")]
    BadAddress {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        problem: AddressProblem,
    },
    /// The system resolver (or the injected [`ResolveFn`]) returned an error.
    #[error("cannot resolve {name:?}: {source}")]
    Lookup {
        /// The name as given.
        name: String,
        /// The resolver's error, shared so that the cached failure can be cloned.
        source: Arc<io::Error>,
    },
    /// The resolver answered with no address at all.
    #[error("{name:?} resolves to no address")]
    NoAddress {
        /// The name as given.
        name: String,
    },
    /// `pending_max` lookups are already outstanding; the caller should try again later.
    #[error("cannot resolve {name:?} yet: {max} lookups are already outstanding")]
    Busy {
        /// The name as given.
        name: String,
        /// The limit, [`ResolverSettings::pending_max`].
        max: usize,
    },
    /// The resolver thread could not be started.
    #[error("cannot start the resolver thread to resolve {name:?}: {source}")]
    Spawn {
        /// The name as given.
        name: String,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// The resolver thread died (its resolve function panicked) with this lookup queued; the
    /// next lookup starts a new thread.
    #[error("the resolver thread stopped before resolving {name:?}")]
    ThreadDied {
        /// The name as given.
        name: String,
    },
}

/// What is wrong with an address that is not `host:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressProblem {
    /// The address is the empty string.
    Empty,
    /// There is no `:port` after the host.
    MissingPort,
    /// The port is not a number from 1 to 65535.
    BadPort,
    /// Nothing comes before `:port`.
    MissingHost,
    /// The host holds a colon: an IPv6 address without brackets.
    UnbracketedIpv6,
    /// The part in brackets is not an IPv6 address.
    BadIpv6,
    /// The host is longer than [`HOST_BYTES_MAX`].
    HostTooLong,
    /// The port is 0, which no peer can dial.
    ZeroPort,
    /// The host is made of digits and dots, like an IPv4 address, but is not one
    /// (`300.1.1.1`, `1.2.3`).
    BadIpv4,
}

/// Counts of what the resolver did, for the status report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolverCounters {
    /// Lookups handed to the thread.
    pub lookups: u64,
    /// Lookups that failed or found no address.
    pub failures: u64,
    /// Lookups refused because `pending_max` were outstanding.
    pub refused: u64,
    /// Cache entries evicted to make room.
    pub evictions: u64,
}

/// A caching resolver whose [`lookup`](Self::lookup) never blocks; see the [module
/// documentation](self) for its caching rules, limits and thread.
///
/// Meant for one thread, the transport's poll loop; only the wake callback runs elsewhere.
pub struct Resolver {
    settings: ResolverSettings,
    resolve: ResolveFn,
    wake: WakeFn,
    cache: BTreeMap<String, Entry>,
    /// Names handed to the thread whose answer has not been picked up; at most `pending_max`.
    in_flight: BTreeSet<String>,
    /// The thread, once a name needed it.
    worker: Option<Worker>,
    counters: ResolverCounters,
}

impl AddrPreference {
    /// The address to use among `addresses`, in the order the system returned them; `None`
    /// if the list is empty. Costs one pass over the list.
    pub fn pick(self, addresses: &[SocketAddr]) -> Option<SocketAddr> {
        let preferred = match self {
            Self::Ipv4 => addresses.iter().find(|a| a.is_ipv4()),
            Self::Ipv6 => addresses.iter().find(|a| a.is_ipv6()),
            Self::Any => None,
        };
        preferred.or_else(|| addresses.first()).copied()
    }
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self {
            preference: AddrPreference::default(),
            cache_time: Duration::from_secs(600),
            fail_cache_time: Duration::from_secs(30),
            pending_max: PENDING_MAX_DEFAULT,
            cache_entries_max: CACHE_ENTRIES_MAX_DEFAULT,
        }
    }
}

impl Resolver {
    /// A resolver that asks the system ([`system_resolve`]) and calls `wake` whenever an answer
    /// is ready. Starts no thread yet: the first name that is not an IP address does.
    pub fn new(settings: ResolverSettings, wake: WakeFn) -> Self {
        Self::with_resolve_fn(settings, wake, Arc::new(system_resolve))
    }

    /// A resolver that resolves names with `resolve` instead of the system resolver, for tests
    /// and for embedders with their own name service.
    pub fn with_resolve_fn(settings: ResolverSettings, wake: WakeFn, resolve: ResolveFn) -> Self {
        let settings = ResolverSettings {
            pending_max: settings.pending_max.max(1),
            cache_entries_max: settings.cache_entries_max.max(1),
            ..settings
        };
        Self {
            settings,
            resolve,
            wake,
            cache: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            worker: None,
            counters: ResolverCounters::default(),
        }
    }

    /// What is known about `name` (`host:port`) at `now`, starting a background lookup if
    /// nothing fresh is; never blocks.
    ///
    /// An IP address is [`Lookup::Ready`] at once. A malformed name fails at once with
    /// [`ResolveError::BadAddress`], uncached. Otherwise the cached answer is returned (even an
    /// expired one, while its refresh runs), or [`Lookup::Pending`] if there is none yet, or a
    /// failure if no lookup can be started ([`ResolveError::Busy`], [`ResolveError::Spawn`]).
    ///
    /// Picks up finished answers first ([`poll_results`](Self::poll_results)). Costs a cache
    /// lookup, O(log n); starting a lookup may evict, O(n) in the cache size.
    pub fn lookup(&mut self, name: &str, now: Instant) -> Lookup {
        if let Ok(address) = name.parse::<SocketAddr>() {
            return Lookup::Ready(address);
        }
        if let Err(problem) = check_address(name) {
            return Lookup::Failed {
                error: bad_address(name, problem),
                until: now,
            };
        }
        self.poll_results(now);
        let known = self.cache.get_mut(name).map(|entry| {
            entry.last_used = now;
            (entry.answer.clone(), entry.expires)
        });
        let expired = known.as_ref().is_none_or(|(_, expires)| *expires <= now);
        if expired
            && !self.in_flight.contains(name)
            && let Err(error) = self.start(name)
        {
            if known.is_none() {
                return Lookup::Failed { error, until: now };
            }
            tracing::debug!(%error, "cannot refresh a cached name; using the old answer");
        }
        match known {
            Some((Answer::Address(address), _)) => Lookup::Ready(address),
            Some((Answer::Failed(error), until)) => Lookup::Failed { error, until },
            None => Lookup::Pending,
        }
    }

    /// Takes the answers the thread has finished into the cache, stamping them with `now`, and
    /// returns how many there were. Call it when the wake callback has fired, then retry the
    /// names that were [`Lookup::Pending`]. Never blocks; costs O(log n) per answer.
    pub fn poll_results(&mut self, now: Instant) -> usize {
        let mut taken = 0;
        loop {
            let Some(worker) = &self.worker else {
                return taken;
            };
            match worker.results.try_recv() {
                Ok(done) => {
                    taken += 1;
                    self.settle(done, now);
                }
                Err(TryRecvError::Empty) => return taken,
                Err(TryRecvError::Disconnected) => {
                    self.reap();
                    return taken;
                }
            }
        }
    }

    /// Counts of lookups, failures, refusals and evictions so far.
    pub fn counters(&self) -> ResolverCounters {
        self.counters
    }

    /// Hands `name` to the thread, starting the thread if needed.
    fn start(&mut self, name: &str) -> Result<(), ResolveError> {
        let max = self.settings.pending_max;
        if self.in_flight.len() >= max {
            self.counters.refused += 1;
            return Err(ResolveError::Busy {
                name: name.to_owned(),
                max,
            });
        }
        if self.worker.is_none() {
            let worker = Worker::spawn(
                &self.settings,
                Arc::clone(&self.resolve),
                Arc::clone(&self.wake),
            )
            .map_err(|source| ResolveError::Spawn {
                name: name.to_owned(),
                source: Arc::new(source),
            })?;
            self.worker = Some(worker);
        }
        let worker = self
            .worker
            .as_ref()
            .expect("a worker was started just above");
        match worker.requests.try_send(name.to_owned()) {
            Ok(()) => {
                self.in_flight.insert(name.to_owned());
                self.counters.lookups += 1;
                Ok(())
            }
            // The channel holds `pending_max` requests and fewer than that are in flight, so it
            // cannot be full; if it is, refusing is still correct.
            Err(TrySendError::Full(_)) => {
                self.counters.refused += 1;
                Err(ResolveError::Busy {
                    name: name.to_owned(),
                    max,
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                self.reap();
                Err(ResolveError::ThreadDied {
                    name: name.to_owned(),
                })
            }
        }
    }

    /// Stores one answer from the thread.
    fn settle(&mut self, done: Done, now: Instant) {
        self.in_flight.remove(&done.name);
        let error = match done.result {
            Ok(address) => {
                let expires = deadline(now, self.settings.cache_time);
                self.store(done.name, Answer::Address(address), expires, now);
                return;
            }
            Err(error) => error,
        };
        self.counters.failures += 1;
        let expires = deadline(now, self.settings.fail_cache_time);
        if let Some(entry) = self.cache.get_mut(&done.name)
            && matches!(entry.answer, Answer::Address(_))
        {
            tracing::debug!(%error, "refresh failed; keeping the old address");
            entry.expires = expires;
            return;
        }
        self.store(done.name, Answer::Failed(error), expires, now);
    }

    /// Inserts or replaces an entry, evicting one first if the cache is full.
    fn store(&mut self, name: String, answer: Answer, expires: Instant, now: Instant) {
        if !self.cache.contains_key(&name) && self.cache.len() >= self.settings.cache_entries_max {
            self.evict_one(now);
        }
        let entry = Entry {
            answer,
            expires,
            last_used: now,
        };
        self.cache.insert(name, entry);
    }

    /// Removes an expired entry if there is one, else the least recently used: the least by
    /// (still fresh, last used). Costs one pass over the cache.
    fn evict_one(&mut self, now: Instant) {
        let victim = self
            .cache
            .iter()
            .min_by_key(|(_, entry)| (entry.expires > now, entry.last_used))
            .map(|(name, _)| name.clone());
        if let Some(victim) = victim {
            self.cache.remove(&victim);
            self.counters.evictions += 1;
        }
    }

    /// Forgets a thread that died: its queued lookups will never be answered.
    fn reap(&mut self) {
        if let Some(worker) = self.worker.take() {
            tracing::warn!(
                lost = self.in_flight.len(),
                "the resolver thread died; restarting it on the next lookup"
            );
            worker.stop();
        }
        self.in_flight.clear();
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("settings", &self.settings)
            .field("cached", &self.cache.len())
            .field("in_flight", &self.in_flight.len())
            .field("thread_running", &self.worker.is_some())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Drop for Resolver {
    /// Stops the thread and waits for it: for the lookup it is running, if any.
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
    }
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Empty => "it is empty",
            Self::MissingPort => "it has no port (expected host:port or [ipv6]:port)",
            Self::BadPort => "the port is not a number from 1 to 65535",
            Self::MissingHost => "the host before the port is empty",
            Self::UnbracketedIpv6 => "an IPv6 address needs brackets, as in [::1]:4321",
            Self::BadIpv6 => "the part in brackets is not an IPv6 address",
            Self::HostTooLong => "the host is longer than 253 bytes",
            Self::ZeroPort => "port 0 cannot be dialled: name the port the node listens on",
            Self::BadIpv4 => "the host looks like an IPv4 address but is not one",
        };
        f.write_str(text)
    }
}

/// Resolves `name` (`host:port`) and picks one address by `preference`, blocking until the
/// system resolver answers (which can take seconds when DNS is slow or down).
///
/// For the first bind at startup, before the poll loop runs. Bind retries from inside the poll
/// loop should use [`Resolver::lookup`] instead, so that a DNS outage does not stall every
/// connection. Nothing is cached.
///
/// # Errors
/// [`ResolveError::BadAddress`] for a malformed name, [`ResolveError::Lookup`] if the system
/// resolver fails, [`ResolveError::NoAddress`] if it returns nothing.
pub fn resolve_now(name: &str, preference: AddrPreference) -> Result<SocketAddr, ResolveError> {
    resolve_with(&system_resolve, name, preference)
}

/// The default [`ResolveFn`]: the system resolver, through [`std::net::ToSocketAddrs`]
/// (`getaddrinfo` on Unix). Blocks; returns the addresses in the system's order.
///
/// # Errors
/// Whatever the system resolver reports, such as an unknown host.
pub fn system_resolve(name: &str) -> io::Result<Vec<SocketAddr>> {
    Ok(name.to_socket_addrs()?.collect())
}

/// A cached answer.
#[derive(Clone, Debug)]
enum Answer {
    Address(SocketAddr),
    Failed(ResolveError),
}

/// A cached answer with its times.
#[derive(Debug)]
struct Entry {
    answer: Answer,
    /// When a new lookup is due; the answer is still used after it until one succeeds.
    expires: Instant,
    /// The last `lookup` of the name, for least-recently-used eviction.
    last_used: Instant,
}

/// An answer from the thread.
#[derive(Debug)]
struct Done {
    name: String,
    result: Result<SocketAddr, ResolveError>,
}

/// The resolver thread, seen from the poll loop.
struct Worker {
    requests: SyncSender<String>,
    results: Receiver<Done>,
    /// Set before the channels are dropped, so that the thread abandons queued names and does
    /// not call the wake callback on its way out.
    stopping: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Worker {
    /// Starts the thread, with channels bounded by `pending_max`.
    fn spawn(settings: &ResolverSettings, resolve: ResolveFn, wake: WakeFn) -> io::Result<Self> {
        let (requests, queue) = mpsc::sync_channel::<String>(settings.pending_max);
        let (answers, results) = mpsc::sync_channel::<Done>(settings.pending_max);
        let stopping = Arc::new(AtomicBool::new(false));
        let exit = WakeOnExit {
            answers: Some(answers),
            wake,
            stopping: Arc::clone(&stopping),
        };
        let preference = settings.preference;
        let thread = thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || run(&queue, exit, &*resolve, preference))?;
        Ok(Self {
            requests,
            results,
            stopping,
            thread,
        })
    }

    /// Tells the thread to stop and joins it.
    fn stop(self) {
        let Self {
            requests,
            results,
            stopping,
            thread,
        } = self;
        stopping.store(true, Ordering::Release);
        // Closing both channels ends the thread's wait for a request, and any send of an answer.
        drop(requests);
        drop(results);
        if thread.join().is_err() {
            tracing::warn!("the resolver thread panicked");
        }
    }
}

/// The thread's end of the answer channel; on the way out (normal or panic) it closes the
/// channel and then, unless the resolver is stopping it, wakes the poll loop so that it sees
/// the thread is gone.
struct WakeOnExit {
    answers: Option<SyncSender<Done>>,
    wake: WakeFn,
    stopping: Arc<AtomicBool>,
}

impl WakeOnExit {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

impl Drop for WakeOnExit {
    fn drop(&mut self) {
        drop(self.answers.take());
        if !self.stopping() {
            (self.wake)();
        }
    }
}

/// The thread's body: resolve each requested name, send the answer, wake the poll loop.
fn run(
    queue: &Receiver<String>,
    exit: WakeOnExit,
    resolve: &(dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync),
    preference: AddrPreference,
) {
    while let Ok(name) = queue.recv() {
        if exit.stopping() {
            return;
        }
        let result = resolve_with(resolve, &name, preference);
        let answers = exit
            .answers
            .as_ref()
            .expect("the answer channel is only taken when the thread exits");
        // At most `pending_max` names are in flight, each answered once, so the channel of
        // `pending_max` slots never blocks; it only fails once the resolver is dropped.
        if answers.send(Done { name, result }).is_err() {
            return;
        }
        (exit.wake)();
    }
}

/// Checks `name`, resolves it with `resolve` and picks an address.
fn resolve_with(
    resolve: &(dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync),
    name: &str,
    preference: AddrPreference,
) -> Result<SocketAddr, ResolveError> {
    if let Ok(address) = name.parse::<SocketAddr>() {
        return Ok(address);
    }
    check_address(name).map_err(|problem| bad_address(name, problem))?;
    let addresses = resolve(name).map_err(|source| ResolveError::Lookup {
        name: name.to_owned(),
        source: Arc::new(source),
    })?;
    preference
        .pick(&addresses)
        .ok_or_else(|| ResolveError::NoAddress {
            name: name.to_owned(),
        })
}

/// Checks that `name`, which is not an IP socket address, has the form `host:port`.
/// Checks that `name` is a `host:port` or `[ipv6]:port` that a peer can dial, without
/// resolving it.
///
/// # Errors
/// The [`AddressProblem`] with it.
pub fn check_address(name: &str) -> Result<(), AddressProblem> {
    if name.is_empty() {
        return Err(AddressProblem::Empty);
    }
    if let Ok(address) = name.parse::<std::net::SocketAddr>() {
        return match address.port() {
            0 => Err(AddressProblem::ZeroPort),
            _ => Ok(()),
        };
    }
    let port_ok = |port: &str| port.parse::<u16>().is_ok_and(|p| p != 0);
    if let Some(rest) = name.strip_prefix('[') {
        // A valid `[ipv6]:port` parsed as a socket address above.
        return match rest.split_once("]:") {
            None => Err(AddressProblem::MissingPort),
            Some((_, port)) if !port_ok(port) => Err(port_problem(port)),
            Some(_) => Err(AddressProblem::BadIpv6),
        };
    }
    let Some((host, port)) = name.rsplit_once(':') else {
        return Err(AddressProblem::MissingPort);
    };
    if host.contains(':') {
        Err(AddressProblem::UnbracketedIpv6)
    } else if !port_ok(port) {
        Err(port_problem(port))
    } else if host.is_empty() {
        Err(AddressProblem::MissingHost)
    } else if host.len() > HOST_BYTES_MAX {
        Err(AddressProblem::HostTooLong)
    } else if host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && host.parse::<std::net::Ipv4Addr>().is_err()
    {
        Err(AddressProblem::BadIpv4)
    } else {
        Ok(())
    }
}

/// What is wrong with a port that is not a number from 1 to 65535.
fn port_problem(port: &str) -> AddressProblem {
    match port.parse::<u16>() {
        Ok(0) => AddressProblem::ZeroPort,
        _ => AddressProblem::BadPort,
    }
}

fn bad_address(name: &str, problem: AddressProblem) -> ResolveError {
    ResolveError::BadAddress {
        name: name.to_owned(),
        problem,
    }
}

/// `now + after`, or far in the future if that overflows.
fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// How long a test waits for the resolver thread before failing.
    const WAIT: Duration = Duration::from_secs(10);

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
    }

    fn v6(last: u16, port: u16) -> SocketAddr {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last)),
            port,
        )
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A resolver around a scripted resolve function, counting its calls and its wake-ups.
    struct Harness {
        resolver: Resolver,
        calls: Arc<AtomicUsize>,
        woken: Receiver<()>,
    }

    impl Harness {
        fn new(
            settings: ResolverSettings,
            answer: impl Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
        ) -> Self {
            let calls = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&calls);
            let resolve: ResolveFn = Arc::new(move |name| {
                counted.fetch_add(1, Ordering::SeqCst);
                answer(name)
            });
            let (wake_tx, woken) = mpsc::sync_channel(64);
            let wake: WakeFn = Arc::new(move || {
                let _ = wake_tx.try_send(());
            });
            Self {
                resolver: Resolver::with_resolve_fn(settings, wake, resolve),
                calls,
                woken,
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        /// Waits for the wake callback, with a deadline.
        fn wait_wake(&self) {
            self.woken
                .recv_timeout(WAIT)
                .expect("the resolver thread should answer within the deadline");
        }

        fn lookup(&mut self, name: &str, now: Instant) -> Lookup {
            self.resolver.lookup(name, now)
        }

        /// Looks `name` up, expecting a lookup to start, and returns the answer once it is in.
        fn resolve(&mut self, name: &str, now: Instant) -> Lookup {
            assert!(matches!(self.lookup(name, now), Lookup::Pending));
            self.wait_wake();
            self.lookup(name, now)
        }
    }

    fn ready(lookup: &Lookup) -> SocketAddr {
        match lookup {
            Lookup::Ready(address) => *address,
            other => panic!("expected an address, got {other:?}"),
        }
    }

    fn failed(lookup: Lookup) -> (ResolveError, Instant) {
        match lookup {
            Lookup::Failed { error, until } => (error, until),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn not_found() -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, "no such host")
    }

    /// Sends on a channel when dropped: tells a test that a closure was freed.
    struct DropSignal(SyncSender<()>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            let _ = self.0.try_send(());
        }
    }

    /// A resolve function whose calls wait until the test hands out a permit (or hangs up).
    fn gated() -> (SyncSender<()>, impl Fn(&str) -> io::Result<Vec<SocketAddr>>) {
        let (permit, permits) = mpsc::sync_channel::<()>(16);
        let permits = Mutex::new(permits);
        let answer = move |_: &str| {
            let _ = permits
                .lock()
                .expect("no test panics holding the lock")
                .recv();
            Ok(vec![v4(1, 4321)])
        };
        (permit, answer)
    }

    #[test]
    fn the_resolver_can_move_into_the_transport_thread() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Resolver>();
        assert_send::<Lookup>();
    }

    #[test]
    fn ip_literals_resolve_at_once_without_thread_or_cache() {
        let mut h = Harness::new(ResolverSettings::default(), |_| Ok(vec![v4(9, 1)]));
        let now = Instant::now();
        let got = ready(&h.lookup("127.0.0.1:4321", now));
        assert_eq!(got, "127.0.0.1:4321".parse().expect("a literal"));
        let got = ready(&h.lookup("[::1]:4321", now));
        assert_eq!(got, "[::1]:4321".parse().expect("a literal"));
        assert_eq!(h.calls(), 0);
        assert!(h.resolver.worker.is_none(), "no thread for literals");
        assert!(h.resolver.cache.is_empty(), "literals are not cached");
    }

    #[test]
    fn bad_names_fail_at_once_naming_the_input() {
        let mut h = Harness::new(ResolverSettings::default(), |_| Ok(vec![v4(9, 1)]));
        let now = Instant::now();
        let cases = [
            ("", AddressProblem::Empty),
            ("localhost", AddressProblem::MissingPort),
            ("localhost:", AddressProblem::BadPort),
            ("localhost:65536", AddressProblem::BadPort),
            ("localhost:http", AddressProblem::BadPort),
            (":4321", AddressProblem::MissingHost),
            ("::1", AddressProblem::UnbracketedIpv6),
            ("fd00::1:4321", AddressProblem::UnbracketedIpv6),
            ("[::1]", AddressProblem::MissingPort),
            ("[::1]:x", AddressProblem::BadPort),
            ("[node-a]:4321", AddressProblem::BadIpv6),
        ];
        for (name, expected) in cases {
            let (error, until) = failed(h.lookup(name, now));
            assert_eq!(until, now, "{name:?}: a bad name is not cached");
            let ResolveError::BadAddress { name: got, problem } = &error else {
                panic!("{name:?}: expected BadAddress, got {error:?}");
            };
            assert_eq!((got.as_str(), *problem), (name, expected));
            assert!(error.to_string().contains(&format!("{name:?}")), "{error}");
            let blocking = resolve_now(name, AddrPreference::Any).expect_err("a bad name");
            assert!(matches!(blocking, ResolveError::BadAddress { .. }));
        }
        let long = format!("{}:1", "a".repeat(HOST_BYTES_MAX + 1));
        let (error, _) = failed(h.lookup(&long, now));
        assert!(matches!(
            error,
            ResolveError::BadAddress {
                problem: AddressProblem::HostTooLong,
                ..
            }
        ));
        assert_eq!(h.calls(), 0);
        assert!(h.resolver.worker.is_none());
    }

    #[test]
    fn preference_picks_the_family_and_falls_back() {
        let mixed = [v6(1, 1), v4(1, 1), v6(2, 1), v4(2, 1)];
        assert_eq!(AddrPreference::Ipv4.pick(&mixed), Some(v4(1, 1)));
        assert_eq!(AddrPreference::Ipv6.pick(&mixed), Some(v6(1, 1)));
        assert_eq!(AddrPreference::Any.pick(&mixed), Some(v6(1, 1)));
        let v4_first = [v4(1, 1), v6(1, 1)];
        assert_eq!(AddrPreference::Ipv6.pick(&v4_first), Some(v6(1, 1)));
        assert_eq!(AddrPreference::Any.pick(&v4_first), Some(v4(1, 1)));
        // The preferred family is missing: the first address of the other.
        assert_eq!(
            AddrPreference::Ipv4.pick(&[v6(3, 1), v6(4, 1)]),
            Some(v6(3, 1))
        );
        assert_eq!(
            AddrPreference::Ipv6.pick(&[v4(3, 1), v4(4, 1)]),
            Some(v4(3, 1))
        );
        for preference in [
            AddrPreference::Ipv4,
            AddrPreference::Ipv6,
            AddrPreference::Any,
        ] {
            assert_eq!(preference.pick(&[]), None);
        }
    }

    #[test]
    fn preference_applies_to_resolved_names() {
        let now = Instant::now();
        for (preference, expected) in [
            (AddrPreference::Ipv4, v4(1, 4321)),
            (AddrPreference::Ipv6, v6(1, 4321)),
            (AddrPreference::Any, v6(1, 4321)),
        ] {
            let settings = ResolverSettings {
                preference,
                ..ResolverSettings::default()
            };
            let mut h = Harness::new(settings, |_| Ok(vec![v6(1, 4321), v4(1, 4321)]));
            assert_eq!(ready(&h.resolve("node-a.example:4321", now)), expected);
        }
    }

    /// PySyncObj `test_dnsResolverBug`: with the clock at zero the cache claimed a fresh
    /// failure. Here the first lookup at the resolver's first instant resolves.
    #[test]
    fn first_lookup_at_time_zero_resolves() {
        let zero = Instant::now();
        let mut h = Harness::new(ResolverSettings::default(), |_| Ok(vec![v4(1, 4321)]));
        assert!(matches!(h.lookup("localhost:4321", zero), Lookup::Pending));
        assert_eq!(h.resolver.counters().lookups, 1, "a lookup was started");
        h.wait_wake();
        assert_eq!(ready(&h.lookup("localhost:4321", zero)), v4(1, 4321));
        assert_eq!(h.calls(), 1);
    }

    #[test]
    fn pending_becomes_ready_after_the_callback() {
        let (permit, answer) = gated();
        let mut h = Harness::new(ResolverSettings::default(), answer);
        let now = Instant::now();
        assert!(matches!(
            h.lookup("node-a.example:4321", now),
            Lookup::Pending
        ));
        // Still running: asking again neither blocks nor starts a second lookup.
        assert!(matches!(
            h.lookup("node-a.example:4321", now),
            Lookup::Pending
        ));
        permit
            .send(())
            .expect("the resolve function holds the receiver");
        h.wait_wake();
        assert_eq!(h.resolver.poll_results(now), 1);
        assert_eq!(ready(&h.lookup("node-a.example:4321", now)), v4(1, 4321));
        assert_eq!(h.calls(), 1);
        assert_eq!(h.resolver.counters().lookups, 1);
    }

    #[test]
    fn success_is_cached_for_cache_time_then_refreshed_while_the_old_one_is_used() {
        let generation = Arc::new(AtomicUsize::new(1));
        let current = Arc::clone(&generation);
        let mut h = Harness::new(ResolverSettings::default(), move |_| {
            let n = u8::try_from(current.load(Ordering::SeqCst)).expect("a few generations");
            Ok(vec![v4(n, 4321)])
        });
        let t0 = Instant::now();
        let name = "node-a.example:4321";
        assert_eq!(ready(&h.resolve(name, t0)), v4(1, 4321));
        assert_eq!(ready(&h.lookup(name, t0 + secs(599))), v4(1, 4321));
        assert_eq!(h.calls(), 1, "cached for dns_cache_time");
        generation.store(2, Ordering::SeqCst);
        // Expired: the old address while the refresh runs.
        assert_eq!(ready(&h.lookup(name, t0 + secs(600))), v4(1, 4321));
        h.wait_wake();
        assert_eq!(h.calls(), 2);
        let t1 = t0 + secs(601);
        assert_eq!(ready(&h.lookup(name, t1)), v4(2, 4321));
        assert_eq!(ready(&h.lookup(name, t1 + secs(599))), v4(2, 4321));
        assert_eq!(
            h.calls(),
            2,
            "the refreshed answer is cached from when it was taken"
        );
    }

    #[test]
    fn failure_is_cached_for_fail_cache_time() {
        let healthy = Arc::new(AtomicBool::new(false));
        let dns_up = Arc::clone(&healthy);
        let mut h = Harness::new(ResolverSettings::default(), move |_| {
            if dns_up.load(Ordering::SeqCst) {
                Ok(vec![v4(1, 4321)])
            } else {
                Err(not_found())
            }
        });
        let t0 = Instant::now();
        let name = "node-a.example:4321";
        let (error, until) = failed(h.resolve(name, t0));
        assert!(matches!(&error, ResolveError::Lookup { name: n, .. } if n == name));
        assert!(error.to_string().contains("no such host"), "{error}");
        assert_eq!(until, t0 + secs(30));
        let (_, until) = failed(h.lookup(name, t0 + secs(29)));
        assert_eq!(until, t0 + secs(30));
        assert_eq!(h.calls(), 1, "cached for dns_fail_cache_time");
        // Expired: the old failure while a new lookup runs; it succeeds.
        healthy.store(true, Ordering::SeqCst);
        let (_, until) = failed(h.lookup(name, t0 + secs(30)));
        assert!(until <= t0 + secs(30), "a retry is running");
        h.wait_wake();
        assert_eq!(ready(&h.lookup(name, t0 + secs(30))), v4(1, 4321));
        assert_eq!(h.calls(), 2);
        assert_eq!(h.resolver.counters().failures, 1);
    }

    #[test]
    fn an_empty_answer_is_a_cached_failure() {
        let mut h = Harness::new(ResolverSettings::default(), |_| Ok(Vec::new()));
        let t0 = Instant::now();
        let (error, until) = failed(h.resolve("node-a.example:4321", t0));
        assert!(matches!(error, ResolveError::NoAddress { .. }), "{error:?}");
        assert_eq!(until, t0 + secs(30));
    }

    #[test]
    fn a_failed_refresh_keeps_the_old_address() {
        let healthy = Arc::new(AtomicBool::new(true));
        let dns_up = Arc::clone(&healthy);
        let mut h = Harness::new(ResolverSettings::default(), move |_| {
            if dns_up.load(Ordering::SeqCst) {
                Ok(vec![v4(1, 4321)])
            } else {
                Err(not_found())
            }
        });
        let t0 = Instant::now();
        let name = "node-a.example:4321";
        assert_eq!(ready(&h.resolve(name, t0)), v4(1, 4321));
        healthy.store(false, Ordering::SeqCst);
        let t1 = t0 + secs(600);
        assert_eq!(ready(&h.lookup(name, t1)), v4(1, 4321));
        h.wait_wake();
        assert_eq!(ready(&h.lookup(name, t1)), v4(1, 4321));
        assert_eq!(h.calls(), 2);
        // The next attempt comes after dns_fail_cache_time, not dns_cache_time.
        assert_eq!(ready(&h.lookup(name, t1 + secs(29))), v4(1, 4321));
        assert_eq!(h.calls(), 2);
        assert_eq!(ready(&h.lookup(name, t1 + secs(30))), v4(1, 4321));
        h.wait_wake();
        assert_eq!(h.calls(), 3);
    }

    #[test]
    fn outstanding_lookups_are_bounded() {
        let (permit, answer) = gated();
        let settings = ResolverSettings {
            pending_max: 2,
            ..ResolverSettings::default()
        };
        let mut h = Harness::new(settings, answer);
        let now = Instant::now();
        assert!(matches!(h.lookup("a.example:1", now), Lookup::Pending));
        assert!(matches!(h.lookup("b.example:1", now), Lookup::Pending));
        let (error, until) = failed(h.lookup("c.example:1", now));
        assert!(
            matches!(&error, ResolveError::Busy { name, max: 2 } if name == "c.example:1"),
            "{error:?}"
        );
        assert_eq!(until, now, "a refusal is not cached");
        // A name already in flight is not queued twice.
        assert!(matches!(h.lookup("a.example:1", now), Lookup::Pending));
        assert_eq!(h.resolver.in_flight.len(), 2);
        for _ in 0..2 {
            permit
                .send(())
                .expect("the resolve function holds the receiver");
            h.wait_wake();
        }
        assert!(matches!(h.lookup("c.example:1", now), Lookup::Pending));
        permit
            .send(())
            .expect("the resolve function holds the receiver");
        h.wait_wake();
        assert_eq!(ready(&h.lookup("c.example:1", now)), v4(1, 4321));
        assert_eq!(h.calls(), 3);
        assert_eq!(h.resolver.counters().refused, 1);
    }

    #[test]
    fn the_cache_is_bounded_evicting_expired_then_least_recently_used() {
        let settings = ResolverSettings {
            cache_entries_max: 2,
            ..ResolverSettings::default()
        };
        let mut h = Harness::new(settings, |name| {
            if name.starts_with("down") {
                Err(not_found())
            } else {
                Ok(vec![v4(1, 1)])
            }
        });
        let t0 = Instant::now();
        assert_eq!(ready(&h.resolve("old.example:1", t0)), v4(1, 1));
        let _ = failed(h.resolve("down.example:1", t0 + secs(5)));
        // At t0 + 40 the failure (taken at t0 + 5, kept 30 s) has expired: it goes first,
        // though `old` was used longer ago.
        assert_eq!(ready(&h.resolve("new.example:1", t0 + secs(40))), v4(1, 1));
        let names: Vec<&str> = h.resolver.cache.keys().map(String::as_str).collect();
        assert_eq!(names, ["new.example:1", "old.example:1"]);
        // Both fresh: the least recently used goes.
        assert_eq!(ready(&h.lookup("old.example:1", t0 + secs(50))), v4(1, 1));
        assert_eq!(
            ready(&h.resolve("third.example:1", t0 + secs(60))),
            v4(1, 1)
        );
        let names: Vec<&str> = h.resolver.cache.keys().map(String::as_str).collect();
        assert_eq!(names, ["old.example:1", "third.example:1"]);
        assert_eq!(h.resolver.counters().evictions, 2);
    }

    #[test]
    fn dropping_the_resolver_stops_its_thread() {
        let (freed_tx, freed) = mpsc::sync_channel(1);
        let signal = DropSignal(freed_tx);
        let mut h = Harness::new(ResolverSettings::default(), move |_| {
            let _held = &signal;
            Ok(vec![v4(1, 1)])
        });
        let _ = h.resolve("node-a.example:1", Instant::now());
        assert!(h.resolver.worker.is_some());
        drop(h);
        // The thread held the last reference to the resolve function: it has exited and
        // freed it by the time drop returns.
        freed
            .try_recv()
            .expect("the resolver thread was joined during drop");
    }

    #[test]
    fn dropping_the_resolver_with_lookups_queued_returns() {
        let (permit, answer) = gated();
        let (freed_tx, freed) = mpsc::sync_channel(1);
        let signal = DropSignal(freed_tx);
        let mut h = Harness::new(ResolverSettings::default(), move |name| {
            let _held = &signal;
            answer(name)
        });
        let now = Instant::now();
        for name in ["a.example:1", "b.example:1", "c.example:1"] {
            assert!(matches!(h.lookup(name, now), Lookup::Pending));
        }
        let (done_tx, done) = mpsc::sync_channel(1);
        let dropper = thread::spawn(move || {
            drop(h);
            let _ = done_tx.send(());
        });
        // Let the running lookup finish; any later one returns at once.
        drop(permit);
        done.recv_timeout(WAIT)
            .expect("drop returns once the running lookup ends");
        dropper.join().expect("the dropping thread does not panic");
        freed.try_recv().expect("the resolver thread was joined");
    }

    #[test]
    fn a_panicking_resolve_function_costs_one_thread_not_the_resolver() {
        let first = Arc::new(AtomicBool::new(true));
        let mut h = Harness::new(ResolverSettings::default(), move |_| {
            if first.swap(false, Ordering::SeqCst) {
                panic!("a resolve function bug (this panic is expected by the test)");
            }
            Ok(vec![v4(1, 1)])
        });
        let now = Instant::now();
        assert!(matches!(h.lookup("node-a.example:1", now), Lookup::Pending));
        h.wait_wake(); // The dying thread wakes the poll loop.
        // The lost lookup is forgotten and started again on a new thread.
        assert_eq!(ready(&h.resolve("node-a.example:1", now)), v4(1, 1));
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn resolve_now_takes_literals_and_picks_by_preference() {
        let literal = resolve_now("[::1]:4321", AddrPreference::Ipv4).expect("a literal");
        assert_eq!(literal, "[::1]:4321".parse().expect("a literal"));
        let mixed = |_: &str| Ok(vec![v6(1, 9), v4(1, 9)]);
        let got = resolve_with(&mixed, "node-a.example:9", AddrPreference::Ipv4);
        assert_eq!(got.expect("resolves"), v4(1, 9));
        let got = resolve_with(&mixed, "node-a.example:9", AddrPreference::Ipv6);
        assert_eq!(got.expect("resolves"), v6(1, 9));
        let failing = |_: &str| Err(not_found());
        let error = resolve_with(&failing, "node-a.example:9", AddrPreference::Any)
            .expect_err("the lookup fails");
        assert!(
            error.to_string().contains("\"node-a.example:9\""),
            "{error}"
        );
    }

    #[test]
    fn the_system_resolver_resolves_localhost() {
        let address = resolve_now("localhost:4321", AddrPreference::Any).expect("localhost");
        assert!(address.ip().is_loopback(), "{address}");
        assert_eq!(address.port(), 4321);
    }

    #[test]
    fn huge_cache_times_do_not_overflow() {
        let settings = ResolverSettings {
            cache_time: Duration::MAX,
            fail_cache_time: Duration::MAX,
            ..ResolverSettings::default()
        };
        let mut h = Harness::new(settings, |_| Ok(vec![v4(1, 1)]));
        let now = Instant::now();
        assert_eq!(ready(&h.resolve("node-a.example:1", now)), v4(1, 1));
        assert_eq!(
            ready(&h.lookup("node-a.example:1", now + secs(1_000_000))),
            v4(1, 1)
        );
        assert_eq!(h.calls(), 1);
    }

    /// Addresses a peer can dial pass; each malformed one is refused with its own problem.
    #[test]
    fn addresses_are_checked_without_resolving() {
        for good in [
            "127.0.0.1:4321",
            "[::1]:4321",
            "localhost:1",
            "node-a.example:65535",
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        let bad = [
            ("", AddressProblem::Empty),
            ("nonsense", AddressProblem::MissingPort),
            ("127.0.0.1:99999", AddressProblem::BadPort),
            ("127.0.0.1:0", AddressProblem::ZeroPort),
            ("[::1]:0", AddressProblem::ZeroPort),
            ("300.1.1.1:80", AddressProblem::BadIpv4),
            ("1.2.3:80", AddressProblem::BadIpv4),
            (":80", AddressProblem::MissingHost),
            ("::1:80", AddressProblem::UnbracketedIpv6),
            ("[zz]:80", AddressProblem::BadIpv6),
        ];
        for (name, problem) in bad {
            assert_eq!(check_address(name), Err(problem), "{name}");
        }
    }
}
