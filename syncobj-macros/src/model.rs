//! Phase 2: the typed model of what the user wrote.
//!
//! [`ImplModel`] is a `#[replicated]` impl block: its replicated methods with their names,
//! versions, receivers, arguments and return types, plus everything the validator needs to
//! judge them. Building the model never fails: attribute mistakes go to the error list and
//! shapes the expansion cannot handle (a pattern argument, a missing receiver) are kept as they
//! are for [`crate::validate`] to report. [`StateModel`] is a type deriving `Replicated`.

use proc_macro2::Span;
use quote::format_ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, FnArg, Generics, Ident, ImplItem, ItemImpl, Pat, Path, Receiver,
    ReturnType, Signature, Type,
};

use crate::attr::{self, MethodAttr};

/// A `#[replicated]` impl block.
pub(crate) struct ImplModel {
    /// The impl block with the methods' `#[replicated]` attributes removed, bodies untouched.
    pub(crate) item: ItemImpl,
    /// The path of the syncobj facade: `::syncobj` unless `crate = "..."` says otherwise.
    pub(crate) krate: Path,
    /// The name of the self type (its last path segment), which names the generated types.
    pub(crate) ident: Ident,
    /// The replicated methods, in source order.
    pub(crate) methods: Vec<Method>,
    /// `#[replicated]` attributes on impl items that are not methods.
    pub(crate) misplaced: Vec<Attribute>,
}

/// One version of one replicated method.
pub(crate) struct Method {
    /// The method's Rust name, which `apply` calls.
    pub(crate) rust_ident: Ident,
    /// The replicated name: `name = "..."` if given, else the Rust name.
    pub(crate) name: Ident,
    /// The version from `ver = N`, 0 by default.
    pub(crate) version: u32,
    /// The receiver as written (`&mut self` is the only one accepted).
    pub(crate) receiver: Option<Receiver>,
    /// The arguments after the receiver.
    pub(crate) args: Vec<Arg>,
    /// The return type; `None` for `()`, written or not.
    pub(crate) output: Option<Type>,
    /// The whole signature, for the checks on generics, `async` and the like.
    pub(crate) sig: Signature,
    /// The method's doc comments, repeated on the call surface.
    pub(crate) docs: Vec<Attribute>,
    /// The method's `#[cfg]` and `#[cfg_attr]` attributes (refused).
    pub(crate) cfgs: Vec<Attribute>,
    /// `#[replicated]` attributes after the first one on this method (refused).
    pub(crate) repeated_attrs: Vec<Attribute>,
}

/// One argument of a replicated method.
pub(crate) struct Arg {
    /// The binding's name; for a pattern other than an identifier, a placeholder.
    pub(crate) ident: Ident,
    /// The argument type as written.
    pub(crate) ty: Type,
    /// The pattern as written, for the validator.
    pub(crate) pat: Pat,
}

/// A type deriving `Replicated`.
pub(crate) struct StateModel {
    /// The type's name.
    pub(crate) ident: Ident,
    /// The type's generics (refused when not empty).
    pub(crate) generics: Generics,
    /// The path of the syncobj facade.
    pub(crate) krate: Path,
    /// The `union` keyword's span when the type is a union (refused).
    pub(crate) union: Option<Span>,
}

impl ImplModel {
    /// Builds the model of `item`, removing the `#[replicated]` attributes of its methods.
    /// Attribute mistakes go to `errors`.
    pub(crate) fn new(
        mut item: ItemImpl,
        krate: Option<Path>,
        errors: &mut Vec<syn::Error>,
    ) -> Self {
        let mut methods = Vec::new();
        let mut misplaced = Vec::new();
        for impl_item in &mut item.items {
            let (attrs, method) = match impl_item {
                ImplItem::Fn(method) => (&mut method.attrs, Some(&method.sig)),
                ImplItem::Const(item) => (&mut item.attrs, None),
                ImplItem::Type(item) => (&mut item.attrs, None),
                ImplItem::Macro(item) => (&mut item.attrs, None),
                _ => continue,
            };
            let marks = take_replicated(attrs);
            match (method, marks.first()) {
                (_, None) => {}
                (None, Some(_)) => misplaced.extend(marks),
                (Some(sig), Some(first)) => {
                    let parsed = attr::parse_method_attr(first, errors);
                    let repeated_attrs = marks[1..].to_vec();
                    methods.push(Method::new(sig, attrs, parsed, repeated_attrs));
                }
            }
        }
        let ident = self_ident(&item.self_ty);
        ImplModel {
            item,
            krate: krate.unwrap_or_else(default_crate),
            ident,
            methods,
            misplaced,
        }
    }

    /// The replicated methods in identifier order: by version, then by name (byte order).
    /// A method's command identifier is its position in this order.
    pub(crate) fn ordered(&self) -> Vec<&Method> {
        let mut ordered: Vec<&Method> = self.methods.iter().collect();
        ordered.sort_by_key(|method| (method.version, method.name_string()));
        ordered
    }
}

impl Method {
    /// Builds the model of one method from its signature, its other attributes and its parsed
    /// `#[replicated]` attribute.
    fn new(
        sig: &Signature,
        attrs: &[Attribute],
        parsed: MethodAttr,
        repeated_attrs: Vec<Attribute>,
    ) -> Self {
        let mut receiver = None;
        let mut args = Vec::new();
        for (index, input) in sig.inputs.iter().enumerate() {
            match input {
                FnArg::Receiver(found) => receiver = Some(found.clone()),
                FnArg::Typed(typed) => args.push(Arg::new(index, &typed.pat, &typed.ty)),
            }
        }
        let output = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some((**ty).clone()),
        };
        let of_kind = |names: &[&str]| -> Vec<Attribute> {
            attrs
                .iter()
                .filter(|a| names.iter().any(|n| a.path().is_ident(n)))
                .cloned()
                .collect()
        };
        Method {
            rust_ident: sig.ident.clone(),
            name: parsed.name.unwrap_or_else(|| sig.ident.unraw()),
            version: parsed.version,
            receiver,
            args,
            output,
            sig: sig.clone(),
            docs: of_kind(&["doc"]),
            cfgs: of_kind(&["cfg", "cfg_attr"]),
            repeated_attrs,
        }
    }

    /// The replicated name as a string.
    pub(crate) fn name_string(&self) -> String {
        self.name.to_string()
    }

    /// The command enum's variant for this version: the name in UpperCamelCase, suffixed
    /// `V{version}` when the version is not 0 (`reset` at 1 is `ResetV1`).
    pub(crate) fn variant(&self) -> Ident {
        let mut camel = upper_camel_case(&self.name_string());
        if self.version > 0 {
            camel.push_str(&format!("V{}", self.version));
        }
        Ident::new(&camel, self.name.span())
    }
}

impl Arg {
    /// Builds an argument from its pattern and type; `index` names the placeholder binding of
    /// a pattern that is not a plain identifier.
    fn new(index: usize, pat: &Pat, ty: &Type) -> Self {
        let ident = match pat {
            Pat::Ident(pat_ident) if pat_ident.by_ref.is_none() && pat_ident.subpat.is_none() => {
                pat_ident.ident.clone()
            }
            other => format_ident!("__arg{}", index, span = other.span()),
        };
        Arg {
            ident,
            ty: ty.clone(),
            pat: pat.clone(),
        }
    }
}

impl StateModel {
    /// Builds the model of a type deriving `Replicated`; attribute mistakes go to `errors`.
    pub(crate) fn new(input: &DeriveInput, errors: &mut Vec<syn::Error>) -> Self {
        let krate = attr::parse_derive_attrs(&input.attrs, errors);
        let union = match &input.data {
            Data::Union(data) => Some(data.union_token.span),
            Data::Struct(_) | Data::Enum(_) => None,
        };
        StateModel {
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            krate: krate.unwrap_or_else(default_crate),
            union,
        }
    }
}

/// Removes the `#[replicated]` attributes from `attrs` and returns them.
pub(crate) fn take_replicated(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (marks, rest) = std::mem::take(attrs)
        .into_iter()
        .partition(attr::is_replicated);
    *attrs = rest;
    marks
}

/// The name of a self type: its last path segment, or a placeholder the validator refuses.
fn self_ident(self_ty: &Type) -> Ident {
    match self_ty {
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(segment) => segment.ident.unraw(),
            None => Ident::new("Unnamed", self_ty.span()),
        },
        _ => Ident::new("Unnamed", self_ty.span()),
    }
}

/// `::syncobj`, the facade's path when no `crate = "..."` is given.
fn default_crate() -> Path {
    syn::parse_quote!(::syncobj)
}

/// `snake_case` to `UpperCamelCase`: each `_`-separated piece capitalized, the rest kept.
/// A name that would not make an identifier (`_1`) is prefixed with `Method`.
fn upper_camel_case(name: &str) -> String {
    let mut camel = String::with_capacity(name.len());
    for piece in name.split('_') {
        let mut chars = piece.chars();
        if let Some(first) = chars.next() {
            camel.extend(first.to_uppercase());
            camel.push_str(chars.as_str());
        }
    }
    if camel.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        camel.insert_str(0, "Method");
    }
    camel
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variant names are the UpperCamelCase of the method name.
    #[test]
    fn camel_case() {
        assert_eq!(upper_camel_case("add"), "Add");
        assert_eq!(upper_camel_case("add_node_to_cluster"), "AddNodeToCluster");
        assert_eq!(upper_camel_case("_private"), "Private");
        assert_eq!(upper_camel_case("set_HTTP_port"), "SetHTTPPort");
        assert_eq!(upper_camel_case("_1"), "Method1");
    }

    /// Methods are ordered by version, then name, whatever the source order.
    #[test]
    fn identifier_order() {
        let item: ItemImpl = syn::parse_quote! {
            impl T {
                #[replicated(ver = 1)] fn b(&mut self) {}
                #[replicated] fn z(&mut self) {}
                #[replicated(ver = 1)] fn a(&mut self) {}
                #[replicated] fn c(&mut self) {}
                fn plain(&self) {}
            }
        };
        let mut errors = Vec::new();
        let model = ImplModel::new(item, None, &mut errors);
        assert!(errors.is_empty());
        let order: Vec<_> = model
            .ordered()
            .iter()
            .map(|m| (m.version, m.name_string()))
            .collect();
        let expected = [(0, "c"), (0, "z"), (1, "a"), (1, "b")].map(|(v, n)| (v, n.to_string()));
        assert_eq!(order, expected);
        assert_eq!(model.item.items.len(), 5);
    }
}
