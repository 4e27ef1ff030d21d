use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: impl Into<i64>) {
        self.value += n.into();
    }
}

fn main() {}
