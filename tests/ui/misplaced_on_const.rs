use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    const STEP: i64 = 1;

    #[replicated]
    fn step(&mut self) {
        self.value += Self::STEP;
    }
}

fn main() {}
