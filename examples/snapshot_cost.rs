//! What a snapshot of a large state costs on the tick thread, measured two ways (issue 5: "take
//! the state's serialized form or a copy on the tick thread if that is fast ... measure which
//! is cheaper for a 100 MB state"): serializing it (what syncobj does: the bytes then go to a
//! writer thread), or cloning it (so that another thread could serialize the copy); and what
//! writing and syncing the bytes costs on the writer thread.
//!
//! ```text
//! cargo run --release --example snapshot_cost [DIR]
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A key-value state of about 100 MB: a million entries of a 16-byte key and an 84-byte value.
#[derive(Clone, Serialize, Deserialize)]
struct KeyValues {
    entries: BTreeMap<String, String>,
}

/// A state of one 100 MB blob.
#[derive(Clone, Serialize, Deserialize)]
struct Blob {
    data: bytes::Bytes,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to standard error at the level RUST_LOG names (errors only by default).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let dir = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let kv = KeyValues {
        entries: (0..1_000_000_u32)
            .map(|i| (format!("key-{i:012}"), format!("{i:084}")))
            .collect(),
    };
    let blob = Blob {
        data: bytes::Bytes::from(vec![7_u8; 100 << 20]),
    };
    measure("key-value map, 1 M entries", &kv, &dir)?;
    measure("one 100 MB blob", &blob, &dir)?;
    Ok(())
}

fn measure<T: Clone + Serialize>(
    name: &str,
    state: &T,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let copy = state.clone();
    let clone_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(copy);
    let started = Instant::now();
    let bytes = rmp_serde::to_vec(state)?;
    let serialize_ms = started.elapsed().as_secs_f64() * 1e3;
    let path = dir.join(format!("snapshot-cost-{}", std::process::id()));
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    let write_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(file);
    std::fs::remove_file(&path)?;
    println!(
        "{name}: {:.1} MB serialized; on the tick thread: serialize {serialize_ms:.0} ms, clone {clone_ms:.0} ms; on the writer thread: write + sync {write_ms:.0} ms",
        bytes.len() as f64 / 1e6
    );
    Ok(())
}
