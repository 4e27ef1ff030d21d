use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

struct Amount(i64);

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: Amount) {
        self.value += n.0;
    }
}

fn main() {}
