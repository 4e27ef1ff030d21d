//! Method fingerprints, computed at expansion time.
//!
//! A fingerprint is the 32-bit FNV-1a hash of the method's signature string
//!
//! ```text
//! {name}@{version}({argument types, separated by ","})->{return type, or ()}
//! ```
//!
//! where each type is written as `quote!(#ty).to_string()` renders the type as it appears in
//! the source (so `Vec<u8>` is `Vec < u8 >`, and `Self` stays `Self`). For example
//! `#[replicated] fn add(&mut self, n: i64) -> i64` hashes `add@0(i64)->i64`, and
//! `#[replicated(ver = 1)] fn reset(&mut self)` hashes `reset@1()->()`. Argument names and the
//! method body do not count. Changing this scheme changes every fingerprint, which makes old
//! and new nodes refuse each other's commands: do not.

use quote::quote;

use crate::model::Method;

/// FNV-1a's 32-bit offset basis.
const FNV_OFFSET: u32 = 0x811c_9dc5;
/// FNV-1a's 32-bit prime.
const FNV_PRIME: u32 = 0x0100_0193;

/// The fingerprint of one method version (see the module docs).
pub(crate) fn fingerprint(method: &Method) -> u32 {
    fnv1a(signature_string(method).as_bytes())
}

/// The string a fingerprint hashes: `{name}@{version}({types})->{return type}`.
pub(crate) fn signature_string(method: &Method) -> String {
    format!(
        "{}@{}{}",
        method.name_string(),
        method.version,
        types_string(method)
    )
}

/// The part of the signature string that versions of one method must share:
/// `({argument types})->{return type}`.
pub(crate) fn types_string(method: &Method) -> String {
    let args: Vec<String> = method.args.iter().map(|arg| type_string(&arg.ty)).collect();
    let output = match &method.output {
        Some(ty) => type_string(ty),
        None => "()".to_string(),
    };
    format!("({})->{}", args.join(","), output)
}

/// A type's tokens as a string, normalized by `quote!`.
fn type_string(ty: &syn::Type) -> String {
    quote!(#ty).to_string()
}

/// The 32-bit FNV-1a hash of `bytes`.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV_OFFSET, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a test vectors.
    #[test]
    fn fnv1a_vectors() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    /// The signature string follows the documented shape.
    #[test]
    fn signature_strings() {
        let item: syn::ItemImpl = syn::parse_quote! {
            impl T {
                #[replicated] fn add(&mut self, n: i64, v: Vec<u8>) -> i64 { n }
                #[replicated(ver = 1)] fn reset(&mut self) {}
                #[replicated(ver = 2, name = "reset")] fn reset_v2(&mut self) -> () {}
            }
        };
        let model = crate::model::ImplModel::new(item, None, &mut Vec::new());
        let strings: Vec<_> = model.methods.iter().map(signature_string).collect();
        assert_eq!(
            strings,
            [
                "add@0(i64,Vec < u8 >)->i64",
                "reset@1()->()",
                "reset@2()->()"
            ]
        );
        assert_eq!(
            fingerprint(&model.methods[0]),
            fnv1a(b"add@0(i64,Vec < u8 >)->i64")
        );
    }
}
