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
//! - `checks.rs`: range checks, rules across keys, refusals of what forge
//!   cannot do and warnings for keys it does not use;
//! - `interpolate.rs`: OmegaConf's `${...}` interpolation, resolved on the
//!   tree before the keys are read;
//! - `keys.rs`: what forge does with each key (honoured, refused, warned),
//!   as `docs/config-keys.md` lists it;
//! - `yaml.rs` / `load.rs`: YAML text <-> tree, and the public load/save
//!   API;
//! - `error.rs`: [`ConfigError`] and [`ConfigErrors`].
//!
//! This module does not resolve registry names, open data files or build
//! vocabularies; it only says whether a config is well formed.

pub mod checks;
pub mod enums;
pub mod error;
pub mod interpolate;
pub mod keys;
mod load;
pub mod options;
pub mod schema;
#[doc(hidden)]
pub mod section;
pub mod value;
pub mod yaml;

pub use enums::{
    Activation, BinningMethod, DataSource, FinetuneTask, GeneSelectionStrategy, GeneformerSeries,
    LoraBias, Normalize, OptimizerName, Pooling, Precision, PretrainingTask, SamplingStrategy,
    SchedulerName, TokenizerStrategy,
};
pub use error::{ConfigError, ConfigErrors};
pub use schema::{
    BenchmarkSpec, CensusConfig, CloudStorageConfig, DataConfig, EvalConfig, FinetuneConfig,
    FinetuneHeadConfig, ForgeConfig, FsdpConfig, GeneSelectionConfig, LoraConfig, MaskingConfig,
    ModelConfig, MultiSpeciesConfig, Opaque, OptimizerConfig, PerturbationConfig,
    PreprocessingConfig, SamplingConfig, SchedulerConfig, ShardConfig, TokenizerConfig,
    TrainingConfig, ZooConfig,
};
pub use value::ConfigValue;
