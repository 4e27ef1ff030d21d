use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add<N: Into<i64>>(&mut self, n: N) {
        self.value += n.into();
    }
}

fn main() {}
