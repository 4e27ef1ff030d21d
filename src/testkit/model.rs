//! The sequential specification a history is checked against.

use std::fmt::Debug;
use std::hash::Hash;

/// An object's sequential specification: what each operation does to the object's state and
/// which outputs it may return, when operations run one at a time.
///
/// The checker looks for an order of the history's operations, consistent with their times,
/// in which every operation is a valid [`step`](Model::step) from the state the ones before it
/// left.
///
/// ```
/// use syncobj::testkit::Model;
///
/// /// A log that appends and reads its length.
/// struct Log;
///
/// #[derive(Clone, Debug)]
/// enum LogInput { Append(u8), Len }
///
/// impl Model for Log {
///     type State = Vec<u8>;
///     type Input = LogInput;
///     /// `Append` returns nothing, `Len` the length.
///     type Output = Option<usize>;
///
///     fn init(&self) -> Vec<u8> {
///         Vec::new()
///     }
///
///     fn step(&self, state: &Vec<u8>, input: &LogInput, output: Option<&Option<usize>>) -> Option<Vec<u8>> {
///         match (input, output) {
///             (LogInput::Append(byte), None | Some(None)) => {
///                 let mut next = state.clone();
///                 next.push(*byte);
///                 Some(next)
///             }
///             (LogInput::Len, None) => Some(state.clone()),
///             (LogInput::Len, Some(Some(len))) => (*len == state.len()).then(|| state.clone()),
///             _ => None,
///         }
///     }
/// }
/// ```
pub trait Model {
    /// The object's state. The checker remembers the (operations done, state) pairs it has
    /// explored, so equal states must compare and hash equal; keep it small.
    type State: Clone + Eq + Hash;
    /// An operation's input: what was asked.
    type Input: Clone + Debug;
    /// An operation's output: what was returned.
    type Output: Clone + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` runs on `state` and returns `output`, or `None` if it cannot
    /// return `output` from `state`.
    ///
    /// `output` is `None` when the operation's outcome is unknown (it timed out or failed in a
    /// way that may have taken effect): return the state it leaves if it takes effect here,
    /// whatever it returned. The checker also tries leaving such an operation out.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Which partition `input` belongs to, for a model whose operations on different
    /// partitions never affect each other (a map's keys): the checker then checks each
    /// partition alone, from [`init`](Model::init), which is far faster than the whole history
    /// at once.
    ///
    /// The default puts every operation in one partition. Two partitions that share a number
    /// are checked together, which is slower but still correct, so a hash of the key will do.
    fn partition(&self, input: &Self::Input) -> u64 {
        let _ = input;
        0
    }
}
