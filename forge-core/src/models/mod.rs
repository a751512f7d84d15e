//! The reference models, one file each. Every model here derives
//! `ForgeModel`, so it is registered under its name and built from a
//! `ModelConfig` by `forge_core::registry`.
//!
//! forge-gen inserts new model modules and their re-exports between the
//! markers below, in alphabetical order.

pub mod loss;

// forge-gen: model-modules begin
pub mod autoregressive_transformer;
pub mod geneformer;
pub mod masked_autoencoder;
pub mod transformer_encoder;
// forge-gen: model-modules end

// forge-gen: model-exports begin
pub use autoregressive_transformer::AutoregressiveTransformer;
pub use geneformer::Geneformer;
pub use masked_autoencoder::MaskedAutoencoder;
pub use transformer_encoder::TransformerEncoderModel;
// forge-gen: model-exports end
