//! Procedural macros for `syncobj`.
//!
//! This crate will hold `#[derive(Replicated)]` and `#[replicated]` (see the replicated-objects
//! issue). It is part of the workspace from the start so that the layering of
//! `docs/architecture.md` holds from the first commit; it exports nothing yet.
