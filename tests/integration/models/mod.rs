//! One test module per model. forge-gen adds new modules between the
//! markers, in alphabetical order.

// forge-gen: model-tests begin
mod autoregressive_transformer;
mod geneformer;
mod masked_autoencoder;
mod transformer_encoder;
// forge-gen: model-tests end
