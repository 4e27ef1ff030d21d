use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
#[syncobj(krate = "::syncobj")]
struct Counter {
    value: i64,
}

fn main() {}
