use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize)]
struct Register<T> {
    value: T,
}

#[replicated]
impl<T: Send + Sync + 'static> Register<T> {
    #[replicated]
    fn set(&mut self, value: T) {
        self.value = value;
    }
}

fn main() {}
