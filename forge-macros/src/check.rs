//! Validates a parsed [`Container`]: everything that can be decided without
//! type information. Type-level checks (the struct implements
//! `Architecture`, each config key exists on `ModelConfig`, each component
//! can build itself) are left to the compiler, on code spanned at the
//! user's tokens, so its errors point there and come with its suggestions.

use crate::ast::Container;
use crate::case::registry_name_problem;
use crate::ctxt::Ctxt;

/// Runs every check, recording problems in `cx`.
pub fn check(cx: &mut Ctxt, cont: &Container) {
    check_name(cx, cont);
    check_generics(cx, cont);
    check_fields(cx, cont);
}

fn check_name(cx: &mut Ctxt, cont: &Container) {
    match &cont.name {
        None => cx.error_spanned_by(
            cont.ident,
            format!(
                "missing registry name: add `#[forge(name = \"{}\")]` to `{}`",
                snake_case(&cont.ident.to_string()),
                cont.ident
            ),
        ),
        Some(lit) => {
            if let Some(problem) = registry_name_problem(&lit.value()) {
                cx.error_spanned_by(lit, problem);
            }
        }
    }
}

fn check_generics(cx: &mut Ctxt, cont: &Container) {
    let generics = &cont.input.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            "a registered model must be a concrete type: remove the generic parameters \
             (the registry builds it by name, so it cannot choose them)",
        );
    }
}

fn check_fields(cx: &mut Ctxt, cont: &Container) {
    for field in &cont.fields {
        let a = &field.attrs;
        if let Some(span) = a.skip {
            if a.config.is_some() || a.option.is_some() || a.build.is_some() || a.default.is_some()
            {
                cx.syn_error(syn::Error::new(
                    span,
                    format!(
                        "`skip` cannot be combined with `config`, `default` or `build` on `{}`: \
                         a skipped field is `Default::default()`",
                        field.ident
                    ),
                ));
            }
            continue;
        }
        if let (Some(_), Some(option)) = (&a.config, &a.option) {
            cx.error_spanned_by(
                option,
                format!(
                    "`{}` has both `config` and `option`: a value comes from the shared config \
                     (`config`) or from the model's own options (`option`), not both",
                    field.ident
                ),
            );
        }
        if let (Some(build), Some(_)) = (&a.build, a.config.as_ref().or(a.option.as_ref())) {
            cx.error_spanned_by(
                build,
                format!(
                    "`{}` has both `build` and `config`: use `build = ...` (it can read \
                     `config` itself) or `config`, not both",
                    field.ident
                ),
            );
        }
        if let (Some(default), None) = (&a.default, a.config.as_ref().or(a.option.as_ref())) {
            cx.error_spanned_by(
                default,
                format!(
                    "`default` on `{}` needs `config = key`: it is the value used when that \
                     optional config key is unset",
                    field.ident
                ),
            );
        }
    }
}

/// `TransformerEncoder` -> `transformer_encoder`.
pub fn snake_case(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
