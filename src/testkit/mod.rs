//! A linearizability checker for histories recorded by your own tests.
//!
//! Record what each client asked and what it got back, with times, in a [`History`] (or from
//! many threads with a [`Recorder`]); then [`check`] it against a [`Model`], the object's
//! sequential specification. The history is *linearizable* if its operations can be put in one
//! order, consistent with real time (an operation that ended before another started comes
//! first), in which each returns what the model says it returns. A replicated object whose
//! acknowledged calls and reads are linearizable behaves like a single copy: no stale read, no
//! lost write.
//!
//! Models for a [`Register`], a [`Counter`], a [`Set`] and a key-value map ([`KvMap`]) are
//! provided; implement [`Model`] for your own object.
//!
//! ```
//! use syncobj::testkit::{History, KvInput, KvMap, KvOutput, Verdict, check};
//!
//! # fn main() -> Result<(), syncobj::testkit::HistoryError> {
//! // Times are on any clock the clients share; here, hand-picked numbers.
//! let mut history = History::new();
//! // Client 1 puts x = 1 between times 0 and 10.
//! let put = history.invoke(1, KvInput::Put("x", 1), 0);
//! history.complete(put, KvOutput::Done, 10)?;
//! // Client 2 reads x while the put is under way, and sees the old value (no key): fine.
//! let get = history.invoke(2, KvInput::Get("x"), 5);
//! history.complete(get, KvOutput::Value(None), 8)?;
//! // Client 3 puts y = 2, but times out: it may or may not have taken effect.
//! let lost = history.invoke(3, KvInput::Put("y", 2), 11);
//! history.unknown(lost)?;
//! assert_eq!(check(KvMap::new(), &history), Verdict::Linearizable);
//!
//! // A read of x after the put completed that still sees no key is a stale read.
//! let stale = history.invoke(2, KvInput::Get("x"), 12);
//! history.complete(stale, KvOutput::Value(None), 13)?;
//! let verdict = check(KvMap::new(), &history);
//! let excerpt = verdict.excerpt().expect("a stale read is not linearizable");
//! // The excerpt holds just the put and the stale read: the other key and the earlier read
//! // have nothing to do with the failure.
//! assert_eq!(excerpt.ids(), [put, stale]);
//! assert!(excerpt.is_minimal());
//! println!("{verdict}");
//! # Ok(())
//! # }
//! ```
//!
//! # Unknown outcomes
//!
//! A call that timed out, or failed in a way that may have taken effect
//! ([`Effect::Unknown`](crate::Effect::Unknown)), is recorded with [`History::unknown`] (a call
//! never completed counts the same): the checker lets it take effect at any time after its
//! start, with any output, or never. A call that failed without effect
//! ([`Effect::None`](crate::Effect::None)) is best left out of the history altogether.
//!
//! # Cost
//!
//! Checking linearizability is NP-complete in general. The search (Wing and Gong's, with Lowe's
//! memo of the (operations done, model state) pairs already explored) is fast on histories of a
//! few concurrent clients, and partitioning (a map's keys, a set's elements; see
//! [`Model::partition`]) splits a long history into short ones. Every check is bounded: past
//! its budget of steps it answers [`Verdict::Unknown`] rather than run on ([`Checker`]).
//!
//! What costs most is an operation of unknown outcome that changes the state (a timed-out
//! write): it may take effect at any later point, so a history that fails after many of them
//! makes the search try every combination. A history that passes is usually found quickly all
//! the same. Shrinking a failure is a search per candidate; for a failure deep in a long
//! partition its budget may run out, and the excerpt is then reported as far as it got
//! ([`Excerpt::is_minimal`] is false).
//!
//! # What a failure reports
//!
//! A history that is not linearizable comes with an [`Excerpt`]: operations of one partition
//! that contradict each other whatever the history's other operations returned. The checker
//! starts from the operations invoked before the point where its search could go no further,
//! and *relaxes* as many of them as it can (takes them to have returned anything, or not to
//! have taken effect at all, within their recorded interval) while they still cannot be
//! linearized; the excerpt is the rest. It is not linearizable alone, and when
//! [minimal](Excerpt::is_minimal) none of its operations can be relaxed too. The search for it
//! has a budget of its own.

mod checker;
mod history;
mod model;
mod models;

pub use checker::{Checker, Excerpt, Verdict, check};
pub use history::{History, HistoryError, OpId, Operation, Outcome, Recorder};
pub use model::Model;
pub use models::{
    Counter, CounterInput, CounterOutput, KvInput, KvMap, KvOutput, Register, RegisterInput,
    RegisterOutput, Set, SetInput,
};
pub use syncobj_core::driver::{
    Cut, DELAY_MAX, DELAYED_FRAMES_MAX, Delay, FaultCounters, FaultError, Flapping, Schedule,
};
#[cfg(feature = "sim")]
pub use syncobj_core::storage::SimDisk;
