//! `#[derive(ForgeModel)]`: all the boilerplate a forge model needs, with the
//! model contract checked by the compiler.
//!
//! A model author writes the architecture: the struct's fields (its layers
//! and hyperparameters) and an `impl Architecture` with `run`, its one
//! forward pass. The derive writes the rest.
//!
//! # Example
//!
//! ```ignore
//! use forge_core::components::{GeneExpressionEmbedding, MaskedGenePredictionHead, TransformerEncoder, pool};
//! use forge_core::config::Pooling;
//! use forge_core::{Architecture, Batch, ForgeModel, ModelOutput, Pass};
//! use forge_core::tch::Tensor;
//!
//! #[derive(ForgeModel)]
//! #[forge(name = "tiny_bert")]
//! pub struct TinyBert {
//!     // Components build themselves from the config under a sub-path named
//!     // after the field: parameters are `embedding.*`, `encoder.layers.*`.
//!     embedding: GeneExpressionEmbedding,
//!     encoder: TransformerEncoder,
//!     // A builder expression, with `path` (this field's sub-path), `root`
//!     // (the model's path) and `config` (the ModelConfig) in scope.
//!     #[forge(build = MaskedGenePredictionHead::new(path, config.hidden_dim, config.require_vocab_size()?))]
//!     head: MaskedGenePredictionHead,
//!     // Hyperparameters copied from the config (optionally renamed).
//!     #[forge(config)]
//!     pooling: Pooling,
//!     #[forge(config = vocab_size, default = 0)]
//!     vocab: i64,
//! }
//!
//! impl Architecture for TinyBert {
//!     fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput { /* ... */ }
//! }
//! ```
//!
//! # Attributes
//!
//! On the struct: `#[forge(name = "snake_case_name")]` (required): the
//! registry name (`model.architecture` in a config); `options = Type`
//! (optional): the model's own options, a struct declared in the model's
//! file with `forge_core::model_options!` and read from the `model:` keys
//! that are not shared ones (see `forge_core::config::options`).
//!
//! On a field (at most one source):
//! - no attribute: the field type implements `forge_core::components::Component`
//!   and builds itself from the config;
//! - `#[forge(build = EXPR)]`: `EXPR` builds it; `path`, `root`, `config`
//!   and `options` (the model's own options) are in scope and `?` works;
//! - `#[forge(config)]` / `#[forge(config = key)]`: a clone of `config.key`;
//!   add `default = EXPR` for an optional key (`Option<T>`) to use `EXPR`
//!   when it is unset;
//! - `#[forge(option)]` / `#[forge(option = key)]`: a clone of
//!   `options.key`, a field of the model's own options (`default = EXPR` as
//!   for `config`);
//! - `#[forge(skip)]`: `Default::default()`, holds no parameters.
//!
//! # What it generates
//!
//! - `impl ForgeModel`: `registry_name()`; `from_config(root, config)`, which
//!   refuses an unset `vocab_size` ("vocab_size must be set"), validates the
//!   config, reads the model's options, then builds the fields in declaration order; and through the
//!   trait's provided methods `num_parameters(trainable_only)` and
//!   `parameter_table()` (counts per submodule, printable).
//! - `impl Parameters`: visits the parameters of every field built by a
//!   component or a `build` expression, named `field.sub.name` exactly like
//!   PyTorch's state dict.
//! - `pub const REGISTRY_NAME: &str` on the struct.
//! - A registry entry (link-time, through `inventory`), so
//!   `forge_core::registry::get("tiny_bert", ...)` works from any crate that
//!   links this one.
//!
//! # Checked at compile time
//!
//! - the struct implements `Architecture` (error on the struct's name);
//! - every `config = key` names a `ModelConfig` field and every
//!   `option = key` a field of the model's options (error on the key, with
//!   the compiler's did-you-mean);
//! - every attribute-less field is a `Component` (error on its type);
//! - the registry name is snake_case and not a keyword; no unknown attribute
//!   keys (did-you-mean); no conflicting keys; a struct with named fields and
//!   no generics.
//!
//! All problems in one struct are reported together.

mod ast;
mod attr;
mod case;
mod check;
mod ctxt;
mod expand;
mod symbol;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives the forge model contract; see the crate docs.
#[proc_macro_derive(ForgeModel, attributes(forge))]
pub fn derive_forge_model(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[cfg(test)]
mod tests;
