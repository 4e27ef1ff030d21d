use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Point {
    x: i64,
    y: i64,
}

#[replicated]
impl Point {
    #[replicated]
    fn set(&mut self, (x, y): (i64, i64)) {
        self.x = x;
        self.y = y;
    }
}

fn main() {}
