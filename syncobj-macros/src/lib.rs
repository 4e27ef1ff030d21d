//! Procedural macros for `syncobj`: `#[derive(Replicated)]` and `#[replicated]`.
//!
//! Use them through the `syncobj` crate (`use syncobj::prelude::*;`): the generated code names
//! `::syncobj::__private`. Each macro runs four phases, one module each: `attr` parses the
//! macros' own attributes, `model` builds the typed model of the user's item, `validate`
//! collects every mistake as an error on the user's tokens, and `expand` generates the code.
//! On any error a macro emits the user's item unchanged (minus the inner `#[replicated]`
//! markers) plus one `compile_error!` per mistake, so nothing else fails in cascade.

mod attr;
mod expand;
mod fingerprint;
mod model;
mod validate;

use proc_macro::TokenStream;
use proc_macro2::Span;
use syn::{DeriveInput, Item, parse_macro_input};

use crate::model::{ImplModel, StateModel};

/// Implements `ReplicatedState` for a struct or enum: the state half of a replicated type.
///
/// The type must also implement `Serialize` and `Deserialize` (it is sent whole in snapshots),
/// and be `Send + Sync + 'static`. `ReplicatedState::NAME` is the type's name.
///
/// `#[syncobj(crate = "path")]` on the type names the `syncobj` crate when it is not reachable
/// as `::syncobj` (for example when re-exported by another crate).
///
/// A generic type (`struct Store<K, V>`) is a replicated state for every choice of its
/// parameters that makes it serializable and `Send + Sync + 'static`; its `NAME` is the same
/// for all of them. Lifetime parameters are refused: a replicated state owns its data.
#[proc_macro_derive(Replicated, attributes(syncobj))]
pub fn derive_replicated(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let mut errors = Vec::new();
    let model = StateModel::new(&input, &mut errors);
    validate::validate_state(&model, &mut errors);
    if errors.is_empty() {
        expand::expand_state(&model).into()
    } else {
        expand::with_errors(quote::quote!(), errors).into()
    }
}

/// Makes the methods of an inherent impl block replicated.
///
/// On the impl block, `#[replicated]` (or `#[replicated(crate = "path")]`) turns each method
/// marked `#[replicated]` inside into a command of the cluster's log. A replicated method takes
/// `&mut self` and arguments of owned, serializable types with plain names, and returns a
/// serializable type (or nothing). Methods without the marker are left alone: they are local.
///
/// - `#[replicated(ver = N)]`: the method exists from code version `N` on (0 by default); the
///   cluster only calls it once its enabled code version is at least `N`.
/// - `#[replicated(ver = N, name = "f")]`: the replicated name is `f` rather than the Rust name,
///   so that several versions of one method can live in one impl block as `f`, `f_v1`, ...;
///   they must take and return the same types, and a call runs the highest enabled version.
///
/// For `impl Counter`, the macro generates:
/// - `impl ReplicatedMethods for Counter`, whose `METHODS` table lists every method version
///   ordered by version, then by name (byte order); a method's command identifier is its
///   position in that order, so reordering the source changes nothing, and adding a method at a
///   new, higher version shifts no existing identifier. Each entry carries a fingerprint: the
///   32-bit FNV-1a hash of `{name}@{version}({argument types, comma separated})->{return type}`,
///   each type written as `quote!(#ty).to_string()` renders it (`add@0(i64)->i64`,
///   `reset@1()->()`). `apply` decodes a command, runs the method and encodes its result.
/// - `pub enum CounterCommand`: one variant per method version (`Add { n: i64 }`, `ResetV1 {}`),
///   serializable, with `id()` and `decode(id, args)`.
/// - `pub struct CounterCalls`: the typed call surface, one method per replicated name
///   (`fn add(&self, n: i64) -> Call<i64>`), built from a `Caller`.
///
/// A generic impl block (`impl<K, V> Store<K, V> where K: ...`) makes a generic command enum
/// (`StoreCommand<K, V>`) and call surface (`StoreCalls<K, V>`). The bounds must make every
/// argument and result serializable (`K: Serialize + DeserializeOwned`) and the type
/// `Send + Sync + 'static`. Command identifiers and fingerprints come from the signatures as
/// written (`put@0(K,V)->Option < V >`), so they are the same for every choice of the
/// parameters: nodes agree on them whatever the type arguments, which they must then agree on
/// themselves. Lifetime parameters are refused.
///
/// Only one `#[replicated]` impl block per type. Every mistake is a compile error on the
/// offending tokens, all reported at once.
#[proc_macro_attribute]
pub fn replicated(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as Item);
    let Item::Impl(item) = item else {
        let error = validate::misplaced(&item, Span::call_site());
        return expand::with_errors(item, vec![error]).into();
    };
    let mut errors = Vec::new();
    let krate = attr::parse_impl_args(args.into(), &mut errors);
    let model = ImplModel::new(item, krate, &mut errors);
    validate::validate_impl(&model, &mut errors);
    if errors.is_empty() {
        expand::expand_impl(&model).into()
    } else {
        expand::with_errors(&model.item, errors).into()
    }
}
