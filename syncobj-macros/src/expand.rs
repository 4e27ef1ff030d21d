//! Phase 4: code generation, from a model that passed validation.
//!
//! For `#[replicated] impl Counter { ... }` this emits, next to the impl block (its methods'
//! `#[replicated]` attributes removed):
//!
//! - static assertions that every argument and return type is serializable, spanned on the
//!   user's type so that rustc's error points there;
//! - `pub enum CounterCommand`, one variant per method version in identifier order, with
//!   `id()` and `decode(id, args)`;
//! - `impl ReplicatedMethods for Counter`: the `METHODS` table, `type Calls`, and `apply`;
//! - `pub struct CounterCalls`, the typed call surface, one method per replicated name.
//!
//! A generic impl block gives its parameters, bounds and `where` clause to every generated
//! item: the command enum (plus a hidden, uninhabited variant that uses every type parameter),
//! the call surface (declared without bounds, with a `PhantomData`), and their impls.
//!
//! Every path is absolute, through `{crate}::__private` or `::core` / `::std`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Generics, Ident, Path, QSelf, Type};

use crate::fingerprint::fingerprint;
use crate::model::{ImplModel, Method, StateModel};

/// The generated code for `#[derive(Replicated)]`: the `ReplicatedState` impl. A generic type
/// is a replicated state for every choice of its parameters that makes it serializable and
/// shareable between threads; its name is the same for all of them.
pub(crate) fn expand_state(model: &StateModel) -> TokenStream {
    let krate = &model.krate;
    let ident = &model.ident;
    let name = syn::ext::IdentExt::unraw(ident).to_string();
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let where_clause = match model.generics.params.is_empty() {
        true => quote!(#where_clause),
        false => {
            let mut clause = where_clause
                .cloned()
                .unwrap_or_else(|| syn::parse_quote!(where));
            clause.predicates.push(syn::parse_quote! {
                #ident #ty_generics: #krate::__private::serde::Serialize
                    + #krate::__private::serde::de::DeserializeOwned
                    + ::core::marker::Send
                    + ::core::marker::Sync
                    + 'static
            });
            quote!(#clause)
        }
    };
    // Spanned on the type's name, so that a missing `Serialize` or `Deserialize` (supertraits
    // of `ReplicatedState`) is reported there.
    quote_spanned! {ident.span()=>
        #[automatically_derived]
        impl #impl_generics #krate::__private::ReplicatedState for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
        }
    }
}

/// The user's item followed by one `compile_error!` per error: what a macro emits on error.
pub(crate) fn with_errors(item: impl quote::ToTokens, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.into_iter().map(|error| error.to_compile_error());
    quote!(#item #(#errors)*)
}

/// The generated code for a `#[replicated]` impl block that passed validation.
pub(crate) fn expand_impl(model: &ImplModel) -> TokenStream {
    let expansion = Expansion::new(model);
    let item = &model.item;
    let assertions = expansion.assertions();
    let command = expansion.command_enum();
    let command_impl = expansion.command_impl();
    let methods_impl = expansion.methods_impl();
    let calls = expansion.calls();
    quote! {
        #item
        #assertions
        #command
        #command_impl
        #methods_impl
        #calls
    }
}

/// What the code generation needs, computed once.
struct Expansion<'a> {
    /// `{crate}::__private`.
    private: TokenStream,
    /// The self type as written in the impl header.
    self_ty: &'a Type,
    /// The impl block's generics, as written.
    generics: &'a Generics,
    /// The impl block's generics plus `Ty: Serialize + DeserializeOwned` for every argument
    /// and result type that names a type parameter: the generics of every generated item, so
    /// that a missing bound is reported once, by the assertions, on the user's type.
    bounded: Generics,
    /// The self type's name, as text for the docs.
    type_name: String,
    /// `{Type}Command`.
    command: Ident,
    /// `{Type}Calls`.
    calls: Ident,
    /// The method versions in identifier order.
    entries: Vec<Entry<'a>>,
}

/// One method version with what is generated from it.
struct Entry<'a> {
    /// Its command identifier: its position in identifier order.
    id: u16,
    /// The method.
    method: &'a Method,
    /// Its command variant.
    variant: Ident,
    /// Its fingerprint.
    fingerprint: u32,
    /// Its argument types, with `Self` replaced by the self type.
    arg_types: Vec<Type>,
    /// Its return type (`()` when none is written), with `Self` replaced.
    output: Type,
}

impl<'a> Expansion<'a> {
    /// Lays out the expansion of `model`.
    fn new(model: &'a ImplModel) -> Self {
        let self_ty = &*model.item.self_ty;
        let krate = &model.krate;
        let entries: Vec<Entry<'_>> = model
            .ordered()
            .into_iter()
            .zip(0u16..)
            .map(|(method, id)| Entry {
                id,
                method,
                variant: method.variant(),
                fingerprint: fingerprint(method),
                arg_types: method
                    .args
                    .iter()
                    .map(|arg| resolve_self(&arg.ty, self_ty))
                    .collect(),
                output: match &method.output {
                    Some(ty) => resolve_self(ty, self_ty),
                    None => syn::parse_quote!(()),
                },
            })
            .collect();
        let private = quote!(#krate::__private);
        let bounded = serializable_bounds(&model.item.generics, &entries, &private);
        Expansion {
            private,
            self_ty,
            generics: &model.item.generics,
            bounded,
            type_name: model.ident.to_string(),
            command: format_ident!("{}Command", model.ident),
            calls: format_ident!("{}Calls", model.ident),
            entries,
        }
    }

    /// Static assertions that the argument and return types are serializable, each spanned on
    /// the user's type.
    fn assertions(&self) -> TokenStream {
        let private = &self.private;
        let mut checks = Vec::new();
        for entry in &self.entries {
            let written_args = entry.method.args.iter().map(|arg| &arg.ty);
            for (written, ty) in written_args.zip(&entry.arg_types) {
                checks.push(quote_spanned!(written.span()=>
                    replicated_argument_must_be_serializable::<#ty>();
                ));
            }
            if let Some(written) = &entry.method.output {
                let ty = &entry.output;
                checks.push(quote_spanned!(written.span()=>
                    replicated_result_must_be_serializable::<#ty>();
                ));
            }
        }
        let bound = quote! {
            #private::serde::Serialize + #private::serde::de::DeserializeOwned
        };
        let (impl_generics, _, where_clause) = self.generics.split_for_impl();
        quote! {
            const _: () = {
                fn replicated_argument_must_be_serializable<T: #bound>() {}
                fn replicated_result_must_be_serializable<T: #bound>() {}
                #[allow(dead_code)]
                fn replicated_types #impl_generics () #where_clause {
                    #(#checks)*
                }
            };
        }
    }

    /// The command enum, one variant per method version in identifier order.
    fn command_enum(&self) -> TokenStream {
        let private = &self.private;
        let serde_crate = format!("{}::serde", private).replace(' ', "");
        let variants = self.entries.iter().map(|entry| {
            let (variant, id) = (&entry.variant, entry.id);
            let doc = format!(
                "`{}` version {}: command identifier {id}.",
                entry.method.name, entry.method.version
            );
            let fields = entry
                .method
                .args
                .iter()
                .zip(&entry.arg_types)
                .map(|(arg, ty)| {
                    let ident = &arg.ident;
                    let doc = format!("The argument `{ident}`.");
                    quote!(#[doc = #doc] #ident: #ty)
                });
            quote!(#[doc = #doc] #variant { #(#fields),* })
        });
        let doc = format!(
            "The commands of the replicated methods of `{}`: one variant per method version, \
             in identifier order (by version, then by name). Generated by `#[replicated]`.",
            self.type_name
        );
        let command = &self.command;
        let (generics, where_clause) = (&self.bounded, &self.bounded.where_clause);
        let types = self.phantom_types();
        // serde would add `K: Deserialize<'de>` for each parameter, which clashes with a
        // `K: DeserializeOwned` of the user's bounds; the user's bounds are the ones to use.
        let serde_bound = types.is_some().then(|| quote!(#[serde(bound = "")]));
        let phantom = types.as_ref().map(|types| {
            quote! {
                #[doc(hidden)]
                #[serde(skip)]
                __Types(::core::marker::PhantomData<#types>, ::core::convert::Infallible)
            }
        });
        let variants = variants.chain(phantom);
        quote! {
            #[doc = #doc]
            #[derive(#private::serde::Serialize, #private::serde::Deserialize)]
            #[serde(crate = #serde_crate)]
            #serde_bound
            #[allow(unreachable_pub, private_interfaces)]
            pub enum #command #generics #where_clause {
                #(#variants),*
            }
        }
    }

    /// `id()` and `decode()` of the command enum.
    fn command_impl(&self) -> TokenStream {
        let private = &self.private;
        let ids = self.entries.iter().map(|entry| {
            let (variant, id) = (&entry.variant, entry.id);
            quote!(Self::#variant { .. } => #id)
        });
        let ids = ids.chain(self.uninhabited_arm(quote!(Self), quote!(*never)));
        let decoders = self.entries.iter().map(|entry| self.decoder(entry));
        let command = &self.command;
        let (impl_generics, ty_generics, where_clause) = self.bounded.split_for_impl();
        quote! {
            #[automatically_derived]
            #[allow(dead_code, unreachable_pub)]
            impl #impl_generics #command #ty_generics #where_clause {
                #[doc = "The command identifier: the position of this method version in `METHODS`."]
                pub fn id(&self) -> u16 {
                    match self {
                        #(#ids),*
                    }
                }

                #[doc = "Decodes command `id` from the MessagePack encoding of its argument tuple,"]
                #[doc = "as `Caller::call` writes it."]
                #[doc = ""]
                #[doc = "# Errors"]
                #[doc = "`ApplyError::UnknownMethod` for an identifier this code does not have,"]
                #[doc = "`ApplyError::BadArguments` when the arguments do not decode."]
                pub fn decode(
                    id: u16,
                    args: &[u8],
                ) -> ::core::result::Result<Self, #private::ApplyError> {
                    match id {
                        #(#decoders)*
                        _ => ::core::result::Result::Err(#private::ApplyError::UnknownMethod(id)),
                    }
                }
            }
        }
    }

    /// The match arm of `decode` for one method version.
    fn decoder(&self, entry: &Entry<'_>) -> TokenStream {
        let private = &self.private;
        let (id, variant, name) = (entry.id, &entry.variant, entry.method.name_string());
        let idents: Vec<&Ident> = entry.method.args.iter().map(|arg| &arg.ident).collect();
        let types = &entry.arg_types;
        let error = quote! {
            |error| #private::ApplyError::BadArguments {
                method: #name,
                reason: ::std::string::ToString::to_string(&error),
            }
        };
        quote! {
            #id => {
                let (#(#idents,)*) = #private::rmp_serde::from_slice::<(#(#types,)*)>(args)
                    .map_err(#error)?;
                ::core::result::Result::Ok(Self::#variant { #(#idents),* })
            }
        }
    }

    /// `impl ReplicatedMethods`: the method table, the call surface type, and `apply`.
    fn methods_impl(&self) -> TokenStream {
        let private = &self.private;
        let (self_ty, command, calls) = (self.self_ty, &self.command, &self.calls);
        let specs = self.entries.iter().map(|entry| self.spec(entry));
        let arms = self.entries.iter().map(|entry| self.apply_arm(entry));
        let arms = arms.chain(self.uninhabited_arm(quote!(#command), quote!(never)));
        let (impl_generics, ty_generics, where_clause) = self.bounded.split_for_impl();
        // Spanned on the self type: a parameter that is not `Send + Sync + 'static` is
        // reported there.
        quote_spanned! {self_ty.span()=>
            #[automatically_derived]
            impl #impl_generics #private::ReplicatedMethods for #self_ty #where_clause {
                const METHODS: &'static [#private::MethodSpec] = &[#(#specs),*];

                type Calls = #calls #ty_generics;

                // Applying an old, deprecated version is what `apply` is for.
                #[allow(deprecated)]
                fn apply(
                    &mut self,
                    id: u16,
                    args: &[u8],
                ) -> ::core::result::Result<::std::vec::Vec<u8>, #private::ApplyError> {
                    match <#command #ty_generics>::decode(id, args)? {
                        #(#arms)*
                    }
                }
            }
        }
    }

    /// The impl's parameters without their bounds, to declare the call surface:
    /// `<K, V, const N: usize>`. The bounds go on its impl blocks.
    fn declared_generics(&self) -> TokenStream {
        let params = self.generics.params.iter().filter_map(|param| match param {
            syn::GenericParam::Type(param) => Some(param.ident.to_token_stream()),
            syn::GenericParam::Const(param) => {
                let (ident, ty) = (&param.ident, &param.ty);
                Some(quote!(const #ident: #ty))
            }
            // Refused by the validator.
            syn::GenericParam::Lifetime(_) => None,
        });
        match self.generics.params.is_empty() {
            true => TokenStream::new(),
            false => quote!(<#(#params),*>),
        }
    }

    /// The type the command enum's hidden variant holds in a `PhantomData`, so that it uses
    /// every type parameter of the impl: `fn() -> (K, V)`, which is `Send`, `Sync` and
    /// `Unpin` whatever the parameters are. `None` without type parameters.
    fn phantom_types(&self) -> Option<TokenStream> {
        let params: Vec<&Ident> = self.generics.type_params().map(|p| &p.ident).collect();
        (!params.is_empty()).then(|| quote!(fn() -> (#(#params,)*)))
    }

    /// The match arm of the hidden, uninhabited variant (`None` without type parameters):
    /// `{enum_path}::__Types(_, never) => match {never} {}`.
    fn uninhabited_arm(&self, enum_path: TokenStream, never: TokenStream) -> Option<TokenStream> {
        self.phantom_types()
            .map(|_| quote!(#enum_path::__Types(_, never) => match #never {}))
    }

    /// The `MethodSpec` of one method version.
    fn spec(&self, entry: &Entry<'_>) -> TokenStream {
        let private = &self.private;
        let (id, name, version) = (entry.id, entry.method.name_string(), entry.method.version);
        let fingerprint = syn::LitInt::new(
            &format!("{:#010x}u32", entry.fingerprint),
            Span::call_site(),
        );
        quote! {
            #private::MethodSpec { id: #id, name: #name, version: #version, fingerprint: #fingerprint }
        }
    }

    /// The match arm of `apply` for one method version: run it, encode its result.
    fn apply_arm(&self, entry: &Entry<'_>) -> TokenStream {
        let private = &self.private;
        let (command, variant, name) = (&self.command, &entry.variant, entry.method.name_string());
        let method = &entry.method.rust_ident;
        let idents: Vec<&Ident> = entry.method.args.iter().map(|arg| &arg.ident).collect();
        let error = quote! {
            |error| #private::ApplyError::BadResult {
                method: #name,
                reason: ::std::string::ToString::to_string(&error),
            }
        };
        let run = match entry.method.output {
            Some(_) => quote!(#private::rmp_serde::to_vec(&self.#method(#(#idents),*))),
            None => quote!(#private::rmp_serde::to_vec(&())),
        };
        let before = entry
            .method
            .output
            .is_none()
            .then(|| quote!(self.#method(#(#idents),*);));
        quote! {
            #command::#variant { #(#idents),* } => {
                #before
                #run.map_err(#error)
            }
        }
    }

    /// The typed call surface: the struct, `From<Caller>`, and one method per replicated name.
    fn calls(&self) -> TokenStream {
        let private = &self.private;
        let calls = &self.calls;
        let doc = format!(
            "Typed calls of the replicated methods of `{}`: each submits a command to the \
             cluster and returns a `Call` for its result. Generated by `#[replicated]`.",
            self.type_name
        );
        let mut names: Vec<String> = self
            .entries
            .iter()
            .map(|e| e.method.name_string())
            .collect();
        names.sort();
        names.dedup();
        let methods = names.iter().map(|name| self.call_method(name));
        let generics = self.declared_generics();
        let (impl_generics, ty_generics, where_clause) = self.bounded.split_for_impl();
        let types = self.phantom_types().unwrap_or_else(|| quote!(()));
        let name = self.calls.to_string();
        quote! {
            #[doc = #doc]
            #[allow(unreachable_pub)]
            pub struct #calls #generics {
                caller: #private::Caller,
                types: ::core::marker::PhantomData<#types>,
            }

            // By hand rather than derived, so that the parameters need not be `Clone` or `Debug`.
            #[automatically_derived]
            impl #impl_generics ::core::clone::Clone for #calls #ty_generics #where_clause {
                fn clone(&self) -> Self {
                    #calls { caller: ::core::clone::Clone::clone(&self.caller), types: ::core::marker::PhantomData }
                }
            }

            #[automatically_derived]
            impl #impl_generics ::core::fmt::Debug for #calls #ty_generics #where_clause {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#name).field("caller", &self.caller).finish()
                }
            }

            #[automatically_derived]
            impl #impl_generics ::core::convert::From<#private::Caller> for #calls #ty_generics #where_clause {
                fn from(caller: #private::Caller) -> Self {
                    #calls { caller, types: ::core::marker::PhantomData }
                }
            }

            #[automatically_derived]
            #[allow(dead_code, unreachable_pub, private_interfaces, clippy::too_many_arguments)]
            impl #impl_generics #calls #ty_generics #where_clause {
                #(#methods)*
            }
        }
    }

    /// The call surface method of one replicated name, covering all of its versions.
    fn call_method(&self, name: &str) -> TokenStream {
        let private = &self.private;
        let versions: Vec<&Entry<'_>> = self
            .entries
            .iter()
            .filter(|e| e.method.name_string() == name)
            .collect();
        let (Some(first), Some(last)) = (versions.first(), versions.last()) else {
            return TokenStream::new();
        };
        let ident = surface_ident(&last.method.name);
        let idents: Vec<&Ident> = last.method.args.iter().map(|arg| &arg.ident).collect();
        let types = &last.arg_types;
        let output = &last.output;
        let specs = versions.iter().map(|entry| self.spec(entry));
        let list: Vec<String> = versions
            .iter()
            .map(|e| e.method.version.to_string())
            .collect();
        let mut doc = format!(
            "Calls the replicated method `{name}` (versions: {}) on the cluster: the highest \
             version the cluster has enabled runs, on every node.",
            list.join(", "),
        );
        if first.method.version > 0 {
            let floor = first.method.version;
            doc.push_str(&format!(
                " Fails with `VersionNotEnabled` while the cluster's code version is below {floor}."
            ));
        }
        // The user's own docs come first (their first line is the summary), from the highest
        // version that has any.
        let documented = versions.iter().rev().find(|e| !e.method.docs.is_empty());
        let user_docs = documented.map_or(&[][..], |e| &e.method.docs[..]);
        let separator = (!user_docs.is_empty()).then(|| quote!(#[doc = ""]));
        quote! {
            #(#user_docs)*
            #separator
            #[doc = #doc]
            pub fn #ident(&self, #(#idents: #types),*) -> #private::Call<#output> {
                self.caller.call(&[#(#specs),*], &(#(#idents,)*))
            }
        }
    }
}

/// `generics` plus `Ty: Serialize + DeserializeOwned` for each distinct argument and result
/// type of `entries` that names one of its type parameters (nothing to add without any).
fn serializable_bounds(
    generics: &Generics,
    entries: &[Entry<'_>],
    private: &TokenStream,
) -> Generics {
    let params: Vec<&Ident> = generics.type_params().map(|p| &p.ident).collect();
    let mut bounded = generics.clone();
    if params.is_empty() {
        return bounded;
    }
    let types = entries
        .iter()
        .flat_map(|entry| entry.arg_types.iter().chain([&entry.output]));
    let mut seen = Vec::new();
    for ty in types.filter(|ty| names_any(ty, &params)) {
        let text = quote!(#ty).to_string();
        if seen.contains(&text) {
            continue;
        }
        seen.push(text);
        bounded
            .make_where_clause()
            .predicates
            .push(syn::parse_quote! {
                #ty: #private::serde::Serialize + #private::serde::de::DeserializeOwned
            });
    }
    bounded
}

/// Whether `ty` names one of `params` anywhere (`K`, `Vec<K>`, `Option<(K, V)>`).
fn names_any(ty: &Type, params: &[&Ident]) -> bool {
    /// Looks for a path that is one of the parameters.
    struct Finder<'a> {
        params: &'a [&'a Ident],
        found: bool,
    }
    impl<'ast> syn::visit::Visit<'ast> for Finder<'_> {
        fn visit_path(&mut self, path: &'ast Path) {
            if let Some(ident) = path.get_ident() {
                self.found |= self.params.contains(&ident);
            }
            syn::visit::visit_path(self, path);
        }
    }
    let mut finder = Finder {
        params,
        found: false,
    };
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.found
}

/// The call surface's name for a replicated name: the name itself, or its raw form when it is
/// a keyword (`r#type`).
fn surface_ident(name: &Ident) -> Ident {
    let text = name.to_string();
    match syn::parse_str::<Ident>(&text) {
        Ok(_) => name.clone(),
        Err(_) => Ident::new_raw(&text, name.span()),
    }
}

/// `ty` with every `Self` replaced by `self_ty`, since the generated enum and call surface are
/// other types: `Self` becomes the self type, and `Self::X` becomes `<SelfType>::X`.
fn resolve_self(ty: &Type, self_ty: &Type) -> Type {
    /// Replaces `Self` in a type.
    struct Resolver<'a>(&'a Type);
    impl VisitMut for Resolver<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            match ty {
                Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self") => {
                    *ty = self.0.clone();
                }
                _ => syn::visit_mut::visit_type_mut(self, ty),
            }
        }
        fn visit_type_path_mut(&mut self, node: &mut syn::TypePath) {
            qualify_self(&mut node.qself, &mut node.path, self.0);
            syn::visit_mut::visit_type_path_mut(self, node);
        }
        fn visit_expr_path_mut(&mut self, node: &mut syn::ExprPath) {
            qualify_self(&mut node.qself, &mut node.path, self.0);
            syn::visit_mut::visit_expr_path_mut(self, node);
        }
    }
    let mut resolved = ty.clone();
    Resolver(self_ty).visit_type_mut(&mut resolved);
    resolved
}

/// Turns `Self::X` (a path of two or more segments starting with `Self`) into `<SelfType>::X`.
fn qualify_self(qself: &mut Option<QSelf>, path: &mut Path, self_ty: &Type) {
    let starts_with_self = path
        .segments
        .first()
        .is_some_and(|segment| segment.ident == "Self");
    if qself.is_some() || path.segments.len() < 2 || !starts_with_self {
        return;
    }
    let span = path.span();
    *qself = Some(QSelf {
        lt_token: syn::Token![<](span),
        ty: Box::new(self_ty.clone()),
        position: 0,
        as_token: None,
        gt_token: syn::Token![>](span),
    });
    path.leading_colon = Some(syn::Token![::](span));
    path.segments = path.segments.clone().into_pairs().skip(1).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Self` is replaced wherever it appears in a type.
    #[test]
    fn self_is_resolved() {
        let self_ty: Type = syn::parse_quote!(Counter);
        let cases = [
            (quote!(Self), "Counter"),
            (quote!(Vec<Self>), "Vec < Counter >"),
            (quote!([u8; Self::N]), "[u8 ; < Counter > :: N]"),
            (quote!(<Self as Tr>::Out), "< Counter as Tr > :: Out"),
            (quote!(Option<(Self, i64)>), "Option < (Counter , i64) >"),
        ];
        for (written, expected) in cases {
            let ty: Type = syn::parse2(written).expect("a type");
            let resolved = resolve_self(&ty, &self_ty);
            assert_eq!(quote!(#resolved).to_string(), expected);
        }
    }
}
