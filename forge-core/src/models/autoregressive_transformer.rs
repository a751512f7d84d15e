//! `autoregressive_transformer`: an scGPT-like model with causal attention
//! and two heads.
//!
//! ```text
//! input_ids, values ─► embedding ─► encoder (causal + padding mask) ─► hidden
//!                                      ├─► gene_head ─► gene logits (B,S,V)   = logits
//!                                      ├─► expression_head ─► bin logits (B,S,n_bins)
//!                                      └─► pool ─► embeddings
//! loss = gene_loss_weight * CE(gene logits, labels)
//!      + expression_loss_weight * CE(bin logits, bin_ids where labels != -100)   (when bin_ids given)
//! ```
//!
//! Targets sit at the same position as the input (no next-token shift).
//! `encode` runs the encoder without the causal mask. `loss` and `encode`
//! run the encoder on the packed real tokens ([`Packing`]), skipping
//! padding; `forward` is the plain padded pass. Parameter names:
//! `embedding.*`, `encoder.layers.*`, `gene_head.*`, `expression_head.*`.

use tch::Tensor;

use super::loss::{cross_entropy, labelled, select_positions};
use crate::batch::special::IGNORE_INDEX;
use crate::components::packed::Packing;
use crate::components::{
    BinPredictionHead, GeneExpressionEmbedding, MaskedGenePredictionHead, TransformerEncoder, pool,
};
use crate::config::Pooling;
use crate::{Architecture, Batch, ForgeModel, ModelOutput};

/// Causal transformer predicting genes and expression bins.
#[derive(Debug, ForgeModel)]
#[forge(name = "autoregressive_transformer")]
pub struct AutoregressiveTransformer {
    /// Gene + position (+ value) embedding.
    pub embedding: GeneExpressionEmbedding,
    /// Pre-norm encoder stack, run with a causal mask in `forward`.
    pub encoder: TransformerEncoder,
    /// Predicts the gene at each position (over the vocabulary).
    pub gene_head: MaskedGenePredictionHead,
    /// Predicts the expression bin at each position.
    #[forge(build = BinPredictionHead::new(path, config.hidden_dim, config.n_bins))]
    pub expression_head: BinPredictionHead,
    /// How cell embeddings are pooled.
    #[forge(config)]
    pub pooling: Pooling,
    /// Weight of the gene loss.
    #[forge(config)]
    pub gene_loss_weight: f64,
    /// Weight of the bin loss.
    #[forge(config)]
    pub expression_loss_weight: f64,
}

impl AutoregressiveTransformer {
    fn hidden(&self, batch: &Batch, causal: bool, train: bool) -> Tensor {
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), train);
        self.encoder
            .forward(&x, batch.attention_mask(), causal, train)
    }

    /// Hidden states of the real tokens, packed (N,H).
    fn packed_hidden(&self, batch: &Batch, packing: &Packing, causal: bool, train: bool) -> Tensor {
        let x = self
            .embedding
            .forward(batch.input_ids(), batch.values(), train);
        self.encoder
            .forward_packed(&packing.pack(&x), packing, causal, train)
    }

    /// The weighted loss from gene and bin logits at the same positions as
    /// `labels` and `bin_targets`.
    fn combine(&self, gene: Tensor, bins: Option<Tensor>) -> Tensor {
        let gene = gene * self.gene_loss_weight;
        match bins {
            Some(bins) => gene + bins * self.expression_loss_weight,
            None => gene,
        }
    }

    /// The loss on packed tokens, with dropout when `train` (`loss` and
    /// `eval_loss`).
    fn packed_loss(&self, batch: &Batch, train: bool) -> Option<Tensor> {
        let labels = batch.labels()?;
        let packing = Packing::new(batch.attention_mask());
        let hidden = self.packed_hidden(batch, &packing, true, train);
        let labels = packing.pack(labels);
        let at = labelled(&labels);
        let picked = select_positions(&hidden, &at);
        let gene = cross_entropy(&self.gene_head.forward(&picked), &labels.masked_select(&at));
        let bins = batch.bin_ids().map(|bin_ids| {
            cross_entropy(
                &self.expression_head.forward(&picked),
                &packing.pack(bin_ids).masked_select(&at),
            )
        });
        Some(self.combine(gene, bins))
    }
}

impl Architecture for AutoregressiveTransformer {
    fn forward(&self, batch: &Batch, train: bool) -> ModelOutput {
        let hidden = self.hidden(batch, true, train);
        let logits = self.gene_head.forward(&hidden);
        let loss = batch.labels().map(|labels| {
            let v = logits.size()[2];
            let gene = cross_entropy(&logits.view([-1, v]), &labels.view([-1]));
            let bins = batch.bin_ids().map(|bin_ids| {
                let targets = bin_ids.masked_fill(&labelled(labels).logical_not(), IGNORE_INDEX);
                let bin_logits = self.expression_head.forward(&hidden);
                let n = bin_logits.size()[2];
                cross_entropy(&bin_logits.view([-1, n]), &targets.view([-1]))
            });
            self.combine(gene, bins)
        });
        ModelOutput {
            loss,
            embeddings: Some(pool(self.pooling, &hidden, batch.attention_mask())),
            logits: Some(logits),
            hidden_states: Some(hidden),
        }
    }

    /// Runs the encoder on the packed real tokens (no work on padding) and
    /// the heads only at labelled positions.
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        self.packed_loss(batch, true)
    }

    /// The same path with dropout off (validation).
    fn eval_loss(&self, batch: &Batch) -> Option<Tensor> {
        self.packed_loss(batch, false)
    }

    /// Bidirectional, on the packed real tokens (no work on padding).
    fn encode(&self, batch: &Batch) -> Tensor {
        let packing = Packing::new(batch.attention_mask());
        let hidden = packing.unpack(&self.packed_hidden(batch, &packing, false, false));
        pool(self.pooling, &hidden, batch.attention_mask())
    }
}
