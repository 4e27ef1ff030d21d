use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated(ver = 1, name = "add one")]
    fn add_one(&mut self) {
        self.value += 1;
    }
}

fn main() {}
