use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

struct Total(i64);

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) -> Total {
        self.value += n;
        Total(self.value)
    }
}

fn main() {}
