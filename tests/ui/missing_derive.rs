use serde::{Deserialize, Serialize};
use syncobj::prelude::*;

#[derive(Default, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

#[replicated]
impl Counter {
    #[replicated]
    fn add(&mut self, n: i64) {
        self.value += n;
    }
}

fn main() {
    let network = MemoryNetwork::new();
    let _ = SyncObj::with_transport(
        "a",
        ["b"],
        Counter::default(),
        SyncObjConf::default(),
        network.endpoint("a"),
    );
}
