use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[replicated]
#[derive(Default, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

fn main() {}
