//! forge-data: everything between a user's `.h5ad` files and a padded [`Batch`].
//!
//! - [`h5ad`]: reading AnnData files in pure Rust (dense/CSR/CSC, current
//!   and pre-0.7 layouts, `raw`, obs/var columns), their summary
//!   (`forge inspect`), and writing ([`write_embeddings`]).
//! - [`vocab`]: [`GeneVocab`], gene name -> token id, scModelForge's
//!   `gene_vocab.json`.
//! - [`genes`]: gene identifier kinds (Ensembl ids vs symbols), matching
//!   rules and vocabulary coverage checks.
//! - [`corpus`]: several files as one sequence of cells over shared genes,
//!   preprocessed ([`preprocess`]: library size, log1p); [`hvg`]: the HVG
//!   selection of `forge preprocess`.
//! - [`tokenize`], [`masking`] and collation: the three tokenizers,
//!   masking, padding, exactly as scModelForge defines them.
//! - [`DataPipeline`] and train/validation [`CellDataset`]s; [`loader`]: the
//!   threaded, prefetching [`DataLoader`] (in memory or streaming).
//! - [`geneformer_tokenize`]: Geneformer's median-scaled rank tokenizer
//!   (its published V1/V2 framing), dictionaries from pickle or JSON.
//! - [`synthetic`]: a generator of realistic count data of any size.
//!
//! A typical pretraining use:
//!
//! ```no_run
//! use forge_core::config::ForgeConfig;
//! use forge_data::{DataPipeline, LoaderOptions};
//!
//! let cfg = ForgeConfig::load("config.yaml".as_ref()).unwrap();
//! let pipeline = DataPipeline::from_config(&cfg).unwrap();
//! let (train, val) = pipeline
//!     .split(cfg.training.val_split, cfg.training.seed as u64)
//!     .unwrap();
//! let loader = train.loader(LoaderOptions::from_config(&cfg).unwrap()).unwrap();
//! for batch in loader.epoch(0) {
//!     let batch = batch.unwrap();
//!     // model.forward(&batch) ...
//! }
//! # let _ = val;
//! ```
//!
//! What this module is not: it does not train, and it holds no model code.
//!
//! [`Batch`]: forge_core::batch::Batch

pub mod checks;
mod collate;
pub mod corpus;
pub mod gene_selection;
pub mod geneformer_tokenize;
pub mod genes;
pub mod h5ad;
pub mod hvg;
pub mod loader;
pub mod masking;
mod pipeline;
mod plan;
pub mod preprocess;
pub mod preprocess_file;
pub mod sampling;
mod seed;
pub mod shard;
mod stream;
pub mod synthetic;
pub mod tokenize;
pub mod vocab;
mod worker;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;

pub use corpus::{Corpus, CorpusOptions, PreparedRow, TaskLabels};
pub use genes::{Coverage, FileIdKind, GeneMatchOptions, IdKind, IdSummary, check_coverage};
pub use h5ad::write::write_embeddings;
pub use h5ad::{DataError, H5ad, Matrix};
pub use loader::{Batches, CellDataset, DataLoader, DataPipeline, LoaderOptions, StreamingOptions};
pub use masking::{MaskedCell, Masking, cell_rng};
pub use preprocess::Preprocessing;
pub use shard::{DistributedSampler, Shard, torch_randperm};
pub use tokenize::{BinEdges, Strategy, TokenizedCell, Tokenizer};
pub use vocab::GeneVocab;
