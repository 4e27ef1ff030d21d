//! Replicated objects: what the `#[replicated]` macros generate code against.
//!
//! A replicated type is a plain struct whose `&mut self` methods marked `#[replicated]` become
//! log commands. The macros implement [`ReplicatedState`] (from `#[derive(Replicated)]`) and
//! [`ReplicatedMethods`] (from `#[replicated]` on the impl block); [`Replicated`] is both. Calls
//! go through a [`Caller`] and come back as a [`Call`].

mod call;
mod command;
mod refusal;

#[cfg(test)]
pub(crate) use call::Nowhere;
pub use call::{Call, Caller, Completion, Effect, FailReason, Submit, TickHelp};
pub use command::{ApplyError, CommandHeader, CommandHeaderError, MethodSpec};
pub use refusal::{MembershipRefusal, TransferFailure};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The state half of a replicated type, implemented by `#[derive(Replicated)]`.
///
/// The state is serialized whole into snapshots and sent to nodes that fall behind.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a replicated state",
    label = "needs `#[derive(Replicated)]`",
    note = "add `#[derive(Replicated)]` (with `Serialize` and `Deserialize`) to the struct `{Self}`"
)]
pub trait ReplicatedState: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type's name, used to label its section of a snapshot and in logs.
    const NAME: &'static str;
}

/// The methods half of a replicated type, implemented by `#[replicated]` on its impl block.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no replicated methods",
    label = "needs `#[replicated]` on its impl block",
    note = "put `#[replicated]` on the `impl {Self}` block, and on each method that changes the state"
)]
pub trait ReplicatedMethods: Send + Sync + 'static {
    /// Every replicated method version, ordered by (version, name): `METHODS[i].id == i`. The
    /// order is fixed at compile time, so reordering the source changes nothing.
    const METHODS: &'static [MethodSpec];

    /// The typed call surface: one method per replicated method, each returning a [`Call`].
    /// A node handle dereferences to it, so `node.add(5)` works.
    type Calls: From<Caller> + Send + Sync;

    /// Runs method `id` with its MessagePack-encoded arguments on `self`, returning its
    /// MessagePack-encoded result.
    ///
    /// # Errors
    /// [`ApplyError`] when `id` is unknown or the arguments do not decode. A panic in the method
    /// is not caught here; the driver catches it.
    fn apply(&mut self, id: u16, args: &[u8]) -> Result<Vec<u8>, ApplyError>;

    /// The highest method version this code knows.
    fn code_version() -> u32 {
        Self::METHODS.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// A type whose replicated methods can run on a cluster: see the crate docs of `syncobj`.
pub trait Replicated: ReplicatedState + ReplicatedMethods {}

impl<T: ReplicatedState + ReplicatedMethods> Replicated for T {}
