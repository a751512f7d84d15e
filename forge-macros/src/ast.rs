//! A small typed model of the derive input: the struct, its registry name
//! and how each field is built. Later stages never look at attributes again.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, Type};

use crate::attr;
use crate::ctxt::Ctxt;

/// The model struct.
pub struct Container<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// The whole input, for generics and spans.
    pub input: &'a DeriveInput,
    /// `#[forge(name = "...")]`.
    pub name: Option<LitStr>,
    /// `#[forge(options = Type)]`.
    pub options: Option<Type>,
    /// Named fields in declaration order.
    pub fields: Vec<Field<'a>>,
}

/// One named field.
pub struct Field<'a> {
    /// Field name: also its VarStore sub-path and parameter-name prefix.
    pub ident: &'a Ident,
    /// Field type.
    pub ty: &'a Type,
    /// How `from_config` builds it.
    pub source: Source,
    /// The raw attributes as written, for the checks.
    pub attrs: attr::FieldAttrs,
}

/// Where a field's value comes from.
pub enum Source {
    /// `<T as Component>::build(path, config)`: a component that knows how
    /// to build itself from the config (no attribute).
    Component,
    /// A `ModelConfig` value: `config.key`, or for an optional value
    /// `config.key.unwrap_or_else(|| default)`.
    Config { key: Ident, default: Option<Expr> },
    /// A value of the model's own options: `options.key`, or for an
    /// optional value `options.key.unwrap_or_else(|| default)`.
    Option { key: Ident, default: Option<Expr> },
    /// A user expression with `path`, `root`, `config` and `options` in
    /// scope.
    Build(Expr),
    /// `Default::default()`.
    Skip(Span),
}

impl Source {
    /// Whether the field holds parameters that must be visited.
    pub fn has_parameters(&self) -> bool {
        matches!(self, Source::Component | Source::Build(_))
    }
}

impl<'a> Container<'a> {
    /// Parses the input, recording problems in `cx`. Returns `None` when the
    /// input is not a struct with named fields (nothing more can be checked).
    pub fn from_ast(cx: &mut Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let container_attrs = attr::container(cx, &input.attrs);
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(named),
                Fields::Unnamed(_) => {
                    cx.error_spanned_by(
                        &input.ident,
                        "#[derive(ForgeModel)] needs a struct with named fields (each field name \
                         becomes its parameter-name prefix); this is a tuple struct",
                    );
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        &input.ident,
                        "#[derive(ForgeModel)] needs a struct with named fields; a unit struct \
                         has no layers",
                    );
                    None
                }
            },
            Data::Enum(e) => {
                cx.error_spanned_by(
                    e.enum_token,
                    "#[derive(ForgeModel)] works on structs with named fields, not enums; \
                     put the layers in a struct",
                );
                None
            }
            Data::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    "#[derive(ForgeModel)] works on structs with named fields, not unions",
                );
                None
            }
        };
        let fields = named?
            .named
            .iter()
            .filter_map(|f| {
                let ident = f.ident.as_ref()?;
                let attrs = attr::field(cx, ident, &f.attrs);
                let source = if let Some(span) = attrs.skip {
                    Source::Skip(span)
                } else if let Some(expr) = &attrs.build {
                    Source::Build(expr.clone())
                } else if let Some(key) = &attrs.option {
                    Source::Option {
                        key: key.clone(),
                        default: attrs.default.clone(),
                    }
                } else if let Some(key) = &attrs.config {
                    Source::Config {
                        key: key.clone(),
                        default: attrs.default.clone(),
                    }
                } else {
                    Source::Component
                };
                Some(Field {
                    ident,
                    ty: &f.ty,
                    source,
                    attrs,
                })
            })
            .collect();
        Some(Container {
            ident: &input.ident,
            input,
            name: container_attrs.name,
            options: container_attrs.options,
            fields,
        })
    }
}
