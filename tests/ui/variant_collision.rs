use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated(ver = 1)]
    fn f(&mut self) {}

    #[replicated]
    fn f_v1(&mut self) {}
}

fn main() {}
