// Every mistake of an impl block is reported in one compilation.
use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated(ver = 1, colour = "red")]
    fn add(&self, n: i64) -> i64 {
        self.value + n
    }

    #[replicated]
    fn scale<T>(&mut self, _: T) {}

    #[replicated(ver = 1)]
    fn add_twice(&mut self, n: impl Into<i64>) {
        self.value += 2 * n.into();
    }
}

fn main() {}
