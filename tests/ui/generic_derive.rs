use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Named<'a> {
    name: &'a str,
}

fn main() {}
