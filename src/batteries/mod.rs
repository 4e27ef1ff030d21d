//! Ready-made replicated data structures: PySyncObj's "batteries".

mod lock;

pub use lock::{LockTable, LockTableCalls, LockTableCommand, ReplLockManager, TryAcquire};
