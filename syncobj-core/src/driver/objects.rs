//! The replicated objects of a node: the main one and its consumers (PySyncObj's
//! `consumers=[...]`), each with its own command space, behind one type-erased interface.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::SnapshotError;
use super::life::Signals;
use crate::object::{CommandHeader, FailReason, Replicated};

/// The object number that addresses the node itself (code versions), not a user object.
pub(crate) const SYSTEM_OBJECT: u16 = u16::MAX;

/// The `set_code_version` command of [`SYSTEM_OBJECT`].
pub(crate) const SET_CODE_VERSION: u16 = 0;

/// One replicated object, whatever its type.
pub(crate) trait ErasedObject: Send + Sync {
    /// Whether this code knows the command: its method id exists with the same fingerprint.
    /// A node that does not must stop applying rather than diverge.
    fn check(&self, header: CommandHeader) -> Result<(), String>;

    /// Takes the object's write lock for a run of commands: readers wait once per batch of
    /// entries, not once per entry.
    fn writer(&self) -> Box<dyn ObjectWriter + '_>;

    /// The highest method version this object's code knows.
    fn code_version(&self) -> u32;

    /// This object as `Any`, to hand out typed handles.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// The object's state, serialized for a snapshot (MessagePack), under its read lock: on a
    /// snapshot thread while the tick thread applies nothing, so readers go on and the state is
    /// the one at the snapshot's index. Gives up soon after `abandon` is raised (the error is
    /// then meaningless: the caller knows it abandoned).
    fn save(&self, abandon: &AtomicBool) -> Result<Bytes, SnapshotError>;

    /// A state decoded from [`save`](Self::save)'s bytes, not yet in place.
    fn decode(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, SnapshotError>;

    /// Puts a state from [`decode`](Self::decode) in place of the current one, and returns
    /// the state it replaced (for the caller to free where it costs nothing).
    fn replace(&self, state: Box<dyn Any + Send>) -> Option<Box<dyn Any + Send>>;
}

/// A replicated object, locked for writing while a batch of its commands is applied.
pub(crate) trait ObjectWriter {
    /// Applies a command addressed to this object, which [`ErasedObject::check`] accepted. A
    /// panic in the method is caught and becomes the outcome, identical on every node.
    fn apply(&mut self, header: CommandHeader, args: &[u8]) -> Result<Vec<u8>, FailReason>;
}

/// A replicated object's state behind its lock.
pub(crate) struct ObjectCell<T> {
    pub(crate) state: RwLock<T>,
}

impl<T: Replicated> ErasedObject for ObjectCell<T> {
    fn check(&self, header: CommandHeader) -> Result<(), String> {
        let Some(spec) = T::METHODS.get(usize::from(header.method)) else {
            return Err(format!("{} has no method id {}", T::NAME, header.method));
        };
        if spec.fingerprint != header.fingerprint {
            return Err(format!(
                "{}::{} has another signature in this code",
                T::NAME,
                spec.name
            ));
        }
        Ok(())
    }

    fn writer(&self) -> Box<dyn ObjectWriter + '_> {
        Box::new(Writer(self.state.write()))
    }

    fn code_version(&self) -> u32 {
        T::code_version()
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn save(&self, abandon: &AtomicBool) -> Result<Bytes, SnapshotError> {
        let mut out = Abandonable {
            bytes: Vec::new(),
            abandon,
            next_check: 0,
        };
        rmp_serde::encode::write(&mut out, &*self.state.read())
            .map(|()| Bytes::from(out.bytes))
            .map_err(|source| SnapshotError::EncodeObject {
                object: T::NAME,
                source,
            })
    }

    fn decode(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, SnapshotError> {
        rmp_serde::from_slice::<T>(bytes)
            .map(|state| Box::new(state) as Box<dyn Any + Send>)
            .map_err(|source| SnapshotError::DecodeObject {
                object: T::NAME,
                source,
            })
    }

    fn replace(&self, state: Box<dyn Any + Send>) -> Option<Box<dyn Any + Send>> {
        let state = state.downcast::<T>().ok()?;
        let old = std::mem::replace(&mut *self.state.write(), *state);
        Some(Box::new(old))
    }
}

/// The bytes of a state being serialized, which refuse more once the snapshot is abandoned
/// (the flag is read once per [`ABANDON_CHECK_BYTES`] written, not at every small write).
struct Abandonable<'a> {
    bytes: Vec<u8>,
    abandon: &'a AtomicBool,
    /// The length at which the flag is read next.
    next_check: usize,
}

/// How many bytes a state's serialization writes between two looks at the abandon flag.
const ABANDON_CHECK_BYTES: usize = 64 << 10;

impl std::io::Write for Abandonable<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() >= self.next_check {
            if self.abandon.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("the snapshot was abandoned"));
            }
            self.next_check = self.bytes.len() + ABANDON_CHECK_BYTES;
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The write guard of an [`ObjectCell`].
struct Writer<'a, T>(RwLockWriteGuard<'a, T>);

impl<T: Replicated> ObjectWriter for Writer<'_, T> {
    fn apply(&mut self, header: CommandHeader, args: &[u8]) -> Result<Vec<u8>, FailReason> {
        let state = &mut *self.0;
        quiet_method_panics();
        RUNNING.set(Some(header.stamp));
        let outcome = catch_unwind(AssertUnwindSafe(|| state.apply(header.method, args)));
        RUNNING.set(None);
        match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(FailReason::BadArguments(error.to_string())),
            Err(panic) => {
                let message = panic_text(panic.as_ref());
                tracing::warn!(
                    object = T::NAME,
                    %message,
                    "a replicated method panicked: its call fails on every node alike, and what \
                     it changed before the panic stays changed"
                );
                Err(FailReason::Panicked(message))
            }
        }
    }
}

std::thread_local! {
    /// The stamp of the command whose replicated method this thread runs now, if it runs one
    /// (its panic is then part of the log).
    static RUNNING: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// The cluster time of the command being applied, while a replicated method runs on this
/// thread; `None` anywhere else (a local method, a callback, another thread).
///
/// The leader stamps every command when it appends it to the log, and every node applies the
/// same stamp, so a replicated method may judge time with it and stay deterministic: it is
/// what a TTL, a lease or a lock's expiry should be measured in, never the local clock. Cluster
/// time starts at zero with the cluster and never runs ahead of real time: between two
/// commands of the log it advances by at most the time between their proposals, as the
/// leaders' clocks measure it, whatever the offsets between the servers' clocks, across leader
/// changes, crashes and restarts (time without a leader does not count, so it may lag). Two
/// commands appended together may carry the same stamp; a later command never carries an
/// earlier one.
///
/// A method that reads the time must read it from here (and from its arguments), never from
/// the local clock, or the nodes' states diverge.
pub fn command_time() -> Option<std::time::Duration> {
    RUNNING.get().map(std::time::Duration::from_nanos)
}

/// Keeps the panic hook quiet about a replicated method's panic: it is caught, becomes the
/// call's outcome on every node, and is logged once through `tracing`, rather than printed
/// by every node's tick thread. Any other panic reaches the hook that was installed before.
fn quiet_method_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if RUNNING.get().is_none() {
                previous(info);
            }
        }));
    });
}

/// The message a panic carried, if it was a string.
pub(crate) fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned())
}

/// The consumers a node starts with, in order: PySyncObj's `consumers=[...]`.
///
/// ```
/// # use syncobj_core::driver::Consumers;
/// let consumers = Consumers::new();
/// assert!(consumers.is_empty());
/// ```
#[derive(Default)]
pub struct Consumers {
    pub(crate) cells: Vec<Arc<dyn ErasedObject>>,
}

impl Consumers {
    /// No consumers.
    pub fn new() -> Consumers {
        Consumers::default()
    }

    /// Adds a consumer holding `state`; it is number `len()` before the call.
    #[must_use]
    pub fn with<C: Replicated>(mut self, state: C) -> Consumers {
        self.cells.push(Arc::new(ObjectCell {
            state: RwLock::new(state),
        }));
        self
    }

    /// How many consumers there are.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

/// A handle on one replicated object of a node — a consumer
/// ([`SyncObj::consumer`](super::SyncObj::consumer)) or the main object
/// ([`SyncObj::handle`](super::SyncObj::handle)): its calls (through `Deref`), its state, and
/// what a helper working beside the node needs to know of it (the leader, whether it stopped).
///
/// A handle keeps the object's state and the node's call queue alive, not the node: once the
/// node is stopped or dropped, its calls fail with [`FailReason::Shutdown`].
pub struct Consumer<C: Replicated> {
    pub(crate) cell: Arc<ObjectCell<C>>,
    pub(crate) calls: C::Calls,
    pub(crate) signals: Arc<Signals>,
}

impl<C: Replicated> Consumer<C> {
    /// A read guard on this node's copy of the consumer's state.
    pub fn read(&self) -> RwLockReadGuard<'_, C> {
        self.cell.state.read()
    }

    /// The leader's address as far as the node knows, as
    /// [`SyncObj::leader`](super::SyncObj::leader) has it. Never waits for the tick loop.
    pub fn leader(&self) -> Option<String> {
        self.signals.observed().leader_address()
    }

    /// Whether the node was stopped (destroyed, dropped) or its tick loop died: its calls
    /// fail from then on.
    pub fn is_stopped(&self) -> bool {
        self.signals.is_stopped()
    }
}

impl<C: Replicated> std::ops::Deref for Consumer<C> {
    type Target = C::Calls;

    fn deref(&self) -> &C::Calls {
        &self.calls
    }
}
