//! `transformer_encoder`: a Geneformer-like, BERT-style masked gene model.
//!
//! ```text
//! input_ids, values ─► embedding ─► encoder (padding mask) ─► hidden (B,S,H)
//!                                                       ├─► head ─► logits (B,S,V)
//!                                                       └─► pool (cls) ─► embeddings (B,H)
//! loss = cross-entropy over V at labelled positions (labels != -100)
//! ```
//!
//! `loss` and `encode` run the encoder on the packed real tokens
//! ([`Packing`]), skipping padding; `forward` is the plain padded pass.
//!
//! Parameter names equal scModelForge's: `embedding.*`, `encoder.layers.*`,
//! `head.*`.

use tch::Tensor;

use super::loss::{cross_entropy, labelled, select_positions};
use crate::components::packed::Packing;
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

    /// Hidden states of the real tokens, packed (N,H).
    fn packed_hidden(&self, batch: &Batch, packing: &Packing, train: bool) -> Tensor {
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), train);
        self.encoder
            .forward_packed(&packing.pack(&x), packing, false, train)
    }

    /// The loss on packed tokens, with dropout when `train` (`loss` and
    /// `eval_loss`).
    fn packed_loss(&self, batch: &Batch, train: bool) -> Option<Tensor> {
        let labels = batch.labels()?;
        let packing = Packing::new(batch.attention_mask());
        let hidden = self.packed_hidden(batch, &packing, train);
        let labels = packing.pack(labels);
        let at = labelled(&labels);
        let logits = self.head.forward(&select_positions(&hidden, &at));
        Some(cross_entropy(&logits, &labels.masked_select(&at)))
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

    /// Runs the encoder on the packed real tokens (no work on padding) and
    /// the head only at labelled positions.
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        self.packed_loss(batch, true)
    }

    /// The same path with dropout off (validation).
    fn eval_loss(&self, batch: &Batch) -> Option<Tensor> {
        self.packed_loss(batch, false)
    }

    /// Runs the encoder on the packed real tokens (no work on padding).
    fn encode(&self, batch: &Batch) -> Tensor {
        let packing = Packing::new(batch.attention_mask());
        let hidden = packing.unpack(&self.packed_hidden(batch, &packing, false));
        pool(self.pooling, &hidden, batch.attention_mask())
    }
}
