use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated(version = 1)]
    fn add(&mut self, n: i64) {
        self.value += n;
    }
}

fn main() {}
