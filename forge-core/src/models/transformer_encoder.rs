//! `transformer_encoder`: a Geneformer-like, BERT-style masked gene model.
//!
//! ```text
//! input_ids, values ─► embedding ─► encoder (padding mask) ─► hidden (B,S,H)
//!                                                       ├─► head ─► logits (B,S,V)
//!                                                       └─► pool (cls) ─► embeddings (B,H)
//! loss = cross-entropy over V at labelled positions (labels != -100)
//! ```
//!
//! It runs on the real tokens only ([`Tokens`](crate::components::Tokens)),
//! with the head at labelled positions when only the loss is wanted.
//!
//! Parameter names equal scModelForge's: `embedding.*`, `encoder.layers.*`,
//! `head.*`.

use super::loss::{cross_entropy, labelled};
use crate::components::{GeneExpressionEmbedding, MaskedGenePredictionHead, TransformerEncoder};
use crate::config::Pooling;
use crate::{Architecture, Batch, ForgeModel, ModelOutput, Pass};

/// BERT-style encoder with a masked-gene prediction head.
#[derive(Debug, ForgeModel)]
#[forge(name = "transformer_encoder")]
pub struct TransformerEncoderModel {
    /// Gene + position (+ value) embedding.
    pub embedding: GeneExpressionEmbedding,
    /// Pre-norm encoder stack, bidirectional.
    pub encoder: TransformerEncoder,
    /// Predicts the gene at each position.
    pub head: MaskedGenePredictionHead,
    /// How cell embeddings are pooled (default cls).
    #[forge(config)]
    pub pooling: Pooling,
}

impl Architecture for TransformerEncoderModel {
    fn run(&self, batch: &Batch, pass: Pass) -> ModelOutput {
        let x = self.embedding.forward(batch, pass.train);
        let hidden = self.encoder.forward(&x, false, pass.train);
        let at = batch.labels().map(labelled);
        let targets = at.as_ref().zip(batch.labels());
        let (loss, logits) =
            hidden.head_loss(pass, targets, |rows| self.head.forward(rows), cross_entropy);
        hidden.output(pass, self.pooling, loss, logits)
    }
}
