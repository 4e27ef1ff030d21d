//! Procedural macros for `syncobj`: `#[derive(Replicated)]` and `#[replicated]`.

use proc_macro::TokenStream;

/// Placeholder until the macro pipeline lands.
#[proc_macro_derive(Replicated, attributes(syncobj))]
pub fn derive_replicated(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Placeholder until the macro pipeline lands.
#[proc_macro_attribute]
pub fn replicated(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
