use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Register<T> {
    value: T,
}

fn main() {}
