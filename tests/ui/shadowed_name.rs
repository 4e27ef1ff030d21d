use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Store {
    values: Vec<String>,
}

#[replicated]
impl Store {
    #[replicated]
    fn read(&mut self, key: String) -> usize {
        self.values.push(key);
        self.values.len()
    }
}

fn main() {}
