use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Log {
    lines: Vec<String>,
}

#[replicated]
impl Log {
    #[replicated]
    fn append(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }
}

fn main() {}
