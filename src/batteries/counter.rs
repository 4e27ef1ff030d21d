//! `ReplCounter`: a replicated `i64`.

use serde::{Deserialize, Serialize};

use crate::{Replicated, replicated};

/// A replicated counter: an `i64` that starts at 0 (PySyncObj's `ReplCounter`).
///
/// Every replicated method returns the new value. The arithmetic wraps around on overflow
/// (`i64::MAX + 1` is `i64::MIN`) rather than panicking, so that no command can stop a node.
///
/// ```
/// use std::time::Duration;
/// use syncobj::batteries::ReplCounter;
/// use syncobj::prelude::*;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = MemoryNetwork::new();
/// let no_partners: [&str; 0] = [];
/// let node = SyncObj::with_transport(
///     "solo",
///     no_partners,
///     ReplCounter::default(),
///     SyncObjConf::default(),
///     network.endpoint("solo"),
/// )?;
/// let wait = Duration::from_secs(10);
/// assert_eq!(node.set(40).wait_timeout(wait)?, 40);
/// assert_eq!(node.inc().wait_timeout(wait)?, 41);
/// assert_eq!(node.add(3).wait_timeout(wait)?, 44);
/// assert_eq!(node.sub(2).wait_timeout(wait)?, 42);
/// // A local read of this node's copy.
/// assert_eq!(node.read().get(), 42);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Replicated)]
pub struct ReplCounter {
    /// The current value.
    value: i64,
}

#[replicated]
impl ReplCounter {
    /// A counter holding `value`.
    pub fn new(value: i64) -> ReplCounter {
        ReplCounter { value }
    }

    /// Sets the value to `value`; returns it.
    #[replicated]
    pub fn set(&mut self, value: i64) -> i64 {
        self.value = value;
        self.value
    }

    /// Adds `n` (wrapping around on overflow); returns the new value.
    #[replicated]
    pub fn add(&mut self, n: i64) -> i64 {
        self.value = self.value.wrapping_add(n);
        self.value
    }

    /// Subtracts `n` (wrapping around on overflow); returns the new value.
    #[replicated]
    pub fn sub(&mut self, n: i64) -> i64 {
        self.value = self.value.wrapping_sub(n);
        self.value
    }

    /// Adds 1 (wrapping around on overflow); returns the new value.
    #[replicated]
    pub fn inc(&mut self) -> i64 {
        self.add(1)
    }

    /// The value on this node (local).
    pub fn get(&self) -> i64 {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::batteries::tests::{call, round_trip};

    /// PySyncObj's `test_ReplCounter`, on the state directly.
    #[test]
    fn pysyncobj_repl_counter() {
        let mut c = ReplCounter::default();
        assert_eq!(c.set(42), 42);
        assert_eq!(c.get(), 42);
        assert_eq!(c.add(10), 52);
        assert_eq!(c.get(), 52);
        assert_eq!(c.sub(20), 32);
        assert_eq!(c.get(), 32);
        assert_eq!(c.inc(), 33);
        assert_eq!(c.get(), 33);
    }

    #[test]
    fn arithmetic_wraps_around() {
        let mut c = ReplCounter::new(i64::MAX);
        assert_eq!(c.inc(), i64::MIN);
        assert_eq!(c.sub(1), i64::MAX);
        assert_eq!(c.add(i64::MIN), -1);
    }

    /// One operation of the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Set(i64),
        Add(i64),
        Sub(i64),
        Inc,
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![any::<i64>(), -5i64..5];
        prop_oneof![
            value.clone().prop_map(Op::Set),
            value.clone().prop_map(Op::Add),
            value.prop_map(Op::Sub),
            Just(Op::Inc),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Through the generated `apply`, the counter behaves as an `i64` with wrapping
        /// arithmetic, and survives a MessagePack round trip.
        #[test]
        fn behaves_as_a_wrapping_i64(ops in prop::collection::vec(op(), 0..40)) {
            let mut counter = ReplCounter::default();
            let mut model = 0i64;
            for op in ops {
                let got: i64 = match op {
                    Op::Set(v) => { model = v; call(&mut counter, "set", (v,)) }
                    Op::Add(v) => { model = model.wrapping_add(v); call(&mut counter, "add", (v,)) }
                    Op::Sub(v) => { model = model.wrapping_sub(v); call(&mut counter, "sub", (v,)) }
                    Op::Inc => { model = model.wrapping_add(1); call(&mut counter, "inc", ()) }
                };
                prop_assert_eq!(got, model);
                prop_assert_eq!(counter.get(), model);
            }
            let mut copy = round_trip(&counter);
            prop_assert_eq!(copy, counter);
            prop_assert_eq!(call::<_, _, i64>(&mut copy, "inc", ()), model.wrapping_add(1));
        }
    }
}
