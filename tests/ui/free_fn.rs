use syncobj::prelude::*;

#[replicated]
fn add(n: i64) -> i64 {
    n + 1
}

fn main() {}
