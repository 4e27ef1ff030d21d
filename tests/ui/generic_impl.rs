use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize)]
struct Register {
    value: String,
}

#[replicated]
impl<'a> Register {
    #[replicated]
    fn set(&mut self, value: String) {
        self.value = value;
    }
}

fn main() {}
