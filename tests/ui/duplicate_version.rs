use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated(ver = 1)]
    fn add(&mut self, n: i64) {
        self.value += n;
    }

    #[replicated(ver = 1, name = "add")]
    fn add_again(&mut self, n: i64) {
        self.value += 2 * n;
    }
}

fn main() {}
