use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated(ver = "x")]
    fn add(&mut self, n: i64) {
        self.value += n;
    }

    #[replicated(ver = -1)]
    fn sub(&mut self, n: i64) {
        self.value -= n;
    }
}

fn main() {}
