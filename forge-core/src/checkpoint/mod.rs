//! Checkpoint folders in scModelForge's layout: a trained model, its config
//! and its gene vocabulary, written by [`save_pretrained`] and read back by
//! [`load_pretrained`], interchangeable with scModelForge (PyTorch).
//!
//! ```text
//! my_model/
//!   config.json        {scmodelforge_version, model_type, model_config{..}, tokenizer_config{..}}
//!   model.safetensors  float32 weights under PyTorch state-dict names
//!   gene_vocab.json    {"GENE": id, ...}, ids >= 4 (0-3 are PAD, UNK, MASK, CLS)
//!   README.md          model card
//! ```
//!
//! A folder is written whole or not at all (it is built beside the target
//! and renamed into place), and an existing folder is replaced only when
//! asked. Loading builds the model named by `model_type` through the
//! registry and copies the weights all or nothing: missing, unexpected and
//! mis-shaped tensors are listed together. Every error
//! ([`ForgeError::Checkpoint`](crate::ForgeError::Checkpoint), or
//! [`ForgeError::Config`](crate::ForgeError::Config) for config values)
//! names the file at fault and what was expected there.
//!
//! A Hugging Face BERT masked-LM folder (Geneformer's published models)
//! loads through the same [`load_pretrained`] as a `geneformer` model; see
//! [`hf`], which also writes that layout back.
//!
//! What this is not: training state (optimizer moments, step counters) is
//! not part of a model checkpoint; the training pipeline keeps its own.

mod card;
pub mod hf;
mod load;
mod save;

#[cfg(test)]
mod hf_tests;
#[cfg(test)]
mod parity_tests;
#[cfg(test)]
mod tests;

pub use load::{CheckpointConfig, LoadedModel, load_pretrained, read_config, read_vocab};
pub use save::{VocabEntry, save_pretrained};

/// The config file of a checkpoint folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The gene vocabulary file of a checkpoint folder.
pub const VOCAB_FILE: &str = "gene_vocab.json";
/// The model card of a checkpoint folder.
pub const README_FILE: &str = "README.md";
