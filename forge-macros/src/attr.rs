//! Parses `#[forge(...)]` attributes into plain values. Unknown or repeated
//! keys are recorded in the context (with a did-you-mean) and parsing goes
//! on, so every problem is reported in one compile.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, Ident, LitStr, Token};

use crate::ctxt::Ctxt;
use crate::symbol::{
    BUILD, CONFIG, CONTAINER_KEYS, DEFAULT, FIELD_KEYS, FORGE, NAME, OPTION, OPTIONS, SKIP,
};

/// Attributes on the struct.
#[derive(Default)]
pub struct ContainerAttrs {
    /// `name = "..."`, with the literal for spans.
    pub name: Option<LitStr>,
    /// `options = Type`.
    pub options: Option<syn::Type>,
}

/// Attributes on one field, as written.
#[derive(Default)]
pub struct FieldAttrs {
    /// `config` (the `Ident` is the field's own name) or `config = key`.
    pub config: Option<Ident>,
    /// `option` (the field's own name) or `option = key`.
    pub option: Option<Ident>,
    /// `default = expr`.
    pub default: Option<Expr>,
    /// `build = expr`.
    pub build: Option<Expr>,
    /// `skip`, with its span.
    pub skip: Option<Span>,
}

/// Parses every `#[forge(...)]` on the struct.
pub fn container(cx: &mut Ctxt, attrs: &[Attribute]) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in forge_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(NAME) {
                let lit = parse_name(&meta)?;
                if out.name.is_some() {
                    cx.error_spanned_by(&lit, "duplicate `name`: give the registry name once");
                }
                out.name = Some(lit);
                Ok(())
            } else if meta.path.is_ident(OPTIONS) {
                let ty: syn::Type = meta.value()?.parse()?;
                if out.options.is_some() {
                    cx.error_spanned_by(&ty, "duplicate `options`: name the options type once");
                }
                out.options = Some(ty);
                Ok(())
            } else {
                unknown_key(cx, &meta, CONTAINER_KEYS, "on a model struct")
            }
        });
        if let Err(err) = result {
            cx.syn_error(err);
        }
    }
    out
}

/// Parses every `#[forge(...)]` on a field named `field`.
pub fn field(cx: &mut Ctxt, field: &Ident, attrs: &[Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in forge_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            let duplicate = |cx: &mut Ctxt, key: &str| {
                cx.error_spanned_by(&meta.path, format!("duplicate `{key}` on this field"))
            };
            if meta.path.is_ident(CONFIG) {
                let key = if meta.input.peek(Token![=]) {
                    parse_config_key(&meta)?
                } else {
                    field.clone()
                };
                if out.config.is_some() {
                    duplicate(cx, CONFIG);
                }
                out.config = Some(key);
            } else if meta.path.is_ident(OPTION) {
                let key = if meta.input.peek(Token![=]) {
                    parse_config_key(&meta)?
                } else {
                    field.clone()
                };
                if out.option.is_some() {
                    duplicate(cx, OPTION);
                }
                out.option = Some(key);
            } else if meta.path.is_ident(DEFAULT) {
                let expr: Expr = meta.value()?.parse()?;
                if out.default.is_some() {
                    duplicate(cx, DEFAULT);
                }
                out.default = Some(expr);
            } else if meta.path.is_ident(BUILD) {
                let expr: Expr = meta.value()?.parse()?;
                if out.build.is_some() {
                    duplicate(cx, BUILD);
                }
                out.build = Some(expr);
            } else if meta.path.is_ident(SKIP) {
                if out.skip.is_some() {
                    duplicate(cx, SKIP);
                }
                out.skip = Some(meta.path.segments[0].ident.span());
            } else {
                return unknown_key(cx, &meta, FIELD_KEYS, "on a field");
            }
            Ok(())
        });
        if let Err(err) = result {
            cx.syn_error(err);
        }
    }
    out
}

fn forge_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident(FORGE))
}

/// `name = "snake_case"`; a bare identifier is refused with a hint.
fn parse_name(meta: &ParseNestedMeta) -> syn::Result<LitStr> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        return value.parse();
    }
    let expr: Expr = value.parse()?;
    Err(syn::Error::new_spanned(
        &expr,
        "the registry name must be a string literal, e.g. `#[forge(name = \"my_model\")]`",
    ))
}

/// `config = key` or `config = "key"`.
fn parse_config_key(meta: &ParseNestedMeta) -> syn::Result<Ident> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return lit.parse::<Ident>().map_err(|_| {
            syn::Error::new_spanned(&lit, "`config`/`option = \"...\"` must name a field")
        });
    }
    value.parse::<Ident>().map_err(|err| {
        syn::Error::new(
            err.span(),
            "expected a field name of ModelConfig or of the model's options, e.g. \
             `#[forge(config = hidden_dim)]`",
        )
    })
}

/// Records an unknown key with a suggestion, then skips its value so the
/// remaining keys are still parsed.
fn unknown_key(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta,
    accepted: &[&str],
    place: &str,
) -> syn::Result<()> {
    let key = path_text(&meta.path);
    let hint = match closest(&key, accepted) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("accepted {place}: {}", accepted.join(", ")),
    };
    cx.error_spanned_by(
        &meta.path,
        format!("unknown forge attribute `{key}` {place}; {hint}"),
    );
    if meta.input.peek(Token![=]) {
        let _: TokenStream = meta
            .value()?
            .parse::<Expr>()
            .map(quote::ToTokens::into_token_stream)?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            let _ = inner.value().and_then(|v| v.parse::<Expr>());
            Ok(())
        })?;
    }
    Ok(())
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The accepted key closest to `input`, when close enough to be a typo
/// (forge's one did-you-mean rule, shared with forge-core and forge-gen).
pub fn closest<'a>(input: &str, accepted: &[&'a str]) -> Option<&'a str> {
    forge_names::closest(input, accepted.iter().copied())
}
