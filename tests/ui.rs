//! Compile-fail tests of the macros' diagnostics: one small case per mistake in `tests/ui/`,
//! each with the compiler output it must produce checked in beside it (`.stderr`).
//!
//! After changing a message, regenerate with `TRYBUILD=overwrite cargo test --test ui` and read
//! every changed `.stderr`: it must point at the user's tokens and read well.

/// Every case in `tests/ui/` fails to compile with exactly its checked-in diagnostics.
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
