use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }

    #[replicated(ver = 1, name = "add")]
    fn add_v1(&mut self, n: i32) {
        self.value += i64::from(n);
    }
}

fn main() {}
