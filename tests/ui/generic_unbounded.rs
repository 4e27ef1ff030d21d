use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize, Replicated)]
struct Register<T> {
    value: Option<T>,
}

#[replicated]
impl<T: Send + Sync + 'static> Register<T> {
    #[replicated]
    fn set(&mut self, value: T) -> Option<T> {
        self.value.replace(value)
    }
}

fn main() {}
