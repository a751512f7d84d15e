//! forge-core: the pieces every forge model and pipeline is built from.
//!
//! - [`model`]: the model contract ([`ForgeModel`], [`Architecture`],
//!   [`ModelOutput`]).
//! - [`models`]: the reference models.
//! - [`batch`]: the validated [`Batch`] a model receives.
//! - [`config`]: scModelForge's YAML config schema, validated.
//! - [`registry`]: registry name -> model constructor, across crates.
//! - [`components`]: embedding, heads, pooling, masks, encoder layers.
//! - [`params`]: parameter names, counts and breakdowns.
//! - [`state_dict`]: loading PyTorch state dicts, all or nothing.
//! - [`checkpoint`]: checkpoint folders in scModelForge's layout (save/load).
//! - [`runtime`]: which libtorch is linked and what it can use.
//! - [`data_error`]: the error every data reader reports (file, key, value).
//!
//! forge-core is the bottom layer: what a model author depends on. The
//! pipelines are crates above it, and the arrows point one way:
//! `forge-data` (files to batches) and `forge-assess` (metrics and plots on
//! embeddings) build on forge-core; `forge-train` (pretraining,
//! fine-tuning, embedding, assessment runs) builds on all three; the `forge`
//! command-line tool sits on top.

extern crate self as forge_core;

pub mod atomic;
pub mod batch;
pub mod checkpoint;
pub mod components;
pub mod config;
pub mod data_error;
pub mod error;
pub mod model;
pub mod models;
pub mod params;
pub mod precision;
pub mod registry;
pub mod runtime;
pub mod state_dict;
pub mod suggest;

pub use batch::{Batch, BatchBuilder};
pub use config::{ForgeConfig, ModelConfig};
pub use error::{ForgeError, Result};
/// `#[derive(ForgeModel)]`: see the `forge_macros` crate docs.
pub use forge_macros::ForgeModel;
pub use model::{Architecture, ForgeModel, ModelOutput, Pass, Wants};
pub use params::{ParameterTable, Parameters};

/// Re-exported for `#[derive(ForgeModel)]`'s generated registration code.
#[doc(hidden)]
pub use inventory;

/// What forge-core's exported macros name; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}
/// Re-exported so downstream crates use the same libtorch binding.
pub use tch;

/// What a model file or model test needs, in one import:
/// `use forge_core::prelude::*;`. The names it exports are listed in
/// `forge_names::PRELUDE_NAMES` (forge-gen keeps model structs off them);
/// forge-gen's tests fail until that list matches this module.
pub mod prelude {
    pub use crate::batch::{Batch, BatchBuilder};
    pub use crate::components::{
        BinPredictionHead, Component, ExpressionPredictionHead, GeneExpressionEmbedding,
        MaskedGenePredictionHead, TransformerEncoder, TransformerEncoderLayer, cls_pool, mean_pool,
        pool,
    };
    pub use crate::config::{Activation, ModelConfig, Pooling};
    pub use crate::error::{ForgeError, Result};
    // The trait and the derive of the same name.
    pub use crate::ForgeModel;
    pub use crate::model::{Architecture, ModelOutput, Pass};
    pub use crate::params::Parameters;
    pub use tch::{Device, Kind, Tensor, nn};
}
