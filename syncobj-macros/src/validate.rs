//! Phase 3: every check, with every failure collected.
//!
//! Each check appends `syn::Error`s spanned on the user's own tokens and never stops early, so
//! the user sees all the mistakes of an impl block in one compilation. The expansion runs only
//! when this phase found nothing.

use std::collections::HashMap;

use quote::quote;
use syn::visit::Visit;
use syn::{GenericArgument, Lifetime, PathArguments, Type, TypeImplTrait, TypeReference};

use crate::fingerprint::types_string;
use crate::model::{ImplModel, Method, StateModel};

/// The message for a replicated type with lifetime parameters.
const BORROWING_TYPE: &str = "a replicated type owns its state: it cannot have lifetime \
                              parameters (every node decodes it from snapshots, and it lives \
                              as long as the node)";

/// serde (de)serializes tuples of at most this many elements; arguments travel as one tuple.
const ARGS_MAX: usize = 16;

/// Checks a type deriving `Replicated`.
pub(crate) fn validate_state(model: &StateModel, errors: &mut Vec<syn::Error>) {
    if let Some(union) = model.union {
        let message = "Replicated derives on structs and enums, not unions";
        errors.push(syn::Error::new(union, message));
    }
    check_no_lifetimes(&model.generics, errors);
}

/// Checks a `#[replicated]` impl block and all of its replicated methods.
pub(crate) fn validate_impl(model: &ImplModel, errors: &mut Vec<syn::Error>) {
    check_self_type(model, errors);
    for attr in &model.misplaced {
        let message = "#[replicated] goes on methods; this item is not a method";
        errors.push(syn::Error::new_spanned(attr, message));
    }
    for method in &model.methods {
        check_method(method, errors);
    }
    check_unique(&model.methods, errors);
    check_versions_agree(&model.methods, errors);
}

/// The impl block is inherent, for a named type with no lifetime parameters, and has
/// replicated methods. Type and const parameters are welcome: the generated command enum and
/// call surface take the impl's parameters, and command identifiers and fingerprints do not
/// depend on them.
fn check_self_type(model: &ImplModel, errors: &mut Vec<syn::Error>) {
    let item = &model.item;
    if let Some((_, path, _)) = &item.trait_ {
        let message = "#[replicated] works only on inherent impls (`impl Type { ... }`), \
                       not on trait impls";
        errors.push(syn::Error::new_spanned(path, message));
    }
    check_no_lifetimes(&item.generics, errors);
    match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => {
            let lifetimes =
                path.path
                    .segments
                    .iter()
                    .flat_map(|segment| match &segment.arguments {
                        PathArguments::AngleBracketed(args) => args.args.iter().collect(),
                        _ => Vec::new(),
                    });
            for lifetime in lifetimes.filter(|arg| matches!(arg, GenericArgument::Lifetime(_))) {
                errors.push(syn::Error::new_spanned(lifetime, BORROWING_TYPE));
            }
        }
        other => {
            let message = "#[replicated] needs a named type: `impl Name { ... }`";
            errors.push(syn::Error::new_spanned(other, message));
        }
    }
    if model.methods.is_empty() {
        let (impl_token, self_ty) = (&item.impl_token, &item.self_ty);
        let message = "this #[replicated] impl has no replicated method: \
                       mark the methods that change the state with #[replicated]";
        errors.push(syn::Error::new_spanned(
            quote!(#impl_token #self_ty),
            message,
        ));
    }
    if model.methods.len() > usize::from(u16::MAX) + 1 {
        errors.push(syn::Error::new_spanned(
            &item.self_ty,
            "more than 65536 replicated methods",
        ));
    }
}

/// Refuses lifetime parameters, on their tokens.
fn check_no_lifetimes(generics: &syn::Generics, errors: &mut Vec<syn::Error>) {
    for lifetime in generics.lifetimes() {
        errors.push(syn::Error::new_spanned(lifetime, BORROWING_TYPE));
    }
}

/// The checks on one method on its own.
/// The methods a node handle (`SyncObj`, `Consumer`) has of its own: a replicated method of
/// the same name would be shadowed by them on the handle, which dereferences to the calls.
const HANDLE_METHODS: &[&str] = &[
    "code_version",
    "consumer",
    "destroy",
    "destroy_synchronous",
    "do_tick",
    "force_log_compaction",
    "has_quorum",
    "is_leader",
    "is_node_connected",
    "is_ready",
    "leader",
    "other_nodes",
    "print_status",
    "raft_commit_index",
    "raft_current_term",
    "raft_last_applied",
    "read",
    "readonly_nodes",
    "self_node",
    "set_code_version",
    "status",
    "tick_thread_alive",
    "wait_binded",
    "wait_ready",
];

fn check_method(method: &Method, errors: &mut Vec<syn::Error>) {
    let name = method.name_string();
    if HANDLE_METHODS.contains(&name.as_str()) {
        let message = format!(
            "`{name}` is also a method of the node handle (`SyncObj`, `Consumer`), which would \
             shadow this call: `node.{name}(..)` would never reach it. Give the replicated \
             method another name, e.g. `#[replicated(name = \"{name}_value\")]`"
        );
        errors.push(syn::Error::new_spanned(&method.name, message));
    }
    for attr in &method.repeated_attrs {
        let message = "duplicate #[replicated]: give `ver` and `name` in one #[replicated(...)]";
        errors.push(syn::Error::new_spanned(attr, message));
    }
    for cfg in &method.cfgs {
        let message = "a replicated method cannot be conditionally compiled: \
                       every node needs the same method table";
        errors.push(syn::Error::new_spanned(cfg, message));
    }
    check_receiver(method, errors);
    check_signature(method, errors);
    check_args(method, errors);
    if let Some(output) = &method.output {
        check_type(output, "returned by", errors);
    }
}

/// The receiver is `&mut self`: a replicated method changes the state.
fn check_receiver(method: &Method, errors: &mut Vec<syn::Error>) {
    let Some(receiver) = &method.receiver else {
        let message = "a replicated method takes `&mut self`: it changes the replicated state";
        errors.push(syn::Error::new_spanned(&method.rust_ident, message));
        return;
    };
    let Type::Reference(reference) = &*receiver.ty else {
        let message = "a replicated method takes `&mut self`, not `self` by value";
        errors.push(syn::Error::new_spanned(receiver, message));
        return;
    };
    let is_self =
        matches!(&*reference.elem, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"));
    if reference.mutability.is_none() {
        let message = "a replicated method takes `&mut self`; \
                       a `&self` method is a local read: remove #[replicated] to keep it local";
        errors.push(syn::Error::new_spanned(receiver, message));
    } else if !is_self {
        errors.push(syn::Error::new_spanned(
            receiver,
            "a replicated method takes `&mut self`",
        ));
    }
}

/// No generics, `async`, `unsafe` or ABI.
fn check_signature(method: &Method, errors: &mut Vec<syn::Error>) {
    let sig = &method.sig;
    let generic = "a replicated method cannot be generic: \
                   every node must decode its arguments as the same concrete types";
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(&sig.generics, generic));
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(clause, generic));
    }
    if let Some(token) = &sig.asyncness {
        let message =
            "a replicated method cannot be async: it runs to completion as the log is applied";
        errors.push(syn::Error::new_spanned(token, message));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "a replicated method cannot be unsafe",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a replicated method cannot have an ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a replicated method cannot be variadic",
        ));
    }
}

/// Arguments are plain names of owned, concrete types, at most [`ARGS_MAX`] of them.
fn check_args(method: &Method, errors: &mut Vec<syn::Error>) {
    for arg in &method.args {
        let plain =
            matches!(&arg.pat, syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none());
        if !plain {
            let message = "a replicated method's arguments must be plain names \
                           (`n: i64`, or `_n: i64` if unused): they become fields of its command";
            errors.push(syn::Error::new_spanned(&arg.pat, message));
        }
        check_type(&arg.ty, "an argument of", errors);
    }
    if method.args.len() > ARGS_MAX {
        let inputs = &method.sig.inputs;
        let message = format!("a replicated method takes at most {ARGS_MAX} arguments");
        errors.push(syn::Error::new_spanned(inputs, message));
    }
}

/// A type that crosses the log: no `impl Trait`, no references, no lifetimes but `'static`.
/// `role` says how the type is used ("an argument of", "returned by").
fn check_type(ty: &Type, role: &str, errors: &mut Vec<syn::Error>) {
    /// Collects the errors of one type.
    struct Finder<'a> {
        /// How the type is used, for the messages.
        role: &'a str,
        /// Where the errors go.
        errors: &'a mut Vec<syn::Error>,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_impl_trait(&mut self, node: &'ast TypeImplTrait) {
            let message = format!(
                "`impl Trait` cannot be {} a replicated method: name a concrete, serializable type",
                self.role
            );
            self.errors.push(syn::Error::new_spanned(node, message));
        }
        fn visit_type_reference(&mut self, node: &'ast TypeReference) {
            let message = format!(
                "a reference cannot be {} a replicated method: it travels through the log; \
                 use an owned type such as `String` or `Vec<T>`",
                self.role
            );
            self.errors.push(syn::Error::new_spanned(node, message));
        }
        fn visit_lifetime(&mut self, node: &'ast Lifetime) {
            if node.ident != "static" {
                let message = format!(
                    "a borrowed type cannot be {} a replicated method: only `'static` lifetimes",
                    self.role
                );
                self.errors.push(syn::Error::new_spanned(node, message));
            }
        }
    }
    Finder { role, errors }.visit_type(ty);
}

/// Each (name, version) appears once, each Rust method once, each command variant once.
fn check_unique(methods: &[Method], errors: &mut Vec<syn::Error>) {
    let mut versions: HashMap<(String, u32), &Method> = HashMap::new();
    let mut variants: HashMap<String, &Method> = HashMap::new();
    let mut rust_names: HashMap<String, &Method> = HashMap::new();
    for method in methods {
        let (name, version) = (method.name_string(), method.version);
        if versions.insert((name.clone(), version), method).is_some() {
            let message = format!(
                "`{name}` version {version} is declared twice: \
                 each replicated name and version must be unique"
            );
            errors.push(syn::Error::new_spanned(&method.name, message));
            continue;
        }
        if let Some(first) = rust_names.insert(method.rust_ident.to_string(), method) {
            let message = format!(
                "two replicated methods named `{}`: give version {} its own Rust name and keep \
                 the replicated name, like `#[replicated(ver = {}, name = \"{}\")] fn {}_v{}`",
                method.rust_ident, version, version, first.name, method.rust_ident, version
            );
            errors.push(syn::Error::new_spanned(&method.rust_ident, message));
        }
        let variant = method.variant().to_string();
        if let Some(first) = variants.insert(variant.clone(), method) {
            let message = format!(
                "`{name}` version {version} would have the command variant `{variant}`, \
                 like `{}` version {}: rename one of them",
                first.name, first.version
            );
            errors.push(syn::Error::new_spanned(&method.name, message));
        }
    }
}

/// All versions of one name take and return the same types, so one call surface fits them.
fn check_versions_agree(methods: &[Method], errors: &mut Vec<syn::Error>) {
    let mut lowest: HashMap<String, &Method> = HashMap::new();
    for method in methods {
        let entry = lowest.entry(method.name_string()).or_insert(method);
        if method.version < entry.version {
            *entry = method;
        }
    }
    for method in methods {
        let Some(base) = lowest.get(&method.name_string()) else {
            continue;
        };
        let (base_types, types) = (types_string(base), types_string(method));
        if base.version == method.version || base_types == types {
            continue;
        }
        let message = format!(
            "every version of `{}` must take and return the same types: \
             version {} is `{base_types}`, version {} is `{types}`",
            method.name, base.version, method.version
        );
        errors.push(syn::Error::new_spanned(&method.sig, message));
    }
}

/// The error for `#[replicated]` on an item that is neither an impl block nor a method in a
/// `#[replicated]` impl block. `attribute` is the attribute's span (the macro's call site).
pub(crate) fn misplaced(item: &syn::Item, attribute: proc_macro2::Span) -> syn::Error {
    let message = match item {
        syn::Item::Fn(function) => match function.sig.receiver() {
            Some(_) => {
                "#[replicated] on a method only works inside a #[replicated] impl block: \
                        put #[replicated] on the impl block too"
            }
            None => {
                "#[replicated] on a method only works inside a #[replicated] impl block; \
                     this is a free function"
            }
        },
        syn::Item::Struct(_) | syn::Item::Enum(_) | syn::Item::Union(_) => {
            "#[replicated] goes on the type's impl block; the type itself takes #[derive(Replicated)]"
        }
        syn::Item::Trait(_) => "#[replicated] goes on an inherent impl block, not on a trait",
        _ => "#[replicated] goes on an inherent impl block and on the methods inside it",
    };
    syn::Error::new(attribute, message)
}
