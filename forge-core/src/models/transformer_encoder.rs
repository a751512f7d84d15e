//! `transformer_encoder`: a Geneformer-like, BERT-style masked gene model.
//!
//! ```text
//! input_ids, values ─► embedding ─► encoder (padding mask) ─► hidden (B,S,H)
//!                                                       ├─► head ─► logits (B,S,V)
//!                                                       └─► pool (cls) ─► embeddings (B,H)
//! loss = cross-entropy over V at labelled positions (labels != -100)
//! ```
//!
//! `loss` and `encode` run the cells in length buckets
//! ([`LengthBuckets`]), skipping padding; `forward` is the plain padded pass.
//!
//! Parameter names equal scModelForge's: `embedding.*`, `encoder.layers.*`,
//! `head.*`.

use tch::Tensor;

use super::loss::{cross_entropy, labelled, select_positions};
use crate::components::buckets::LengthBuckets;
use crate::components::{
    GeneExpressionEmbedding, MaskedGenePredictionHead, TransformerEncoder, pool,
};
use crate::config::Pooling;
use crate::{Architecture, Batch, ForgeModel, ModelOutput};

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

impl TransformerEncoderModel {
    fn hidden(&self, batch: &Batch, train: bool) -> Tensor {
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), train);
        self.encoder
            .forward(&x, batch.attention_mask(), false, train)
    }
}

impl Architecture for TransformerEncoderModel {
    fn forward(&self, batch: &Batch, train: bool) -> ModelOutput {
        let hidden = self.hidden(batch, train);
        let logits = self.head.forward(&hidden);
        let loss = batch.labels().map(|labels| {
            let v = logits.size()[2];
            cross_entropy(&logits.view([-1, v]), &labels.view([-1]))
        });
        ModelOutput {
            loss,
            embeddings: Some(pool(self.pooling, &hidden, batch.attention_mask())),
            logits: Some(logits),
            hidden_states: Some(hidden),
        }
    }

    /// Runs the cells in length buckets (no work on padding) and the head
    /// only at labelled positions.
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        batch.labels()?;
        let [hidden, targets] =
            LengthBuckets::plan(batch.attention_mask()).map_concat(batch, |sub| {
                let labels = sub.labels().expect("sub-batches keep labels");
                let at = labelled(labels);
                [
                    select_positions(&self.hidden(sub, true), &at),
                    labels.masked_select(&at),
                ]
            });
        Some(cross_entropy(&self.head.forward(&hidden), &targets))
    }

    /// Runs the cells in length buckets (no work on padding).
    fn encode(&self, batch: &Batch) -> Tensor {
        LengthBuckets::plan(batch.attention_mask()).map_cells(batch, |sub| {
            pool(self.pooling, &self.hidden(sub, false), sub.attention_mask())
        })
    }
}
