use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

trait Add {
    fn add(&mut self, n: i64);
}

#[replicated]
impl Add for Counter {
    #[replicated]
    fn add(&mut self, n: i64) {
        self.value += n;
    }
}

fn main() {}
