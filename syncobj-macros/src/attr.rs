//! Phase 1: parsing the macros' own attributes.
//!
//! Three attributes are read here: the arguments of `#[replicated(...)]` on an impl block
//! (`crate = "path"`), `#[replicated]` / `#[replicated(ver = N, name = "f")]` on a method, and
//! `#[syncobj(crate = "path")]` on a type deriving `Replicated`. Every mistake becomes a
//! `syn::Error` on the offending key or value; parsing goes on after a mistake so that all of
//! them are reported together.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitStr, Meta, Path, Token};

/// What `#[replicated(...)]` on a method says.
pub(crate) struct MethodAttr {
    /// The code version from `ver = N`, 0 when absent.
    pub(crate) version: u32,
    /// The replicated name from `name = "f"`, spanned on the string; `None` means the Rust name.
    pub(crate) name: Option<Ident>,
}

/// Whether `attr` is `#[replicated]` (or a path ending in `replicated`, like
/// `#[syncobj::replicated]`), the marker of a replicated method.
pub(crate) fn is_replicated(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "replicated")
}

/// Parses the arguments of `#[replicated(...)]` on an impl block: only `crate = "path"`.
/// Returns the crate path if one was given; mistakes go to `errors`.
pub(crate) fn parse_impl_args(args: TokenStream, errors: &mut Vec<syn::Error>) -> Option<Path> {
    let mut krate = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            return parse_crate(&meta, &mut krate, errors);
        }
        let message = if meta.path.is_ident("ver") || meta.path.is_ident("name") {
            "#[replicated] on an impl block takes only `crate = \"...\"`; \
             `ver` and `name` go on its methods"
        } else {
            "unknown key in #[replicated] on an impl block: expected `crate = \"...\"`"
        };
        errors.push(syn::Error::new_spanned(&meta.path, message));
        skip_value(&meta)
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    krate
}

/// Parses `#[syncobj(crate = "path")]` among the attributes of a type deriving `Replicated`.
/// Returns the crate path if one was given; mistakes go to `errors`.
pub(crate) fn parse_derive_attrs(
    attrs: &[Attribute],
    errors: &mut Vec<syn::Error>,
) -> Option<Path> {
    let mut krate = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("syncobj")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                return parse_crate(&meta, &mut krate, errors);
            }
            let message = "unknown key in #[syncobj]: expected `crate = \"...\"`";
            errors.push(syn::Error::new_spanned(&meta.path, message));
            skip_value(&meta)
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    krate
}

/// Parses one `#[replicated]` attribute of a method. Mistakes go to `errors`; the returned
/// attribute then holds the defaults for the keys that were wrong.
pub(crate) fn parse_method_attr(attr: &Attribute, errors: &mut Vec<syn::Error>) -> MethodAttr {
    let mut parsed = MethodAttr {
        version: 0,
        name: None,
    };
    match &attr.meta {
        Meta::Path(_) => {}
        Meta::List(list) => {
            let mut seen = Seen::default();
            let result =
                list.parse_nested_meta(|meta| method_key(&meta, &mut parsed, &mut seen, errors));
            if let Err(error) = result {
                errors.push(error);
            }
        }
        Meta::NameValue(name_value) => errors.push(syn::Error::new_spanned(
            name_value,
            "expected #[replicated] or #[replicated(ver = N)]",
        )),
    }
    parsed
}

/// Which keys of a method attribute were already given.
#[derive(Default)]
struct Seen {
    /// `ver` was given.
    ver: bool,
    /// `name` was given.
    name: bool,
}

/// Parses one key of a method attribute into `parsed`.
fn method_key(
    meta: &ParseNestedMeta<'_>,
    parsed: &mut MethodAttr,
    seen: &mut Seen,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<()> {
    if meta.path.is_ident("ver") {
        let value: Expr = meta.value()?.parse()?;
        if std::mem::replace(&mut seen.ver, true) {
            errors.push(syn::Error::new_spanned(&meta.path, "duplicate key `ver`"));
        }
        match parse_version(&value) {
            Ok(version) => parsed.version = version,
            Err(error) => errors.push(error),
        }
    } else if meta.path.is_ident("name") {
        let value: Expr = meta.value()?.parse()?;
        if std::mem::replace(&mut seen.name, true) {
            errors.push(syn::Error::new_spanned(&meta.path, "duplicate key `name`"));
        }
        match parse_name(&value) {
            Ok(name) => parsed.name = Some(name),
            Err(error) => errors.push(error),
        }
    } else {
        let message = if meta.path.is_ident("crate") {
            "`crate = \"...\"` goes on the #[replicated] impl block, not on its methods"
        } else {
            "unknown key in #[replicated]: expected `ver = N` or `name = \"...\"`"
        };
        errors.push(syn::Error::new_spanned(&meta.path, message));
        skip_value(meta)?;
    }
    Ok(())
}

/// Reads the value of `ver = N`: an integer literal that fits a `u32`.
fn parse_version(value: &Expr) -> syn::Result<u32> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int
            .base10_parse::<u32>()
            .map_err(|_| syn::Error::new_spanned(int, "`ver` must fit a u32 (0 to 4294967295)")),
        other => Err(syn::Error::new_spanned(
            other,
            "`ver` takes an integer, like `ver = 1`",
        )),
    }
}

/// Reads the value of `name = "f"`: a string holding a Rust identifier.
fn parse_name(value: &Expr) -> syn::Result<Ident> {
    let not_an_ident = "`name` takes a string holding a method name, like `name = \"add\"`";
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    else {
        return Err(syn::Error::new_spanned(value, not_an_ident));
    };
    match syn::parse_str::<Ident>(&lit.value()) {
        Ok(ident) => Ok(Ident::new(&ident.to_string(), lit.span())),
        Err(_) => Err(syn::Error::new_spanned(lit, not_an_ident)),
    }
}

/// Parses `crate = "path"` into `krate`, reporting a repeated key or a value that is no path.
fn parse_crate(
    meta: &ParseNestedMeta<'_>,
    krate: &mut Option<Path>,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<()> {
    let lit: LitStr = meta.value()?.parse()?;
    if krate.is_some() {
        errors.push(syn::Error::new_spanned(&meta.path, "duplicate key `crate`"));
    }
    match lit.parse::<Path>() {
        Ok(path) => *krate = Some(at_call_site(path)),
        Err(_) => errors.push(syn::Error::new_spanned(
            &lit,
            "`crate` takes a path to the syncobj crate, like `crate = \"::syncobj\"`",
        )),
    }
    Ok(())
}

/// `path` with every token spanned at the macro's call site. The path comes from the user's
/// string literal; spanned there, the generated code would look hand-written to lints such as
/// `unused_qualifications`, which do not look inside macro expansions.
fn at_call_site(path: Path) -> Path {
    /// Respans every token of `tokens`, groups included.
    fn respan(tokens: TokenStream) -> TokenStream {
        tokens
            .into_iter()
            .map(|token| match token {
                TokenTree::Group(group) => {
                    let mut respanned = Group::new(group.delimiter(), respan(group.stream()));
                    respanned.set_span(Span::call_site());
                    TokenTree::Group(respanned)
                }
                mut other => {
                    other.set_span(Span::call_site());
                    other
                }
            })
            .collect()
    }
    syn::parse2(respan(path.to_token_stream())).unwrap_or(path)
}

/// Consumes the value of a key that was already reported, so that parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<Group>()?;
    }
    Ok(())
}
