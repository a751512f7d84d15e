//! Reusable building blocks for models, each matching its scModelForge
//! (PyTorch) counterpart in architecture, initialisation and parameter
//! names, so state dicts map one to one.
//!
//! - [`bert`]: Hugging Face's post-norm BERT (embeddings, layers, tied MLM
//!   head) under its own parameter names, for published BERT checkpoints.
//! - [`embedding::GeneExpressionEmbedding`]: gene + position (+ value) embedding.
//! - [`heads`]: masked-gene, bin and expression prediction heads.
//! - [`pooling`]: cls / mean pooling of hidden states into cell embeddings.
//! - [`mask`]: causal and padding masks as additive attention biases.
//! - [`encoder`]: the pre-norm transformer encoder layer and stack.
//! - [`init`]: constructors applying scModelForge's weight init.
//! - [`packed`]: the real tokens of a batch packed together, skipping padding.
//! - [`tokens`]: [`Tokens`], the packed rows every component runs on.

pub mod bert;
pub mod embedding;
pub mod encoder;
pub mod heads;
pub mod init;
pub mod mask;
pub mod packed;
pub mod pooling;
pub mod tokens;

pub use bert::{BertEmbeddings, BertEncoder, BertLayer, BertLmPredictionHead, BertSettings};
pub use embedding::GeneExpressionEmbedding;
pub use encoder::{
    MATMUL_ATTENTION_MAX_SCORES, MultiheadSelfAttention, TransformerEncoder,
    TransformerEncoderLayer, attend,
};
pub use heads::{BinPredictionHead, ExpressionPredictionHead, MaskedGenePredictionHead};
pub use pooling::{cls_pool, mean_pool, pool};
pub use tokens::{HeadOutputs, Tokens};

#[cfg(test)]
mod tests;

use tch::nn;

use crate::config::ModelConfig;
use crate::error::Result;

/// A component that builds itself from the model config alone, so a
/// `#[derive(ForgeModel)]` field of its type needs no attribute.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot build itself from the ModelConfig alone",
    label = "this field needs `#[forge(build = ...)]` (or `#[forge(config)]` for a config value)",
    note = "`#[forge(build = MyLayer::new(path, config.hidden_dim))]` builds a field from an expression"
)]
pub trait Component: Sized {
    /// Builds the component's variables under `path`.
    fn build(path: nn::Path, config: &ModelConfig) -> Result<Self>;
}

impl Component for GeneExpressionEmbedding {
    /// Vocabulary `vocab_size`, width `hidden_dim`, positions `max_seq_len`,
    /// `dropout`, values projected when `use_expression_values`.
    fn build(path: nn::Path, config: &ModelConfig) -> Result<Self> {
        Ok(GeneExpressionEmbedding::new(
            path,
            config.require_vocab_size()?,
            config.hidden_dim,
            config.max_seq_len,
            config.dropout,
            config.use_expression_values,
        ))
    }
}

impl Component for TransformerEncoder {
    /// `num_layers` layers of width `hidden_dim`, `num_heads` heads, FFN
    /// width `ffn_dim` (default 4 * hidden_dim), `dropout`, `activation`.
    fn build(path: nn::Path, config: &ModelConfig) -> Result<Self> {
        Ok(TransformerEncoder::new(
            path,
            config.num_layers,
            config.hidden_dim,
            config.num_heads,
            config.ffn_dim_or_default(),
            config.dropout,
            config.activation,
        ))
    }
}

impl Component for MaskedGenePredictionHead {
    /// `hidden_dim` -> `vocab_size` (use `#[forge(build = ...)]` for bins).
    fn build(path: nn::Path, config: &ModelConfig) -> Result<Self> {
        Ok(MaskedGenePredictionHead::new(
            path,
            config.hidden_dim,
            config.require_vocab_size()?,
        ))
    }
}

impl Component for ExpressionPredictionHead {
    /// `hidden_dim` -> one value per position.
    fn build(path: nn::Path, config: &ModelConfig) -> Result<Self> {
        Ok(ExpressionPredictionHead::new(path, config.hidden_dim))
    }
}
