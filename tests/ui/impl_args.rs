use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated(ver = 1)]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) {
        self.value += n;
    }
}

fn main() {}
