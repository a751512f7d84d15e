//! Emits the code for `#[derive(ForgeModel)]` from a checked [`Container`].
//!
//! [`derive`] is a plain function over `syn` types, so tests can call it and
//! snapshot its output without running the compiler.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ast::{Container, Field, Source};
use crate::check;
use crate::ctxt::Ctxt;

/// Expands the derive, or returns every error found in the input.
pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let cont = Container::from_ast(&mut cx, input);
    if let Some(cont) = &cont {
        check::check(&mut cx, cont);
    }
    cx.check()?;
    let cont = cont.expect("parse errors were reported above");
    Ok(expand(&cont))
}

fn expand(cont: &Container) -> TokenStream {
    let ident = cont.ident;
    let name = cont.name.as_ref().expect("checked: name present");
    let name_doc = format!(
        "Name under which [`{ident}`] is registered: `{}`.",
        name.value()
    );
    let build_fields = cont.fields.iter().map(build_field);
    let field_names = cont.fields.iter().map(|f| f.ident);
    let visits = cont
        .fields
        .iter()
        .filter(|f| f.source.has_parameters())
        .map(|f| {
            let field = f.ident;
            let key = field.to_string();
            quote! {
                ::forge_core::params::Parameters::visit_parameters(
                    &self.#field,
                    &::forge_core::params::join(prefix, #key),
                    f,
                );
            }
        });
    let root = format_ident!("root");
    let config = format_ident!("config");
    let options = format_ident!("options");
    let options_ty = match &cont.options {
        Some(ty) => quote!(#ty),
        None => quote!(::forge_core::config::options::NoOptions),
    };
    quote! {
        impl #ident {
            #[doc = #name_doc]
            pub const REGISTRY_NAME: &'static str = #name;
        }

        impl ::forge_core::params::Parameters for #ident {
            fn visit_parameters(
                &self,
                prefix: &str,
                f: &mut dyn FnMut(&str, &::forge_core::tch::Tensor),
            ) {
                #(#visits)*
            }
        }

        impl ::forge_core::ForgeModel for #ident {
            fn registry_name(&self) -> &'static str {
                #name
            }

            fn from_config(
                #root: &::forge_core::tch::nn::Path,
                #config: &::forge_core::ModelConfig,
            ) -> ::forge_core::Result<Self> {
                #config.require_vocab_size()?;
                #config.validate()?;
                #[allow(unused_variables)]
                let #options: #options_ty =
                    ::forge_core::config::options::read::<#options_ty>(#config)?;
                #(#build_fields)*
                ::core::result::Result::Ok(#ident { #(#field_names),* })
            }
        }

        ::forge_core::inventory::submit! {
            ::forge_core::registry::ModelRegistration {
                name: #name,
                type_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                build: ::forge_core::registry::build_boxed::<#ident>,
                options: ::forge_core::config::options::OptionsInfo::of::<#options_ty>(),
            }
        }
    }
}

/// `let field = ...;` for one field. Spans point at the user's tokens, so a
/// misspelt config key or a type that is not a component is reported on the
/// field itself.
fn build_field(field: &Field) -> TokenStream {
    let ident = field.ident;
    let key = ident.to_string();
    let ty = field.ty;
    let value = match &field.source {
        Source::Component => quote_spanned! {ty.span()=>
            <#ty as ::forge_core::components::Component>::build(root / #key, config)?
        },
        Source::Config { key, default: None } => quote! {
            ::core::clone::Clone::clone(&config.#key)
        },
        Source::Config {
            key,
            default: Some(default),
        } => quote! {
            ::core::clone::Clone::clone(&config.#key).unwrap_or_else(|| #default)
        },
        Source::Option { key, default: None } => quote! {
            ::core::clone::Clone::clone(&options.#key)
        },
        Source::Option {
            key,
            default: Some(default),
        } => quote! {
            ::core::clone::Clone::clone(&options.#key).unwrap_or_else(|| #default)
        },
        Source::Build(expr) => quote! {
            {
                #[allow(unused_variables)]
                let path = root / #key;
                #expr
            }
        },
        Source::Skip(span) => quote_spanned! {*span=>
            ::core::default::Default::default()
        },
    };
    quote! { let #ident: #ty = #value; }
}
