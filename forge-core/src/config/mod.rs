//! The config schema: scModelForge's YAML config files, read into typed,
//! checked Rust structs, and written back.
//!
//! ```no_run
//! use forge_core::config::ForgeConfig;
//!
//! let config = ForgeConfig::load("configs/transformer_encoder_pbmc.yaml".as_ref())
//!     .unwrap_or_else(|errors| panic!("{errors}"));
//! println!("{} layers", config.model.num_layers);
//! ```
//!
//! A config is one [`ForgeConfig`] with the sections `data`, `tokenizer`,
//! `model`, `training`, `eval` and (for fine-tuning) `finetune`; each may be
//! left out and takes its defaults. Key names and defaults are
//! scModelForge's, so its files load unchanged.
//!
//! Loading reports every problem at once, one line each, naming the file,
//! the key path, the line, what was found and what is accepted:
//!
//! ```text
//! config.yaml: model.hiden_dim: unknown key; did you mean "hidden_dim"? (line 3)
//! config.yaml: model.pooling: invalid value "mena"; did you mean "mean"? accepted values: cls, mean (line 9)
//! ```
//!
//! Layout:
//! - `schema.rs`: every section, declared once with `config_section!`
//!   (key, type, default, documentation);
//! - `enums.rs`: the string choices (`pooling`, `precision`, ...), declared
//!   with `config_enum!`;
//! - `section.rs` / `value.rs`: the two macros' machinery and the
//!   [`ConfigValue`] trait that reads and writes the tree;
//! - `checks.rs`: range checks and rules across keys;
//! - `yaml.rs` / `load.rs`: YAML text <-> tree, and the public load/save
//!   API;
//! - `error.rs`: [`ConfigError`] and [`ConfigErrors`].
//!
//! This module does not resolve registry names, open data files or build
//! vocabularies; it only says whether a config is well formed.

mod checks;
pub mod enums;
pub mod error;
mod load;
pub mod schema;
mod section;
pub mod value;
pub mod yaml;

pub use enums::{
    Activation, BinningMethod, DataSource, FinetuneTask, GeneSelectionStrategy, LoraBias,
    Normalize, OptimizerName, Pooling, Precision, PretrainingTask, SamplingStrategy, SchedulerName,
    TokenizerStrategy,
};
pub use error::{ConfigError, ConfigErrors};
pub use schema::{
    BenchmarkSpec, DataConfig, EvalConfig, FinetuneConfig, FinetuneHeadConfig, ForgeConfig,
    GeneSelectionConfig, LoraConfig, MaskingConfig, ModelConfig, Opaque, OptimizerConfig,
    PreprocessingConfig, SamplingConfig, SchedulerConfig, TokenizerConfig, TrainingConfig,
};
pub use value::ConfigValue;
