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
//! run the cells in length buckets ([`LengthBuckets`]), skipping padding;
//! `forward` is the plain padded pass. Parameter names:
//! `embedding.*`, `encoder.layers.*`, `gene_head.*`, `expression_head.*`.

use tch::{Kind, Tensor};

use super::loss::{cross_entropy, labelled, select_positions};
use crate::batch::special::IGNORE_INDEX;
use crate::components::buckets::LengthBuckets;
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

    /// The weighted loss from gene and bin logits at the same positions as
    /// `labels` and `bin_targets`.
    fn combine(&self, gene: Tensor, bins: Option<Tensor>) -> Tensor {
        let gene = gene * self.gene_loss_weight;
        match bins {
            Some(bins) => gene + bins * self.expression_loss_weight,
            None => gene,
        }
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

    /// Runs the cells in length buckets (no work on padding) and the heads
    /// only at labelled positions.
    fn loss(&self, batch: &Batch) -> Option<Tensor> {
        batch.labels()?;
        let [picked, genes, bins] =
            LengthBuckets::plan(batch.attention_mask()).map_concat(batch, |sub| {
                let labels = sub.labels().expect("sub-batches keep labels");
                let at = labelled(labels);
                let bins = match sub.bin_ids() {
                    Some(bin_ids) => bin_ids.masked_select(&at),
                    None => Tensor::zeros([0], (Kind::Int64, labels.device())),
                };
                [
                    select_positions(&self.hidden(sub, true, true), &at),
                    labels.masked_select(&at),
                    bins,
                ]
            });
        let gene = cross_entropy(&self.gene_head.forward(&picked), &genes);
        let bins = batch
            .bin_ids()
            .map(|_| cross_entropy(&self.expression_head.forward(&picked), &bins));
        Some(self.combine(gene, bins))
    }

    /// Bidirectional, in length buckets (no work on padding).
    fn encode(&self, batch: &Batch) -> Tensor {
        LengthBuckets::plan(batch.attention_mask()).map_cells(batch, |sub| {
            pool(
                self.pooling,
                &self.hidden(sub, false, false),
                sub.attention_mask(),
            )
        })
    }
}
