//! A temporary directory for tests on the real file system, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes directories made by one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system's temporary directory.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new, empty directory whose name includes `label`.
    pub(crate) fn new(label: &str) -> TempDir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("syncobj-{label}-{}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        // A leftover from an earlier run with the same process id may exist.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the system temporary directory is writable");
        TempDir { path }
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
